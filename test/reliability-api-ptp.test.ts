/**
 * A hostile user's sweep of the PTP model API (tmp/api-sweep findings):
 * PtpModel.forward's `slots`, the scratch buffers a failed allocation must
 * leave usable, hand-built students and draft heads, the head options, the
 * random initialisers' nested options, loadStudent's teacher and the
 * KVCache messages. Each bad argument gives a typed Error naming the
 * function and the argument before anything changes, and the model still
 * decodes exactly as AR afterwards.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { thrown } from "./helpers.js";
import { BackendError, type Buffer, type DType } from "../src/backends/backend.js";
import { JsBackend } from "../src/backends/js/index.js";
import type { ModelConfig } from "../src/model/config.js";
import { randomCheckpoint } from "../src/model/init.js";
import { Transformer } from "../src/model/transformer.js";
import type { Checkpoint } from "../src/model/weights.js";
import { decodeAR } from "../src/ptp/decode/decode-ar.js";
import { decode } from "../src/ptp/decode/run.js";
import { draftHeadOf } from "../src/ptp/draft-head.js";
import { serializeStudent, writeStudent } from "../src/ptp/files/adapter-file.js";
import { loadStudent } from "../src/ptp/files/student-file.js";
import { readPeftStudent, writePeftStudent } from "../src/ptp/files/peft.js";
import { teacherChecksum } from "../src/ptp/files/teacher-checksum.js";
import { randomDraft, randomStudent, type RandomStudentOptions } from "../src/ptp/init.js";
import { PtpModel } from "../src/ptp/ptp-model.js";
import type { Student } from "../src/ptp/student-weights.js";
import { XorShiftAux } from "../src/sampling/aux.js";

const CONFIG: ModelConfig = { dim: 16, hiddenDim: 24, nLayers: 2, nHeads: 2, nKvHeads: 1, vocabSize: 32, seqLen: 48, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };
const any = (v: unknown) => v as never;
/** f throws an error of class `type` whose message is exactly `message`. */
const throwsExactly = (f: () => unknown, type: new (...args: never[]) => Error, message: string) => {
  const e = thrown(f);
  expect(e.message).toBe(message);
  expect(e).toBeInstanceOf(type);
};

/**
 * A js backend whose allocations fail, as out of memory would, while a
 * function named `failIn` (e.g. "GatedLora.reserve") is on the stack; it
 * counts the buffers it holds.
 */
class FlakyBackend extends JsBackend {
  failIn: string | undefined;
  live = 0;
  override alloc(length: number, dtype?: DType): Buffer {
    if (this.failIn !== undefined && new Error().stack?.includes(this.failIn)) throw new BackendError(this.name, `out of memory (injected in ${this.failIn})`);
    const buf = super.alloc(length, dtype);
    this.live++;
    return buf;
  }
  override free(buf: Buffer): void {
    super.free(buf);
    this.live--;
  }
}

const ckpt: Checkpoint = randomCheckpoint(CONFIG, 7);
const checksum = teacherChecksum(ckpt);
const STUDENTS: Record<string, RandomStudentOptions> = {
  O: { variant: "O", rank: 2, window: 3, seed: 1 },
  C: { variant: "C", rank: 2, window: 3, seed: 2 },
  query: { variant: "C", rank: 2, window: 3, seed: 3, query: true, extraBlocks: 1, pickFeedback: "chain" },
  head: { variant: "C", rank: 2, window: 3, seed: 4, query: true, extraBlocks: 1, pickFeedback: "chain", draftHead: true },
};
const student = (kind: keyof typeof STUDENTS): Student => randomStudent(ckpt, checksum, STUDENTS[kind]);

/** The model decodes 24 tokens of a prompt, sampling at temperature 0.8, exactly as the teacher's AR does. */
const expectEqualsAR = (model: PtpModel, prompt = [1, 5]) => {
  const sampling = { temperature: 0.8 };
  const ptp = decode(model, [prompt], { decoder: "verify", steps: 24, sampling, aux: [new XorShiftAux(3)] }).outputs[0];
  expect(ptp).toEqual(decodeAR(model.teacher, prompt, { steps: 24, sampling, aux: new XorShiftAux(3) }).tokens);
};

