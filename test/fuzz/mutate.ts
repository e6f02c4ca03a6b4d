/**
 * Random mutations of real files, for the loader fuzz suite: byte flips,
 * interesting 32-bit integers written over header fields, truncation,
 * insertion, appended junk and, for safetensors files, edits of the JSON
 * header (numbers, strings, deep nesting) with the header length fixed up,
 * so the mutant gets past the first check and reaches the deeper ones.
 */
import fc from "fast-check";

/** Values that break naive size arithmetic: zero, negatives, the int32 edges, large powers of two. */
const INTERESTING_INT32 = [0, 1, 2, 3, -1, -2, 255, 256, 4096, 65535, 65536, 1 << 20, 1 << 24, 0x7fffffff, -0x80000000, 0x40000000];

/** Replacements for a number in a JSON header. */
const INTERESTING_JSON_NUMBERS = ["0", "-1", "1e309", "-0", "0.5", "4294967296", "9007199254740993", "99999999999999999999", "1e-400", "2147483647", "0x10", " 7", "NaN", "null", "[]", "{}", '"1"'];

export type Mutation =
  | { kind: "flip"; at: number; count: number; value: number }
  | { kind: "int32"; at: number; value: number }
  | { kind: "truncate"; at: number }
  | { kind: "insert"; at: number; bytes: Uint8Array }
  | { kind: "append"; bytes: Uint8Array }
  | { kind: "json-number"; which: number; replacement: string }
  | { kind: "json-string"; which: number; length: number }
  | { kind: "json-nest"; depth: number };

/** Offsets biased to the start of a file, where its header lives. */
const offset = fc.oneof(fc.nat(64), fc.nat(512), fc.nat());

const byteMutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), at: offset, count: fc.integer({ min: 1, max: 8 }), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant("int32" as const), at: offset, value: fc.constantFrom(...INTERESTING_INT32) }),
  fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("insert" as const), at: offset, bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ kind: fc.constant("append" as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }) }),
);

const jsonMutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("json-number" as const), which: fc.nat(), replacement: fc.constantFrom(...INTERESTING_JSON_NUMBERS) }),
  fc.record({ kind: fc.constant("json-string" as const), which: fc.nat(), length: fc.constantFrom(0, 1, 100, 100_000) }),
  fc.record({ kind: fc.constant("json-nest" as const), depth: fc.constantFrom(10, 1000, 100_000) }),
);

/** One to three mutations; safetensors-based formats also get header edits. */
export const mutations = (safetensors: boolean): fc.Arbitrary<Mutation[]> => fc.array(safetensors ? fc.oneof({ weight: 2, arbitrary: byteMutation }, { weight: 3, arbitrary: jsonMutation }) : byteMutation, { minLength: 1, maxLength: 3 });

/** A safetensors file with its JSON header edited (data offsets are relative to the data, so they still hold); anything too short passes through. */
export function editHeader(bytes: Uint8Array, edit: (json: string) => string): Uint8Array {
  if (bytes.length < 8) return bytes;
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  if (n > bytes.length - 8) return bytes;
  const json = new TextDecoder().decode(bytes.subarray(8, 8 + n));
  const header = new TextEncoder().encode(edit(json));
  const out = new Uint8Array(8 + header.length + bytes.length - 8 - n);
  new DataView(out.buffer).setBigUint64(0, BigInt(header.length), true);
  out.set(header, 8);
  out.set(bytes.subarray(8 + n), 8 + header.length);
  return out;
}

function replaceNth(text: string, pattern: RegExp, which: number, by: (match: string) => string): string {
  const matches = [...text.matchAll(pattern)];
  if (matches.length === 0) return text;
  const m = matches[which % matches.length];
  return text.slice(0, m.index) + by(m[0]) + text.slice(m.index! + m[0].length);
}

export function applyMutation(bytes: Uint8Array, m: Mutation): Uint8Array {
  const n = bytes.length;
  switch (m.kind) {
    case "flip": {
      const out = new Uint8Array(bytes);
      for (let i = 0; i < m.count && n > 0; i++) out[(m.at + i * 131) % n] = (m.value + i) & 255;
      return out;
    }
    case "int32": {
      if (n < 4) return bytes;
      const out = new Uint8Array(bytes);
      new DataView(out.buffer).setInt32(((m.at % (n - 3)) >> 2) << 2, m.value, true);
      return out;
    }
    case "truncate":
      return bytes.slice(0, n === 0 ? 0 : m.at % n);
    case "insert": {
      const at = n === 0 ? 0 : m.at % n;
      const out = new Uint8Array(n + m.bytes.length);
      out.set(bytes.subarray(0, at));
      out.set(m.bytes, at);
      out.set(bytes.subarray(at), at + m.bytes.length);
      return out;
    }
    case "append": {
      const out = new Uint8Array(n + m.bytes.length);
      out.set(bytes);
      out.set(m.bytes, n);
      return out;
    }
    case "json-number":
      return editHeader(bytes, (json) => replaceNth(json, /-?\d+(\.\d+)?([eE][+-]?\d+)?/g, m.which, () => m.replacement));
    case "json-string":
      return editHeader(bytes, (json) => replaceNth(json, /"[^"]*"/g, m.which, () => JSON.stringify("x".repeat(m.length))));
    case "json-nest":
      return editHeader(bytes, (json) => replaceNth(json, /\[[^[\]]*\]/g, 0, (s) => "[".repeat(m.depth) + s + "]".repeat(m.depth)));
  }
}

export const mutate = (bytes: Uint8Array, ms: readonly Mutation[]): Uint8Array => ms.reduce(applyMutation, bytes);
