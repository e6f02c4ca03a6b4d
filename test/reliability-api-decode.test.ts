import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { comparePtpAr, decode, decodeAR, evaluateStudent, PtpModel, pretrain, randomCheckpoint, randomStudent, readCheckpoint, readStudent, runBackendConformance, runPtpExactness, Transformer, ArrayAux, XorShiftAux } from "../src/index.js";
import type { DecodeOptions, PretrainOptions } from "../src/index.js";
import { decodeBatches } from "../src/ptp/decode/compare.js";
import { draftSampling } from "../src/ptp/decode/decoder.js";
import { decodeCacheRows } from "../src/ptp/decode/run.js";
import { MIN_TEMPERATURE } from "../src/sampling/processors.js";
import { UStream } from "../src/sampling/ustream.js";
import { backend, ROOT, STORIES_260K } from "./helpers.js";

/**
 * The public decoding API's argument checks and the calls the audit found
 * failing where AR works (drafts below the least temperature, verify's
 * runner-up rows outgrowing the KV cache): each invalid argument is a
 * RangeError / TypeError naming the option, each valid call still equals AR.
 */

const PROMPT = [1, 403, 407, 261, 378];
const X = () => new XorShiftAux(1n);
const TINY = { dim: 16, hiddenDim: 24, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 32, seqLen: 32, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };

/** The stories260K teacher with the demo's C-PTP student, on a backend. */
async function demo(name: "js" | "wasm") {
  const teacher = new Transformer(await backend(name), readCheckpoint(STORIES_260K));
  const student = readStudent(resolve(ROOT, "demo/stories260K-student.safetensors"));
  return { teacher, student, model: new PtpModel(teacher, student) };
}

/** A tiny random teacher with a C-PTP student. */
async function tiny() {
  const ckpt = randomCheckpoint(TINY, 3);
  const teacher = new Transformer(await backend("js"), ckpt);
  const student = randomStudent(ckpt, "t", { variant: "C", rank: 2, window: 4, seed: 1 });
  return { ckpt, teacher, student, model: new PtpModel(teacher, student) };
}

describe("decoders at any valid setting equal AR", () => {
  it("API-DRAFT-TEMPERATURE: C-PTP drafts at T x draftTemperatureScale below the least temperature are clamped to it, and the output is AR's", async () => {
    expect(draftSampling({ temperature: 1e-6 }, 1, 0.4).temperature).toBe(MIN_TEMPERATURE);
    expect(draftSampling({ temperature: 0.8, topK: 5 }, 2, 1e-7)).toEqual({ temperature: MIN_TEMPERATURE, topK: 5 });
    expect(draftSampling({ temperature: 1 }, 1, 0.5).temperature).toBe(0.5);
    for (const name of ["js", "wasm"] as const) {
      const { teacher, model, student } = await demo(name);
      expect(student.config.variant).toBe("C");
      const cases: [Partial<DecodeOptions>, DecodeOptions["sampling"]][] = [
        [{ decoder: "single-call" }, { temperature: 1e-6 }],
        [{ decoder: "verify" }, { temperature: 1e-6, topK: 5 }],
        [{ decoder: "self" }, { temperature: 1e-6 }],
        [{ decoder: "single-call", draftTemperatureScale: 1e-7 }, { temperature: 0.8 }],
      ];
      for (const [o, sampling] of cases) {
        const ar = decodeAR(teacher, PROMPT, { steps: 20, sampling, aux: X() }).tokens;
        const out = decode(model, [PROMPT], { decoder: "single-call", ...o, steps: 20, sampling, aux: [X()] }).outputs[0];
        expect(out, `${name} ${JSON.stringify(o)} ${JSON.stringify(sampling)}`).toEqual(ar);
      }
      expect(evaluateStudent(teacher, { kind: "student", student }, { prompts: [PROMPT], steps: 20, sampling: { temperature: 1e-6 }, decoder: "single-call", seed: 1 }).generatedTokens).toBeGreaterThan(0);
      model.dispose();
      teacher.dispose();
    }
  });

  it("API-RUNNER-UP-ROWS: verify's runner-up rows fit the decode's KV cache (any count), and the output is AR's", async () => {
    // verify reads R runner-ups of each of its window - 1 drafts: R (window - 1) rows more per call.
    expect(decodeCacheRows(1, 20, 8, { runnerUps: 10 }) - decodeCacheRows(1, 20, 8, {})).toBeGreaterThanOrEqual(10 * 7);
    expect(decodeCacheRows(1, 20, 8, { runnerUps: 10_000 }, 512)).toBe(decodeCacheRows(1, 20, 8, { runnerUps: 511 }));
    const { teacher, model } = await demo("wasm");
    for (const runnerUps of [10, 1000]) {
      const sampling = { temperature: 0.8 };
      const ar = decodeAR(teacher, PROMPT, { steps: 20, sampling, aux: X() }).tokens;
      const out = decode(model, [PROMPT, PROMPT], { decoder: "verify", steps: 20, sampling, aux: [X(), X()], runnerUps });
      expect(out.outputs, `runnerUps ${runnerUps}`).toEqual([ar, ar]);
    }
    model.dispose();
    teacher.dispose();
  });
});

