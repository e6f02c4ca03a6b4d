/**
 * Reading and writing llama2.c checkpoints.
 *
 * Two layouts are supported, both little-endian float32:
 *
 * - v0 ("legacy"): a 28-byte header of 7 int32 (dim, hidden_dim, n_layers,
 *   n_heads, n_kv_heads, vocab_size, seq_len; a negative vocab_size means the
 *   classifier is stored separately), then token_embedding, rms_att (all
 *   layers), wq, wk, wv, wo, rms_ffn, w1, w2, w3 (each for all layers),
 *   rms_final, two legacy RoPE tables (cos then sin, each
 *   [seq_len, head_size/2]) and, when unshared, wcls.
 * - v1 ("ak42"): uint32 magic 0x616b3432, int32 version 1, the same 7 params
 *   (vocab_size positive), a uint8 shared_classifier flag, zero padding to 256
 *   bytes; then rms_att (all layers), rms_ffn (all layers), rms_final,
 *   token_embedding, wq, wk, wv, wo, w1, w2, w3 (each for all layers) and,
 *   when unshared, wcls. No RoPE tables.
 *
 * Parsed weights are Float32Array views into the given bytes (the bytes are
 * copied once first only when they are not 4-byte aligned or the host is
 * big-endian), so mutating the weights mutates the bytes.
 */
import { configProblems, headSize, kvDim, LLAMA2C_NORM_EPS, LLAMA2C_ROPE_THETA, validateConfig, type ModelConfig } from "../model/config.js";
import type { Checkpoint, LayerWeights, ModelWeights } from "../model/weights.js";
import { writeBytesAtomically } from "./atomic-write.js";
import { describeValue } from "../util/checks.js";
import { checkBytesArgument, checkPath, checkSize, FileFormatError, quotePath, readFileBytes, readFileInto, readFilePrefix } from "./errors.js";
import { isPlainObject } from "../util/options.js";

/** The llama2.c checkpoint layouts read here: 0 (the legacy header of run.c) or 1 (the "ak42" float32 file); see above. */
export type CheckpointVersion = 0 | 1;

/** "ak42" read as a little-endian uint32. */
export const AK42_MAGIC = 0x616b3432;
export const V0_HEADER_BYTES = 28;
export const V1_HEADER_BYTES = 256;

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

type LayerField = keyof LayerWeights;
type Slot = { kind: "global"; field: "tokenEmbedding" | "rmsFinal" | "wcls"; length: number } | { kind: "layer"; field: LayerField; layer: number; length: number } | { kind: "rope"; length: number };

function layerFieldLength(c: ModelConfig, field: LayerField): number {
  switch (field) {
    case "rmsAtt":
    case "rmsFfn":
      return c.dim;
    case "wq":
    case "wo":
      return c.dim * c.dim;
    case "wk":
    case "wv":
      return kvDim(c) * c.dim;
    case "w1":
    case "w2":
    case "w3":
      return c.hiddenDim * c.dim;
  }
}

/** The arrays of a checkpoint file in storage order. */
function layout(c: ModelConfig, version: CheckpointVersion): Slot[] {
  const slots: Slot[] = [];
  const perLayer = (field: LayerField): void => {
    const length = layerFieldLength(c, field);
    for (let l = 0; l < c.nLayers; l++) slots.push({ kind: "layer", field, layer: l, length });
  };
  const emb: Slot = { kind: "global", field: "tokenEmbedding", length: c.vocabSize * c.dim };
  const final: Slot = { kind: "global", field: "rmsFinal", length: c.dim };
  if (version === 0) {
    slots.push(emb);
    for (const f of ["rmsAtt", "wq", "wk", "wv", "wo", "rmsFfn", "w1", "w2", "w3"] as const) perLayer(f);
    slots.push(final);
    slots.push({ kind: "rope", length: c.seqLen * headSize(c) });
  } else {
    perLayer("rmsAtt");
    perLayer("rmsFfn");
    slots.push(final, emb);
    for (const f of ["wq", "wk", "wv", "wo", "w1", "w2", "w3"] as const) perLayer(f);
  }
  if (!c.sharedClassifier) slots.push({ kind: "global", field: "wcls", length: c.vocabSize * c.dim });
  return slots;
}

/** Throws a RangeError naming `where` unless `version` is 0 or 1. */
function checkVersion(version: unknown, where: string): void {
  if (version !== 0 && version !== 1) throw new RangeError(`${where}: unsupported version ${describeValue(version)} (expected 0 or 1)`);
}

