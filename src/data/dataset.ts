/**
 * The distillation dataset file (spec/dataset.md): a header with the
 * generation settings as JSON, then one self-delimiting, CRC-checked record
 * per teacher completion holding its tokens and, for every sampled token,
 * the float32 bin [left, right) of the u that picked it. Records are only
 * ever appended, so an interrupted run leaves at most one torn record at the
 * end, which resuming truncates.
 *
 * How training draws a u inside a bin (drawU, betaSample) lives in src/sampling/u-in-bin.ts.
 */

import { closeSync, fstatSync, fsyncSync, ftruncateSync, openSync, readSync, statSync, writeSync } from "node:fs";
import { writeFailure } from "../io/atomic-write.js";
import { checkPath, FileFormatError, openForReading, quoteBytes } from "../io/errors.js";
import { DATASET_MAGIC, fileKindOf } from "../io/file-kind.js";
import type { ModelConfig } from "../model/config.js";
import { validateSamplingSettings } from "../sampling/processors.js";
import { describeValue } from "../util/checks.js";
import { checkOptionKeys, isPlainObject } from "../util/options.js";

/** The 8 bytes every dataset file starts with. */
export { DATASET_MAGIC };
/**
 * The version this build writes. Version 1 (whose metadata has no `backend`)
 * is still read: it trains as before, but cannot be resumed.
 */
export const DATASET_VERSION = 2;
/** The 4 bytes every record starts with. */
export const RECORD_MARKER = "PTPR";

const MAGIC_BYTES = new TextEncoder().encode(DATASET_MAGIC);
const MARKER_BYTES = new TextEncoder().encode(RECORD_MARKER);
/** magic (8), version (4), JSON length (4). */
const HEADER_FIXED = 16;
/** marker, index, promptLength, length: 4 uint32. */
const RECORD_HEAD = 16;
/** No header JSON is anywhere near this; a larger length is garbage, not a header. */
const MAX_META_BYTES = 1 << 20;

/** The sampling settings a dataset was drawn with (topK 0 and topP 1 mean off). */
export interface DatasetSampling {
  temperature: number;
  topK: number;
  topP: number;
}

/** Where the prompts came from: "bos" (every completion starts from BOS alone) or a prompt file's name. */
export interface DatasetPrompts {
  source: string;
  /** Number of prompts; the file holds count * samplesPerPrompt records. */
  count: number;
  /** promptsDigest of the prompt token arrays (tokenizer changes show up here). */
  sha256: string;
}

/** The header's JSON metadata: everything that determines the records' bytes. */
export interface DatasetMeta {
  /** teacherChecksum of the teacher checkpoint. */
  teacher: string;
  /**
   * Backend.description of the backend that sampled the records (e.g. "wasm
   * (relaxed SIMD)"): the teacher's logits, hence its samples, are bit-exact
   * per backend, build and weight type only (threads do not matter). Absent
   * in version 1 files, which did not record it.
   */
  backend?: string;
  vocabSize: number;
  seqLen: number;
  sampling: DatasetSampling;
  /** uint32 seed; record i's u's come from recordRng(seed, i). */
  seed: number;
  samplesPerPrompt: number;
  /** At most this many sampled tokens per record. */
  maxSteps: number;
  prompts: DatasetPrompts;
}

/** One completion. Prompt tokens have no bins; left/right have length tokens.length - promptLength. */
export interface DatasetRecord {
  promptLength: number;
  /** The prompt (BOS first), then the sampled tokens. */
  tokens: Int32Array;
  /** left[j], right[j]: the bin of tokens[promptLength + j] under the teacher's sampling distribution. */
  left: Float32Array;
  right: Float32Array;
}

export interface Dataset {
  meta: DatasetMeta;
  records: DatasetRecord[];
}

/** A resume whose requested metadata differs from the file's header. */
export class DatasetMismatchError extends FileFormatError {
  /** The differing fields, as dotted paths (e.g. "sampling.temperature"). */
  readonly fields: string[];

