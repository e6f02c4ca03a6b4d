/**
 * Reading and writing safetensors files.
 *
 * Layout: an unsigned 64-bit little-endian header length N; N bytes of UTF-8
 * JSON (strict UTF-8, no byte-order mark), an object mapping each tensor name to
 * `{"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}` (offsets
 * relative to the first byte after the header) plus an optional
 * `"__metadata__"` object of string values; then the data section, which
 * must be covered densely by the tensors (no gaps, no overlaps, nothing
 * left over). Data are little-endian.
 *
 * Reading supports F32, F16, BF16, I32 and U8; F16 and BF16 are widened to
 * Float32Array (the dtype stays as in the file). Writing supports F32, I32
 * and U8 and is deterministic: `__metadata__` first (keys sorted) when there
 * is any, then the tensors sorted by name, their data contiguous in that
 * order, the header padded with spaces so the data start at a multiple of 8.
 *
 * Parsed tensors own their data (copies), so they do not alias the bytes.
 */
import { writeBytesAtomically } from "./atomic-write.js";
import { checkBytesArgument, checkPath, FileFormatError, readFileBytes, readFilePrefix, quote } from "./errors.js";
import { checkInteger, describeValue } from "../util/checks.js";
import { isPlainObject } from "../util/options.js";

// Re-exported for the adapter and draft files, which write through it too.
export { writeBytesAtomically };

export type SafeTensorDtype = "F32" | "F16" | "BF16" | "I32" | "U8";

export interface SafeTensor {
  dtype: SafeTensorDtype;
  shape: number[];
  data: Float32Array | Int32Array | Uint8Array;
}

export interface SafetensorsFile {
  tensors: Map<string, SafeTensor>;
  metadata: Record<string, string>;
}

/** Bytes per element of the dtypes this module reads. */
export const DTYPE_SIZE: Readonly<Record<SafeTensorDtype, number>> = { F32: 4, F16: 2, BF16: 2, I32: 4, U8: 1 };

/** Dtypes of the format that this module does not read (named in the error message). */
const OTHER_DTYPES = new Set(["BOOL", "I8", "I16", "U16", "U32", "I64", "U64", "F64", "F8_E4M3", "F8_E5M2"]);

const METADATA_KEY = "__metadata__";
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

const describeShape = (shape: readonly number[]): string => `[${shape.join(", ")}]`;

function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** An IEEE half-precision value (as its 16 bits) widened to a JS number (exact). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Reads `count` elements of `dtype` from little-endian bytes into a fresh array. */
export function decodeTensorBytes(dtype: SafeTensorDtype, bytes: Uint8Array, start: number, count: number): Float32Array | Int32Array | Uint8Array {
  const size = DTYPE_SIZE[dtype];
  const src = bytes.subarray(start, start + count * size);
  // new Uint8Array(src) always copies (Buffer.prototype.slice would return a view into Node's pool)
  if (dtype === "U8") return new Uint8Array(src);
  if (LITTLE_ENDIAN_HOST && (dtype === "F32" || dtype === "I32")) {
    const copy = new Uint8Array(src); // a fresh, aligned buffer
    return dtype === "F32" ? new Float32Array(copy.buffer, 0, count) : new Int32Array(copy.buffer, 0, count);
  }
  const dv = new DataView(src.buffer, src.byteOffset, src.byteLength);
  switch (dtype) {
    case "F32": {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = dv.getFloat32(4 * i, true);
      return out;
    }
    case "I32": {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = dv.getInt32(4 * i, true);
      return out;
    }
    case "F16": {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = halfToFloat(dv.getUint16(2 * i, true));
      return out;
    }
    case "BF16": {
      // bfloat16 is the top half of a float32: place the bits there (keeps NaN payloads).
      const bits = new Uint32Array(count);
      for (let i = 0; i < count; i++) bits[i] = dv.getUint16(2 * i, true) << 16;
      return new Float32Array(bits.buffer);
    }
  }
}

type Entry = SafetensorsEntry;

