import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { MAX_BUDGET, MAX_DRAFTS, MAX_WINDOW } from "../src/ptp/decode/defaults.js";
import { comparePtpAr, decode, decodeAR, evaluateStudent, KVCache, PtpModel, pretrain, randomCheckpoint, randomStudent, readCheckpoint, readStudent, runBackendConformance, runPtpExactness, Transformer, ArrayAux, XorShiftAux } from "../src/index.js";
import type { DecodeOptions, PretrainOptions } from "../src/index.js";
import { decodeBatches } from "../src/ptp/decode/compare.js";
import { draftSampling } from "../src/ptp/decode/decoder.js";
import { decodeCacheRows, decodeWith } from "../src/ptp/decode/run.js";
import { measureSpeedup } from "../src/ptp/speedup.js";
import { binOf, pick, samplingDistribution, tokenProbability } from "../src/sampling/index.js";
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
    // decodeAR reads no decoder option (an unknown key is now refused): its own options only.
    expect(() => decodeAR(teacher, [1], { steps: base.steps, sampling: base.sampling, aux: {} as XorShiftAux })).toThrow(/^decodeAR: aux must be a source of auxiliary variables/);
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

  it("API-FINITE-US: with exactly the u's AR draws (AR ending at the BOS it samples), verify, single-call, multi-draft, self and a draft head's verify decode AR's tokens: none picks past a BOS that ends its sequence", async () => {
    const { teacher, model } = await demo("wasm");
    const head = new PtpModel(teacher, readStudent(resolve(ROOT, "demo/stories260K-head.safetensors")));
    const query = new PtpModel(teacher, readStudent(resolve(ROOT, "demo/stories260K-query-student.safetensors")));
    const steps = 256,
      sampling = { temperature: 0.7 };
    let ended = 0;
    for (let seed = 1; seed <= 40 && ended < 4; seed++) {
      const source = new XorShiftAux(BigInt(seed));
      const us: number[] = [];
      const ar = decodeAR(teacher, [1], { steps, sampling, aux: { next: () => us[us.push(source.next()) - 1] } });
      if (ar.tokens.length >= steps + 1) continue; // ran to the step limit, not to a BOS
      ended++;
      // A draft head's verify, and self with the query student (its slot 0 is the teacher's own query, so its path is the teacher's).
      const runs = [...(["verify", "single-call", "multi-draft"] as const).map((decoder) => [decoder, model, decoder] as const), ["head verify", head, "verify"] as const, ["self", query, "self"] as const];
      for (const [name, m, decoder] of runs) {
        const r = decode(m, [[1]], { decoder, steps, sampling, aux: [new ArrayAux(us)] });
        expect(r.outputs[0], `${name}, seed ${seed}`).toEqual(ar.tokens);
        // Every step is counted, the one that sampled the BOS too (as AR counts its calls): the tokens accepted are the output's and that BOS.
        expect(
          r.stats.acceptedHistogram.reduce((sum, n, a) => sum + n * a, 0),
          `${name}, seed ${seed}: tokens over the steps`,
        ).toBe(r.stats.generatedTokens + 1);
      }
    }
    expect(ended).toBeGreaterThan(0);
  });

  it("API-DECODEWITH-KEPT: a custom decoder's accept must return strictly increasing base rows of its group; repeats, negatives, fractions, rows past the group or a non-array are a TypeError naming the decoder", async () => {
    const { model } = await tiny();
    for (const bad of [[0, 0], [-1], [0.5], [5], [1, 0], "0", undefined]) {
      const decoder = {
        name: "mine",
        plan: (seq: { pending: number[]; cached: number; next: number }) => ({ seq, base: seq.pending.map((token, i) => ({ token, position: seq.cached + i })), slots: [] }),
        accept: () => bad,
      } as unknown as Parameters<typeof decodeWith>[2];
      expect(() => decodeWith(model, [[1, 2]], decoder, { steps: 6, sampling: { temperature: 0 } }), JSON.stringify(bad)).toThrow(/^decodeWith: decoder "mine"'s accept must return the base rows to keep, strictly increasing integers in \[0, 2\), got /);
    }
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

describe("a decoder the student does not support", () => {
  it("API-SELF-VARIANT: decoder self with an O-PTP student is a RangeError naming the decoders it supports, as a draft-head student's mismatch is", async () => {
    const ckpt = randomCheckpoint(TINY, 3);
    const teacher = new Transformer(await backend("js"), ckpt);
    const model = new PtpModel(teacher, randomStudent(ckpt, "t", { variant: "O", rank: 2, window: 4, seed: 1 }));
    const base = { steps: 8, sampling: { temperature: 0.8 }, aux: [X()] };
    expect(() => decode(model, [[1]], { ...base, decoder: "self" })).toThrow(RangeError);
    expect(() => decode(model, [[1]], { ...base, decoder: "self" })).toThrow(/^decode: the self decoder needs a C-PTP student \(its own u withheld\); this one is O-PTP, decoded with "verify", "single-call" or "multi-draft" \(or "ar"\)$/);
    for (const decoder of ["verify", "single-call", "multi-draft", "ar"] as const) expect(decode(model, [[1]], { ...base, aux: [X()], decoder }).outputs[0].length, decoder).toBeGreaterThan(1);
    model.dispose();
  });
});

describe("a student without a distribution", () => {
  it("API-SELF-NONFINITE: the self decoder, which samples from the student itself, refuses a student whose rows are NaN, naming it; the teacher-verified decoders still equal AR", async () => {
    const { ckpt, teacher } = await tiny();
    const student = randomStudent(ckpt, "t", { variant: "C", rank: 2, window: 4, seed: 1 });
    student.weights.start?.fill(Number.NaN);
    const model = new PtpModel(teacher, student);
    const base = { steps: 8, sampling: { temperature: 0.8 } };
    expect(() => decode(model, [[1]], { ...base, aux: [X()], decoder: "self" })).toThrow(/^the student's logits are not finite \(NaN\/Inf\); the self decoder samples from the student itself, so it cannot decode with this student$/);
    const ar = decodeAR(teacher, [1], { ...base, aux: X() }).tokens;
    for (const decoder of ["verify", "single-call"] as const) expect(decode(model, [[1]], { ...base, aux: [X()], decoder }).outputs[0], decoder).toEqual(ar);
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

  it("API-PRETRAIN: pretrain's context must be in [1, seqLen], batch and threads positive integers", () => {
    const ckpt = randomCheckpoint(TINY, 1);
    const stream = Int32Array.from({ length: 200 }, (_, i) => i % 32);
    const files = { out: "/nonexistent/x.bin", checkpoint: "/nonexistent/x.ckpt", log: "/nonexistent/x.log", resume: false };
    const run = (o: Partial<PretrainOptions>) => () => pretrain(ckpt, stream, stream, { batch: 2, context: 8, evalEvery: 0, ...o } as PretrainOptions, files);
    expect(run({ context: 40 })).toThrow(/^pretrain: context .* must be an integer in \[1, 32\], got 40/);
    for (const context of [0, 1.5, "8"]) expect(run({ context: context as number })).toThrow(/^pretrain: context/);
    for (const batch of [0, 1.5, "2"]) expect(run({ batch: batch as number })).toThrow(/^pretrain: batch must be a positive integer/);
    for (const threads of [0, 1.5, "2"]) expect(run({ threads: threads as number })).toThrow(/^pretrain: threads must be a positive integer/);
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

describe("the second API sweep (twenty-second session)", () => {
  it("API-OPTION-COUNTS: budget and drafts are positive integers whichever decoder runs (each sizes the KV cache); a cache too large names the options and leaves the backend working", async () => {
    const { model } = await tiny();
    const base = { steps: 12, sampling: { temperature: 0.8 }, aux: [X()] };
    for (const decoder of ["ar", "verify", "single-call"] as const) {
      for (const bad of [Number.NaN, 1.5, -1, 0, "2"]) {
        expect(() => decode(model, [[1, 2]], { ...base, decoder, budget: bad as number }), `${decoder} budget ${String(bad)}`).toThrow(/^decode: budget must be a positive integer, got/);
        expect(() => decode(model, [[1, 2]], { ...base, decoder, drafts: bad as number }), `${decoder} drafts ${String(bad)}`).toThrow(/^decode: drafts must be a positive integer, got/);
      }
    }
    // A window or budget past the library's bounds is refused before anything is allocated (it used to allocate for seconds, then fail).
    for (const decoder of ["verify", "single-call"] as const) {
      expect(() => decode(model, [[1, 2]], { ...base, decoder, window: MAX_WINDOW + 1 })).toThrow(`decode: window must be at most ${MAX_WINDOW}, got ${MAX_WINDOW + 1}`);
      expect(() => decode(model, [[1, 2]], { ...base, decoder, budget: 1e9 })).toThrow(`decode: budget must be at most ${MAX_BUDGET}, got 1000000000`);
    }
    // drafts too (10,000 drafts ran for minutes without finishing a call; 1e9 failed only on allocating the cache).
    for (const decoder of ["ar", "verify", "single-call", "multi-draft"] as const) {
      expect(() => decode(model, [[1, 2]], { ...base, decoder, drafts: MAX_DRAFTS + 1 })).toThrow(`decode: drafts must be at most ${MAX_DRAFTS}, got ${MAX_DRAFTS + 1}`);
      expect(() => decode(model, [[1, 2]], { ...base, decoder, drafts: 1e9 })).toThrow(`decode: drafts must be at most ${MAX_DRAFTS}, got 1000000000`);
    }
    // A KV cache past the backend's limit names the options that sized it.
    expect(() =>
      decode(
        model,
        Array.from({ length: 4096 }, () => [1, 2]),
        { ...base, aux: Array.from({ length: 4096 }, () => X()), decoder: "multi-draft", window: MAX_WINDOW, drafts: MAX_DRAFTS, budget: MAX_BUDGET, steps: 12 },
      ),
    ).toThrow(/^decode: a KV cache of \d+ rows \(prompts x \(steps \+ 1 \+ the rows one call can add, from .*drafts 64.*\)\) does not fit: KVCache: /);
    const ar = decode(model, [[1, 2]], { ...base, aux: [X()], decoder: "ar" }).outputs;
    expect(decode(model, [[1, 2]], { ...base, aux: [X()], decoder: "verify" }).outputs).toEqual(ar);
    model.dispose();
  });

  it("API-KVCACHE-PARTIAL: a cache whose allocation fails part way frees the layers it had, and says what did not fit", async () => {
    const b = await backend("js");
    let allocs = 0;
    const freed: unknown[] = [];
    const failing = Object.create(b, {
      alloc: {
        value: (n: number) =>
          ++allocs === 5
            ? (() => {
                throw new RangeError("no room");
              })()
            : b.alloc(n),
      },
      free: { value: (buf: unknown) => (freed.push(buf), b.free(buf as never)) },
    });
    const ckpt = randomCheckpoint(TINY, 1);
    expect(() => new KVCache(failing, ckpt.config, 16, 3)).toThrow(/^KVCache: 16 rows x 3 layers x \d+ values \(keys and values\) do not fit: no room/);
    expect(freed.length).toBe(4);
  });

  it("API-BLOCK-SHAPE: forward's block must be an object with array positions (and tokens) and no other keys; else an error saying so", async () => {
    const { teacher } = await tiny();
    const cache = teacher.newCache(8);
    for (const block of [undefined, null, 3]) expect(() => teacher.forward(block as never, cache)).toThrow(/^forward: the block must be an object \{ positions/);
    expect(() => teacher.forward({ tokens: [1] } as never, cache)).toThrow(/^forward: block.positions must be an array of position ids/);
    expect(() => teacher.forward({ tokens: 5, positions: [0] } as never, cache)).toThrow(/^forward: block.tokens must be an array of token ids/);
    expect(() => teacher.forwardInto(new Float32Array(64), undefined as never, cache)).toThrow(/^forward: the block must be an object/);
    // A misspelt key ran the causal default in silence (a mask given as `masks` was never read).
    expect(() => teacher.forward({ tokens: [1, 2], positions: [0, 1], masks: Uint8Array.of(1, 0, 1, 1) } as never, cache)).toThrow('forward: unknown block key "masks"; did you mean mask? (a block has tokens, embeddings, positions, mask, visible)');
    expect(() => teacher.forward({ tokens: [1], positions: [0], visibility: {} } as never, cache)).toThrow(/^forward: unknown block key "visibility"/);
    expect(cache.length).toBe(0);
  });

  it("API-ROW-CHECKS: the sampling functions and the model's row methods say what a row must be; pickRow checks exclude on every backend", async () => {
    expect(() => pick(0.5, undefined as never)).toThrow(/^pick: probs must be a Float32Array, got undefined/);
    expect(() => binOf([0.5, 0.5] as never, 1)).toThrow(/^binOf: probs must be a Float32Array, got an array/);
    expect(() => samplingDistribution(undefined as never, { temperature: 1 })).toThrow(/^samplingDistribution: logits must be a Float32Array/);
    expect(() => tokenProbability(undefined as never, 1, 1)).toThrow(/^tokenProbability: logits must be a Float32Array/);
    for (const name of ["js", "wasm"] as const) {
      const { teacher } = await demo(name);
      const logits = teacher.forward({ tokens: [1, 403], positions: [0, 1] }, teacher.newCache(4));
      const row = logits.subarray(512);
      expect(() => teacher.tokenProbability(undefined as never, 1, 1)).toThrow(/^tokenProbability: row must be a Float32Array/);
      expect(() => teacher.pickRow(undefined as never, { temperature: 1 }, 0.5)).toThrow(/^pickRow: row must be a Float32Array/);
      for (const exclude of [[512], [-1], [1.5], ["3"], "abc"]) expect(() => teacher.pickRow(row, { temperature: 1 }, 0.5, exclude as never), `${name} ${JSON.stringify(exclude)}`).toThrow(/^pickRow: exclude must be an array of token ids in \[0, 512\)/);
      expect(teacher.pickRow(row, { temperature: 1 }, 0.5, [3])).not.toBe(3);
      // An infinite temperature is refused on both backends (the host path once gave 1 / V).
      expect(() => teacher.tokenProbability(row, 1, Number.POSITIVE_INFINITY), name).toThrow(/temperature/);
    }
  });

  it("API-MODEL-ARGS: PtpModel, decode and decodeWith say what they were given instead of failing inside", async () => {
    const { teacher, student, model } = await tiny();
    expect(() => new PtpModel(undefined as never, student)).toThrow(/^PtpModel: teacher must be a Transformer, got undefined/);
    expect(() => new PtpModel(teacher, {} as never)).toThrow(/^PtpModel: student must be a Student \{ config, weights \}/);
    for (const options of [null, "int8"]) expect(() => new PtpModel(teacher, student, undefined, options as never)).toThrow(/^PtpModel: the head's options must be an object/);
    const o = { steps: 8, sampling: { temperature: 0.8 }, aux: [X()] };
    expect(() => decode(undefined as never, [[1]], { ...o, decoder: "ar" })).toThrow(/^decode: model must be a PtpModel/);
    for (const d of [undefined, {}, { plan: 1, accept: 2 }]) expect(() => decodeWith(model, [[1]], d as never, o)).toThrow(/^decodeWith: decoder must be a Decoder \{ name, plan\(seq\), accept\(seq, group, out\) \}/);
    model.dispose();
  });

  it("API-SPEEDUP-ARGS: measureSpeedup checks its backend, proposer, prompts, steps, reps and seed by name", async () => {
    const { ckpt, student } = await tiny();
    const b = await backend("js");
    const base = { backend: b, teacher: ckpt, proposer: { kind: "student" as const, student }, prompts: [[1, 2]], shapes: ["own"], decoders: ["verify" as const], steps: 8, temperature: 0.8, reps: 1 };
    const fails = (o: object, message: RegExp) => expect(() => measureSpeedup({ ...base, ...o } as never), Object.keys(o).join()).toThrow(message);
    fails({ backend: undefined }, /^measureSpeedup: backend must be a Backend/);
    fails({ proposer: undefined }, /^measureSpeedup: proposer must be \{ kind: "student", student \} or \{ kind: "draft", draft \}/);
    fails({ prompts: undefined }, /^measureSpeedup: prompts must be an array/);
    for (const steps of [0, -1, Number.NaN, 2.5]) fails({ steps }, /^measureSpeedup: steps \(positions per prompt, prompt included\) must be a positive integer/);
    for (const reps of [0, -1, Number.NaN, 1.5]) fails({ reps }, /^measureSpeedup: reps must be a positive integer/);
    for (const seed of [Number.NaN, 1.5, -1, 0n]) fails({ seed }, /^measureSpeedup: seed must be an integer >= 1/);
    expect(measureSpeedup({ ...base, seed: 2n ** 60n }).every((row) => row.equalsAR)).toBe(true);
  });
});