  constructor(path: string, diffs: { field: string; file: unknown; requested: unknown }[]) {
    const list = diffs.map((d) => `${d.field} (file: ${JSON.stringify(d.file)}, requested: ${JSON.stringify(d.requested)})`).join("; ");
    super(path, `was generated with different settings: ${list}; resume with the file's settings or write to another file`);
    this.name = "DatasetMismatchError";
    this.fields = diffs.map((d) => d.field);
  }
}

// ---------------------------------------------------------------------------
// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), as zip and PNG use.

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// ---------------------------------------------------------------------------
// Header.

/** The header bytes for `meta`: fixed fields, the JSON padded with spaces to a multiple of 4, its CRC. */
export function encodeHeader(meta: DatasetMeta): Uint8Array {
  const jsonBytes = new TextEncoder().encode(JSON.stringify(canonicalMeta(meta)));
  const padded = new Uint8Array(Math.ceil(jsonBytes.length / 4) * 4).fill(0x20);
  padded.set(jsonBytes);
  const out = new Uint8Array(HEADER_FIXED + padded.length + 4);
  const dv = new DataView(out.buffer);
  out.set(MAGIC_BYTES, 0);
  dv.setUint32(8, DATASET_VERSION, true);
  dv.setUint32(12, padded.length, true);
  out.set(padded, HEADER_FIXED);
  dv.setUint32(HEADER_FIXED + padded.length, crc32(out.subarray(0, HEADER_FIXED + padded.length)), true);
  return out;
}

/** The fields in their documented order, so equal metadata gives equal header bytes. */
function canonicalMeta(m: DatasetMeta): DatasetMeta {
  return {
    teacher: m.teacher,
    backend: m.backend,
    vocabSize: m.vocabSize,
    seqLen: m.seqLen,
    sampling: { temperature: m.sampling.temperature, topK: m.sampling.topK, topP: m.sampling.topP },
    seed: m.seed,
    samplesPerPrompt: m.samplesPerPrompt,
    maxSteps: m.maxSteps,
    prompts: { source: m.prompts.source, count: m.prompts.count, sha256: m.prompts.sha256 },
  };
}

/** Why `meta` is not valid metadata of a file of `version`, or null. Used for both requested and read metadata. */
function metaProblem(m: unknown, version = DATASET_VERSION): string | null {
  const isInt = (v: unknown, min: number, max = 2 ** 31 - 1): boolean => typeof v === "number" && Number.isInteger(v) && v >= min && v <= max;
  const isHex = (v: unknown): boolean => typeof v === "string" && /^[0-9a-f]{64}$/.test(v);
  if (!isPlainObject(m)) return "the metadata is not a JSON object";
  const o = m as Record<string, unknown>;
  const s = o.sampling as Record<string, unknown> | undefined;
  const p = o.prompts as Record<string, unknown> | undefined;
  const checks: [string, boolean][] = [
    ["teacher (a SHA-256 hex digest)", isHex(o.teacher)],
    ["backend (a non-empty string: the description of the backend that sampled the records)", version < 2 || (typeof o.backend === "string" && o.backend !== "")],
    ["vocabSize (an integer >= 1)", isInt(o.vocabSize, 1)],
    ["seqLen (an integer >= 1)", isInt(o.seqLen, 1)],
    ["sampling (an object)", typeof s === "object" && s !== null],
    ["sampling.temperature (a finite number > 0)", typeof s?.temperature === "number" && Number.isFinite(s.temperature) && s.temperature > 0],
    ["sampling.topK (an integer >= 0; 0 = off)", isInt(s?.topK, 0)],
    ["sampling.topP (a number in (0, 1]; 1 = off)", typeof s?.topP === "number" && s.topP > 0 && s.topP <= 1],
    ["seed (an integer in [0, 2^32))", isInt(o.seed, 0, 2 ** 32 - 1)],
    ["samplesPerPrompt (an integer >= 1)", isInt(o.samplesPerPrompt, 1)],
    ["maxSteps (an integer >= 1)", isInt(o.maxSteps, 1)],
    ["prompts (an object)", typeof p === "object" && p !== null],
    ["prompts.source (a non-empty string)", typeof p?.source === "string" && p.source !== ""],
    ["prompts.count (an integer >= 1)", isInt(p?.count, 1)],
    ["prompts.sha256 (a SHA-256 hex digest)", isHex(p?.sha256)],
  ];
  const bad = checks.find(([, ok]) => !ok);
  if (bad) return `metadata field ${bad[0]} is missing or invalid`;
  if ((p!.count as number) * (o.samplesPerPrompt as number) > 2 ** 32 - 1) return "prompts.count * samplesPerPrompt exceeds 2^32 - 1 records";
  return null;
}