function parseEntry(name: string, value: unknown, fail: (problem: string) => never): Entry {
  const t = `tensor ${quote(name)}`;
  if (!isPlainObject(value)) fail(`${t}: expected an object with dtype, shape and data_offsets, found ${quote(value)}`);
  for (const key of ["dtype", "shape", "data_offsets"]) if (!(key in value)) fail(`${t}: missing "${key}"`);
  const { dtype, shape, data_offsets: offsets } = value;
  if (typeof dtype !== "string") fail(`${t}: dtype must be a string, found ${quote(dtype)}`);
  if (!Object.hasOwn(DTYPE_SIZE, dtype)) {
    if (OTHER_DTYPES.has(dtype)) fail(`${t}: dtype ${dtype} is not supported (supported: F32, F16, BF16, I32, U8)`);
    fail(`${t}: unknown dtype ${quote(dtype)} (supported: F32, F16, BF16, I32, U8)`);
  }
  if (!Array.isArray(shape)) fail(`${t}: shape must be an array of integers, found ${quote(shape)}`);
  for (const d of shape) {
    if (typeof d === "number" && Number.isInteger(d) && d > Number.MAX_SAFE_INTEGER) {
      fail(`${t}: shape ${quote(shape)} has a dimension past 2^53 - 1, beyond any file`);
    }
    if (typeof d !== "number" || !Number.isSafeInteger(d) || d < 0) {
      fail(`${t}: shape ${quote(shape)} must hold non-negative integers, found ${quote(d)}`);
    }
  }
  if (!Array.isArray(offsets) || offsets.length !== 2) {
    fail(`${t}: data_offsets must be an array [begin, end], found ${quote(offsets)}`);
  }
  const [begin, end] = offsets as unknown[];
  for (const o of [begin, end]) {
    if (typeof o === "number" && Number.isInteger(o) && o > Number.MAX_SAFE_INTEGER) {
      fail(`${t}: data_offsets ${quote(offsets)} reach past 2^53 - 1 bytes, beyond any file`);
    }
    if (typeof o !== "number" || !Number.isSafeInteger(o) || o < 0) {
      fail(`${t}: data_offsets ${quote(offsets)} must be non-negative integers`);
    }
  }
  const b = begin as number;
  const e = end as number;
  if (e < b) fail(`${t}: data_offsets [${b}, ${e}] end before they begin`);
  const d = dtype as SafeTensorDtype;
  const expected = elementCount(shape as number[]) * DTYPE_SIZE[d];
  if (e - b !== expected) {
    fail(`${t}: data_offsets [${b}, ${e}] span ${e - b} bytes but dtype ${d} with shape ${describeShape(shape as number[])} needs ${expected} bytes`);
  }
  return { name, dtype: d, shape: (shape as number[]).slice(), begin: b, end: e };
}

/** True when a file of `size` bytes starting with `head` (at least 10 bytes) starts like safetensors: a little-endian uint64 header length that fits, then '{'. */
export function looksLikeSafetensors(head: Uint8Array, size = head.length): boolean {
  if (head.length < 10 || head[8] !== 0x7b) return false;
  const length = new DataView(head.buffer, head.byteOffset, head.byteLength).getBigUint64(0, true);
  return length >= 2n && length <= BigInt(size - 8);
}

/** The longest safetensors header read: 100,000,000 bytes, the bound of the format's reference implementation (huggingface/safetensors). */
export const MAX_SAFETENSORS_HEADER_BYTES = 100_000_000;

/**
 * The header length a file of `size` bytes declares, as a number, or a
 * FileFormatError naming `name`: one that runs past the end of the file, or
 * is over MAX_SAFETENSORS_HEADER_BYTES. Every safetensors reader checks
 * it before reading the header.
 */
export function checkHeaderLength(headerLength: bigint, size: number, name: string): number {
  if (headerLength > BigInt(size - 8)) {
    throw new FileFormatError(name, `safetensors header length ${headerLength} goes beyond the end of the file (${size} bytes, so at most ${size - 8} bytes of header)`);
  }
  if (headerLength > BigInt(MAX_SAFETENSORS_HEADER_BYTES)) {
    throw new FileFormatError(name, `safetensors header length ${headerLength} is over the ${MAX_SAFETENSORS_HEADER_BYTES}-byte limit for a header (the format's reference reader's)`);
  }
  return Number(headerLength);
}

/**
 * Parses a safetensors file. `name` (usually the path) starts every error
 * message. Throws FileFormatError when the file is truncated, the header is
 * not a JSON object of well-formed entries, a dtype is unsupported, a
 * tensor's byte span does not match its shape, or the tensors do not cover
 * the data section exactly once.
 */
export function parseSafetensors(bytes: Uint8Array, name: string): SafetensorsFile {
  checkBytesArgument(bytes, name, "parseSafetensors");
  const n = bytes.byteLength;
  if (n < 8) {
    throw new FileFormatError(name, `file is ${n} bytes, shorter than the 8-byte safetensors header length (truncated or not a safetensors file)`);
  }
  const headerEnd = 8 + checkHeaderLength(new DataView(bytes.buffer, bytes.byteOffset, n).getBigUint64(0, true), n, name);
  const header = parseSafetensorsHeader(bytes.subarray(8, headerEnd), n - headerEnd, name);
  const tensors = new Map<string, SafeTensor>();
  for (const e of header.entries) {
    const count = elementCount(e.shape);
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data: decodeTensorBytes(e.dtype, bytes, headerEnd + e.begin, count) });
  }
  return { tensors, metadata: header.metadata };
}

