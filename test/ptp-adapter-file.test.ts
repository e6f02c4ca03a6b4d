import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { parseCheckpoint, readCheckpoint, serializeCheckpoint } from "../src/io/checkpoint.js";
import { randomCheckpoint } from "../src/model/init.js";
import { parseSafetensors, serializeSafetensors, type SafeTensor } from "../src/io/safetensors.js";
import { parameterCount, type ModelConfig } from "../src/model/config.js";
import { LINEAR_NAMES, linearShape, type Checkpoint } from "../src/model/weights.js";
import { checkStudentMatchesTeacher, parseStudent, readStudent, serializeStudent, writeStudent } from "../src/ptp/files/adapter-file.js";
import { randomStudent, type RandomStudentOptions } from "../src/ptp/init.js";
import type { AuxEmbeddingConfig, Student } from "../src/ptp/student-weights.js";
import { teacherChecksum } from "../src/ptp/files/teacher-checksum.js";
import { STORIES_260K, firstBitDifference, formatError, tinyCheckpoint } from "./helpers.js";

const tmp = mkdtempSync(join(tmpdir(), "ptp-adapter-file-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const FILE = "x.safetensors";

const small: ModelConfig = {
  dim: 8,
  hiddenDim: 12,
  nLayers: 2,
  nHeads: 2,
  nKvHeads: 1,
  vocabSize: 10,
  seqLen: 16,
  sharedClassifier: true,
  normEps: 1e-5,
  ropeTheta: 10000,
};
const teacher = randomCheckpoint(small, 7);
const checksum = teacherChecksum(teacher);

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b));

/** Every array of a student in a fixed order, with a label. */
function arrays(s: Student): [string, Float32Array | undefined][] {
  const out: [string, Float32Array | undefined][] = [];
  s.weights.layers.forEach((layer, l) => {
    for (const name of LINEAR_NAMES) out.push([`${l}.${name}.A`, layer[name].A], [`${l}.${name}.B`, layer[name].B]);
  });
  out.push(["aux.weight", s.weights.aux.weight], ["aux.bias", s.weights.aux.bias], ["aux.anchors", s.weights.aux.anchors], ["start", s.weights.start]);
  return out;
}

function expectSameStudent(a: Student, b: Student): void {
  expect(a.config).toEqual(b.config);
  const x = arrays(a);
  const y = arrays(b);
  expect(x.map(([k, v]) => [k, v === undefined])).toEqual(y.map(([k, v]) => [k, v === undefined]));
  x.forEach(([k, v], i) => {
    if (v !== undefined) expect(firstBitDifference(v, y[i][1]!), k).toBeNull();
  });
}

/** The bytes of `student`'s file after editing its tensors and metadata. */
function edited(student: Student, edit: (tensors: Record<string, SafeTensor>, meta: Record<string, string>) => void): Uint8Array {
  const file = parseSafetensors(serializeStudent(student), FILE);
  const tensors = Object.fromEntries(file.tensors);
  const meta = { ...file.metadata };
  edit(tensors, meta);
  return serializeSafetensors(tensors, meta);
}

const problem = (bytes: Uint8Array): string => formatError(() => parseStudent(bytes, FILE), FILE).problem;

