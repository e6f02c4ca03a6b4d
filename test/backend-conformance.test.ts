import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import * as core from "../src/index.js";
import { BackendError, type Backend } from "../src/backends/backend.js";
import { JsBackend } from "../src/backends/js/index.js";
import { withPoisonedKeys } from "../src/backends/conformance.js";
import { createBackend } from "../src/backends/registry.js";
import { readCheckpoint } from "../src/io/checkpoint.js";
import { Tokenizer } from "../src/io/tokenizer.js";
import { Transformer } from "../src/model/transformer.js";
import { decodeAR } from "../src/ptp/decode/decode-ar.js";
import { decode, type DecoderName } from "../src/ptp/decode/run.js";
import { PtpModel } from "../src/ptp/ptp-model.js";
import { ArrayAux } from "../src/sampling/aux.js";
import { createCudaBackend, cudaStatus, registerCudaBackend } from "../packages/backend-cuda/index.js";
import { hostCudaAddon } from "./cuda-host-addon.js";
import { absDot, attentionRow, attentionTol, expectBitExact, expectClose, matmulTol, randF32, randomAttention, runAdd, runAttention, runCopy, runEmbedding, runMatmul, runRmsnorm, runRope, runSoftmax, runSwiglu, rowsCase, matmulCase, swigluCase } from "./backend-ops.js";
import { backend, GOLDEN, goldenText, STORIES_260K, TOK_512, type GoldenCase } from "./helpers.js";
import { caseArb, makeStudent, studentSpecArb, uniformUs } from "./ptp-helpers.js";

/**
 * BACKEND-CONFORMANCE: one suite that every backend runs (spec/backend.md,
 * spec/backend-cuda.md): each op against the js reference within the stated
 * tolerances (test/backend-ops.ts), batch invariance bit for bit per op, the
 * error contract, llama2.c's golden outputs through decodeAR, and PTP
 * decoders equal to AR with a random student.
 *
 * js, wasm and wasm-simd already run the deep versions of these properties
 * (backend-wasm, model-batch-invariance, golden, ptp-decoders), so they run a
 * light pass here. cuda runs it when packages/backend-cuda/build/ptp_cuda.node
 * is built and sees a device; otherwise its block is reported as SKIPPED with
 * the reason in its title (it never passes vacuously: the suite checks that
 * the backend it got really is cuda). "cuda-wrapper" runs the plug-in's
 * JavaScript side over a host stand-in of the addon, so the wrapper is tested
 * on machines without a GPU too.
 *
 * The op-level cases overlap the library's runBackendConformance checks
 * (src/backends/conformance.ts, run in test/backend-conformance-export.test.ts)
 * and share its op runners and problem generators (test/backend-ops.ts); they
 * stay as fast-check properties here for shrinking, fresh seeds per run and
 * per-target run counts, which runBackendConformance (no per-check filter,
 * one seeded generator) does not give.
 */

registerCudaBackend(core);
const cuda = cudaStatus();
const cudaReady = cuda.built && cuda.deviceCount > 0;

interface Target {
  label: string;
  title: string;
  skip: boolean;
  /** fast-check runs per property. */
  runs: number;
  /** Golden cases to run (indices into the golden file). */
  golden: number[];
  get: () => Promise<Backend>;
  expectName: string;
}

let cudaInstance: Promise<Backend> | null = null;
let hostInstance: Promise<Backend> | null = null;
const TARGETS: Target[] = [
  { label: "js", title: "js", skip: false, runs: 5, golden: [2], get: () => backend("js"), expectName: "js" },
  { label: "wasm", title: "wasm", skip: false, runs: 8, golden: [2, 4], get: () => backend("wasm"), expectName: "wasm" },
  { label: "wasm-simd", title: "wasm-simd", skip: false, runs: 8, golden: [2], get: () => backend("wasm-simd"), expectName: "wasm" },
  // The plug-in's JavaScript side over a host stand-in of its addon (test/cuda-host-addon.ts): runs everywhere.
  { label: "cuda-wrapper", title: "cuda plug-in wrapper over a host stand-in addon", skip: false, runs: 5, golden: [2], get: () => (hostInstance ??= createCudaBackend(core, { cudaAddon: hostCudaAddon() })), expectName: "cuda" },
  {
    label: "cuda",
    title: cudaReady ? `cuda (${cuda.deviceName})` : `cuda: skipped — ${cuda.built ? cuda.reason : `addon not built: ${cuda.reason}`}`,
    skip: !cudaReady,
    runs: 60,
    golden: [0, 1, 2, 3, 4, 5],
    get: () => (cudaInstance ??= createBackend("cuda")),
    expectName: "cuda",
  },
];