/** One tensor of a safetensors header: byte offsets relative to the data section. */
export interface SafetensorsEntry {
  name: string;
  dtype: SafeTensorDtype;
  shape: number[];
  begin: number;
  end: number;
}

/**
 * Parses and checks a safetensors JSON header (the bytes after the 8-byte
 * length), given the length of the data section that follows it. Entries
 * come sorted by offset and tile the data section exactly. For loaders that
 * read the header first and then stream each tensor's bytes.
 */
export function parseSafetensorsHeader(headerBytes: Uint8Array, dataLength: number, name: string): { entries: SafetensorsEntry[]; metadata: Record<string, string> } {
  checkBytesArgument(headerBytes, name, "parseSafetensorsHeader", "the header's bytes");
  // A NaN or string length passed every offset check (n > NaN is false) and then failed as "bytes that belong to no tensor", or not at all.
  checkInteger(dataLength, "parseSafetensorsHeader", "dataLength (the data section's length in bytes)", 0);
  const fail: (problem: string) => never = (problem) => {
    throw new FileFormatError(name, problem);
  };
  const headerLength = headerBytes.byteLength;
  let text: string;
  try {
    // ignoreBOM keeps a byte-order mark in the text instead of dropping it silently.
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    return fail(`safetensors header is not valid UTF-8`);
  }
  // As in the reference reader (serde_json), the header is bare JSON: a byte-order mark is refused, not skipped.
  if (text.startsWith("\ufeff")) return fail("safetensors header starts with a UTF-8 byte-order mark (EF BB BF); the header must be bare JSON (the reference reader refuses a BOM too)");
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (err) {
    // V8's message quotes the text around the error: its control characters (a binary file's NULs) are shown escaped.
    const why = (err instanceof Error ? err.message : String(err)).replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
    return fail(`safetensors header is not valid JSON (${why})`);
  }
  if (!isPlainObject(header)) fail(`safetensors header must be a JSON object, found ${Array.isArray(header) ? "an array" : quote(header)}`);
  const h = header as Record<string, unknown>;

  const metadata: Record<string, string> = {};
  const rawMeta = h[METADATA_KEY];
  if (rawMeta !== undefined && rawMeta !== null) {
    if (!isPlainObject(rawMeta)) fail(`"${METADATA_KEY}" must be an object of strings, found ${quote(rawMeta)}`);
    for (const [k, v] of Object.entries(rawMeta as Record<string, unknown>)) {
      if (typeof v !== "string") fail(`metadata value of ${quote(k)} must be a string, found ${quote(v)}`);
      // defineProperty, so that a key such as "__proto__" stays an ordinary entry
      Object.defineProperty(metadata, k, { value: v, enumerable: true, writable: true, configurable: true });
    }
  }

  const entries: Entry[] = [];
  for (const [key, value] of Object.entries(h)) {
    if (key !== METADATA_KEY) entries.push(parseEntry(key, value, fail));
  }

  // The data section must be tiled exactly: sorted by offsets, each tensor starts where the previous ended.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  let covered = 0;
  let previous: Entry | undefined;
  for (const e of entries) {
    if (e.end > dataLength) {
      fail(`tensor ${quote(e.name)}: data_offsets [${e.begin}, ${e.end}] lie outside the data section ` + `(${dataLength} bytes after the ${headerLength}-byte header; truncated?)`);
    }
    if (e.begin < covered) {
      fail(`tensor ${quote(e.name)} (bytes [${e.begin}, ${e.end}]) overlaps tensor ${quote(previous!.name)} ` + `(bytes [${previous!.begin}, ${previous!.end}])`);
    }
    if (e.begin > covered) {
      fail(`data section bytes [${covered}, ${e.begin}) belong to no tensor (the layout must be dense)`);
    }
    covered = e.end;
    previous = e;
  }
  if (covered < dataLength) {
    fail(`data section has ${dataLength - covered} bytes after the last tensor (bytes [${covered}, ${dataLength})) that belong to no tensor`);
  }
  return { entries, metadata };
}

/** Reads a safetensors file synchronously (see parseSafetensors). */
export function readSafetensors(path: string): SafetensorsFile {
  // Header first: a header length beyond the file is refused before the file is read.
  const what = "a safetensors file";
  const { bytes: head, size } = readFilePrefix(path, what, 8);
  if (size >= 8) checkHeaderLength(new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true), size, path);
  return parseSafetensors(readFileBytes(path, what), path);
}

