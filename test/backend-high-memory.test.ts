import { describe, expect, it } from "vitest";
import { createBackend } from "../src/backends/registry.js";
import { readCheckpoint } from "../src/io/checkpoint.js";
import { Transformer } from "../src/model/transformer.js";
import { firstBitDifference, STORIES_260K } from "./helpers.js";

/**
 * The wasm backend's memory grows to 4 GiB. Addresses of 2^31 and above are
 * negative as 32-bit signed integers, so every place that turns an address
 * into an array index must shift without sign (>>>): with `>> 2` such a
 * buffer read from the wrong place and the logits came out wrong, silently.
 */
describe("wasm backend above 2 GiB", () => {
  it("BACKEND-HIGH-MEMORY: buffers placed past 2^31 bytes give the same logits, picks and sparse attention as low ones", async () => {
    const ckpt = readCheckpoint(STORIES_260K);
    const block = { tokens: [1, 403, 407, 261], positions: [0, 1, 2, 3] };
    // Where a fresh backend computes, everything sits low in memory.
    const low = await createBackend("wasm", { threads: 1 });
    const lowModel = new Transformer(low, ckpt);
    const expected = lowModel.forward(block, lowModel.newCache(8)).slice();
    const expectedGreedy = lowModel.greedy({ tokens: [1, 403], positions: [0, 1] }, lowModel.newCache(8));
    low.dispose?.();

    const high = await createBackend("wasm", { threads: 1 });
    // 2.1 GiB of filler first, so the model's buffers, its run state and every op's scratch start past 2^31.
    const filler = high.alloc(560_000_000);
    const model = new Transformer(high, ckpt);
    const cache = model.newCache(8);
    const got = model.forward(block, cache);
    expect(firstBitDifference(got, expected)).toBeNull();
    // The device pick and argmax (their results come back through a view at a high address).
    const V = ckpt.config.vocabSize;
    const row = got.subarray(3 * V, 4 * V);
    const picked = model.pickRow(row, { temperature: 1 }, 0.5);
    expect(picked).toBeGreaterThanOrEqual(0);
    expect(picked).toBeLessThan(V);
    expect(model.tokenProbability(row, picked!, 1)).toBeGreaterThan(0);
    expect(Array.from(model.greedy({ tokens: [1, 403], positions: [0, 1] }, model.newCache(8)))).toEqual(Array.from(expectedGreedy));
    // Sparse masks (their offsets are read at a high address): the causal pattern, row by row.
    const visible = { offsets: Int32Array.of(0, 1, 3, 6, 10), keys: Int32Array.of(0, 0, 1, 0, 1, 2, 0, 1, 2, 3) };
    const sparse = model.forward({ ...block, visible }, model.newCache(8));
    expect(firstBitDifference(sparse, expected)).toBeNull();
    high.free(filler);
    high.dispose?.();
  }, 60_000);
});
