import { execFileSync, spawnSync } from "node:child_process";
import { resolve } from "node:path";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { BackendError, type Backend } from "../src/backends/backend.js";
import { JsBackend } from "../src/backends/js/index.js";
import { FreeListAllocator, type WasmBackend, createWasmBackend, instantiateBuild, relaxedSimdSupported, simdSupported } from "../src/backends/wasm/index.js";
import { PLAIN_SIMD_PROBE, RELAXED_MADD_PROBE } from "../src/backends/wasm/detect.js";
import type { WasmMemory } from "../src/util/wasm-api.js";
import { binOf } from "../src/sampling/pick.js";
import { samplingDistribution } from "../src/sampling/processors.js";
import { sampleToken } from "../src/sampling/sampler.js";
import { rng } from "./helpers.js";
import { absDot, attentionRow, expectBitExact, expectClose, matmulTol, randF32, randomAttention, runAttention, runMatmul, runRmsnorm, runRope, runSoftmax, runSwiglu, scoped, U, up, rowsCase, matmulCase, swigluCase } from "./backend-ops.js";

/** The WebAssembly global, typed locally (the project's lib has no DOM types). */
const WA = (
  globalThis as unknown as {
    WebAssembly: { validate(bytes: Uint8Array): boolean; Memory: new (d: { initial: number }) => WasmMemory };
  }
).WebAssembly;

/*
 * The wasm backend against the js reference, for both WASM builds. The
 * TOLERANCES and their reasoning, and the op runners, are in test/backend-ops.ts
 * (shared with test/backend-conformance.test.ts).
 */

// ---------------------------------------------------------------------------

const relaxedOk = relaxedSimdSupported();
const BUILDS = [
  { build: "simd" as const, skip: false, label: "simd build" },
  {
    build: "relaxed" as const,
    skip: !relaxedOk,
    label: relaxedOk ? "relaxed build" : "relaxed build (SKIPPED: this runtime does not validate relaxed SIMD; run Node with --experimental-wasm-relaxed-simd)",
  },
];

const js = new JsBackend();
const RUNS = { numRuns: 100 };

describe("relaxed SIMD detection", () => {
  it("BACKEND-BUILD-SELECT: the control probe validates and the relaxed probe validates exactly when supported", () => {
    expect(simdSupported()).toBe(true);
    expect(WA.validate(PLAIN_SIMD_PROBE)).toBe(true);
    expect(WA.validate(RELAXED_MADD_PROBE)).toBe(relaxedOk);
  });

  it("BACKEND-BUILD-SELECT: vitest runs with --experimental-wasm-relaxed-simd, so relaxed SIMD is available here", () => {
    expect(process.execArgv.join(" ").includes("relaxed-simd") ? relaxedOk : true).toBe(true);
  });

  it("BACKEND-BUILD-SELECT: without the command-line flag the library switches relaxed SIMD on itself (as the CLI does) and reports the build", () => {
    const script = `
      const { createWasmBackend, relaxedSimdSupported } = await import(${JSON.stringify(resolve(import.meta.dirname, "../src/backends/wasm/index.ts"))});
      const b = await createWasmBackend({});
      console.log(JSON.stringify({ supported: relaxedSimdSupported(), description: b.description }));
    `;
    const env = { ...process.env };
    delete env.NODE_OPTIONS;
    delete env.PTP_NO_RELAXED_FLAG;
    const out = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { env, encoding: "utf8" });
    const res = JSON.parse(out.trim().split("\n").pop()!) as { supported: boolean; description: string };
    // Node 20.16+ (process.getBuiltinModule) accepts the flag at run time, and later versions have relaxed SIMD on
    expect(res.supported).toBe(true);
    expect(res.description).toBe("wasm (relaxed SIMD)");
  });

  it("BACKEND-BUILD-SELECT: where relaxed SIMD is unavailable (PTP_NO_RELAXED_FLAG=1, no flag), auto picks simd and an explicit relaxed request explains what to do", () => {
    const script = `
      const { createWasmBackend, relaxedSimdSupported } = await import(${JSON.stringify(resolve(import.meta.dirname, "../src/backends/wasm/index.ts"))});
      const b = await createWasmBackend({});
      let msg = "";
      try { await createWasmBackend({ wasmBuild: "relaxed" }); } catch (e) { msg = e.message; }
      console.log(JSON.stringify({ supported: relaxedSimdSupported(), description: b.description, msg }));
    `;
    const env: NodeJS.ProcessEnv = { ...process.env, PTP_NO_RELAXED_FLAG: "1" };
    delete env.NODE_OPTIONS;
    const out = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { env, encoding: "utf8" });
    const res = JSON.parse(out.trim().split("\n").pop()!) as { supported: boolean; description: string; msg: string };
    if (res.supported) return; // a runtime with relaxed SIMD on by default: nothing to check
    expect(res.description).toBe("wasm (SIMD)");
    expect(res.msg).toMatch(/--experimental-wasm-relaxed-simd/);
    expect(res.msg).toMatch(/"simd"/);
  });

  it("BACKEND-BUILD-SELECT: the ptp command keeps plain SIMD under PTP_NO_RELAXED_FLAG=1 too, and says so", () => {
    const env: NodeJS.ProcessEnv = { ...process.env, PTP_NO_RELAXED_FLAG: "1" };
    delete env.NODE_OPTIONS;
    const args = [resolve(import.meta.dirname, "../bin/ptp.js"), "generate", "--model", resolve(import.meta.dirname, "../../shared/models/stories260K.bin"), "--tokenizer", resolve(import.meta.dirname, "../../shared/models/tok512.bin"), "--prompt", "Once", "--steps", "8", "--seed", "1"];
    const r = spawnSync(process.execPath, args, { env, encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    // Only a runtime with relaxed SIMD on without any flag may still run the relaxed build.
    const probe = `console.log(WebAssembly.validate(new Uint8Array(${JSON.stringify([...RELAXED_MADD_PROBE])})))`;
    const onByDefault = spawnSync(process.execPath, ["-e", probe], { env, encoding: "utf8" }).stdout.trim() === "true";
    expect(r.stderr).toMatch(onByDefault ? /wasm \(relaxed SIMD\)/ : /wasm \(SIMD\)/);
  });

  it("BACKEND-BUILD-SELECT: auto picks the relaxed build where supported", async () => {
    const b = await createWasmBackend({ wasmBuild: "auto" });
    expect(b.description).toBe(relaxedOk ? "wasm (relaxed SIMD)" : "wasm (SIMD)");
  });
});

