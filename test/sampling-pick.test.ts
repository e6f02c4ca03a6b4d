import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { argmax, binOf, pick, samplingDistribution, softmaxF32 } from "../src/sampling/index.js";

const fr = Math.fround;

// ---------------------------------------------------------------------------
// Helpers (test-local).

/** Largest double strictly below x (x finite). */
function nextDown64(x: number): number {
  if (x === 0) return -Number.MIN_VALUE;
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  view.setBigUint64(0, x > 0 ? bits - 1n : bits + 1n);
  return view.getFloat64(0);
}

/** Largest float32 strictly below x (x a finite float32). */
function nextDownF32(x: number): number {
  if (x === 0) return -(2 ** -149);
  const view = new DataView(new ArrayBuffer(4));
  view.setFloat32(0, x);
  const bits = view.getUint32(0);
  view.setUint32(0, x > 0 ? bits - 1 : bits + 1);
  return view.getFloat32(0);
}

/** A distribution: nonnegative weights (some zero), normalised in float32. */
const distribution = fc
  .array(fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 1000 }), fc.double({ min: 1e-7, max: 1, noNaN: true })), { minLength: 1, maxLength: 40 })
  .filter((ws) => ws.some((w) => fr(w) > 0))
  .map((ws) => {
    let total = 0;
    for (const w of ws) total = fr(total + fr(w));
    return Float32Array.from(ws, (w) => fr(fr(w) / total));
  });

/** u anywhere in [0, 1) as a double, or on the float32 grid of the reference. */
const anyU = fc.oneof(
  fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
  fc.integer({ min: 0, max: 2 ** 24 - 1 }).map((i) => i / 2 ** 24),
);

/** The token order of non-empty bins, by id. */
function nonEmptyTokens(p: Float32Array): number[] {
  const out: number[] = [];
  for (let t = 0; t < p.length; t++) {
    const [l, r] = binOf(p, t);
    if (l < r) out.push(t);
  }
  return out;
}

// ---------------------------------------------------------------------------

