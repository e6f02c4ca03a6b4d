import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { readCheckpoint, serializeCheckpoint } from "../src/io/checkpoint.js";
import { loadTokenizerFile } from "../src/io/char-tokenizer.js";
import { FileFormatError } from "../src/io/errors.js";
import { readHfCheckpoint, writeHfCheckpoint } from "../src/io/hf-checkpoint.js";
import { HfTokenizer, llama2cTokenizerToJson } from "../src/io/hf-tokenizer.js";
import { loadTokenizer, readModel } from "../src/io/model-file.js";
import { readSafetensors, serializeSafetensors } from "../src/io/safetensors.js";
import { Tokenizer } from "../src/io/tokenizer.js";
import { crc32, type DatasetMeta, type DatasetRecord, DatasetWriter, readDataset, readDatasetMeta, validateMeta } from "../src/data/dataset.js";
import type { ModelConfig } from "../src/model/config.js";
import { randomCheckpoint } from "../src/model/init.js";
import { checkCheckpoint } from "../src/model/weights.js";
import { checkStudentMatchesTeacher, readStudent, serializeStudent, writeStudent } from "../src/ptp/files/adapter-file.js";
import { checkDraftMatchesTeacher, readDraft, serializeDraft, writeDraft } from "../src/ptp/files/draft-file.js";
import { readPeftStudent, studentToPeft, writePeftStudent } from "../src/ptp/files/peft.js";
import { loadStudent } from "../src/ptp/files/student-file.js";
import { teacherChecksum } from "../src/ptp/files/teacher-checksum.js";
import { randomDraft, randomStudent } from "../src/ptp/init.js";
import { AdamW } from "../src/train/optim.js";
import { makeParam } from "../src/train/param.js";
import { loadTrainCheckpoint, saveTrainCheckpoint } from "../src/train/train-checkpoint.js";
import { TOK_512 } from "./helpers.js";

/**
 * Every file reader against corrupted files, through its public entry point
 * (a path or a folder, as the CLI calls it). One small valid file (or
 * folder) per reader; each run mutates one of its files: truncation, 1-8
 * overwritten bytes, an aligned 4- or 8-byte field set to 0, 0xFFFFFFFF,
 * 0x7FFFFFFF, 2^31, a negative value..., and for JSON-bearing files edits of
 * the JSON (a deleted character, a value swapped for one of another type,
 * 1e300, 1e400, negative numbers, strings where numbers go, a 5000-character
 * string, an array nested 100,000 deep, a removed key, an edit inside JSON
 * held in a string), with the safetensors header length and the dataset
 * header's length and CRC fixed up so the edit reaches the deeper checks.
 *
 * Each read either succeeds with a structurally valid value (checked per
 * reader: the config and weights, a student that serialises, a tokenizer
 * that encodes, ...) or throws a FileFormatError (or an Error naming the
 * file or folder): never a raw TypeError / RangeError / SyntaxError, never
 * a multi-line or long message, nothing printed on the console, and it
 * returns within SLOW_MS without allocating more than MAX_ALLOC bytes.
 * Seeded (FUZZ_READERS_SEED replays another seed; FUZZ_READERS_RUNS sets the
 * runs per reader). After its property, each test replays the bugs the
 * fuzzing found in that reader (docs/RELIABILITY.md), as fixed cases.
 */
const RUNS = Number(process.env.FUZZ_READERS_RUNS ?? 300);
const SEED = Number(process.env.FUZZ_READERS_SEED ?? 20261130);
/** A read slower than this counts as a hang (generous: the machine is shared). */
const SLOW_MS = 3000;
/** More new memory than this in one read counts as an allocation sized from a length field. */
const MAX_ALLOC = 256 * 2 ** 20;
/** Per-test timeout. */
const TEST_MS = 120_000;

