/**
 * The trainers' public API under hostile arguments (the API sweep's
 * tmp/api-sweep/s18_pretrain.mjs and its message findings): `pretrain`,
 * `distill` and `inverseArTrain` refuse an option key they do not read (in
 * `files`, `schedule`, `sampling` and `eval` too), a value outside its
 * documented range and a token stream of non-integer or out-of-vocabulary
 * ids, each synchronously, at the call, with a RangeError or TypeError whose
 * message starts with the function's name and names the option;
 * `randomCheckpoint` and `initModel` refuse a config key no config has; the
 * sampling functions, the seeded generators and the wasm backend's options
 * show a rejected value's type.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createBackend } from "../src/backends/registry.js";
import type { ModelConfig } from "../src/model/config.js";
import { initModel, randomCheckpoint } from "../src/model/init.js";
import { Transformer } from "../src/model/transformer.js";
import { randomStudent } from "../src/ptp/init.js";
import { XorShiftAux } from "../src/sampling/aux.js";
import { pick } from "../src/sampling/pick.js";
import { samplingDistribution, validateSamplingSettings } from "../src/sampling/processors.js";
import { sampleToken } from "../src/sampling/sampler.js";
import { tokenProbability } from "../src/sampling/softmax.js";
import { betaSample, drawU } from "../src/sampling/u-in-bin.js";
import { distill, type DistillOptions } from "../src/train/distill.js";
import { inverseArTrain, type InverseArOptions } from "../src/train/inverse-ar.js";
import { runLoop, type LoopOptions } from "../src/train/loop.js";
import { pretrain, type PretrainOptions } from "../src/train/pretrain.js";
import { lrAt } from "../src/train/schedule.js";
import { Mulberry32 } from "../src/util/prng.js";
import { Progress } from "../src/util/progress.js";
import { backend } from "./helpers.js";

const TINY: ModelConfig = { dim: 16, hiddenDim: 32, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 32, seqLen: 16, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };
const STREAM = Int32Array.from({ length: 200 }, (_, i) => (i * 7) % 32);
const LOOP: LoopOptions = { schedule: { lr: 1e-3, warmup: 0, totalSteps: 2, decay: "constant" }, weightDecay: 0, clip: 1, seed: 1, steps: 2, minutes: 0, evalEvery: 0 };
const PRETRAIN: PretrainOptions = { batch: 2, context: 8, ...LOOP };
const DISTILL: DistillOptions = { loss: "ce", gamma: 0.9, betaB: 1, windows: 2, sequences: 1, window: 4, sampling: { temperature: 0.8 }, ...LOOP };
const INVERSE_AR: InverseArOptions = { sequences: 1, context: 16, window: 4, sampling: { temperature: 0.8 }, betaB: 1, ...LOOP };
const quiet = { write() {}, isTTY: false };
const any = (x: unknown) => x as never;

/** A run's files in a fresh folder (nothing is written by a call refused at its arguments). */
function files() {
  const dir = mkdtempSync(join(tmpdir(), "api-train-"));
  return { out: join(dir, "out.bin"), checkpoint: join(dir, "ckpt.safetensors"), log: join(dir, "log.jsonl"), resume: false };
}

/** The three trainers over a tiny teacher and C-PTP student, each called with `o` merged into its valid options (and `f` into its files). */
async function trainers() {
  const ckpt = randomCheckpoint(TINY, 1);
  const teacher = new Transformer(await backend("js"), ckpt);
  const student = randomStudent(ckpt, "t", { variant: "C", rank: 2, window: 4, seed: 1 });
  const proposer = { kind: "student" as const, student };
  return {
    ckpt,
    teacher,
    student,
    pretrain: (o: object = {}, f: object = {}) => pretrain(randomCheckpoint(TINY, 1), STREAM, STREAM, any({ ...PRETRAIN, ...o }), any({ ...files(), ...f }), quiet),
    // No records: a call whose arguments pass is refused for want of a trainable record, still synchronously.
    distill: (o: object = {}, f: object = {}) => distill(ckpt, teacher, proposer, [], any({ ...DISTILL, ...o }), any({ ...files(), ...f }), quiet),
    inverseArTrain: (o: object = {}, f: object = {}) => inverseArTrain(ckpt, teacher, student, STREAM, any({ ...INVERSE_AR, ...o }), any({ ...files(), ...f }), quiet),
  };
}