describe("ADAPTER-CHECKSUM: teacherChecksum", () => {
  it("is a SHA-256 over the header, the shared flag and the v0 weight arrays", () => {
    for (const shared of [true, false]) {
      const ckpt = randomCheckpoint({ ...small, sharedClassifier: shared }, 3);
      const c = ckpt.config;
      const v0 = serializeCheckpoint(ckpt, 0);
      const header = new Uint8Array(29);
      const dv = new DataView(header.buffer);
      [c.dim, c.hiddenDim, c.nLayers, c.nHeads, c.nKvHeads, c.vocabSize, c.seqLen].forEach((v, i) => dv.setInt32(4 * i, v, true));
      header[28] = shared ? 1 : 0;
      // v0: header, the arrays up to rms_final, the legacy RoPE tables, then wcls when separate
      const floatsBeforeRope = parameterCount(c) - (shared ? 0 : c.vocabSize * c.dim);
      const ropeBytes = 4 * c.seqLen * (c.dim / c.nHeads);
      const body = v0.subarray(28, 28 + 4 * floatsBeforeRope);
      const cls = v0.subarray(28 + 4 * floatsBeforeRope + ropeBytes);
      expect(cls.length).toBe(shared ? 0 : 4 * c.vocabSize * c.dim);
      const expected = createHash("sha256").update(header).update(body).update(cls).digest("hex");
      expect(teacherChecksum(ckpt)).toBe(expected);
    }
  });

  it("is the same for the same weights, whatever the file version, and changes with one bit", () => {
    const a = randomCheckpoint(small, 11);
    const b = randomCheckpoint(small, 11);
    expect(teacherChecksum(a)).toBe(teacherChecksum(b));
    expect(teacherChecksum(parseCheckpoint(serializeCheckpoint(a, 1), "v1"))).toBe(teacherChecksum(a));
    expect(teacherChecksum(randomCheckpoint(small, 12))).not.toBe(teacherChecksum(a));
    const before = teacherChecksum(a);
    for (const arr of [a.weights.tokenEmbedding, a.weights.layers[1].w3, a.weights.layers[0].rmsFfn, a.weights.rmsFinal]) {
      const bits = new Uint32Array(arr.buffer, arr.byteOffset, arr.length);
      bits[arr.length - 1] ^= 1;
      expect(teacherChecksum(a)).not.toBe(before);
      bits[arr.length - 1] ^= 1;
      expect(teacherChecksum(a)).toBe(before);
    }
    // the shape is hashed too: the same floats under another seqLen give another checksum
    const longer: Checkpoint = { config: { ...a.config, seqLen: 17 }, weights: a.weights };
    expect(teacherChecksum(longer)).not.toBe(before);
  });

  it("hashes the norm epsilon and RoPE base when they are not llama2.c's, as float64 after the weights", () => {
    const a = randomCheckpoint(small, 11);
    const before = teacherChecksum(a);
    const withBoth = (normEps: number, ropeTheta: number): Checkpoint => ({ config: { ...a.config, normEps, ropeTheta }, weights: a.weights });
    // llama2.c's own values: the digest every llama2.c checkpoint had
    expect(teacherChecksum(withBoth(1e-5, 10000))).toBe(before);
    const seen = new Set([before]);
    for (const [eps, theta] of [
      [1e-6, 10000],
      [1e-5, 500000],
      [1e-6, 500000],
      [1e-5 * (1 + 2 ** -40), 10000],
    ]) {
      const tail = new DataView(new ArrayBuffer(16));
      tail.setFloat64(0, eps, true);
      tail.setFloat64(8, theta, true);
      const sum = teacherChecksum(withBoth(eps, theta));
      expect(seen.has(sum)).toBe(false);
      seen.add(sum);
      // the documented layout: llama2.c's digest input, then the tail
      const c = a.config;
      const header = new Uint8Array(29);
      const dv = new DataView(header.buffer);
      [c.dim, c.hiddenDim, c.nLayers, c.nHeads, c.nKvHeads, c.vocabSize, c.seqLen].forEach((v, i) => dv.setInt32(4 * i, v, true));
      header[28] = 1;
      const v0 = serializeCheckpoint(a, 0);
      const body = v0.subarray(28, 28 + 4 * parameterCount(c));
      expect(sum).toBe(createHash("sha256").update(header).update(body).update(new Uint8Array(tail.buffer)).digest("hex"));
    }
  });

  it("hashes the separate classifier, and the shared flag", () => {
    const sep = randomCheckpoint({ ...small, sharedClassifier: false }, 5);
    const before = teacherChecksum(sep);
    sep.weights.wcls[0] += 1;
    expect(teacherChecksum(sep)).not.toBe(before);
    const shared = randomCheckpoint(small, 5);
    const asSeparate: Checkpoint = { config: { ...shared.config, sharedClassifier: false }, weights: shared.weights };
    expect(teacherChecksum(asSeparate)).not.toBe(teacherChecksum(shared));
  });

  it("is stable for stories260K", () => {
    const x = teacherChecksum(readCheckpoint(STORIES_260K));
    const y = teacherChecksum(readCheckpoint(STORIES_260K));
    expect(x).toMatch(/^[0-9a-f]{64}$/);
    expect(y).toBe(x);
  });
});

const auxArb: fc.Arbitrary<AuxEmbeddingConfig> = fc.oneof(
  fc.constant({ kind: "bits" as const }),
  fc.constant({ kind: "anchors" as const }),
  fc.integer({ min: 1, max: 24 }).map((digits) => ({ kind: "digits" as const, digits })),
);