/** A block of one token row then `slots` slot rows (tokens[i] < 0 where an embedding stands), or tokens as given. */
const slotBlock = (tokens: number[]) => ({ tokens, positions: tokens.map((_, i) => i), embeddings: new Float32Array(tokens.length * CONFIG.dim).fill(0.1) });

describe("PtpModel.forward: slots", () => {
  it("API-PTP-SLOTS: a slots that is not an integer in [0, rows] is a RangeError naming PtpModel.forward and slots, before the cache or the model changes; the model then still decodes as AR", () => {
    const b = new JsBackend();
    const teacher = new Transformer(b, ckpt);
    for (const kind of ["O", "C", "query"] as const) {
      const model = new PtpModel(teacher, student(kind));
      expectEqualsAR(model);
      for (const [bad, shown] of [
        [Number.NaN, "NaN"],
        [-1, "-1"],
        ["1", '"1" (string)'],
        [1.5, "1.5"],
        [3, "3"],
        [undefined, "undefined"],
        [null, "null"],
      ] as const) {
        const cache = model.newCache(8);
        throwsExactly(() => model.forward(slotBlock([1, -1]), cache, any(bad)), RangeError, `PtpModel.forward: slots must be an integer in [0, 2], got ${shown}`);
        expect(cache.length, kind).toBe(0);
      }
      throwsExactly(() => model.forward(slotBlock([1, -1]), model.newCache(8), 1, any(null)), TypeError, "PtpModel.forward: feedback must be an array of the slot rows that read a pick, got null");
      // A malformed block is still the teacher's to name; slots is checked as far as it can be.
      expect(() => model.forward(any({}), model.newCache(8), 0)).toThrow(/^forward: block.positions must be an array/);
      throwsExactly(() => model.forward(any(null), model.newCache(8), -2), RangeError, "PtpModel.forward: slots must be a non-negative integer, got -2");
      // The bounds themselves are accepted.
      expect(model.forward(slotBlock([1, -1]), model.newCache(8), 0)).toHaveLength(2 * CONFIG.vocabSize);
      expect(model.forward(slotBlock([1, -1]), model.newCache(8), 2)).toHaveLength(2 * CONFIG.vocabSize);
      expectEqualsAR(model);
      model.dispose();
    }
  });
});

