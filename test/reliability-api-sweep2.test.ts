/**
 * A hostile user's sweep of the library API, fourth round: wrong types,
 * misspelled option keys and edge values on the model (Transformer,
 * KVCache, the config functions), the wasm backend's host transfers, the
 * decoders and their harnesses, the PTP files and initialisers, the
 * evaluation and the tokenizers. Each must give an Error naming the
 * function and the argument, never a raw V8 error ("Cannot read properties
 * of undefined", "x is not a function"), an ignored option or a silent
 * wrong answer; and the checks change no result.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { type Backend, BackendError } from "../src/backends/backend.js";
import { JsBackend } from "../src/backends/js/index.js";
import { createBackend } from "../src/backends/registry.js";
import { HfTokenizer, llama2cTokenizerToJson } from "../src/io/hf-tokenizer.js";
import { Tokenizer } from "../src/io/tokenizer.js";
import { MAX_VOCAB_SIZE, parameterCount, validateConfig, type ModelConfig } from "../src/model/config.js";
import { randomCheckpoint } from "../src/model/init.js";
import { KVCache } from "../src/model/kv-cache.js";
import { Transformer } from "../src/model/transformer.js";
import { comparePtpAr, decodeBatches } from "../src/ptp/decode/compare.js";
import { decodeAR } from "../src/ptp/decode/decode-ar.js";
import { decode, decodeWith, makeDecoder } from "../src/ptp/decode/run.js";
import { DraftModel } from "../src/ptp/draft-model.js";
import { runPtpExactness } from "../src/ptp/exactness.js";
import { checkStudentMatchesTeacher, readStudent, writeStudent } from "../src/ptp/files/adapter-file.js";
import { checkDraftMatchesTeacher, writeDraft } from "../src/ptp/files/draft-file.js";
import { isPeftFolder, readPeftStudent, studentToPeft, writePeftStudent } from "../src/ptp/files/peft.js";
import { loadStudent } from "../src/ptp/files/student-file.js";
import { teacherChecksum } from "../src/ptp/files/teacher-checksum.js";
import { randomDraft, randomStudent, teacherDraft } from "../src/ptp/init.js";
import { PtpModel } from "../src/ptp/ptp-model.js";
import { XorShiftAux } from "../src/sampling/aux.js";
import { evaluateStudent } from "../src/train/evaluate.js";
import { checkOptionKeys, nearestName } from "../src/util/options.js";
import { thrown, TOK_512 } from "./helpers.js";

const CONFIG: ModelConfig = { dim: 8, hiddenDim: 12, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 16, seqLen: 16, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };
const scratch = (): string => mkdtempSync(join(tmpdir(), "ptp-api-sweep2-"));
const any = (v: unknown) => v as never;
/** Never a raw engine error: the message starts with the function's name. */
const noRaw = (e: Error) => expect(e.message).not.toMatch(/Cannot read properties|is not a function|Cannot destructure|is not iterable/);

const setup = () => {
  const b = new JsBackend();
  const ckpt = randomCheckpoint(CONFIG, 1);
  const checksum = teacherChecksum(ckpt);
  const teacher = new Transformer(b, ckpt);
  const student = randomStudent(ckpt, checksum, { variant: "C", rank: 2, window: 3, seed: 1 });
  const model = new PtpModel(teacher, student);
  return { b, ckpt, checksum, teacher, student, model };
};

