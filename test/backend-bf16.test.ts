import { expect, it } from "vitest";
import { createWasmBackend } from "../src/backends/wasm/index.js";
import { readCheckpoint } from "../src/io/checkpoint.js";
import { Transformer } from "../src/model/transformer.js";
import { LINEAR_NAMES, type Checkpoint } from "../src/model/weights.js";
import { decode } from "../src/ptp/decode/run.js";
import { XorShiftAux } from "../src/sampling/aux.js";
import { checkExactMatmul, runMatmul, describeWeightType, EXACT_MATMUL_SHAPES, storiesWithStudent } from "./backend-ops.js";
import { firstBitDifference, STORIES_260K } from "./helpers.js";

/*
 * BACKEND-BF16: the wasm backend with `weights: "bf16"` computes exactly what
 * the f32 kernels compute on weights rounded to bfloat16 beforehand (round to
 * nearest even), bit for bit: single matmuls (every tile and tail), a whole
 * model forward; it is batch-invariant, thread-count-invariant, and PTP
 * decoding on it equals its own AR decoding.
 */

const view = new DataView(new ArrayBuffer(4));
/** x rounded to bf16 (nearest even), as float32: the reference rounding. */
function bf16(x: number): number {
  view.setFloat32(0, x);
  const u = view.getUint32(0);
  if ((u & 0x7fffffff) > 0x7f800000) return x;
  const r = (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
  view.setUint32(0, (r << 16) >>> 0);
  return view.getFloat32(0);
}
const roundAll = (a: Float32Array) => a.map(bf16);

/** The checkpoint with every matmul weight (linears, classifier) rounded to bf16; the embedding table stays f32. */
function roundedCheckpoint(c: Checkpoint): Checkpoint {
  const w = c.weights;
  return {
    config: { ...c.config, sharedClassifier: false },
    weights: {
      tokenEmbedding: w.tokenEmbedding,
      rmsFinal: w.rmsFinal,
      wcls: roundAll(w.wcls),
      layers: w.layers.map((l) => ({ ...l, ...Object.fromEntries(LINEAR_NAMES.map((n) => [n, roundAll(l[n])])) })),
    },
  };
}

describeWeightType("bf16", (wb) => {
  it("BACKEND-BF16: the option is validated and described", async () => {
    await expect(createWasmBackend({ weights: "int3" as never })).rejects.toThrow(/weights/);
    expect(wb.one.description).toMatch(/bf16 weights/);
    expect(wb.f32.description).not.toMatch(/bf16/);
  });

  it("BACKEND-BF16: matmul equals the f32 matmul on pre-rounded weights, rows equal rows alone, 2 threads equal 1", () => {
    checkExactMatmul(wb.one, wb.two, (x, w, M, K, N) => runMatmul(wb.f32, x, roundAll(w), M, K, N), {
      maxM: 12,
      maxK: 90,
      shapes: EXACT_MATMUL_SHAPES,
    });
  });

  it("BACKEND-BF16: a stories260K forward equals the f32 forward of the bf16-rounded checkpoint bit for bit", () => {
    const ckpt = readCheckpoint(STORIES_260K);
    const a = new Transformer(wb.one, ckpt),
      b = new Transformer(wb.f32, roundedCheckpoint(ckpt));
    const ca = a.newCache(),
      cb = b.newCache();
    const block = { tokens: [1, 403, 261, 378, 11], positions: [0, 1, 2, 3, 4] };
    expect(firstBitDifference(a.forward(block, ca), b.forward(block, cb))).toBeNull();
    expect(firstBitDifference(a.forward({ tokens: [7], positions: [5] }, ca), b.forward({ tokens: [7], positions: [5] }, cb))).toBeNull();
    a.dispose();
    b.dispose();
  });

  it("BACKEND-BF16: PTP decoding on the bf16 teacher equals its AR decoding", () => {
    const { tok, teacher, model } = storiesWithStudent(wb.one);
    const prompts = [tok.encode("Once upon a time", true, false)];
    const opts = (decoder: "single-call" | "ar") => ({ steps: 64, sampling: { temperature: 0.8 }, decoder, aux: [new XorShiftAux(9n)] });
    expect(decode(model, prompts, opts("single-call")).outputs).toEqual(decode(model, prompts, opts("ar")).outputs);
    teacher.dispose();
  });
});