const META_KEYS: readonly (keyof DatasetMeta)[] = ["teacher", "backend", "vocabSize", "seqLen", "sampling", "seed", "samplesPerPrompt", "maxSteps", "prompts"];
const SAMPLING_KEYS: readonly (keyof DatasetSampling)[] = ["temperature", "topK", "topP"];
const PROMPTS_KEYS: readonly (keyof DatasetPrompts)[] = ["source", "count", "sha256"];

/**
 * Throws a RangeError naming `where` unless `meta` is valid (before a file
 * is written with it): each field in range, and no key the header does not
 * hold (a misspelt one would be written and then ignored by every reader).
 */
export function validateMeta(meta: DatasetMeta, where = "dataset"): void {
  const problem = metaProblem(meta);
  if (problem) throw new RangeError(`${where}: ${problem}`);
  checkOptionKeys(meta, where, META_KEYS, "meta");
  checkOptionKeys(meta.sampling, where, SAMPLING_KEYS, "meta.sampling");
  checkOptionKeys(meta.prompts, where, PROMPTS_KEYS, "meta.prompts");
}

/** Total number of records a complete file holds. */
export function totalRecords(meta: DatasetMeta): number {
  if (meta === null || typeof meta !== "object" || meta.prompts === null || typeof meta.prompts !== "object") throw new TypeError(`totalRecords: meta must be a dataset's metadata (as datasetMeta or readDatasetMeta return), got ${describeValue(meta)}`);
  return meta.prompts.count * meta.samplesPerPrompt;
}

/** The differing fields of two metadata objects, as dotted paths. */
function metaDiffs(file: DatasetMeta, requested: DatasetMeta): { field: string; file: unknown; requested: unknown }[] {
  const out: { field: string; file: unknown; requested: unknown }[] = [];
  const walk = (a: unknown, b: unknown, path: string): void => {
    if (typeof a === "object" && a !== null && typeof b === "object" && b !== null) {
      const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
      for (const k of keys) walk((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], path ? `${path}.${k}` : k);
    } else if (!Object.is(a, b)) {
      out.push({ field: path, file: a, requested: b });
    }
  };
  walk(canonicalMeta(file), canonicalMeta(requested), "");
  return out;
}

// ---------------------------------------------------------------------------
// Records.

/** Bytes of a record with n tokens of which the first p are the prompt. */
function recordSize(n: number, p: number): number {
  return RECORD_HEAD + 4 * n + 8 * (n - p) + 4;
}

/** Throws a TypeError unless `r` is shaped as a DatasetRecord: an object with promptLength and array-like tokens, left and right. */
function checkRecordShape(r: unknown, where: string): asserts r is DatasetRecord {
  const o = r as Record<string, unknown> | null;
  if (o === null || typeof o !== "object") throw new TypeError(`${where}: a record must be an object { promptLength, tokens, left, right } (as generateRecord returns), got ${describeValue(r)}`);
  for (const key of ["tokens", "left", "right"]) {
    const a = o[key] as { length?: unknown } | null | undefined;
    if (a === null || typeof a !== "object" || typeof a.length !== "number") throw new TypeError(`${where}: ${key} must be an array or typed array, got ${describeValue(a)}`);
  }
}