const tmp = mkdtempSync(join(tmpdir(), "ptp-fuzz-readers-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// ---------------------------------------------------------------------------
// Mutations.

/** 4-byte field values (written as uint32, little-endian): 0, -1, 2^31 - 1, 2^31, -2, -100, ... */
const FIELD32 = [0, 0xffffffff, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffff9c, 1, 0x40000000, 0x10000];
/** 8-byte field values (uint64): 0, -1, 2^63 - 1, 2^63, 2^31, 2^32, 2^53 + 1, -8. */
const FIELD64 = [0n, 2n ** 64n - 1n, 2n ** 63n - 1n, 2n ** 63n, 2n ** 31n, 2n ** 32n, 2n ** 53n + 1n, 2n ** 64n - 8n];
/** JSON texts that replace a value: other types, huge, negative, fractional, non-finite once parsed. */
const JSON_VALUES = ["0", "-1", "-7", "1.5", "1e300", "1e400", "-1e400", "2147483648", "4294967296", "9007199254740993", "-0", '"7"', '"abc"', '""', "null", "true", "false", "[]", "{}", "[-1, 2]", '{"a": 1}', "LONG_STRING", "DEEP_ARRAY"];
/** The long values, named in JSON_VALUES so that a counterexample stays short. */
const rawJson = (raw: string): string => (raw === "LONG_STRING" ? JSON.stringify("x".repeat(5000)) : raw === "DEEP_ARRAY" ? "[".repeat(100_000) + "]".repeat(100_000) : raw);

type ByteMutation = { kind: "truncate"; at: number } | { kind: "bytes"; edits: { at: number; value: number }[] } | { kind: "field"; at: number; width: 4 | 8; pick: number };
type JsonEdit = { kind: "delete-char"; at: number } | { kind: "replace" | "remove" | "inner"; depth: number; node: number; raw: string; innerDepth: number; innerNode: number };
type Mutation = ByteMutation | JsonEdit;

/** Offsets biased to the start of a file, where headers live. */
const offset = fc.oneof(fc.nat(64), fc.nat(1024), fc.nat());

const byteMutation: fc.Arbitrary<ByteMutation> = fc.oneof(
  fc.record({ kind: fc.constant("truncate" as const), at: fc.oneof(fc.nat(64), fc.nat()) }),
  fc.record({ kind: fc.constant("bytes" as const), edits: fc.array(fc.record({ at: offset, value: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant("field" as const), at: offset, width: fc.constantFrom(4 as const, 8 as const), pick: fc.nat() }),
);

const jsonEdit: fc.Arbitrary<JsonEdit> = fc.oneof(
  fc.record({ kind: fc.constant("delete-char" as const), at: fc.nat() }),
  fc.record({ kind: fc.constantFrom("replace" as const, "remove" as const, "inner" as const), depth: fc.nat(), node: fc.nat(), raw: fc.constantFrom(...JSON_VALUES), innerDepth: fc.nat(), innerNode: fc.nat() }),
);

function mutateBytes(bytes: Uint8Array, m: ByteMutation): Uint8Array {
  const n = bytes.length;
  if (n === 0) return bytes;
  if (m.kind === "truncate") return bytes.slice(0, m.at % n);
  const out = new Uint8Array(bytes);
  if (m.kind === "bytes") {
    for (const e of m.edits) out[e.at % n] = e.value;
    return out;
  }
  if (n < m.width) return out;
  const at = Math.floor((m.at % (n - m.width + 1)) / m.width) * m.width;
  const dv = new DataView(out.buffer);
  if (m.width === 4) dv.setUint32(at, FIELD32[m.pick % FIELD32.length], true);
  else dv.setBigUint64(at, FIELD64[m.pick % FIELD64.length], true);
  return out;
}

const SENTINEL = "\u0000raw-json\u0000";

/** Every non-root node of a parsed JSON value, with its container and key, grouped by depth. */
function nodesByDepth(root: unknown): { parent: Record<string, unknown> | unknown[]; key: string | number; value: unknown }[][] {
  const levels: { parent: Record<string, unknown> | unknown[]; key: string | number; value: unknown }[][] = [];
  const walk = (v: unknown, depth: number): void => {
    if (typeof v !== "object" || v === null) return;
    const entries: [string | number, unknown][] = Array.isArray(v) ? v.map((x, i) => [i, x]) : Object.entries(v);
    for (const [key, value] of entries) {
      (levels[depth] ??= []).push({ parent: v as Record<string, unknown>, key, value });
      walk(value, depth + 1);
    }
  };
  walk(root, 0);
  return levels;
}

/** A structural edit of JSON text (a value replaced by `raw`, a key removed, or an edit inside JSON held in a string); text that does not parse (or nests too deep to walk) is returned as it is. */
function editJson(text: string, depthPick: number, nodePick: number, kind: "replace" | "remove" | "inner", raw: string, inner?: { depth: number; node: number }): string {
  try {
    return editJsonTree(text, depthPick, nodePick, kind, raw, inner);
  } catch (err) {
    if (err instanceof RangeError) return text; // an earlier edit nested it 100,000 deep
    throw err;
  }
}

function editJsonTree(text: string, depthPick: number, nodePick: number, kind: "replace" | "remove" | "inner", raw: string, inner?: { depth: number; node: number }): string {
  let root: unknown;
  try {
    root = JSON.parse(text);
  } catch {
    return text;
  }
  const levels = nodesByDepth(root);
  if (levels.length === 0) return raw;
  const level = levels[depthPick % levels.length];
  const { parent, key, value } = level[nodePick % level.length];
  let replacement: unknown = SENTINEL;
  if (kind === "inner" && inner && typeof value === "string" && /^\s*[[{]/.test(value)) replacement = editJsonTree(value, inner.depth, inner.node, "replace", raw);
  else if (kind === "remove") {
    if (Array.isArray(parent)) parent.splice(key as number, 1);
    else delete parent[key as string];
    return JSON.stringify(root);
  }
  if (Array.isArray(parent)) parent[key as number] = replacement;
  else Object.defineProperty(parent, key as string, { value: replacement, enumerable: true, writable: true, configurable: true });
  return JSON.stringify(root).replace(JSON.stringify(SENTINEL), raw);
}

function mutateJsonText(text: string, m: JsonEdit): string {
  if (m.kind === "delete-char") return text.length === 0 ? text : text.slice(0, m.at % text.length) + text.slice((m.at % text.length) + 1);
  return editJson(text, m.depth, m.node, m.kind, rawJson(m.raw), { depth: m.innerDepth, node: m.innerNode });
}

const utf8 = new TextEncoder();

/** How a file holds JSON: all of it, a safetensors header (length fixed up), a dataset header (length and CRC fixed up), or none. */
type JsonKind = "none" | "text" | "safetensors" | "dataset";

/** The safetensors file with its header JSON edited (length fixed up); anything that is not one passes through. */
function editSafetensorsHeader(bytes: Uint8Array, m: JsonEdit): Uint8Array {
  if (bytes.length < 8) return bytes;
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  if (n > bytes.length - 8) return bytes;
  const header = utf8.encode(mutateJsonText(Buffer.from(bytes.subarray(8, 8 + n)).toString("utf8"), m));
  const out = new Uint8Array(8 + header.length + bytes.length - 8 - n);
  new DataView(out.buffer).setBigUint64(0, BigInt(header.length), true);
  out.set(header, 8);
  out.set(bytes.subarray(8 + n), 8 + header.length);
  return out;
}

/** The dataset file with its header JSON edited, padded with spaces to a multiple of 4, its length and CRC fixed up. */
function editDatasetHeader(bytes: Uint8Array, m: JsonEdit): Uint8Array {
  if (bytes.length < 16) return bytes;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = dv.getUint32(12, true);
  if (16 + n + 4 > bytes.length) return bytes;
  let json = utf8.encode(
    mutateJsonText(
      Buffer.from(bytes.subarray(16, 16 + n))
        .toString("utf8")
        .trimEnd(),
      m,
    ),
  );
  const padded = new Uint8Array(Math.ceil(json.length / 4) * 4).fill(0x20);
  padded.set(json);
  json = padded;
  const out = new Uint8Array(16 + json.length + 4 + bytes.length - (16 + n + 4));
  out.set(bytes.subarray(0, 16));
  const odv = new DataView(out.buffer);
  odv.setUint32(12, json.length, true);
  out.set(json, 16);
  odv.setUint32(16 + json.length, crc32(out.subarray(0, 16 + json.length)), true);
  out.set(bytes.subarray(16 + n + 4), 16 + json.length + 4);
  return out;
}

function applyMutation(bytes: Uint8Array, json: JsonKind, m: Mutation): Uint8Array {
  if (m.kind === "truncate" || m.kind === "bytes" || m.kind === "field") return mutateBytes(bytes, m);
  if (json === "text") return utf8.encode(mutateJsonText(Buffer.from(bytes).toString("utf8"), m));
  if (json === "safetensors") return editSafetensorsHeader(bytes, m);
  if (json === "dataset") return editDatasetHeader(bytes, m);
  return bytes;
}

const mutationsFor = (json: JsonKind): fc.Arbitrary<Mutation[]> => fc.array(json === "none" ? byteMutation : fc.oneof({ weight: 2, arbitrary: byteMutation }, { weight: 3, arbitrary: jsonEdit }), { minLength: 1, maxLength: 2 });

// ---------------------------------------------------------------------------
// The property.

/** One file of a reader's input: its path, valid bytes and how it holds JSON. */
interface Part {
  path: string;
  bytes: Uint8Array;
  json: JsonKind;
}

const tally: Record<string, { accepted: number; refused: number }> = {};
const RAW = [TypeError, RangeError, SyntaxError, ReferenceError];

/**
 * Runs `read`: it must return (then `validate` must pass on its value) or
 * throw a FileFormatError or an Error naming one of `names`, in one line,
 * quickly and without a huge allocation.
 */
function attempt<T>(id: string, names: readonly string[], read: () => T, validate?: (value: T) => void): void {
  const t = (tally[id] ??= { accepted: 0, refused: 0 });
  const before = process.memoryUsage();
  const start = performance.now();
  let value: T | undefined;
  let error: unknown;
  let threw = false;
  // A reader speaks through its result or its error: nothing on the console (a library's warning about a malformed part is a part accepted silently).
  const printed: string[] = [];
  const saved = { log: console.log, warn: console.warn, error: console.error, info: console.info };
  const capture = (...args: unknown[]) => void printed.push(args.map(String).join(" "));
  Object.assign(console, { log: capture, warn: capture, error: capture, info: capture });
  try {
    value = read();
  } catch (err) {
    error = err;
    threw = true;
  } finally {
    Object.assign(console, saved);
  }
  const ms = performance.now() - start;
  if (printed.length > 0) throw new Error(`${id}: the read printed to the console (${threw ? "then refused the file" : "and accepted the file"}): ${printed[0].slice(0, 200)}`);
  const after = process.memoryUsage();
  const grown = Math.max(after.arrayBuffers - before.arrayBuffers, after.heapUsed - before.heapUsed);
  if (ms > SLOW_MS) throw new Error(`${id}: the read took ${Math.round(ms)} ms (a hang?)${threw ? `, then threw: ${String((error as Error)?.message).slice(0, 200)}` : ""}`);
  if (grown > MAX_ALLOC) throw new Error(`${id}: the read allocated ${Math.round(grown / 2 ** 20)} MiB (a size taken from the file unchecked?)`);
  if (!threw) {
    try {
      validate?.(value as T);
    } catch (err) {
      throw new Error(`${id}: a corrupted file was accepted, but the value is not valid: ${(err as Error)?.name}: ${String((err as Error)?.message).slice(0, 400)}\n${(err as Error)?.stack?.split("\n").slice(1, 6).join("\n")}`);
    }
    t.accepted++;
    return;
  }
  const e = error as Error;
  if (!(e instanceof Error)) throw new Error(`${id}: the reader threw a non-Error: ${String(e)}`);
  const raw = RAW.find((C) => e instanceof C);
  if (raw !== undefined) throw new Error(`${id}: raw ${e.name} from the reader: ${e.message.slice(0, 400)}\n${e.stack?.split("\n").slice(1, 6).join("\n")}`);
  if (!(e instanceof FileFormatError) && !names.some((n) => e.message.includes(n))) throw new Error(`${id}: ${e.name} without the file's name: ${e.message.slice(0, 400)}`);
  if (e.message.includes("\n") || e.message.length > 1000) throw new Error(`${id}: a message of ${e.message.length} characters or several lines: ${e.message.slice(0, 300)}`);
  t.refused++;
}

/**
 * The fuzz property of one reader: every run writes a mutant of one of the
 * parts (the others stay valid), calls `read` (given a boolean to vary
 * options) and restores the part.
 */
function fuzz<T>(id: string, parts: readonly Part[], names: readonly string[], read: (flag: boolean) => T, validate?: (value: T) => void, runs = RUNS): void {
  for (const p of parts) writeFileSync(p.path, p.bytes);
  // The valid input reads, and validates.
  for (const flag of [false, true]) {
    const accepted = tally[id]?.accepted ?? 0;
    attempt(id, names, () => read(flag), validate);
    expect(tally[id].accepted, `${id}: the valid input must read`).toBe(accepted + 1);
  }
  const refused = tally[id].refused;
  const pick = fc.nat(parts.length - 1).chain((i) => fc.tuple(fc.constant(i), mutationsFor(parts[i].json), fc.boolean()));
  fc.assert(
    fc.property(pick, ([i, ms, flag]) => {
      const part = parts[i];
      writeFileSync(
        part.path,
        ms.reduce<Uint8Array>((b, m) => applyMutation(b, part.json, m), part.bytes),
      );
      try {
        attempt(id, names, () => read(flag), validate);
      } finally {
        writeFileSync(part.path, part.bytes);
      }
    }),
    { numRuns: runs, seed: SEED },
  );
  expect(tally[id].refused, `${id}: some mutants must be refused (the mutations reach the reader)`).toBeGreaterThan(refused);
}

// ---------------------------------------------------------------------------
// Small valid inputs.

const TEACHER_CONFIG: ModelConfig = { dim: 8, hiddenDim: 12, nLayers: 2, nHeads: 2, nKvHeads: 1, vocabSize: 32, seqLen: 16, sharedClassifier: false, normEps: 1e-5, ropeTheta: 10000 };
const teacher = randomCheckpoint(TEACHER_CONFIG, 11);
const checksum = teacherChecksum(teacher);
const student = randomStudent(teacher, checksum, { variant: "C", rank: 2, alpha: 4, aux: { kind: "digits", digits: 6 }, window: 4, seed: 3 });
const peftStudent = randomStudent(teacher, checksum, { variant: "C", rank: 2, alpha: 4, aux: { kind: "bits" }, window: 4, seed: 5 });
const draft = randomDraft(teacher, checksum, { variant: "O", aux: { kind: "anchors" }, window: 4, seed: 3, config: { dim: 8, nLayers: 1, nHeads: 2, nKvHeads: 1, hiddenDim: 12 } });

const folder = (name: string): string => {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  return dir;
};
const bytesOf = (path: string): Uint8Array => new Uint8Array(readFileSync(path));

/** The message of the FileFormatError `read` throws (anything else fails the test). */
function refusal(read: () => unknown): string {
  try {
    read();
  } catch (err) {
    expect(err, String(err)).toBeInstanceOf(FileFormatError);
    return (err as Error).message;
  }
  throw new Error("expected a FileFormatError, but the read succeeded");
}

/** JSON of `value` with the string MARK replaced by `raw` (e.g. an array nested 100,000 deep). */
const MARK = "\u0000mark\u0000";
const jsonWith = (value: unknown, raw: string): string => JSON.stringify(value).replace(JSON.stringify(MARK), raw);
const DEEP = rawJson("DEEP_ARRAY");
const DEEP_SHOWN = "(a value too deeply nested to show)";

describe("FUZZ readers: corrupted files are read or refused by name, never a raw V8 error, a hang or a huge allocation", () => {
  it(
    "FUZZ-READ-CHECKPOINT: llama2.c checkpoints v0 and v1 (readCheckpoint, readModel)",
    () => {
      for (const version of [0, 1] as const) {
        const path = join(tmp, `model-v${version}.bin`);
        fuzz(
          "FUZZ-READ-CHECKPOINT",
          [{ path, bytes: serializeCheckpoint(teacher, version), json: "none" }],
          [path],
          (flag) => (flag ? readModel(path) : readCheckpoint(path)),
          (ckpt) => checkCheckpoint(ckpt, "fuzz"),
          RUNS / 2,
        );
      }
    },
    TEST_MS,
  );

  it(
    "FUZZ-READ-TOKENIZER: llama2.c tokenizer.bin (Tokenizer.load for the model's vocab, loadTokenizerFile, loadTokenizer)",
    () => {
      const path = join(tmp, "tok512.bin");
      fuzz(
        "FUZZ-READ-TOKENIZER",
        [{ path, bytes: bytesOf(TOK_512), json: "none" }],
        [path],
        (flag) => {
          const tok = flag ? loadTokenizerFile(path) : loadTokenizer(path, 512);
          return tok as Tokenizer;
        },
        (tok) => {
          expect(tok.vocabSize).toBeGreaterThan(3);
          tok.decode(tok.encode("Once upon a time, a cat sat.", true, false));
        },
      );
      // Tokenizer.load itself (loadTokenizer's path for a .bin).
      attempt("FUZZ-READ-TOKENIZER", [path], () => Tokenizer.load(path, 512));
      // Found: a file cut at an entry boundary is a well-formed tokenizer.bin; read without a model, one of 4 tokens was accepted, and encoding then threw a RangeError (no byte-fallback token for " ").
      const tok = bytesOf(TOK_512);
      let off = 4;
      for (let i = 0; i < 4; i++) off += 8 + new DataView(tok.buffer).getInt32(off + 4, true);
      writeFileSync(path, tok.subarray(0, off));
      expect(refusal(() => loadTokenizerFile(path))).toBe(`${path}: holds 4 tokens, fewer than the 259 of <unk>, BOS, EOS and the byte-fallback tokens <0x00>..<0xFF> (truncated?)`);
    },
    TEST_MS,
  );

  it(
    "FUZZ-READ-SAFETENSORS: a safetensors file of F32, I32 and U8 tensors with metadata (readSafetensors; header JSON edits)",
    () => {
      const path = join(tmp, "plain.safetensors");
      const bytes = serializeSafetensors(
        {
          "a.weight": { dtype: "F32", shape: [3, 4], data: Float32Array.from({ length: 12 }, (_, i) => i / 7) },
          "b.ids": { dtype: "I32", shape: [5], data: Int32Array.of(1, -2, 3, -4, 5) },
          "c.bytes": { dtype: "U8", shape: [2, 3], data: Uint8Array.of(1, 2, 3, 4, 5, 6) },
          "d.empty": { dtype: "F32", shape: [0, 4], data: new Float32Array(0) },
        },
        { format: "pt", note: JSON.stringify({ n: 3, list: [1, 2] }) },
      );
      fuzz(
        "FUZZ-READ-SAFETENSORS",
        [{ path, bytes, json: "safetensors" }],
        [path],
        () => readSafetensors(path),
        (file) => {
          for (const [name, t] of file.tensors) {
            expect(
              t.shape.every((d) => Number.isSafeInteger(d) && d >= 0),
              name,
            ).toBe(true);
            // == : a dimension written -0 reads as -0, harmless (its product is -0 == 0).
            expect(t.data.length === t.shape.reduce((a, b) => a * b, 1), name).toBe(true);
          }
        },
      );
    },
    TEST_MS,
  );

  it(
    "FUZZ-READ-STUDENT: a student adapter file (readStudent, loadStudent; then the teacher check)",
    () => {
      const path = join(tmp, "student.safetensors");
      writeStudent(path, student);
      fuzz(
        "FUZZ-READ-STUDENT",
        [{ path, bytes: bytesOf(path), json: "safetensors" }],
        [path],
        (flag) => (flag ? loadStudent(path) : readStudent(path)),
        (s) => {
          serializeStudent(s);
          // May refuse (another teacher), naming the file: a plain Error is fine there.
          try {
            checkStudentMatchesTeacher(s, teacher, checksum, path);
          } catch (err) {
            if (RAW.some((C) => err instanceof C) || !(err as Error).message.includes(path)) throw err;
          }
        },
      );
    },
    TEST_MS,
  );

  it(
    "FUZZ-READ-DRAFT: a draft model file (readDraft; then the teacher check)",
    () => {
      const path = join(tmp, "draft.safetensors");
      writeDraft(path, draft);
      fuzz(
        "FUZZ-READ-DRAFT",
        [{ path, bytes: bytesOf(path), json: "safetensors" }],
        [path],
        () => readDraft(path),
        (d) => {
          serializeDraft(d);
          try {
            checkDraftMatchesTeacher(d, teacher, checksum, path);
          } catch (err) {
            if (RAW.some((C) => err instanceof C) || !(err as Error).message.includes(path)) throw err;
          }
        },
      );
    },
    TEST_MS,
  );

  it(
    "FUZZ-READ-PEFT: a PEFT adapter folder, adapter_config.json or adapter_model.safetensors corrupted (readPeftStudent with and without the teacher, loadStudent)",
    () => {
      // As written here (every layer), and as PEFT writes a student of layer 1 only (layers_to_transform [1]: layer 0's LoRA reads as zeros).
      const whole = folder("peft");
      writePeftStudent(whole, peftStudent, { baseModel: "tiny" });
      const partial = folder("peft-partial");
      const { tensors, config } = studentToPeft(peftStudent);
      writeFileSync(join(partial, "adapter_model.safetensors"), serializeSafetensors(Object.fromEntries(Object.entries(tensors).filter(([k]) => !k.includes(".layers.0."))), { format: "pt" }));
      writeFileSync(join(partial, "adapter_config.json"), JSON.stringify({ ...config, layers_to_transform: [1] }, null, 2));
      for (const dir of [whole, partial]) {
        const parts: Part[] = [
          { path: join(dir, "adapter_config.json"), bytes: bytesOf(join(dir, "adapter_config.json")), json: "text" },
          { path: join(dir, "adapter_model.safetensors"), bytes: bytesOf(join(dir, "adapter_model.safetensors")), json: "safetensors" },
        ];
        fuzz(
          "FUZZ-READ-PEFT",
          parts,
          [dir],
          (withTeacher) => (withTeacher ? readPeftStudent(dir, { teacher: { checkpoint: teacher, checksum } }) : loadStudent(dir)),
          (s) => void serializeStudent(s),
          RUNS / 2,
        );
      }
      // Found: values of adapter_config.json were echoed with JSON.stringify or a template (a RangeError, call stack exceeded, for one nested 100,000 deep).
      const cfgPath = join(whole, "adapter_config.json");
      const good = JSON.parse(readFileSync(cfgPath, "utf8"));
      writeFileSync(cfgPath, jsonWith({ ...good, peft_type: MARK }, DEEP));
      expect(refusal(() => loadStudent(whole))).toBe(`${cfgPath}: peft_type ${DEEP_SHOWN} is not supported (expected "LORA")`);
      writeFileSync(cfgPath, jsonWith({ ...good, ptp: { ...good.ptp, variant: MARK } }, DEEP));
      expect(refusal(() => loadStudent(whole))).toBe(`${cfgPath}: "ptp.variant" must be "O" or "C", found ${DEEP_SHOWN}`);
      writeFileSync(cfgPath, JSON.stringify(good));
      // Found: "r" sized the zeros of the layers a folder leaves out before any tensor backed it: layer 0 of the partial folder with r 2^20 allocated 0.5 GB before layer 1 showed r wrong, and r 2^31 threw "Invalid typed array length".
      const partialCfg = join(partial, "adapter_config.json");
      writeFileSync(partialCfg, JSON.stringify({ ...config, layers_to_transform: [1], r: 2 ** 20 }));
      attempt("FUZZ-READ-PEFT", [partial], () => loadStudent(partial));
      expect(refusal(() => loadStudent(partial))).toMatch(/adapter_model.safetensors: tensor "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight" has shape \[2, 8\], expected \[1048576, 8\]$/);
      const empty = folder("peft-no-lora");
      writeFileSync(join(empty, "adapter_model.safetensors"), serializeSafetensors(Object.fromEntries(Object.entries(tensors).filter(([k]) => !k.includes(".lora_"))), { format: "pt" }));
      writeFileSync(join(empty, "adapter_config.json"), JSON.stringify({ ...config, layers_to_transform: [], r: 2 ** 31 }));
      // And a folder without any LoRA pair backs "r" with nothing at all: refused before any zeros are made.
      expect(refusal(() => loadStudent(empty))).toMatch(/adapter_model.safetensors: holds no LoRA weights \(no lora_A \/ lora_B pair for any layer and module\), so nothing backs "r" 2147483648; /);
    },
    TEST_MS,
  );

  it(
    "FUZZ-READ-HF-FOLDER: Hugging Face folders, one file and sharded with an index: config.json, the index or a safetensors file corrupted (readHfCheckpoint, readModel)",
    () => {
      const single = folder("hf-single");
      writeHfCheckpoint(single, teacher);
      const sharded = folder("hf-sharded");
      const written = writeHfCheckpoint(sharded, teacher, { maxShardBytes: 1500 });
      expect(written.length).toBeGreaterThan(3);
      for (const dir of [single, sharded]) {
        const files = dir === single ? [join(dir, "config.json"), join(dir, "model.safetensors")] : written;
        const parts: Part[] = files.map((path) => ({ path, bytes: bytesOf(path), json: path.endsWith(".json") ? "text" : "safetensors" }));
        fuzz(
          "FUZZ-READ-HF-FOLDER",
          parts,
          [dir],
          (flag) => (flag ? readModel(dir) : readHfCheckpoint(dir)),
          (ckpt) => checkCheckpoint(ckpt, "fuzz"),
          RUNS / 2,
        );
      }
      // Found: a weight_map file name was echoed with JSON.stringify (a RangeError for one nested 100,000 deep), and a 5000-character name became the path of a 5000-character message.
      const indexPath = join(sharded, "model.safetensors.index.json");
      const index = JSON.parse(readFileSync(indexPath, "utf8"));
      const first = Object.keys(index.weight_map)[0];
      writeFileSync(indexPath, jsonWith({ ...index, weight_map: { ...index.weight_map, [first]: MARK } }, DEEP));
      expect(refusal(() => readHfCheckpoint(sharded))).toBe(`${indexPath}: weight_map entry ${JSON.stringify(first)} must name a file in the folder, found ${DEEP_SHOWN}`);
      writeFileSync(indexPath, JSON.stringify({ ...index, weight_map: { ...index.weight_map, [first]: "x".repeat(5000) } }));
      const long = refusal(() => readHfCheckpoint(sharded));
      expect(long).toMatch(/must name a file in the folder, found "x+\.\.\. \(5002 characters\)$/);
      expect(long.length).toBeLessThan(600);
      // Found: a NUL byte in a name reached the file system, whose error followed the raw byte.
      writeFileSync(indexPath, JSON.stringify({ ...index, weight_map: { ...index.weight_map, [first]: "model\u0000.safetensors" } }));
      expect(refusal(() => readHfCheckpoint(sharded))).toBe(`${indexPath}: weight_map entry ${JSON.stringify(first)} must name a file in the folder, found "model\\u0000.safetensors"`);
      writeFileSync(indexPath, JSON.stringify(index));
    },
    TEST_MS,
  );

  it(
    "FUZZ-READ-HF-TOKENIZER: tokenizer.json and tokenizer_config.json (HfTokenizer.load, loadTokenizer; then encode and decode)",
    () => {
      const dir = folder("hf-tokenizer");
      const json = llama2cTokenizerToJson(Tokenizer.load(TOK_512, 512));
      const path = join(dir, "tokenizer.json");
      const cfg = join(dir, "tokenizer_config.json");
      const parts: Part[] = [
        { path, bytes: utf8.encode(JSON.stringify(json, null, 1)), json: "text" },
        { path: cfg, bytes: utf8.encode(JSON.stringify({ tokenizer_class: "LlamaTokenizerFast", bos_token: "<s>", eos_token: "</s>", unk_token: "<unk>", add_bos_token: true, add_eos_token: false, legacy: true })), json: "text" },
      ];
      fuzz(
        "FUZZ-READ-HF-TOKENIZER",
        parts,
        [dir],
        (flag) => (flag ? loadTokenizer(path, 512) : HfTokenizer.load(path, 512)),
        (tok) => {
          const ids = tok.encode("Once upon a time, a cat sat.", true, false);
          tok.decode(ids);
          for (let i = 1; i < ids.length; i++) tok.decodePiece(ids[i - 1], ids[i]);
        },
      );
      // Found: parts the library takes leniently. A Replace step whose pattern was {} or missing was skipped (the library printed "Unknown pattern type" and dropped the step); model.end_of_word_suffix nested 100,000 deep was accepted, then encode overflowed the stack; a decoder nested 100,000 deep overflowed JSON.stringify (RangeError from load).
      type Step = Record<string, unknown>;
      type Parts = { normalizer: { normalizers: Step[] }; decoder: { decoders: Step[] }; model: Step };
      const edited = (edit: (j: Parts) => void): string => {
        const j = structuredClone(json) as unknown as Parts;
        edit(j);
        return JSON.stringify(j).replace(JSON.stringify(MARK), DEEP);
      };
      const cases: [(j: Parts) => void, string][] = [
        [(j) => void (j.normalizer.normalizers[1].pattern = {}), `${path}: normalizer.normalizers[1].pattern is {}, expected {"String": text} or {"Regex": text}`],
        [(j) => void delete j.normalizer.normalizers[1].pattern, `${path}: normalizer.normalizers[1] (a Replace step) has no "pattern"`],
        [(j) => void (j.model.end_of_word_suffix = MARK), `${path}: model.end_of_word_suffix must be a string or null, found ${DEEP_SHOWN}`],
        [(j) => void (j.decoder.decoders[3].extra = MARK), `${path}: decoder is nested more than 64 levels deep (at decoder.decoders[3].extra${"[0]".repeat(62)})`],
      ];
      for (const [edit, message] of cases) {
        writeFileSync(path, edited(edit));
        expect(refusal(() => HfTokenizer.load(path, 512))).toBe(message);
      }
      writeFileSync(path, parts[0].bytes);
    },
    TEST_MS,
  );

  it(
    "FUZZ-READ-DATASET: a distillation dataset, header JSON edits with length and CRC fixed up (readDataset with and without allowTornTail, readDatasetMeta); an accepted mutant holds a prefix of the records",
    () => {
      const path = join(tmp, "data.ptpd");
      const meta: DatasetMeta = {
        teacher: "ab".repeat(32),
        backend: "js",
        vocabSize: 32,
        seqLen: 16,
        sampling: { temperature: 0.8, topK: 0, topP: 1 },
        seed: 7,
        samplesPerPrompt: 2,
        maxSteps: 6,
        prompts: { source: "prompts.txt", count: 2, sha256: "cd".repeat(32) },
      };
      const records: DatasetRecord[] = [0, 1, 2].map((r) => ({
        promptLength: 2,
        tokens: Int32Array.from({ length: 6 }, (_, i) => (i === 0 ? 1 : (r * 5 + i * 3) % 32)),
        left: Float32Array.from({ length: 4 }, (_, j) => j / 8),
        right: Float32Array.from({ length: 4 }, (_, j) => (j + 1) / 8),
      }));
      const w = DatasetWriter.open(path, meta, { resume: false });
      for (const r of records) w.append(r);
      w.close();
      const original = readDataset(path).records;
      fuzz(
        "FUZZ-READ-DATASET",
        [{ path, bytes: bytesOf(path), json: "dataset" }],
        [path],
        (allowTornTail) => {
          const m = readDatasetMeta(path);
          return { m, d: readDataset(path, { allowTornTail }) };
        },
        ({ m, d }) => {
          if (m.backend !== undefined) validateMeta(m);
          expect(d.records.length).toBeLessThanOrEqual(original.length);
          d.records.forEach((rec, i) => expect(rec).toEqual(original[i]));
        },
      );
    },
    TEST_MS,
  );

  it(
    "FUZZ-READ-TRAIN-CHECKPOINT: a training checkpoint (loadTrainCheckpoint into an optimizer of the same params; on refusal the optimizer is unchanged)",
    () => {
      const make = () => new AdamW([makeParam("w", [3, 4], new Float32Array(12).fill(0.5), true), makeParam("b", [4], new Float32Array(4), false)], { lr: 1e-3 });
      const path = join(tmp, "train.safetensors");
      const opt0 = make();
      saveTrainCheckpoint(path, opt0, { rng: 7, dataCursor: { seconds: 1, record: [2, 3] }, config: { lr: 0.001, steps: 10 } });
      let opt = make();
      fuzz(
        "FUZZ-READ-TRAIN-CHECKPOINT",
        [{ path, bytes: bytesOf(path), json: "safetensors" }],
        [path],
        () => {
          opt = make();
          try {
            return loadTrainCheckpoint(path, opt);
          } catch (err) {
            // Refused: nothing was written into the optimizer.
            expect(opt.t).toBe(0);
            throw err;
          }
        },
        (info) => {
          expect(Number.isSafeInteger(info.step) && info.step >= 0).toBe(true);
          for (const p of opt.params) expect(p.data.every((x) => Number.isFinite(x))).toBe(true);
        },
      );
    },
    TEST_MS,
  );

  it("FUZZ-READ-TALLY: every reader saw both outcomes", () => {
    for (const [id, t] of Object.entries(tally)) {
      expect(t.accepted, id).toBeGreaterThan(0);
      expect(t.refused, id).toBeGreaterThan(0);
    }
  });
});