describe("the trainers' arguments (API sweep, s18)", () => {
  it("API-TRAIN-KEYS: every trainer refuses an option key it does not read, naming it and the one meant, at the call", async () => {
    const t = await trainers();
    for (const name of ["pretrain", "distill", "inverseArTrain"] as const) {
      const run = t[name];
      expect(() => run({ thread: 2 }), name).toThrow(new RegExp(`^${name}: unknown option "thread"; did you mean threads\\? \\(the options are .*threads.*\\)`));
      expect(() => run({ evalEvry: 1 }), name).toThrow(new RegExp(`^${name}: unknown option "evalEvry"; did you mean evalEvery\\?`));
      expect(() => run({ foo: 1 }), name).toThrow(new RegExp(`^${name}: unknown option "foo" \\(the options are `));
      expect(() => run({ foo: 1 }), name).toThrow(RangeError);
      // Nested option objects: the schedule, and the run's files (a misspelt checkpoint path failed later, in "write").
      expect(() => run({ schedule: { ...LOOP.schedule, warmUp: 1 } }), name).toThrow(new RegExp(`^${name}: unknown option "warmUp" in schedule; did you mean warmup\\?`));
      expect(() => run({}, { checkpoint: undefined, chekpoint: "x.ckpt" }), name).toThrow(new RegExp(`^${name}: unknown option "chekpoint" in files; did you mean checkpoint\\?`));
    }
    expect(() => pretrain(randomCheckpoint(TINY, 1), STREAM, STREAM, PRETRAIN, any(null))).toThrow(/^pretrain: files must be an object \(\{ out, checkpoint, log, resume, inputs, inputNames, onCheckpoint \}\), got null/);
    expect(() => pretrain(randomCheckpoint(TINY, 1), STREAM, STREAM, PRETRAIN, { ...files(), inputNames: { corpus: 1 } } as unknown as Parameters<typeof pretrain>[4])).toThrow(/^pretrain: files.inputNames must be an object of strings/);
    expect(() => pretrain(randomCheckpoint(TINY, 1), STREAM, STREAM, any([]), files())).toThrow(/^pretrain: options must be an object \(\{ batch, context, threads, schedule, .*\}\), got an array/);
    // The PTP trainers' sampling settings and evaluation settings.
    for (const name of ["distill", "inverseArTrain"] as const) {
      expect(() => t[name]({ sampling: { temperature: 0.8, top_p: 0.9 } }), name).toThrow(new RegExp(`^${name}: unknown option "top_p" in sampling; did you mean topP\\?`));
      expect(() => t[name]({ eval: { prompt: [[1]], steps: 4, sampling: { temperature: 0.8 }, decoder: "verify", seed: 1 } }), name).toThrow(new RegExp(`^${name}: unknown option "prompt" in eval; did you mean prompts\\?`));
    }
  });

  it("API-TRAIN-VALUES: clip, minutes, steps and the loop's other numbers are checked at the call, each named with its range", async () => {
    const t = await trainers();
    for (const name of ["pretrain", "distill", "inverseArTrain"] as const) {
      const run = t[name];
      for (const clip of [Number.NaN, -1, Infinity, "1"]) expect(() => run({ clip }), `${name} clip ${String(clip)}`).toThrow(new RegExp(`^${name}: clip must be a finite number >= 0 \\(the gradient norm's bound; 0 = off\\), got `));
      expect(() => run({ clip: "1" })).toThrow(/got "1" \(string\)$/);
      for (const minutes of [-1, Number.NaN, Infinity]) expect(() => run({ minutes }), `${name} minutes ${minutes}`).toThrow(new RegExp(`^${name}: minutes must be a finite number >= 0 \\(0 = no limit\\), got ${minutes}`));
      // It said "Progress: total must be ...", naming an internal class.
      for (const steps of [-1, 1.5, undefined]) expect(() => run({ steps }), `${name} steps ${steps}`).toThrow(new RegExp(`^${name}: steps must be a non-negative integer, got ${steps}`));
      expect(() => run({ weightDecay: -5 })).toThrow(new RegExp(`^${name}: weightDecay must be a finite number >= 0, got -5`));
      expect(() => run({ evalEvery: 0.5 })).toThrow(new RegExp(`^${name}: evalEvery must be a non-negative integer, got 0.5`));
      expect(() => run({ stopAfter: -1 })).toThrow(new RegExp(`^${name}: stopAfter must be a non-negative integer, got -1`));
      expect(() => run({ seed: 1.5 })).toThrow(new RegExp(`^${name}: seed must be an integer, got 1.5`));
      expect(() => run({ schedule: { ...LOOP.schedule, warmup: -1 } })).toThrow(new RegExp(`^${name}: schedule.warmup must be an integer in \\[0, totalSteps = 2\\], got -1`));
      expect(() => run({ schedule: undefined })).toThrow(new RegExp(`^${name}: schedule must be an object \\(\\{ lr, warmup, totalSteps, decay, minLr \\}\\), got undefined`));
      expect(() => run({ nonFiniteHint: 3 })).toThrow(new RegExp(`^${name}: nonFiniteHint must be a string, got 3`));
      expect(() => run({ threads: 0 })).toThrow(new RegExp(`^${name}: threads must be a positive integer, got 0`));
    }
    // The documented "off" values stay valid: the calls get past every option check (distill then finds no record).
    expect(() => t.distill({ clip: 0, minutes: 0, steps: 0, stopAfter: 0 })).toThrow(/^distill: the dataset has no record with /);
  });

  it("API-TRAIN-FILES: the files are paths of their own, resume a boolean, onCheckpoint a function", async () => {
    const t = await trainers();
    for (const name of ["pretrain", "distill", "inverseArTrain"] as const) {
      const run = t[name];
      expect(() => run({}, { out: undefined }), name).toThrow(new RegExp(`^${name}: files.out must be a file path \\(a non-empty string\\), got undefined`));
      expect(() => run({}, { log: "" }), name).toThrow(new RegExp(`^${name}: files.log must be a file path \\(a non-empty string\\), got an empty string`));
      expect(() => run({}, { checkpoint: "/tmp/same", log: "/tmp/same" }), name).toThrow(new RegExp(`^${name}: files.checkpoint and files.log are the same path \\(/tmp/same\\); each file needs its own`));
      expect(() => run({}, { resume: "yes" }), name).toThrow(new RegExp(`^${name}: files.resume must be a boolean \\(true or false\\), got "yes" \\(string\\)`));
      expect(() => run({}, { onCheckpoint: 1 }), name).toThrow(new RegExp(`^${name}: files.onCheckpoint must be a function, got 1`));
    }
    const ckpt = randomCheckpoint(TINY, 1);
    expect(() => pretrain(ckpt, STREAM, STREAM, PRETRAIN, files(), any({ write: 1 }))).toThrow(/^pretrain: stream must be a ProgressStream \(an object with write\(text\)\), got an object/);
    expect(() => pretrain(any({}), STREAM, STREAM, PRETRAIN, files())).toThrow(/^pretrain: model must be a Checkpoint/);
  });

  it("API-TRAIN-TOKENS: a token stream of fractional or out-of-vocabulary ids is refused at the call, naming the stream and the position", async () => {
    const t = await trainers();
    const ckpt = randomCheckpoint(TINY, 1);
    const fractional = Float32Array.from(STREAM, (x, i) => (i === 5 ? 7.5 : x));
    // It trained: the copy into the workers' Int32Array cut 7.5 to 7.
    expect(() => pretrain(ckpt, any(fractional), STREAM, PRETRAIN, files())).toThrow(/^pretrain: train, position 5: token ids must be integers in \[0, 32\) \(the model's vocabulary\), got 7.5/);
    expect(() =>
      pretrain(
        ckpt,
        STREAM,
        Int32Array.from(STREAM, (x, i) => (i === 9 ? 99 : x)),
        PRETRAIN,
        files(),
      ),
    ).toThrow(/^pretrain: valid, position 9: token ids must be integers in \[0, 32\) .*got 99/);
    expect(() => pretrain(ckpt, any(["1", "2"]), STREAM, PRETRAIN, files())).toThrow(/^pretrain: train, position 0: .*got "1" \(string\)/);
    expect(() => pretrain(ckpt, any("1 2 3"), STREAM, PRETRAIN, files())).toThrow(/^pretrain: train must be an Int32Array of token ids, got "1 2 3" \(string\)/);
    expect(() => pretrain(ckpt, any(undefined), STREAM, PRETRAIN, files())).toThrow(TypeError);
    expect(() => inverseArTrain(t.ckpt, t.teacher, t.student, any(fractional), INVERSE_AR, files())).toThrow(/^inverseArTrain: stream, position 5: token ids must be integers in \[0, 32\) .*got 7.5/);
    expect(() => inverseArTrain(t.ckpt, t.teacher, t.student, STREAM.subarray(0, 16), INVERSE_AR, files())).toThrow(/^inverseArTrain: needs text windows of at least twice the slot window, and a stream longer than one \(context 16, window 4, 16 tokens\)/);
    expect(() => inverseArTrain(t.ckpt, any(null), t.student, STREAM, INVERSE_AR, files())).toThrow(/^inverseArTrain: base must be a Transformer, got null/);
    expect(() => inverseArTrain(t.ckpt, t.teacher, any({}), STREAM, INVERSE_AR, files())).toThrow(/^inverseArTrain: student must be a Student/);
  });

  it("API-TRAIN-STREAM-RUN: a valid pretrain call checks synchronously and still trains; a plain array of ids is taken as an Int32Array", async () => {
    const ckpt = randomCheckpoint(TINY, 1);
    const before = ckpt.weights.layers[0].wq.slice();
    const run = pretrain(ckpt, any(Array.from(STREAM)), STREAM, { ...PRETRAIN, threads: 1 }, files(), quiet);
    expect(run).toBeInstanceOf(Promise);
    expect((await run).steps).toBe(2);
    expect(ckpt.weights.layers[0].wq).not.toEqual(before);
  });

  it("API-TRAIN-PTP-OPTIONS: distill's and inverseArTrain's own options are checked at the call", async () => {
    const t = await trainers();
    expect(() => t.distill({ loss: "mse" })).toThrow(/^distill: loss must be "ce", "kl", "rkl", got "mse" \(string\)/);
    expect(() => distill(t.ckpt, t.teacher, { kind: "student", student: randomStudent(t.ckpt, "t", { variant: "O", rank: 2, window: 4, seed: 1 }) }, [], { ...DISTILL, loss: "kl" }, files())).toThrow(
      /^distill: loss "kl" matches the teacher's distribution, which only a C-PTP proposer predicts; this one is O-PTP \(use "ce"\)/,
    );
    for (const key of ["gamma", "betaB"]) expect(() => t.distill({ [key]: Number.NaN })).toThrow(new RegExp(`^distill: ${key} must be a finite number > 0, got NaN`));
    for (const key of ["windows", "sequences", "window"]) expect(() => t.distill({ [key]: 0 })).toThrow(new RegExp(`^distill: ${key} must be a positive integer, got 0`));
    expect(() => t.distill({ sampling: { temperature: 0 } })).toThrow(/^distill: sampling.temperature must be > 0/);
    expect(() => t.distill({ sampling: { temperature: -1 } })).toThrow(/^distill: sampling.temperature must be a finite number >= 0/);
    expect(() => t.distill({ sampling: undefined })).toThrow(/^distill: sampling must be an object \(\{ temperature, topK, topP \}\), got undefined/);
    const ckpt = randomCheckpoint(TINY, 1);
    const teacher = new Transformer(await backend("js"), ckpt);
    expect(() => distill(ckpt, teacher, any({ kind: "student" }), [], DISTILL, files())).toThrow(/^distill: proposer.student must be a Student/);
    expect(() => distill(ckpt, teacher, any({ kind: "student", student: randomStudent(ckpt, "t", { variant: "C", rank: 2, window: 4, seed: 1 }) }), any({}), DISTILL, files())).toThrow(/^distill: records must be an array of dataset records \(readDataset\), got an object/);
    expect(() => t.inverseArTrain({ context: 17 })).toThrow(/^inverseArTrain: context \(tokens per text window, at most the model's seqLen\) must be an integer in \[1, 16\], got 17/);
    expect(() => t.inverseArTrain({ context: 6 })).toThrow(/^inverseArTrain: needs text windows of at least twice the slot window/);
    expect(() => t.inverseArTrain({ betaB: 0 })).toThrow(/^inverseArTrain: betaB must be a finite number > 0, got 0/);
    expect(() => inverseArTrain(ckpt, teacher, randomStudent(ckpt, "t", { variant: "O", rank: 2, window: 4, seed: 1 }), STREAM, INVERSE_AR, files())).toThrow(/^inverseArTrain: student must be a C-PTP student \(inverse-AR training withholds its own u\), got variant "O"/);
  });

  it("API-TRAIN-RUNLOOP: runLoop and lrAt check what they are given too (runLoop rejects: it is asynchronous)", async () => {
    const spec = { ...LOOP, clip: Number.NaN, params: [], step: () => ({ loss: 0, units: 0 }), save() {}, checkpointPath: "/nonexistent/c", logPath: "/nonexistent/l", config: {}, resume: false, unit: "it", label: "t" };
    await expect(runLoop(spec)).rejects.toThrow(/^runLoop: clip must be a finite number >= 0/);
    expect(() => lrAt(1, any(null))).toThrow(/^lrAt: cfg must be a ScheduleConfig \{ lr, warmup, totalSteps, decay, minLr\? \}, got null/);
    expect(() => lrAt(1, any({ ...LOOP.schedule, lr: "1" }))).toThrow(/^schedule: lr must be a finite number >= 0, got "1" \(string\)/);
    expect(() => new Progress({ total: any("5"), stream: quiet })).toThrow(/^Progress: total must be a finite number >= 0, got "5" \(string\)/);
  });
});

describe("config keys and messages (API sweep, findings 6 and 8)", () => {
  it("API-TRAIN-CONFIG-KEYS: randomCheckpoint and initModel refuse a key no ModelConfig has, naming the field meant", () => {
    for (const [name, make] of [
      ["randomCheckpoint", randomCheckpoint],
      ["initModel", initModel],
    ] as const) {
      expect(() => make(any({ ...TINY, dimm: 16 }), 1), name).toThrow(new RegExp(`^${name}: unknown option "dimm" in config; did you mean dim\\?`));
      expect(() => make(any({ ...TINY, dimm: 16 }), 1), name).toThrow(RangeError);
      expect(() => make(any(null), 1), name).toThrow(TypeError);
      expect(() => make(any({ ...TINY, nHeads: 3 }), 1), name).toThrow(new RegExp(`^${name}: nHeads \\(3\\) must divide dim \\(16\\)`));
      expect(() => make({ ...TINY, vocabSize: 1 << 24, dim: 256, nHeads: 2 }, 1), name).toThrow(new RegExp(`^${name}: a tensor of this config would hold \\d+ values, more than the \\d+ one array can`));
      expect(() => make(TINY, any("1")), name).toThrow(new RegExp(`^${name}: seed must be an integer \\(reduced to 32 bits\\), got "1" \\(string\\)`));
    }
    expect(randomCheckpoint(TINY, 1).weights.tokenEmbedding).toEqual(randomCheckpoint({ ...TINY }, 1).weights.tokenEmbedding);
    expect(initModel(TINY, 2).config).toEqual(TINY);
  });

  it("API-TRAIN-MESSAGES: the sampling functions start with their name and show a rejected value's type", () => {
    const logits = new Float32Array([1, 2, 3]);
    const probs = new Float32Array([0.5, 0.5]);
    expect(() => pick(1.5, probs)).toThrow(/^pick: auxiliary variable u must be in \[0, 1\), got 1.5$/);
    expect(() => pick(any("0.5"), probs)).toThrow(/^pick: auxiliary variable u must be in \[0, 1\), got "0.5" \(string\)$/);
    expect(() => pick(any([]), probs)).toThrow(/got an array$/);
    expect(() => sampleToken(logits, { temperature: 1 }, 1)).toThrow(/^sampleToken: auxiliary variable u must be in \[0, 1\), got 1$/);
    expect(() => samplingDistribution(logits, { temperature: -1 })).toThrow(/^samplingDistribution: settings.temperature must be a finite number >= 0 .*got -1$/);
    expect(() => samplingDistribution(logits, { temperature: any("0.8") })).toThrow(/^samplingDistribution: settings.temperature must be .*got "0.8" \(string\)$/);
    expect(() => samplingDistribution(logits, { temperature: 1, topP: 2 })).toThrow(/^samplingDistribution: settings.topP must be a number in \[0, 1\] \(0 or 1 = off\), got 2$/);
    expect(() => samplingDistribution(logits, { temperature: 1, topK: 1.5 })).toThrow(/^samplingDistribution: settings.topK must be an integer/);
    expect(() => samplingDistribution(logits, any(null))).toThrow(/^samplingDistribution: settings must be an object \{ temperature, topK, topP \}, got null$/);
    expect(() => samplingDistribution(logits, any({ temp: 1 }))).toThrow(/^samplingDistribution: settings: unknown option "temp"; did you mean temperature\?/);
    // It said "softmaxF32: empty logits", a function the caller never called.
    expect(() => samplingDistribution(new Float32Array(0), { temperature: 1 })).toThrow(/^samplingDistribution: logits must hold one logit per token, got an empty Float32Array$/);
    // Without a caller's name, the bare rule (callers put a file's name before it).
    expect(() => validateSamplingSettings({ temperature: -1 })).toThrow(/^temperature must be a finite number >= 0/);
    expect(() => tokenProbability(logits, any("1"), 1)).toThrow(/^tokenProbability: token must be an integer in \[0, 3\) \(an index into logits\), got "1" \(string\)$/);
    expect(() => tokenProbability(logits, 1, any("1"))).toThrow(/^tokenProbability: temperature must be a finite number > 0, got "1" \(string\)$/);
    expect(() => drawU(0, 0.5, any("0.5"))).toThrow(/^drawU: z must be in \[0, 1\], got "0.5" \(string\)$/);
    // A symbol or a bigint edge or z: a TypeError naming drawU (Math.fround threw the engine's "Cannot convert a Symbol value to a number").
    for (const v of [Symbol("e"), 0n]) {
      expect(() => drawU(any(v), 0.5, 0.5)).toThrow(TypeError);
      expect(() => drawU(any(v), 0.5, 0.5)).toThrow(/^drawU: bin edges must be float32 values, got \[(symbol|0n \(bigint\)), 0\.5\)$/);
      expect(() => drawU(0, any(v), 0.5)).toThrow(/^drawU: bin edges must be float32 values, got \[0, (symbol|0n \(bigint\))\)$/);
      expect(() => drawU(0, 0.5, any(v))).toThrow(TypeError);
      expect(() => drawU(0, 0.5, any(v))).toThrow(/^drawU: z must be in \[0, 1\], got (symbol|0n \(bigint\))$/);
    }
    expect(() => drawU(0, 0.5, 1.5)).toThrow(RangeError);
    expect(() => betaSample(new Mulberry32(1), any("1"))).toThrow(/^betaSample: b must be a finite number > 0, got "1" \(string\)$/);
    expect(() => betaSample(any([]), 1)).toThrow(/^betaSample: rng must be a Mulberry32 \(an object with nextU32\(\)\), got an array$/);
  });

  it("API-TRAIN-SEED-MESSAGES: XorShiftAux and Mulberry32 show a seed's type (a string read as its digits)", () => {
    expect(() => new XorShiftAux(any("12"))).toThrow(/^XorShiftAux: seed must be an integer in \[1, 2\^64 - 1\], got "12" \(string\)$/);
    expect(() => new XorShiftAux(any({}))).toThrow(/got an object$/);
    expect(() => new XorShiftAux(any([]))).toThrow(/got an array$/);
    expect(() => new Mulberry32(any("3"))).toThrow(/^Mulberry32: seed must be an integer \(reduced to 32 bits\), got "3" \(string\)$/);
    expect(() => new Mulberry32(any({}))).toThrow(/got an object$/);
    expect(() => new Mulberry32(any(2n))).toThrow(/got 2n \(bigint\)$/);
  });

  it("API-TRAIN-WASM-THREADS: the wasm backend's threads and wasmBaseUrl messages show the value's type; threads null means the default", async () => {
    for (const [threads, shown] of [
      ["3", '"3" \\(string\\)'],
      [{}, "an object"],
      [[], "an array"],
      [0, "0"],
    ] as const) {
      await expect(createBackend("wasm", { threads: any(threads) }), shown).rejects.toThrow(new RegExp(`^wasm backend: threads must be an integer from 1 to 256, got ${shown}$`));
    }
    await expect(createBackend("wasm", { threads: 1, wasmBaseUrl: any({}) })).rejects.toThrow(/^wasm backend: wasmBaseUrl must be a string or URL, got an object$/);
    const b = await createBackend("wasm", { threads: any(null) });
    expect(b.name).toBe("wasm");
    b.dispose?.();
  });
});
