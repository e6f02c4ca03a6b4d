export { FileFormatError, readFileBytes } from "./errors.js";
export { AK42_MAGIC, V0_HEADER_BYTES, V1_HEADER_BYTES, checkpointByteLength, legacyRopeTables, parseCheckpoint, readCheckpoint, serializeCheckpoint, writeCheckpoint, type CheckpointVersion } from "./checkpoint.js";
export { randomCheckpoint } from "../model/init.js";
export { Mulberry32 } from "../util/prng.js";
export { BOS, BYTE_TOKEN_OFFSET, EOS, UNK, Tokenizer, isPrintablePiece, printsPiece, rawBytePiece } from "./tokenizer.js";
export {
  readSafetensors,
  writeSafetensors,
  parseSafetensors,
  parseSafetensorsHeader,
  serializeSafetensors,
  type SafeTensor,
  type SafeTensorDtype,
  type SafetensorsEntry,
  type SafetensorsFile,
} from "./safetensors.js";
export { modelConfigFromHf, modelConfigToHf } from "./hf-config.js";
export {
  readHfCheckpoint,
  writeHfCheckpoint,
  hfTensors,
  hfTensorShapes,
  permuteRowsToHf,
  permuteRowsFromHf,
  HF_CONFIG,
  HF_WEIGHTS,
  HF_INDEX,
  HF_LINEAR_MODULES,
  type WriteHfOptions,
} from "./hf-checkpoint.js";
export { HfTokenizer, llama2cTokenizerToJson, llama2cTokenizerBytes, writeHfTokenizer, type TextTokenizer } from "./hf-tokenizer.js";
export { readModel, readModelConfig, loadModel, loadTokenizer, tokenizerPathFor, HF_TOKENIZER } from "./model-file.js";
export { buildCharTokenizer, writeCharTokenizer, charVocabulary, tokenizerVocabSize, loadTokenizerFile } from "./char-tokenizer.js";
