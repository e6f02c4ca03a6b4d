import { describe, expect, it } from "vitest";
import { randomCheckpoint } from "../src/model/init.js";
import { Transformer } from "../src/model/transformer.js";
import { backend } from "./helpers.js";

/** MODEL-ERRORS: a malformed block or cache operation is refused with a message that says what was expected. */
describe("MODEL-ERRORS", async () => {
  const config = { dim: 8, hiddenDim: 12, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 10, seqLen: 16, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };
  const model = new Transformer(await backend("js"), randomCheckpoint(config, 1));
  const cases: [string, () => void, RegExp][] = [
    ["empty block", () => model.forward({ tokens: [], positions: [] }, model.newCache()), /no rows/],
    ["position beyond seqLen", () => model.forward({ tokens: [1], positions: [16] }, model.newCache()), /position ids must be integers in \[0, 16\).*row 0 has 16/],
    ["negative position", () => model.forward({ tokens: [1], positions: [-1] }, model.newCache()), /row 0 has -1/],
    ["token beyond the vocab", () => model.forward({ tokens: [10], positions: [0] }, model.newCache()), /below the vocab size 10; row 0 has 10/],
    ["a token id as a string", () => model.forward({ tokens: ["1"] as never, positions: [0] }, model.newCache()), /below the vocab size 10; row 0 has "1" \(string\)$/],
    ["a position as a string", () => model.forward({ tokens: [1], positions: ["0"] as never }, model.newCache()), /row 0 has "0" \(string\)$/],
    ["tokens and positions disagree", () => model.forward({ tokens: [1, 2], positions: [0] }, model.newCache()), /tokens has 2 entries but positions has 1/],
    ["embedding row without embeddings", () => model.forward({ tokens: [-1], positions: [0] }, model.newCache()), /need embeddings of length M \* dim = 8/],
    ["mask of the wrong size", () => model.forward({ tokens: [1, 2], positions: [0, 1], mask: new Uint8Array(3) }, model.newCache()), /mask must have .* = 4 entries, got 3/],
    ["a row that sees nothing", () => model.forward({ tokens: [1, 2], positions: [0, 1], mask: Uint8Array.of(1, 0, 0, 0) }, model.newCache()), /mask row 1 sees no key/],
    ["a full cache", () => model.forward({ tokens: [1, 2, 3], positions: [0, 1, 2] }, model.newCache(2)), /KV cache full: it holds 0 of 2 rows and a block of 3 rows does not fit/],
    ["crop beyond the length", () => model.newCache().crop(1), /crop: length must be an integer in \[0, 0\]/],
    [
      "keep out of order",
      () => {
        const c = model.newCache();
        model.forward({ tokens: [1, 2], positions: [0, 1] }, c);
        c.keep([1, 0]);
      },
      /strictly increasing/,
    ],
    ["a cache of another model", () => model.forward({ tokens: [1], positions: [0] }, new Transformer(model.backend, randomCheckpoint({ ...config, nLayers: 2 }, 2)).newCache()), /cache must be a KVCache of this model/],
    ["a snapshot of a layer the cache lacks", () => model.newCache().snapshot(99), /snapshot: layer must be an integer in \[0, 1\), got 99/],
    [
      "a snapshot of a freed cache",
      () => {
        const c = model.newCache();
        c.free();
        c.snapshot(0);
      },
      /^KVCache.snapshot: the cache was freed \(KVCache.free\)$/,
    ],
    ["weights missing a layer", () => new Transformer(model.backend, { config: { ...config, nLayers: 2 }, weights: randomCheckpoint(config, 1).weights }), /Transformer: layers must be an array of nLayers = 2 layers, got 1/],
    [
      "a weight of the wrong size",
      () => {
        const { weights } = randomCheckpoint(config, 1);
        weights.layers[0].w1 = new Float32Array(1000);
        return new Transformer(model.backend, { config, weights });
      },
      /layers\[0\]\.w1 has 1000 values; the config needs 96/,
    ],
    [
      "a shared classifier that is a separate array",
      () => {
        const { weights } = randomCheckpoint({ ...config, sharedClassifier: true }, 1);
        return new Transformer(model.backend, { config: { ...config, sharedClassifier: true }, weights: { ...weights, wcls: weights.tokenEmbedding.slice() } });
      },
      /Transformer: the config says the classifier is shared \(sharedClassifier: true\), so wcls must be the tokenEmbedding array itself, got a separate array/,
    ],
    ["a missing final norm", () => new Transformer(model.backend, { config, weights: { ...randomCheckpoint(config, 1).weights, rmsFinal: undefined as unknown as Float32Array } }), /rmsFinal must be a Float32Array of 8 values, got none/],
    ["a random checkpoint too large for one array", () => randomCheckpoint({ ...config, dim: 1 << 16, nHeads: 1, nKvHeads: 1, hiddenDim: 4, vocabSize: 1 << 16 }, 1), /more than the 2147483647 one array can/],
  ];
  it.each(cases)("%s", (_, run, message) => {
    expect(run).toThrow(message);
  });

  it("dispose twice is harmless", () => {
    const m = new Transformer(model.backend, randomCheckpoint(config, 3));
    m.dispose();
    expect(() => m.dispose()).not.toThrow();
  });

  // The device path (wasm's pick op) checks what the host path checks.
  it.each(["js", "wasm"] as const)("sampleLast refuses bad settings and u's on %s", async (name) => {
    const m = new Transformer(await backend(name), randomCheckpoint(config, 1));
    const block = { tokens: [1], positions: [0] };
    expect(() => m.sampleLast(block, m.newCache(), { temperature: 1e-9 }, 0.5)).toThrow(/temperature must be/);
    expect(() => m.sampleLast(block, m.newCache(), { temperature: 1, topP: 2 }, 0.5)).toThrow(/topP must be/);
    expect(() => m.sampleLast(block, m.newCache(), { temperature: 1 }, "0.5" as unknown as number)).toThrow(/u must be in \[0, 1\)/);
    expect(() => m.sampleLast(block, m.newCache(), { temperature: 1 }, 1)).toThrow(/u must be in \[0, 1\)/);
    m.dispose();
  });
});