/** Why `r` cannot be record number `index` of a file with `meta`, or null. */
function recordProblem(r: DatasetRecord, meta: DatasetMeta): string | null {
  const n = r.tokens.length;
  const p = r.promptLength;
  if (!Number.isInteger(p) || p < 1) return `promptLength must be >= 1 (BOS), got ${p}`;
  if (n <= p) return `it has ${n} tokens and promptLength ${p}: no sampled token`;
  if (n - p > meta.maxSteps) return `it has ${n - p} sampled tokens, more than maxSteps ${meta.maxSteps}`;
  if (n > meta.seqLen + 1) return `it has ${n} tokens, more than seqLen + 1 = ${meta.seqLen + 1}`;
  if (r.left.length !== n - p || r.right.length !== n - p) return `it has ${n - p} sampled tokens but ${r.left.length} left and ${r.right.length} right edges`;
  for (let i = 0; i < n; i++) {
    const t = r.tokens[i];
    if (!Number.isInteger(t) || t < 0 || t >= meta.vocabSize) return `token ${i} is ${t}, outside the vocabulary [0, ${meta.vocabSize})`;
  }
  for (let j = 0; j < n - p; j++) {
    // As stored: float32 (a double bin could collapse to an empty one).
    const l = Math.fround(r.left[j]),
      h = Math.fround(r.right[j]);
    if (!(l >= 0 && l < h && h <= 1)) return `sampled token ${j} has the bin [${l}, ${h}), which is not a non-empty interval in [0, 1]`;
  }
  return null;
}

/** The record's bytes: head, tokens, left edges, right edges, CRC of all that. */
export function encodeRecord(index: number, r: DatasetRecord): Uint8Array {
  const n = r.tokens.length;
  const s = n - r.promptLength;
  const out = new Uint8Array(recordSize(n, r.promptLength));
  const dv = new DataView(out.buffer);
  out.set(MARKER_BYTES, 0);
  dv.setUint32(4, index, true);
  dv.setUint32(8, r.promptLength, true);
  dv.setUint32(12, n, true);
  let o = RECORD_HEAD;
  for (let i = 0; i < n; i++, o += 4) dv.setInt32(o, r.tokens[i], true);
  for (let j = 0; j < s; j++, o += 4) dv.setFloat32(o, r.left[j], true);
  for (let j = 0; j < s; j++, o += 4) dv.setFloat32(o, r.right[j], true);
  dv.setUint32(o, crc32(out.subarray(0, o)), true);
  return out;
}

function decodeRecordBody(bytes: Uint8Array, p: number, n: number): DatasetRecord {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const s = n - p;
  const tokens = new Int32Array(n);
  const left = new Float32Array(s);
  const right = new Float32Array(s);
  let o = RECORD_HEAD;
  for (let i = 0; i < n; i++, o += 4) tokens[i] = dv.getInt32(o, true);
  for (let j = 0; j < s; j++, o += 4) left[j] = dv.getFloat32(o, true);
  for (let j = 0; j < s; j++, o += 4) right[j] = dv.getFloat32(o, true);
  return { promptLength: p, tokens, left, right };
}

// ---------------------------------------------------------------------------
// Reading: a sequential scan shared by readDataset and the writer's resume.

/** Reads byte ranges of an open file. */
class FileBytes {
  constructor(
    readonly fd: number,
    readonly size: number,
  ) {}

  /** Bytes [offset, offset + n), or fewer where the file ends. */
  read(offset: number, n: number): Uint8Array {
    const want = Math.max(0, Math.min(n, this.size - offset));
    const buf = new Uint8Array(want);
    let got = 0;
    while (got < want) {
      const k = readSync(this.fd, buf, got, want - got, offset + got);
      if (k === 0) break;
      got += k;
    }
    return got === want ? buf : buf.subarray(0, got);
  }

  /** Whether every byte from `offset` to the end is zero (what a crash can leave past the last write). */
  zeroFrom(offset: number): boolean {
    const CHUNK = 1 << 16;
    for (let o = offset; o < this.size; o += CHUNK) {
      if (this.read(o, CHUNK).some((b) => b !== 0)) return false;
    }
    return true;
  }
}