const compareNames = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Serializes tensors (F32, I32 or U8) and optional string metadata as a
 * safetensors file with deterministic bytes (see the module comment).
 * Throws a plain Error for an unsupported dtype, a data array of the wrong
 * type, a bad shape, or a shape that does not match the data length.
 */
export function serializeSafetensors(tensors: Record<string, SafeTensor>, metadata: Record<string, string> = {}): Uint8Array {
  // Objects only: a null was "Cannot convert undefined or null to object", a string's characters were read as tensors "0", "1", ...
  if (!isPlainObject(tensors)) throw new TypeError(`serializeSafetensors: tensors must be an object of { dtype, shape, data } by name, got ${describeValue(tensors)}`);
  // A Map (what hfTensors returns) has no own keys: it was written as a file of no tensors.
  if (tensors instanceof Map) throw new TypeError("serializeSafetensors: tensors must be a plain object of { dtype, shape, data } by name, got a Map (pass Object.fromEntries(map))");
  if (!isPlainObject(metadata) || metadata instanceof Map) throw new TypeError(`serializeSafetensors: metadata must be an object of strings by key, got ${describeValue(metadata)}`);
  const names = Object.keys(tensors).sort(compareNames);
  const parts: string[] = [];
  const metaKeys = Object.keys(metadata).sort(compareNames);
  if (metaKeys.length > 0) {
    const items = metaKeys.map((k) => {
      const v = metadata[k];
      if (typeof v !== "string") throw new Error(`serializeSafetensors: metadata value of ${JSON.stringify(k)} must be a string, got ${typeof v}`);
      return `${JSON.stringify(k)}:${JSON.stringify(v)}`;
    });
    parts.push(`${JSON.stringify(METADATA_KEY)}:{${items.join(",")}}`);
  }
  let offset = 0;
  const spans: { data: SafeTensor["data"]; dtype: SafeTensorDtype; begin: number }[] = [];
  for (const name of names) {
    const t = tensors[name];
    const where = `serializeSafetensors: tensor ${JSON.stringify(name)}`;
    if (name === METADATA_KEY) throw new Error(`serializeSafetensors: "${METADATA_KEY}" is reserved and cannot name a tensor`);
    if (t === null || typeof t !== "object") throw new TypeError(`${where}: must be an object { dtype, shape, data }, got ${describeValue(t)}`);
    const { dtype, shape, data } = t;
    const ok = (dtype === "F32" && data instanceof Float32Array) || (dtype === "I32" && data instanceof Int32Array) || (dtype === "U8" && data instanceof Uint8Array);
    if (!ok) {
      if (dtype !== "F32" && dtype !== "I32" && dtype !== "U8") throw new Error(`${where}: writing dtype ${String(dtype)} is not supported (F32, I32, U8)`);
      throw new Error(`${where}: dtype ${dtype} needs a ${dtype === "F32" ? "Float32Array" : dtype === "I32" ? "Int32Array" : "Uint8Array"}`);
    }
    if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
      throw new Error(`${where}: shape ${JSON.stringify(shape)} must be an array of non-negative integers`);
    }
    const count = elementCount(shape);
    if (count !== data.length) throw new Error(`${where}: shape ${describeShape(shape)} has ${count} elements but the data has ${data.length}`);
    const bytes = count * DTYPE_SIZE[dtype];
    parts.push(`${JSON.stringify(name)}:{"dtype":"${dtype}","shape":[${shape.join(",")}],"data_offsets":[${offset},${offset + bytes}]}`);
    spans.push({ data, dtype, begin: offset });
    offset += bytes;
  }
  let json = new TextEncoder().encode(`{${parts.join(",")}}`);
  const padded = Math.ceil(json.length / 8) * 8;
  const header = new Uint8Array(padded).fill(0x20);
  header.set(json);
  json = header;

  const out = new Uint8Array(8 + padded + offset);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  const base = 8 + padded;
  for (const { data, dtype, begin } of spans) {
    if (dtype === "U8" || LITTLE_ENDIAN_HOST) {
      out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), base + begin);
    } else if (dtype === "F32") {
      for (let i = 0; i < data.length; i++) dv.setFloat32(base + begin + 4 * i, data[i], true);
    } else {
      for (let i = 0; i < data.length; i++) dv.setInt32(base + begin + 4 * i, data[i], true);
    }
  }
  return out;
}

/**
 * Writes a safetensors file atomically: the bytes go to a hidden temporary
 * file next to `path`, which is then renamed over it (writeBytesAtomically).
 */
export function writeSafetensors(path: string, tensors: Record<string, SafeTensor>, metadata: Record<string, string> = {}): void {
  checkPath(path, "writeSafetensors");
  writeBytesAtomically(path, serializeSafetensors(tensors, metadata));
}