describe("decode and decodeAR check their arguments, naming them", () => {
  it("API-PROMPT-TOKENS: every prompt token must be an integer id in [0, vocabSize); errors name the prompt and the position", async () => {
    const { teacher, model } = await tiny();
    const base = { decoder: "verify" as const, steps: 8, sampling: { temperature: 0.8 } };
    for (const bad of [-1, 1.5, "5", Number.NaN, 32, null]) {
      const prompt = [1, 3, bad] as number[];
      expect(() => decode(model, [[1, 2], prompt], { ...base, aux: [X(), X()] })).toThrow(RangeError);
      expect(() => decode(model, [[1, 2], prompt], { ...base, aux: [X(), X()] })).toThrow(/^decode: prompt 1, position 2: token ids must be integers in \[0, 32\)/);
      expect(() => decodeAR(teacher, prompt, { steps: 8, sampling: { temperature: 0.8 }, aux: X() })).toThrow(/^decodeAR: prompt, position 2: token ids must be integers in \[0, 32\)/);
    }
    expect(() => decode(model, "abc" as unknown as number[][], { ...base, aux: [X()] })).toThrow(TypeError);
    expect(() => decode(model, [5 as unknown as number[]], { ...base, aux: [X()] })).toThrow(/^decode: prompt 0 must be an array of token ids/);
    // Any array-like of ids is a prompt (an Int32Array too), with the same output.
    const ar = decodeAR(teacher, [1, 3, 5], { steps: 8, sampling: { temperature: 0.8 }, aux: X() }).tokens;
    expect(decodeAR(teacher, Int32Array.of(1, 3, 5), { steps: 8, sampling: { temperature: 0.8 }, aux: X() }).tokens).toEqual(ar);
    expect(decode(model, [Int32Array.of(1, 3, 5)], { ...base, aux: [X()] }).outputs[0]).toEqual(ar);
    model.dispose();
  });

  it("API-STEPS: decode takes decodeAR's steps rule (an integer); a string, fraction or missing steps is a RangeError", async () => {
    const { model, teacher, student } = await tiny();
    for (const steps of ["10", 1.5, undefined, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => decode(model, [[1]], { decoder: "ar", steps: steps as number, sampling: { temperature: 0 }, aux: [X()], stopAtBos: false })).toThrow(/^decode: steps must be an integer/);
      expect(() => decodeAR(teacher, [1], { steps: steps as number, sampling: { temperature: 0 } })).toThrow(/^decodeAR: steps must be an integer/);
      expect(() => evaluateStudent(teacher, { kind: "student", student }, { prompts: [[1]], steps: steps as number, sampling: { temperature: 0 }, decoder: "single-call", seed: 1 })).toThrow(/^evaluateStudent: steps must be an integer/);
    }
    expect(decode(model, [[1]], { decoder: "ar", steps: 10, sampling: { temperature: 0 }, aux: [X()], stopAtBos: false }).outputs[0]).toHaveLength(11);
    model.dispose();
  });

  it("API-AUX: u sources must be AuxSources giving numbers in [0, 1), checked before any device path (js and wasm alike)", async () => {
    for (const name of ["js", "wasm"] as const) {
      const teacher = new Transformer(await backend(name), randomCheckpoint(TINY, 3));
      const model = new PtpModel(teacher, randomStudent(randomCheckpoint(TINY, 3), "t", { variant: "C", rank: 2, window: 4, seed: 1 }));
      const stringU = { next: () => "0.5" as unknown as number };
      expect(() => decodeAR(teacher, [1, 3], { steps: 8, sampling: { temperature: 0.8 }, aux: stringU })).toThrow(/^decodeAR: aux, u for position 2: auxiliary variable u must be in \[0, 1\), got "0.5" \(string\)/);
      for (const decoder of ["ar", "verify", "single-call", "self"] as const) {
        expect(() => decode(model, [[1, 3]], { decoder, steps: 8, sampling: { temperature: 0.8 }, aux: [stringU] }), `${name} ${decoder}`).toThrow(/^decode: aux\[0\], u for position \d+: auxiliary variable u must be in \[0, 1\)/);
      }
      model.dispose();
    }
    const { model, teacher } = await tiny();
    const base = { decoder: "ar" as const, steps: 8, sampling: { temperature: 0.8 } };
    expect(() => decode(model, [[1]], { ...base, aux: [{} as XorShiftAux] })).toThrow(TypeError);
    expect(() => decode(model, [[1]], { ...base, aux: [{} as XorShiftAux] })).toThrow(/^decode: aux\[0\] must be a source of auxiliary variables/);
    expect(() => decode(model, [[1]], { ...base } as DecodeOptions)).toThrow(/^decode: aux must be an array with one source of u's per prompt/);
    expect(() => decode(model, [[1]], { ...base, aux: X() as unknown as XorShiftAux[] })).toThrow(TypeError);
    expect(() => decodeAR(teacher, [1], { ...base, aux: {} as XorShiftAux })).toThrow(/^decodeAR: aux must be a source of auxiliary variables/);
    model.dispose();
  });

  it("API-USTREAM: a u outside [0, 1) breaks the stream for good (a student's look-ahead cannot skip it)", () => {
    const values = [0.5, Number.NaN, 0.25];
    let i = 0;
    const s = new UStream({ next: () => values[i++] }, 3, "src");
    expect(s.at(3)).toBe(0.5);
    expect(() => s.forStudent(4)).toThrow(/^src, u for position 4: auxiliary variable u must be in \[0, 1\), got NaN/);
    expect(() => s.at(4)).toThrow(/position 4/);
    expect(() => s.at(5)).toThrow(/position 4/);
    // A source that ran out still gives a student 0.5 (only a guess).
    const short = new UStream(new ArrayAux([0.1]), 1);
    expect(short.forStudent(2)).toBe(0.5);
  });

  it("API-ARRAYAUX: ArrayAux takes an array-like of u's; anything else is a TypeError saying so", () => {
    expect(() => new ArrayAux({ length: -1 })).toThrow(TypeError);
    expect(() => new ArrayAux({ length: -1 })).toThrow(/ArrayAux takes an array of u's/);
    expect(() => new ArrayAux(5 as unknown as number[])).toThrow(/ArrayAux takes an array of u's .*got 5/);
    expect(() => new ArrayAux("0.5" as unknown as number[])).toThrow(TypeError);
    expect(new ArrayAux(Float32Array.of(0.5, 0.25)).length).toBe(2);
  });

  it("API-DRAFT-OPTION: decode's draft must be a DraftModel, its options an object, draftTemperatureScale a number", async () => {
    const { model } = await tiny();
    const base = { steps: 8, sampling: { temperature: 0.8 }, aux: [X()] };
    expect(() => decode(model, [[1]], { ...base, decoder: "verify", draft: {} as DecodeOptions["draft"] })).toThrow(TypeError);
    expect(() => decode(model, [[1]], { ...base, decoder: "verify", draft: {} as DecodeOptions["draft"] })).toThrow(/^decode: draft must be a DraftModel/);
    expect(() => decode(model, [[1]], { ...base, decoder: "single-call", draftTemperatureScale: "0.5" as unknown as number })).toThrow(/draftTemperatureScale/);
    expect(() => decode(model, [[1]], undefined as unknown as DecodeOptions)).toThrow(/^decode: options must be an object/);
    model.dispose();
  });

  it("API-BUDGET-MODE: an unknown budgetMode is a RangeError naming the allowed ones (not a silent adaptive run)", async () => {
    const { model } = await tiny();
    const base = { steps: 8, sampling: { temperature: 0.8 }, decoder: "single-call" as const };
    expect(() => decode(model, [[1]], { ...base, aux: [X()], budgetMode: "Fixed" as "fixed" })).toThrow(/^decode: budgetMode must be one of "adaptive", "fixed", got "Fixed"/);
    for (const budgetMode of ["fixed", "adaptive", undefined] as const) expect(decode(model, [[1]], { ...base, aux: [X()], budgetMode }).outputs[0].length).toBeGreaterThan(1);
    model.dispose();
  });
});

describe("the evaluation, the harness, the trainer and the self-checks check their counts", () => {
  it("API-EVAL-BATCH-SEED: evaluateStudent's batch and seed, comparePtpAr's and decodeBatches' batch must be positive integers", async () => {
    const { teacher, student, model } = await tiny();
    const settings = {
      prompts: [
        [1, 3],
        [1, 4],
        [1, 5],
      ],
      steps: 8,
      sampling: { temperature: 0.8 },
      decoder: "single-call" as const,
      seed: 1,
    };
    const proposer = { kind: "student" as const, student };
    for (const batch of ["1", 0, 1.5, -1]) expect(() => evaluateStudent(teacher, proposer, { ...settings, batch: batch as number }), String(batch)).toThrow(/^evaluateStudent: batch must be a positive integer/);
    for (const seed of [1.5, 0, "1", Number.NaN]) expect(() => evaluateStudent(teacher, proposer, { ...settings, seed: seed as number }), String(seed)).toThrow(/^evaluateStudent: seed must be a positive integer/);
    expect(evaluateStudent(teacher, proposer, { ...settings, batch: 1 }).generatedTokens).toBe(evaluateStudent(teacher, proposer, settings).generatedTokens);
    const o = { decode: { decoder: "verify" as const, steps: 8, sampling: { temperature: 0.8 } }, aux: () => X() };
    for (const batch of [0, 1.5, "1"]) {
      expect(() => comparePtpAr(model, settings.prompts, { ...o, batch: batch as number })).toThrow(/^comparePtpAr: batch must be a positive integer/);
      expect(() => decodeBatches(model, settings.prompts, { ...o, batch: batch as number })).toThrow(/^decodeBatches: batch must be a positive integer/);
    }
    expect(comparePtpAr(model, settings.prompts, { ...o, batch: 2 }).equalsAR).toBe(true);
    model.dispose();
  });

  it("API-PRETRAIN: pretrain's context must be in [1, seqLen] and batch a positive integer", () => {
    const ckpt = randomCheckpoint(TINY, 1);
    const stream = Int32Array.from({ length: 200 }, (_, i) => i % 32);
    const files = { out: "/nonexistent/x.bin", checkpoint: "/nonexistent/x.ckpt", log: "/nonexistent/x.log", resume: false };
    const run = (o: Partial<PretrainOptions>) => () => pretrain(ckpt, stream, stream, { batch: 2, context: 8, evalEvery: 0, ...o } as PretrainOptions, files);
    expect(run({ context: 40 })).toThrow(/^pretrain: context .* must be an integer in \[1, 32\], got 40/);
    for (const context of [0, 1.5, "8"]) expect(run({ context: context as number })).toThrow(/^pretrain: context/);
    for (const batch of [0, 1.5, "2"]) expect(run({ batch: batch as number })).toThrow(/^pretrain: batch must be a positive integer/);
  });

  it("API-SELF-CHECK-RUNS: runPtpExactness' and runBackendConformance's runs must be positive integers (no report passing with 0 cases)", async () => {
    for (const runs of [Number.NaN, 0, -1, 1.5, "2"]) {
      await expect(runPtpExactness("js", { runs: runs as number })).rejects.toThrow(/^runPtpExactness: runs must be a positive integer/);
      await expect(runBackendConformance("js", { runs: runs as number })).rejects.toThrow(/^runBackendConformance: runs must be a positive integer/);
    }
    await expect(runBackendConformance("js", { seed: "1" as unknown as number })).rejects.toThrow(/^runBackendConformance: seed must be an integer/);
    await expect(runPtpExactness("js", { seed: 0.5 })).rejects.toThrow(/^runPtpExactness: seed must be an integer/);
  });
});
