import fc from "fast-check";
import { afterAll, beforeAll, describe, expect } from "vitest";
import type { Backend, Buffer, DType, HostArray, WeightType } from "../src/backends/backend.js";
import { createWasmBackend, type WasmBackend } from "../src/backends/wasm/index.js";
import { absDot, attentionRow, type Attn, hostOps, randomAttention as randomAttentionFrom, scoped } from "../src/backends/conformance.js";
import { Gen } from "../src/util/prng.js";
import { readCheckpoint } from "../src/io/checkpoint.js";
import { Tokenizer } from "../src/io/tokenizer.js";
import { Transformer } from "../src/model/transformer.js";
import { teacherChecksum } from "../src/ptp/files/teacher-checksum.js";
import { randomStudent } from "../src/ptp/init.js";
import { PtpModel } from "../src/ptp/ptp-model.js";
import { firstBitDifference, rng, STORIES_260K, TOK_512 } from "./helpers.js";

/*
 * Op-level test helpers shared by the backend tests (test/backend-wasm.test.ts,
 * test/backend-conformance.test.ts): random data, host-in/host-out op
 * runners, bit-exact and tolerance comparisons, and the tolerances.
 *
 * TOLERANCES against the js reference (u = 2^-24, the float32 unit roundoff)
 * - matmul: js sums the K products one at a time in float32 (error at most
 *   gamma_K * S, with S = sum_k |x_k w_k| and gamma_n ~ n u); wasm sums 4
 *   lane partials of K/4 terms, then 2 pairwise adds and at most 3 tail adds
 *   (error at most gamma_{K/4+6} * S, FMA or not). So |wasm - js| <=
 *   (1.25 K + 8) u S, which is the tolerance we use per element: rigorous, and
 *   relative to the size of the terms so cancellation cannot make it flaky.
 *   Any backend whose summation order has an error bound of at most
 *   gamma_{K/4+6} S (cuda: the js order itself) stays within it.
 * - attention: only the q.k dot products are summed in a different order
 *   (same bound, with S <= headSize since inputs lie in [-1, 1], divided by
 *   sqrt(headSize)). A score error d moves the softmax weights by a relative
 *   <= ~2d, and |v| <= 1, so we allow 4 * (1.25 hs + 8) u sqrt(hs) + 1e-6.
 * - rmsnorm, rope, add, embedding, copy follow the very same float32 recipe as
 *   js and must agree bit for bit. swiglu and softmax follow it too, but their
 *   exp is another implementation's f64 exp rounded to f32 (AssemblyScript's,
 *   CUDA's), which may differ from V8's by an f64 ulp and so, rarely, round to
 *   a neighbouring f32: we allow 1e-6 relative (+1e-12 absolute), ~8 f32 ulps.
 */

// The tolerances live with the exported conformance suite (src/backends/conformance.ts), in one place.
export { UNIT_ROUNDOFF as U, matmulTol, attentionTol } from "../src/backends/conformance.js";

export function randF32(n: number, r: () => number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (r() * 2 - 1) * scale;
  return a;
}

export function up(b: Backend, data: HostArray, dtype: DType = "f32"): Buffer {
  const buf = b.alloc(data.length, dtype);
  b.upload(buf, data);
  return buf;
}

export function expectBitExact(a: ArrayLike<number>, b: ArrayLike<number>, what: string): void {
  const d = firstBitDifference(a, b);
  if (d !== null) expect.fail(`${what}: ${d}`);
}

/** |a - b| <= tol(i) element by element; `a` is the backend under test, `b` the js reference. */
export function expectClose(a: ArrayLike<number>, b: ArrayLike<number>, tol: (i: number) => number, what: string, label = "wasm"): void {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) {
    const err = Math.abs(a[i] - b[i]);
    if (!(err <= tol(i))) expect.fail(`${what}: element ${i}: ${label} ${a[i]} vs js ${b[i]} (|err| ${err} > ${tol(i)})`);
  }
}

/** Frees every buffer allocated through `b` during `fn` (the library's own helper). */
export { scoped };

// ---- op runners: host arrays in, host arrays out -------------------------
// The library's own (src/backends/conformance.ts), under the names the tests use.

export const runMatmul = hostOps.matmul;
export const runRmsnorm = hostOps.rmsnorm;
export const runRope = hostOps.rope;
export const runAttention = hostOps.attention;
export const runSwiglu = hostOps.swiglu;
export const runSoftmax = hostOps.softmax;
export const runAdd = hostOps.add;
export const runEmbedding = hostOps.embedding;
export const runCopy = hostOps.copy;

export type AttnCase = Attn;

export { absDot, attentionRow };

/** Random attention problem (the library's, drawn from a generator seeded with `seed`); mask null (causal) or random with >= 1 visible key per row. */
export function randomAttention(seed: number, M: number, extraKeys: number, nKvHeads: number, group: number, headSize: number, masked: boolean): AttnCase {
  return randomAttentionFrom(new Gen(seed), M, extraKeys, nKvHeads, group, headSize, masked);
}

