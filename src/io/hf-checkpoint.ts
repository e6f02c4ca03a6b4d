/**
 * Hugging Face Llama checkpoints: a folder with config.json and either
 * model.safetensors or shards listed by model.safetensors.index.json
 * (`{"weight_map": {tensor: file}}`); where both are present and the
 * index does not list model.safetensors, model.safetensors is read, as
 * transformers does.
 *
 * Tensor names (Linear weights are [out, in], as ours):
 * `model.embed_tokens.weight`, per layer i `model.layers.i.input_layernorm`,
 * `.self_attn.{q,k,v,o}_proj`, `.post_attention_layernorm`,
 * `.mlp.{gate,up,down}_proj` (our w1, w3, w2), `model.norm.weight`, and
 * `lm_head.weight` unless tie_word_embeddings.
 *
 * RoPE: llama2.c rotates interleaved pairs (2i, 2i+1) of each head; HF
 * rotates the halves (i, i + headSize/2), and its conversion script permutes
 * the rows of q_proj and k_proj so that the two agree. We undo that
 * permutation on loading and apply it on writing (a pure reordering, so the
 * logits are bit-identical to the llama2.c twin's).
 *
 * Loading is header-first and streamed: each file's safetensors header is
 * read and checked, every tensor's name, dtype and shape are checked
 * against the config, and only then is each tensor's byte range read into
 * its float32 array (F32, F16 and BF16 are accepted).
 */
import { closeSync, existsSync, readSync, statSync, fstatSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { boundedConfigProblems, headSize, validateConfig, type ModelConfig } from "../model/config.js";
import { checkPositiveInteger, describeValue } from "../util/checks.js";
import { checkCheckpoint, linearShape, type Checkpoint, type LayerWeights, type LinearName } from "../model/weights.js";
import { isPlainObject } from "../util/options.js";
import { makeFolders, writeBytesAtomically, writeFolderAtomically } from "./atomic-write.js";
import { checkCheckpointArgument, checkFiniteTensor, refuseNonFiniteWeights, type CheckpointTensor } from "./checkpoint.js";
import { checkPath, entryExists, FileFormatError, openForReading, quote, readJsonFile } from "./errors.js";
import { modelConfigFromHf, modelConfigToHf } from "./hf-config.js";
import { checkHeaderLength, decodeTensorBytes, parseSafetensorsHeader, serializeSafetensors, type SafeTensor, type SafetensorsEntry } from "./safetensors.js";

export const HF_CONFIG = "config.json";
export const HF_WEIGHTS = "model.safetensors";
export const HF_INDEX = "model.safetensors.index.json";

/** HF module path of each of our linear layers inside `model.layers.{i}.`. */
export const HF_LINEAR_MODULES: Readonly<Record<LinearName, string>> = {
  wq: "self_attn.q_proj",
  wk: "self_attn.k_proj",
  wv: "self_attn.v_proj",
  wo: "self_attn.o_proj",
  w1: "mlp.gate_proj",
  w2: "mlp.down_proj",
  w3: "mlp.up_proj",
};

const LINEARS = Object.keys(HF_LINEAR_MODULES) as LinearName[];

/** Every tensor of an HF Llama checkpoint with its shape, in a fixed order. */
export function hfTensorShapes(c: ModelConfig): Map<string, number[]> {
  // Bounded: its loop runs over the layers before any tensor is read (2^31 - 1 layers held the thread).
  const problems = boundedConfigProblems(c);
  if (problems.length > 0) throw new (isPlainObject(c) ? RangeError : TypeError)(`hfTensorShapes: ${problems.join("; ")}`);
  const m = new Map<string, number[]>();
  m.set("model.embed_tokens.weight", [c.vocabSize, c.dim]);
  for (let l = 0; l < c.nLayers; l++) {
    const p = `model.layers.${l}.`;
    m.set(`${p}input_layernorm.weight`, [c.dim]);
    m.set(`${p}post_attention_layernorm.weight`, [c.dim]);
    for (const name of LINEARS) m.set(`${p}${HF_LINEAR_MODULES[name]}.weight`, linearShape(c, name));
  }
  m.set("model.norm.weight", [c.dim]);
  if (!c.sharedClassifier) m.set("lm_head.weight", [c.vocabSize, c.dim]);
  return m;
}

/**
 * llama2.c row order -> HF row order for q_proj (heads = nHeads) or k_proj
 * (heads = nKvHeads): row h*hs + 2i + b goes to h*hs + b*hs/2 + i.
 */
export function permuteRowsToHf(w: Float32Array, heads: number, hs: number, cols: number): Float32Array {
  return permuteRows(w, heads, hs, cols, true);
}

/** The inverse of permuteRowsToHf. */
export function permuteRowsFromHf(w: Float32Array, heads: number, hs: number, cols: number): Float32Array {
  return permuteRows(w, heads, hs, cols, false);
}

function permuteRows(w: Float32Array, heads: number, hs: number, cols: number, toHf: boolean, out?: Float32Array): Float32Array {
  const where = toHf ? "permuteRowsToHf" : "permuteRowsFromHf";
  if (!(w instanceof Float32Array)) throw new TypeError(`${where}: w must be a Float32Array of heads x hs x cols floats, got ${describeValue(w)}`);
  checkPositiveInteger(heads, where, "heads");
  // An odd head size has no RoPE pairs: its last row was silently dropped.
  if (typeof hs !== "number" || !Number.isInteger(hs) || hs < 2 || hs % 2 !== 0) throw new RangeError(`${where}: hs (the head size) must be an even positive integer, got ${describeValue(hs)}`);
  checkPositiveInteger(cols, where, "cols");
  if (w.length !== heads * hs * cols) throw new Error(`permuteRows: ${w.length} floats, expected ${heads} x ${hs} x ${cols}`);
  out ??= new Float32Array(w.length);
  const half = hs / 2;
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let b = 0; b < 2; b++) {
        const interleaved = h * hs + 2 * i + b;
        const split = h * hs + b * half + i;
        const [from, to] = toHf ? [interleaved, split] : [split, interleaved];
        out.set(w.subarray(from * cols, (from + 1) * cols), to * cols);
      }
    }
  }
  return out;
}

