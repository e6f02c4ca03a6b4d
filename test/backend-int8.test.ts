import { expect, it } from "vitest";
import { createWasmBackend } from "../src/backends/wasm/index.js";
import { readCheckpoint } from "../src/io/checkpoint.js";
import { Transformer } from "../src/model/transformer.js";
import { decode } from "../src/ptp/decode/run.js";
import { XorShiftAux } from "../src/sampling/aux.js";
import { checkExactMatmul, describeWeightType, EXACT_MATMUL_SHAPES, storiesWithStudent } from "./backend-ops.js";
import { firstBitDifference, STORIES_260K } from "./helpers.js";

/*
 * BACKEND-INT8: the wasm backend with `weights: "int8"` computes exactly the
 * quantised arithmetic of assembly/int8.ts (groups of 32 along K, the last
 * one shorter; symmetric scales max|v| / 127; round to nearest even; exact
 * integer group sums; acc += (isum * sw) * sx in f32, group by group), here
 * re-done in plain TypeScript, bit for bit; it is batch-invariant,
 * thread-count-invariant, close to f32 on stories260K, and PTP decoding on it
 * equals its own AR decoding.
 */

const GS = 32;
const f = Math.fround;

/** Round to nearest, ties to even (wasm's f32.nearest). */
function nearestEven(v: number): number {
  const fl = Math.floor(v),
    d = v - fl;
  if (d < 0.5) return fl;
  if (d > 0.5) return fl + 1;
  return fl % 2 === 0 ? fl : fl + 1;
}

/** Quantises each row of a [rows, K] matrix per group: values (zero past K) and one f32 scale per group. */
function quantize(a: Float32Array, rows: number, K: number): { q: Int32Array; s: Float32Array } {
  const G = Math.ceil(K / GS);
  const q = new Int32Array(rows * G * GS),
    s = new Float32Array(rows * G);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < G; g++) {
      const k0 = g * GS,
        k1 = Math.min(K, k0 + GS);
      let amax = 0;
      for (let k = k0; k < k1; k++) amax = Math.max(amax, Math.abs(a[r * K + k]));
      const scale = f(amax / 127);
      s[r * G + g] = scale;
      for (let k = k0; k < k1; k++) {
        const v = Math.min(127, Math.max(-127, nearestEven(f(a[r * K + k] / scale))));
        q[(r * G + g) * GS + (k - k0)] = Number.isNaN(v) ? 0 : v;
      }
    }
  }
  return { q, s };
}

/** The reference int8 matmul y = x W^T. */
function int8Matmul(x: Float32Array, w: Float32Array, M: number, K: number, N: number): Float32Array {
  const G = Math.ceil(K / GS);
  const qx = quantize(x, M, K),
    qw = quantize(w, N, K);
  const y = new Float32Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let acc = 0;
      for (let g = 0; g < G; g++) {
        let isum = 0;
        for (let i = 0; i < GS; i++) isum += qx.q[(m * G + g) * GS + i] * qw.q[(n * G + g) * GS + i];
        acc = f(acc + f(f(isum * qw.s[n * G + g]) * qx.s[m * G + g]));
      }
      y[m * N + n] = acc;
    }
  }
  return y;
}

describeWeightType("int8", (wb) => {
  it("BACKEND-INT8: the option is validated and described", async () => {
    await expect(createWasmBackend({ weights: "int4" as never })).rejects.toThrow(/weights must be "f32", "bf16", "int8", got "int4"/);
    expect(wb.one.description).toMatch(/int8 weights/);
    expect(wb.f32.description).not.toMatch(/int8/);
  });

  it("BACKEND-INT8: matmul equals the TypeScript reference bit for bit (every tile and tail), rows equal rows alone, 2 threads equal 1", () => {
    checkExactMatmul(wb.one, wb.two, int8Matmul, {
      maxM: 9,
      maxK: 140,
      shapes: [...EXACT_MATMUL_SHAPES, [3, 288, 2050]],
      prepare: (x, K, seed) => {
        if (seed % 5 === 0) x.fill(0, 0, Math.min(K, 40)); // an all-zero group (scale 0)
        // Edge values among the others: -0, subnormals, and exact ties of v / scale (127 sets the scale to 1 where it leads).
        if (Math.abs(seed) % 5 === 2) for (let i = 0; i < x.length; i += 3) x[i] = [-0, 1e-45, -1e-45, 127, 63.5, -62.5, 2.5, -0.5][(i / 3) % 8];
      },
    });
    expect(wb.two.threadedCalls).toBeGreaterThan(0);
  });

  it("BACKEND-INT8: a stories260K forward is close to f32 (max |logit difference| < 0.5, measured 0.35, on logits spread over ~25; argmax kept)", () => {
    const ckpt = readCheckpoint(STORIES_260K);
    const a = new Transformer(wb.one, ckpt),
      b = new Transformer(wb.f32, ckpt);
    const block = { tokens: [1, 403, 261, 378, 11, 7, 300, 41], positions: [0, 1, 2, 3, 4, 5, 6, 7] };
    const la = a.forward(block, a.newCache()),
      lb = b.forward(block, b.newCache());
    const V = ckpt.config.vocabSize;
    let maxDiff = 0,
      spread = 0,
      same = 0;
    for (let m = 0; m < block.tokens.length; m++) {
      const ra = la.subarray(m * V, (m + 1) * V),
        rb = lb.subarray(m * V, (m + 1) * V);
      for (let i = 0; i < V; i++) maxDiff = Math.max(maxDiff, Math.abs(ra[i] - rb[i]));
      spread = Math.max(spread, Math.max(...rb) - Math.min(...rb));
      if (ra.indexOf(Math.max(...ra)) === rb.indexOf(Math.max(...rb))) same++;
    }
    expect(la.every(Number.isFinite)).toBe(true);
    expect(firstBitDifference(la, lb)).not.toBeNull(); // it is another model
    expect(spread).toBeGreaterThan(20);
    expect(maxDiff).toBeLessThan(0.5);
    expect(same).toBe(block.tokens.length);
    a.dispose();
    b.dispose();
  });

  it("BACKEND-INT8: PTP decoding (verify, single-call) on the int8 teacher equals its AR decoding", () => {
    const { tok, teacher, model } = storiesWithStudent(wb.one);
    const prompts = [tok.encode("Once upon a time", true, false), tok.encode("The cat", true, false)];
    const opts = (decoder: "single-call" | "verify" | "ar") => ({ steps: 64, sampling: { temperature: 0.8 }, decoder, aux: [new XorShiftAux(9n), new XorShiftAux(10n)] });
    const ar = decode(model, prompts, opts("ar")).outputs;
    expect(decode(model, prompts, opts("single-call")).outputs).toEqual(ar);
    expect(decode(model, prompts, opts("verify")).outputs).toEqual(ar);
    teacher.dispose();
  });
});