describe("scratch buffers: a failed allocation leaves the model usable", () => {
  it("API-PTP-RESERVE-LORA: the gated LoRA's scratch allocates its new buffers before it frees the old ones: out of memory there frees what it made and the model still decodes as AR", () => {
    const b = new FlakyBackend();
    const teacher = new Transformer(b, ckpt);
    const model = new PtpModel(teacher, student("C"));
    expectEqualsAR(model);
    const big = slotBlock([1, ...Array<number>(11).fill(-1)]);
    // The teacher's own run state grows first (no slots), so only the LoRA's scratch still has to.
    model.forward(big, model.newCache(16), 0);
    const cache = model.newCache(16);
    const live = b.live;
    b.failIn = "GatedLora.reserve";
    expect(() => model.forward(big, cache, 11)).toThrow(/out of memory \(injected in GatedLora.reserve\)/);
    b.failIn = undefined;
    expect(b.live).toBe(live);
    expect(model.forward(big, model.newCache(16), 11)).toHaveLength(12 * CONFIG.vocabSize);
    expectEqualsAR(model);
  });

  it("API-PTP-RESERVE-RUNSTATE: the teacher's run state (rows, then a mask) allocates its new buffers before it frees the old ones: out of memory there leaves the teacher decoding as before", () => {
    const b = new FlakyBackend();
    const teacher = new Transformer(b, ckpt);
    const model = new PtpModel(teacher, student("C"));
    expectEqualsAR(model);
    const prompt = Array.from({ length: 20 }, (_, i) => 1 + (i % 30));
    const cache = teacher.newCache(24);
    const live = b.live;
    b.failIn = "RunState.reserve";
    expect(() => teacher.forward({ tokens: prompt, positions: prompt.map((_, i) => i) }, cache)).toThrow(/out of memory \(injected in RunState.reserve\)/);
    b.failIn = undefined;
    expect(b.live).toBe(live);
    expect(teacher.forward({ tokens: prompt, positions: prompt.map((_, i) => i) }, teacher.newCache(24))).toHaveLength(20 * CONFIG.vocabSize);
    expectEqualsAR(model, prompt.slice(0, 5));
  });

  it("API-PTP-RESERVE-EXTRA: the extra blocks' hidden-state buffer is allocated before the old one is freed: out of memory there leaves the model decoding as AR", () => {
    const b = new FlakyBackend();
    const teacher = new Transformer(b, ckpt);
    const model = new PtpModel(teacher, student("query"));
    expectEqualsAR(model);
    // A token row among the slot rows (a query slot) keeps its final state through the extra blocks (their reserve).
    model.forward(slotBlock([1, -1, 2, -1]), model.newCache(16), 3);
    // Every run state grows to 7 slot rows without that buffer.
    model.forward(slotBlock([1, -1, -1, -1, -1, -1, -1, -1]), model.newCache(16), 7);
    const withQuery = slotBlock([1, -1, -1, 4, -1, -1, -1, -1]);
    const live = b.live;
    b.failIn = "ExtraBlocks.reserve";
    expect(() => model.forward(withQuery, model.newCache(16), 7)).toThrow(/out of memory \(injected in ExtraBlocks.reserve\)/);
    b.failIn = undefined;
    expect(b.live).toBe(live + 2 * (CONFIG.nLayers + 1)); // the cache made for the call, nothing else
    expect(model.forward(withQuery, model.newCache(16), 7)).toHaveLength(8 * CONFIG.vocabSize);
    expectEqualsAR(model);
  });

  it("API-PTP-RESERVE-HEAD: a draft head's ingest buffer is allocated before the old one is freed: out of memory there leaves the model decoding as AR", () => {
    const b = new FlakyBackend();
    const teacher = new Transformer(b, ckpt);
    const model = new PtpModel(teacher, student("head"));
    expectEqualsAR(model, [1]);
    const long = [1, 5, 9, 2, 7, 3, 8, 4, 6, 10, 11, 12];
    b.failIn = "DraftHead.reserve";
    expect(() => expectEqualsAR(model, long)).toThrow(/out of memory \(injected in DraftHead.reserve\)/);
    b.failIn = undefined;
    expectEqualsAR(model, long);
    expectEqualsAR(model);
  });
});

