import { describe, expect, it } from "vitest";
import type { WeightType } from "../src/backends/backend.js";
import { createBackend } from "../src/backends/registry.js";
import { createWasmBackend, type WasmBackend } from "../src/backends/wasm/index.js";
import { readCheckpoint } from "../src/io/checkpoint.js";
import { Transformer } from "../src/model/transformer.js";
import { matmulCase, runMatmul, up } from "./backend-ops.js";
import { firstBitDifference, STORIES_260K } from "./helpers.js";

/*
 * BACKEND-WEIGHT-TYPE: Backend.setWeightType makes matmul read one buffer in
 * another weight type than the backend's own. Its products are bit for bit
 * those of a backend whose own type that is (on one thread and on two), the
 * panels follow the type when it changes, and decoderLayer refuses a layer
 * weight of another type. A Transformer's classifierWeights option uses it.
 */

/** Shapes across the kernels' cases: K below, at and past an int8 group, N past a tile, rows alone and in quads. */
const SHAPES: [number, number][] = [
  [80, 2050],
  [32, 40],
  [140, 97],
  [288, 768],
];
const ROWS = [1, 2, 3, 4, 5, 8, 9];

/** y = x W^T on `b` with w read in `type` (setWeightType), for one x. */
function matmulAs(b: WasmBackend, type: WeightType | undefined, x: Float32Array, w: Float32Array, M: number, K: number, N: number): Float32Array {
  const X = up(b, x),
    W = up(b, w),
    Y = b.alloc(M * N);
  if (type !== undefined) b.setWeightType(W, type);
  b.matmul(Y, X, W, M, K, N);
  const y = b.download(Y);
  for (const buf of [X, W, Y]) b.free(buf);
  return y;
}

for (const build of ["relaxed", "simd"] as const) {
  describe(`BACKEND-WEIGHT-TYPE (${build} build)`, () => {
    const make = (weights: WeightType, threads = 1) => createWasmBackend({ wasmBuild: build, weights, threads });

    it("a weight read in another type gives that type's backend's bits, rows and threads alike; a weight set to the backend's own type reads as before", async () => {
      const own = { f32: await make("f32"), bf16: await make("bf16"), int8: await make("int8") };
      const two = await make("f32", 2);
      let checked = 0;
      for (const [K, N] of SHAPES) {
        for (const M of ROWS) {
          const { x, w } = matmulCase(M, K, N, 1000 * K + 10 * M + N);
          const want = { f32: runMatmul(own.f32, x, w, M, K, N), bf16: runMatmul(own.bf16, x, w, M, K, N), int8: runMatmul(own.int8, x, w, M, K, N) };
          // The types do differ here, so the checks below can fail.
          expect(firstBitDifference(want.int8, want.f32)).not.toBeNull();
          for (const from of ["f32", "bf16", "int8"] as const) {
            for (const to of ["f32", "bf16", "int8"] as const) {
              const what = `${from} backend, w as ${to}, M ${M}, K ${K}, N ${N}`;
              expect(firstBitDifference(matmulAs(own[from], to, x, w, M, K, N), want[to]), what).toBeNull();
            }
          }
          for (const to of ["bf16", "int8"] as const) expect(firstBitDifference(matmulAs(two, to, x, w, M, K, N), want[to]), `2 threads, w as ${to}, M ${M}`).toBeNull();
          checked++;
        }
      }
      expect(checked).toBe(SHAPES.length * ROWS.length);
      expect(two.threadedCalls).toBeGreaterThan(0);
      for (const b of [...Object.values(own), two]) b.dispose();
    });

    it("the panels follow the type: a weight used, then set to another type and back, reads each type in turn", async () => {
      const b = await make("f32"),
        q = await make("int8");
      const M = 3,
        K = 96,
        N = 300;
      const { x, w } = matmulCase(M, K, N, 7);
      const X = up(b, x),
        W = up(b, w),
        Y = b.alloc(M * N);
      const run = () => (b.matmul(Y, X, W, M, K, N), b.download(Y));
      const f32 = run();
      b.setWeightType(W, "int8");
      expect(firstBitDifference(run(), runMatmul(q, x, w, M, K, N))).toBeNull();
      b.setWeightType(W, "f32");
      expect(firstBitDifference(run(), f32)).toBeNull();
      // An upload drops the panels; the type stays the buffer's.
      b.setWeightType(W, "int8");
      run();
      const w2 = w.map((v) => -v);
      b.upload(W, w2);
      expect(firstBitDifference(run(), runMatmul(q, x, w2, M, K, N))).toBeNull();
      b.dispose();
      q.dispose();
    });

    it("BACKEND-PANELS-KEPT: a bf16 or int8 weight's panels (its own memory) outlive reads of its rows: an embedding from the shared table, a download, a copy from it, an rmsnorm of it and a read-only hostView leave them (a view to write drops them), so the next matmul packs nothing (dropping them packed a shared classifier at every token: 21 tok/s at 15M)", async () => {
      const K = 48,
        N = 40;
      const w = Float32Array.from({ length: N * K }, (_, i) => Math.sin(i * 0.37) * 0.5),
        x = Float32Array.from({ length: K }, (_, i) => Math.cos(i * 0.11));
      for (const type of ["bf16", "int8"] as const) {
        for (const [label, b] of [
          ["backend's type", await make(type)],
          ["setWeightType", await make("f32")],
        ] as const) {
          const W = up(b, w),
            X = up(b, x),
            Y = b.alloc(N);
          if (label === "setWeightType") b.setWeightType(W, type);
          b.matmul(Y, X, W, 1, K, N);
          const want = b.download(Y);
          const panels = (W as unknown as { packedPtr: number }).packedPtr;
          expect(panels, `${type} ${label}: packed`).not.toBe(0);
          const E = b.alloc(2 * K),
            C = b.alloc(N * K),
            G = up(b, new Float32Array(K).fill(1)),
            R = b.alloc(N * K);
          b.embedding(E, W, up(b, Int32Array.from([3, 39]), "i32"), 2, K);
          expect(firstBitDifference(b.download(E), Float32Array.from([...w.subarray(3 * K, 4 * K), ...w.subarray(39 * K, 40 * K)]))).toBeNull();
          expect(firstBitDifference(b.download(W), w)).toBeNull();
          b.copy(C, 0, W, 0, N * K);
          b.rmsnorm(R, W, G, N, K, 1e-5);
          expect(firstBitDifference(b.hostView(W, "read"), w), `${type} ${label}: a read view`).toBeNull();
          expect((W as unknown as { packedPtr: number }).packedPtr, `${type} ${label}: the panels kept`).toBe(panels);
          b.matmul(Y, X, W, 1, K, N);
          expect(firstBitDifference(b.download(Y), want)).toBeNull();
          // A view the caller may write: the panels go, and the next matmul makes them again from the rows.
          b.hostView(W);
          expect((W as unknown as { packedPtr: number }).packedPtr, `${type} ${label}: a write view drops the panels`).toBe(0);
          b.matmul(Y, X, W, 1, K, N);
          expect(firstBitDifference(b.download(Y), want)).toBeNull();
          expect(() => b.hostView(W, "rw" as "read")).toThrow(/hostView: access must be "read" or "write", got "rw"/);
          b.dispose();
        }
      }
    });

    it("errors: an unknown type, a buffer that is not f32 and a layer weight of another type are refused by name", async () => {
      const b = await make("f32");
      const W = b.alloc(16),
        I = b.alloc(4, "i32");
      expect(() => b.setWeightType(W, "int4" as WeightType)).toThrow(/setWeightType: the type must be "f32", "bf16", "int8", got "int4"/);
      expect(() => b.setWeightType(I, "int8")).toThrow(/setWeightType: a matmul weight is an f32 buffer, got i32/);
      b.free(W);
      expect(() => b.setWeightType(W, "int8")).toThrow(/setWeightType: buffer used after free/);
      const ckpt = readCheckpoint(STORIES_260K);
      const t = new Transformer(b, ckpt);
      // The layer's wq, reached the way a backend user would not: through the model's weights.
      const layers = (t as unknown as { weights: { layers: { wq: ReturnType<typeof b.alloc> }[] } }).weights.layers;
      b.setWeightType(layers[1].wq, "bf16");
      expect(() => t.forward({ tokens: [1, 5], positions: [0, 1] }, t.newCache())).toThrow(/decoderLayer: wq reads as bf16 \(setWeightType\), but a layer's weights take the backend's type \(f32\)/);
      t.dispose();
      b.dispose();
    });
  });
}