for (const { build, skip, label } of BUILDS) {
  describe.skipIf(skip)(label, () => {
    let wasm: WasmBackend;
    beforeAll(async () => {
      wasm = await createWasmBackend({ wasmBuild: build });
    });

    it("BACKEND-BUILD-SELECT: describes the active build", () => {
      expect(wasm.name).toBe("wasm");
      expect(wasm.description).toBe(build === "relaxed" ? "wasm (relaxed SIMD)" : "wasm (SIMD)");
    });

    // ---- agreement with js ----------------------------------------------

    it("BACKEND-AGREE: matmul agrees with js within 1e-5 * sum|x w|", () => {
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 80 }), fc.integer({ min: 1, max: 24 }), fc.integer(), (M, K, N, seed) => {
          const { x, w } = matmulCase(M, K, N, seed);
          const a = runMatmul(wasm, x, w, M, K, N),
            b = runMatmul(js, x, w, M, K, N);
          expectClose(a, b, (i) => matmulTol(K) * absDot(x, w, Math.floor(i / N), i % N, K), `matmul M=${M} K=${K} N=${N}`);
        }),
        RUNS,
      );
    });

    it("BACKEND-AGREE: matmul on a larger shape (several w blocks, K % 8 = 4)", () => {
      const M = 7,
        K = 1220,
        N = 90;
      const { x, w } = matmulCase(M, K, N, 7);
      const a = runMatmul(wasm, x, w, M, K, N),
        b = runMatmul(js, x, w, M, K, N);
      expectClose(a, b, (i) => matmulTol(K) * absDot(x, w, Math.floor(i / N), i % N, K), "matmul 7x1220x90");
    });

    it("BACKEND-AGREE: rmsnorm, rope, add, embedding and copy agree with js bit for bit", () => {
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 12 }), fc.integer(), (M, nHeads, half, seed) => {
          const r = rng(seed);
          const headSize = 2 * half,
            D = nHeads * headSize;
          const x = randF32(M * D, r, 3),
            g = randF32(D, r);
          expectBitExact(runRmsnorm(wasm, x, g, M, D, 1e-5), runRmsnorm(js, x, g, M, D, 1e-5), "rmsnorm");

          const pos = Int32Array.from({ length: M }, () => Math.floor(r() * 5000));
          expectBitExact(runRope(wasm, x, pos, M, nHeads, headSize, 10000), runRope(js, x, pos, M, nHeads, headSize, 10000), "rope");

          const y = randF32(M * D, r);
          const addRun = (b: Backend) =>
            scoped(b, (alloc) => {
              const yb = alloc(y);
              b.add(yb, alloc(x), M * D);
              return b.download(yb);
            });
          expectBitExact(addRun(wasm), addRun(js), "add");

          const rows = 5;
          const table = randF32(rows * D, r);
          const ids = Int32Array.from({ length: M }, () => Math.floor(r() * (rows + 2)) - 2); // some negative
          const embRun = (b: Backend) =>
            scoped(b, (alloc) => {
              const yb = alloc(y);
              b.embedding(yb, alloc(table), alloc(ids, "i32"), M, D);
              return b.download(yb);
            });
          expectBitExact(embRun(wasm), embRun(js), "embedding");

          const n = Math.floor(r() * D),
            so = Math.floor(r() * (M * D - n + 1)),
            dOff = Math.floor(r() * (M * D - n + 1));
          const copyRun = (b: Backend) =>
            scoped(b, (alloc) => {
              const dst = alloc(y);
              b.copy(dst, dOff, alloc(x), so, n);
              return b.download(dst);
            });
          expectBitExact(copyRun(wasm), copyRun(js), "copy");
        }),
        RUNS,
      );
    });

    it("BACKEND-AGREE: swiglu and softmax agree with js within 1e-6 relative", () => {
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 10 }), fc.integer({ min: 1, max: 70 }), fc.integer(), (M, N, seed) => {
          const { g, u } = swigluCase(M, N, seed);
          const a = runSwiglu(wasm, g, u),
            b = runSwiglu(js, g, u);
          expectClose(a, b, (i) => 1e-6 * Math.abs(b[i]) + 1e-12, "swiglu");
          const s = runSoftmax(wasm, g, M, N),
            t = runSoftmax(js, g, M, N);
          expectClose(s, t, (i) => 1e-6 * Math.abs(t[i]) + 1e-12, "softmax");
        }),
        RUNS,
      );
    });

    it("BACKEND-AGREE: attention agrees with js (causal and masked, MHA and GQA)", () => {
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 0, max: 12 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 19 }), fc.boolean(), fc.integer(), (M, extra, nKv, group, headSize, masked, seed) => {
          const c = randomAttention(seed, M, extra, nKv, group, headSize, masked);
          const a = runAttention(wasm, c),
            b = runAttention(js, c);
          const tol = 4 * (1.25 * headSize + 8) * U * Math.sqrt(headSize) + 1e-6;
          expectClose(a, b, () => tol, `attention M=${M} nKeys=${c.nKeys} hs=${headSize}`);
        }),
        RUNS,
      );
    });

    // ---- batch invariance (bit-exact) -----------------------------------

    it("BACKEND-BATCH-INV: matmul: every row of an M-row call equals that row computed alone", () => {
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 80 }), fc.integer({ min: 1, max: 80 }), fc.integer(), (M, K, N, seed) => {
          const { x, w } = matmulCase(M, K, N, seed);
          const all = runMatmul(wasm, x, w, M, K, N);
          for (let m = 0; m < M; m++) {
            const alone = runMatmul(wasm, x.slice(m * K, (m + 1) * K), w, 1, K, N);
            expectBitExact(all.subarray(m * N, (m + 1) * N), alone, `matmul row ${m} of M=${M} K=${K} N=${N}`);
          }
          // And a sub-batch starting at an odd row (different tile alignment).
          if (M >= 3) {
            const sub = runMatmul(wasm, x.slice(K, (M - 1) * K), w, M - 2, K, N);
            expectBitExact(all.subarray(N, (M - 1) * N), sub, `matmul rows 1..${M - 2}`);
          }
        }),
        RUNS,
      );
    });

    it("BACKEND-BATCH-INV: matmul: kept panels of a large weight (N not a multiple of 8, every row tile)", () => {
      for (const [M, K, N] of [
        [7, 301, 77],
        [13, 256, 100],
        [5, 97, 333],
      ]) {
        const r = rng(M * 1000 + N);
        const x = randF32(M * K, r),
          w = randF32(N * K, r);
        const all = runMatmul(wasm, x, w, M, K, N);
        for (let m = 0; m < M; m++) {
          expectBitExact(all.subarray(m * N, (m + 1) * N), runMatmul(wasm, x.slice(m * K, (m + 1) * K), w, 1, K, N), `M=${M} K=${K} N=${N} row ${m}`);
        }
      }
    });

    it("BACKEND-BATCH-INV: matmul: batch invariance on a large K (several w blocks)", () => {
      const M = 9,
        K = 3003,
        N = 45;
      const { x, w } = matmulCase(M, K, N, 11);
      const all = runMatmul(wasm, x, w, M, K, N);
      for (let m = 0; m < M; m++) {
        expectBitExact(all.subarray(m * N, (m + 1) * N), runMatmul(wasm, x.slice(m * K, (m + 1) * K), w, 1, K, N), `row ${m}`);
      }
    });

    it("BACKEND-BATCH-INV: rmsnorm, rope, swiglu, softmax: rows are batch-invariant", () => {
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 20 }), fc.integer(), (M, nHeads, half, seed) => {
          const { r, headSize, D, x, g, y: u } = rowsCase(M, nHeads, half, seed, 4);
          const pos = Int32Array.from({ length: M }, () => Math.floor(r() * 3000));
          const norm = runRmsnorm(wasm, x, g, M, D, 1e-6);
          const rot = runRope(wasm, x, pos, M, nHeads, headSize, 500000);
          const sw = runSwiglu(wasm, x, u);
          const sm = runSoftmax(wasm, x, M, D);
          for (let m = 0; m < M; m++) {
            const xr = x.slice(m * D, (m + 1) * D),
              row = (a: Float32Array) => a.subarray(m * D, (m + 1) * D);
            expectBitExact(row(norm), runRmsnorm(wasm, xr, g, 1, D, 1e-6), `rmsnorm row ${m}`);
            expectBitExact(row(rot), runRope(wasm, xr, pos.slice(m, m + 1), 1, nHeads, headSize, 500000), `rope row ${m}`);
            expectBitExact(row(sw), runSwiglu(wasm, xr, u.slice(m * D, (m + 1) * D)), `swiglu row ${m}`);
            expectBitExact(row(sm), runSoftmax(wasm, xr, 1, D), `softmax row ${m}`);
          }
        }),
        RUNS,
      );
    });

    it("BACKEND-BATCH-INV: attention: every row equals that row alone with the same visible keys", () => {
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 0, max: 10 }), fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 18 }), fc.boolean(), fc.integer(), (M, extra, nKv, group, headSize, masked, seed) => {
          const c = randomAttention(seed, M, extra, nKv, group, headSize, masked);
          const all = runAttention(wasm, c);
          const width = c.nHeads * headSize;
          for (let m = 0; m < M; m++) {
            expectBitExact(all.subarray(m * width, (m + 1) * width), runAttention(wasm, attentionRow(c, m)), `attention row ${m} of ${M}`);
          }
        }),
        RUNS,
      );
    });

    it("BACKEND-BATCH-INV: attention: masked-out extra keys (even NaN ones) change nothing", () => {
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 0, max: 6 }), fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 17 }), fc.integer(), (M, extra, inserted, nKv, headSize, seed) => {
          const r = rng(seed ^ 0x5bd1e995);
          const base = randomAttention(seed, M, extra, nKv, 2, headSize, false); // causal over base.nKeys keys
          const kvW = nKv * headSize;
          // Insert unrelated keys at random places; every row masks them out.
          const isExtra: boolean[] = [];
          for (let j = 0; j < base.nKeys; j++) isExtra.push(false);
          for (let t = 0; t < inserted; t++) isExtra.splice(Math.floor(r() * (isExtra.length + 1)), 0, true);
          const nKeys = isExtra.length;
          const keys = new Float32Array(nKeys * kvW),
            values = new Float32Array(nKeys * kvW);
          const mask = new Uint8Array(M * nKeys);
          let src = 0;
          for (let j = 0; j < nKeys; j++) {
            if (isExtra[j]) {
              keys.fill(r() < 0.5 ? NaN : 1e30, j * kvW, (j + 1) * kvW);
              values.fill(r() < 0.5 ? NaN : -1e30, j * kvW, (j + 1) * kvW);
            } else {
              keys.set(base.keys.subarray(src * kvW, (src + 1) * kvW), j * kvW);
              values.set(base.values.subarray(src * kvW, (src + 1) * kvW), j * kvW);
              for (let m = 0; m < M; m++) mask[m * nKeys + j] = src <= base.nKeys - M + m ? 1 : 0;
              src++;
            }
          }
          const withExtra = runAttention(wasm, { ...base, keys, values, mask, nKeys });
          expectBitExact(withExtra, runAttention(wasm, base), "extra masked keys");
        }),
        RUNS,
      );
    });

    // ---- memory and errors ------------------------------------------------

    it("BACKEND-MEMORY: buffers live above static data, are zero-filled and survive memory growth", () => {
      const heapBase = (wasm as unknown as { k: { heapBase(): number } }).k.heapBase();
      const a = wasm.alloc(100);
      expect((a as unknown as { ptr: number }).ptr).toBeGreaterThanOrEqual(heapBase);
      expect((a as unknown as { ptr: number }).ptr % 64).toBe(0);
      const data = randF32(100, rng(3));
      wasm.upload(a, data);
      wasm.free(a);
      const b = wasm.alloc(100); // reuses the block: must come back zeroed
      expect(Array.from(wasm.download(b)).every((v) => v === 0)).toBe(true);
      wasm.upload(b, data);
      const before = wasm.memoryBytes;
      const big = wasm.alloc(before / 4 + 1000); // forces memory.grow
      expect(wasm.memoryBytes).toBeGreaterThan(before);
      expectBitExact(wasm.download(b), data, "data across growth");
      wasm.upload(big, data, big.length - 100);
      expectBitExact(wasm.download(big, big.length - 100), data, "data in grown memory");
      wasm.free(big);
      wasm.free(b);
    });

    it("BACKEND-MEMORY: steady state allocates nothing per op call", () => {
      const c = randomAttention(5, 4, 30, 2, 2, 16, false);
      runAttention(wasm, c);
      const live = wasm.liveBytes,
        mem = wasm.memoryBytes;
      for (let i = 0; i < 5; i++) runAttention(wasm, c);
      expect(wasm.liveBytes).toBe(live);
      expect(wasm.memoryBytes).toBe(mem);
    });

    it("BACKEND-ERRORS: use after free, double free, dtype mismatch and out-of-range access throw BackendError", () => {
      const f = wasm.alloc(8),
        i = wasm.alloc(8, "i32"),
        u = wasm.alloc(8, "u8");
      const dead = wasm.alloc(8);
      wasm.free(dead);
      expect(() => wasm.upload(dead, new Float32Array(1))).toThrow(BackendError);
      expect(() => wasm.download(dead)).toThrow(BackendError);
      expect(() => wasm.free(dead)).toThrow(BackendError);
      expect(() => wasm.add(f, dead, 8)).toThrow(BackendError);
      expect(() => wasm.matmul(f, i, f, 1, 2, 2)).toThrow(BackendError);
      expect(() => wasm.rope(f, f, 1, 1, 2, 10000)).toThrow(/i32/);
      expect(() => wasm.copy(f, 0, i, 0, 1)).toThrow(BackendError);
      expect(() => wasm.upload(f, new Float32Array(9))).toThrow(BackendError);
      expect(() => wasm.upload(f, new Float32Array(4), 5)).toThrow(BackendError);
      expect(() => wasm.upload(f, new Float32Array(1), -1)).toThrow(BackendError);
      expect(() => wasm.download(f, 4, 5)).toThrow(BackendError);
      expect(() => wasm.add(f, f, 9)).toThrow(BackendError);
      expect(() => wasm.matmul(f, f, f, 3, 3, 3)).toThrow(BackendError);
      expect(() => wasm.copy(f, 4, f, 0, 5)).toThrow(BackendError);
      expect(() => wasm.add(f, js.alloc(8), 8)).toThrow(BackendError);
      // embedding: id past the table; negative ids are fine
      wasm.upload(i, Int32Array.from([0, -1, 4, 0, 0, 0, 0, 0]));
      expect(() => wasm.embedding(f, f, i, 3, 2)).toThrow(/outside/);
      wasm.upload(i, Int32Array.from([0, -1, 3, 0, 0, 0, 0, 0]));
      expect(() => wasm.embedding(f, f, i, 3, 2)).not.toThrow();
      // attention: a row that sees no key
      wasm.upload(u, Uint8Array.from([1, 1, 0, 0, 1, 0, 0, 0]));
      expect(() => wasm.attention(f, f, f, f, u, 2, 2, 1, 1, 2)).toThrow(/sees no key/);
      expect(() => wasm.attention(f, f, f, f, null, 3, 2, 1, 1, 1)).toThrow(/sees no key/);
      for (const b of [f, i, u]) wasm.free(b);
    });

    it("BACKEND-MEMORY: upload converts like js and download returns float32 for every dtype", () => {
      const i = up(wasm, Int32Array.from([-3, 7]), "i32");
      const u = up(wasm, Uint8Array.from([255, 1, 2]), "u8");
      expect(Array.from(wasm.download(i))).toEqual([-3, 7]);
      expect(Array.from(wasm.download(u, 1))).toEqual([1, 2]);
      wasm.free(i);
      wasm.free(u);
    });
  });
}

