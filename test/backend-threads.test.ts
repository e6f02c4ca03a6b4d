import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Buffer } from "../src/backends/backend.js";
import { createWasmBackend, instantiateBuild, type Kernels, type WasmBackend } from "../src/backends/wasm/index.js";
import { randomCheckpoint } from "../src/model/init.js";
import type { ModelConfig } from "../src/model/config.js";
import { Transformer } from "../src/model/transformer.js";
import { randomAttention, runAttention, matmulCase } from "./backend-ops.js";
import { rng } from "./helpers.js";

/*
 * BACKEND-THREADS: matmuls split over worker threads (output columns, never
 * K) and attention split into ranges of query heads give results bit-identical
 * (Object.is on every element) to one thread, for both WASM builds, for
 * single ops (packed panels or not, any M, causal or masked) and for a whole
 * model forward. A backend from createWasmBackend has its workers running
 * before it is returned, so purely synchronous callers use them.
 */

function randF32(n: number, r: () => number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = r() * 2 - 1;
  return a;
}

function firstBitDifference(a: ArrayLike<number>, b: ArrayLike<number>): string | null {
  if (a.length !== b.length) return `lengths differ: ${a.length} vs ${b.length}`;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return `element ${i}: ${a[i]} vs ${b[i]}`;
  return null;
}

function matmulOn(b: WasmBackend, x: Float32Array, w: Float32Array, M: number, K: number, N: number): Float32Array {
  const bufs: Buffer[] = [b.alloc(M * K), b.alloc(N * K), b.alloc(M * N)];
  b.upload(bufs[0], x);
  b.upload(bufs[1], w);
  b.matmul(bufs[2], bufs[0], bufs[1], M, K, N);
  b.matmul(bufs[2], bufs[0], bufs[1], M, K, N); // second call: packed panels reused
  const y = b.download(bufs[2]);
  for (const buf of bufs) b.free(buf);
  return y;
}

for (const build of ["relaxed", "simd"] as const) {
  describe(`wasm backend threads (${build} build)`, () => {
    let one: WasmBackend, two: WasmBackend, three: WasmBackend;
    beforeAll(async () => {
      one = await createWasmBackend({ wasmBuild: build, threads: 1 });
      two = await createWasmBackend({ wasmBuild: build, threads: 2 });
      three = await createWasmBackend({ wasmBuild: build, threads: 3 });
    });
    afterAll(() => {
      one.dispose();
      two.dispose();
      three.dispose();
    });

    it("BACKEND-THREADS: threads option is validated", async () => {
      await expect(createWasmBackend({ threads: 0 })).rejects.toThrow(/threads/);
      await expect(createWasmBackend({ threads: 1.5 })).rejects.toThrow(/threads/);
      expect(one.threads).toBe(1);
      expect(two.threads).toBe(2);
    });

    it("BACKEND-THREADS: matmul on 2 threads equals 1 thread bit for bit (any M, K % 4 != 0, N % 4 != 0)", () => {
      const before = two.threadedCalls;
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 24 }), fc.integer({ min: 64, max: 300 }), fc.integer({ min: 256, max: 900 }), fc.integer(), (M, K, N, seed) => {
          const { x, w } = matmulCase(M, K, N, seed);
          const d = firstBitDifference(matmulOn(two, x, w, M, K, N), matmulOn(one, x, w, M, K, N));
          if (d !== null) throw new Error(`M=${M} K=${K} N=${N}: ${d}`);
        }),
        { numRuns: 25 },
      );
      expect(two.threadedCalls).toBeGreaterThan(before);
    });

    it("BACKEND-THREADS: the workers run as soon as createWasmBackend returns, and synchronous ops use them", async () => {
      const b = await createWasmBackend({ wasmBuild: build, threads: 2 });
      try {
        expect(b.threadsReady).toBe(true);
        expect(b.workerChunks).toBe(0);
        // No await from here on: the work must still reach a worker.
        const r = rng(7);
        const M = 1,
          K = 256,
          N = 4096;
        const x = randF32(M * K, r),
          w = randF32(N * K, r);
        for (let i = 0; i < 20 && b.workerChunks === 0; i++) matmulOn(b, x, w, M, K, N);
        expect(b.workerChunks).toBeGreaterThan(0);
      } finally {
        b.dispose();
      }
    });

    it("BACKEND-THREADS: attention split into head ranges on 2 and 3 threads equals 1 thread bit for bit (causal and masked, MHA and GQA, ranges that start inside a KV group)", () => {
      const before = two.threadedCalls,
        before3 = three.threadedCalls;
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 40, max: 200 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 13, max: 70 }), fc.boolean(), fc.integer(), (M, extra, nKv, group, headSize, masked, seed) => {
          fc.pre(nKv * group >= 2);
          const c = randomAttention(seed, M, extra, nKv, group, headSize, masked);
          const want = runAttention(one, c);
          for (const [threads, b] of [
            [2, two],
            [3, three],
          ] as const) {
            const d = firstBitDifference(runAttention(b, c), want);
            if (d !== null) throw new Error(`${threads} threads, M=${M} nKeys=${c.nKeys} nHeads=${c.nHeads} hs=${headSize} masked=${masked}: ${d}`);
          }
        }),
        { numRuns: 25 },
      );
      expect(two.threadedCalls).toBeGreaterThan(before);
      expect(three.threadedCalls).toBeGreaterThan(before3);
    });

    it("BACKEND-THREADS: a whole model forward on 2 threads equals 1 thread bit for bit", () => {
      const config: ModelConfig = { dim: 256, hiddenDim: 688, nLayers: 2, nHeads: 8, nKvHeads: 4, vocabSize: 1030, seqLen: 64, sharedClassifier: false, normEps: 1e-5, ropeTheta: 10000 };
      const ckpt = randomCheckpoint(config, 3);
      const run = (b: WasmBackend) => {
        const model = new Transformer(b, ckpt);
        const cache = model.newCache();
        const a = model.forward({ tokens: [1, 5, 9, 200, 7], positions: [0, 1, 2, 3, 4] }, cache);
        const c = model.forward({ tokens: [11], positions: [5] }, cache);
        const d = model.forward({ tokens: [12, 13, 14], positions: [6, 7, 8] }, cache);
        const long = Array.from({ length: 40 }, (_, i) => (i * 37 + 3) % 1030);
        const e = model.forward({ tokens: long, positions: long.map((_, i) => 9 + i) }, cache);
        model.dispose();
        return [a, c, d, e];
      };
      const before = two.threadedCalls;
      const got = run(two),
        want = run(one);
      expect(two.threadedCalls).toBeGreaterThan(before);
      for (let i = 0; i < want.length; i++) {
        const d = firstBitDifference(got[i], want[i]);
        if (d !== null) expect.fail(`forward call ${i}: ${d}`);
      }
    });
  });
}