describe("BACKEND-WEIGHT-TYPE: Transformer's classifierWeights", () => {
  it("reads the classifier alone in that type: the logits are those of the f32 layers with an int8 classifier", async () => {
    const ckpt = readCheckpoint(STORIES_260K);
    const f32 = await createWasmBackend({ threads: 1 }),
      int8 = await createWasmBackend({ threads: 1, weights: "int8" });
    const block = { tokens: [1, 403, 261, 378, 11], positions: [0, 1, 2, 3, 4] };
    const plain = new Transformer(f32, ckpt),
      cheap = new Transformer(f32, ckpt, { classifierWeights: "int8" });
    const logits = cheap.forward(block, cheap.newCache());
    plain.forward(block, plain.newCache());
    // The same hidden states, then the int8 backend's matmul of them with the classifier.
    const { dim, vocabSize: V, normEps } = ckpt.config;
    const hidden = plain.lastHidden();
    expect(firstBitDifference(cheap.lastHidden(), hidden)).toBeNull();
    const xb = f32.alloc(block.tokens.length * dim),
      h = up(f32, hidden),
      g = up(f32, ckpt.weights.rmsFinal);
    f32.rmsnorm(xb, h, g, block.tokens.length, dim, normEps);
    const want = runMatmul(int8, f32.download(xb), ckpt.weights.wcls, block.tokens.length, dim, V);
    expect(firstBitDifference(logits, want)).toBeNull();
    for (const t of [plain, cheap]) t.dispose();
    f32.dispose();
    int8.dispose();
  });

  it("a backend that reads every weight in f32 refuses another type by name, and takes f32; an unknown type is refused", async () => {
    const js = await createBackend("js");
    const ckpt = readCheckpoint(STORIES_260K);
    expect(() => new Transformer(js, ckpt, { classifierWeights: "int8" })).toThrow("classifier weights int8: the js backend reads every matmul weight in f32 (use the wasm backend)");
    new Transformer(js, ckpt, { classifierWeights: "f32" }).dispose();
    expect(() => new Transformer(js, ckpt, { classifierWeights: "fp8" as WeightType })).toThrow('Transformer: options.classifierWeights must be one of f32, bf16, int8, got "fp8"');
  });
});
