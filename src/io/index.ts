export { FileFormatError, readFileBytes } from "./errors.js";
export {
  AK42_MAGIC,
  V0_HEADER_BYTES,
  V1_HEADER_BYTES,
  checkpointByteLength,
  legacyRopeTables,
  parseCheckpoint,
  randomCheckpoint,
  readCheckpoint,
  serializeCheckpoint,
  writeCheckpoint,
  type CheckpointVersion,
} from "./checkpoint.js";
export { Mulberry32 } from "./prng.js";
export { BOS, BYTE_TOKEN_OFFSET, EOS, UNK, Tokenizer, isPrintablePiece, rawBytePiece } from "./tokenizer.js";
