import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { applyTemperature, binOf, NonFiniteLogitsError, pick, sampleToken, samplingDistribution, softmaxF32, type SamplingSettings } from "../src/sampling/index.js";

const fr = Math.fround;

/** Token ids ordered by probability descending, ties by lower id. */
function byProbability(ids: number[], prob: ArrayLike<number>): number[] {
  return [...ids].sort((a, b) => (prob[a] === prob[b] ? a - b : prob[b] > prob[a] ? 1 : -1));
}

/**
 * Independent statement of the kept set: top-k on the softmax, then the
 * nucleus on the top-k distribution renormalised in float32.
 */
function expectedKept(softmax: Float32Array, topK: number | undefined, topP: number | undefined): Set<number> {
  const n = softmax.length;
  const all = Array.from({ length: n }, (_, i) => i);
  let kept = all;
  if (topK !== undefined && topK > 0 && topK < n) kept = byProbability(all, softmax).slice(0, topK);
  if (topP !== undefined && topP > 0 && topP < 1) {
    const inK = new Set(kept);
    const removedMass = all.some((i) => !inK.has(i) && softmax[i] !== 0);
    let q: ArrayLike<number> = softmax;
    if (removedMass) {
      let sum = 0;
      for (let i = 0; i < n; i++) if (inK.has(i)) sum = fr(sum + softmax[i]);
      q = all.map((i) => (inK.has(i) ? fr(softmax[i] / sum) : 0));
    }
    const ordered = byProbability(kept, q);
    let cum = 0;
    let count = ordered.length;
    for (let j = 0; j < ordered.length; j++) {
      cum = fr(cum + q[ordered[j]]);
      if (cum >= topP) {
        count = j + 1;
        break;
      }
    }
    kept = ordered.slice(0, count);
  }
  return new Set(kept);
}

const logitsArb = fc.oneof(
  // Coarse grid: many ties.
  fc.array(
    fc.integer({ min: -12, max: 12 }).map((i) => i / 4),
    { minLength: 1, maxLength: 30 },
  ),
  // Arbitrary float32 logits.
  fc.array(fc.float({ min: -30, max: 30, noNaN: true }), { minLength: 1, maxLength: 30 }),
);

const settingsArb: fc.Arbitrary<SamplingSettings> = fc.record({
  temperature: fc.oneof(fc.constantFrom(0.8, 1, 0.5, 1.7), fc.double({ min: 0.05, max: 4, noNaN: true })),
  topK: fc.option(fc.integer({ min: -2, max: 35 }), { nil: undefined }),
  topP: fc.option(fc.oneof(fc.double({ min: 0, max: 1, noNaN: true }), fc.constantFrom(0, 0.5, 0.9, 1, 0.9999999, 0.99999994)), {
    nil: undefined,
  }),
});