/** A seeded rows problem: D = nHeads * (2 half), x (scaled by xScale), a norm weight g and a second input y, drawn from r in that order; r goes on for the rest. */
export function rowsCase(M: number, nHeads: number, half: number, seed: number, xScale: number) {
  const r = rng(seed);
  const headSize = 2 * half,
    D = nHeads * headSize;
  const x = randF32(M * D, r, xScale),
    g = randF32(D, r),
    y = randF32(M * D, r);
  return { r, headSize, D, x, g, y };
}

/** A seeded matmul problem: x (M x K) then w (N x K), uniform in [-1, 1). */
export function matmulCase(M: number, K: number, N: number, seed: number): { x: Float32Array; w: Float32Array } {
  const r = rng(seed);
  const x = randF32(M * K, r),
    w = randF32(N * K, r);
  return { x, w };
}

/** A seeded swiglu / softmax problem: g (scale 8) then u (scale 2), both M x N. */
export function swigluCase(M: number, N: number, seed: number): { g: Float32Array; u: Float32Array } {
  const r = rng(seed);
  const g = randF32(M * N, r, 8),
    u = randF32(M * N, r, 2);
  return { g, u };
}

/** The larger [M, K, N] shapes every reduced-precision matmul test runs (a matrix-vector product, odd K and N, 16 rows). */
export const EXACT_MATMUL_SHAPES: number[][] = [
  [1, 300, 1030],
  [5, 256, 777],
  [16, 301, 515],
];

/**
 * A reduced-precision matmul (`one`: 1 thread, `two`: 2 threads) against
 * `reference` (the same arithmetic done another way), bit for bit: random
 * M 1..maxM, K 1..maxK, N 1..70 (values in [-3, 3], `prepare` may change x),
 * each row equal to that row alone; then the larger `shapes`, with 2
 * threads equal to 1.
 */
export function checkExactMatmul(one: Backend, two: Backend, reference: (x: Float32Array, w: Float32Array, M: number, K: number, N: number) => Float32Array, o: { maxM: number; maxK: number; shapes: number[][]; prepare?: (x: Float32Array, K: number, seed: number) => void }): void {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: o.maxM }), fc.integer({ min: 1, max: o.maxK }), fc.integer({ min: 1, max: 70 }), fc.integer(), (M, K, N, seed) => {
      const r = rng(seed);
      const x = randF32(M * K, r, 3),
        w = randF32(N * K, r, 3);
      o.prepare?.(x, K, seed);
      const got = runMatmul(one, x, w, M, K, N);
      const d = firstBitDifference(got, reference(x, w, M, K, N));
      if (d !== null) throw new Error(`M=${M} K=${K} N=${N}: ${d}`);
      for (let m = 0; m < M; m++) {
        const e = firstBitDifference(got.subarray(m * N, (m + 1) * N), runMatmul(one, x.slice(m * K, (m + 1) * K), w, 1, K, N));
        if (e !== null) throw new Error(`row ${m} of M=${M} K=${K} N=${N}: ${e}`);
      }
    }),
    { numRuns: 40 },
  );
  for (const [M, K, N] of o.shapes) {
    const r = rng(M + K + N);
    const x = randF32(M * K, r, 3),
      w = randF32(N * K, r, 3);
    const a = runMatmul(one, x, w, M, K, N);
    expect(firstBitDifference(runMatmul(two, x, w, M, K, N), a)).toBeNull();
    expect(firstBitDifference(a, reference(x, w, M, K, N))).toBeNull();
  }
}

/** The wasm backends a weight-type test compares: f32 on 1 thread, then `weights` on 1 and on 2 threads. */
export async function weightBackends(build: "relaxed" | "simd", weights: WeightType): Promise<[WasmBackend, WasmBackend, WasmBackend]> {
  return [await createWasmBackend({ wasmBuild: build, threads: 1 }), await createWasmBackend({ wasmBuild: build, threads: 1, weights }), await createWasmBackend({ wasmBuild: build, threads: 2, weights })];
}

/** The stories260K teacher on `backend`, with a fixed untrained O-PTP student (rank 4, window 8) and its tokenizer. */
export function storiesWithStudent(backend: Backend): { tok: Tokenizer; teacher: Transformer; model: PtpModel } {
  const ckpt = readCheckpoint(STORIES_260K);
  const tok = Tokenizer.load(TOK_512, ckpt.config.vocabSize);
  const teacher = new Transformer(backend, ckpt);
  const model = new PtpModel(teacher, randomStudent(ckpt, teacherChecksum(ckpt), { variant: "O", rank: 4, window: 8, seed: 2, aux: { kind: "anchors" } }));
  return { tok, teacher, model };
}

/** The wasm backends of a weight-type test (see weightBackends), filled before its tests run. */
export interface WeightBackends {
  f32: WasmBackend;
  one: WasmBackend;
  two: WasmBackend;
}

/** A describe block per wasm build (relaxed, simd) with f32 and `weights` backends made before and disposed after its tests. */
export function describeWeightType(weights: WeightType, body: (b: WeightBackends, build: "relaxed" | "simd") => void): void {
  for (const build of ["relaxed", "simd"] as const) {
    describe(`wasm backend with ${weights} weights (${build} build)`, () => {
      const b = {} as WeightBackends;
      beforeAll(async () => {
        [b.f32, b.one, b.two] = await weightBackends(build, weights);
      });
      afterAll(() => [b.f32, b.one, b.two].forEach((x) => x.dispose()));
      body(b, build);
    });
  }
}
