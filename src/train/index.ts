/** `ptp-ts/train`: autograd, the optimizer, the PTP losses, the datasets and the trainers (see spec/train.md, spec/dataset.md). */
export * as autograd from "./autograd/index.js";
export { makeParam, zeroGrads, type Param } from "./param.js";
export { AdamW, clipGradNorm, gradNorm, type AdamWOptions } from "./optim.js";
export { lrAt, type ScheduleConfig, type LrDecay } from "./schedule.js";
export { saveTrainCheckpoint, loadTrainCheckpoint } from "./train-checkpoint.js";
export { forwardRows, constantWeights, trainableWeights, type GraphWeights, type ConstantContext } from "./graph.js";
export { windowRows, windowLoss, windowMetrics, studentLogits, draftLogits, type WindowRows, type LossKind } from "./ptp-windows.js";
export { trainableStudent, trainableDraft } from "./student-params.js";
export { runLoop, type LoopOptions, type LoopResult } from "./loop.js";
export { distill, type DistillOptions } from "./distill.js";
export { pretrain, tokenStream, type PretrainOptions } from "./pretrain.js";
export { readCorpus, CORPUS_LIMITS } from "../data/corpus.js";
export { initModel } from "../model/init.js";
export { inverseArTrain, recoverUs, type InverseArOptions } from "./inverse-ar.js";
export { evaluateStudent, type EvalSettings, type EvalResult } from "./evaluate.js";
export { teacherContext } from "./teacher-context.js";
export {
  DatasetWriter,
  DatasetMismatchError,
  checkDatasetMatchesTeacher,
  readDataset,
  readDatasetMeta,
  datasetRecords,
  totalRecords,
  DATASET_MAGIC,
  DATASET_VERSION,
  type Dataset,
  type DatasetMeta,
  type DatasetRecord,
  type DatasetSampling,
  type DatasetPrompts,
  type ReadDatasetOptions,
  type OpenDatasetOptions,
} from "../data/dataset.js";
export { pregenerate, generateRecord, datasetMeta, bosPrompts, promptsDigest, recordRng, nextU, recordPrompt, metaSampling, type PromptSet, type PregenerateSettings, type PregenerateOptions, type PregenerateProgress, type PregenerateSummary } from "../data/pregenerate.js";
export { generateStories, storyPrompt, heldOutSeed, MIN_STORY_LENGTH, MAX_STORY_LENGTH } from "../data/synthetic.js";
export { buildCharTokenizer, writeCharTokenizer, charVocabulary, tokenizerVocabSize, loadTokenizerFile } from "../io/char-tokenizer.js";
export { drawU, betaSample } from "../sampling/u-in-bin.js";
