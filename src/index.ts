/**
 * ptp-ts: Parallel Token Prediction in TypeScript.
 *
 * The public API. A token's path: Tokenizer.encode -> Transformer.forward
 * (on a Backend) -> samplingDistribution -> pick(u, P) -> Tokenizer.decodePiece;
 * decodeAR strings these together one token per call.
 */

// Backends: the plug-in interface, the registry and the built-in backends.
export type { Backend, Buffer, DType, HostArray } from "./backends/backend.js";
export { BackendError } from "./backends/backend.js";
export { createBackend, registerBackend, listBackends, DEFAULT_BACKEND, WEIGHT_TYPES, type BackendFactory, type BackendOptions, type WeightType } from "./backends/registry.js";
export { relaxedSimdSupported } from "./backends/wasm/detect.js";
export { runBackendConformance, matmulTol, attentionTol, type ConformanceCheck, type ConformanceOptions, type ConformanceReport } from "./backends/conformance.js";

// The model.
export { Transformer } from "./model/transformer.js";
export { KVCache } from "./model/kv-cache.js";
export { causalMask, type Block } from "./model/block.js";
export { SHAPES, headSize, kvDim, parameterCount, validateConfig, type ModelConfig } from "./model/config.js";
export type { Checkpoint, LayerWeights, ModelWeights } from "./model/weights.js";

// Files.
export { FileFormatError } from "./io/errors.js";
export { parseCheckpoint, readCheckpoint, serializeCheckpoint, writeCheckpoint, randomCheckpoint, type CheckpointVersion } from "./io/checkpoint.js";
export { Tokenizer, BOS, EOS } from "./io/tokenizer.js";
// Hugging Face formats: Llama folders, tokenizer.json, PEFT student folders (spec/io.md).
export { readHfCheckpoint, writeHfCheckpoint, type WriteHfOptions } from "./io/hf-checkpoint.js";
export { HfTokenizer, llama2cTokenizerToJson, type TextTokenizer } from "./io/hf-tokenizer.js";
export { readModel, loadTokenizer } from "./io/model-file.js";
export { readPeftStudent, writePeftStudent, studentToPeft, type ReadPeftOptions } from "./ptp/peft.js";
export { loadStudent } from "./ptp/student-file.js";
export { runPtpExactness, type PtpExactnessOptions } from "./ptp/exactness.js";

// Sampling from explicit auxiliary variables u.
export { pick, binOf, argmax } from "./sampling/pick.js";
export { softmaxF32 } from "./sampling/softmax.js";
export { samplingDistribution, type SamplingSettings } from "./sampling/processors.js";
export { sampleToken, needsU } from "./sampling/sampler.js";
export { XorShiftAux, ArrayAux, readAuxFile, type AuxSource } from "./sampling/aux.js";

// Decoding: the AR reference, and PTP decoders over batches of prompts.
export { decodeAR, type ArOptions, type DecodeResult, type DecodeStats } from "./ptp/decode/ar.js";
export { decode, decodeWith, makeDecoder, DECODERS, type DecodeOptions, type DecoderName, type PtpResult, type PtpStats } from "./ptp/decode/run.js";
export type { Decoder } from "./ptp/decode/decoder.js";

// PTP: the student and its files.
export { PtpModel } from "./ptp/ptp-model.js";
export { embedAux, auxFeatures } from "./ptp/auxiliary.js";
export { readStudent, writeStudent, parseStudent, serializeStudent, randomStudent, checkStudentMatchesTeacher } from "./ptp/adapter-file.js";
export { teacherChecksum } from "./ptp/teacher-checksum.js";
export type { Student, StudentConfig, StudentWeights, Variant, AuxKind, AuxEmbeddingConfig } from "./ptp/student-weights.js";
export { UStream } from "./ptp/ustream.js";
export { DraftModel, type Draft, type DraftConfig, type DraftWeights } from "./ptp/draft-model.js";
export { readDraft, writeDraft, parseDraft, serializeDraft, randomDraft, checkDraftMatchesTeacher } from "./ptp/draft-file.js";
export { readSafetensors, writeSafetensors, parseSafetensors, serializeSafetensors, type SafeTensor } from "./io/safetensors.js";

// Training data: the distillation dataset (spec/dataset.md) and its generation.
export { DatasetWriter, DatasetMismatchError, readDataset, readDatasetMeta, datasetRecords, drawU, betaSample, totalRecords, DATASET_MAGIC, DATASET_VERSION, type Dataset, type DatasetMeta, type DatasetRecord, type DatasetSampling, type DatasetPrompts, type ReadDatasetOptions, type OpenDatasetOptions } from "./train/dataset.js";
export { pregenerate, generateRecord, datasetMeta, bosPrompts, promptsDigest, recordRng, nextU, recordPrompt, metaSampling, type PromptSet, type PregenerateSettings, type PregenerateOptions, type PregenerateProgress, type PregenerateSummary } from "./train/pregenerate.js";

// The synthetic story grammar and its character-level tokenizer (the demo models' data).
export { generateStories, storyPrompt, heldOutSeed, MIN_STORY_LENGTH, MAX_STORY_LENGTH } from "./train/synthetic.js";
export { buildCharTokenizer, writeCharTokenizer, charVocabulary, tokenizerVocabSize, loadTokenizerFile } from "./train/char-tokenizer.js";

// Training: autograd, the optimizer, PTP losses and the trainers behind ptp distill / ptp train.
export * as autograd from "./train/autograd/index.js";
export { makeParam, zeroGrads, type Param } from "./train/param.js";
export { AdamW, clipGradNorm, gradNorm, type AdamWOptions } from "./train/optim.js";
export { lrAt, type ScheduleConfig, type LrDecay } from "./train/schedule.js";
export { saveTrainCheckpoint, loadTrainCheckpoint } from "./train/train-checkpoint.js";
export { forwardRows, constantWeights, trainableWeights, type GraphWeights, type ConstantContext } from "./train/graph.js";
export { windowRows, windowLoss, windowMetrics, studentLogits, draftLogits, type WindowRows, type LossKind } from "./train/ptp-windows.js";
export { trainableStudent, trainableDraft } from "./train/student-params.js";
export { runLoop, type LoopOptions, type LoopResult } from "./train/loop.js";
export { distill, type DistillOptions } from "./train/distill.js";
export { pretrain, initModel, tokenStream, type PretrainOptions } from "./train/pretrain.js";
export { inverseArTrain, recoverUs, type InverseArOptions } from "./train/inverse-ar.js";
export { evaluateStudent, type EvalSettings, type EvalResult } from "./train/evaluate.js";
export { teacherContext } from "./train/teacher-context.js";