/**
 * The exact file size a (valid) config implies, as a bigint so that absurd
 * but positive headers cannot overflow.
 */
export function checkpointByteLength(c: ModelConfig, version: CheckpointVersion = 0): bigint {
  checkVersion(version, "checkpointByteLength");
  // Any positive integers (an absurd header still gets its exact size), but integers: BigInt(undefined) or BigInt(1.5) threw a raw error.
  const problems = configProblems(c);
  if (problems.length > 0) throw new (isPlainObject(c) ? RangeError : TypeError)(`checkpointByteLength: ${problems.join("; ")}`);
  const B = BigInt;
  const dim = B(c.dim);
  const kv = (B(c.dim) * B(c.nKvHeads)) / B(c.nHeads);
  const perLayer = 2n * dim + 2n * dim * dim + 2n * kv * dim + 3n * B(c.hiddenDim) * dim;
  let floats = B(c.vocabSize) * dim * (c.sharedClassifier ? 1n : 2n) + B(c.nLayers) * perLayer + dim;
  if (version === 0) floats += B(c.seqLen) * (dim / B(c.nHeads));
  return B(version === 0 ? V0_HEADER_BYTES : V1_HEADER_BYTES) + 4n * floats;
}

function describeHeader(c: ModelConfig): string {
  return `dim ${c.dim}, hidden_dim ${c.hiddenDim}, n_layers ${c.nLayers}, n_heads ${c.nHeads}, ` + `n_kv_heads ${c.nKvHeads}, vocab_size ${c.vocabSize} (${c.sharedClassifier ? "shared" : "separate"} classifier), ` + `seq_len ${c.seqLen}`;
}

function makeConfig(h: Int32Array | number[], shared: boolean): ModelConfig {
  return {
    dim: h[0],
    hiddenDim: h[1],
    nLayers: h[2],
    nHeads: h[3],
    nKvHeads: h[4],
    vocabSize: h[5],
    seqLen: h[6],
    sharedClassifier: shared,
    normEps: LLAMA2C_NORM_EPS,
    ropeTheta: LLAMA2C_ROPE_THETA,
  };
}

/**
 * The legacy v0 RoPE tables as llama2.c's exporter writes them: first the
 * cos table [seqLen, headSize/2], then the sin table, with
 * angle = pos * theta^(-2i/headSize), every step rounded to float32.
 */
export function legacyRopeTables(c: ModelConfig): Float32Array {
  validateConfig(c, "legacyRopeTables");
  const hs = headSize(c);
  const half = hs / 2;
  const f = Math.fround;
  const out = new Float32Array(c.seqLen * hs);
  const sinBase = c.seqLen * half;
  for (let i = 0; i < half; i++) {
    const freq = f(1 / f(Math.pow(c.ropeTheta, f((2 * i) / hs))));
    for (let pos = 0; pos < c.seqLen; pos++) {
      const angle = f(pos * freq);
      out[pos * half + i] = Math.cos(angle);
      out[sinBase + pos * half + i] = Math.sin(angle);
    }
  }
  return out;
}

/** Float32 values starting at a 4-aligned byte offset of little-endian data. */
function floatsAt(bytes: Uint8Array, offset: number, count: number): Float32Array {
  if (LITTLE_ENDIAN_HOST) return new Float32Array(bytes.buffer, bytes.byteOffset + offset, count);
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, count * 4);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}

/**
 * The config and version of a checkpoint from its first bytes (`head`: at
 * least the 256-byte v1 header, or the whole file if shorter) and the
 * file's size `n`, validated, and checked against the size, before the
 * rest of the file is read.
 */