describe("sampling distribution: filters", () => {
  it("SAMP-FILTER: the kept set is exactly the top-k / nucleus set; filtered tokens have probability 0; kept ones are renormalised in id order", () => {
    fc.assert(
      fc.property(logitsArb, settingsArb, (xs, settings) => {
        const logits = Float32Array.from(xs);
        const p = samplingDistribution(logits, settings);
        const base = softmaxF32(Float32Array.from(xs, (x) => fr(fr(x) / fr(settings.temperature))));
        const kept = expectedKept(base, settings.topK, settings.topP);
        const removedMass = base.some((x, i) => !kept.has(i) && x !== 0);
        let sum = 0;
        for (let i = 0; i < base.length; i++) if (kept.has(i)) sum = fr(sum + base[i]);
        for (let i = 0; i < base.length; i++) {
          if (!kept.has(i)) expect(p[i]).toBe(0);
          else expect(p[i]).toBe(removedMass ? fr(base[i] / sum) : base[i]);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it("SAMP-FILTER: filtered tokens are never picked, for any u, including every bin edge", () => {
    fc.assert(
      fc.property(logitsArb, settingsArb, fc.array(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), { minLength: 1, maxLength: 20 }), (xs, settings, us) => {
        const p = samplingDistribution(Float32Array.from(xs), settings);
        const edges: number[] = [];
        for (let t = 0; t < p.length; t++) edges.push(...binOf(p, t));
        for (const u of [...us, ...edges.filter((e) => e < 1)]) {
          const t = pick(u, p);
          expect(p[t]).toBeGreaterThan(0);
        }
      }),
      { numRuns: 500 },
    );
  });

  it("SAMP-FILTER: kept tokens stay in token-id order (bins follow ids, not probabilities)", () => {
    const logits = new Float32Array([0, 3, 1, 2, -1]);
    const p = samplingDistribution(logits, { temperature: 1, topK: 3 });
    expect(Array.from(p, (x) => x > 0)).toEqual([false, true, true, true, false]);
    const [l1, r1] = binOf(p, 1);
    const [l2, r2] = binOf(p, 2);
    const [l3, r3] = binOf(p, 3);
    expect(l1).toBe(0);
    expect(r1).toBe(l2);
    expect(r2).toBe(l3);
    expect(r3).toBe(1);
    expect(pick(0, p)).toBe(1);
    expect(pick(0.99999, p)).toBe(3);
  });

  it("SAMP-FILTER: top-k keeps the k most probable, ties broken by lower id", () => {
    const kept = (logits: number[], topK: number) => Array.from(samplingDistribution(Float32Array.from(logits), { temperature: 1, topK }), (x, i) => (x > 0 ? i : -1)).filter((i) => i >= 0);
    expect(kept([1, 3, 3, 2, 0], 2)).toEqual([1, 2]);
    expect(kept([5, 4, 4, 4, 1], 2)).toEqual([0, 1]);
    expect(kept([5, 4, 4, 4, 1], 3)).toEqual([0, 1, 2]);
    expect(kept([2, 2, 2, 2], 1)).toEqual([0]);
    expect(kept([0, 1, 2, 3], 1)).toEqual([3]);
  });

  it("SAMP-FILTER: top-p keeps the smallest most-probable set reaching p (the crossing token is kept)", () => {
    // Probabilities 0.1, 0.6, 0.3 (logits = log p).
    const logits = Float32Array.from([0.1, 0.6, 0.3], Math.log);
    const kept = (topP: number) => Array.from(samplingDistribution(logits, { temperature: 1, topP }), (x, i) => (x > 0 ? i : -1)).filter((i) => i >= 0);
    expect(kept(0.05)).toEqual([1]);
    expect(kept(0.5)).toEqual([1]);
    expect(kept(0.7)).toEqual([1, 2]);
    expect(kept(0.85)).toEqual([1, 2]);
    expect(kept(0.95)).toEqual([0, 1, 2]);
    // Single kept token: all mass on it.
    expect(Array.from(samplingDistribution(logits, { temperature: 1, topP: 0.5 }))).toEqual([0, 1, 0]);
  });

  it("SAMP-FILTER: top-p is applied to the top-k distribution (renormalised)", () => {
    // Probabilities 0.4, 0.3, 0.2, 0.1. After top-k 2: 4/7, 3/7. With p = 0.55
    // the nucleus of the top-k distribution is {0} (4/7 > 0.55), while on the
    // unfiltered distribution it would be {0, 1}.
    const logits = Float32Array.from([0.4, 0.3, 0.2, 0.1], Math.log);
    const p = samplingDistribution(logits, { temperature: 1, topK: 2, topP: 0.55 });
    expect(Array.from(p)).toEqual([1, 0, 0, 0]);
    const q = samplingDistribution(logits, { temperature: 1, topP: 0.55 });
    expect(Array.from(q, (x) => x > 0)).toEqual([true, true, false, false]);
  });

  it("SAMP-FILTER: with no filter active the distribution is exactly softmaxF32 of the scaled logits", () => {
    fc.assert(
      fc.property(logitsArb, fc.double({ min: 0.05, max: 4, noNaN: true }), fc.constantFrom<Partial<SamplingSettings>>({}, { topK: 0 }, { topK: -3 }, { topK: 1000 }, { topP: 1 }, { topP: 0 }, { topK: 0, topP: 1 }, { topK: undefined, topP: undefined }), (xs, temperature, filters) => {
        const logits = Float32Array.from(xs);
        const p = samplingDistribution(logits, { temperature, ...filters });
        const expected = softmaxF32(applyTemperature(logits, temperature));
        expect(Array.from(p)).toEqual(Array.from(expected));
        // topK equal to the vocabulary size is also off.
        const q = samplingDistribution(logits, { temperature, topK: logits.length });
        expect(Array.from(q)).toEqual(Array.from(expected));
      }),
      { numRuns: 300 },
    );
  });

  it("SAMP-FILTER: a filter that removes no probability mass does not renormalise", () => {
    // Token 2 has probability exactly 0 after softmax (logit -Infinity);
    // top-k 2 removes only it.
    const logits = new Float32Array([0.3, 1.1, -Infinity]);
    const p = samplingDistribution(logits, { temperature: 1, topK: 2 });
    expect(Array.from(p)).toEqual(Array.from(softmaxF32(logits)));
  });

  it("SAMP-FILTER: large vocabulary, top-p with pruning agrees with the direct definition", () => {
    const n = 5000;
    let s = 12345;
    const logits = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      logits[i] = fr((s / 2 ** 32) * 20 - 10);
    }
    for (const settings of [
      { temperature: 0.8, topP: 0.9 },
      { temperature: 1, topP: 0.5 },
      { temperature: 1.3, topK: 40, topP: 0.95 },
      { temperature: 1, topK: 100 },
      { temperature: 2, topP: 0.999 },
    ]) {
      const p = samplingDistribution(logits, settings);
      const base = softmaxF32(applyTemperature(logits, settings.temperature));
      const kept = expectedKept(base, settings.topK, settings.topP);
      for (let i = 0; i < n; i++) expect(p[i] > 0).toBe(kept.has(i));
    }
  });
});

describe("sampling distribution: temperature and softmax", () => {
  it("SAMP-TEMP-F32: logits are divided by fround(T), not by the double T", () => {
    // Find float32 logits x with fround(x / 0.8) !== fround(x / fround(0.8)).
    const differing: number[] = [];
    for (let i = 1; differing.length < 5 && i < 10000; i++) {
      const x = fr(i * 0.0371);
      if (fr(x / 0.8) !== fr(x / fr(0.8))) differing.push(x);
    }
    expect(differing.length).toBe(5);
    const scaled = applyTemperature(Float32Array.from(differing), 0.8);
    for (let j = 0; j < differing.length; j++) {
      expect(scaled[j]).toBe(fr(differing[j] / fr(0.8)));
      expect(scaled[j]).not.toBe(fr(differing[j] / 0.8));
    }
    // And the sampling distribution is built on the fround(T) quotients.
    const logits = Float32Array.from([...differing, 0]);
    const p = samplingDistribution(logits, { temperature: 0.8 });
    const viaF32 = softmaxF32(Float32Array.from(logits, (x) => fr(x / fr(0.8))));
    const viaDouble = softmaxF32(Float32Array.from(logits, (x) => fr(x / 0.8)));
    expect(Array.from(p)).toEqual(Array.from(viaF32));
    expect(Array.from(p)).not.toEqual(Array.from(viaDouble));
  });

  it("SAMP-TEMP-F32: temperature 1 leaves logits unchanged; the input array is not modified", () => {
    const logits = new Float32Array([0.1, -2.5, 3.75]);
    const copy = Float32Array.from(logits);
    expect(Array.from(applyTemperature(logits, 1))).toEqual(Array.from(copy));
    samplingDistribution(logits, { temperature: 0.7, topK: 2, topP: 0.9 });
    expect(Array.from(logits)).toEqual(Array.from(copy));
  });

  it("SAMP-SOFTMAX-F32: softmaxF32 follows the float32 recipe (max, expf(x - max), ordered float32 sum, divide)", () => {
    const p = softmaxF32(new Float32Array([1, 2, 3]));
    // Hand computation with float32 rounding; exp of -2, -1, 0.
    const e = [fr(Math.exp(-2)), fr(Math.exp(-1)), 1];
    const sum = fr(fr(e[0] + e[1]) + e[2]);
    expect(Array.from(p)).toEqual(e.map((x) => fr(x / sum)));
    // -Infinity logits get probability 0.
    expect(Array.from(softmaxF32(new Float32Array([-Infinity, 0, -Infinity])))).toEqual([0, 1, 0]);
    // Equal logits: uniform.
    expect(Array.from(softmaxF32(new Float32Array([4, 4, 4, 4])))).toEqual([0.25, 0.25, 0.25, 0.25]);
  });

  it("SAMP-SOFTMAX-F32: invalid logits are rejected", () => {
    expect(() => softmaxF32(new Float32Array(0))).toThrow(/empty/);
    expect(() => softmaxF32(new Float32Array([0, NaN]))).toThrow(/logit 1 is NaN/);
    expect(() => softmaxF32(new Float32Array([Infinity, 0]))).toThrow(/\+Infinity/);
    expect(() => softmaxF32(new Float32Array([-Infinity, -Infinity]))).toThrow(/-Infinity/);
    expect(() => softmaxF32(new Float32Array([0, NaN]))).toThrow(NonFiniteLogitsError);
  });

  it("SAMP-NONFINITE: a row the sampler cannot pick from is a NonFiniteLogitsError at every temperature, never a token (the reference's argmax would give 0 for a NaN row)", () => {
    const rows = [Float32Array.of(Number.NaN, 1, 2), Float32Array.of(0, Number.POSITIVE_INFINITY, 1), Float32Array.of(1, Number.NaN, 2), Float32Array.of(-Infinity, -Infinity)];
    for (const row of rows) expect(() => sampleToken(row, { temperature: 1 }, 0.5)).toThrow(NonFiniteLogitsError);
    // Greedy: a largest logit that is not finite (a row starting with NaN, where the argmax gives 0; +Infinity; all -Infinity).
    for (const row of [rows[0], rows[1], rows[3]]) expect(() => sampleToken(row, { temperature: 0 }, undefined)).toThrow(/the model's logits are not finite \(logit \d is (NaN|\+Infinity|-Infinity)\)/);
    // A NaN that does not win the argmax passes over, as in the reference program.
    expect(sampleToken(rows[2], { temperature: 0 }, undefined)).toBe(2);
    expect(sampleToken(Float32Array.of(0, 3, -Infinity), { temperature: 0 }, undefined)).toBe(1);
  });
});

describe("sampling settings validation", () => {
  const logits = new Float32Array([0, 1]);
  it("rejects invalid temperature, topK and topP with clear messages", () => {
    for (const temperature of [-0.5, NaN, Infinity, -Infinity]) {
      expect(() => samplingDistribution(logits, { temperature })).toThrow(RangeError);
      expect(() => samplingDistribution(logits, { temperature })).toThrow(/temperature must be a finite number >= 0/);
    }
    expect(() => samplingDistribution(logits, { temperature: "1" as unknown as number })).toThrow(/temperature/);
    for (const topP of [-0.1, 1.5, NaN]) {
      expect(() => samplingDistribution(logits, { temperature: 1, topP })).toThrow(/topP must be a number in \[0, 1\]/);
    }
    expect(() => samplingDistribution(logits, { temperature: 1, topK: 1.5 })).toThrow(/topK must be an integer/);
    expect(() => samplingDistribution(logits, { temperature: 0 })).toThrow(/greedy/);
  });
});
