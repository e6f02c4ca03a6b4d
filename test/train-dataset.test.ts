import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { readCheckpoint } from "../src/io/checkpoint.js";
import { randomCheckpoint } from "../src/model/init.js";
import { FileFormatError } from "../src/io/errors.js";
import { Mulberry32 } from "../src/util/prng.js";
import { BOS, Tokenizer } from "../src/io/tokenizer.js";
import type { ModelConfig } from "../src/model/config.js";
import { Transformer } from "../src/model/transformer.js";
import type { Checkpoint } from "../src/model/weights.js";
import { teacherChecksum } from "../src/ptp/files/teacher-checksum.js";
import { binOf, pick } from "../src/sampling/pick.js";
import { samplingDistribution } from "../src/sampling/processors.js";
import { checkDatasetMatchesTeacher, crc32, DATASET_MAGIC, DatasetMismatchError, DatasetWriter, encodeHeader, encodeRecord, readDataset, readDatasetMeta, type DatasetMeta, type DatasetRecord } from "../src/data/dataset.js";
import { betaSample, drawU } from "../src/sampling/u-in-bin.js";
import { bosPrompts, datasetMeta, generateRecord, metaSampling, nextU, pregenerate, promptsDigest, recordPrompt, recordRng, type PromptSet } from "../src/data/pregenerate.js";
import { backend, formatError, pregenFixture, runCli, STORIES_260K, tinyCheckpoint, TOK_512 } from "./helpers.js";