/** True when `path` is a directory (a Hugging Face model folder, for the loaders that take both). */
export function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** An open safetensors file whose header has been read and checked. */
interface OpenFile {
  path: string;
  fd: number;
  dataStart: number;
  entries: Map<string, SafetensorsEntry>;
}

function openSafetensorsFile(path: string): OpenFile {
  const fd = openForReading(path, "a safetensors file of the model");
  try {
    const size = fstatSync(fd).size;
    if (size < 8) throw new FileFormatError(path, `file is ${size} bytes, shorter than the 8-byte safetensors header length (truncated or not a safetensors file)`);
    const lengthBytes = new Uint8Array(8);
    readSync(fd, lengthBytes, 0, 8, 0);
    const header = new Uint8Array(checkHeaderLength(new DataView(lengthBytes.buffer).getBigUint64(0, true), size, path));
    readExactly(fd, header, 8, path);
    const dataStart = 8 + header.length;
    const parsed = parseSafetensorsHeader(header, size - dataStart, path);
    return { path, fd, dataStart, entries: new Map(parsed.entries.map((e) => [e.name, e])) };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

function readExactly(fd: number, into: Uint8Array, position: number, path: string): void {
  let done = 0;
  while (done < into.length) {
    const n = readSync(fd, into, done, into.length - done, position + done);
    if (n === 0) throw new FileFormatError(path, `file ended while reading bytes [${position}, ${position + into.length}) (truncated)`);
    done += n;
  }
}

/** Bytes of F16/BF16 (or big-endian F32) read and decoded at a time. */
const DECODE_PIECE_BYTES = 1 << 20;

/** One tensor's float32 values, read from its byte range only into `out` (its element count: the header checks made it so). */
function readTensorInto(file: OpenFile, e: SafetensorsEntry, out: Float32Array): void {
  if (e.dtype !== "F32" && e.dtype !== "F16" && e.dtype !== "BF16") {
    throw new FileFormatError(file.path, `tensor ${JSON.stringify(e.name)} has dtype ${e.dtype}; expected F32, F16 or BF16`);
  }
  const size = e.dtype === "F32" ? 4 : 2;
  if (e.dtype === "F32" && LITTLE_ENDIAN_HOST) {
    // straight into the float array: no second copy of a large tensor
    readExactly(file.fd, new Uint8Array(out.buffer, out.byteOffset, out.byteLength), file.dataStart + e.begin, file.path);
    return;
  }
  // Halves (or a big-endian host) decoded a piece at a time: no copy of the whole tensor's bytes.
  if (e.end === e.begin) return;
  const bytes = new Uint8Array(Math.min(DECODE_PIECE_BYTES, e.end - e.begin));
  for (let at = e.begin; at < e.end; at += bytes.length) {
    const piece = bytes.subarray(0, Math.min(bytes.length, e.end - at));
    readExactly(file.fd, piece, file.dataStart + at, file.path);
    out.set(decodeTensorBytes(e.dtype, piece, 0, piece.length / size) as Float32Array, (at - e.begin) / size);
  }
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Tensors that HF checkpoints may carry and that hold nothing we need. */
const IGNORED = /^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/;

/** A Hugging Face model folder's config, from its config.json alone (its errors are readHfCheckpoint's; readHfConfigChecked also checks the tensors' headers). */
export function readHfConfig(dir: string): ModelConfig {
  checkPath(dir, "readHfConfig", "dir");
  if (!isDirectory(dir)) {
    if (!existsSync(dir)) throw new FileFormatError(dir, `does not exist (expected a Hugging Face model folder with config.json)`);
    throw new FileFormatError(dir, `is not a directory (expected a Hugging Face model folder with config.json)`);
  }
  const configPath = join(dir, HF_CONFIG);
  return modelConfigFromHf(readJsonFile(configPath, "a Hugging Face config.json"), configPath);
}

/**
 * Reads a Hugging Face Llama checkpoint folder (see the module comment).
 * Throws FileFormatError naming the offending file for a missing or
 * unsupported config, missing, unexpected or mis-shaped tensors, and
 * malformed safetensors files.
 */
export function readHfCheckpoint(dir: string): Checkpoint {
  checkPath(dir, "readHfCheckpoint", "dir");
  const globals: Partial<Record<"tokenEmbedding" | "rmsFinal" | "wcls", Float32Array>> = {};
  const layers: Partial<LayerWeights>[] = [];
  const config = readHfCheckpointInto(dir, (tensor, length) => {
    const a = new Float32Array(length);
    if (tensor.kind === "global") globals[tensor.field] = a;
    else (layers[tensor.layer] ??= {})[tensor.field] = a;
    return a;
  });
  const tokenEmbedding = globals.tokenEmbedding!;
  return { config, weights: { tokenEmbedding, layers: layers as LayerWeights[], rmsFinal: globals.rmsFinal!, wcls: config.sharedClassifier ? tokenEmbedding : globals.wcls! } };
}

/** A folder's safetensors files, open, and where each expected tensor lies in them (headers checked). */
interface HfTensors {
  files: Map<string, OpenFile>;
  where: Map<string, { file: OpenFile; entry: SafetensorsEntry }>;
}

/**
 * Opens the safetensors files of the folder `dir` whose config.json gave
 * `config` and checks their headers before any weight is read: every
 * expected tensor present, where the index (if any) says, with the shape
 * the config gives, and no other tensor. The caller closes the files
 * (closeHfTensors); on an error they are closed here.
 */
function openHfTensors(dir: string, config: ModelConfig): HfTensors {
  const expected = hfTensorShapes(config);
  // Which file holds which tensor. transformers' from_pretrained takes a single model.safetensors before
  // an index: where both are present, the index is read only when it lists model.safetensors among its
  // files (a set of shards that includes it); otherwise model.safetensors is, as there.
  const indexPath = join(dir, HF_INDEX);
  const single = entryExists(join(dir, HF_WEIGHTS));
  const fileOf = new Map<string, string>();
  const index = entryExists(indexPath) ? readWeightMap(indexPath) : undefined;
  if (index !== undefined && (!single || [...index.values()].includes(HF_WEIGHTS))) {
    for (const [tensor, file] of index) {
      // Only the model's own tensors: an entry for any other would have a file opened for nothing.
      if (IGNORED.test(tensor) || (tensor === "lm_head.weight" && config.sharedClassifier)) continue;
      if (!expected.has(tensor)) throw new FileFormatError(indexPath, `weight_map lists tensor ${JSON.stringify(tensor)}, which a LlamaForCausalLM checkpoint of this ${HF_CONFIG} does not have`);
      fileOf.set(tensor, file);
    }
  } else if (single) {
    for (const name of expected.keys()) fileOf.set(name, HF_WEIGHTS);
  } else {
    throw new FileFormatError(dir, `has neither ${HF_WEIGHTS} nor ${HF_INDEX} (only safetensors weights are supported)`);
  }

  const files = new Map<string, OpenFile>();
  try {
    const fileNames = [...new Set(fileOf.values())].sort();
    for (const f of fileNames) files.set(f, openSafetensorsFile(join(dir, f)));

    // Header-first checks: every file's tensors are expected, where the index says, with the right shape.
    const where = new Map<string, { file: OpenFile; entry: SafetensorsEntry }>();
    for (const [fname, file] of files) {
      for (const [name, entry] of file.entries) {
        if (IGNORED.test(name)) continue;
        if (name === "lm_head.weight" && config.sharedClassifier) continue; // tied: HF ignores a stored copy too
        const shape = expected.get(name);
        if (!shape) {
          const hint = name.endsWith(".bias") ? " (biases are not supported)" : "";
          throw new FileFormatError(file.path, `unexpected tensor ${JSON.stringify(name)} for a LlamaForCausalLM checkpoint${hint}`);
        }
        const listed = fileOf.get(name);
        if (listed !== fname) {
          throw new FileFormatError(file.path, `tensor ${JSON.stringify(name)} is here but ${HF_INDEX} places it in ${JSON.stringify(listed ?? "no file")}`);
        }
        if (entry.dtype !== "F32" && entry.dtype !== "F16" && entry.dtype !== "BF16") {
          throw new FileFormatError(file.path, `tensor ${JSON.stringify(name)} has dtype ${entry.dtype}; expected F32, F16 or BF16`);
        }
        if (entry.shape.length !== shape.length || entry.shape.some((d, i) => d !== shape[i])) {
          throw new FileFormatError(file.path, `tensor ${JSON.stringify(name)} has shape [${entry.shape.join(", ")}], expected [${shape.join(", ")}] from ${HF_CONFIG}`);
        }
        where.set(name, { file, entry });
      }
    }
    for (const name of expected.keys()) {
      if (!where.has(name)) {
        const file = fileOf.get(name);
        throw new FileFormatError(file ? join(dir, file) : dir, `missing tensor ${JSON.stringify(name)}`);
      }
    }

    return { files, where };
  } catch (err) {
    closeHfTensors({ files, where: new Map() });
    throw err;
  }
}

function closeHfTensors(t: HfTensors): void {
  for (const f of t.files.values()) closeSync(f.fd);
}

/**
 * A Hugging Face model folder's config, from config.json, checked against
 * its safetensors headers (openHfTensors' checks; no weight read): what a
 * caller sizes memory from before reading the weights.
 */
export function readHfConfigChecked(dir: string): ModelConfig {
  const config = readHfConfig(dir);
  closeHfTensors(openHfTensors(dir, config));
  return config;
}

/**
 * Reads a Hugging Face Llama checkpoint folder's weights straight into
 * memory the caller provides, as readCheckpointInto does for a llama2.c
 * file: for each tensor (in the forward pass's order), `into(tensor,
 * length)` returns a Float32Array of `length` floats, which the tensor's
 * values fill (F16/BF16 decoded a piece at a time; q_proj and k_proj
 * permuted back through a scratch of their size), then are checked finite.
 * A tied classifier is not asked for. Returns the config. The checks and
 * errors are readHfCheckpoint's, every header checked before any weight is
 * read.
 */
export function readHfCheckpointInto(dir: string, into: (tensor: CheckpointTensor, length: number) => Float32Array): ModelConfig {
  checkPath(dir, "readHfCheckpointInto", "dir");
  const config = readHfConfig(dir);
  const expected = hfTensorShapes(config);
  const tensors = openHfTensors(dir, config);
  const { where } = tensors;
  try {
    // Streamed reading, one tensor at a time, each into the caller's memory.
    const hs = headSize(config);
    const read = (name: string, tensor: CheckpointTensor, permuteHeads?: number): void => {
      const { file, entry } = where.get(name)!;
      const length = expected.get(name)!.reduce((a, b) => a * b, 1);
      const dst = into(tensor, length);
      if (!(dst instanceof Float32Array) || dst.length !== length) throw new TypeError(`readHfCheckpointInto: into must return a Float32Array of ${length} floats for ${name}, got ${describeValue(dst)}`);
      if (permuteHeads === undefined) readTensorInto(file, entry, dst);
      else {
        // HF's q/k row order back to llama2.c's (a pure reordering), through a scratch of the tensor's size.
        const hf = new Float32Array(length);
        readTensorInto(file, entry, hf);
        permuteRows(hf, permuteHeads, hs, config.dim, false, dst);
      }
      checkFiniteTensor(dst, tensor, dir);
    };
    read("model.embed_tokens.weight", { kind: "global", field: "tokenEmbedding" });
    for (let l = 0; l < config.nLayers; l++) {
      const p = `model.layers.${l}.`;
      const layer = (field: keyof LayerWeights): CheckpointTensor => ({ kind: "layer", field, layer: l });
      const linear = (name: LinearName, permuteHeads?: number): void => read(`${p}${HF_LINEAR_MODULES[name]}.weight`, layer(name), permuteHeads);
      read(`${p}input_layernorm.weight`, layer("rmsAtt"));
      linear("wq", config.nHeads);
      linear("wk", config.nKvHeads);
      linear("wv");
      linear("wo");
      read(`${p}post_attention_layernorm.weight`, layer("rmsFfn"));
      linear("w1");
      linear("w2");
      linear("w3");
    }
    read("model.norm.weight", { kind: "global", field: "rmsFinal" });
    if (!config.sharedClassifier) read("lm_head.weight", { kind: "global", field: "wcls" });
    return config;
  } finally {
    closeHfTensors(tensors);
  }
}

/** The HF tensors of a checkpoint (q/k permuted), as F32 safetensors entries. */
export function hfTensors(ckpt: Checkpoint): Map<string, SafeTensor> {
  checkCheckpoint(ckpt, "hfTensors");
  const c = ckpt.config;
  const w = ckpt.weights;
  const hs = headSize(c);
  const shapes = hfTensorShapes(c);
  const data = new Map<string, Float32Array>();
  data.set("model.embed_tokens.weight", w.tokenEmbedding);
  w.layers.forEach((lw, l) => {
    const p = `model.layers.${l}.`;
    data.set(`${p}input_layernorm.weight`, lw.rmsAtt);
    data.set(`${p}post_attention_layernorm.weight`, lw.rmsFfn);
    for (const name of LINEARS) {
      let a = lw[name];
      if (name === "wq") a = permuteRowsToHf(a, c.nHeads, hs, c.dim);
      if (name === "wk") a = permuteRowsToHf(a, c.nKvHeads, hs, c.dim);
      data.set(`${p}${HF_LINEAR_MODULES[name]}.weight`, a);
    }
  });
  data.set("model.norm.weight", w.rmsFinal);
  if (!c.sharedClassifier) data.set("lm_head.weight", w.wcls);
  const out = new Map<string, SafeTensor>();
  for (const [name, shape] of shapes) {
    const a = data.get(name);
    const n = shape.reduce((x, y) => x * y, 1);
    if (!a || a.length !== n) throw new Error(`hfTensors: ${name} has ${a ? a.length : "no"} floats, expected ${n}`);
    out.set(name, { dtype: "F32", shape, data: a });
  }
  return out;
}

export interface WriteHfOptions {
  /** Split the weights into shards of at most about this many bytes (with model.safetensors.index.json). Default: one file. */
  maxShardBytes?: number;
}

/** The checkpoint (shape and finite weights: readHfCheckpoint refuses others) and the options of a write, checked before anything is written. */
function checkHfArguments(ckpt: Checkpoint, options: WriteHfOptions, where: string, dir: string): void {
  checkCheckpointArgument(ckpt, where);
  if (!isPlainObject(options)) throw new TypeError(`${where}: options must be an object ({ maxShardBytes }), got ${describeValue(options)}`);
  for (const key of Object.keys(options)) if (key !== "maxShardBytes") throw new RangeError(`${where}: unknown option ${JSON.stringify(key)} (the one option is maxShardBytes)`);
  const max = options.maxShardBytes;
  if (max !== undefined && !(typeof max === "number" && Number.isSafeInteger(max) && max > 0)) throw new RangeError(`${where}: maxShardBytes must be a positive integer (bytes per shard), got ${describeValue(max)}`);
  validateConfig(ckpt.config, where);
  refuseNonFiniteWeights(ckpt, where, dir);
}

/** Whether a file name is one of a Hugging Face model folder's model files (config, weights, index, shards) that writeHfCheckpoint writes. */
export function isHfModelFile(name: string): boolean {
  return name === HF_CONFIG || name === HF_WEIGHTS || name === HF_INDEX || /^model-\d{5}-of-\d{5}\.safetensors$/.test(name);
}

/**
 * Writes a checkpoint as a Hugging Face Llama folder (F32 weights): its
 * parent is created if needed; the files are written into a temporary
 * folder first and then moved in (writeFolderAtomically), so a failure
 * leaves the folder as it was, and an existing folder ends up with exactly
 * the new model: the model files of an earlier one that this one does not
 * replace (say its shards and index, when the new one is a single file)
 * are removed; other files are kept. Returns the paths written.
 */
export function writeHfCheckpoint(dir: string, ckpt: Checkpoint, options: WriteHfOptions = {}): string[] {
  checkPath(dir, "writeHfCheckpoint", "dir");
  checkHfArguments(ckpt, options, "writeHfCheckpoint", dir);
  makeFolders(dirname(resolve(dir)));
  return writeFolderAtomically(dir, (tmp) => writeHfFiles(tmp, ckpt, options), isHfModelFile);
}

/** The weight_map of a safetensors index: tensor name to the file (a name in the same folder) that holds it. */
function readWeightMap(indexPath: string): Map<string, string> {
  const index = readJsonFile(indexPath, "a safetensors index with a weight_map");
  const map = (index as { weight_map?: unknown })?.weight_map;
  if (!isPlainObject(map)) {
    throw new FileFormatError(indexPath, `expected an object with "weight_map": {tensor name: file name}`);
  }
  const fileOf = new Map<string, string>();
  for (const [tensor, file] of Object.entries(map)) {
    // A name, not a path, and one a file system can hold (a 5000-character name would be echoed in every message
    // about it; a NUL byte is refused by the file system with an error of its own).
    if (typeof file !== "string" || file === "" || file === "." || file === ".." || file.length > 255 || /[/\\\0]/.test(file)) {
      throw new FileFormatError(indexPath, `weight_map entry ${quote(tensor)} must name a file in the folder, found ${quote(file)}`);
    }
    fileOf.set(tensor, file);
  }
  return fileOf;
}

/**
 * Writes a checkpoint's Hugging Face model files into an existing folder
 * (each atomically; nothing else in the folder is touched): the building
 * block of writeHfCheckpoint, for callers that add files of their own
 * (a tokenizer) to the same folder write. Returns the paths written.
 */
export function writeHfFiles(dir: string, ckpt: Checkpoint, options: WriteHfOptions = {}): string[] {
  checkHfArguments(ckpt, options, "writeHfFiles", dir);
  const tensors = hfTensors(ckpt);
  const written: string[] = [];
  const max = options.maxShardBytes;
  if (max === undefined) {
    writeBytesAtomically(join(dir, HF_WEIGHTS), serializeSafetensors(Object.fromEntries(tensors), { format: "pt" }));
    written.push(join(dir, HF_WEIGHTS));
  } else {
    const shards: [string, SafeTensor][][] = [[]];
    let bytes = 0;
    for (const entry of tensors) {
      const size = entry[1].data.byteLength;
      if (bytes > 0 && bytes + size > max) shards.push([]), (bytes = 0);
      shards[shards.length - 1].push(entry);
      bytes += size;
    }
    const n = shards.length;
    const pad = (i: number): string => String(i).padStart(5, "0");
    const weightMap: Record<string, string> = {};
    let total = 0;
    shards.forEach((shard, i) => {
      const file = `model-${pad(i + 1)}-of-${pad(n)}.safetensors`;
      for (const [name, t] of shard) (weightMap[name] = file), (total += t.data.byteLength);
      writeBytesAtomically(join(dir, file), serializeSafetensors(Object.fromEntries(shard), { format: "pt" }));
      written.push(join(dir, file));
    });
    const index = { metadata: { total_size: total }, weight_map: weightMap };
    writeBytesAtomically(join(dir, HF_INDEX), new TextEncoder().encode(JSON.stringify(index, null, 2) + "\n"));
    written.push(join(dir, HF_INDEX));
  }
  writeBytesAtomically(join(dir, HF_CONFIG), new TextEncoder().encode(JSON.stringify(modelConfigToHf(ckpt.config), null, 2) + "\n"));
  written.push(join(dir, HF_CONFIG));
  return written;
}