function checkpointHeader(head: Uint8Array, n: number, name: string): { config: ModelConfig; version: CheckpointVersion } {
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);

  let version: CheckpointVersion = 0;
  let config: ModelConfig;
  if (n >= 4 && dv.getUint32(0, true) === AK42_MAGIC) {
    if (n < 8) throw new FileFormatError(name, `file is ${n} bytes: it starts with the "ak42" magic but ends before the version number (truncated)`);
    const v = dv.getInt32(4, true);
    if (v === 2) {
      throw new FileFormatError(name, `"ak42" checkpoint version 2 (int8-quantized, Q8_0) is not supported; expected version 1 (float32) or a legacy v0 file`);
    }
    if (v !== 1) throw new FileFormatError(name, `unknown "ak42" checkpoint version ${v}; supported: version 1 (float32) and legacy v0 files`);
    version = 1;
    if (n < V1_HEADER_BYTES) {
      throw new FileFormatError(name, `file is ${n} bytes, shorter than the ${V1_HEADER_BYTES}-byte "ak42" version 1 header (truncated)`);
    }
    const h: number[] = [];
    for (let i = 0; i < 7; i++) h.push(dv.getInt32(8 + 4 * i, true));
    const flag = dv.getUint8(36);
    if (flag !== 0 && flag !== 1) throw new FileFormatError(name, `shared_classifier flag must be 0 or 1, found ${flag}`);
    // llama2.c's export writes zeros here: other bytes mean a damaged or foreign header.
    const nonZero = head.subarray(37, V1_HEADER_BYTES).findIndex((b) => b !== 0);
    if (nonZero >= 0) throw new FileFormatError(name, `"ak42" header bytes 37..${V1_HEADER_BYTES - 1} must be zero padding, found byte ${37 + nonZero} = ${head[37 + nonZero]}`);
    config = makeConfig(h, flag === 1);
  } else {
    if (n < V0_HEADER_BYTES) {
      throw new FileFormatError(name, `file is ${n} bytes, shorter than the ${V0_HEADER_BYTES}-byte llama2.c checkpoint header (truncated)`);
    }
    const h: number[] = [];
    for (let i = 0; i < 7; i++) h.push(dv.getInt32(4 * i, true));
    const shared = h[5] > 0;
    h[5] = Math.abs(h[5]);
    config = makeConfig(h, shared);
  }

  const problems = configProblems(config);
  if (problems.length > 0) {
    throw new FileFormatError(name, `invalid ${version === 0 ? "v0" : "v1"} header (${describeHeader(config)}): ${problems.join("; ")}`);
  }
  const expected = checkpointByteLength(config, version);
  if (BigInt(n) !== expected) {
    const how = BigInt(n) < expected ? "truncated or wrong header" : `${BigInt(n) - expected} bytes too many`;
    throw new FileFormatError(name, `file is ${n} bytes but the ${version === 0 ? "v0" : "v1"} header (${describeHeader(config)}) requires ${expected} bytes (${how})`);
  }

  return { config, version };
}

/** Whether a file of `size` bytes starting with `head` (at least the 256-byte v1 header, or the whole file) is a llama2.c checkpoint by its header and size. */
export function isCheckpointHeader(head: Uint8Array, size: number): boolean {
  try {
    checkpointHeader(head, size, "file");
    return true;
  } catch {
    return false;
  }
}

/**
 * Parses a llama2.c checkpoint (v0 legacy or v1 "ak42"). `name` (usually the
 * path) starts every error message. Throws FileFormatError for truncated
 * files, absurd headers, size mismatches and unsupported versions.
 */
export function parseCheckpoint(bytes: Uint8Array, name: string): Checkpoint {
  checkBytesArgument(bytes, name, "parseCheckpoint");
  if (bytes.byteOffset % 4 !== 0) bytes = new Uint8Array(bytes); // an aligned copy (Buffer.slice would not copy)
  const { config, version } = checkpointHeader(bytes, bytes.byteLength, name);

  let offset = version === 0 ? V0_HEADER_BYTES : V1_HEADER_BYTES;
  const layers: Partial<LayerWeights>[] = Array.from({ length: config.nLayers }, () => ({}));
  const globals: Partial<ModelWeights> = {};
  for (const slot of layout(config, version)) {
    // The legacy RoPE tables are skipped: the forward pass computes its angles.
    if (slot.kind === "layer") layers[slot.layer][slot.field] = floatsAt(bytes, offset, slot.length);
    else if (slot.kind === "global") globals[slot.field] = floatsAt(bytes, offset, slot.length);
    offset += slot.length * 4;
  }
  const tokenEmbedding = globals.tokenEmbedding!;
  const weights: ModelWeights = {
    tokenEmbedding,
    layers: layers as LayerWeights[],
    rmsFinal: globals.rmsFinal!,
    wcls: config.sharedClassifier ? tokenEmbedding : globals.wcls!,
  };
  return { config, weights };
}

/** One tensor of a checkpoint file, as readCheckpointInto names it: a global one or a layer's. */
export type CheckpointTensor = { kind: "global"; field: "tokenEmbedding" | "rmsFinal" | "wcls" } | { kind: "layer"; field: LayerField; layer: number };

/** True where readCheckpointInto can read a file's floats as they are (a little-endian host). */
export const CHECKPOINT_READS_IN_PLACE = LITTLE_ENDIAN_HOST;

