/**
 * ptp-ts: Parallel Token Prediction in TypeScript.
 *
 * The public API's root: what a user needs to load a model, sample from it
 * with explicit u's and decode with PTP. A token's path: Tokenizer.encode ->
 * Transformer.forward (on a Backend) -> samplingDistribution -> pick(u, P) ->
 * Tokenizer.decodePiece; decodeAR strings these together one token per call.
 *
 * Each part has its own subpath with everything else it offers:
 * `ptp-ts/model`, `ptp-ts/sampling`, `ptp-ts/io` (files, tokenizers,
 * safetensors), `ptp-ts/ptp` (students, draft models, their files, the
 * decoders and the PTP-vs-AR harness) and `ptp-ts/train` (autograd, the
 * losses, the datasets and the trainers).
 */

// Backends: the plug-in interface, the registry and its conformance suite.
export type { Backend, BackendOptions, Buffer, DType, HostArray, WeightType } from "./backends/backend.js";
export { WEIGHT_TYPES } from "./backends/backend.js";
export { BackendError } from "./backends/backend.js";
export { createBackend, registerBackend, listBackends, DEFAULT_BACKEND, type BackendFactory } from "./backends/registry.js";
export { relaxedSimdSupported } from "./backends/wasm/detect.js";
export { runBackendConformance, type ConformanceCheck, type ConformanceOptions, type ConformanceReport } from "./backends/conformance.js";

// The model.
export { Transformer, type WeightName } from "./model/transformer.js";
export { KVCache } from "./model/kv-cache.js";
export { SHAPES, parameterCount, validateConfig, type ModelConfig } from "./model/config.js";
export { randomCheckpoint } from "./model/init.js";
export type { Checkpoint, LayerWeights, ModelWeights } from "./model/weights.js";

// Files: llama2.c and Hugging Face checkpoints and tokenizers.
export { FileFormatError } from "./io/errors.js";
export { readCheckpoint, writeCheckpoint, type CheckpointVersion } from "./io/checkpoint.js";
export { Tokenizer, BOS, EOS } from "./io/tokenizer.js";
export { readHfCheckpoint, writeHfCheckpoint, type WriteHfOptions } from "./io/hf-checkpoint.js";
export { HfTokenizer, type TextTokenizer } from "./io/hf-tokenizer.js";
export { readModel, readModelConfig, loadModel, loadTokenizer } from "./io/model-file.js";

// Sampling from explicit auxiliary variables u.
export { binOf, pick } from "./sampling/pick.js";
export { samplingDistribution, type SamplingSettings } from "./sampling/processors.js";
export { XorShiftAux, ArrayAux, readAuxFile, type AuxSource } from "./sampling/aux.js";

// Decoding: the AR reference, and PTP decoders over batches of prompts.
export { decodeAR, decodeARSteps, type ArOptions, type DecodeResult, type DecodeStats } from "./ptp/decode/decode-ar.js";
export { decode, DECODERS, type DecodeOptions, type DecoderName, type PtpResult, type PtpStats } from "./ptp/decode/run.js";
export { comparePtpAr, type Comparison, type CompareOptions } from "./ptp/decode/compare.js";

// PTP: the student, the standalone draft model and their files.
export { PtpModel } from "./ptp/ptp-model.js";
export { readStudent, writeStudent, checkStudentMatchesTeacher } from "./ptp/files/adapter-file.js";
export { readPeftStudent, writePeftStudent, type ReadPeftOptions } from "./ptp/files/peft.js";
export { loadStudent } from "./ptp/files/student-file.js";
export type { TeacherIdentity } from "./ptp/files/ptp-file-parts.js";
export { teacherChecksum } from "./ptp/files/teacher-checksum.js";
export { randomStudent, randomDraft } from "./ptp/init.js";
export type { Student, StudentConfig, StudentWeights, Variant, AuxKind, AuxEmbeddingConfig } from "./ptp/student-weights.js";
export { DraftModel, type Draft, type DraftConfig, type DraftWeights } from "./ptp/draft-model.js";
export { readDraft, writeDraft, checkDraftMatchesTeacher } from "./ptp/files/draft-file.js";
export type { Proposer } from "./ptp/proposer.js";
export { runPtpExactness, type PtpExactnessOptions } from "./ptp/exactness.js";

// The trainers behind ptp distill and ptp train (their parts: ptp-ts/train).
export { distill, type DistillOptions } from "./train/distill.js";
export { pretrain, type PretrainOptions } from "./train/pretrain.js";
export { inverseArTrain, type InverseArOptions } from "./train/inverse-ar.js";
export { evaluateStudent, type EvalSettings, type EvalResult } from "./train/evaluate.js";