describe("pick and binOf", () => {
  it("SAMP-PICK-BIN: pick(u) is the token whose [left, right) bin holds u", () => {
    fc.assert(
      fc.property(distribution, anyU, (p, u) => {
        const t = pick(u, p);
        const [left, right] = binOf(p, t);
        expect(left <= u && u < right).toBe(true);
        expect(p[t]).toBeGreaterThan(0);
        // No other token's bin holds u.
        for (let s = 0; s < p.length; s++) {
          if (s === t) continue;
          const [l, r] = binOf(p, s);
          expect(l <= u && u < r).toBe(false);
        }
      }),
      { numRuns: 500 },
    );
  });

  it("SAMP-PICK-BIN: the non-empty bins tile [0, 1) in token-id order", () => {
    fc.assert(
      fc.property(distribution, (p) => {
        const tokens = nonEmptyTokens(p);
        expect(tokens.length).toBeGreaterThan(0);
        let edge = 0;
        for (const t of tokens) {
          const [l, r] = binOf(p, t);
          expect(l).toBe(edge);
          expect(r).toBeGreaterThan(l);
          edge = r;
        }
        expect(edge).toBe(1);
        // Tokens with probability 0 have empty bins.
        for (let t = 0; t < p.length; t++) {
          if (p[t] === 0) {
            const [l, r] = binOf(p, t);
            expect(l).toBe(r);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it("SAMP-PICK-BIN: agrees with a direct statement of min{ j : F_j > u }", () => {
    fc.assert(
      fc.property(distribution, anyU, (p, u) => {
        // F_j as float32 running sums, computed with a Float32Array.
        const F = new Float32Array(p.length);
        p.reduce((acc, x, j) => ((F[j] = acc + x), F[j]), 0);
        let expected = F.findIndex((f) => f > u);
        if (expected < 0) {
          // float32 total below 1 and u above it: the last nonzero token.
          for (let j = p.length - 1; j >= 0; j--) {
            if (p[j] > 0) {
              expected = j;
              break;
            }
          }
        }
        expect(pick(u, p)).toBe(expected);
      }),
      { numRuns: 500 },
    );
  });

  it("SAMP-PICK-EDGE: u exactly on a bin's left edge picks that token; just below picks the previous one", () => {
    fc.assert(
      fc.property(distribution, (p) => {
        const tokens = nonEmptyTokens(p);
        for (let k = 0; k < tokens.length; k++) {
          const t = tokens[k];
          const [left, right] = binOf(p, t);
          expect(pick(left, p)).toBe(t);
          // Largest double and largest float32 below the left edge.
          if (left > 0) {
            const prev = tokens[k - 1];
            expect(pick(nextDown64(left), p)).toBe(prev);
            expect(pick(nextDownF32(left), p)).toBe(prev);
          }
          // Just below the right edge is still t.
          expect(pick(nextDown64(right), p)).toBe(t);
          expect(pick(nextDownF32(right), p)).toBe(t);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("SAMP-PICK-EDGE: worked example with a zero-probability token", () => {
    const p = new Float32Array([0.25, 0, 0.5, 0.25]);
    expect(binOf(p, 0)).toEqual([0, 0.25]);
    expect(binOf(p, 1)).toEqual([0.25, 0.25]);
    expect(binOf(p, 2)).toEqual([0.25, 0.75]);
    expect(binOf(p, 3)).toEqual([0.75, 1]);
    expect(pick(0, p)).toBe(0);
    expect(pick(nextDown64(0.25), p)).toBe(0);
    expect(pick(0.25, p)).toBe(2);
    expect(pick(nextDown64(0.75), p)).toBe(2);
    expect(pick(0.75, p)).toBe(3);
    expect(pick(nextDown64(1), p)).toBe(3);
  });

  it("SAMP-PICK-EDGE: when the float32 total is below 1, the last NONZERO token takes [total, 1)", () => {
    // 0.5 + 0.25 + fround(0.2499999) < 1 in float32; trailing filtered tokens.
    const p = new Float32Array([0.5, 0.25, fr(0.2499999), 0, 0]);
    let total = 0;
    for (const x of p) total = fr(total + x);
    expect(total).toBeLessThan(1);
    expect(pick(total, p)).toBe(2); // the reference would return n - 1 = 4
    expect(pick(nextDown64(1), p)).toBe(2);
    expect(binOf(p, 2)).toEqual([0.75, 1]);
    expect(binOf(p, 4)).toEqual([total, total]);
  });

  it("SAMP-PICK-EDGE: an all-zero distribution is rejected", () => {
    expect(() => pick(0.5, new Float32Array(3))).toThrow(/no token with nonzero probability/);
    expect(() => binOf(new Float32Array(3), 3)).toThrow(RangeError);
  });
});

// ---------------------------------------------------------------------------

/** Deterministic uniform doubles in [0, 1) (a 32-bit mixing generator). */
function uniformStream(seed: number): () => number {
  let state = seed | 0;
  return () => {
    state = (state + 0x9e3779b9) | 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    z ^= z >>> 16;
    return (z >>> 0) / 2 ** 32;
  };
}

/** Chi-square upper critical values at significance 0.001, by degrees of freedom. */
const CHI2_CRIT_0_001: Record<number, number> = {
  2: 13.816,
  3: 16.266,
  4: 18.467,
  9: 27.877,
};

describe("pick frequencies", () => {
  const draws = 20000;
  const cases: Array<[string, Float32Array]> = [
    ["four tokens", new Float32Array([0.1, 0.2, 0.3, 0.4])],
    ["zeros in between", new Float32Array([0.5, 0, 0.25, 0, 0.25])],
    ["softmax of 10 logits", softmaxF32(Float32Array.from({ length: 10 }, (_, i) => 0.35 * i))],
    [
      "top-k 4 of 8 (renormalised, filtered tokens empty)",
      samplingDistribution(new Float32Array([0.1, 2, -1, 1.5, 0.3, 2.2, 1.9, -0.5]), {
        temperature: 1,
        topK: 4,
      }),
    ],
    ["skewed, five tokens", new Float32Array([0.02, 0.5, 0.08, 0.3, 0.1])],
  ];

  for (const [name, p] of cases) {
    it(`SAMP-PICK-FREQ: empirical frequencies match P (${name}), chi-square at p = 0.001`, () => {
      const next = uniformStream(name.length * 7919 + 17);
      const counts = new Array<number>(p.length).fill(0);
      for (let i = 0; i < draws; i++) counts[pick(next(), p)]++;
      let chi2 = 0;
      let cells = 0;
      for (let t = 0; t < p.length; t++) {
        if (p[t] === 0) {
          expect(counts[t]).toBe(0);
          continue;
        }
        const expected = draws * p[t];
        expect(expected).toBeGreaterThanOrEqual(5); // chi-square validity
        chi2 += (counts[t] - expected) ** 2 / expected;
        cells++;
      }
      const df = cells - 1;
      const crit = CHI2_CRIT_0_001[df];
      expect(crit, `no critical value tabulated for df = ${df}`).toBeDefined();
      expect(chi2).toBeLessThan(crit);
    });
  }
});

// ---------------------------------------------------------------------------

describe("u validation in pick", () => {
  const p = new Float32Array([0.5, 0.5]);
  const message = /auxiliary variable u must be in \[0, 1\), got/;

  it("SAMP-U-RANGE: pick rejects u outside [0, 1), NaN, Infinity and non-numbers", () => {
    for (const bad of [-1e-300, -0.5, 1, 1.0000001, 2, NaN, Infinity, -Infinity]) {
      expect(() => pick(bad, p)).toThrow(RangeError);
      expect(() => pick(bad, p)).toThrow(message);
    }
    expect(() => pick(NaN, p)).toThrow(/got NaN/);
    expect(() => pick(1, p)).toThrow(/got 1$/);
    for (const bad of ["0.5", undefined, null, 0n, {}]) {
      expect(() => pick(bad as unknown as number, p)).toThrow(message);
    }
  });

  it("SAMP-U-RANGE: pick accepts the whole of [0, 1) and rejects everything else (fast-check)", () => {
    fc.assert(
      fc.property(fc.double(), (u) => {
        if (u >= 0 && u < 1) expect([0, 1]).toContain(pick(u, p));
        else expect(() => pick(u, p)).toThrow(message);
      }),
      { numRuns: 1000 },
    );
    expect(pick(nextDown64(1), p)).toBe(1);
    expect(pick(0, p)).toBe(0);
  });
});

describe("argmax", () => {
  it("SAMP-GREEDY: argmax returns the first index of the maximum", () => {
    expect(argmax(new Float32Array([1, 3, 3, 2]))).toBe(1);
    expect(argmax(new Float32Array([7, 7, 7]))).toBe(0);
    expect(argmax(new Float32Array([-5, -Infinity, -1, -1]))).toBe(2);
    expect(argmax([0.5])).toBe(0);
    expect(() => argmax(new Float32Array(0))).toThrow(RangeError);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: -5, max: 5 }), { minLength: 1, maxLength: 30 }), (xs) => {
        const a = Float32Array.from(xs);
        expect(argmax(a)).toBe(xs.indexOf(Math.max(...xs)));
      }),
    );
  });
});