describe("model: Transformer, KVCache and the config functions", () => {
  it("API-TRANSFORMER-ARGS: new Transformer names a missing backend, checkpoint or options object and refuses an unknown option key (classifierWeight was ignored)", () => {
    const b = new JsBackend();
    const ckpt = randomCheckpoint(CONFIG, 1);
    for (const c of [undefined, null, 5, {}, { config: CONFIG }]) {
      const e = thrown(() => new Transformer(b, any(c)));
      expect(e, JSON.stringify(c)).toBeInstanceOf(TypeError);
      noRaw(e);
      expect(e.message).toMatch(/^Transformer: (checkpoint must be a Checkpoint \{ config, weights \}|the weights must be an object)/);
    }
    expect(() => new Transformer(any(undefined), ckpt)).toThrow(/^Transformer: backend must be a Backend/);
    expect(() => new Transformer(b, ckpt, any(null))).toThrow(/^Transformer: options must be an object \(\{ classifierWeights \}\), got null/);
    expect(() => new Transformer(b, ckpt, any({ classifierWeight: "int8" }))).toThrow(/^Transformer: unknown option "classifierWeight"; did you mean classifierWeights\?/);
    // The option itself still works (and js still says it has f32 only).
    expect(() => new Transformer(b, ckpt, { classifierWeights: "int8" })).toThrow(/reads every matmul weight in f32/);
    expect(new Transformer(b, ckpt, { classifierWeights: "f32" }).config.dim).toBe(8);
  });

  it("API-KVCACHE-COMMIT: new KVCache names a missing config or backend; commit refuses a NaN or out-of-range position id (both were stored and the length grew)", () => {
    const b = new JsBackend();
    expect(() => new KVCache(b, any(undefined))).toThrow(/^KVCache: the config must be a ModelConfig object/);
    expect(() => new KVCache(any(null), CONFIG)).toThrow(/^KVCache: backend must be a Backend/);
    expect(() => new KVCache(b, CONFIG, any(null))).toThrow(/^KVCache: capacity must be a positive integer, got null/);
    const cache = new KVCache(b, CONFIG, 4);
    for (const positions of [[NaN], [99], [16], [-1], [1.5], ["3"]]) {
      expect(() => cache.commit(any(positions)), JSON.stringify(positions)).toThrow(/^KVCache.commit: position ids must be integers in \[0, 16\) \(the model's seqLen\); entry 0 is /);
      expect(cache.length).toBe(0);
    }
    expect(() => cache.commit(any(undefined))).toThrow(/^KVCache.commit: positions must be an array of position ids/);
    expect(() => cache.commit([0, 1, NaN])).toThrow(/entry 2 is NaN/);
    expect(cache.length).toBe(0); // nothing half-committed
    cache.commit([0, 1]);
    expect(cache.length).toBe(2);
    expect(Array.from(cache.positions.subarray(0, 2))).toEqual([0, 1]);
    cache.free();
    expect(() => cache.commit([2])).toThrow(/^KVCache.commit: the cache was freed/);
  });

  it("API-MODEL-DISPOSED: a disposed model says so by name in forward, greedy, sampleLast, newCache and lastHidden (it said 'buffer used after free', and newCache still worked on js)", async () => {
    for (const b of [new JsBackend(), await createBackend("wasm", { threads: 1 })]) {
      const model = new Transformer(b, randomCheckpoint(CONFIG, 1));
      const cache = model.newCache();
      const block = { tokens: [1], positions: [0] };
      model.forward(block, cache);
      model.dispose();
      model.dispose(); // still harmless
      expect(() => model.forward({ tokens: [2], positions: [1] }, cache), b.name).toThrow(/^Transformer.forward: the model was disposed/);
      expect(() => model.greedy({ tokens: [2], positions: [1] }, cache)).toThrow(/^Transformer.forward: the model was disposed/);
      expect(() => model.sampleLast({ tokens: [2], positions: [1] }, cache, { temperature: 0 }, 0.5)).toThrow(/^Transformer.forward: the model was disposed/);
      expect(() => model.newCache()).toThrow(/^Transformer.newCache: the model was disposed/);
      expect(() => model.lastHidden()).toThrow(/^Transformer.lastHidden: the model was disposed/);
      expect(() => model.pickRow(new Float32Array(16), { temperature: 1 }, 0.5)).toThrow(/^Transformer.pickRow: the model was disposed/);
      // A freed cache on a live model is named as such too.
      const live = new Transformer(b, randomCheckpoint(CONFIG, 1));
      const c2 = live.newCache();
      c2.free();
      expect(() => live.forward(block, c2)).toThrow(/^forward: the cache was freed/);
      live.dispose();
    }
  });

  it("API-CONFIG-BOUNDS: validateConfig names a missing config, bounds vocabSize (2^40 passed), wants a boolean sharedClassifier and number eps/theta; parameterCount({}) is an error, not NaN", () => {
    const e = thrown(() => validateConfig(any(undefined)));
    expect(e).toBeInstanceOf(TypeError);
    expect(e.message).toMatch(/^validateConfig: the config must be a ModelConfig object \{ dim, hiddenDim, .*\}, got undefined/);
    expect(() => validateConfig({ ...CONFIG, vocabSize: 2 ** 40 })).toThrow(new RegExp(`^validateConfig: vocabSize must be <= ${MAX_VOCAB_SIZE} \\(2\\^24\\), got ${2 ** 40}`));
    expect(() => validateConfig({ ...CONFIG, vocabSize: MAX_VOCAB_SIZE })).not.toThrow();
    for (const shared of ["yes", 1, undefined, "false"]) expect(() => validateConfig(any({ ...CONFIG, sharedClassifier: shared })), String(shared)).toThrow(/sharedClassifier must be a boolean/);
    expect(() => validateConfig(any({ ...CONFIG, normEps: "1e-5" }))).toThrow(/normEps must be a finite number > 0, got "1e-5" \(string\)/);
    expect(() => validateConfig(any({ ...CONFIG, ropeTheta: Infinity }))).toThrow(/ropeTheta must be a finite number > 0, got Infinity/);
    expect(() => validateConfig(any({ ...CONFIG, dim: "8" }))).toThrow(/dim must be a positive integer, got "8" \(string\)/);
    expect(() => validateConfig(any({ ...CONFIG, dim: 0 }), "mine")).toThrow(RangeError);
    expect(() => parameterCount(any({}))).toThrow(/^parameterCount: dim must be a non-negative integer, got undefined/);
    expect(() => parameterCount(any(undefined))).toThrow(/^parameterCount: config must be a ModelConfig object/);
    expect(() => parameterCount(any({ ...CONFIG, sharedClassifier: "yes" }))).toThrow(/^parameterCount: sharedClassifier must be a boolean/);
    // A whole config counts as before; a vocabulary still 0 (a memory estimate before the corpus is read) counts too.
    expect(parameterCount(CONFIG)).toBe(16 * 8 + (2 * 8 + 8 * 8 * 2 + 2 * 4 * 8 + 3 * 12 * 8) + 8);
    expect(parameterCount({ ...CONFIG, vocabSize: 0 })).toBe(2 * 8 + 8 * 8 * 2 + 2 * 4 * 8 + 3 * 12 * 8 + 8);
  });
});

describe("backends: host transfers", () => {
  it("API-WASM-HOST-ARGS: the wasm backend's upload and download name missing data or a missing buffer with the js backend's messages (both gave raw TypeErrors)", async () => {
    for (const b of [new JsBackend(), await createBackend("wasm", { threads: 1 })]) {
      const x = b.alloc(4);
      for (const data of [undefined, null, 5]) {
        const e = thrown(() => b.upload(x, any(data)));
        expect(e, `${b.name} ${data}`).toBeInstanceOf(BackendError);
        noRaw(e);
        expect(e.message).toBe(`backend "${b.name}": upload: data must be a typed array (Float32Array, Int32Array or Uint8Array), got ${data === null ? "null" : typeof data}`);
      }
      for (const buf of [null, undefined, {}]) {
        const e = thrown(() => b.download(any(buf)));
        expect(e, `${b.name} ${buf}`).toBeInstanceOf(BackendError);
        expect(e.message).toMatch(/not a buffer of this backend/);
      }
      // The default length is still the rest of the buffer.
      b.upload(x, new Float32Array([1, 2, 3, 4]));
      expect(Array.from(b.download(x, 1))).toEqual([2, 3, 4]);
      b.free(x);
      (b as Backend).dispose?.();
    }
  });
});

describe("decoding: options, u sources and the harnesses", () => {
  it("API-DECODE-OPTIONS: decodeAR and decode refuse a misspelled option naming the one meant, a non-boolean stopAtBos and a callback that is not a function (stopAtBos: 'no' stopped at BOS; onToken: 5 failed inside)", () => {
    const { teacher, model } = setup();
    const ar = { steps: 6, sampling: { temperature: 0 } };
    expect(() => decodeAR(teacher, [1], any({ ...ar, onToken: 5 }))).toThrow(/^decodeAR: onToken must be a function, got 5/);
    for (const v of ["no", 0, null]) expect(() => decodeAR(teacher, [1], any({ ...ar, stopAtBos: v }))).toThrow(/^decodeAR: stopAtBos must be a boolean \(true or false\)/);
    expect(() => decodeAR(teacher, [1], any({ ...ar, stopAtBOS: false }))).toThrow(/^decodeAR: unknown option "stopAtBOS"; did you mean stopAtBos\?/);
    expect(() => decodeAR(teacher, [1], any({ ...ar, step: 4 }))).toThrow(/^decodeAR: unknown option "step"; did you mean steps\?/);
    expect(() => decodeAR(any(undefined), [1], ar)).toThrow(/^decodeAR: model must be a Transformer/);
    expect(() => decodeAR(teacher, [1], any({ ...ar, aux: 5 }))).toThrow(/^decodeAR: aux must be a source of auxiliary variables/);
    const base = { decoder: "verify" as const, steps: 6, sampling: { temperature: 0.8 }, aux: [new XorShiftAux(1)] };
    expect(() => decode(model, [[1]], any({ ...base, widnow: 3 }))).toThrow(/^decode: unknown option "widnow"; did you mean window\?/);
    expect(() => decode(model, [[1]], any({ ...base, stopAtBOS: false }))).toThrow(/^decode: unknown option "stopAtBOS"; did you mean stopAtBos\?/);
    expect(() => decode(model, [[1]], any({ ...base, stopAtBos: "no" }))).toThrow(/^decode: stopAtBos must be a boolean/);
    expect(() => decode(model, [[1]], any({ ...base, onCall: 5 }))).toThrow(/^decode: onCall must be a function, got 5/);
    expect(() => decode(model, [[1]], any({ ...base, onFinished: {} }))).toThrow(/^decode: onFinished must be a function, got an object/);
    expect(() => makeDecoder(model, any({ ...base, budgt: 3 }))).toThrow(/^decode: unknown option "budgt"; did you mean budget\?/);
    expect(() => decodeWith(model, [[1]], makeDecoder(model, base), any({ ...base, aux: [new XorShiftAux(1)], windw: 2 }))).toThrow(/^decodeWith: unknown option "windw"; did you mean window\?/);
    // Valid options still decode, stopAtBos false included, and the result is AR's.
    const out = decode(model, [[1]], { ...base, aux: [new XorShiftAux(1)], stopAtBos: false });
    expect(out.outputs[0]).toEqual(decodeAR(teacher, [1], { steps: 6, sampling: base.sampling, aux: new XorShiftAux(1), stopAtBos: false }).tokens);
  });

  it("API-AUX-SHARED: one AuxSource object given for two prompts is refused by decode, decodeWith and the harnesses' aux(i) (neither output was its prompt's AR path)", () => {
    const { model, teacher } = setup();
    const shared = new XorShiftAux(7);
    const options = { decoder: "verify" as const, steps: 8, sampling: { temperature: 1 }, aux: [shared, new XorShiftAux(8), shared] };
    expect(() => decode(model, [[1], [1], [1]], options)).toThrow(/^decode: aux\[0\] and aux\[2\] are the same object; each prompt needs a source of its own/);
    expect(() => decodeWith(model, [[1], [1], [1]], makeDecoder(model, options), options)).toThrow(/^decodeWith: aux\[0\] and aux\[2\] are the same object/);
    // What sharing did: prompt 1's output is not its AR path.
    const one = new XorShiftAux(7);
    // (checked on decodeAR directly: two sequences drawing from one stream would split it)
    expect(decodeAR(teacher, [1], { steps: 8, sampling: { temperature: 1 }, aux: one }).tokens).toEqual(decodeAR(teacher, [1], { steps: 8, sampling: { temperature: 1 }, aux: new XorShiftAux(7) }).tokens);
    // The harnesses: aux(i) must return a new source each call (PTP and then AR read it).
    const decodeOptions = { decoder: "verify" as const, steps: 8, sampling: { temperature: 1 } };
    const same = new XorShiftAux(3);
    expect(() => comparePtpAr(model, [[1]], { decode: decodeOptions, aux: () => same })).toThrow(/^comparePtpAr: aux\(0\) returned the same object as an earlier call; it must return a new source each call/);
    expect(() => decodeBatches(model, [[1], [1]], { decode: decodeOptions, aux: () => same })).toThrow(/^decodeBatches: aux\(1\) returned the same object as aux\(0\) call/);
    const fresh = comparePtpAr(model, [[1], [1]], { decode: decodeOptions, aux: (i) => new XorShiftAux(BigInt(i + 1)), batch: 1 });
    expect(fresh.equalsAR).toBe(true);
  });

  it("API-DECODE-GREEDY-AUX: decode at temperature 0 needs no aux, as decodeAR (it demanded an array); the outputs are AR's, bit for bit, and decode's with u's", () => {
    const { model, teacher } = setup();
    const prompts = [[1], [1, 5, 7]];
    const greedy = { decoder: "verify" as const, steps: 10, sampling: { temperature: 0 }, stopAtBos: false };
    const without = decode(model, prompts, greedy);
    const withUs = decode(model, prompts, { ...greedy, aux: prompts.map((_, i) => new XorShiftAux(i + 1)) });
    const ar = prompts.map((p) => decodeAR(teacher, p, { steps: 10, sampling: { temperature: 0 }, stopAtBos: false }).tokens);
    expect(without.outputs).toEqual(ar);
    expect(withUs.outputs).toEqual(ar);
    for (const decoder of ["single-call", "multi-draft", "ar"] as const) expect(decode(model, prompts, { ...greedy, decoder }).outputs, decoder).toEqual(ar);
    expect(comparePtpAr(model, prompts, { decode: greedy }).equalsAR).toBe(true);
    // Sampling still needs them, as decodeAR does.
    expect(() => decode(model, prompts, { ...greedy, sampling: { temperature: 0.7 } })).toThrow(/^decode: aux must be an array with one source of u's per prompt/);
    expect(() => decodeAR(teacher, [1], { steps: 4, sampling: { temperature: 0.7 } })).toThrow(/^decodeAR: sampling at temperature > 0 needs a source of auxiliary variables/);
  });

  it("API-COMPARE-ARGS: comparePtpAr and decodeBatches name a missing options object, decode options, aux function, callback or warmUp ('o.aux is not a function' before)", () => {
    const { model } = setup();
    const decodeOptions = { decoder: "verify" as const, steps: 6, sampling: { temperature: 1 } };
    const aux = (i: number) => new XorShiftAux(i + 1);
    for (const f of [comparePtpAr, decodeBatches] as const) {
      const name = f === comparePtpAr ? "comparePtpAr" : "decodeBatches";
      for (const o of [undefined, null, 5]) {
        const e = thrown(() => f(model, [[1]], any(o)));
        expect(e).toBeInstanceOf(TypeError);
        noRaw(e);
        expect(e.message).toMatch(new RegExp(`^${name}: options must be an object \\(\\{ decode, aux, batch`));
      }
      expect(() => f(model, [[1]], any({}))).toThrow(new RegExp(`^${name}: decode must be the decode options`));
      expect(() => f(model, [[1]], any({ decode: decodeOptions, aux: 5 }))).toThrow(new RegExp(`^${name}: aux must be a function, got 5`));
      expect(() => f(model, [[1]], any({ decode: decodeOptions, aux: () => 5 }))).toThrow(new RegExp(`^${name}: aux\\(0\\) must be a source of auxiliary variables`));
      expect(() => f(model, [[1]], any({ decode: decodeOptions, aux, batchSize: 1 }))).toThrow(new RegExp(`^${name}: unknown option "batchSize"; did you mean batch\\?`));
      expect(() => f(model, [[1]], any({ decode: { ...decodeOptions, aux: [new XorShiftAux(1)] }, aux }))).toThrow(new RegExp(`^${name}: decode.aux is not read`));
      expect(() => f(model, [[1]], any({ decode: { ...decodeOptions, widnow: 2 }, aux }))).toThrow(/unknown option "widnow"; did you mean window\?/);
      expect(() => f(model, [[1]], any({ decode: decodeOptions, aux, onBatch: 1 }))).toThrow(new RegExp(`^${name}: onBatch must be a function`));
      expect(() => f(model, any([]), { decode: decodeOptions, aux })).toThrow(new RegExp(`^${name}: no prompts`));
    }
    expect(() => comparePtpAr(model, [[1]], any({ decode: decodeOptions, aux, warmUp: "yes" }))).toThrow(/^comparePtpAr: warmUp must be "ar" or "both"/);
    expect(() => decodeBatches(model, [[1]], any({ decode: decodeOptions, aux, warmUp: "ar" }))).toThrow(/^decodeBatches: unknown option "warmUp"/);
    expect(comparePtpAr(model, [[1]], { decode: decodeOptions, aux, warmUp: "both" }).equalsAR).toBe(true);
  });

  it("API-EXACTNESS-ARGS: runPtpExactness names a missing backend or options object, refuses an unknown key (run: 1 was ignored) and bounds runs", async () => {
    for (const backend of [undefined, null, 5, {}]) await expect(runPtpExactness(any(backend))).rejects.toThrow(/^runPtpExactness: backend must be a registered backend's name or a Backend instance/);
    for (const options of [null, 5, []]) await expect(runPtpExactness("js", any(options))).rejects.toThrow(/^runPtpExactness: options must be an object \(\{ runs, seed, backendOptions \}\)/);
    await expect(runPtpExactness("js", any({ run: 1 }))).rejects.toThrow(/^runPtpExactness: unknown option "run"; did you mean runs\?/);
    await expect(runPtpExactness("js", { runs: 1e9 })).rejects.toThrow(/^runPtpExactness: runs must be at most 10000/);
    const report = await runPtpExactness("js", { runs: 1, seed: 3 });
    expect(report.passed).toBe(true);
  });
});

describe("PTP files, initialisers and the evaluation", () => {
  it("API-PTP-FILES-ARGS: teacherChecksum, the student and draft readers and writers, the PEFT functions, the match checks and new DraftModel name a missing argument (all raw TypeErrors or Node's path error before)", () => {
    const { b, ckpt, checksum, teacher, student } = setup();
    const draft = randomDraft(ckpt, checksum, { variant: "C", window: 3, seed: 2 });
    const dir = scratch();
    for (const c of [undefined, null, 5, {}]) expect(() => teacherChecksum(any(c)), String(c)).toThrow(/^teacherChecksum: (teacher must be a Checkpoint \(readModel\) or a Transformer \(loadModel\), got|checkpoint must be a Checkpoint|the weights must be)/);
    expect(() => teacherChecksum({ ...ckpt, weights: { ...ckpt.weights, layers: [] } })).toThrow(/^teacherChecksum: layers must be an array of nLayers = 1 layers/);
    for (const path of [undefined, null, 5, ""]) {
      expect(() => writeStudent(any(path), student)).toThrow(/^writeStudent: path must be a file path \(a non-empty string\)/);
      expect(() => readStudent(any(path))).toThrow(/^readStudent: path must be a file path/);
      expect(() => loadStudent(any(path))).toThrow(/^loadStudent: path must be a file path/);
      expect(() => writeDraft(any(path), draft)).toThrow(/^writeDraft: path must be a file path/);
      expect(() => writePeftStudent(any(path), student)).toThrow(/^writePeftStudent: dir must be a file path/);
      expect(() => readPeftStudent(any(path))).toThrow(/^readPeftStudent: dir must be a file path/);
      expect(() => isPeftFolder(any(path))).toThrow(/^isPeftFolder: dir must be a file path/);
    }
    for (const s of [undefined, null, {}, { config: {} }]) {
      expect(() => writeStudent(join(dir, "s.safetensors"), any(s))).toThrow(/^writeStudent: student must be a Student \{ config, weights \}/);
      expect(() => writePeftStudent(join(dir, "peft"), any(s))).toThrow(/^writePeftStudent: student must be a Student/);
      expect(() => studentToPeft(any(s))).toThrow(/^studentToPeft: student must be a Student/);
      expect(() => checkStudentMatchesTeacher(any(s), ckpt, checksum, "x")).toThrow(/^checkStudentMatchesTeacher: student must be a Student/);
      expect(() => writeDraft(join(dir, "d.safetensors"), any(s))).toThrow(/^writeDraft: draft must be a Draft \{ config, weights \}/);
      expect(() => checkDraftMatchesTeacher(any(s), ckpt, checksum, "x")).toThrow(/^checkDraftMatchesTeacher: draft must be a Draft/);
      expect(() => new DraftModel(teacher, any(s))).toThrow(/^DraftModel: draft must be a Draft/);
    }
    expect(() => checkStudentMatchesTeacher(student, any(undefined), checksum, "x")).toThrow(/^checkStudentMatchesTeacher: teacher must be a Checkpoint/);
    expect(() => checkStudentMatchesTeacher(student, ckpt, any(undefined), "x")).toThrow(/^checkStudentMatchesTeacher: checksum must be the teacher's checksum/);
    expect(() => checkDraftMatchesTeacher(draft, any(null), checksum, "x")).toThrow(/^checkDraftMatchesTeacher: teacher must be a Checkpoint/);
    expect(() => writePeftStudent(join(dir, "peft"), student, any({ base: "x" }))).toThrow(/^writePeftStudent: unknown option "base"; did you mean baseModel\?/);
    expect(() => writePeftStudent(join(dir, "peft"), student, any({ baseModel: 5 }))).toThrow(/^writePeftStudent: baseModel must be a string/);
    expect(() => readPeftStudent(dir, any({ teachr: 1 }))).toThrow(/^readPeftStudent: unknown option "teachr"; did you mean teacher\?/);
    expect(() => readPeftStudent(dir, any({ teacher: {} }))).toThrow(/^readPeftStudent: teacher has neither config nor checkpoint; give one \({ config, checksum } or { checkpoint, checksum }\)$/);
    expect(() => new DraftModel(any(undefined), draft)).toThrow(/^DraftModel: teacher must be a Transformer/);
    expect(() => new DraftModel(teacher, draft, any({ classifier: "int8" }))).toThrow(/^DraftModel: unknown option "classifier"; did you mean classifierWeights\?/);
    // The good calls still work and round-trip.
    writeStudent(join(dir, "s.safetensors"), student);
    expect(readStudent(join(dir, "s.safetensors")).weights.layers[0].wq.A).toEqual(student.weights.layers[0].wq.A);
    checkStudentMatchesTeacher(student, ckpt, checksum, "s");
    writePeftStudent(join(dir, "peft"), student, { baseModel: "stories" });
    expect(readPeftStudent(join(dir, "peft")).config.rank).toBe(2);
    new DraftModel(teacher, draft).dispose();
    teacher.dispose();
    expect(b.name).toBe("js");
  });

  it("API-PTP-INIT-ARGS: randomStudent, randomDraft and teacherDraft name a missing teacher, checksum or options object, refuse unknown keys (windw: 5 gave window 2 silently), non-boolean flags and numeric strings", () => {
    const { ckpt, checksum } = setup();
    const o = { variant: "O" as const, rank: 2, seed: 1 };
    const d = { variant: "O" as const, seed: 1 };
    for (const [f, name, good] of [
      [randomStudent, "randomStudent", o],
      [randomDraft, "randomDraft", d],
      [teacherDraft, "teacherDraft", d],
    ] as const) {
      for (const options of [undefined, null, 5]) expect(() => f(ckpt, checksum, any(options))).toThrow(new RegExp(`^${name}: options must be an object`));
      expect(() => f(any(undefined), checksum, any(good))).toThrow(new RegExp(`^${name}: teacher must be a Checkpoint`));
      expect(() => f(ckpt, any(undefined), any(good))).toThrow(new RegExp(`^${name}: checksum must be the teacher's checksum`));
      expect(() => f(ckpt, checksum, any({ ...good, windw: 5 }))).toThrow(new RegExp(`^${name}: unknown option "windw"; did you mean window\\?`));
      expect(() => f(ckpt, checksum, any({ ...good, hybrid: "yes" }))).toThrow(new RegExp(`^${name}: hybrid must be a boolean`));
      expect(() => f(ckpt, checksum, any({ ...good, window: "4" }))).toThrow(new RegExp(`^${name}: window must be a number, got "4" \\(string\\)`));
      expect(() => f(ckpt, checksum, any({ ...good, aux: "bits" }))).toThrow(new RegExp(`^${name}: aux must be an auxiliary embedding config`));
      expect(() => f(ckpt, checksum, any(good))).not.toThrow();
    }
    expect(() => randomStudent(ckpt, checksum, any({ ...o, windw: 5 }))).toThrow(/^randomStudent: unknown option "windw"; did you mean window\?/);
    expect(() => randomStudent(ckpt, checksum, any({ ...o, zeroB: 1 }))).toThrow(/^randomStudent: zeroB must be a boolean/);
    expect(() => randomStudent(ckpt, checksum, any({ ...o, rank: "2" }))).toThrow(/^randomStudent: rank must be a number/);
    expect(() => randomStudent(ckpt, checksum, any({ variant: "O", rank: 2 }))).toThrow(/^randomStudent: seed must be a number, got undefined/);
    expect(() => randomDraft(ckpt, checksum, any({ variant: "O", seed: 1, query: true }))).toThrow(/^randomDraft: a draft model has no query slot input/);
    // Valid calls are unchanged (same seed, same weights), the CLI's query: false included.
    expect(randomStudent(ckpt, checksum, { ...o, window: 5 }).config.window).toBe(5);
    expect(randomDraft(ckpt, checksum, { variant: "O", seed: 1, query: false, hybrid: false }).weights.model.tokenEmbedding).toEqual(randomDraft(ckpt, checksum, { variant: "O", seed: 1 }).weights.model.tokenEmbedding);
  });

  it("API-EVALUATE-ARGS: evaluateStudent names a missing teacher, proposer or settings object and an unknown setting", () => {
    const { teacher, student } = setup();
    const s = { prompts: [[1]], steps: 6, sampling: { temperature: 0.8 }, decoder: "verify" as const, seed: 1 };
    const proposer = { kind: "student" as const, student };
    expect(() => evaluateStudent(any(undefined), proposer, s)).toThrow(/^evaluateStudent: teacher must be a Transformer, got undefined/);
    for (const p of [undefined, null, {}, { kind: "lora", student }]) expect(() => evaluateStudent(teacher, any(p), s), JSON.stringify(p)).toThrow(/^evaluateStudent: proposer/);
    expect(() => evaluateStudent(teacher, any({ kind: "student" }), s)).toThrow(/^evaluateStudent: proposer.student must be a Student/);
    expect(() => evaluateStudent(teacher, any({ kind: "draft", draft: null }), s)).toThrow(/^evaluateStudent: proposer.draft must be a Draft/);
    expect(() => evaluateStudent(teacher, proposer, any(undefined))).toThrow(/^evaluateStudent: settings must be an object/);
    expect(() => evaluateStudent(teacher, proposer, any({ ...s, seeds: 2 }))).toThrow(/^evaluateStudent: unknown option "seeds" in settings; did you mean seed\?/);
    expect(evaluateStudent(teacher, proposer, s).generatedTokens).toBeGreaterThan(0);
  });
});

describe("tokenizers", () => {
  it("API-TOKENIZER-FLAGS: encode takes boolean bos and eos ('yes' read as true); decodePiece takes a previous token id or -1 (none), not -2, NaN or one past the vocabulary", () => {
    const tok = Tokenizer.load(TOK_512, 512);
    const hf = HfTokenizer.fromJson(llama2cTokenizerToJson(tok), {}, "tokenizer.json", 512);
    for (const [t, name] of [
      [tok, "Tokenizer"],
      [hf, "HfTokenizer"],
    ] as const) {
      for (const bos of ["yes", 1, undefined, null]) expect(() => t.encode("Once", any(bos), false), `${name} ${bos}`).toThrow(new RegExp(`^${name}.encode: bos must be a boolean`));
      expect(() => t.encode("Once", true, any("no"))).toThrow(new RegExp(`^${name}.encode: eos must be a boolean`));
      for (const prev of [-2, NaN, 1.5, 512, "1"]) {
        const e = thrown(() => t.decodePiece(any(prev), 403));
        expect(e, `${name} ${prev}`).toBeInstanceOf(RangeError);
        expect(e.message).toMatch(new RegExp(`^${name}.decodePiece: prev must be a token id in \\[0, 512\\) or -1 \\(no previous token\\)`));
      }
      // -1 (no previous token, as printedBytes passes for a sequence's first token) and real ids decode as before.
      expect(Buffer.from(t.decodePiece(-1, 403)).toString("latin1")).toBe(" Once");
      expect(Buffer.from(t.decodePiece(1, 403)).toString("latin1")).toBe("Once");
      expect(t.encode("Once", true, false)).toEqual(tok.encode("Once", true, false));
    }
    expect(tok.decode(tok.encode("Once upon a time", true, false))).toBe("Once upon a time");
  });
});

describe("the shared option checks", () => {
  it("API-OPTION-KEYS: checkOptionKeys names the nearest key (case or up to two edits) and nothing for far-off keys; nearestName is case-blind", () => {
    expect(nearestName("stopAtBOS", ["steps", "stopAtBos"])).toBe("stopAtBos");
    expect(nearestName("widnow", ["window", "budget"])).toBe("window");
    expect(nearestName("zzzzzz", ["window", "budget"])).toBeUndefined();
    expect(() => checkOptionKeys({ zzzzzz: 1 }, "f", ["window"])).toThrow(/^f: unknown option "zzzzzz" \(the options are window\)$/);
    expect(() => checkOptionKeys([], "f", ["window"])).toThrow(/^f: options must be an object \(\{ window \}\), got an array$/);
    expect(checkOptionKeys({ window: 1 }, "f", ["window"])).toEqual({ window: 1 });
  });
});
