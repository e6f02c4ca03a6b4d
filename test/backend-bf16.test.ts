import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWasmBackend, type WasmBackend } from "../src/backends/wasm/index.js";
import { readCheckpoint } from "../src/io/checkpoint.js";
import { Tokenizer } from "../src/io/tokenizer.js";
import { Transformer } from "../src/model/transformer.js";
import { LINEAR_NAMES, type Checkpoint } from "../src/model/weights.js";
import { randomStudent } from "../src/ptp/init.js";
import { decode } from "../src/ptp/decode/run.js";
import { PtpModel } from "../src/ptp/ptp-model.js";
import { teacherChecksum } from "../src/ptp/files/teacher-checksum.js";
import { XorShiftAux } from "../src/sampling/aux.js";
import { checkExactMatmul, runMatmul } from "./backend-ops.js";
import { firstBitDifference, STORIES_260K, TOK_512 } from "./helpers.js";

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

for (const build of ["relaxed", "simd"] as const) {
  describe(`wasm backend with bf16 weights (${build} build)`, () => {
    let f32: WasmBackend, bf: WasmBackend, bf2: WasmBackend;
    beforeAll(async () => {
      f32 = await createWasmBackend({ wasmBuild: build, threads: 1 });
      bf = await createWasmBackend({ wasmBuild: build, threads: 1, weights: "bf16" });
      bf2 = await createWasmBackend({ wasmBuild: build, threads: 2, weights: "bf16" });
    });
    afterAll(() => {
      f32.dispose();
      bf.dispose();
      bf2.dispose();
    });

    it("BACKEND-BF16: the option is validated and described", async () => {
      await expect(createWasmBackend({ weights: "int3" as never })).rejects.toThrow(/weights/);
      expect(bf.description).toMatch(/bf16 weights/);
      expect(f32.description).not.toMatch(/bf16/);
    });

    it("BACKEND-BF16: matmul equals the f32 matmul on pre-rounded weights, rows equal rows alone, 2 threads equal 1", () => {
      checkExactMatmul(bf, bf2, (x, w, M, K, N) => runMatmul(f32, x, roundAll(w), M, K, N), {
        maxM: 12,
        maxK: 90,
        shapes: [
          [1, 300, 1030],
          [5, 256, 777],
          [16, 301, 515],
        ],
      });
    });

    it("BACKEND-BF16: a stories260K forward equals the f32 forward of the bf16-rounded checkpoint bit for bit", () => {
      const ckpt = readCheckpoint(STORIES_260K);
      const a = new Transformer(bf, ckpt),
        b = new Transformer(f32, roundedCheckpoint(ckpt));
      const ca = a.newCache(),
        cb = b.newCache();
      const block = { tokens: [1, 403, 261, 378, 11], positions: [0, 1, 2, 3, 4] };
      expect(firstBitDifference(a.forward(block, ca), b.forward(block, cb))).toBeNull();
      expect(firstBitDifference(a.forward({ tokens: [7], positions: [5] }, ca), b.forward({ tokens: [7], positions: [5] }, cb))).toBeNull();
      a.dispose();
      b.dispose();
    });

    it("BACKEND-BF16: PTP decoding on the bf16 teacher equals its AR decoding", () => {
      const ckpt = readCheckpoint(STORIES_260K);
      const tok = Tokenizer.load(TOK_512, ckpt.config.vocabSize);
      const teacher = new Transformer(bf, ckpt);
      const model = new PtpModel(teacher, randomStudent(ckpt, teacherChecksum(ckpt), { variant: "O", rank: 4, window: 8, seed: 2, aux: { kind: "anchors" } }));
      const prompts = [tok.encode("Once upon a time", true, false)];
      const opts = (decoder: "single-call" | "ar") => ({ steps: 64, sampling: { temperature: 0.8 }, decoder, aux: [new XorShiftAux(9n)] });
      expect(decode(model, prompts, opts("single-call")).outputs).toEqual(decode(model, prompts, opts("ar")).outputs);
      teacher.dispose();
    });
  });
}