/**
 * Reads a llama2.c checkpoint file's weights straight into memory the caller
 * provides, with no copy of the file on the host: for each tensor in file
 * order, `into(tensor, length)` returns a Float32Array of `length` floats
 * (e.g. a view of a backend buffer, backend.hostView), which the file's
 * floats fill, then are checked finite. A shared classifier is not asked
 * for (it is the token embedding). Returns the config. The header, size and
 * finiteness checks and their errors are readCheckpoint's; a little-endian
 * host only (CHECKPOINT_READS_IN_PLACE).
 */
export function readCheckpointInto(path: string, into: (tensor: CheckpointTensor, length: number) => Float32Array): ModelConfig {
  checkPath(path, "readCheckpointInto");
  if (!LITTLE_ENDIAN_HOST) throw new Error("readCheckpointInto: this host is big-endian; use readCheckpoint, which converts the floats");
  return readFileInto(path, "a llama2.c checkpoint", (read, size) => {
    const head = new Uint8Array(Math.min(size, V1_HEADER_BYTES));
    read(head, 0);
    const { config, version } = checkpointHeader(head, size, path);
    let offset = version === 0 ? V0_HEADER_BYTES : V1_HEADER_BYTES;
    for (const slot of layout(config, version)) {
      if (slot.kind !== "rope") {
        const tensor: CheckpointTensor = slot.kind === "layer" ? { kind: "layer", field: slot.field, layer: slot.layer } : { kind: "global", field: slot.field };
        const dst = into(tensor, slot.length);
        if (!(dst instanceof Float32Array) || dst.length !== slot.length) throw new TypeError(`readCheckpointInto: into must return a Float32Array of ${slot.length} floats for ${slotLabel(slot)}, got ${describeValue(dst)}`);
        read(new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength), offset);
        checkFinite(dst, slot, path);
      }
      offset += slot.length * 4;
    }
    return config;
  });
}

/** The config of a llama2.c checkpoint file from its header alone, checked against the file's size as readCheckpoint checks it. */
export function readCheckpointConfig(path: string): ModelConfig {
  checkPath(path, "readCheckpointConfig");
  const what = "a llama2.c checkpoint";
  const { bytes: head, size } = readFilePrefix(path, what, V1_HEADER_BYTES);
  const config = checkpointHeader(head, size, path).config;
  // A file the loaders would refuse is refused here, before a caller makes room for its weights.
  checkSize(path, what, size);
  return config;
}

/** Reads a llama2.c checkpoint file synchronously (see parseCheckpoint). */
export function readCheckpoint(path: string): Checkpoint {
  checkPath(path, "readCheckpoint");
  // Header first: a file whose size the header contradicts is refused without being read.
  const what = "a llama2.c checkpoint";
  const { bytes: head, size } = readFilePrefix(path, what, V1_HEADER_BYTES);
  checkpointHeader(head, size, path);
  const ckpt = parseCheckpoint(readFileBytes(path, what), path);
  checkFiniteWeights(ckpt, path);
  return ckpt;
}

/**
 * Refuses a model whose weights hold NaN or Inf (FileFormatError naming the
 * file, the tensor and the index): such a model would print text and then
 * fail mid-run, or sample garbage. One pass over the floats.
 */
export function checkFiniteWeights(ckpt: Checkpoint, name: string): void {
  for (const slot of layout(ckpt.config, 1)) {
    const a = slotArray(ckpt.weights, slot);
    if (a !== undefined) checkFinite(a, slot, name);
  }
}

/** checkFiniteWeights for one tensor as readCheckpointInto and readHfCheckpointInto name it. */
export function checkFiniteTensor(a: Float32Array, tensor: CheckpointTensor, name: string): void {
  checkFinite(a, { ...tensor, length: a.length }, name);
}

/** checkFiniteWeights for one tensor. */
function checkFinite(a: Float32Array, slot: Slot, name: string): void {
  for (let i = 0; i < a.length; i++) {
    // x - x is 0 for a finite x, NaN for NaN and +-Inf: one subtraction per float.
    if (a[i] - a[i] !== 0) throw new FileFormatError(name, `tensor ${slotLabel(slot)} holds ${a[i]} at index ${i}; a model's weights must be finite numbers`);
  }
}

function slotArray(w: ModelWeights, slot: Slot): Float32Array | undefined {
  if (slot.kind === "layer") return w.layers[slot.layer]?.[slot.field];
  if (slot.kind === "global") return w[slot.field];
  return undefined;
}

function slotLabel(slot: Slot): string {
  return slot.kind === "layer" ? `layer ${slot.layer} ${slot.field}` : slot.kind === "global" ? slot.field : "RoPE tables";
}