const optionsArb: fc.Arbitrary<RandomStudentOptions> = fc.record({
  variant: fc.constantFrom("O" as const, "C" as const),
  rank: fc.integer({ min: 1, max: 5 }),
  alpha: fc.oneof(fc.constantFrom(8, 16, 0.5, 1 / 3), fc.double({ min: 1e-3, max: 1e3, noNaN: true })),
  aux: auxArb,
  window: fc.integer({ min: 1, max: 32 }),
  seed: fc.integer(),
  zeroB: fc.boolean(),
});

describe("ADAPTER-FILE: student adapter files", () => {
  it("random students of random tiny teachers round-trip, byte-identical on re-serialisation", () => {
    fc.assert(
      fc.property(tinyCheckpoint, optionsArb, (ckpt, options) => {
        const sum = teacherChecksum(ckpt);
        const student = randomStudent(ckpt, sum, options);
        const bytes = serializeStudent(student);
        const parsed = parseStudent(bytes, FILE);
        expectSameStudent(parsed, student);
        expect(sameBytes(serializeStudent(parsed), bytes)).toBe(true);
        expect(parsed.config.teacherChecksum).toBe(sum);
        expect(() => checkStudentMatchesTeacher(parsed, ckpt, sum, FILE)).not.toThrow();
      }),
      { numRuns: 60 },
    );
  });

  it("stores the documented tensors with their shapes", () => {
    const check = (options: RandomStudentOptions, extra: Record<string, number[]>): void => {
      const file = parseSafetensors(serializeStudent(randomStudent(teacher, checksum, options)), FILE);
      const want: Record<string, number[]> = { ...extra };
      for (let l = 0; l < small.nLayers; l++) {
        for (const name of LINEAR_NAMES) {
          const [o, i] = linearShape(small, name);
          want[`layers.${l}.${name}.lora_A`] = [options.rank, i];
          want[`layers.${l}.${name}.lora_B`] = [o, options.rank];
        }
      }
      const got = Object.fromEntries([...file.tensors].map(([k, t]) => [k, t.shape]));
      expect(got).toEqual(want);
      for (const t of file.tensors.values()) expect(t.dtype).toBe("F32");
    };
    expect(linearShape(small, "wk")).toEqual([4, 8]);
    expect(linearShape(small, "w2")).toEqual([8, 12]);
    check({ variant: "O", rank: 3, seed: 1 }, { "aux.weight": [8, 32], "aux.bias": [8] });
    check({ variant: "C", rank: 2, seed: 1, aux: { kind: "digits", digits: 5 } }, { "aux.weight": [8, 5], "aux.bias": [8], start: [8] });
    check({ variant: "O", rank: 1, seed: 1, aux: { kind: "anchors" } }, { "aux.anchors": [3, 8] });
  });

  it("stores the documented metadata", () => {
    const meta = (options: RandomStudentOptions): Record<string, string> => parseSafetensors(serializeStudent(randomStudent(teacher, checksum, options)), FILE).metadata;
    const teacherShape = '{"dim":8,"hiddenDim":12,"nLayers":2,"nHeads":2,"nKvHeads":1,"vocabSize":10,"seqLen":16,"sharedClassifier":true}';
    expect(meta({ variant: "O", rank: 4, seed: 1 })).toEqual({
      format: "ptp-student",
      format_version: "1",
      variant: "O",
      rank: "4",
      alpha: "8",
      aux_kind: "bits",
      window: "16",
      slot_input: "hybrid",
      teacher_checksum: checksum,
      teacher_shape: teacherShape,
    });
    // A plain (aux) student writes no slot_input: absent means u only.
    expect(meta({ variant: "C", rank: 2, alpha: 0.5, window: 7, aux: { kind: "digits", digits: 12 }, hybrid: false, seed: 1 })).toEqual({
      format: "ptp-student",
      format_version: "1",
      variant: "C",
      rank: "2",
      alpha: "0.5",
      aux_kind: "digits",
      aux_digits: "12",
      window: "7",
      teacher_checksum: checksum,
      teacher_shape: teacherShape,
    });
    // Digits with another kind were dropped silently; they are refused (a file never holds them either).
    expect(() => meta({ variant: "O", rank: 1, aux: { kind: "anchors", digits: 3 }, seed: 1 })).toThrow(/aux.digits goes with kind "digits" only \(kind is "anchors"/);
    const { normEps: _e, ropeTheta: _t, ...shapeOnly } = small;
    expect(JSON.parse(meta({ variant: "O", rank: 1, seed: 1 }).teacher_shape)).toStrictEqual(shapeOnly);
  });

  it("writes atomically and reads back", () => {
    const path = join(tmp, "s.safetensors");
    const student = randomStudent(teacher, checksum, { variant: "C", rank: 2, seed: 9, aux: { kind: "anchors" } });
    writeStudent(path, student);
    expect(existsSync(`${path}.tmp`)).toBe(false);
    expectSameStudent(readStudent(path), student);
    expect(sameBytes(readFileSync(path), serializeStudent(student))).toBe(true);
    const missing = join(tmp, "missing.safetensors");
    expect(formatError(() => readStudent(missing), missing).problem).toMatch(/file does not exist \(expected a PTP student adapter/);
  });
});

describe("ADAPTER-RANDOM: randomStudent", () => {
  it("is deterministic per seed, with the documented defaults and scales", () => {
    const a = randomStudent(teacher, checksum, { variant: "C", rank: 3, seed: 42 });
    const b = randomStudent(teacher, checksum, { variant: "C", rank: 3, seed: 42 });
    const c = randomStudent(teacher, checksum, { variant: "C", rank: 3, seed: 43 });
    expect(sameBytes(serializeStudent(a), serializeStudent(b))).toBe(true);
    expect(sameBytes(serializeStudent(a), serializeStudent(c))).toBe(false);
    expect(a.config).toEqual({
      variant: "C",
      rank: 3,
      alpha: 8,
      aux: { kind: "bits" },
      window: 16,
      hybrid: true,
      teacherShape: { dim: 8, hiddenDim: 12, nLayers: 2, nHeads: 2, nKvHeads: 1, vocabSize: 10, seqLen: 16, sharedClassifier: true },
      teacherChecksum: checksum,
    });
    for (const layer of a.weights.layers) {
      for (const name of LINEAR_NAMES) {
        const inp = linearShape(small, name)[1];
        const { A, B } = layer[name];
        expect(Math.max(...A.map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(inp));
        expect(A.some((v) => v !== 0)).toBe(true);
        expect(Math.max(...B.map(Math.abs))).toBeLessThanOrEqual(0.02);
        expect(B.some((v) => v !== 0)).toBe(true);
      }
    }
    // Hybrid by default (DEFAULT_SLOT_INPUT): a hybrid C-PTP student's start vector is exactly 0; a plain one's is random like the aux weights.
    const plain = randomStudent(teacher, checksum, { variant: "C", rank: 3, seed: 42, hybrid: false });
    expect(plain.config.hybrid).toBeUndefined();
    expect(a.weights.start!.every((v) => v === 0)).toBe(true);
    for (const arr of [a.weights.aux.weight!, a.weights.aux.bias!, plain.weights.start!]) {
      expect(Math.max(...arr.map(Math.abs))).toBeLessThanOrEqual(0.02);
      expect(arr.some((v) => v !== 0)).toBe(true);
    }
    expect(a.weights.aux.anchors).toBeUndefined();
    expect(randomStudent(teacher, checksum, { variant: "O", rank: 3, seed: 42 }).weights.start).toBeUndefined();
  });

  it("zeroB makes every B exactly zero (and keeps A)", () => {
    const z = randomStudent(teacher, checksum, { variant: "O", rank: 2, seed: 5, zeroB: true });
    const r = randomStudent(teacher, checksum, { variant: "O", rank: 2, seed: 5 });
    z.weights.layers.forEach((layer, l) => {
      for (const name of LINEAR_NAMES) {
        expect(layer[name].B.every((v) => Object.is(v, 0))).toBe(true);
        expect(layer[name].B.length).toBe(linearShape(small, name)[0] * 2);
        // A is drawn first in each pair, so only the stream after the first B differs
        if (l === 0 && name === "wq") expect(firstBitDifference(layer[name].A, r.weights.layers[0].wq.A)).toBeNull();
      }
    });
    const anchors = randomStudent(teacher, checksum, { variant: "O", rank: 2, seed: 5, aux: { kind: "anchors" } });
    expect(anchors.weights.aux.anchors!.length).toBe(3 * small.dim);
    expect(anchors.weights.aux.weight).toBeUndefined();
  });

  it("refuses invalid options", () => {
    expect(() => randomStudent(teacher, checksum, { variant: "O", rank: 0, seed: 1 })).toThrow(/randomStudent: metadata "rank" must be a positive integer, found "0"/);
    expect(() => randomStudent(teacher, checksum, { variant: "O", rank: 2.5, seed: 1 })).toThrow(/"rank" must be a positive integer/);
    expect(() => randomStudent(teacher, checksum, { variant: "O", rank: 2, alpha: 0, seed: 1 })).toThrow(/"alpha" must be a positive number/);
    expect(() => randomStudent(teacher, checksum, { variant: "O", rank: 2, window: 0, seed: 1 })).toThrow(/"window" must be a positive integer/);
    expect(() => randomStudent(teacher, checksum, { variant: "X" as "O", rank: 2, seed: 1 })).toThrow(/"variant" must be "O" or "C"/);
    expect(() => randomStudent(teacher, checksum, { variant: "O", rank: 2, seed: 1, aux: { kind: "digits", digits: 25 } })).toThrow(/"aux_digits" must be an integer in 1..24, found "25"/);
    expect(() => randomStudent(teacher, checksum, { variant: "O", rank: 2, seed: 1, aux: { kind: "digits" } })).toThrow(/"aux_digits"/);
  });
});

describe("ADAPTER-ERRORS: student adapter validation", () => {
  const o = randomStudent(teacher, checksum, { variant: "O", rank: 2, seed: 3 });
  const c = randomStudent(teacher, checksum, { variant: "C", rank: 2, seed: 3, aux: { kind: "digits", digits: 4 } });

  it("refuses files that are not ptp-student adapters", () => {
    expect(problem(new Uint8Array([1, 2, 3]))).toMatch(/shorter than the 8-byte safetensors header length/);
    expect(problem(serializeSafetensors({}))).toMatch(/not a PTP student adapter: metadata "format" is missing \(expected "ptp-student"\)/);
    expect(problem(edited(o, (_, m) => (m.format = "peft")))).toMatch(/not a PTP student adapter: metadata "format" is "peft", expected "ptp-student"/);
    expect(problem(edited(o, (_, m) => (m.format_version = "2")))).toMatch(/unsupported ptp-student format_version "2" \(this library reads version 1\)/);
    expect(problem(edited(o, (_, m) => delete m.format_version))).toMatch(/metadata "format_version" is missing/);
  });

  it("refuses invalid config metadata", () => {
    expect(problem(edited(o, (_, m) => (m.variant = "B")))).toMatch(/metadata "variant" must be "O" or "C", found "B"/);
    expect(problem(edited(o, (_, m) => delete m.variant))).toMatch(/metadata "variant" is missing/);
    for (const bad of ["0", "-1", "1.5", "abc", "", "1e1"]) {
      expect(problem(edited(o, (_, m) => (m.rank = bad)))).toMatch(`metadata "rank" must be a positive integer, found ${JSON.stringify(bad)}`);
      expect(problem(edited(o, (_, m) => (m.window = bad)))).toMatch(`metadata "window" must be a positive integer, found ${JSON.stringify(bad)}`);
    }
    for (const bad of ["0", "-8", "abc", "", "Infinity", "NaN"]) {
      expect(problem(edited(o, (_, m) => (m.alpha = bad)))).toMatch(`metadata "alpha" must be a positive number, found ${JSON.stringify(bad)}`);
    }
    // The range the writers keep (MIN_ALPHA, MAX_ALPHA): 1e20 was read, a LoRA scale past float32's range.
    for (const bad of ["1e20", "10001", "0.0009"]) {
      expect(problem(edited(o, (_, m) => (m.alpha = bad)))).toMatch(`metadata "alpha" is ${Number(bad)}, outside [0.001, 10000]`);
    }
    expect(problem(edited(o, (_, m) => (m.aux_kind = "fourier")))).toMatch(/metadata "aux_kind" must be one of bits, digits, anchors, found "fourier"/);
    for (const bad of ["0", "25", "-1", "2.5", "x"]) {
      expect(problem(edited(c, (_, m) => (m.aux_digits = bad)))).toMatch(`metadata "aux_digits" must be an integer in 1..24, found ${JSON.stringify(bad)}`);
    }
    expect(problem(edited(c, (_, m) => delete m.aux_digits))).toMatch(/metadata "aux_digits" is missing/);
    expect(problem(edited(o, (_, m) => (m.aux_digits = "3")))).toMatch(/"aux_digits" is only allowed with aux_kind "digits" \(aux_kind is "bits"\)/);
    expect(problem(edited(o, (_, m) => delete m.teacher_checksum))).toMatch(/metadata "teacher_checksum" is missing/);
    expect(problem(edited(o, (_, m) => delete m.teacher_shape))).toMatch(/metadata "teacher_shape" is missing/);
    expect(problem(edited(o, (_, m) => (m.teacher_shape = "{dim")))).toMatch(/metadata "teacher_shape" is not valid JSON/);
    expect(problem(edited(o, (_, m) => (m.teacher_shape = "[8]")))).toMatch(/metadata "teacher_shape" must be a JSON object/);
    const shape = (patch: object): string => JSON.stringify({ ...o.config.teacherShape, ...patch });
    expect(problem(edited(o, (_, m) => (m.teacher_shape = shape({ nLayers: 0 }))))).toMatch(/"teacher_shape" needs nLayers as a positive integer, found 0/);
    expect(problem(edited(o, (_, m) => (m.teacher_shape = shape({ dim: undefined }))))).toMatch(/"teacher_shape" needs dim as a positive integer, found undefined/);
    expect(problem(edited(o, (_, m) => (m.teacher_shape = shape({ sharedClassifier: 1 }))))).toMatch(/needs sharedClassifier as a boolean, found 1/);
    expect(problem(edited(o, (_, m) => (m.teacher_shape = shape({ nHeads: 3 }))))).toMatch(/"teacher_shape" is not a valid model shape: nHeads \(3\) must divide dim \(8\)/);
  });

  it("refuses missing, misshapen, extra and non-F32 tensors", () => {
    expect(problem(edited(o, (t) => delete t["layers.1.w2.lora_B"]))).toMatch(/tensor "layers.1.w2.lora_B" is missing \(expected shape \[8, 2\]\)/);
    expect(problem(edited(o, (t) => delete t["aux.bias"]))).toMatch(/tensor "aux.bias" is missing \(expected shape \[8\]\)/);
    expect(problem(edited(o, (t) => (t["layers.0.wk.lora_A"] = { dtype: "F32", shape: [2, 4], data: new Float32Array(8) })))).toMatch(/tensor "layers.0.wk.lora_A" has shape \[2, 4\], expected \[2, 8\]/);
    expect(problem(edited(o, (t) => (t["aux.weight"] = { dtype: "F32", shape: [32, 8], data: new Float32Array(256) })))).toMatch(/tensor "aux.weight" has shape \[32, 8\], expected \[8, 32\]/);
    expect(problem(edited(o, (t) => (t["aux.bias"] = { dtype: "F32", shape: [1, 8], data: new Float32Array(8) })))).toMatch(/tensor "aux.bias" has shape \[1, 8\], expected \[8\]/);
    expect(problem(edited(o, (t) => (t["layers.2.wq.lora_A"] = { dtype: "F32", shape: [2, 8], data: new Float32Array(16) })))).toMatch(/unexpected tensor "layers.2.wq.lora_A" \(not part of a O-PTP student with aux kind bits\)/);
    expect(
      problem(
        edited(o, (t) => {
          for (let i = 0; i < 7; i++) t[`extra.${i}`] = { dtype: "U8", shape: [0], data: new Uint8Array(0) };
        }),
      ),
    ).toMatch(/unexpected tensors "extra.0", "extra.1", "extra.2", "extra.3", "extra.4", and 2 more/);
    expect(problem(edited(o, (t) => (t["aux.anchors"] = { dtype: "F32", shape: [3, 8], data: new Float32Array(24) })))).toMatch(/unexpected tensor "aux.anchors"/);
    expect(problem(edited(o, (t) => (t["aux.bias"] = { dtype: "I32", shape: [8], data: new Int32Array(8) })))).toMatch(/tensor "aux.bias" has dtype I32, expected F32/);
    // F16 read from a file is refused too (hand-built: the writer does not write F16)
    const f16 = edited(o, (t) => (t["aux.bias"] = { dtype: "U8", shape: [16], data: new Uint8Array(16) }));
    const text = new TextDecoder().decode(f16.subarray(8, 8 + Number(new DataView(f16.buffer).getBigUint64(0, true))));
    const patched = text.replace('"aux.bias":{"dtype":"U8","shape":[16]', '"aux.bias":{"dtype":"F16","shape":[8] ');
    expect(patched).not.toBe(text);
    const f16file = new Uint8Array(f16);
    f16file.set(new TextEncoder().encode(patched), 8);
    expect(problem(f16file)).toMatch(/tensor "aux.bias" has dtype F16, expected F32/);
  });

  it("refuses a start vector for O and its absence for C", () => {
    expect(problem(edited(o, (t) => (t.start = { dtype: "F32", shape: [8], data: new Float32Array(8) })))).toMatch(/variant O has no start vector, but the file has a tensor "start"/);
    expect(problem(edited(c, (t) => delete t.start))).toMatch(/variant C needs the start vector, but tensor "start" \[8\] is missing/);
    expect(problem(edited(c, (_, m) => (m.variant = "O")))).toMatch(/variant O has no start vector/);
    expect(problem(edited(o, (_, m) => (m.variant = "C")))).toMatch(/variant C needs the start vector/);
  });

  it("serializeStudent refuses inconsistent students", () => {
    const clone = (s: Student): Student => parseStudent(serializeStudent(s), FILE);
    const a = clone(o);
    a.weights.layers[0].wq.A = new Float32Array(3);
    expect(() => serializeStudent(a)).toThrow(/serializeStudent: layers.0.wq.lora_A has 3 floats, expected 16 for shape \[2, 8\]/);
    const b = clone(o);
    b.weights.layers.pop();
    expect(() => serializeStudent(b)).toThrow(/serializeStudent: the teacher has 2 layers but the weights have 1/);
    const d = clone(o);
    d.weights.start = new Float32Array(8);
    expect(() => serializeStudent(d)).toThrow(/variant O has no start vector, but weights.start is set/);
    const e = clone(c);
    delete e.weights.start;
    expect(() => serializeStudent(e)).toThrow(/serializeStudent: start is missing \(expected a Float32Array of shape \[8\]\)/);
    const f = clone(o);
    f.config.rank = 0;
    expect(() => serializeStudent(f)).toThrow(/serializeStudent: metadata "rank" must be a positive integer/);
    const g = clone(o);
    g.weights.aux.anchors = new Float32Array(24);
    expect(() => serializeStudent(g)).toThrow(/aux kind bits has no anchors, but they are set/);
  });
});

describe("ADAPTER-TEACHER: checkStudentMatchesTeacher", () => {
  const student = randomStudent(teacher, checksum, { variant: "O", rank: 2, seed: 3 });

  it("accepts the teacher it was made for", () => {
    expect(() => checkStudentMatchesTeacher(student, teacher, checksum, FILE)).not.toThrow();
    // the same weights loaded again (another object) match too
    const reloaded = parseCheckpoint(serializeCheckpoint(teacher), "t.bin");
    expect(() => checkStudentMatchesTeacher(student, reloaded, teacherChecksum(reloaded), FILE)).not.toThrow();
  });

  it("names every differing shape field", () => {
    const other = randomCheckpoint({ ...small, dim: 4, nLayers: 1 }, 7);
    expect(() => checkStudentMatchesTeacher(student, other, teacherChecksum(other), FILE)).toThrow("adapter x.safetensors was made for a teacher with dim 8, nLayers 2 but the model has dim 4, nLayers 1");
    const sep = randomCheckpoint({ ...small, sharedClassifier: false, vocabSize: 11 }, 7);
    expect(() => checkStudentMatchesTeacher(student, sep, teacherChecksum(sep), FILE)).toThrow("adapter x.safetensors was made for a teacher with vocabSize 10, sharedClassifier true but the model has vocabSize 11, sharedClassifier false");
  });

  it("refuses a teacher of the same shape with other weights", () => {
    const other = randomCheckpoint(small, 8);
    const sum = teacherChecksum(other);
    expect(() => checkStudentMatchesTeacher(student, other, sum, FILE)).toThrow(`adapter x.safetensors belongs to teacher ${checksum.slice(0, 12)} but the model's checksum is ${sum.slice(0, 12)}: load the teacher it was trained for`);
    // Checksums that share their first 12 characters are shown in full, so that the two never read alike.
    const near = `${sum.slice(0, 12)}ff`;
    expect(() => checkStudentMatchesTeacher({ ...student, config: { ...student.config, teacherChecksum: near } }, other, sum, FILE)).toThrow(`adapter x.safetensors belongs to teacher ${near} but the model's checksum is ${sum}: load the teacher it was trained for`);
  });
});
