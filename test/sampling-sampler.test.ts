import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { argmax, needsU, pick, sampleToken, samplingDistribution, softmaxF32, XorShiftAux, type AuxSource, type SamplingSettings } from "../src/sampling/index.js";

const fr = Math.fround;

/** An AuxSource that counts how many u's were taken. */
function countingAux(): AuxSource & { taken: number } {
  const inner = new XorShiftAux(99n);
  return {
    taken: 0,
    next() {
      this.taken++;
      return inner.next();
    },
  };
}

/** The decoding loop's use of the sampler: take a u only when needed. */
function sampleWith(aux: AuxSource, logits: Float32Array, settings: SamplingSettings): number {
  return sampleToken(logits, settings, needsU(settings) ? aux.next() : undefined);
}

describe("sampler", () => {
  it("SAMP-GREEDY: temperature 0 picks the argmax (first among ties) and consumes no u", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: -4, max: 4 }), { minLength: 1, maxLength: 40 }), fc.option(fc.integer({ min: 1, max: 5 }), { nil: undefined }), fc.option(fc.double({ min: 0, max: 1, noNaN: true }), { nil: undefined }), (xs, topK, topP) => {
        const logits = Float32Array.from(xs);
        const settings = { temperature: 0, topK, topP };
        expect(needsU(settings)).toBe(false);
        const expected = xs.indexOf(Math.max(...xs));
        expect(sampleToken(logits, settings, undefined)).toBe(expected);
        // A u, if passed anyway, is ignored.
        expect(sampleToken(logits, settings, 0.999)).toBe(expected);
        const aux = countingAux();
        for (let i = 0; i < 5; i++) expect(sampleWith(aux, logits, settings)).toBe(expected);
        expect(aux.taken).toBe(0);
      }),
      { numRuns: 300 },
    );
    expect(sampleToken(new Float32Array([1, 5, 5, -2]), { temperature: 0 }, undefined)).toBe(1);
  });

  it("SAMP-GREEDY: temperature > 0 consumes exactly one u per token and needs it", () => {
    const settings = { temperature: 0.9 };
    expect(needsU(settings)).toBe(true);
    const aux = countingAux();
    const logits = new Float32Array([0.5, 0.2, 0.1]);
    for (let i = 0; i < 7; i++) sampleWith(aux, logits, settings);
    expect(aux.taken).toBe(7);
    expect(() => sampleToken(logits, settings, undefined)).toThrow(/needs an auxiliary variable u/);
    expect(() => sampleToken(logits, settings, 1)).toThrow(/auxiliary variable u must be in \[0, 1\)/);
    expect(() => needsU({ temperature: -1 })).toThrow(RangeError);
  });

  it("sampleToken at temperature > 0 is pick(u, samplingDistribution(logits, settings))", () => {
    fc.assert(
      fc.property(
        fc.array(fc.float({ min: -10, max: 10, noNaN: true }), { minLength: 1, maxLength: 20 }),
        fc.double({ min: 0.1, max: 3, noNaN: true }),
        fc.option(fc.integer({ min: 0, max: 20 }), { nil: undefined }),
        fc.option(fc.double({ min: 0, max: 1, noNaN: true }), { nil: undefined }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (xs, temperature, topK, topP, u) => {
          const logits = Float32Array.from(xs);
          const settings = { temperature, topK, topP };
          expect(sampleToken(logits, settings, u)).toBe(pick(u, samplingDistribution(logits, settings)));
        },
      ),
    );
  });
});

// ---------------------------------------------------------------------------
// Recorded output of the llama2.c sampling path, compiled with gcc -O3 on
// glibc 2.36 (x86-64): for each trial, N logits from a 32-bit LCG
// (lcg = lcg * 1664525 + 1013904223, x = (float)(lcg >> 8) / 16777216.0f *
// 16.0f - 8.0f), `x[i] /= temperature` (float), llama2.c's softmax (expf),
// coin = random_f32 (xorshift64*, the given seed), sample_mult.

interface Recorded {
  n: number;
  temperature: number;
  trials: number;
  seed: bigint;
  tokens: number[];
}

const RECORDED: Recorded[] = [
  {
    n: 64,
    temperature: 0.8,
    trials: 200,
    seed: 42n,
    tokens: (
      "19 60 20 48 48 60 14 32 38 36 25 17 42 12 10 43 13 14 63 19 22 49 26 23 11 12 56 53 56 51 10 26 24 " +
      "61 31 23 63 32 46 56 40 45 49 28 57 63 13 52 11 58 46 24 33 56 46 45 34 47 25 33 27 7 21 19 60 32 3 8 " +
      "35 10 29 42 32 14 29 52 59 23 29 4 0 12 19 26 19 30 43 60 17 16 8 57 55 37 12 29 47 43 38 57 51 56 18 " +
      "24 19 21 12 50 52 44 45 48 10 38 3 26 49 39 57 26 53 0 42 10 39 57 37 52 6 54 33 9 54 0 39 63 16 23 54 " +
      "61 28 1 18 21 43 44 5 1 53 34 46 4 23 32 37 33 40 21 46 11 35 57 20 0 9 16 24 39 39 16 6 59 32 39 11 " +
      "18 12 45 41 23 14 18 42 45 18 54 31 15 41 7 56 10 52 20 21 26 58 26 14 41"
    )
      .split(" ")
      .map(Number),
  },
];

function replay(rec: Recorded, softmax: (x: Float32Array) => Float32Array, divide: (x: number) => number) {
  let lcg = 12345;
  const aux = new XorShiftAux(rec.seed);
  const tokens: number[] = [];
  for (let t = 0; t < rec.trials; t++) {
    const x = new Float32Array(rec.n);
    for (let i = 0; i < rec.n; i++) {
      lcg = (Math.imul(lcg, 1664525) + 1013904223) >>> 0;
      x[i] = fr(fr(((lcg >>> 8) / 16777216) * 16) - 8);
    }
    const p = softmax(Float32Array.from(x, divide));
    tokens.push(pick(aux.next(), p));
  }
  return { tokens };
}

describe("agreement with the reference program", () => {
  // The tokens the llama2.c sampler (compiled here with gcc) picked for these
  // logits and u's. Our softmax uses the correctly rounded float32 exp where
  // the reference uses glibc's expf, which differs in the last bit for about
  // one argument in 500: probabilities may differ in the last bit, tokens do not.
  for (const rec of RECORDED) {
    it(`SAMP-REF-C: temperature ${rec.temperature}, ${rec.n} tokens, seed ${rec.seed}: the same tokens as llama2.c`, () => {
      const settings = { temperature: rec.temperature };
      const viaLib = replay(
        rec,
        (x) => samplingDistribution(x, settings),
        (x) => x,
      );
      const viaManual = replay(
        rec,
        (x) => softmaxF32(x),
        (x) => fr(x / fr(rec.temperature)),
      );
      expect(viaLib.tokens).toEqual(rec.tokens);
      expect(viaManual.tokens).toEqual(rec.tokens);
    });
  }
});

describe("argmax helper used by greedy decoding", () => {
  it("SAMP-GREEDY: argmax of a softmax equals argmax of the logits", () => {
    const logits = new Float32Array([0.2, 1.7, 1.7, -3]);
    expect(argmax(softmaxF32(logits))).toBe(argmax(logits));
  });
});
