import { describe, expect, it } from "vitest";
import { BackendError } from "../src/backends/backend.js";
import { randomCheckpoint } from "../src/model/init.js";
import { KVCache } from "../src/model/kv-cache.js";
import { PtpModel } from "../src/ptp/ptp-model.js";
import { randomStudent } from "../src/ptp/init.js";
import { Tokenizer } from "../src/io/tokenizer.js";
import { Transformer } from "../src/model/transformer.js";
import { decodeAR } from "../src/ptp/decode/decode-ar.js";
import { XorShiftAux } from "../src/sampling/aux.js";
import { binOf } from "../src/sampling/pick.js";
import { backend, TOK_512 } from "./helpers.js";

const config = { dim: 8, hiddenDim: 12, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 16, seqLen: 16, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };

describe("library misuse gets a clear error, never a wrong answer", () => {
  it.each(["js", "wasm"] as const)("REL-API-BLOCK: embeddings or mask given as plain arrays are refused by name (%s)", async (name) => {
    const model = new Transformer(await backend(name), randomCheckpoint(config, 1));
    const cache = model.newCache();
    expect(() => model.forward({ tokens: [-1], positions: [0], embeddings: [0, 0, 0, 0, 0, 0, 0, 0] as unknown as Float32Array }, cache)).toThrow(/embeddings must be a Float32Array/);
    expect(() => model.forward({ tokens: [1], positions: [0], mask: [1] as unknown as Uint8Array }, cache)).toThrow(/mask must be a Uint8Array/);
    model.dispose();
  });

  it("REL-API-BACKEND: the js reference enforces the buffer contract as wasm does: a truncated weight buffer throws, on both", async () => {
    for (const name of ["js", "wasm"] as const) {
      const b = await backend(name);
      const y = b.alloc(2 * 3),
        x = b.alloc(2 * 4),
        w = b.alloc(3 * 4 - 1);
      expect(() => b.matmul(y, x, w, 2, 4, 3), name).toThrow(BackendError);
      const g = b.alloc(3);
      expect(() => b.rmsnorm(x, x, g, 2, 4, 1e-5), name).toThrow(BackendError);
      for (const buf of [y, x, w, g]) b.free(buf);
    }
  });

  it("REL-API-STEPS: decodeAR with steps NaN (or not an integer) throws instead of returning no tokens", async () => {
    const model = new Transformer(await backend("js"), randomCheckpoint(config, 1));
    for (const steps of [NaN, 2.5, undefined as unknown as number]) {
      expect(() => decodeAR(model, [1], { steps, sampling: { temperature: 1 }, aux: new XorShiftAux(1n) })).toThrow(/decodeAR: steps must be an integer/);
    }
    expect(decodeAR(model, [1], { steps: 5, sampling: { temperature: 1 }, aux: new XorShiftAux(1n) }).tokens.length).toBeGreaterThan(1);
    model.dispose();
  });

  it("REL-API-ENCODE: Tokenizer.encode(undefined) throws a TypeError instead of returning [BOS]", () => {
    const t = Tokenizer.load(TOK_512, 512);
    expect(() => t.encode(undefined as unknown as string, true, false)).toThrow(/Tokenizer.encode: text must be a string, got undefined/);
    expect(() => t.encode(42 as unknown as string, true, false)).toThrow(TypeError);
  });

  it.each(["js", "wasm"] as const)("API-KVCACHE-MODEL: a cache made by (or run on by) another model of the same shape and backend is refused with a TypeError, not read as this model's keys (%s)", async (name) => {
    const b = await backend(name);
    const ckptA = randomCheckpoint(config, 1);
    const a = new Transformer(b, ckptA);
    const other = new Transformer(b, randomCheckpoint(config, 2));
    const block = { tokens: [1, 5, 7], positions: [0, 1, 2] };
    const fresh = a.forward(block, a.newCache());
    const cache = a.newCache();
    const refused = /^forward: the cache must be a KVCache of this model, but another model \(same shape and backend\) made it or ran on it/;
    // forward, forwardInto, greedy and sampleLast all refuse it, before anything is appended.
    expect(() => other.forward(block, cache)).toThrow(TypeError);
    expect(() => other.forward(block, cache)).toThrow(refused);
    expect(() => other.forwardInto(new Float32Array(3 * config.vocabSize), block, cache)).toThrow(refused);
    expect(() => other.greedy(block, cache)).toThrow(refused);
    expect(() => other.sampleLast(block, cache, { temperature: 1 }, 0.5)).toThrow(refused);
    expect(cache.length).toBe(0);
    // Its own model still reads it, with the logits of a fresh cache.
    expect(a.forward(block, cache)).toEqual(fresh);
    // A cache made without a model (new KVCache) belongs to the first model that runs on it.
    const loose = new KVCache(b, config);
    other.forward(block, loose);
    expect(() => a.forward({ tokens: [2], positions: [3] }, loose)).toThrow(refused);
    expect(loose.length).toBe(3);
    // A PTP student runs in its teacher's calls: its cache is the teacher's (any number of extra layers), and only that teacher's.
    const student = randomStudent(ckptA, "t", { variant: "C", rank: 2, window: 2, seed: 1 });
    const ptp = new PtpModel(a, student);
    const ptpCache = ptp.newCache();
    expect(ptp.forward(block, ptpCache, 0)).toEqual(fresh);
    expect(a.forward({ tokens: [2], positions: [3] }, ptpCache).length).toBe(config.vocabSize);
    const otherPtp = new PtpModel(other, randomStudent(ckptA, "t", { variant: "C", rank: 2, window: 2, seed: 1 }));
    expect(() => otherPtp.forward(block, ptpCache, 0)).toThrow(refused);
    expect(() => ptp.forward(block, otherPtp.newCache(), 0)).toThrow(refused);
    // A cache of another shape keeps its own message.
    expect(() => a.forward(block, new Transformer(b, randomCheckpoint({ ...config, nLayers: 2 }, 3)).newCache())).toThrow(/^forward: the cache must be a KVCache of this model \(made by its newCache, on the same backend\)/);
    for (const c of [cache, loose, ptpCache]) c.free();
    ptp.dispose();
    otherPtp.dispose();
    a.dispose();
    other.dispose();
  });

  it("REL-API-BINOF: binOf with NaN or negative probabilities throws instead of returning NaN edges", () => {
    expect(() => binOf(new Float32Array([0.5, NaN, 0.5]), 0)).toThrow(/binOf: probability 1 must be in \[0, 1\], got NaN/);
    expect(() => binOf(new Float32Array([0.5, -0.1, 0.6]), 2)).toThrow(/binOf: probability 1/);
    expect(binOf(new Float32Array([0.25, 0.75]), 1)).toEqual([0.25, 1]);
  });
});