describe("PtpModel: the student, the head and its options", () => {
  const teacher = new Transformer(new JsBackend(), ckpt);
  const o = student("O");
  /** o with its config changed by `config`. */
  const withConfig = (config: Record<string, unknown>): Student => ({ config: { ...o.config, ...config } as never, weights: o.weights });

  it("API-PTP-STUDENT: a hand-built student is checked as a file's would be (one check, shared with serializeStudent), naming PtpModel and the field, at construction rather than at decode (a rank 0 was a wasm divide-by-zero trap)", () => {
    const refused: [Student, new (...args: never[]) => Error, string][] = [
      [withConfig({ rank: 0 }), RangeError, 'PtpModel: invalid student: config.rank must be a positive integer, found "0"'],
      [withConfig({ rank: 2.5 }), RangeError, 'PtpModel: invalid student: config.rank must be a positive integer, found "2.5"'],
      [withConfig({ rank: "2" }), TypeError, 'PtpModel: invalid student: config.rank must be a number, got "2" (string)'],
      [withConfig({ variant: "X" }), RangeError, 'PtpModel: invalid student: config.variant must be "O" or "C", found "X"'],
      [withConfig({ variant: ["O"] }), TypeError, "PtpModel: invalid student: config.variant must be a string, got an array"],
      [withConfig({ window: 0 }), RangeError, 'PtpModel: invalid student: config.window must be a positive integer, found "0"'],
      [withConfig({ window: 49 }), RangeError, "PtpModel: invalid student: config.window is 49, more than the teacher's seqLen 48 (teacher_shape)"],
      [withConfig({ alpha: Number.NaN }), RangeError, 'PtpModel: invalid student: config.alpha must be a positive number, found "NaN"'],
      [withConfig({ hybrid: "yes" }), TypeError, 'PtpModel: invalid student: config.hybrid must be a boolean when given, got "yes" (string)'],
      [withConfig({ windw: 3 }), RangeError, 'PtpModel: invalid student: unknown option "windw" in config; did you mean window? (the options are variant, rank, alpha, aux, window, hybrid, query, extraBlocks, pickFeedback, draftHead, teacherShape, teacherChecksum)'],
      [withConfig({ aux: { kind: "bits", digts: 3 } }), RangeError, 'PtpModel: invalid student: unknown option "digts" in config.aux; did you mean digits? (the options are kind, digits)'],
      [withConfig({ aux: { kind: "bogus" } }), RangeError, 'PtpModel: invalid student: config.aux.kind must be one of bits, digits, anchors, found "bogus"'],
      [withConfig({ teacherChecksum: "" }), RangeError, "PtpModel: invalid student: config.teacherChecksum is empty"],
      [{ config: o.config, weights: any({}) }, TypeError, "PtpModel: invalid student: weights.aux must be an object, got undefined"],
      [{ config: o.config, weights: any({ aux: o.weights.aux }) }, TypeError, "PtpModel: invalid student: weights.layers must be an array (a LayerLora per teacher layer), got undefined"],
      [{ config: o.config, weights: { ...o.weights, layers: o.weights.layers.slice(1) } }, RangeError, "PtpModel: invalid student: the teacher has 2 layers but the weights have 1"],
      [{ config: o.config, weights: { ...o.weights, layers: [{ ...o.weights.layers[0], wq: { A: new Float32Array(3), B: o.weights.layers[0].wq.B } }, o.weights.layers[1]] } }, RangeError, "PtpModel: invalid student: layers.0.wq.lora_A has 3 floats, expected 32 for shape [2, 16]"],
      [{ config: o.config, weights: { ...o.weights, start: new Float32Array(16) } }, RangeError, "PtpModel: invalid student: variant O has no start vector, but weights.start is set"],
    ];
    for (const [s, type, message] of refused) throwsExactly(() => new PtpModel(teacher, s), type, message);
    // serializeStudent runs the same check, in its own (file) words.
    expect(() => serializeStudent(withConfig({ rank: 0 }))).toThrow(/^serializeStudent: metadata "rank" must be a positive integer/);
    throwsExactly(() => serializeStudent(withConfig({ rank: "2" })), TypeError, 'serializeStudent: config.rank must be a number, got "2" (string)');
    // The checks that were there keep their words, now naming PtpModel.
    const q = student("query");
    throwsExactly(() => new PtpModel(teacher, { ...q, weights: { ...q.weights, extra: [] } }), Error, "PtpModel: the student's config has 1 extra blocks but its weights have 0");
    throwsExactly(() => new PtpModel(teacher, { ...q, weights: { ...q.weights, extra: [{ ...q.weights.extra![0], wk: new Float32Array(3) }] } }), TypeError, "PtpModel: extra block 0: wk must be a Float32Array of 128 values (the teacher's layer shape), got 3 values");
    throwsExactly(() => new PtpModel(teacher, { ...q, config: { ...q.config, query: undefined } }), Error, "PtpModel: pick feedback needs a query student (slot_input query): only its first pick is known inside the call");
    // A valid student still runs, and decodes as AR.
    const model = new PtpModel(teacher, o);
    expectEqualsAR(model);
    model.dispose();
  });

  it("API-PTP-HEAD-OPTIONS: the head options are checked always (type, keys, classifierWeights); without a draft head a valid one is ignored, as the CLI passes the draft model's options alike", () => {
    throwsExactly(() => new PtpModel(teacher, o, undefined, any({ classifierWeight: "int8" })), RangeError, 'PtpModel: unknown option "classifierWeight" in the head\'s options; did you mean classifierWeights? (the options are classifierWeights)');
    throwsExactly(() => new PtpModel(teacher, o, undefined, any({ bogus: 1 })), RangeError, 'PtpModel: unknown option "bogus" in the head\'s options (the options are classifierWeights)');
    throwsExactly(() => new PtpModel(teacher, o, undefined, any([])), TypeError, "PtpModel: the head's options must be an object ({ classifierWeights }), got an array");
    throwsExactly(() => new PtpModel(teacher, undefined, undefined, any({ classifierWeights: "int4" })), RangeError, 'PtpModel: the head\'s options.classifierWeights must be one of f32, bf16, int8, got "int4" (string)');
    throwsExactly(() => new PtpModel(teacher, student("head"), undefined, any({ classifierWeight: "f32" })), RangeError, 'PtpModel: unknown option "classifierWeight" in the head\'s options; did you mean classifierWeights? (the options are classifierWeights)');
    // Valid options: ignored without a head (the draft model's), read by a head.
    for (const s of [undefined, o]) new PtpModel(teacher, s, undefined, { classifierWeights: "int8" }).dispose();
    const headed = new PtpModel(teacher, student("head"), undefined, { classifierWeights: "f32" });
    expect(headed.head).toBeDefined();
    expectEqualsAR(headed);
    headed.dispose();
  });

  it("API-PTP-HEAD-SPEC: a head spec that is not a DraftHeadSpec is a TypeError or RangeError naming PtpModel and the field (a {} read properties of undefined); a head goes with a draft-head student", () => {
    const h = student("head");
    const spec = draftHeadOf(h, CONFIG, ckpt.weights);
    throwsExactly(() => new PtpModel(teacher, h, any({})), TypeError, "PtpModel: head.model must be a Checkpoint { config, weights } (readModel, readCheckpoint, randomCheckpoint), got undefined");
    throwsExactly(() => new PtpModel(teacher, h, any(5)), TypeError, "PtpModel: head must be a DraftHeadSpec { model, teacherDim, aux, auxWeights, bridge? } (draftHeadOf, widenDraftHead), got 5");
    throwsExactly(() => new PtpModel(teacher, h, any({ ...spec, brige: new Float32Array(1) })), RangeError, 'PtpModel: unknown option "brige" in head; did you mean bridge? (the options are model, bridge, teacherDim, aux, auxWeights)');
    throwsExactly(() => new PtpModel(teacher, h, any({ ...spec, teacherDim: "16" })), RangeError, 'PtpModel: head.teacherDim must be a positive integer, got "16" (string)');
    throwsExactly(() => new PtpModel(teacher, h, any({ ...spec, aux: undefined })), TypeError, 'PtpModel: head.aux must be an auxiliary embedding config such as { kind: "bits" }, got undefined');
    throwsExactly(() => new PtpModel(teacher, h, any({ ...spec, aux: { kind: "bitz" } })), RangeError, 'PtpModel: head.aux.kind must be one of bits, digits, anchors, found "bitz"');
    throwsExactly(() => new PtpModel(teacher, h, { ...spec, auxWeights: { ...spec.auxWeights, weight: new Float32Array(5) } }), RangeError, "PtpModel: head: aux.weight has 5 floats, expected 512 for shape [16, 32]");
    throwsExactly(() => new PtpModel(teacher, o, spec), Error, "PtpModel: a draft head goes with a draft-head student (StudentConfig.draftHead)");
    // The head as draftHeadOf gives it runs.
    const model = new PtpModel(teacher, h, spec);
    expectEqualsAR(model);
    model.dispose();
  });
});

