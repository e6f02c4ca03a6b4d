import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createWasmBackend } from "../src/backends/wasm/index.js";
import { tokenProbability } from "../src/sampling/softmax.js";
import { up } from "./backend-ops.js";

/*
 * TOKEN-PROB: the probability estimate a decoder uses to stop drafting
 * (DecodeOptions.draftStop): the host's tokenProbability against softmax in
 * plain double precision, and the wasm backend's tokenProbabilities against
 * the host's.
 */

/** softmax(logits / t)[token], every term, double precision. */
function exact(logits: Float32Array, token: number, t: number): number {
  let max = Number.NEGATIVE_INFINITY;
  for (const x of logits) max = Math.max(max, x);
  let sum = 0;
  for (const x of logits) sum += Math.exp((x - max) / t);
  return Math.exp((logits[token] - max) / t) / sum;
}

const rowArb = fc.record({
  n: fc.integer({ min: 1, max: 300 }),
  scale: fc.constantFrom(0.1, 3, 30, 300),
  t: fc.constantFrom(0.05, 0.28, 0.7, 1, 2),
  seed: fc.integer({ min: 1, max: 1 << 30 }),
  minusInf: fc.boolean(),
});

function row(r: { n: number; scale: number; seed: number; minusInf: boolean }): Float32Array {
  let s = r.seed >>> 0;
  const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0), s / 2 ** 32);
  const x = Float32Array.from({ length: r.n }, () => (next() - 0.5) * r.scale);
  if (r.minusInf) for (let i = 1; i < r.n; i += 3) x[i] = Number.NEGATIVE_INFINITY;
  return x;
}

describe("TOKEN-PROB", () => {
  it("the host estimate is softmax's probability within 1e-9 relative (terms under e^-80 aside); -Infinity has probability 0", () => {
    fc.assert(
      fc.property(rowArb, (r) => {
        const x = row(r);
        for (let token = 0; token < x.length; token += Math.max(1, x.length >> 3)) {
          const want = exact(x, token, r.t),
            got = tokenProbability(x, token, r.t);
          if (want < 1e-30) expect(got).toBeLessThan(1e-30);
          else expect(Math.abs(got - want) / want, `token ${token}`).toBeLessThan(1e-9);
        }
        if (r.minusInf && r.n > 1) expect(tokenProbability(x, 1, r.t)).toBe(0);
      }),
      { numRuns: 200 },
    );
  });

  it("the wasm backend's estimate, where the logits are, is the host's within 1e-5 relative (plus the f32 rounding of x / t), for every row of a block", async () => {
    for (const build of ["relaxed", "simd"] as const) {
      const b = await createWasmBackend({ wasmBuild: build, threads: 1 });
      fc.assert(
        fc.property(rowArb, fc.integer({ min: 1, max: 4 }), (r, M) => {
          const rows = Array.from({ length: M }, (_, m) => row({ ...r, seed: r.seed + m }));
          const X = up(b, Float32Array.from(rows.flatMap((x) => Array.from(x))));
          const tokens = rows.map((_, m) => (r.seed + 7 * m) % r.n);
          const first = M > 1 ? 1 : 0;
          const got = b.tokenProbabilities(X, first, M - first, r.n, r.t, tokens.slice(first));
          for (let m = first; m < M; m++) {
            const want = tokenProbability(rows[m], tokens[m], r.t);
            // f32 arguments x / t: each rounded by up to 2^-24 of the largest |x| / t, the token's and the largest's.
            const maxArg = Math.max(...Array.from(rows[m], (v) => (Number.isFinite(v) ? Math.abs(v) : 0))) / r.t;
            if (want < 1e-30) expect(got[m - first]).toBeLessThan(1e-30);
            else expect(Math.abs(got[m - first] - want) / want, `row ${m}`).toBeLessThan(1e-5 + 8 * maxArg * 2 ** -24);
          }
          b.free(X);
        }),
        { numRuns: 100 },
      );
      b.dispose();
    }
  });

  it("rows with a NaN or +Infinity, or only -Infinity, give NaN on both; bad arguments are errors", async () => {
    const b = await createWasmBackend({ threads: 1 });
    for (const bad of [
      [1, Number.NaN, 2, 3, 4],
      [1, 2, Number.POSITIVE_INFINITY, 3, 4],
      [Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY],
    ]) {
      const x = Float32Array.from(bad);
      expect(tokenProbability(x, 0, 1)).toBeNaN();
      const X = up(b, x);
      expect(b.tokenProbabilities(X, 0, 1, 5, 1, [0])[0]).toBeNaN();
      b.free(X);
    }
    const X = up(b, new Float32Array(8));
    expect(() => b.tokenProbabilities(X, 0, 2, 4, 1, [0, 4])).toThrow(/tokenProbabilities: tokens must be integers in \[0, 4\), got 4/);
    expect(() => b.tokenProbabilities(X, 0, 2, 4, 0, [0, 1])).toThrow(/tokenProbabilities: temperature must be finite and > 0, got 0/);
    expect(() => b.tokenProbabilities(X, 1, 2, 4, 1, [0, 1])).toThrow(/tokenProbabilities x/);
    expect(() => tokenProbability(new Float32Array(3), 3, 1)).toThrow("tokenProbability: token must be an integer in [0, 3) (an index into logits), got 3");
    b.dispose();
  });
});
