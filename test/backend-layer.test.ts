import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BackendError, type Backend } from "../src/backends/backend.js";
import { createWasmBackend, type WasmBackend } from "../src/backends/wasm/index.js";
import type { Block } from "../src/model/block.js";
import type { ModelConfig } from "../src/model/config.js";
import { randomCheckpoint } from "../src/model/init.js";
import { Transformer } from "../src/model/transformer.js";
import type { Checkpoint } from "../src/model/weights.js";

/*
 * BACKEND-LAYER: the wasm backend's fused decoderLayer gives the bits of the
 * op-by-op layer (the model on the same backend with the fused op hidden),
 * for every row count, mask kind (causal, dense, sparse), weight type and
 * thread count, with grouped-query heads; and it checks its operands like
 * the ops do.
 */

/** `b` without its fused layer op: the model then runs each layer op by op. */
function opByOp(b: Backend): Backend {
  return new Proxy(b, { get: (t, p) => (p === "decoderLayer" ? undefined : Reflect.get(t, p, t)) });
}

function firstBitDifference(a: Float32Array, b: Float32Array): string | null {
  if (a.length !== b.length) return `lengths differ: ${a.length} vs ${b.length}`;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return `element ${i}: ${a[i]} vs ${b[i]}`;
  return null;
}

const config: ModelConfig = { dim: 128, hiddenDim: 344, nLayers: 2, nHeads: 8, nKvHeads: 2, vocabSize: 300, seqLen: 96, sharedClassifier: false, normEps: 1e-5, ropeTheta: 10000 };
/** Column counts that are not multiples of 4 (k and v 6 wide, hidden 342): where q, k and v share one threaded job, k and v start at rounded-up columns. */
const oddConfig: ModelConfig = { ...config, dim: 132, hiddenDim: 342, nHeads: 22, nKvHeads: 1, vocabSize: 301 };

/** A random checkpoint whose norm weights differ per layer and sublayer (a random checkpoint starts them all at 1). */
function layerCheckpoint(c: ModelConfig, seed: number): Checkpoint {
  const ck = randomCheckpoint(c, seed);
  for (const [l, layer] of ck.weights.layers.entries()) {
    for (let i = 0; i < c.dim; i++) {
      layer.rmsAtt[i] = 0.5 + ((i * 7 + l * 3) % 11) / 10;
      layer.rmsFfn[i] = 0.5 + ((i * 5 + l * 2 + 4) % 13) / 12;
    }
  }
  return ck;
}
const ckpt = layerCheckpoint(config, 11),
  oddCkpt = layerCheckpoint(oddConfig, 12);

/** A sequence of forward calls: prefill, single rows, a causal block, a dense-masked and a sparse-masked block (PTP's shapes), a long block. */
function calls(): Block[] {
  const dense = new Uint8Array(3 * 12);
  for (let m = 0; m < 3; m++) for (let j = 0; j < 12; j++) dense[m * 12 + j] = j < 9 || j === 9 + m ? 1 : 0; // each row: the 9 cached rows and itself
  const sparse = { offsets: Int32Array.from([0, 2, 4, 7]), keys: Int32Array.from([0, 12, 5, 13, 1, 2, 14]) };
  const long = Array.from({ length: 50 }, (_, i) => (i * 37 + 3) % 300);
  return [
    { tokens: [1, 5, 9, 200, 7], positions: [0, 1, 2, 3, 4] },
    { tokens: [11], positions: [5] },
    { tokens: [12, 13, 14], positions: [6, 7, 8] },
    { tokens: [20, 21, 22], positions: [9, 9, 10], mask: dense },
    { tokens: [30, 31, 32], positions: [12, 13, 13], visible: sparse },
    { tokens: long, positions: long.map((_, i) => 15 + i) },
    { tokens: [40], positions: [65] },
  ];
}

function logitsOf(b: Backend, ck: Checkpoint): Float32Array[] {
  const model = new Transformer(b, ck);
  const cache = model.newCache();
  const out = calls().map((block) => model.forward(block, cache));
  model.dispose();
  return out;
}