describe("thread pool chunks", () => {
  let k: Kernels;
  beforeAll(async () => {
    k = await instantiateBuild("simd");
  });
  /** assembly/pool.ts's guidedChunks, its bounds read back (scratch memory at heapBase). */
  const guidedChunks = (total: number, threads: number, align: number, minChunk: number): number[] => {
    const at = k.heapBase();
    const count = k.guidedChunks(at, total, threads, align, minChunk);
    return Array.from(new Int32Array(k.memory.buffer, at, count + 1));
  };

  it("BACKEND-THREADS: guided chunks cover [0, total) in order, aligned, none under the minimum but the last, at most poolMaxChunks", () => {
    const maxChunks = k.poolMaxChunks();
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 200_000 }), fc.integer({ min: 2, max: 8 }), fc.constantFrom(1, 4), fc.integer({ min: 1, max: 5000 }), (total, threads, align, minRaw) => {
        const minChunk = Math.ceil(minRaw / align) * align;
        const out = guidedChunks(total, threads, align, minChunk);
        const count = out.length - 1;
        expect(count).toBeGreaterThanOrEqual(1);
        expect(count).toBeLessThanOrEqual(maxChunks);
        expect(out[0]).toBe(0);
        expect(out[count]).toBe(total);
        for (let i = 0; i < count; i++) {
          const lo = out[i],
            hi = out[i + 1];
          expect(hi).toBeGreaterThan(lo);
          expect(lo % align).toBe(0);
          if (i < count - 1) expect(hi - lo).toBeGreaterThanOrEqual(minChunk);
          // Never longer than a 1 / (2 * threads) share of what is left (rounded up), except at the minimum or the last.
          if (i < count - 1 && hi - lo > minChunk) expect(hi - lo).toBeLessThanOrEqual(Math.ceil((total - lo) / (2 * threads) / align) * align);
        }
        // Shrinking: each chunk is at most the one before it.
        for (let i = 1; i < count - 1; i++) expect(out[i + 1] - out[i]).toBeLessThanOrEqual(out[i] - out[i - 1]);
      }),
      { numRuns: 300 },
    );
    // Two threads, the 15M classifier's 32,000 columns with the backend's minimum for K = 288: long chunks first.
    const out = guidedChunks(32000, 2, 4, 116);
    expect(out.slice(0, 4)).toEqual([0, 8000, 14000, 18500]);
    expect(out.length - 1).toBeLessThan(40);
  });
});
