/**
 * ptp-ts for browsers (`ptp-ts/browser`, and the `browser` condition of
 * `ptp-ts`): the engine, sampling, PTP decoding and every file format from
 * bytes, with no `node:` import anywhere in its module graph (scripts/
 * check-browser.mjs fails the build if one creeps in). Files come in as bytes
 * (fetch, a file picker): parseCheckpoint, Tokenizer.fromBytes,
 * parseStudent, parseSafetensors. The wasm backend fetches its .wasm builds
 * from options.wasmBaseUrl and runs its threads on Web Workers where the page
 * is cross-origin isolated, on one thread otherwise (backend.threadNote says so).
 */
import { setWorkerSpawner } from "./backends/wasm/spawner.js";
import { webWorkerSpawner } from "./backends/wasm/web-workers.js";

setWorkerSpawner(webWorkerSpawner);

// Backends.
export type { Backend, Buffer, DType, HostArray } from "./backends/backend.js";
export { BackendError } from "./backends/backend.js";
export { createBackend, registerBackend, listBackends, DEFAULT_BACKEND, WEIGHT_TYPES, type BackendFactory, type BackendOptions, type WeightType } from "./backends/registry.js";
export { relaxedSimdSupported, simdSupported } from "./backends/wasm/detect.js";
export { threadsUnavailableReason, type WasmBackend } from "./backends/wasm/index.js";
export { webWorkerSpawner } from "./backends/wasm/web-workers.js";

// The model.
export { Transformer, type WeightName } from "./model/transformer.js";
export { KVCache } from "./model/kv-cache.js";
export { causalMask, type Block } from "./model/block.js";
export { SHAPES, headSize, kvDim, parameterCount, validateConfig, type ModelConfig } from "./model/config.js";
export type { Checkpoint, LayerWeights, ModelWeights } from "./model/weights.js";

// Files, from bytes.
export { FileFormatError } from "./io/errors.js";
export { parseCheckpoint, serializeCheckpoint, type CheckpointVersion } from "./io/checkpoint.js";
export { randomCheckpoint } from "./model/init.js";
export { Tokenizer, BOS, EOS } from "./io/tokenizer.js";
export { parseSafetensors, serializeSafetensors, type SafeTensor } from "./io/safetensors.js";

// Sampling from explicit auxiliary variables u.
export { pick, binOf, argmax } from "./sampling/pick.js";
export { softmaxF32 } from "./sampling/softmax.js";
export { samplingDistribution, type SamplingSettings } from "./sampling/processors.js";
export { sampleToken, needsU } from "./sampling/sampler.js";
export { XorShiftAux, ArrayAux, type AuxSource } from "./sampling/aux.js";

// Decoding.
export { decodeAR, decodeARSteps, type ArOptions, type DecodeResult, type DecodeStats } from "./ptp/decode/decode-ar.js";
export { decode, decodeWith, makeDecoder, DECODERS, type DecodeOptions, type DecoderName, type PtpResult, type PtpStats } from "./ptp/decode/run.js";
export type { Decoder } from "./ptp/decode/decoder.js";
export { tokenBytes, chunkBytes } from "./ptp/chunk-text.js";

// PTP: the student and its files.
export { PtpModel } from "./ptp/ptp-model.js";
export { embedAux, auxFeatures } from "./ptp/auxiliary.js";
export { parseStudent, serializeStudent, checkStudentMatchesTeacher } from "./ptp/files/adapter-file.js";
export { randomStudent } from "./ptp/init.js";
export { teacherChecksum } from "./ptp/files/teacher-checksum.js";
export type { Student, StudentConfig, StudentWeights, Variant, AuxKind, AuxEmbeddingConfig } from "./ptp/student-weights.js";
export { UStream } from "./sampling/ustream.js";
export { DraftModel, type Draft, type DraftConfig, type DraftWeights } from "./ptp/draft-model.js";
export { parseDraft, serializeDraft, checkDraftMatchesTeacher } from "./ptp/files/draft-file.js";
export { randomDraft } from "./ptp/init.js";