describe("FreeListAllocator", () => {
  it("BACKEND-MEMORY: first fit, coalescing and growth", () => {
    const memory = new WA.Memory({ initial: 1 });
    const heap = new FreeListAllocator(memory, 100);
    const a = heap.alloc(10),
      b = heap.alloc(64),
      c = heap.alloc(65),
      d = heap.alloc(1);
    expect([a, b, c, d]).toEqual([128, 192, 256, 384]);
    heap.release(b);
    heap.release(d); // merges with the tail block
    expect(heap.freeBlockCount).toBe(2);
    expect(heap.alloc(64)).toBe(192); // first fit reuses the hole
    heap.release(192);
    heap.release(a); // merges with the hole after it
    heap.release(c); // merges everything back into one block
    expect(heap.freeBlockCount).toBe(1);
    expect(heap.liveBytes).toBe(0);
    const big = heap.alloc(100_000); // grows the memory
    expect(big).toBe(128);
    expect(memory.buffer.byteLength).toBeGreaterThanOrEqual(128 + 100_000);
    expect(heap.generation).toBe(1);
    heap.release(big);
    expect(heap.freeBlockCount).toBe(1);
    expect(() => heap.release(big)).toThrow();
  });
});

describe("packed panels", () => {
  it.each(["relaxed", "simd"] as const)(
    "BACKEND-PACKED (%s): gemm on packed panels of 4 columns (1 to 4 rows over 6, 4, 3 or 2 streams, more rows four at a time over L2 blocks of panels, five left over as three and two, N not a multiple of 4) equals the unpacked kernel bit for bit, for M = 1..13 and column ranges as threads split them, and so does product (quads and triples of rows interleaved first); the plain SIMD build equals the sequence acc = fround(acc + fround(x * w)) over k in order (the js backend's) bit for bit",
    async (build) => {
      const k = await instantiateBuild(build);
      for (const [K, N] of [
        [300, 61],
        [512, 40],
        [516, 36],
        [1100, 44],
        [1100, 130],
        [2051, 29],
        [64, 1000],
        [7, 3],
      ]) {
        const M = 13;
        const r = rng(K * 7 + N);
        const al = (a: number) => (a + 63) & ~63;
        const x = al(k.heapBase()),
          w = al(x + 4 * M * K),
          p = al(w + 4 * N * K),
          y0 = al(p + k.packedBytes(K, N)),
          y1 = al(y0 + 4 * M * N),
          xq = al(y1 + 4 * M * N),
          end = xq + k.productScratchBytes(0, M, K);
        if (end > k.memory.buffer.byteLength) k.memory.grow(Math.ceil((end - k.memory.buffer.byteLength) / 65536));
        const f = new Float32Array(k.memory.buffer);
        for (let i = 0; i < M * K; i++) f[x / 4 + i] = r() * 2 - 1;
        for (let i = 0; i < N * K; i++) f[w / 4 + i] = r() * 2 - 1;
        k.packPanels(p, w, K, N);
        if (build === "simd") {
          // The order of assembly/gemm.ts with mul-then-add: one product and one sum per k, each rounded to f32.
          k.gemm(y0, x, w, 0, M, K, N, 0, N);
          const want = new Float32Array(M * N);
          for (let m = 0; m < M; m++) {
            for (let n = 0; n < N; n++) {
              let acc = 0;
              for (let i = 0; i < K; i++) acc = Math.fround(acc + Math.fround(f[x / 4 + m * K + i] * f[w / 4 + n * K + i]));
              want[m * N + n] = acc;
            }
          }
          expectBitExact(new Float32Array(k.memory.buffer, y0, M * N), want, `K=${K} N=${N}: the unpacked kernel against the sequence`);
        }
        for (let m = 1; m <= M; m++) {
          k.gemm(y0, x, w, 0, m, K, N, 0, N);
          // Column ranges in multiples of 4, as the thread pool hands them out.
          for (const cut of [0, 4 * Math.floor(N / 8), N]) {
            // NaN first, so a column the packed kernel leaves unwritten cannot pass on an earlier split's value.
            new Float32Array(k.memory.buffer, y1, m * N).fill(Number.NaN);
            if (cut > 0) k.gemm(y1, x, w, p, m, K, N, 0, cut);
            if (cut < N) k.gemm(y1, x, w, p, m, K, N, cut, N);
            const a = new Float32Array(k.memory.buffer, y0, m * N),
              b = new Float32Array(k.memory.buffer, y1, m * N);
            expectBitExact(b, a, `K=${K} N=${N} M=${m} split at ${cut}`);
          }
          // The backend's entry: three or more rows go as quads and a triple interleaved into xq first.
          new Float32Array(k.memory.buffer, y1, m * N).fill(Number.NaN);
          k.product(0, 1, 0, y1, x, w, p, xq, m, K, N);
          expectBitExact(new Float32Array(k.memory.buffer, y1, m * N), new Float32Array(k.memory.buffer, y0, m * N), `K=${K} N=${N} M=${m} through product`);
        }
      }
    },
  );
});