for (const build of ["relaxed", "simd"] as const) {
  describe(`fused decoder layer (${build} build)`, () => {
    const backends: WasmBackend[] = [];
    beforeAll(async () => {
      for (const weights of ["f32", "bf16", "int8"] as const) for (const threads of [1, 2]) backends.push(await createWasmBackend({ wasmBuild: build, threads, weights }));
    });
    afterAll(() => {
      for (const b of backends) b.dispose();
    });

    it("BACKEND-LAYER: every forward call's logits equal the op-by-op layer's bit for bit (f32, bf16, int8; 1 and 2 threads; causal, dense and sparse masks; widths that are and are not multiples of 4)", () => {
      for (const b of backends) {
        expect(typeof b.decoderLayer).toBe("function");
        for (const ck of [ckpt, oddCkpt]) {
          const before = b.threadedCalls;
          const fused = logitsOf(b, ck),
            ops = logitsOf(opByOp(b), ck);
          if (b.threads > 1) expect(b.threadedCalls).toBeGreaterThan(before);
          for (let i = 0; i < ops.length; i++) {
            const d = firstBitDifference(fused[i], ops[i]);
            if (d !== null) expect.fail(`${b.description}, ${b.threads} threads, dim ${ck.config.dim}, call ${i}: ${d}`);
          }
        }
      }
    });

    it("BACKEND-LAYER: bad operands are a BackendError naming the operand, and nothing is written", () => {
      const b = backends[0];
      const model = new Transformer(b, ckpt);
      const cache = model.newCache();
      model.forward({ tokens: [1, 2], positions: [0, 1] }, cache);
      const kv = 2 * 16;
      const a = {
        x: b.alloc(128),
        xb: b.alloc(128),
        xb2: b.alloc(128),
        q: b.alloc(128),
        k: b.alloc(kv),
        v: b.alloc(kv),
        att: b.alloc(128),
        hb: b.alloc(344),
        hb2: b.alloc(344),
        positions: b.alloc(1, "i32"),
      };
      const w = Object.fromEntries(["rmsAtt", "rmsFfn", "wq", "wk", "wv", "wo", "w1", "w2", "w3"].map((n) => [n, b.alloc(n.startsWith("rms") ? 128 : n === "wk" || n === "wv" ? kv * 128 : n === "wq" || n === "wo" ? 128 * 128 : 344 * 128)])) as never;
      const shape = { dim: 128, hiddenDim: 344, nHeads: 8, nKvHeads: 2, headSize: 16, ropeTheta: 10000, normEps: 1e-5 };
      const keys = b.alloc(4 * kv),
        values = b.alloc(4 * kv);
      b.upload(a.x, new Float32Array(128).fill(0.5));
      const short = b.alloc(100);
      expect(() => b.decoderLayer(a, w, keys, values, 0, 1, {}, shape)).not.toThrow();
      const x = b.download(a.x);
      expect(() => b.decoderLayer({ ...a, hb: short }, w, keys, values, 1, 1, {}, shape)).toThrow(BackendError);
      expect(() => b.decoderLayer({ ...a, hb: short }, w, keys, values, 1, 1, {}, shape)).toThrow(/decoderLayer hb/);
      expect(() => b.decoderLayer(a, { ...(w as object), w2: short } as never, keys, values, 1, 1, {}, shape)).toThrow(/decoderLayer w2/);
      expect(() => b.decoderLayer(a, w, keys, values, 4, 1, {}, shape)).toThrow(/decoderLayer keys/);
      expect(() => b.decoderLayer(a, w, keys, values, 1, 1, {}, { ...shape, headSize: 15 })).toThrow(/headSize/);
      expect(() => b.decoderLayer(a, w, keys, values, 1, 1, {}, { ...shape, nKvHeads: 3 })).toThrow(/nKvHeads/);
      expect(() => b.decoderLayer(a, w, keys, values, 1, 1.5, {}, shape)).toThrow(/M must be a non-negative integer/);
      const noKey = b.alloc(2, "u8");
      expect(() => b.decoderLayer(a, w, keys, values, 1, 1, { dense: noKey }, shape)).toThrow(/row 0 sees no key/);
      expect(Array.from(b.download(a.x))).toEqual(Array.from(x)); // the failed calls wrote nothing
      for (const buf of [...Object.values(a), ...Object.values(w as object), keys, values, short, noKey]) b.free(buf as never);
      model.dispose();
    });
  });
}