describe("the initialisers' nested options, loadStudent's teacher and KVCache's messages", () => {
  it("API-PTP-RANDOM-STUDENT: a rank too large to store is a clear RangeError before anything is allocated; aux takes the keys kind and digits only, a string kind and a number of digits", () => {
    throwsExactly(() => randomStudent(ckpt, checksum, { variant: "O", rank: 1e9, seed: 1 }), RangeError, "randomStudent: rank 1000000000 and the teacher's shape (dim 16, hiddenDim 24, nLayers 2) make a student of 464000000528 floats (1856000002112 bytes), more than a student adapter may hold (2147483647 bytes)");
    throwsExactly(() => randomStudent(ckpt, checksum, any({ variant: "O", rank: 2, seed: 1, aux: { kind: "digits", digts: 3 } })), RangeError, 'randomStudent: unknown option "digts" in aux; did you mean digits? (the options are kind, digits)');
    throwsExactly(() => randomStudent(ckpt, checksum, any({ variant: "O", rank: 2, seed: 1, aux: { kind: "digits", digits: "3" } })), TypeError, 'randomStudent: aux.digits must be a number, got "3" (string)');
    throwsExactly(() => randomStudent(ckpt, checksum, any({ variant: "O", rank: 2, seed: 1, aux: { kind: ["bits"] } })), TypeError, 'randomStudent: aux.kind must be a string ("bits", "digits" or "anchors"), got an array');
    expect(randomStudent(ckpt, checksum, { variant: "O", rank: 2, seed: 1, aux: { kind: "digits", digits: 3 } }).config.aux).toEqual({ kind: "digits", digits: 3 });
  });

  it("API-PTP-RANDOM-DRAFT: randomDraft's config takes ModelConfig fields only (a dimm was ignored for the default dim)", () => {
    throwsExactly(() => randomDraft(ckpt, checksum, any({ variant: "C", seed: 1, config: { dimm: 8 } })), RangeError, 'randomDraft: unknown option "dimm" in config; did you mean dim? (the options are dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, seqLen, sharedClassifier, normEps, ropeTheta)');
    expect(randomDraft(ckpt, checksum, { variant: "C", seed: 1, window: 4, config: { dim: 8, nHeads: 2, nKvHeads: 1 } }).config.model.dim).toBe(8);
  });

  it("API-PTP-LOADSTUDENT-TEACHER: loadStudent checks its teacher argument for a file as for a PEFT folder, and that the student was made for that teacher (shape and checksum)", () => {
    const path = join(mkdtempSync(join(tmpdir(), "ptp-api-ptp-")), "s.safetensors");
    writeStudent(path, student("C"));
    throwsExactly(() => loadStudent(path, any("garbage")), TypeError, 'loadStudent: teacher must be { config, checksum } (the teacher\'s config and teacherChecksum) or { checkpoint, checksum }, got "garbage" (string)');
    throwsExactly(() => loadStudent(path, any({ chekpoint: ckpt, checksum })), RangeError, 'loadStudent: unknown option "chekpoint" in teacher; did you mean checkpoint? (the options are config, checkpoint, checksum)');
    expect(() => loadStudent(path, any({ checkpoint: ckpt }))).toThrow(/^loadStudent: teacher: checksum must be the teacher's checksum/);
    expect(() => loadStudent(path, any({ checkpoint: {}, checksum }))).toThrow(/^loadStudent: teacher.checkpoint must be a Checkpoint/);
    // The teacher as its config and checksum (a Transformer's config, loadModel's, does as well): only the config is read.
    throwsExactly(() => loadStudent(path, any({ checksum })), TypeError, "loadStudent: teacher has neither config nor checkpoint; give one ({ config, checksum } or { checkpoint, checksum })");
    throwsExactly(() => loadStudent(path, any({ config: 5, checksum })), TypeError, "loadStudent: teacher.config must be a model config (a Checkpoint's or a Transformer's .config), got 5");
    expect(() => loadStudent(path, any({ config: { ...ckpt.config, dim: -1 }, checksum }))).toThrow(/^loadStudent: .*dim/);
    throwsExactly(() => loadStudent(path, any({ config: ckpt.config, checkpoint: ckpt, checksum })), TypeError, "loadStudent: teacher has both config and checkpoint; give one ({ config, checksum } or { checkpoint, checksum })");
    expect(loadStudent(path, { config: ckpt.config, checksum }).config.variant).toBe("C");
    expect(loadStudent(path, { config: new Transformer(new JsBackend(), ckpt).config, checksum }).config.variant).toBe("C");
    expect(() => loadStudent(path, { config: ckpt.config, checksum: "0".repeat(64) })).toThrow(/belongs to teacher/);
    expect(loadStudent(path, { checkpoint: ckpt, checksum }).config.variant).toBe("C");
    expect(loadStudent(path).config.variant).toBe("C");
    // A teacher of the same shape with other weights, or of another shape: the student was not made for it.
    const other = randomCheckpoint(CONFIG, 8);
    expect(() => loadStudent(path, { checkpoint: other, checksum: teacherChecksum(other) })).toThrow(new RegExp(`^adapter ${path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} belongs to teacher ${checksum.slice(0, 12)} but the model's checksum is ${teacherChecksum(other).slice(0, 12)}`));
    const wider = randomCheckpoint({ ...CONFIG, dim: CONFIG.dim * 2 }, 7);
    expect(() => loadStudent(path, { checkpoint: wider, checksum: teacherChecksum(wider) })).toThrow(/was made for a teacher with dim 16 .*but the model has dim 32/);
    // readPeftStudent's variant and window are checked even where the folder's own settings make them moot.
    const peft = join(mkdtempSync(join(tmpdir(), "ptp-api-ptp-")), "peft");
    writePeftStudent(peft, student("C"));
    throwsExactly(() => readPeftStudent(peft, any({ variant: "X" })), RangeError, 'readPeftStudent: variant must be "O" or "C", got "X" (string)');
    throwsExactly(() => readPeftStudent(peft, any({ window: 0 })), RangeError, "readPeftStudent: window must be a positive integer, got 0");
    expect(readPeftStudent(peft, { variant: "O", window: 4 }).config).toMatchObject({ variant: "C", window: 3 });
  });

  it("API-PTP-NULL-OPTIONS: null reads as absent for every decode setting (budget, drafts and runnerUps refused it where window took the default); slotInput checks its u's", () => {
    const b = new JsBackend();
    const model = new PtpModel(new Transformer(b, ckpt), student("C"));
    const sampling = { temperature: 0.8 };
    const run = (extra: object, decoder: "single-call" | "multi-draft" | "verify") => decode(model, [[1, 5]], { decoder, steps: 20, sampling, aux: [new XorShiftAux(3)], ...extra }).outputs[0];
    for (const decoder of ["single-call", "multi-draft", "verify"] as const) {
      const withDefaults = run({}, decoder);
      expect(run({ budget: null, drafts: null, window: null, runnerUps: null, draftStop: null, budgetMode: null }, decoder)).toEqual(withDefaults);
      expect(withDefaults).toEqual(decodeAR(model.teacher, [1, 5], { steps: 20, sampling, aux: new XorShiftAux(3) }).tokens);
    }
    throwsExactly(() => model.slotInput(0.5, Number.NaN), RangeError, "PtpModel.slotInput: previousU: auxiliary variable u must be in [0, 1), got NaN");
    throwsExactly(() => model.slotInput(1, 0.5), RangeError, "PtpModel.slotInput: ownU: auxiliary variable u must be in [0, 1), got 1");
    expect(model.slotInput(0.5, 0.25)).toHaveLength(CONFIG.dim);
    model.dispose();
  });

  it("API-PTP-KVCACHE: keep, crop and snapshot name a wrong argument with its type (a null or a Symbol was a raw TypeError, a string '3' read as 3)", () => {
    const cache = new Transformer(new JsBackend(), ckpt).newCache(8);
    throwsExactly(() => cache.keep(any(null)), TypeError, "KVCache.keep: indices must be an array of row indices (strictly increasing), got null");
    throwsExactly(() => cache.keep(any(5)), TypeError, "KVCache.keep: indices must be an array of row indices (strictly increasing), got 5");
    throwsExactly(() => cache.keep(any(["0"])), RangeError, 'KVCache.keep: indices must be strictly increasing integers below 0; got "0" (string) at 0');
    throwsExactly(() => cache.crop(any(Symbol())), RangeError, "KVCache.crop: length must be an integer in [0, 0], got symbol");
    throwsExactly(() => cache.crop(any("3")), RangeError, 'KVCache.crop: length must be an integer in [0, 0], got "3" (string)');
    throwsExactly(() => cache.snapshot(any("a")), RangeError, 'KVCache.snapshot: layer must be an integer in [0, 2), got "a" (string)');
    cache.keep([]);
    cache.crop(0);
    expect(cache.snapshot(1).keys).toHaveLength(0);
  });
});