describe("panels in place", () => {
  it.each(["relaxed", "simd"] as const)("BACKEND-PANELS-IN-PLACE (%s): packPanelsInPlace leaves packPanels' bytes where the rows lay, unpackPanelsInPlace gives the rows back bit for bit (NaN payloads and signed zeros included), and embeddingPanels reads every row from the panels, for K % 4 = 0..3", async (build) => {
    const k = await instantiateBuild(build);
    for (const [K, N] of [
      [8, 4],
      [13, 8],
      [290, 12],
      [771, 36],
      [1, 4],
    ]) {
      const r = rng(K * 31 + N);
      const al = (a: number) => (a + 63) & ~63;
      const w = al(k.heapBase()),
        p = al(w + 4 * N * K),
        scratch = al(p + k.packedBytes(K, N)),
        ids = al(scratch + k.inPlaceScratchBytes(K)),
        y0 = al(ids + 4 * N),
        y1 = al(y0 + 4 * N * K),
        end = y1 + 4 * N * K;
      if (end > k.memory.buffer.byteLength) k.memory.grow(Math.ceil((end - k.memory.buffer.byteLength) / 65536));
      const u = new Uint32Array(k.memory.buffer);
      const specials = [0x7fc00001, 0xffc12345, 0x80000000, 0x00000000, 0x7f800000, 0x00000001];
      for (let i = 0; i < N * K; i++) u[w / 4 + i] = r() < 0.1 ? specials[i % specials.length] : (r() * 2 ** 32) >>> 0;
      const rows = u.slice(w / 4, w / 4 + N * K);
      k.packPanels(p, w, K, N);
      k.packPanelsInPlace(w, K, N, scratch);
      const v = new Uint32Array(k.memory.buffer);
      expect(Array.from(v.subarray(w / 4, w / 4 + N * K))).toEqual(Array.from(v.subarray(p / 4, p / 4 + N * K)));
      // Every row, in a scrambled order, from the panels: the rows' bits.
      const order = Array.from({ length: N }, (_, i) => (i * 7 + 3) % N);
      new Int32Array(k.memory.buffer, ids, N).set(order);
      k.embeddingPanels(y0, w, ids, N, K);
      const got = new Uint32Array(k.memory.buffer, y0, N * K);
      for (let m = 0; m < N; m++) expect(Array.from(got.subarray(m * K, m * K + K))).toEqual(Array.from(rows.subarray(order[m] * K, order[m] * K + K)));
      k.unpackPanelsInPlace(w, K, N, scratch);
      expect(Array.from(new Uint32Array(k.memory.buffer, w, N * K))).toEqual(Array.from(rows));
    }
  });

  it("BACKEND-PANELS-IN-PLACE: an f32 matmul weight with N a multiple of 4 takes no second copy, and everything that reads or writes its rows (download, copy, a partial upload, rmsnorm, embedding, a matmul taking it as x or y) sees them as a backend without in-place panels would: the results equal the js backend's", async () => {
    const b = await createWasmBackend({ wasmBuild: relaxedOk ? "relaxed" : "simd" });
    const K = 24,
      N = 16,
      r = rng(5);
    const wData = Float32Array.from({ length: N * K }, () => r() * 2 - 1),
      xData = Float32Array.from({ length: 3 * K }, () => r() * 2 - 1);
    const js = new JsBackend();
    const W = up(b, wData),
      X = up(b, xData),
      Y = b.alloc(3 * N);
    // A larger weight first: its panels take the rows' place; only the packing's scratch (K * 16 bytes and up) may be new, never the weight's 64 KiB again.
    const big = up(
        b,
        Float32Array.from({ length: 256 * 64 }, () => r() - 0.5),
      ),
      bx = up(
        b,
        Float32Array.from({ length: 64 }, () => r() - 0.5),
      ),
      by = b.alloc(256);
    const before = b.liveBytes;
    b.matmul(by, bx, big, 1, 64, 256);
    expect(b.liveBytes - before).toBeLessThan(16 * 1024);
    b.matmul(Y, X, W, 3, K, N);
    const want = runMatmul(js, xData, wData, 3, K, N);
    expectBitExact(b.download(Y), runMatmul(b, xData, wData, 3, K, N), "matmul on in-place panels against a fresh weight");
    expectClose(b.download(Y), want, (i) => matmulTol(K) * absDot(xData, wData, Math.floor(i / N), i % N, K), "matmul against js");
    // Reads of its rows.
    expectBitExact(b.download(W), wData, "download after packing");
    // A download reads the rows out of the panels and leaves them where they are (no packing again at the next matmul); any range, as downloadInto.
    const inPlace = (w: unknown): boolean => (w as { panelsInPlace: boolean }).panelsInPlace;
    expect(inPlace(W)).toBe(true);
    for (const [o, n] of [
      [0, 1],
      [5, 30],
      [K - 1, 2],
      [4 * K + 3, 3 * K],
      [N * K - 7, 7],
      [0, N * K],
    ]) {
      expectBitExact(b.download(W, o, n), wData.subarray(o, o + n), `download(W, ${o}, ${n}) from its panels`);
      const into = new Float32Array(n);
      b.downloadInto(W, into, o);
      expectBitExact(into, wData.subarray(o, o + n), `downloadInto at ${o}, ${n} from its panels`);
    }
    expect(inPlace(W)).toBe(true);
    b.matmul(Y, X, W, 3, K, N);
    expectBitExact(b.download(Y), runMatmul(b, xData, wData, 3, K, N), "matmul on the panels a download left");
    b.matmul(Y, X, W, 3, K, N); // packed again
    const C = b.alloc(N * K);
    b.copy(C, 0, W, 0, N * K);
    expectBitExact(b.download(C), wData, "copy from a packed weight");
    b.matmul(Y, X, W, 3, K, N);
    const ids = up(b, Int32Array.from([5, 0, 15, 7]), "i32"),
      E = b.alloc(4 * K);
    b.embedding(E, W, ids, 4, K);
    expectBitExact(b.download(E), Float32Array.from([5, 0, 15, 7].flatMap((id) => Array.from(wData.subarray(id * K, id * K + K)))), "embedding rows from a packed table");
    const G = up(
        b,
        Float32Array.from({ length: K }, () => r() + 0.5),
      ),
      R = b.alloc(N * K);
    b.rmsnorm(R, W, G, N, K, 1e-5);
    const Rjs = js.alloc(N * K);
    js.rmsnorm(Rjs, up(js, wData), up(js, b.download(G)), N, K, 1e-5);
    expectBitExact(b.download(R), js.download(Rjs), "rmsnorm reading a packed weight's rows");
    // A weight that is also x (16 rows of 24 times itself^T): its rows, not its panels.
    b.matmul(Y, X, W, 3, K, N);
    const Z = b.alloc(N * N);
    b.matmul(Z, W, W, N, K, N);
    expectBitExact(b.download(Z), runMatmul(b, wData, wData, N, K, N), "W W^T with W packed before");
    // A partial write, then a matmul: the new rows.
    b.matmul(Y, X, W, 3, K, N);
    const patch = Float32Array.from({ length: K }, () => r() * 4 - 2);
    b.upload(W, patch, 3 * K);
    const w2 = wData.slice();
    w2.set(patch, 3 * K);
    expectBitExact(b.download(W), w2, "a partial upload into a packed weight");
    b.matmul(Y, X, W, 3, K, N);
    expectBitExact(b.download(Y), runMatmul(b, xData, w2, 3, K, N), "matmul after the partial upload");
    // As the output of a matmul: written as rows.
    b.matmul(Y, X, W, 3, K, N);
    const sq = b.alloc(K * K),
      sqData = Float32Array.from({ length: K * K }, () => r() - 0.5);
    b.upload(sq, sqData);
    const sData = Float32Array.from({ length: K * K }, () => r() - 0.5),
      S = up(b, sData);
    b.matmul(Y, X, S, 3, K, N); // S packed in place as a [N, K] weight (its first N rows)
    expect(inPlace(S)).toBe(true);
    expectBitExact(b.download(S, N * K - 5, 10), sData.subarray(N * K - 5, N * K + 5), "a range across the end of the panels (rows after them as they were)");
    expectBitExact(b.download(S), sData, "a buffer longer than its panels");
    b.matmul(S, sq, sq, K, K, K); // S (packed as a weight above) is now y
    expectBitExact(b.download(S), runMatmul(b, sqData, sqData, K, K, K), "a packed weight overwritten as a matmul's y");
    b.free(W);
    b.free(S);
    b.dispose();
  });
});