const tmp = mkdtempSync(join(tmpdir(), "ptp-train-dataset-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let fileCounter = 0;
const tmpFile = (name = "d.bin"): string => join(tmp, `${fileCounter++}-${name}`);
const bytesOf = (path: string): Buffer => readFileSync(path);

// ---------------------------------------------------------------------------
// Synthetic metadata and records for the format tests.

const HEX = "ab".repeat(32);
const META: DatasetMeta = {
  teacher: HEX,
  backend: "wasm (relaxed SIMD)",
  vocabSize: 40,
  seqLen: 32,
  sampling: { temperature: 0.7, topK: 50, topP: 0.95 },
  seed: 7,
  samplesPerPrompt: 3,
  maxSteps: 10,
  prompts: { source: "prompts.txt", count: 4, sha256: "cd".repeat(32) },
};

/** An exactly representable float32 bin: [i, i + w) / 2^20, inside [0, 1]. */
const binArb = fc.integer({ min: 0, max: (1 << 20) - 1 }).chain((i) => fc.integer({ min: 1, max: (1 << 20) - i }).map((w) => [i / 2 ** 20, (i + w) / 2 ** 20] as const));

const recordArb = (meta: DatasetMeta): fc.Arbitrary<DatasetRecord> =>
  fc
    .record({
      prompt: fc.array(fc.integer({ min: 0, max: meta.vocabSize - 1 }), { minLength: 0, maxLength: 5 }),
      sampled: fc.array(fc.tuple(fc.integer({ min: 0, max: meta.vocabSize - 1 }), binArb), { minLength: 1, maxLength: meta.maxSteps }),
    })
    .map(({ prompt, sampled }) => ({
      promptLength: prompt.length + 1,
      tokens: Int32Array.from([BOS, ...prompt, ...sampled.map(([t]) => t)]),
      left: Float32Array.from(sampled.map(([, b]) => b[0])),
      right: Float32Array.from(sampled.map(([, b]) => b[1])),
    }));

function writeRecords(path: string, meta: DatasetMeta, records: readonly DatasetRecord[]): void {
  const w = DatasetWriter.open(path, meta, { resume: false });
  for (const r of records) w.append(r);
  w.close();
}

function expectSameRecords(a: readonly DatasetRecord[], b: readonly DatasetRecord[]): void {
  expect(a.length).toBe(b.length);
  a.forEach((r, i) => {
    expect(r.promptLength, `record ${i}`).toBe(b[i].promptLength);
    expect(Array.from(r.tokens), `record ${i}`).toEqual(Array.from(b[i].tokens));
    expect(Array.from(r.left), `record ${i}`).toEqual(Array.from(b[i].left));
    expect(Array.from(r.right), `record ${i}`).toEqual(Array.from(b[i].right));
  });
}

/**
 * A version 1 file with the same records (what builds before version 2
 * wrote): the header's metadata without `backend` and with `extra`.
 */
function asVersion1(bytes: Buffer, extra: Record<string, unknown> = {}): Buffer {
  const n = bytes.readUInt32LE(12);
  const meta = JSON.parse(bytes.subarray(16, 16 + n).toString("utf8"));
  delete meta.backend;
  const json = Buffer.from(JSON.stringify({ ...meta, ...extra }));
  const head = Buffer.alloc(16 + Math.ceil(json.length / 4) * 4, 0x20);
  head.write(DATASET_MAGIC, 0, "latin1");
  head.writeUInt32LE(1, 8);
  head.writeUInt32LE(head.length - 16, 12);
  json.copy(head, 16);
  const crc = Buffer.alloc(4);
  crc.writeUInt32LE(crc32(head), 0);
  return Buffer.concat([head, crc, bytes.subarray(16 + n + 4)]);
}

/** Byte offsets where each record ends, from the header's end on. */
function recordEnds(meta: DatasetMeta, records: readonly DatasetRecord[]): number[] {
  let o = encodeHeader(meta).length;
  const ends = [o];
  records.forEach((r, i) => ends.push((o += encodeRecord(i, r).length)));
  return ends;
}

describe("dataset format", () => {
  it("DATA-ROUNDTRIP: records written are read back exactly, with the metadata; the bytes are header + encoded records", () => {
    fc.assert(
      fc.property(fc.array(recordArb(META), { minLength: 0, maxLength: 12 }), (records) => {
        const path = tmpFile();
        writeRecords(path, META, records);
        const d = readDataset(path);
        expect(d.meta).toEqual(META);
        expectSameRecords(d.records, records);
        expect(readDatasetMeta(path)).toEqual(META);
        const expected = Buffer.concat([encodeHeader(META), ...records.map((r, i) => encodeRecord(i, r))]);
        expect(bytesOf(path).equals(expected)).toBe(true);
        rmSync(path);
      }),
      { numRuns: 40 },
    );
  });

  it("DATA-ROUNDTRIP: the header starts with the magic and version 2; non-ASCII prompt file names survive", () => {
    const meta = { ...META, prompts: { ...META.prompts, source: "histoires-été.txt" } };
    const path = tmpFile();
    writeRecords(path, meta, []);
    const b = bytesOf(path);
    expect(b.subarray(0, 8).toString("latin1")).toBe(DATASET_MAGIC);
    expect(b.readUInt32LE(8)).toBe(2);
    expect(b.length % 4).toBe(0);
    expect(readDataset(path).meta).toEqual(meta);
  });

  it("DATA-ROUNDTRIP: the writer refuses invalid records and more records than the header allows", () => {
    const path = tmpFile();
    const w = DatasetWriter.open(path, { ...META, prompts: { ...META.prompts, count: 1 }, samplesPerPrompt: 1 }, { resume: false });
    const ok: DatasetRecord = { promptLength: 1, tokens: Int32Array.from([BOS, 5]), left: Float32Array.of(0.25), right: Float32Array.of(0.5) };
    expect(() => w.append({ ...ok, right: Float32Array.of(0.25) })).toThrow(/not a non-empty interval/);
    expect(() => w.append({ ...ok, tokens: Int32Array.from([BOS, 40]) })).toThrow(/outside the vocabulary/);
    expect(() => w.append({ ...ok, promptLength: 2 })).toThrow(/no sampled token/);
    expect(() => w.append({ ...ok, tokens: Int32Array.from([BOS, ...new Array(11).fill(3)]), left: new Float32Array(11).fill(0), right: new Float32Array(11).fill(1) })).toThrow(/maxSteps/);
    w.append(ok);
    expect(w.complete).toBe(true);
    expect(() => w.append(ok)).toThrow(/already holds all 1 records/);
    w.close();
    expect(readDataset(path).records).toHaveLength(1);
  });
});

describe("dataset header checks", () => {
  it("DATA-HEADER: resuming with different settings names the file and every differing field", () => {
    const path = tmpFile();
    writeRecords(path, META, []);
    const other: DatasetMeta = { ...META, seed: 8, sampling: { ...META.sampling, temperature: 0.8 }, prompts: { ...META.prompts, source: "other.txt" } };
    let err: unknown;
    try {
      DatasetWriter.open(path, other, { resume: true });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DatasetMismatchError);
    expect(err).toBeInstanceOf(FileFormatError);
    const e = err as DatasetMismatchError;
    expect(e.fields).toEqual(["sampling.temperature", "seed", "prompts.source"]);
    expect(e.message.startsWith(`${path}: `)).toBe(true);
    expect(e.message).toContain("sampling.temperature (file: 0.7, requested: 0.8)");
  });

  it("DATA-HEADER: creating over an existing file throws; resuming a missing file creates it; a torn header is rewritten", () => {
    const path = tmpFile();
    writeRecords(path, META, []);
    expect(() => DatasetWriter.open(path, META, { resume: false })).toThrow(/file exists/);

    const fresh = tmpFile();
    const w = DatasetWriter.open(fresh, META, { resume: true });
    expect([w.records, w.resumed]).toEqual([0, false]);
    w.close();
    expect(bytesOf(fresh).equals(Buffer.from(encodeHeader(META)))).toBe(true);

    const header = encodeHeader(META);
    for (const cut of [0, 5, header.length - 1]) {
      const torn = tmpFile();
      writeFileSync(torn, header.subarray(0, cut));
      DatasetWriter.open(torn, META, { resume: true }).close();
      expect(bytesOf(torn).equals(Buffer.from(header)), `cut ${cut}`).toBe(true);
    }
  });

  it("DATA-HEADER: bad magic, version, header checksum, metadata and truncated headers are FileFormatErrors naming the file", () => {
    const good = Buffer.from(encodeHeader(META));
    const write = (bytes: Uint8Array): string => {
      const p = tmpFile();
      writeFileSync(p, bytes);
      return p;
    };
    const p1 = write(Buffer.concat([Buffer.from("NOT-DATA"), good.subarray(8)]));
    expect(formatError(() => readDataset(p1), p1).problem).toBe(`bad magic: expected "PTP-DATA" (a PTP distillation dataset), found "NOT-DATA"`);
    // A binary file's bytes are escaped, never decoded into U+FFFD or written raw.
    const binary = write(Buffer.concat([Buffer.from([0x40, 0, 0, 0, 0xff, 0x22, 0x5c, 0x0a]), good.subarray(8)]));
    expect(formatError(() => readDataset(binary), binary).problem).toBe(`bad magic: expected "PTP-DATA" (a PTP distillation dataset), found "@\\x00\\x00\\x00\\xff\\x22\\x5c\\x0a"`);
    for (const version of [0, 3]) {
      const other = Buffer.from(good);
      other.writeUInt32LE(version, 8);
      const p2 = write(other);
      expect(formatError(() => readDataset(p2), p2).problem).toMatch(new RegExp(`unsupported dataset version ${version} \\(this build reads versions 1 to 2\\)`));
    }
    const flipped = Buffer.from(good);
    flipped[20] ^= 1;
    const p3 = write(flipped);
    expect(formatError(() => readDataset(p3), p3).problem).toMatch(/header checksum mismatch/);
    expect(formatError(() => DatasetWriter.open(p3, META, { resume: true }), p3).problem).toMatch(/header checksum mismatch/);
    const p4 = write(good.subarray(0, good.length - 3));
    expect(formatError(() => readDataset(p4), p4).problem).toMatch(/truncated header/);
    const p7 = write(good.subarray(0, 5));
    expect(formatError(() => readDataset(p7), p7).problem).toMatch(/truncated header/);
    const p5 = write(new Uint8Array(0));
    expect(formatError(() => readDataset(p5), p5).problem).toMatch(/empty/);
    const missing = join(tmp, "missing.bin");
    expect(formatError(() => readDataset(missing), missing).problem).toMatch(/does not exist/);
    // A well-formed header whose JSON lacks a field.
    const bad = encodeHeader({ ...META, maxSteps: 0 });
    const p6 = write(bad);
    expect(formatError(() => readDataset(p6), p6).problem).toMatch(/maxSteps/);
    const p8 = write(encodeHeader({ ...META, backend: undefined }));
    expect(formatError(() => readDataset(p8), p8).problem).toMatch(/metadata field backend \(a non-empty string/);
  });
});

describe("torn tails", () => {
  const records = fc.sample(recordArb(META), { numRuns: 5, seed: 11 });
  const full = tmpFile("full.bin");
  writeRecords(full, META, records);
  const fullBytes = bytesOf(full);
  const ends = recordEnds(META, records);

  it("DATA-TORN-TAIL: a file cut anywhere is refused by readDataset unless at a record boundary; resuming truncates it to the complete records", () => {
    for (let cut = ends[0]; cut <= fullBytes.length; cut++) {
      const path = tmpFile();
      writeFileSync(path, fullBytes.subarray(0, cut));
      const complete = ends.filter((e) => e <= cut).length - 1;
      const boundary = ends[complete];
      if (cut === boundary) {
        expectSameRecords(readDataset(path).records, records.slice(0, complete));
      } else {
        expect(formatError(() => readDataset(path), path).problem).toMatch(/^truncated: record \d+ at byte \d+ is incomplete/);
        expectSameRecords(readDataset(path, { allowTornTail: true }).records, records.slice(0, complete));
      }
      const w = DatasetWriter.open(path, META, { resume: true });
      expect([w.records, w.truncatedBytes, w.bytes]).toEqual([complete, cut - boundary, boundary]);
      w.close();
      expect(bytesOf(path).equals(fullBytes.subarray(0, boundary)), `cut ${cut}`).toBe(true);
      rmSync(path);
    }
  });

  it("DATA-TORN-TAIL: zero bytes left by a crash after the last write (whole or partial record) are a torn tail", () => {
    for (const [keep, zeros] of [
      [ends[3], 100],
      [ends[3] + 7, 40],
      [ends[3] + 20, 200],
    ]) {
      const path = tmpFile();
      writeFileSync(path, Buffer.concat([fullBytes.subarray(0, keep), Buffer.alloc(zeros)]));
      expect(() => readDataset(path)).toThrow(FileFormatError);
      const w = DatasetWriter.open(path, META, { resume: true });
      expect(w.records).toBe(3);
      w.close();
      expect(bytesOf(path).equals(fullBytes.subarray(0, ends[3]))).toBe(true);
    }
  });

  it("DATA-TORN-TAIL: a corrupt record followed by data is corruption, not a torn tail: refused, and the file is left alone", () => {
    for (const at of [ends[1] + 2, ends[1] + 25, ends[2] - 2]) {
      const bad = Buffer.from(fullBytes);
      bad[at] ^= 0x40;
      const path = tmpFile();
      writeFileSync(path, bad);
      expect(formatError(() => readDataset(path), path).problem).toMatch(/record 1 at byte \d+: .*corruption/);
      expect(formatError(() => DatasetWriter.open(path, META, { resume: true }), path).problem).toMatch(/corruption/);
      expect(bytesOf(path).equals(bad)).toBe(true);
    }
  });

  it("DATA-TORN-TAIL: a corrupt LAST record (checksum mismatch at the end of the file) is truncated on resume", () => {
    const bad = Buffer.from(fullBytes);
    bad[ends[4] + 30] ^= 1;
    const path = tmpFile();
    writeFileSync(path, bad);
    expect(formatError(() => readDataset(path), path).problem).toMatch(/checksum mismatch, and only zero bytes follow/);
    const w = DatasetWriter.open(path, META, { resume: true });
    expect([w.records, w.truncatedBytes]).toEqual([4, fullBytes.length - ends[4]]);
    w.close();
  });
});

// ---------------------------------------------------------------------------
// Generation with a small random teacher.

const SMALL: ModelConfig = { dim: 16, hiddenDim: 24, nLayers: 2, nHeads: 2, nKvHeads: 1, vocabSize: 8, seqLen: 24, sharedClassifier: false, normEps: 1e-5, ropeTheta: 10000 };
const teacher = randomCheckpoint(SMALL, 3);
const PROMPTS: PromptSet = { source: "test-prompts", tokens: [[BOS, 4, 5], [BOS], [BOS, 7, 3, 3, 6]] };
const SETTINGS = { sampling: { temperature: 0.9, topK: 5, topP: 0.9 }, samplesPerPrompt: 3, maxSteps: 12, seed: 2024 };

async function model(ckpt: Checkpoint = teacher): Promise<Transformer> {
  return new Transformer(await backend("js"), ckpt);
}

async function generateFile(path: string, m: Transformer, meta: DatasetMeta, prompts: PromptSet): Promise<void> {
  const w = DatasetWriter.open(path, meta, { resume: true });
  const s = await pregenerate(m, w, prompts);
  w.close();
  expect(s.stopped).toBe(false);
}

/**
 * Re-runs the teacher on a record (one forward call over the whole sequence;
 * batch invariance makes its rows the incremental logits) and checks every
 * sampled token: its stored bin is binOf of the teacher's distribution, the
 * u that picked it (re-drawn from the record's PRNG) lies in the bin, and
 * every u drawUs puts in the bin picks the same token.
 */
function checkBins(m: Transformer, meta: DatasetMeta, index: number, r: DatasetRecord, zs: readonly number[]): void {
  const V = meta.vocabSize;
  const n = r.tokens.length;
  const p = r.promptLength;
  const cache = m.newCache();
  const logits = m.forward({ tokens: Array.from(r.tokens.subarray(0, n - 1)), positions: Array.from({ length: n - 1 }, (_, i) => i) }, cache);
  cache.free();
  const rng = recordRng(meta.seed, index);
  for (let j = 0; j < n - p; j++) {
    const token = r.tokens[p + j];
    const P = samplingDistribution(logits.subarray((p - 1 + j) * V, (p + j) * V), metaSampling(meta));
    const [l, h] = binOf(P, token);
    expect([r.left[j], r.right[j]], `record ${index} token ${j}`).toEqual([l, h]);
    const u = nextU(rng);
    expect(l <= u && u < h, `record ${index} token ${j}: u ${u} outside [${l}, ${h})`).toBe(true);
    expect(pick(u, P)).toBe(token);
    for (const z of zs) {
      const v = drawU(l, h, z);
      expect(pick(v, P), `record ${index} token ${j}: z ${z} -> u' ${v} in [${l}, ${h})`).toBe(token);
    }
    // Only the last token may be BOS (the stop).
    if (j < n - p - 1) expect(token).not.toBe(BOS);
  }
  const last = r.tokens[n - 1];
  expect(last === BOS || n - p === meta.maxSteps || n === meta.seqLen + 1, `record ${index} stopped early`).toBe(true);
}

describe("pregenerate", () => {
  it("DATA-TEACHER: checkDatasetMatchesTeacher accepts the teacher a dataset was sampled from and refuses, naming the file, another teacher (same shape, other weights), another vocab or seqLen, and unusable sampling settings", async () => {
    const m = await model();
    const meta = datasetMeta(teacher, PROMPTS, SETTINGS, m.backend);
    const mine = { config: teacher.config, checksum: teacherChecksum(teacher), name: "t.bin" };
    checkDatasetMatchesTeacher("d.ptpd", meta, mine);
    const other = randomCheckpoint(SMALL, 4);
    expect(() => checkDatasetMatchesTeacher("d.ptpd", meta, { config: other.config, checksum: teacherChecksum(other), name: "o.bin" })).toThrow(`d.ptpd: the dataset was sampled from another teacher (checksum ${mine.checksum.slice(0, 12)}...), not o.bin (${teacherChecksum(other).slice(0, 12)}...)`);
    expect(() => checkDatasetMatchesTeacher("d.ptpd", meta, { ...mine, config: { ...SMALL, vocabSize: 9 } })).toThrow("d.ptpd: the dataset header says vocabSize 8, but the teacher has 9");
    expect(() => checkDatasetMatchesTeacher("d.ptpd", meta, { ...mine, config: { ...SMALL, seqLen: 25 } })).toThrow("d.ptpd: the dataset header says seqLen 24, but the teacher has 25");
    expect(() => checkDatasetMatchesTeacher("d.ptpd", { ...meta, sampling: { ...meta.sampling, temperature: -1 } }, mine)).toThrow(/^d\.ptpd: the dataset header's sampling settings are unusable: /);
  });

  it("DATA-BIN: every stored bin is the teacher's bin of its token, holds the u that picked it, and any u drawn in it picks the token", async () => {
    const m = await model();
    const meta = datasetMeta(teacher, PROMPTS, SETTINGS, m.backend);
    const path = tmpFile();
    await generateFile(path, m, meta, PROMPTS);
    const d = readDataset(path, { allowIncomplete: false });
    expect(d.records).toHaveLength(9);
    const beta = new Mulberry32(5);
    const zs = [0, 1e-9, 0.25, 0.5, 0.999999, 1, betaSample(beta, 0.3), betaSample(beta, 0.3), betaSample(beta, 2)];
    d.records.forEach((r, i) => {
      expect(Array.from(r.tokens.subarray(0, r.promptLength))).toEqual(PROMPTS.tokens[recordPrompt(meta, i).prompt]);
      checkBins(m, meta, i, r, zs);
    });
    // The stop rules all occur: BOS, maxSteps (vocab 8 makes BOS common).
    expect(d.records.some((r) => r.tokens[r.tokens.length - 1] === BOS)).toBe(true);
    expect(d.records.some((r) => r.tokens.length - r.promptLength === meta.maxSteps)).toBe(true);
    m.dispose();
  });

  it("DATA-BIN: random tiny teachers and sampling settings (filters on or off): records are valid and reproducible by index", async () => {
    const js = await backend("js");
    await fc.assert(
      fc.asyncProperty(tinyCheckpoint, fc.record({ temperature: fc.constantFrom(0.3, 1, 1.7), topK: fc.constantFrom(0, 2, 5), topP: fc.constantFrom(1, 0.5, 0.9) }), fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: 1, max: 70 }), async (ckpt, sampling, seed, maxSteps) => {
        const m = new Transformer(js, ckpt);
        const meta = datasetMeta(ckpt, bosPrompts(), { sampling, samplesPerPrompt: 2, maxSteps, seed }, js);
        for (const index of [0, 1]) {
          const r = generateRecord(m, meta, bosPrompts(), index);
          checkBins(m, meta, index, r, [0, 0.5, 1]);
          expect(r.tokens.length).toBeLessThanOrEqual(ckpt.config.seqLen + 1);
          expect(Array.from(generateRecord(m, meta, bosPrompts(), index).tokens)).toEqual(Array.from(r.tokens));
        }
        m.dispose();
      }),
      { numRuns: 12 },
    );
  });

  it("DATA-RESUME: resuming after a cut anywhere (record boundary or torn) gives the bytes of an uninterrupted run", async () => {
    const m = await model();
    const meta = datasetMeta(teacher, PROMPTS, SETTINGS, m.backend);
    const full = tmpFile();
    await generateFile(full, m, meta, PROMPTS);
    const fullBytes = bytesOf(full);
    const records = readDataset(full).records;
    const ends = recordEnds(meta, records);
    const cuts = [0, 7, ...ends, ends[2] + 3, ends[4] + 17, ends[8] - 1, ends[5] + (ends[6] - ends[5]) / 2];
    for (const cut of cuts) {
      const path = tmpFile();
      writeFileSync(path, fullBytes.subarray(0, cut));
      await generateFile(path, m, meta, PROMPTS);
      expect(bytesOf(path).equals(fullBytes), `cut at byte ${cut}`).toBe(true);
    }
    // Each record is a function of (teacher, settings, prompt, index) only.
    for (const i of [0, 4, 8]) expectSameRecords([generateRecord(m, meta, PROMPTS, i)], [records[i]]);
    m.dispose();
  });

  it("DATA-RESUME: a run stopped by its signal leaves complete records, reports progress, and resumes to the same bytes", async () => {
    const m = await model();
    const meta = datasetMeta(teacher, PROMPTS, SETTINGS, m.backend);
    const full = tmpFile();
    await generateFile(full, m, meta, PROMPTS);

    const path = tmpFile();
    const abort = new AbortController();
    const seen: number[] = [];
    let w = DatasetWriter.open(path, meta, { resume: false });
    const s = await pregenerate(m, w, PROMPTS, {
      signal: abort.signal,
      syncEvery: 1,
      onProgress: (p) => {
        seen.push(p.done);
        expect(p.total).toBe(9);
        if (p.done === 4) abort.abort();
      },
    });
    w.close();
    expect(seen).toEqual([0, 1, 2, 3, 4]);
    expect(s).toMatchObject({ stopped: true, done: 4, generated: 4 });
    expect(readDataset(path).records).toHaveLength(4);

    w = DatasetWriter.open(path, meta, { resume: true });
    expect([w.records, w.truncatedBytes, w.resumed]).toEqual([4, 0, true]);
    const rest = await pregenerate(m, w, PROMPTS);
    w.close();
    expect(rest).toMatchObject({ stopped: false, done: 9, generated: 5 });
    expect(bytesOf(path).equals(bytesOf(full))).toBe(true);
    m.dispose();
  });

  it("DATA-HEADER: the metadata records the teacher, backend, settings and prompts; wrong prompts or model are refused", async () => {
    const m = await model();
    const meta = datasetMeta(teacher, PROMPTS, SETTINGS, m.backend);
    expect(meta).toEqual({
      teacher: teacherChecksum(teacher),
      backend: "js (plain TypeScript reference)",
      vocabSize: 8,
      seqLen: 24,
      sampling: { temperature: 0.9, topK: 5, topP: 0.9 },
      seed: 2024,
      samplesPerPrompt: 3,
      maxSteps: 12,
      prompts: { source: "test-prompts", count: 3, sha256: promptsDigest(PROMPTS.tokens) },
    });
    expect(promptsDigest([[1, 2], [3]])).not.toBe(promptsDigest([[1], [2, 3]]));
    expect(datasetMeta(teacher, bosPrompts(), { ...SETTINGS, sampling: { temperature: 1 } }, m.backend).sampling).toEqual({ temperature: 1, topK: 0, topP: 1 });
    expect(() => datasetMeta(teacher, PROMPTS, { ...SETTINGS, sampling: { temperature: 0 } }, m.backend)).toThrow(/temperature/);

    const w = DatasetWriter.open(tmpFile(), meta, { resume: false });
    await expect(pregenerate(m, w, { ...PROMPTS, tokens: [[BOS], [BOS], [BOS]] })).rejects.toThrow(/not the ones the dataset's header names/);
    const long: PromptSet = { source: "long", tokens: [new Array(25).fill(3)] };
    expect(() => generateRecord(m, datasetMeta(teacher, long, SETTINGS, m.backend), long, 0)).toThrow(/prompt 0 has 25 tokens/);
    const other = new Transformer(await backend("js"), randomCheckpoint({ ...SMALL, vocabSize: 9 }, 3));
    await expect(pregenerate(other, w, PROMPTS)).rejects.toThrow(/vocabSize 8/);
    w.close();
    other.dispose();
    m.dispose();
  });

  it("DATA-BACKEND: a resume on another backend is refused naming the file and both backends; pregenerate refuses a model on another backend; the file is left alone", async () => {
    const js = await model();
    const meta = datasetMeta(teacher, PROMPTS, SETTINGS, js.backend);
    const full = tmpFile();
    await generateFile(full, js, meta, PROMPTS);
    const fullBytes = bytesOf(full);
    const path = tmpFile();
    writeFileSync(path, fullBytes.subarray(0, recordEnds(meta, readDataset(full).records)[4]));
    const cut = bytesOf(path);

    const wasm = new Transformer(await backend("wasm"), teacher);
    const onWasm = datasetMeta(teacher, PROMPTS, SETTINGS, wasm.backend);
    expect(onWasm.backend).toMatch(/^wasm \((relaxed )?SIMD\)$/);
    const e = formatError(() => DatasetWriter.open(path, onWasm, { resume: true }), path);
    expect(e).toBeInstanceOf(DatasetMismatchError);
    expect((e as DatasetMismatchError).fields).toEqual(["backend"]);
    expect(e.message).toContain(`backend (file: "js (plain TypeScript reference)", requested: ${JSON.stringify(onWasm.backend)})`);
    // The library's own check, for a caller that opens the file with its metadata and runs another backend.
    const w = DatasetWriter.open(path, meta, { resume: true });
    await expect(pregenerate(wasm, w, PROMPTS)).rejects.toThrow(`the dataset's records were sampled on "js (plain TypeScript reference)", the model runs on ${JSON.stringify(onWasm.backend)}`);
    expect(() => generateRecord(wasm, meta, PROMPTS, 0)).toThrow(/sampled on "js/);
    w.close();
    expect(bytesOf(path).equals(cut)).toBe(true);
    wasm.dispose();

    // The same backend resumes to the bytes of the uninterrupted run.
    await generateFile(path, js, meta, PROMPTS);
    expect(bytesOf(path).equals(fullBytes)).toBe(true);
    js.dispose();
  });

  it("DATA-BACKEND: a version 1 file (no backend) still reads for training, with its records; a resume of it is refused, saying why, and leaves it alone", async () => {
    const m = await model();
    const meta = datasetMeta(teacher, PROMPTS, SETTINGS, m.backend);
    const v2 = tmpFile();
    await generateFile(v2, m, meta, PROMPTS);
    const v1 = tmpFile();
    writeFileSync(v1, asVersion1(bytesOf(v2)));
    expect(bytesOf(v1).readUInt32LE(8)).toBe(1);
    const d = readDataset(v1, { allowIncomplete: false });
    expect("backend" in d.meta).toBe(false);
    expect(d.meta).toEqual({ ...meta, backend: undefined });
    expectSameRecords(d.records, readDataset(v2).records);
    // Version 1 had no backend field: one found there is not taken as the record of it.
    const tagged = tmpFile();
    writeFileSync(tagged, asVersion1(bytesOf(v2), { backend: meta.backend }));
    expect("backend" in readDatasetMeta(tagged)).toBe(false);

    const before = bytesOf(v1);
    for (const file of [v1, tagged]) {
      expect(formatError(() => DatasetWriter.open(file, meta, { resume: true }), file).problem).toMatch(/^is a version 1 dataset, which does not record the backend that sampled its records; .* it cannot be resumed\. It still trains as it is/);
    }
    expect(bytesOf(v1).equals(before)).toBe(true);
    expect(() => generateRecord(m, d.meta, PROMPTS, 0)).toThrow(/sampled on an unrecorded backend \(a version 1 dataset\)/);
    m.dispose();
  });
});

// ---------------------------------------------------------------------------
// Training-time u's.

/** Bit pattern <-> float32, for edge-case bins. */
const f32 = (bits: number): number => new Float32Array(new Uint32Array([bits]).buffer)[0];
const ONE_BITS = 0x3f800000;

describe("drawing u inside a bin", () => {
  it("DATA-BETA: Beta(b, b) samples have mean 1/2, variance 1/(4(2b+1)) and the known CDF at 1/4 (fixed seed)", () => {
    const n = 40000;
    for (const [b, cdfQuarter] of [
      [0.3, undefined],
      [0.5, 1 / 3], // arcsine law: (2/pi) asin(sqrt(1/4))
      [1, 0.25],
      [2, 0.15625], // 3x^2 - 2x^3
      [5, undefined],
    ] as const) {
      const rng = new Mulberry32(1234);
      let sum = 0,
        sumSq = 0,
        below = 0,
        outside = 0;
      for (let i = 0; i < n; i++) {
        const z = betaSample(rng, b);
        if (!(z >= 0 && z <= 1)) outside++;
        sum += z;
        sumSq += z * z;
        if (z < 0.25) below++;
      }
      expect(outside).toBe(0);
      const mean = sum / n;
      const variance = sumSq / n - mean * mean;
      const trueVar = 1 / (4 * (2 * b + 1));
      expect(Math.abs(mean - 0.5), `b ${b} mean ${mean}`).toBeLessThan(5 * Math.sqrt(trueVar / n));
      expect(Math.abs(variance / trueVar - 1), `b ${b} variance ${variance} vs ${trueVar}`).toBeLessThan(0.05);
      if (cdfQuarter !== undefined) expect(Math.abs(below / n - cdfQuarter), `b ${b} P(z < 1/4)`).toBeLessThan(0.01);
    }
  });

  it("DATA-BETA: the sampler is deterministic per seed, handles tiny and large b, and refuses b <= 0", () => {
    const draw = (seed: number, b: number): number[] => {
      const rng = new Mulberry32(seed);
      return Array.from({ length: 50 }, () => betaSample(rng, b));
    };
    expect(draw(9, 0.3)).toEqual(draw(9, 0.3));
    expect(draw(9, 0.3)).not.toEqual(draw(10, 0.3));
    for (const b of [1e-3, 0.05, 100, 1e4]) for (const z of draw(3, b)) expect(z >= 0 && z <= 1, `b ${b}: ${z}`).toBe(true);
    // Tiny b piles the mass at the ends; large b at 1/2.
    const tiny = new Mulberry32(3);
    let ends = 0;
    for (let i = 0; i < 2000; i++) {
      const z = betaSample(tiny, 0.01);
      if (z < 0.01 || z > 0.99) ends++;
    }
    expect(ends / 2000).toBeGreaterThan(0.93); // about 0.955
    expect(draw(3, 1e4).every((z) => Math.abs(z - 0.5) < 0.03)).toBe(true);
    for (const b of [0, -1, NaN, Infinity]) expect(() => betaSample(new Mulberry32(1), b)).toThrow(RangeError);
  });

  it("DATA-BETA: drawU returns a float32 in [left, right) for any float32 bin and z in [0, 1], left at z = 0", () => {
    const bitsArb = fc.integer({ min: 0, max: ONE_BITS });
    const binBits = fc.oneof(
      fc
        .tuple(bitsArb, bitsArb)
        .filter(([a, b]) => a !== b)
        .map(([a, b]) => [Math.min(a, b), Math.max(a, b)] as const),
      bitsArb.filter((a) => a < ONE_BITS).map((a) => [a, a + 1] as const), // adjacent floats: a one-value bin
      fc.constantFrom([0, ONE_BITS] as const, [0, 1] as const, [ONE_BITS - 1, ONE_BITS] as const),
    );
    const zArb = fc.oneof(fc.constantFrom(0, 1, 1 - 2 ** -53, 2 ** -60, 0.5), fc.double({ min: 0, max: 1, noNaN: true }));
    fc.assert(
      fc.property(binBits, zArb, ([lb, rb], z) => {
        const left = f32(lb),
          right = f32(rb);
        const u = drawU(left, right, z);
        expect(Math.fround(u)).toBe(u);
        expect(u >= left && u < right, `[${left}, ${right}) z ${z} -> ${u}`).toBe(true);
        if (z === 0) expect(u).toBe(left);
      }),
      { numRuns: 2000 },
    );
    // The edges of the widest bin: z = 1 gives the largest float32 below 1.
    expect(drawU(0, 1, 1)).toBe(1 - 2 ** -24);
    expect(drawU(0.5, 0.75, 1)).toBe(0.75 - 2 ** -24);
  });

  it("DATA-BETA: drawU refuses empty bins, bins outside [0, 1], non-float32 edges and z outside [0, 1]", () => {
    expect(() => drawU(0.5, 0.5, 0.3)).toThrow(/empty/);
    expect(() => drawU(0.75, 0.5, 0.3)).toThrow(/empty/);
    expect(() => drawU(-0.25, 0.5, 0.3)).toThrow(/\[0, 1\]/);
    expect(() => drawU(0.5, 1.5, 0.3)).toThrow(/\[0, 1\]/);
    expect(() => drawU(0.1, 0.5, 0.3)).toThrow(/float32/);
    for (const z of [-0.1, 1.1, NaN]) expect(() => drawU(0.25, 0.5, z)).toThrow(/z must be in/);
  });
});

// ---------------------------------------------------------------------------
// The command.

describe("ptp pregenerate", () => {
  const MODEL = ["--model", STORIES_260K, "--tokenizer", TOK_512];
  const promptFile = join(tmp, "prompts.txt");
  writeFileSync(promptFile, "Once upon a time\n\nThe cat sat\n");

  it("DATA-CLI: usage errors exit 2 with the usage text", async () => {
    const out = ["--out", join(tmp, "never.bin")];
    for (const [argv, message] of [
      [[...MODEL], /--out is required/],
      [[...MODEL, ...out, "--samples", "0"], /--samples must be a positive integer/],
      [[...MODEL, ...out, "--steps", "0"], /--steps must be a positive integer/],
      [[...MODEL, ...out, "--temperature", "0"], /--temperature must be > 0/],
      [[...MODEL, ...out, "--top-k", "-1"], /--top-k must be >= 0/],
      [[...MODEL, ...out, "--top-p", "1.5"], /--top-p must be in \[0, 1\] \(0 or 1 = off\)/],
      [[...MODEL, ...out, "--seed", "-1"], /--seed must be in \[0, 4294967295\], got -1/],
      [[...MODEL, ...out, "--seed", "4294967296"], /--seed must be in \[0, 4294967295\], got 4294967296/],
      [[...MODEL, ...out, "--bogus"], /unknown flag --bogus/],
    ] as const) {
      const r = await runCli("pregenerate", ...argv);
      expect(r.code, argv.join(" ")).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).toContain("usage: ptp pregenerate");
    }
    expect(existsSync(join(tmp, "never.bin"))).toBe(false);
    const help = await runCli("pregenerate", "--help");
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("--resume");
  });

  it("DATA-CLI: samples stories260K from a prompt file, refuses to overwrite (--force starts over, a dataset only), resumes a torn file to the same bytes, refuses other settings", async () => {
    const out = join(tmp, "stories.ptpdata");
    const args = ["pregenerate", ...MODEL, "--prompts", promptFile, "--out", out, "--samples", "3", "--steps", "24", "--seed", "11"];
    const r = await runCli(...args);
    expect(r.code, r.stderr).toBe(0);
    // The final line of the shared progress reporter (src/util/progress.ts): records, their rate and ETA, and the sampled tokens' rate.
    expect(r.stderr).toMatch(/^pregenerate \[#{20}\] 6\/6 {2}100\.0% {2}[\d.?]+ record\/s {2}ETA 0s {2}sampled [\d.?]+ tok\/s$/m);
    expect(r.stderr).toMatch(new RegExp(`wrote ${out.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: 6 records \\(6 this run, \\d+ sampled tokens, \\d+ tok/s\\), [\\d.]+ KiB`));

    const ckpt = readCheckpoint(STORIES_260K);
    const tok = Tokenizer.load(TOK_512, ckpt.config.vocabSize);
    const d = readDataset(out, { allowIncomplete: false });
    expect(d.meta).toMatchObject({
      teacher: teacherChecksum(ckpt),
      vocabSize: 512,
      seqLen: ckpt.config.seqLen,
      sampling: { temperature: 0.7, topK: 50, topP: 0.95 },
      seed: 11,
      samplesPerPrompt: 3,
      maxSteps: 24,
      prompts: { source: "prompts.txt", count: 2 },
    });
    const prompts = ["Once upon a time", "The cat sat"].map((t) => tok.encode(t, true, false));
    expect(d.meta.prompts.sha256).toBe(promptsDigest(prompts));
    // The same backend as the command's (logits are bit-exact per backend only).
    const m = new Transformer(await backend("wasm"), ckpt);
    d.records.forEach((rec, i) => {
      expect(Array.from(rec.tokens.subarray(0, rec.promptLength))).toEqual(prompts[Math.floor(i / 3)]);
      checkBins(m, d.meta, i, rec, [0, 0.5, 1]);
    });
    m.dispose();

    const again = await runCli(...args);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`${out} exists; pass --resume to continue it, or --force to start it over`);

    const fullBytes = bytesOf(out);
    // --force starts it over: the same bytes again (the samples depend on the seed only); only a dataset is replaced.
    const over = await runCli(...args, "--force");
    expect(over.code, over.stderr).toBe(0);
    expect(bytesOf(out).equals(fullBytes)).toBe(true);
    expect((await runCli(...args, "--force", "--resume")).stderr).toMatch(/--force starts --out over and --resume continues it; give one of them/);
    const notes = join(tmp, "notes.txt");
    writeFileSync(notes, "mine\n");
    const refused = await runCli(...args.map((a) => (a === out ? notes : a)), "--force");
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`${notes} is not a PTP dataset; --force replaces only a dataset`);
    expect(readFileSync(notes, "utf8")).toBe("mine\n");
    const ends = recordEnds(d.meta, d.records);
    const torn = join(tmp, "torn.ptpdata");
    copyFileSync(out, torn);
    truncateSync(torn, ends[4] + 10);
    const resumed = await runCli(...args.map((a) => (a === out ? torn : a)), "--resume");
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toContain(`resuming ${torn}: 4 of 6 records complete; truncated a torn last record (10 bytes)`);
    expect(resumed.stderr).toMatch(/6 records \(2 this run/);
    expect(bytesOf(torn).equals(fullBytes)).toBe(true);

    const other = await runCli(...args, "--resume", "--temperature", "0.8");
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/was generated with different settings: sampling\.temperature \(file: 0\.7, requested: 0\.8\)/);
    expect(bytesOf(out).equals(fullBytes)).toBe(true);
  });

  const fixture = pregenFixture("ptp-data-backend-");
  afterAll(() => rmSync(fixture.tmp, { recursive: true, force: true }));

  it("DATA-BACKEND: `--resume --backend wasm` on a dataset begun with --backend js exits 1 naming the file and both backends; --backend js resumes it to the same bytes; a version 1 file trains but does not resume", async () => {
    const { tmp: dir, TEACHER, DATA, pregenArgs } = fixture;
    const full = await runCli(...pregenArgs(DATA, "--backend", "js"));
    expect(full.code, full.stderr).toBe(0);
    const fullBytes = bytesOf(DATA);
    const d = readDataset(DATA);
    expect(d.meta.backend).toBe("js (plain TypeScript reference)");
    const torn = join(dir, "torn.ptpd");
    writeFileSync(torn, fullBytes.subarray(0, recordEnds(d.meta, d.records)[3] + 10));
    const cut = bytesOf(torn);

    const other = await runCli(...pregenArgs(torn, "--backend", "wasm", "--resume"));
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(new RegExp(`^ptp pregenerate: ${torn.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: was generated with different settings: backend \\(file: "js \\(plain TypeScript reference\\)", requested: "wasm \\((relaxed )?SIMD\\)"\\)`));
    expect(bytesOf(torn).equals(cut)).toBe(true);
    const same = await runCli(...pregenArgs(torn, "--backend", "js", "--resume"));
    expect(same.code, same.stderr).toBe(0);
    expect(bytesOf(torn).equals(fullBytes)).toBe(true);

    const v1 = join(dir, "v1.ptpd");
    writeFileSync(v1, asVersion1(fullBytes));
    const resumed = await runCli(...pregenArgs(v1, "--backend", "js", "--resume"));
    expect(resumed.code).toBe(1);
    expect(resumed.stderr).toContain(`${v1}: is a version 1 dataset, which does not record the backend`);
    expect(bytesOf(v1).equals(asVersion1(fullBytes))).toBe(true);
    const student = join(dir, "v1-student.safetensors");
    const trained = await runCli("distill", "--model", TEACHER, "--dataset", v1, "--out", student, "--rank", "2", "--window", "4", "--windows", "2", "--batch", "1", "--steps", "1", "--eval-every", "0", "--backend", "js");
    expect(trained.code, trained.stderr).toBe(0);
    expect(existsSync(student)).toBe(true);
  });

  it("DATA-CLI: without --prompts it samples from BOS", async () => {
    const out = join(tmp, "bos.ptpdata");
    const r = await runCli("pregenerate", ...MODEL, "--out", out, "--samples", "2", "--steps", "8", "--backend", "js");
    expect(r.code, r.stderr).toBe(0);
    const d = readDataset(out);
    expect(d.meta.prompts).toMatchObject({ source: "bos", count: 1 });
    expect(d.records.map((rec) => rec.promptLength)).toEqual([1, 1]);
    expect(d.records.every((rec) => rec.tokens[0] === BOS && rec.tokens.length <= 9)).toBe(true);
  });
});