const js = new JsBackend();

const golden: { cases: GoldenCase[] } = JSON.parse(readFileSync(GOLDEN, "utf8"));

for (const t of TARGETS) {
  describe.skipIf(t.skip)(t.title, () => {
    const RUNS = { numRuns: t.runs };

    it("BACKEND-CONFORMANCE: the backend under test is the one named", async () => {
      const b = await t.get();
      expect(b.name).toBe(t.expectName);
      expect(b.description.length).toBeGreaterThan(0);
    });

    // ---- agreement with js ------------------------------------------------

    it("BACKEND-CONFORMANCE: matmul agrees with js within (1.25K + 8) u sum|x w| (all tile shapes)", async () => {
      const b = await t.get();
      const check = (M: number, K: number, N: number, seed: number) => {
        const { x, w } = matmulCase(M, K, N, seed);
        expectClose(runMatmul(b, x, w, M, K, N), runMatmul(js, x, w, M, K, N), (i) => matmulTol(K) * absDot(x, w, Math.floor(i / N), i % N, K), `matmul M=${M} K=${K} N=${N}`, t.label);
      };
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 80 }), fc.integer({ min: 1, max: 70 }), fc.integer(), (M, K, N, seed) => check(M, K, N, seed)),
        RUNS,
      );
      check(37, 301, 67, 1); // several K chunks, M past the small-M tiles, N past one column tile
    });

    it("BACKEND-CONFORMANCE: rmsnorm, rope, add, embedding and copy agree with js bit for bit", async () => {
      const b = await t.get();
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 12 }), fc.integer(), (M, nHeads, half, seed) => {
          const { r, headSize, D, x, g, y } = rowsCase(M, nHeads, half, seed, 3);
          expectBitExact(runRmsnorm(b, x, g, M, D, 1e-5), runRmsnorm(js, x, g, M, D, 1e-5), "rmsnorm");
          const pos = Int32Array.from({ length: M }, () => Math.floor(r() * 5000));
          expectBitExact(runRope(b, x, pos, M, nHeads, headSize, 10000), runRope(js, x, pos, M, nHeads, headSize, 10000), "rope");
          expectBitExact(runAdd(b, y, x, M * D), runAdd(js, y, x, M * D), "add");
          const rows = 5,
            table = randF32(rows * D, r);
          const ids = Int32Array.from({ length: M }, () => Math.floor(r() * (rows + 2)) - 2); // some negative
          expectBitExact(runEmbedding(b, y, table, ids, M, D), runEmbedding(js, y, table, ids, M, D), "embedding");
          const n = Math.floor(r() * D),
            so = Math.floor(r() * (M * D - n + 1)),
            dOff = Math.floor(r() * (M * D - n + 1));
          expectBitExact(runCopy(b, y, dOff, x, so, n), runCopy(js, y, dOff, x, so, n), "copy");
        }),
        RUNS,
      );
    });

    it("BACKEND-CONFORMANCE: swiglu and softmax agree with js within 1e-6 relative", async () => {
      const b = await t.get();
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 10 }), fc.integer({ min: 1, max: 300 }), fc.integer(), (M, N, seed) => {
          const { g, u } = swigluCase(M, N, seed);
          const a = runSwiglu(b, g, u),
            c = runSwiglu(js, g, u);
          expectClose(a, c, (i) => 1e-6 * Math.abs(c[i]) + 1e-12, "swiglu", t.label);
          const s = runSoftmax(b, g, M, N),
            z = runSoftmax(js, g, M, N);
          expectClose(s, z, (i) => 1e-6 * Math.abs(z[i]) + 1e-12, "softmax", t.label);
        }),
        RUNS,
      );
    });

    it("BACKEND-CONFORMANCE: attention agrees with js (causal and masked, MHA and GQA, long key lists)", async () => {
      const b = await t.get();
      const check = (c: ReturnType<typeof randomAttention>) => expectClose(runAttention(b, c), runAttention(js, c), () => attentionTol(c.headSize), `attention M=${c.M} nKeys=${c.nKeys} hs=${c.headSize}`, t.label);
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 0, max: 12 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 19 }), fc.boolean(), fc.integer(), (M, extra, nKv, group, hs, masked, seed) => check(randomAttention(seed, M, extra, nKv, group, hs, masked))),
        RUNS,
      );
      check(randomAttention(3, 3, 297, 2, 2, 16, false)); // more keys than a block has threads
      check(randomAttention(4, 5, 200, 1, 4, 130, true)); // head size above the block size
    });

    // ---- batch invariance (bit-exact) -------------------------------------

    it("BACKEND-CONFORMANCE: matmul rows are batch-invariant across every M (and tile shape)", async () => {
      const b = await t.get();
      const check = (M: number, K: number, N: number, seed: number) => {
        const { x, w } = matmulCase(M, K, N, seed);
        const all = runMatmul(b, x, w, M, K, N);
        for (let m = 0; m < M; m++) expectBitExact(all.subarray(m * N, (m + 1) * N), runMatmul(b, x.slice(m * K, (m + 1) * K), w, 1, K, N), `matmul row ${m} of M=${M} K=${K} N=${N}`);
        for (const [from, to] of [
          [1, M - 1],
          [0, 2],
          [M - 5, M],
        ]) {
          if (from < 0 || to <= from || to > M) continue;
          expectBitExact(all.subarray(from * N, to * N), runMatmul(b, x.slice(from * K, to * K), w, to - from, K, N), `matmul rows ${from}..${to - 1} of ${M}`);
        }
      };
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 80 }), fc.integer({ min: 1, max: 40 }), fc.integer(), (M, K, N, seed) => check(M, K, N, seed)),
        RUNS,
      );
      check(70, 257, 33, 5); // large-M tiles vs one row vs sub-batches
    });

    it("BACKEND-CONFORMANCE: rmsnorm, rope, swiglu, softmax, add, embedding rows are batch-invariant", async () => {
      const b = await t.get();
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 20 }), fc.integer(), (M, nHeads, half, seed) => {
          const { r, headSize, D, x, g, y: u } = rowsCase(M, nHeads, half, seed, 4);
          const pos = Int32Array.from({ length: M }, () => Math.floor(r() * 3000));
          const table = randF32(4 * D, r),
            ids = Int32Array.from({ length: M }, () => Math.floor(r() * 5) - 1);
          const norm = runRmsnorm(b, x, g, M, D, 1e-6),
            rot = runRope(b, x, pos, M, nHeads, headSize, 500000);
          const sw = runSwiglu(b, x, u),
            sm = runSoftmax(b, x, M, D),
            ad = runAdd(b, u, x, M * D),
            em = runEmbedding(b, u, table, ids, M, D);
          for (let m = 0; m < M; m++) {
            const xr = x.slice(m * D, (m + 1) * D),
              ur = u.slice(m * D, (m + 1) * D),
              row = (a: Float32Array) => a.subarray(m * D, (m + 1) * D);
            expectBitExact(row(norm), runRmsnorm(b, xr, g, 1, D, 1e-6), `rmsnorm row ${m}`);
            expectBitExact(row(rot), runRope(b, xr, pos.slice(m, m + 1), 1, nHeads, headSize, 500000), `rope row ${m}`);
            expectBitExact(row(sw), runSwiglu(b, xr, ur), `swiglu row ${m}`);
            expectBitExact(row(sm), runSoftmax(b, xr, 1, D), `softmax row ${m}`);
            expectBitExact(row(ad), runAdd(b, ur, xr, D), `add row ${m}`);
            expectBitExact(row(em), runEmbedding(b, ur, table, ids.slice(m, m + 1), 1, D), `embedding row ${m}`);
          }
        }),
        RUNS,
      );
    });

    it("BACKEND-CONFORMANCE: attention rows equal the row alone with the same visible keys; masked-out NaN keys change nothing", async () => {
      const b = await t.get();
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 0, max: 10 }), fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 18 }), fc.boolean(), fc.integer(), (M, extra, nKv, group, hs, masked, seed) => {
          const c = randomAttention(seed, M, extra, nKv, group, hs, masked);
          const all = runAttention(b, c);
          const width = c.nHeads * hs;
          for (let m = 0; m < M; m++) expectBitExact(all.subarray(m * width, (m + 1) * width), runAttention(b, attentionRow(c, m)), `attention row ${m} of ${M}`);
          // The same problem with poisoned keys appended, which an explicit mask hides from every row.
          expectBitExact(runAttention(b, withPoisonedKeys(c)), all, "poisoned masked-out keys");
        }),
        RUNS,
      );
    });

    // ---- the error contract -------------------------------------------------

    it("BACKEND-CONFORMANCE: misuse throws BackendError (after free, dtype, range, foreign buffer, ids, no visible key)", async () => {
      const b = await t.get();
      const f = b.alloc(8),
        i = b.alloc(8, "i32"),
        u = b.alloc(8, "u8"),
        dead = b.alloc(8);
      b.free(dead);
      expect(() => b.download(dead)).toThrow(BackendError);
      expect(() => b.free(dead)).toThrow(BackendError);
      expect(() => b.add(f, dead, 8)).toThrow(BackendError);
      expect(() => b.rope(f, f, 1, 1, 2, 10000)).toThrow(/i32/);
      expect(() => b.copy(f, 0, i, 0, 1)).toThrow(BackendError);
      expect(() => b.upload(f, new Float32Array(9))).toThrow(BackendError);
      expect(() => b.download(f, 4, 5)).toThrow(BackendError);
      // Every backend, the js reference included, checks the spans of every op and rejects foreign buffers.
      expect(() => b.add(f, f, 9)).toThrow(BackendError);
      expect(() => b.matmul(f, f, f, 3, 3, 3)).toThrow(BackendError);
      expect(() => b.add(f, js.alloc(8), 8)).toThrow(BackendError);
      b.upload(i, Int32Array.from([0, -1, 4, 0, 0, 0, 0, 0]));
      expect(() => b.embedding(f, f, i, 3, 2)).toThrow(/outside/);
      b.upload(u, Uint8Array.from([1, 1, 0, 0, 1, 0, 0, 0]));
      expect(() => b.attention(f, f, f, f, u, 2, 2, 1, 1, 2)).toThrow(/sees no key/);
      expect(() => b.attention(f, f, f, f, null, 3, 2, 1, 1, 1)).toThrow(/sees no key/);
      expect(Array.from(b.download(i, 0, 3))).toEqual([0, -1, 4]);
      for (const x of [f, i, u]) b.free(x);
    });

    // ---- model level ----------------------------------------------------------

    it("BACKEND-CONFORMANCE: llama2.c's golden outputs through decodeAR", async () => {
      const b = await t.get();
      const checkpoint = readCheckpoint(STORIES_260K);
      const tokenizer = Tokenizer.load(TOK_512, checkpoint.config.vocabSize);
      for (const k of t.golden) {
        const c = golden.cases[k];
        const model = new Transformer(b, checkpoint);
        const text = goldenText(model, tokenizer, c);
        model.dispose();
        expect(text, `golden case ${k}`).toBe(c.output);
      }
    });

    it("BACKEND-CONFORMANCE: PTP decoders with a random student equal AR sampling with the same u's", async () => {
      const b = await t.get();
      fc.assert(
        fc.property(caseArb, studentSpecArb(), fc.constantFrom<DecoderName>("verify", "single-call", "multi-draft"), fc.integer({ min: 1, max: 6 }), (c, s, decoder, window) => {
          const teacher = new Transformer(b, c.teacher);
          try {
            const us = c.prompts.map((_, i) => uniformUs(c.uSeed + i));
            const ar = c.prompts.map((p, i) => decodeAR(teacher, p, { steps: c.steps, sampling: c.sampling, aux: new ArrayAux(us[i]) }).tokens);
            const model = new PtpModel(teacher, makeStudent(c.teacher, s));
            const out = decode(model, c.prompts, { decoder, window, budget: 8, drafts: 2, steps: c.steps, sampling: c.sampling, aux: us.map((u) => new ArrayAux(u)) });
            model.dispose();
            out.outputs.forEach((o, i) => expect(o, `prompt ${i}`).toEqual(ar[i]));
          } finally {
            teacher.dispose();
          }
        }),
        { numRuns: Math.max(3, Math.ceil(t.runs / 2)) },
      );
    });
  });
}