describe("the sampling kernel's exp", () => {
  it.each(["relaxed", "simd"] as const)("BACKEND-EXPF (%s): the kernel's exp equals fround(Math.exp(x)) bit for bit on 4 million float32 arguments (dense near 0, over (-87, 0], around the underflow cut and outside it)", async (build) => {
    const k = await instantiateBuild(build);
    const n = 1 << 20;
    const base = (k.heapBase() + 63) & ~63;
    const need = base + 8 * n - k.memory.buffer.byteLength;
    if (need > 0) k.memory.grow(Math.ceil(need / 65536));
    const r = rng(build === "relaxed" ? 11 : 12);
    const draws: (() => number)[] = [() => -r() * 87, () => -r() * 0.01, () => -r() * 120, () => (r() * 2 - 1) * 3];
    for (const draw of draws) {
      const x = new Float32Array(k.memory.buffer, base, n);
      for (let i = 0; i < n; i++) x[i] = draw();
      x[0] = 0;
      x[1] = -0;
      x[2] = Number.NEGATIVE_INFINITY;
      x[3] = Math.fround(-87);
      // Around the underflow cut (exp(x) < 2^-150 rounds to 0 below -104) and a vector of four such lanes.
      [-103.97207, -103.9721, -104, Math.fround(-104.00001), -105, -200, -1e30, Number.NEGATIVE_INFINITY].forEach((v, j) => (x[4 + j] = v));
      k.expRows(base + 4 * n, base, n);
      const y = new Float32Array(k.memory.buffer, base + 4 * n, n);
      for (let i = 0; i < n; i++) {
        const want = Math.fround(Math.exp(x[i]));
        if (!Object.is(y[i], want)) expect.fail(`exp(${x[i]}): kernel ${y[i]}, fround(Math.exp) ${want}`);
      }
    }
  });
});