/** Parses and checks the header; returns the metadata and where the records start. */
function readHeader(file: FileBytes, name: string): { meta: DatasetMeta; end: number } {
  const fixed = file.read(0, HEADER_FIXED);
  if (fixed.length < MAGIC_BYTES.length || !MAGIC_BYTES.every((b, i) => fixed[i] === b)) {
    if (file.size === 0) throw new FileFormatError(name, "file is empty (expected a PTP distillation dataset)");
    if (fixed.length < MAGIC_BYTES.length && isPrefix(fixed, MAGIC_BYTES)) throw new FileFormatError(name, `truncated header: file is ${file.size} bytes`);
    const kind = fileKindOf(name);
    if (kind !== undefined) throw new FileFormatError(name, `is ${kind}, not a PTP distillation dataset (ptp pregenerate writes one)`);
    throw new FileFormatError(name, `bad magic: expected "${DATASET_MAGIC}" (a PTP distillation dataset), found ${quoteBytes(fixed.subarray(0, 8))}`);
  }
  if (fixed.length < HEADER_FIXED) throw new FileFormatError(name, `truncated header: file is ${file.size} bytes`);
  const dv = new DataView(fixed.buffer);
  const version = dv.getUint32(8, true);
  if (version < 1 || version > DATASET_VERSION) throw new FileFormatError(name, `unsupported dataset version ${version} (this build reads versions 1 to ${DATASET_VERSION})`);
  const jsonLength = dv.getUint32(12, true);
  if (jsonLength % 4 !== 0 || jsonLength > MAX_META_BYTES) throw new FileFormatError(name, `bad header: metadata length ${jsonLength} (must be a multiple of 4 below ${MAX_META_BYTES})`);
  const end = HEADER_FIXED + jsonLength + 4;
  if (file.size < end) throw new FileFormatError(name, `truncated header: file is ${file.size} bytes but the header needs ${end}`);
  const header = file.read(0, end);
  const stored = new DataView(header.buffer).getUint32(end - 4, true);
  if (crc32(header.subarray(0, end - 4)) !== stored) throw new FileFormatError(name, "header checksum mismatch (the header is corrupt)");
  let meta: unknown;
  try {
    meta = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(header.subarray(HEADER_FIXED, end - 4)));
  } catch (e) {
    throw new FileFormatError(name, `header metadata is not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  const problem = metaProblem(meta, version);
  if (problem) throw new FileFormatError(name, `bad header: ${problem}`);
  // Version 1 had no backend field: a "backend" key there is not a record of it.
  if (version < 2) delete (meta as Record<string, unknown>).backend;
  return { meta: meta as DatasetMeta, end };
}

type ScanItem =
  | { kind: "record"; record: DatasetRecord; offset: number; end: number }
  /** An interrupted append: nothing valid follows (the file ends inside it, or only zero bytes follow). */
  | { kind: "torn"; index: number; offset: number; bytes: number; why: string };

/**
 * The records from `offset` on, in order, ending with a "torn" item when the
 * file ends with an incomplete record. Corruption that is not at the tail
 * throws: valid data must never be truncated away.
 */
function* scanRecords(file: FileBytes, name: string, meta: DatasetMeta, offset: number): Generator<ScanItem> {
  const total = totalRecords(meta);
  for (let index = 0; offset < file.size; index++) {
    const torn = (why: string): ScanItem => ({ kind: "torn", index, offset, bytes: file.size - offset, why });
    const corrupt = (why: string): FileFormatError => new FileFormatError(name, `record ${index} at byte ${offset}: ${why}, and non-zero bytes follow (corruption, not an interrupted write)`);
    const head = file.read(offset, RECORD_HEAD);
    if (head.length < RECORD_HEAD) {
      yield torn("the file ends inside its head");
      return;
    }
    const dv = new DataView(head.buffer);
    const p = dv.getUint32(8, true);
    const n = dv.getUint32(12, true);
    let headProblem: string | null = null;
    if (!MARKER_BYTES.every((b, i) => head[i] === b)) headProblem = "no record marker";
    else if (index >= total) headProblem = `the header allows only ${total} records`;
    else if (dv.getUint32(4, true) !== index) headProblem = `it carries index ${dv.getUint32(4, true)}`;
    else if (p < 1 || n <= p || n - p > meta.maxSteps || n > meta.seqLen + 1) headProblem = `impossible lengths (promptLength ${p}, length ${n})`;
    if (headProblem) {
      // A crash can leave zeros past the last durable byte, cutting into the head.
      if (file.zeroFrom(offset + RECORD_HEAD)) {
        yield torn(`${headProblem}; only zero bytes follow`);
        return;
      }
      throw corrupt(headProblem);
    }
    const end = offset + recordSize(n, p);
    if (end > file.size) {
      yield torn(`the file ends inside it (it needs ${end - offset} bytes, ${file.size - offset} present)`);
      return;
    }
    const bytes = file.read(offset, end - offset);
    const stored = new DataView(bytes.buffer).getUint32(bytes.length - 4, true);
    if (crc32(bytes.subarray(0, bytes.length - 4)) !== stored) {
      if (file.zeroFrom(end)) {
        yield torn("checksum mismatch, and only zero bytes follow");
        return;
      }
      throw corrupt("checksum mismatch");
    }
    const record = decodeRecordBody(bytes, p, n);
    const problem = recordProblem(record, meta);
    if (problem) throw new FileFormatError(name, `record ${index} at byte ${offset}: ${problem}`);
    yield { kind: "record", record, offset, end };
    offset = end;
  }
}

/** ReadDatasetOptions, checked: an object of the three known keys, booleans and a function. */
function checkReadOptions(options: unknown, where: string): asserts options is ReadDatasetOptions {
  if (!isPlainObject(options)) throw new TypeError(`${where}: options must be an object ({ allowTornTail, allowIncomplete, onTornTail }), got ${describeValue(options)}`);
  const o = options as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!["allowTornTail", "allowIncomplete", "onTornTail"].includes(key)) throw new RangeError(`${where}: unknown option ${JSON.stringify(key)}; the options are allowTornTail, allowIncomplete and onTornTail`);
  }
  for (const key of ["allowTornTail", "allowIncomplete"]) {
    if (o[key] !== undefined && typeof o[key] !== "boolean") throw new TypeError(`${where}: ${key} must be true or false, got ${describeValue(o[key])}`);
  }
  if (o.onTornTail !== undefined && typeof o.onTornTail !== "function") throw new TypeError(`${where}: onTornTail must be a function, got ${describeValue(o.onTornTail)}`);
}

function openDataset(path: string, where: string): number {
  checkPath(path, where);
  // Opening a FIFO blocks until a writer comes (forever): refuse anything but a regular file first (stat does not block).
  let st0: ReturnType<typeof statSync> | undefined;
  try {
    st0 = statSync(path);
  } catch {
    // missing or unreadable: openForReading says which
  }
  if (st0 !== undefined && !st0.isFile() && !st0.isDirectory()) throw new FileFormatError(path, "is not a regular file (a device, pipe or socket), expected a PTP distillation dataset");
  const fd = openForReading(path, "a PTP distillation dataset");
  // A directory opens on Linux, then fails on the first read with a bare EISDIR: refuse it (and devices) here.
  const st = fstatSync(fd);
  if (!st.isFile()) {
    closeSync(fd);
    throw new FileFormatError(path, `${st.isDirectory() ? "is a directory" : "is not a regular file (a device, pipe or socket)"}, expected a PTP distillation dataset`);
  }
  return fd;
}

export interface ReadDatasetOptions {
  /** Return the complete records of a file whose last record is torn (a run still writing, or killed) instead of throwing. */
  allowTornTail?: boolean;
  /** Accept fewer records than the header's total (an unfinished run). Default true. */
  allowIncomplete?: boolean;
  /** With allowTornTail: told about the torn last record that was left out (so callers can report it). */
  onTornTail?: (torn: { index: number; offset: number; bytes: number; why: string }) => void;
}

/**
 * The records of a dataset file, one at a time (the file is read
 * sequentially, never whole). Throws a FileFormatError for a bad header, a
 * corrupt record or, unless allowed, a torn last record.
 */
export function* datasetRecords(path: string, options: ReadDatasetOptions = {}): Generator<DatasetRecord, DatasetMeta, undefined> {
  checkReadOptions(options, "datasetRecords");
  const fd = openDataset(path, "datasetRecords");
  try {
    const file = new FileBytes(fd, fstatSync(fd).size);
    const { meta, end } = readHeader(file, path);
    let count = 0;
    for (const item of scanRecords(file, path, meta, end)) {
      if (item.kind === "torn") {
        if (options.allowTornTail) {
          options.onTornTail?.({ index: item.index, offset: item.offset, bytes: item.bytes, why: item.why });
          break;
        }
        throw new FileFormatError(path, `truncated: record ${item.index} at byte ${item.offset} is incomplete (${item.why}; ${item.bytes} bytes), as an interrupted write leaves it; resuming the run truncates it`);
      }
      count++;
      yield item.record;
    }
    if (options.allowIncomplete === false && count < totalRecords(meta)) {
      throw new FileFormatError(path, `incomplete: ${count} of ${totalRecords(meta)} records`);
    }
    return meta;
  } finally {
    closeSync(fd);
  }
}

/** Just the header's metadata. */
export function readDatasetMeta(path: string): DatasetMeta {
  const fd = openDataset(path, "readDatasetMeta");
  try {
    return readHeader(new FileBytes(fd, fstatSync(fd).size), path).meta;
  } finally {
    closeSync(fd);
  }
}

/** The whole dataset in memory (fine for files of tens of MB; use datasetRecords to stream). */
export function readDataset(path: string, options: ReadDatasetOptions = {}): Dataset {
  checkPath(path, "readDataset");
  checkReadOptions(options, "readDataset");
  const records: DatasetRecord[] = [];
  const it = datasetRecords(path, options);
  for (;;) {
    const r = it.next();
    if (r.done) return { meta: r.value, records };
    records.push(r.value);
  }
}

// ---------------------------------------------------------------------------
// Writing.

export interface OpenDatasetOptions {
  /**
   * false: create the file; it must not exist. true: continue an existing
   * file (its header must equal `meta`, backend included; a torn last record
   * is truncated; a version 1 file, which has no backend, is refused), or
   * create it when missing.
   */
  resume: boolean;
}

/** Appends records to a dataset file. Not safe for two writers at once. */
export class DatasetWriter {
  private fd: number | null;
  private offset: number;
  private count: number;
  private unsynced = 0;

  private constructor(
    readonly path: string,
    readonly meta: DatasetMeta,
    fd: number,
    offset: number,
    count: number,
    /** Bytes of a torn last record removed when the file was opened (0 when none). */
    readonly truncatedBytes: number,
    /** Whether the file existed (with a valid header) before this writer opened it. */
    readonly resumed: boolean,
  ) {
    this.fd = fd;
    this.offset = offset;
    this.count = count;
  }

  /** Opens `path` for appending records generated with `meta`; see OpenDatasetOptions. */
  static open(path: string, meta: DatasetMeta, options: OpenDatasetOptions): DatasetWriter {
    checkPath(path, "DatasetWriter.open");
    if (options === null || typeof options !== "object" || typeof options.resume !== "boolean") {
      throw new TypeError(`DatasetWriter.open: options must be { resume: true } or { resume: false }, got ${options !== null && typeof options === "object" ? `resume ${describeValue(options.resume)}` : describeValue(options)}`);
    }
    for (const key of Object.keys(options)) if (key !== "resume") throw new RangeError(`DatasetWriter.open: unknown option ${JSON.stringify(key)} (the one option is resume)`);
    validateMeta(meta, `DatasetWriter.open: ${path}`);
    const header = encodeHeader(meta);
    let fd: number;
    try {
      const st = statSync(path);
      // A folder or device is no dataset, whether it is to be created or resumed (opening a FIFO would block).
      if (!st.isFile()) throw new FileFormatError(path, `${st.isDirectory() ? "is a directory" : "is not a regular file (a device, pipe or socket)"}, expected a PTP distillation dataset to ${options.resume ? "resume" : "create"}`);
    } catch (err) {
      if (err instanceof FileFormatError) throw err;
      // missing: created below
    }
    try {
      fd = openSync(path, options.resume ? "r+" : "wx");
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "EEXIST") throw new Error(`${path}: file exists (resume it, or choose another file)`);
      if (code !== "ENOENT" || !options.resume) throw writeFailure(path, err);
      try {
        fd = openSync(path, "wx");
      } catch (err2) {
        throw writeFailure(path, err2);
      }
    }
    try {
      const size = fstatSync(fd).size;
      // A new file, or one that died while its header was being written: (re)write the header.
      if (size < header.length && isPrefix(new FileBytes(fd, size).read(0, size), header)) {
        ftruncateSync(fd, 0);
        writeAll(fd, header, 0, path);
        fsyncSync(fd);
        return new DatasetWriter(path, meta, fd, header.length, 0, 0, false);
      }
      const file = new FileBytes(fd, size);
      const { meta: existing, end } = readHeader(file, path);
      if (existing.backend === undefined) {
        throw new FileFormatError(
          path,
          "is a version 1 dataset, which does not record the backend that sampled its records; their bits depend on it (js and wasm, or two wasm builds, round differently), so new records could not be shown to match: it cannot be resumed. It still trains as it is; write new records to another file",
        );
      }
      const diffs = metaDiffs(existing, meta);
      if (diffs.length > 0) throw new DatasetMismatchError(path, diffs);
      let offset = end,
        count = 0,
        truncated = 0;
      for (const item of scanRecords(file, path, meta, end)) {
        if (item.kind === "torn") {
          truncated = item.bytes;
          ftruncateSync(fd, item.offset);
          fsyncSync(fd);
          break;
        }
        offset = item.end;
        count++;
      }
      return new DatasetWriter(path, meta, fd, offset, count, truncated, true);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  /** Complete records in the file. */
  get records(): number {
    return this.count;
  }

  /** Bytes in the file. */
  get bytes(): number {
    return this.offset;
  }

  /** Whether the file holds every record its header asks for. */
  get complete(): boolean {
    return this.count === totalRecords(this.meta);
  }

  /** Appends the next record (its index is the current record count). */
  append(record: DatasetRecord): void {
    if (this.fd === null) throw new Error(`${this.path}: the dataset writer is closed`);
    checkRecordShape(record, `${this.path}: record ${this.count}`);
    if (this.complete) throw new Error(`${this.path}: already holds all ${this.count} records`);
    const problem = recordProblem(record, this.meta);
    if (problem) throw new RangeError(`${this.path}: record ${this.count}: ${problem}`);
    const bytes = encodeRecord(this.count, record);
    writeAll(this.fd, bytes, this.offset, this.path);
    this.offset += bytes.length;
    this.count++;
    this.unsynced++;
  }

  /** Flushes appended records to the disk. */
  sync(): void {
    if (this.fd !== null && this.unsynced > 0) {
      try {
        fsyncSync(this.fd);
      } catch (err) {
        throw writeFailure(this.path, err);
      }
    }
    this.unsynced = 0;
  }

  /** Syncs and closes; safe to call twice. */
  close(): void {
    if (this.fd === null) return;
    try {
      this.sync();
    } finally {
      closeSync(this.fd);
      this.fd = null;
    }
  }
}

function isPrefix(prefix: Uint8Array, of: Uint8Array): boolean {
  return prefix.length <= of.length && prefix.every((b, i) => b === of[i]);
}

/** Writes all of `bytes` at `position`; a failure (a full disk) is an error naming `path`. A record cut short by it is a torn record, which --resume truncates. */
function writeAll(fd: number, bytes: Uint8Array, position: number, path: string): void {
  let done = 0;
  try {
    while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done, position + done);
  } catch (err) {
    throw writeFailure(path, err);
  }
}

// ---------------------------------------------------------------------------

/**
 * Refuses (an Error naming the dataset file `path`) a dataset that is not
 * the teacher's to train with: a header whose vocab or seqLen contradicts
 * the teacher, unusable sampling settings, or samples drawn from another
 * teacher (`checksum`: teacherChecksum of the teacher; `name` names it,
 * usually its path).
 */
export function checkDatasetMatchesTeacher(path: string, meta: DatasetMeta, teacher: { config: ModelConfig; checksum: string; name: string }): void {
  for (const key of ["vocabSize", "seqLen"] as const) {
    if (meta[key] !== teacher.config[key]) throw new Error(`${path}: the dataset header says ${key} ${meta[key]}, but the teacher has ${teacher.config[key]}`);
  }
  try {
    validateSamplingSettings(meta.sampling);
  } catch (err) {
    throw new Error(`${path}: the dataset header's sampling settings are unusable: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (meta.teacher !== teacher.checksum) throw new Error(`${path}: the dataset was sampled from another teacher (checksum ${meta.teacher.slice(0, 12)}...), not ${teacher.name} (${teacher.checksum.slice(0, 12)}...)`);
}