/**
 * Serializes a checkpoint as llama2.c v0 (default; with legacy RoPE tables,
 * a negative vocab_size when the classifier is separate) or v1 "ak42". When
 * the classifier is shared only tokenEmbedding is written. Throws (plain
 * Error) if the config is invalid or an array has the wrong length.
 */
export function serializeCheckpoint(ckpt: Checkpoint, version: CheckpointVersion = 0): Uint8Array {
  return serialize(ckpt, version, "serializeCheckpoint");
}

/** serializeCheckpoint, its errors starting with `where` (the function the caller called). */
function serialize(ckpt: Checkpoint, version: CheckpointVersion, where: string): Uint8Array {
  checkCheckpointArgument(ckpt, where);
  const c = ckpt.config;
  checkVersion(version, where);
  validateConfig(c, where);
  const w = ckpt.weights;
  if (w.layers.length !== c.nLayers) {
    throw new Error(`${where}: config has ${c.nLayers} layers but the weights have ${w.layers.length}`);
  }
  const total = checkpointByteLength(c, version);
  if (total > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`${where}: ${total} bytes is too large`);
  const out = new Uint8Array(Number(total));
  const dv = new DataView(out.buffer);
  const params = [c.dim, c.hiddenDim, c.nLayers, c.nHeads, c.nKvHeads, c.vocabSize, c.seqLen];
  let offset: number;
  if (version === 0) {
    params[5] = c.sharedClassifier ? c.vocabSize : -c.vocabSize;
    params.forEach((p, i) => dv.setInt32(4 * i, p, true));
    offset = V0_HEADER_BYTES;
  } else {
    dv.setUint32(0, AK42_MAGIC, true);
    dv.setInt32(4, 1, true);
    params.forEach((p, i) => dv.setInt32(8 + 4 * i, p, true));
    dv.setUint8(36, c.sharedClassifier ? 1 : 0);
    offset = V1_HEADER_BYTES;
  }
  for (const slot of layout(c, version)) {
    let arr = slotArray(w, slot);
    // llama2.c ignores the legacy RoPE tables; we write freshly computed ones.
    if (slot.kind === "rope") arr = legacyRopeTables(c);
    if (!arr || arr.length !== slot.length) {
      throw new Error(`${where}: ${slotLabel(slot)} has ${arr ? arr.length : "no"} floats, expected ${slot.length}`);
    }
    if (LITTLE_ENDIAN_HOST) new Float32Array(out.buffer, offset, slot.length).set(arr);
    else for (let i = 0; i < slot.length; i++) dv.setFloat32(offset + 4 * i, arr[i], true);
    offset += slot.length * 4;
  }
  return out;
}

/**
 * Writes a checkpoint file atomically: the bytes go to a unique temporary
 * file next to `path` (writeBytesAtomically), which is then renamed over it.
 */
export function writeCheckpoint(path: string, ckpt: Checkpoint, version: CheckpointVersion = 0): void {
  checkPath(path, "writeCheckpoint");
  const bytes = serialize(ckpt, version, "writeCheckpoint");
  refuseNonFiniteWeights(ckpt, "writeCheckpoint", path);
  writeBytesAtomically(path, bytes);
}

/**
 * Throws a TypeError naming `where` unless `ckpt` is shaped as a Checkpoint
 * ({ config, weights: { tokenEmbedding, layers, rmsFinal, wcls } }): the
 * sizes are checked by the caller against the config.
 */
export function checkCheckpointArgument(ckpt: unknown, where: string): asserts ckpt is Checkpoint {
  const c = ckpt as Partial<Checkpoint> | null;
  if (c === null || typeof c !== "object" || c.config === null || typeof c.config !== "object" || c.weights === null || typeof c.weights !== "object" || !Array.isArray(c.weights.layers)) {
    throw new TypeError(`${where}: the checkpoint must be an object { config, weights } with weights.layers an array (as readModel or randomCheckpoint return), got ${describeValue(ckpt)}`);
  }
}

/**
 * Refuses to write a model whose weights hold NaN or Inf: readCheckpoint and
 * readHfCheckpoint would refuse the file (checkFiniteWeights), so it is
 * never written. A RangeError naming the function, the path, the tensor and
 * the index.
 */
export function refuseNonFiniteWeights(ckpt: Checkpoint, where: string, path: string): void {
  try {
    checkFiniteWeights(ckpt, path);
  } catch (err) {
    if (err instanceof FileFormatError) throw new RangeError(`${where}: ${quotePath(path)} not written: ${err.problem} (a file holding them would be refused when read)`);
    throw err;
  }
}