describe("the pick kernel", () => {
  it.each(["relaxed", "simd"] as const)(
    "BACKEND-PICK-PEAKED (%s): on 32,000-token rows shaped like a language model's (one or a few tokens far above the rest, where the kernel passes over the negligible groups), flat ones, spiked ones and a widened model's, at T 0.05 to 3, pick equals the host's sampleToken for random u's, u's on bin edges and u = 1 - 2^-53",
    async (build) => {
      const b = await createWasmBackend({ wasmBuild: build, threads: 1 });
      const r = rng(build === "relaxed" ? 31 : 32);
      const gauss = () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
      const N = 32000;
      let picks = 0;
      try {
        for (let row = 0; row < 30; row++) {
          const kind = row % 5,
            T = [0.05, 0.28, 0.7, 1, 1.5, 3][Math.floor(r() * 6)];
          // Kind 4: a widened model's row (ptp/widen.ts), 512 real tokens and the rest far below, where whole groups are passed over before dividing.
          const x = Float32Array.from({ length: N }, (_, i) => (kind === 0 ? (r() * 2 - 1) * 12 : kind === 1 ? (r() < 0.01 ? 20 + 8 * r() : 3 * gauss()) : kind === 2 ? (i % 97 === 0 ? 30 : gauss() - 5) : kind === 3 ? gauss() * 0.01 : i < 512 ? 3 * gauss() : -1e4 - i));
          const probs = samplingDistribution(x, { temperature: T });
          const us = [r(), 1 - 2 ** -53, ...[0, 1, 2, 3].map((k) => binOf(probs, Math.floor(r() * N))[k % 2]).filter((u) => u < 1)];
          const buf = b.alloc(N);
          b.upload(buf, x);
          for (const u of us) {
            const [got] = b.pick(buf, 0, 1, N, T, [u]);
            expect(got, `row kind ${kind}, T ${T}, u ${u}`).toBe(sampleToken(x, { temperature: T }, u));
            picks++;
          }
          b.free(buf);
        }
      } finally {
        b.dispose();
      }
      expect(picks).toBeGreaterThan(100);
    },
  );
});
