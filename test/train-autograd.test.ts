import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Backend } from "../src/backends/backend.js";
import { createBackend } from "../src/backends/registry.js";
import type { Checkpoint } from "../src/model/weights.js";
import { kvDim } from "../src/model/config.js";
import { Transformer } from "../src/model/transformer.js";
import { PtpModel } from "../src/ptp/ptp-model.js";
import { add, addBias, addEmbeddingRows, anchorEmbedding, attention, BufferPool, concatRows, crossEntropy, embedding, klDivergence, linear, linearLora, replaceRows, rmsnorm, rope, scale, swiglu, Tape, Tensor, jsKernels, useTrainKernels, wasmTrainKernels, type TrainKernels } from "../src/train/autograd/index.js";
import { constantWeights, forwardRows, trainableWeights, type GraphWeights } from "../src/train/graph.js";
import { draftLogits, studentLogits, windowLoss, windowRows, type LossKind } from "../src/train/ptp-windows.js";
import { trainableDraft, trainableStudent } from "../src/train/student-params.js";
import type { Param } from "../src/train/param.js";
import { randomDraft } from "../src/ptp/init.js";
import { DraftModel } from "../src/ptp/draft-model.js";
import { maxRelativeError, rng, tinyCheckpoint } from "./helpers.js";
import { makeStudent, slotKind, studentSpecArb, uniformUs } from "./ptp-helpers.js";
import type { Student } from "../src/ptp/student-weights.js";
import { decodeWith, makeDecoder } from "../src/ptp/decode/run.js";
import type { SlotRow } from "../src/ptp/decode/call.js";
import type { Decoder } from "../src/ptp/decode/decoder.js";
import { ArrayAux } from "../src/sampling/aux.js";
import { teacherContext } from "../src/train/teacher-context.js";

/**
 * Gradient checks: every op's backward pass against central finite
 * differences of its forward pass.
 *
 * The scalar checked is L = sum_i c_i y_i for a fixed random c, so every
 * output element's gradient path is exercised. The numeric derivative is
 * Richardson-extrapolated central differences at h = 1e-2 and 5e-3, whose
 * truncation error is O(h^4) (~1e-6 at O(1) curvature; a whole model
 * with large LoRA updates has larger derivatives, hence a relative term).
 * Where the first estimate misses, it is retried once at a step 8 times
 * smaller (strongly curved spots exist in a random model), so a correct
 * gradient passes and a wrong one still cannot.
 * Values are stored in float32, so L carries a rounding error of about
 * 1e-7 * sum |c_i y_i|, i.e. ~1e-5 / h ~ 2e-3 in the quotient for
 * outputs of order 100 terms. Hence the tolerance:
 * |analytic - numeric| <= 2e-3 + 2e-2 * max(|analytic|, |numeric|).
 * GRAD-MUTANT shows the check rejects a gradient that is wrong by a few
 * percent in a single term.
 */
const H = 1e-2,
  ATOL = 2e-3,
  RTOL = 2e-2;

const f = Math.fround;

interface AttentionCase {
  q: Float32Array;
  k: Float32Array;
  val: Float32Array;
  dO: Float32Array;
  ranges: Int32Array;
  offsets: Int32Array;
}

/** A random attention problem: q, k, v, dO from `v`, then per row two key ranges from `next` (the second empty with chance `emptyChance`, when given). */
function attentionCase(next: () => number, v: (n: number) => Float32Array, M: number, H: number, kvHeads: number, hs: number, nKeys: number, emptyChance?: number): AttentionCase {
  const q = v(M * H * hs),
    k = v(nKeys * kvHeads * hs),
    val = v(nKeys * kvHeads * hs),
    dO = v(M * H * hs);
  const ranges = new Int32Array(4 * M),
    offsets = new Int32Array(M + 1);
  for (let m = 0; m < M; m++) {
    const a = Math.floor(next() * nKeys),
      b = a + 1 + Math.floor(next() * (nKeys - a)),
      c = b + Math.floor(next() * (nKeys - b + 1));
    const e = emptyChance !== undefined && next() < emptyChance ? c : c + Math.floor(next() * (nKeys - c + 1));
    ranges.set([a, b, c, e], 4 * m);
    offsets[m + 1] = offsets[m] + H * (b - a + e - c);
  }
  return { q, k, val, dO, ranges, offsets };
}

/** attentionForward then attentionBackward into the given [dq, dk, dv]: [out, probs, dq, dk, dv]. */
function runAttentionBoth(kern: typeof jsKernels, c: AttentionCase, M: number, H: number, kvHeads: number, hs: number, [dq, dk, dv]: Float32Array[]): Float32Array[] {
  const out = new Float32Array(M * H * hs),
    probs = new Float32Array(c.offsets[M]);
  kern.attentionForward(out, probs, c.q, c.k, c.val, c.ranges, c.offsets, M, H, kvHeads, hs, 1 / Math.sqrt(hs));
  kern.attentionBackward(dq, dk, dv, c.dO, probs, c.q, c.k, c.val, c.ranges, c.offsets, M, H, kvHeads, hs, 1 / Math.sqrt(hs));
  return [out, probs, dq, dk, dv];
}

/** Runs `fn` with a teacher for `ckpt` on `b` and the model `wrap` builds on it (a PtpModel or a DraftModel); disposes both after. */
function withTeacherModel<M extends { dispose(): void }, T>(b: Backend, ckpt: Checkpoint, wrap: (teacher: Transformer) => M, fn: (model: M, teacher: Transformer) => T): T {
  const teacher = new Transformer(b, ckpt);
  const model = wrap(teacher);
  try {
    return fn(model, teacher);
  } finally {
    model.dispose();
    teacher.dispose();
  }
}

function param(shape: number[], next: () => number, s = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return new Tensor(
    Float32Array.from({ length: n }, () => (2 * next() - 1) * s),
    shape,
    new Float32Array(n),
  );
}

/** The first mismatch between backward and finite differences, or null. */
function gradCheck(inputs: Tensor[], build: (tape: Tape) => Tensor, seed: number, samplesPerInput = 24): string | null {
  const next = rng(seed);
  let c: Float64Array | null = null;
  const loss = (tape: Tape) => {
    const y = build(tape);
    c ??= Float64Array.from({ length: y.data.length }, () => 2 * next() - 1);
    let s = 0;
    for (let i = 0; i < y.data.length; i++) s += c[i] * y.data[i];
    return { y, s };
  };
  for (const t of inputs) t.grad!.fill(0);
  const tape = new Tape();
  const { y, s } = loss(tape);
  const L = tape.output([1], [y], Float32Array.of(s));
  tape.record(L, (d) => {
    for (let i = 0; i < y.data.length; i++) y.grad![i] += d[0] * c![i];
  });
  tape.backward(L);
  // Central differences at steps h and h/2, combined by Richardson
  // extrapolation (4 D(h/2) - D(h)) / 3, which cancels the O(h^2) term.
  const central = (t: Tensor, i: number, h: number) => {
    const x = t.data[i];
    t.data[i] = f(x + h);
    const hi = t.data[i],
      lp = loss(new Tape()).s;
    t.data[i] = f(x - h);
    const lo = t.data[i],
      lm = loss(new Tape()).s;
    t.data[i] = x;
    return (lp - lm) / (hi - lo);
  };
  for (const [ti, t] of inputs.entries()) {
    const n = t.data.length;
    const picks = n <= samplesPerInput ? Array.from({ length: n }, (_, i) => i) : Array.from({ length: samplesPerInput }, () => Math.floor(next() * n));
    // Steps scale with the tensor: a small vector (an untrained start vector,
    // say) feeds a scale-invariant RMSNorm, so an absolute step of 1e-2
    // would not be small.
    let maxAbs = 0;
    for (const v of t.data) maxAbs = Math.max(maxAbs, Math.abs(v));
    const h = H * Math.min(1, Math.max(maxAbs, 0.05));
    for (const i of picks) {
      const analytic = t.grad![i];
      const close = (numeric: number) => Math.abs(analytic - numeric) <= ATOL + RTOL * Math.max(Math.abs(analytic), Math.abs(numeric));
      const richardson = (step: number) => (4 * central(t, i, step / 2) - central(t, i, step)) / 3;
      let numeric = richardson(h);
      // Strongly curved spots (a whole model at random weights has some) need
      // a smaller step before the estimate settles; try 8x, then 64x smaller
      // (seed -1087275342, path 8 of GRAD-LOSS: h and h / 8 gave 17.2 and 4.3,
      // h / 16 .. h / 64 gave 5.811-5.819, the backward 5.817).
      for (const d of [8, 64]) if (!close(numeric)) numeric = richardson(h / d);
      if (!close(numeric)) {
        return `input ${ti} element ${i}: backward ${analytic}, finite differences ${numeric}`;
      }
    }
  }
  return null;
}

/** Fails with the whole mismatch message (expect() would truncate it). */
function passes(mismatch: string | null): void {
  if (mismatch !== null) throw new Error(mismatch);
}

const seedArb = fc.integer({ min: 1, max: 1 << 30 });

/**
 * The float32-rounding bound for comparing a window's slot logits computed
 * two ways (the training graph, the decoder's call): 1e-4 relative, or, for
 * an ill-conditioned random model, 8 times how far the graph's logits move
 * under a perturbation of rounding size: every student parameter and every
 * teacher weight, and for an anchors embedding (continuous in u) every slot
 * u, one float32 ulp up.
 * A bits or digits embedding reads u's low bits, so there a one-ulp u is
 * not a rounding-size change (it flipped logits by up to 8) and only the
 * parameters move. Measured: a random student whose logits moved 2.6e-4
 * under the u nudge differed from the call by 4.1e-4, and a digits student
 * that differed by 1.4e-4 had a u nudge that moved nothing. A dim-2 teacher
 * whose window differed by 1.14e-4 moved 1.6e-4 under the teacher nudge and
 * under 1.4e-5 under the student one. A wrong layout moves logits by orders
 * of magnitude more.
 */
function roundingBound(graphLogits: (us: Float32Array) => Float32Array, us: Float32Array, slotUs: readonly number[], base: Float32Array, student: readonly Param[], teacher: GraphWeights): number {
  const nudged = us.slice(),
    bits = new Int32Array(nudged.buffer);
  for (const k of slotUs) if (nudged[k] < 0.99) bits[k] += 1;
  // A shared classifier is the embedding's array: nudge each array once.
  const teacherTensors = [teacher.tokenEmbedding, teacher.rmsFinal, teacher.wcls, ...teacher.layers.flatMap((l) => Object.values(l))];
  const params: { data: Float32Array }[] = [...new Map([...student, ...teacherTensors].map((p) => [p.data, p])).values()];
  const saved = params.map((p) => p.data.slice());
  for (const p of params) {
    const b = new Int32Array(p.data.buffer, p.data.byteOffset, p.data.length);
    p.data.forEach((v, i) => {
      if (v !== 0 && Number.isFinite(v)) b[i] += 1;
    });
  }
  try {
    return Math.max(1e-4, 8 * maxRelativeError(graphLogits(nudged), base));
  } finally {
    params.forEach((p, i) => p.data.set(saved[i]));
  }
}

/** Report a failure by its seed and error only: counterexamples hold whole checkpoints. */
const reporter = <T>(out: fc.RunDetails<T>): void => {
  if (out.failed && process.env.GRAD_DEBUG) console.log(JSON.stringify((out.counterexample as unknown[] | null)?.slice(1)));
  if (out.failed) throw new Error(`property failed (seed ${out.seed}, path ${out.counterexamplePath}): ${out.errorInstance instanceof Error ? out.errorInstance.message : String(out.errorInstance)}`);
};
const RUNS = { numRuns: 25, endOnFailure: true, reporter };

/** The frame of the GRAD-OPS tests: `check` runs for seeded draws of `arbs`, with the seed's uniform generator. */
function gradProperty<A extends unknown[]>(arbs: { [K in keyof A]: fc.Arbitrary<A[K]> }, check: (next: () => number, seed: number, ...args: A) => void): void {
  fc.assert(
    fc.property(seedArb, fc.tuple(...(arbs as fc.Arbitrary<unknown>[])), (seed, args) => check(rng(seed), seed, ...(args as A))),
    RUNS,
  );
}

describe("GRAD-OPS: every op's backward pass matches finite differences", () => {
  it("linear (x and W)", () => {
    gradProperty([fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 7 }), fc.integer({ min: 1, max: 6 })], (next, seed, M, K, N) => {
      const x = param([M, K], next),
        w = param([N, K], next);
      passes(gradCheck([x, w], (t) => linear(t, x, w), seed));
    });
  });

  it("add, scale, addBias, concatRows, replaceRows", () => {
    gradProperty([fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 6 })], (next, seed, M, D) => {
      const a = param([M, D], next),
        b = param([M, D], next),
        bias = param([D], next),
        row = param([D], next);
      const take = Uint8Array.from({ length: 2 * M }, () => (next() < 0.4 ? 1 : 0));
      passes(gradCheck([a, b, bias, row], (t) => replaceRows(t, concatRows(t, addBias(t, add(t, a, b), bias), scale(t, b, -1.7)), row, take), seed));
    });
  });

  it("swiglu", () => {
    gradProperty([fc.integer({ min: 1, max: 30 })], (next, seed, n) => {
      const g = param([n], next, 3),
        u = param([n], next, 2);
      passes(gradCheck([g, u], (t) => swiglu(t, g, u), seed));
    });
  });

  it("rmsnorm (x and weight)", () => {
    gradProperty([fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 12 })], (next, seed, M, D) => {
      const x = param([M, D], next, 2),
        w = param([D], next);
      passes(gradCheck([x, w], (t) => rmsnorm(t, x, w, 1e-5), seed));
    });
  });

  it("rope", () => {
    gradProperty([fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 4 })], (next, seed, M, nHeads, half) => {
      const x = param([M, nHeads * 2 * half], next);
      const pos = Int32Array.from({ length: M }, () => Math.floor(next() * 300));
      passes(gradCheck([x], (t) => rope(t, x, pos, nHeads, 2 * half, 10000), seed));
    });
  });

  it("attention with GQA and two key ranges per row (q, k, v)", () => {
    gradProperty([fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 9 })], (next, seed, M, kvHeads, group, half, nKeys) => {
      const hs = 2 * half,
        nHeads = kvHeads * group;
      const q = param([M, nHeads * hs], next, 2),
        k = param([nKeys, kvHeads * hs], next, 2),
        v = param([nKeys, kvHeads * hs], next);
      const vis = new Int32Array(4 * M);
      for (let m = 0; m < M; m++) {
        const cut = [0, 0, 0, 0].map(() => Math.floor(next() * (nKeys + 1))).sort((a, b) => a - b);
        if (cut[1] === cut[0] && cut[3] === cut[2]) (cut[3] = cut[2] < nKeys ? cut[2] + 1 : cut[3]), (cut[2] = cut[3] - 1);
        vis.set(cut, 4 * m);
      }
      passes(gradCheck([q, k, v], (t) => attention(t, q, k, v, vis, nHeads, kvHeads, hs), seed));
    });
  });

  it("embedding and the anchors auxiliary embedding", () => {
    gradProperty([fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 5 })], (next, seed, M, D) => {
      const table = param([7, D], next),
        anchors = param([3, D], next);
      const ids = Int32Array.from({ length: M }, () => Math.floor(next() * 7));
      const us = Float32Array.from({ length: M }, () => next());
      passes(gradCheck([table, anchors], (t) => add(t, embedding(t, table, ids), anchorEmbedding(t, anchors, us)), seed));
    });
  });

  it("addEmbeddingRows (the hybrid slot input: x and the table)", () => {
    gradProperty([fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 5 })], (next, seed, M, D) => {
      const table = param([7, D], next),
        x = param([M, D], next);
      // Some rows take no token (-1), some share one.
      const ids = Int32Array.from({ length: M }, () => (next() < 0.3 ? -1 : Math.floor(next() * 7)));
      passes(gradCheck([table, x], (t) => addEmbeddingRows(t, x, table, ids), seed));
    });
  });

  it("cross-entropy, KL and reverse KL with row weights and temperature", () => {
    gradProperty([fc.integer({ min: 1, max: 4 }), fc.integer({ min: 2, max: 9 }), fc.constantFrom(1, 1 / 0.7, 2)], (next, seed, R, V, invTemp) => {
      const logits = param([R, V], next, 3);
      const targets = Int32Array.from({ length: R }, () => Math.floor(next() * V));
      const weights = Float32Array.from({ length: R }, (_, r) => (r === 0 ? 1 : next() < 0.3 ? 0 : next()));
      const teacher = Float32Array.from({ length: R * V }, () => 3 * (2 * next() - 1));
      passes(gradCheck([logits], (t) => crossEntropy(t, logits, targets, weights, invTemp), seed));
      passes(gradCheck([logits], (t) => klDivergence(t, logits, teacher, weights, invTemp, "forward"), seed));
      passes(gradCheck([logits], (t) => klDivergence(t, logits, teacher, weights, invTemp, "reverse"), seed));
    });
  });

  it("GRAD-MUTANT: a backward pass 3% off fails the check", () => {
    const next = rng(7),
      x = param([3, 4], next);
    // y = x^2 whose backward claims 2.06 x instead of 2 x.
    const wrongSquare = (t: Tape) => {
      const y = t.output(
        x.shape,
        [x],
        x.data.map((v) => v * v),
      );
      t.record(y, (dy) => dy.forEach((d, i) => (x.grad![i] += 2.06 * x.data[i] * d)));
      return y;
    };
    expect(gradCheck([x], wrongSquare, 7, 100)).not.toBeNull();
  });
});

/** A seeded dense-product problem: x [M, K], w [N, K], dy [M, N] and starting gradients dx0, dw0, uniform in [-1, 1); `v` draws more from the same stream. */
function matmulProblem(seed: number, M: number, K: number, N: number) {
  const next = rng(seed),
    v = (n: number) => Float32Array.from({ length: n }, () => 2 * next() - 1);
  return { v, x: v(M * K), w: v(N * K), dy: v(M * N), dx0: v(M * K), dw0: v(N * K) };
}

/** y = x W^T, dx += dy W and dW += dy^T x on the js kernels and on `other` from the same start (other's y from `y2`): [other's, js's] per product. */
function denseProductsBoth(other: TrainKernels, p: ReturnType<typeof matmulProblem>, M: number, K: number, N: number, y2: Float32Array): [Float32Array, Float32Array][] {
  const y1 = new Float32Array(M * N);
  jsKernels.matmul(y1, p.x, p.w, M, K, N);
  other.matmul(y2, p.x, p.w, M, K, N);
  const [dx1, dx2, dw1, dw2] = [p.dx0.slice(), p.dx0.slice(), p.dw0.slice(), p.dw0.slice()];
  jsKernels.matmulGradX(dx1, p.dy, p.w, M, K, N);
  other.matmulGradX(dx2, p.dy, p.w, M, K, N);
  jsKernels.matmulGradW(dw1, p.dy, p.x, M, K, N);
  other.matmulGradW(dw2, p.dy, p.x, M, K, N);
  return [
    [y2, y1],
    [dx2, dx1],
    [dw2, dw1],
  ];
}

describe("GRAD-KERNELS: the WASM SIMD training kernels compute what the js ones do", () => {
  const wasm = wasmTrainKernels();
  it("matmul, matmulGradX and matmulGradW agree within float32 reassociation (1e-5 relative), tails and all", () => {
    fc.assert(
      fc.property(seedArb, fc.integer({ min: 1, max: 11 }), fc.integer({ min: 1, max: 37 }), fc.integer({ min: 1, max: 13 }), (seed, M, K, N) => {
        const pairs = denseProductsBoth(wasm, matmulProblem(seed, M, K, N), M, K, N, new Float32Array(M * N));
        for (const [a, b] of pairs) expect(maxRelativeError(a, b)).toBeLessThan(1e-5);
      }),
      { numRuns: 60, endOnFailure: true },
    );
  });

  it("attention forward and backward agree within float32 reassociation (1e-5 relative)", () => {
    fc.assert(
      fc.property(seedArb, fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 12 }), (seed, M, kvHeads, group, half, nKeys) => {
        const next = rng(seed),
          hs = 2 * half,
          H = kvHeads * group,
          v = (n: number) => Float32Array.from({ length: n }, () => 2 * next() - 1);
        const { q, k, val, dO, ranges, offsets } = attentionCase(next, v, M, H, kvHeads, hs, nKeys);
        const run = (kern: typeof jsKernels) => runAttentionBoth(kern, { q, k, val, dO, ranges, offsets }, M, H, kvHeads, hs, [new Float32Array(q.length), new Float32Array(k.length), new Float32Array(val.length)]);
        const a = run(jsKernels),
          b = run(wasm);
        a.forEach((x, i) => expect(maxRelativeError(b[i], x)).toBeLessThan(1e-5));
      }),
      { numRuns: 60, endOnFailure: true },
    );
  });

  it("attention agrees on the vector paths too: 16/8/4-key blocks and tails, head sizes 1..17, empty second ranges, constant leading keys", () => {
    fc.assert(
      fc.property(seedArb, fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 17 }), fc.integer({ min: 1, max: 70 }), (seed, M, kvHeads, group, hs, nKeys) => {
        const next = rng(seed),
          H = kvHeads * group,
          v = (n: number) => Float32Array.from({ length: n }, () => 4 * next() - 2);
        const { q, k, val, dO, ranges, offsets } = attentionCase(next, v, M, H, kvHeads, hs, nKeys, 0.3);
        const run = (kern: typeof jsKernels) => runAttentionBoth(kern, { q, k, val, dO, ranges, offsets }, M, H, kvHeads, hs, [v(q.length).fill(0.5), new Float32Array(k.length).fill(-0.25), new Float32Array(val.length).fill(0.125)]);
        const a = run(jsKernels),
          b = run(wasm);
        a.forEach((x, i) => expect(maxRelativeError(b[i], x)).toBeLessThan(1e-5));
        // deterministic: the same inputs give the same bits
        run(wasm).forEach((x, i) => expect(x).toEqual(b[i]));
        // Constant leading keys (kvFrom): their dk, dv rows stay as they were, everything else is unchanged.
        const kvFrom = Math.floor(next() * (nKeys + 1)),
          cut = kvFrom * kvHeads * hs;
        for (const [kern, full] of [
          [jsKernels, a],
          [wasm, b],
        ] as const) {
          const dq = v(q.length).fill(0.5),
            dk = new Float32Array(k.length).fill(-0.25),
            dv = new Float32Array(val.length).fill(0.125);
          kern.attentionBackward(dq, dk, dv, dO, full[1], q, k, val, ranges, offsets, M, H, kvHeads, hs, 1 / Math.sqrt(hs), kvFrom);
          expect(dq).toEqual(full[2]);
          expect(dk.subarray(0, cut).every((x) => x === -0.25) && dv.subarray(0, cut).every((x) => x === 0.125)).toBe(true);
          expect(dk.subarray(cut)).toEqual(full[3].subarray(cut));
          expect(dv.subarray(cut)).toEqual(full[4].subarray(cut));
        }
      }),
      { numRuns: 80, endOnFailure: true },
    );
  });

  it("the dense products agree on the 4x8 tiles and every row / column tail (sizes up to 21 x 70 x 19)", () => {
    fc.assert(
      fc.property(seedArb, fc.integer({ min: 1, max: 21 }), fc.integer({ min: 1, max: 70 }), fc.integer({ min: 1, max: 19 }), (seed, M, K, N) => {
        const problem = matmulProblem(seed, M, K, N);
        // The WASM output starts as garbage: every element must be written.
        for (const [a, b] of denseProductsBoth(wasm, problem, M, K, N, problem.v(M * N))) expect(maxRelativeError(a, b)).toBeLessThan(1e-5);
      }),
      { numRuns: 60, endOnFailure: true },
    );
  });

  it("swiglu's kernels agree, tails and saturated gates (|gate| up to 200) included", () => {
    fc.assert(
      fc.property(seedArb, fc.integer({ min: 0, max: 37 }), fc.constantFrom(1, 10, 200), (seed, n, range) => {
        const next = rng(seed),
          v = (n: number, r: number) => Float32Array.from({ length: n }, () => r * (2 * next() - 1));
        const gate = v(n, range),
          up = v(n, 2);
        const y1 = new Float32Array(n),
          s1 = new Float32Array(n),
          y2 = new Float32Array(n),
          s2 = new Float32Array(n);
        jsKernels.swiglu(y1, s1, gate, up, n);
        wasm.swiglu(y2, s2, gate, up, n);
        expect(maxRelativeError(s2, s1)).toBeLessThan(1e-5);
        expect(maxRelativeError(y2, y1)).toBeLessThan(1e-5);
        const dy = v(n, 1),
          dg = v(n, 1),
          du = v(n, 1);
        const dg1 = dg.slice(),
          du1 = du.slice(),
          dg2 = dg.slice(),
          du2 = du.slice();
        jsKernels.swigluBackward(dg1, du1, dy, gate, up, s1, n);
        wasm.swigluBackward(dg2, du2, dy, gate, up, s1, n);
        expect(maxRelativeError(dg2, dg1)).toBeLessThan(1e-5);
        expect(maxRelativeError(du2, du1)).toBeLessThan(1e-5);
        // one of the two gradients absent: the other is the same
        const dg3 = dg.slice(),
          du3 = du.slice();
        wasm.swigluBackward(dg3, null, dy, gate, up, s1, n);
        wasm.swigluBackward(null, du3, dy, gate, up, s1, n);
        expect(dg3).toEqual(dg2);
        expect(du3).toEqual(du2);
      }),
      { numRuns: 60, endOnFailure: true },
    );
  });

  it("the whole student loss passes the gradient check on the WASM kernels too", () => {
    const prev = useTrainKernels(wasm);
    try {
      fc.assert(
        fc.property(tinyCheckpoint, studentSpecArb("O"), seedArb, (ckpt, spec, seed) => {
          const next = rng(seed),
            cfg = ckpt.config;
          const student = makeStudent(ckpt, spec);
          atTrainedScale(student);
          const st = trainableStudent(student, cfg);
          const n = 8,
            tokens = Array.from({ length: n }, () => Math.floor(next() * cfg.vocabSize));
          const rows = windowRows(
            "O",
            tokens,
            Float32Array.from({ length: n }, () => next()),
            [1 + Math.floor(next() * 7)],
            3,
            1,
            slotKind(spec),
          );
          const ctx = randomContext(cfg, n, kvDim(cfg), next);
          const tensors = st.params.map((p) => new Tensor(p.data, p.shape, p.grad));
          passes(gradCheck(tensors, (t) => windowLoss(t, "O", studentLogits(t, cfg, constantWeights(ckpt), st, ctx, rows), rows, "ce", 1), seed, 3));
        }),
        { numRuns: 8, endOnFailure: true, reporter },
      );
    } finally {
      useTrainKernels(prev);
    }
  });
});

/**
 * Scales a fresh student's aux embedding and start vector up to a trained
 * student's size (untrained they are +-0.02). At the untrained size the
 * finite-difference step for those inputs shrinks with them (see gradCheck),
 * and float32 rounding in the loss then swamps the difference quotient: one
 * WASM case read 0.091 against a true 0.064 that a 20x larger step confirms.
 */
function atTrainedScale(student: Student): void {
  for (const a of [student.weights.aux.weight, student.weights.aux.bias, student.weights.aux.anchors, student.weights.start]) a?.forEach((v, i) => (a[i] = v * 30));
}

/** Random constant context keys/values for a teacher config. */
function randomContext(cfg: { nLayers: number; dim: number }, rows: number, kv: number, next: () => number) {
  const mk = () => Float32Array.from({ length: rows * kv }, () => 2 * next() - 1);
  // The final hidden states a student's extra blocks read (spec/ptp.md 2.4).
  return { keys: Array.from({ length: cfg.nLayers }, mk), values: Array.from({ length: cfg.nLayers }, mk), length: rows, hidden: Float32Array.from({ length: rows * cfg.dim }, () => 2 * next() - 1) };
}

describe("GRAD-LOSS: the whole PTP student loss", () => {
  it("O-PTP and C-PTP losses (CE, KL, reverse KL, gamma) match finite differences in every kind of parameter", () => {
    fc.assert(
      fc.property(tinyCheckpoint, studentSpecArb(), seedArb, fc.constantFrom<LossKind>("ce", "kl", "rkl"), fc.constantFrom(1, 0.8), (ckpt, spec, seed, kind, gamma) => {
        const next = rng(seed),
          cfg = ckpt.config;
        const student = makeStudent(ckpt, spec);
        atTrainedScale(student);
        const st = trainableStudent(student, cfg);
        // A query student's window needs 2 slots for one row (its slot 0 is the teacher's own row).
        const n = 6 + Math.floor(next() * 6),
          L = (slotKind(spec) === "query" ? 2 : 1) + Math.floor(next() * 4);
        const tokens = Array.from({ length: n }, () => Math.floor(next() * cfg.vocabSize));
        const us = Float32Array.from({ length: n }, () => next());
        // A query window trains slots 1.., so its start needs a token after it (distill draws them so).
        const room = n - 1 - (slotKind(spec) === "query" ? 1 : 0);
        const starts = [1 + Math.floor(next() * room), 1 + Math.floor(next() * room)];
        const rows = windowRows(spec.variant, tokens, us, starts, L, gamma, slotKind(spec));
        const ctx = randomContext(cfg, n, kvDim(cfg), next);
        const loss = spec.variant === "O" ? "ce" : kind;
        const teacherLogits = Float32Array.from({ length: rows.positions.length * cfg.vocabSize }, () => 2 * next() - 1);
        const weights = constantWeights(ckpt);
        const tensors = st.params.map((p) => new Tensor(p.data, p.shape, p.grad));
        passes(gradCheck(tensors, (t) => windowLoss(t, spec.variant, studentLogits(t, cfg, weights, st, ctx, rows), rows, loss, 0.8, teacherLogits), seed, 3));
      }),
      { numRuns: 15, endOnFailure: true, reporter, ...(process.env.GRAD_SEED ? { seed: Number(process.env.GRAD_SEED), path: process.env.GRAD_PATH } : {}) },
    );
  });

  it("a standalone draft model's PTP loss matches finite differences in every weight", () => {
    fc.assert(
      fc.property(tinyCheckpoint, seedArb, fc.constantFrom<"O" | "C">("O", "C"), fc.boolean(), (ckpt, seed, variant, hybrid) => {
        const next = rng(seed),
          cfg = ckpt.config;
        const draft = randomDraft(ckpt, "t", { variant, aux: { kind: "anchors" }, window: 3, hybrid, seed, config: { dim: 8, hiddenDim: 12, nLayers: 1, nHeads: 2, nKvHeads: 1 } });
        const d = trainableDraft(draft);
        const n = 8,
          tokens = Array.from({ length: n }, () => Math.floor(next() * cfg.vocabSize));
        const rows = windowRows(
          variant,
          tokens,
          Float32Array.from({ length: n }, () => next()),
          [1 + Math.floor(next() * 7), 1 + Math.floor(next() * 7)],
          3,
          1,
          hybrid ? "hybrid" : "aux",
        );
        const tensors = d.params.map((p) => new Tensor(p.data, p.shape, p.grad));
        passes(gradCheck(tensors, (t) => windowLoss(t, variant, draftLogits(t, d, tokens, rows), rows, "ce", 0.8), seed, 3));
      }),
      { numRuns: 10, endOnFailure: true, reporter },
    );
  });

  it("next-token loss of a model trained from scratch matches finite differences in every weight", () => {
    fc.assert(
      fc.property(tinyCheckpoint, seedArb, (ckpt, seed) => {
        const next = rng(seed),
          cfg = ckpt.config,
          T = 5;
        const { params, weights } = trainableWeights(ckpt);
        const ids = Int32Array.from({ length: 2 * T }, () => Math.floor(next() * cfg.vocabSize));
        const positions = Int32Array.from({ length: 2 * T }, (_, i) => i % T);
        const visible = new Int32Array(8 * T);
        for (let r = 0; r < 2 * T; r++) visible.set([r - (r % T), r + 1, 0, 0], 4 * r);
        const targets = Int32Array.from({ length: 2 * T }, () => Math.floor(next() * cfg.vocabSize));
        const w = new Float32Array(2 * T).fill(1);
        const tensors = params.map((p) => new Tensor(p.data, p.shape, p.grad));
        const build = (t: Tape) => crossEntropy(t, forwardRows(t, cfg, weights, { x: embedding(t, weights.tokenEmbedding, ids), positions, visible }), targets, w);
        passes(gradCheck(tensors, build, seed, 3));
      }),
      { numRuns: 15, endOnFailure: true, reporter, ...(process.env.GRAD_SEED ? { seed: Number(process.env.GRAD_SEED), path: process.env.GRAD_PATH } : {}) },
    );
  });
});

/** One window over 8 random tokens: the tokens, a u per position (window included) and the window's start, drawn from `next` in that order. */
function oneWindowCase(next: () => number, vocab: number, L: number) {
  const n = 8;
  const tokens = Array.from({ length: n }, () => Math.floor(next() * vocab));
  const us = Float32Array.from({ length: n + L }, () => next());
  return { n, tokens, us, s: 1 + Math.floor(next() * (n - 1)) };
}

describe("TRAIN-GRAPH-EQ-INFER: the training graph computes what the decoders run", () => {
  it("draft-model logits of a window equal DraftModel.forward's on the js backend (within float32 rounding)", async () => {
    const js = await createBackend("js");
    fc.assert(
      fc.property(tinyCheckpoint, seedArb, fc.constantFrom<"O" | "C">("O", "C"), fc.integer({ min: 1, max: 4 }), fc.boolean(), (ckpt, seed, variant, L, hybrid) => {
        const next = rng(seed),
          cfg = ckpt.config;
        const draft = randomDraft(ckpt, "t", { variant, aux: { kind: "digits", digits: 10 }, window: L, hybrid, seed, config: { dim: 8, hiddenDim: 12, nLayers: 2, nHeads: 2, nKvHeads: 1 } });
        const { tokens, us, s } = oneWindowCase(next, cfg.vocabSize, L);
        return withTeacherModel(
          js,
          ckpt,
          (teacher) => new DraftModel(teacher, draft),
          (dm) => {
            const cache = dm.newCache();
            dm.forward({ tokens: tokens.slice(0, s), positions: tokens.slice(0, s).map((_, i) => i) }, cache);
            const nKeys = s + L,
              mask = new Uint8Array(L * nKeys),
              emb = new Float32Array(L * draft.config.model.dim);
            for (let j = 0; j < L; j++) {
              // A hybrid slot 0 stands in for the last context row: the window does not see that row.
              mask.fill(1, j * nKeys, j * nKeys + s + j + 1);
              if (hybrid) mask[j * nKeys + s - 1] = 0;
              emb.set(dm.slotInput(us[s + j], j > 0 ? us[s + j - 1] : undefined, j === 0 ? tokens[s - 1] : undefined), j * draft.config.model.dim);
            }
            const infer = dm.forward({ tokens: new Array(L).fill(-1), embeddings: emb, positions: Array.from({ length: L }, (_, j) => s - 1 + j), mask }, cache);
            cache.free();
            const rows = windowRows(variant, [...tokens, ...new Array(L).fill(0)], us, [s], L, 1, hybrid ? "hybrid" : "aux");
            const logits = draftLogits(new Tape(), trainableDraft(draft), tokens, rows);
            expect(maxRelativeError(logits.data, infer)).toBeLessThan(1e-4);
          },
        );
      }),
      { numRuns: 30, endOnFailure: true, reporter },
    );
  });

  it("student logits of a window equal PtpModel.forward's on the js backend (within float32 rounding)", async () => {
    const js = await createBackend("js");
    fc.assert(
      fc.property(tinyCheckpoint, studentSpecArb(), seedArb, (ckpt, spec, seed) => {
        const next = rng(seed),
          cfg = ckpt.config;
        const student = makeStudent(ckpt, spec);
        const L = spec.window;
        const { tokens, us, s } = oneWindowCase(next, cfg.vocabSize, L);
        return withTeacherModel(
          js,
          ckpt,
          (teacher) => new PtpModel(teacher, student),
          (model, teacher) => {
            // Inference: the context, then one proposal window as a block with a mask.
            const cache = model.newCache();
            model.forward({ tokens: tokens.slice(0, s), positions: tokens.slice(0, s).map((_, i) => i) }, cache, 0);
            const hidden = teacher.lastHidden();
            const nKeys = s + L,
              mask = new Uint8Array(L * nKeys),
              emb = new Float32Array(L * cfg.dim);
            // A query student's slot 0 is a row reading the last context token (the teacher's own row).
            const query = slotKind(spec) === "query",
              blockTokens = new Array(L).fill(-1);
            for (let j = 0; j < L; j++) {
              mask.fill(1, j * nKeys, j * nKeys + (spec.hybrid ? s - 1 : s));
              mask.fill(1, j * nKeys + s, j * nKeys + s + j + 1);
              if (j === 0 && query) blockTokens[0] = tokens[s - 1];
              else emb.set(model.slotInput(us[s + j], j > 0 ? us[s + j - 1] : undefined, j === 0 ? tokens[s - 1] : undefined), j * cfg.dim);
            }
            // Pick feedback: slot 1 (with "chain" every slot j >= 1) reads the pick before it, which training takes from the data (t_{s+j-1}).
            const padded = [...tokens, ...new Array(L).fill(0)];
            const reads = (j: number) => j >= 1 && (spec.pickFeedback === "chain" || (spec.pickFeedback === "first" && j === 1));
            const feedback = Array.from({ length: L }, (_, j) => j)
              .filter(reads)
              .map((j) => ({ row: j, from: j - 1, pick: () => padded[s + j - 1] }));
            const all = model.forward({ tokens: blockTokens, embeddings: emb, positions: Array.from({ length: L }, (_, j) => s - 1 + j), mask }, cache, L, feedback);
            // The training graph has no row for a query slot 0; the teacher's row there is checked by PTP-QUERY-C0.
            const infer = query ? all.subarray(cfg.vocabSize) : all;
            const kv = kvDim(cfg);
            const teacherLayers = cache.keys.slice(0, cfg.nLayers),
              teacherValues = cache.values.slice(0, cfg.nLayers);
            const ctx = { keys: teacherLayers.map((b) => js.download(b, 0, s * kv)), values: teacherValues.map((b) => js.download(b, 0, s * kv)), length: s, hidden };
            cache.free();
            // Training graph: the same window (targets beyond the tokens do not matter here).
            const weights = constantWeights(ckpt),
              st = trainableStudent(student, cfg);
            const graph = (u: Float32Array) => studentLogits(new Tape(), cfg, weights, st, ctx, windowRows(spec.variant, padded, u, [s], L, 1, slotKind(spec))).data;
            const logits = studentLogits(new Tape(), cfg, weights, st, ctx, windowRows(spec.variant, padded, us, [s], L, 1, slotKind(spec)));
            expect(logits.data.length).toBe(infer.length);
            const slotUs = spec.aux === "anchors" ? Array.from({ length: L + 1 }, (_, j) => s - 1 + j) : [];
            if (infer.length > 0) expect(maxRelativeError(logits.data, infer)).toBeLessThan(roundingBound(graph, us, slotUs, logits.data, st.params, weights));
          },
        );
      }),
      { numRuns: 30, endOnFailure: true, reporter },
    );
  });

  it("the single-call decoder's slot logits (branches over draft rows and runner-up rows, several prompts, hybrid or not) equal the training graph's for the same tokens and u's", async () => {
    const js = await createBackend("js");
    let runnerUpWindows = 0;
    fc.assert(
      fc.property(tinyCheckpoint, studentSpecArb(), seedArb, fc.integer({ min: 1, max: 3 }), (ckpt, spec, seed, nPrompts) => {
        const next = rng(seed),
          cfg = ckpt.config;
        const student = makeStudent(ckpt, { ...spec, window: Math.max(2, spec.window) });
        return withTeacherModel(
          js,
          ckpt,
          (teacher) => new PtpModel(teacher, student),
          (model, teacher) => {
            const prompts = Array.from({ length: nPrompts }, () => [1, ...Array.from({ length: 1 + Math.floor(next() * 4) }, () => 2 + Math.floor(next() * (cfg.vocabSize - 2)))]);
            // Each proposal window of each call: the tokens it conditions on (finalized, then the drafts
            // its branch assumes accepted), its u's by position, and the logits the call gave its slots.
            const windows: { context: number[]; us: Map<number, number>; logits: Float32Array[]; fed: (number | undefined)[] }[] = [];
            const inner = makeDecoder(model, { decoder: "single-call", steps: 0, sampling: { temperature: 0, topK: 0, topP: 1 }, aux: [] });
            // Pick feedback: the token each slot read (slot 1: its window's first pick; with "chain" slot j >= 1: slot j - 1's draft), made inside the call.
            const fed = new Map<SlotRow, number>();
            const spy: Decoder = {
              name: "spy",
              plan(seq) {
                const group = inner.plan(seq);
                for (const slot of group.slots) {
                  const f = slot.feedback;
                  if (f) slot.feedback = { from: f.from, pick: (logits) => (fed.set(slot, f.pick(logits)), fed.get(slot)!) };
                }
                return group;
              },
              accept(seq, group, out) {
                const B = group.base.length,
                  next = seq.next;
                let i = 0;
                while (i < group.slots.length) {
                  // The window's context by position: finalized tokens, then the base rows it sees (drafts, a
                  // runner-up); a hybrid window stands in for the row at its first slot's position, which it
                  // does not see: a base row there that sees exactly what the window sees (a draft and its
                  // runner-up both do), reading the token its first slot takes.
                  const first = group.slots[i],
                    seenBase = first.sees.filter((x) => x < B),
                    last = first.position;
                  const readsToken = (t: number) => (typeof first.input === "number" ? first.input === t : model.slotInput(seq.u.forStudent(last + 1), undefined, t).every((v, d) => Object.is(v, (first.input as Float32Array)[d])));
                  const standIn = () =>
                    group.base.findIndex((b, x) => {
                      const its = (b.sees ?? Array.from({ length: x + 1 }, (_, r) => r)).filter((r) => r !== x);
                      return b.position === last && its.length === seenBase.length && its.every((r, k) => r === seenBase[k]) && readsToken(b.token);
                    });
                  const context = seq.tokens.slice(0, Math.min(next, last + 1));
                  for (let k = next; k <= last; k++) {
                    const x = seenBase.find((r) => group.base[r].position === k) ?? standIn();
                    if (k === last && group.base[x].sees !== undefined) runnerUpWindows++; // only runner-up rows list their own sees
                    context.push(group.base[x].token);
                  }
                  const s = context.length;
                  let L = 1;
                  while (i + L < group.slots.length && group.slots[i + L].sees.includes(B + i)) L++;
                  const us = new Map<number, number>();
                  for (let k = s - 1; k < s + L; k++) if (k >= seq.promptLength) us.set(k, seq.u.forStudent(k));
                  windows.push({ context, us, logits: out.slots.slice(i, i + L), fed: group.slots.slice(i, i + L).map((slot) => fed.get(slot)) });
                  i += L;
                }
                return inner.accept(seq, group, out);
              },
            };
            const sampling = { temperature: 0.8, topK: 0, topP: 1 };
            decodeWith(model, prompts, spy, { steps: 14, sampling, aux: prompts.map((_, p) => new ArrayAux(uniformUs(seed + p))) });
            expect(windows.some((w) => w.context.length > 0)).toBe(true);
            const weights = constantWeights(ckpt),
              st = trainableStudent(student, cfg);
            for (const w of windows) {
              const s = w.context.length,
                L = w.logits.length;
              const us = new Float32Array(s + L).fill(0.5);
              for (const [k, u] of w.us) us[k] = u;
              const { context } = teacherContext(teacher, w.context, false, spec.extraBlocks !== undefined && spec.extraBlocks > 0);
              // The tokens after the context are only targets, except those the slots read with pick feedback: slot j reads t_{s+j-1}.
              const tokens = [...w.context, ...Array.from({ length: L }, (_, j) => w.fed[j + 1] ?? 0)];
              if (spec.pickFeedback && L > 1) expect(w.fed[1]).toBeGreaterThanOrEqual(0);
              if (spec.pickFeedback === "chain") w.fed.slice(1).forEach((t) => expect(t).toBeGreaterThanOrEqual(0));
              const graph = (u: Float32Array) => studentLogits(new Tape(), cfg, weights, st, context, windowRows(spec.variant, tokens, u, [s], L, 1, slotKind(spec))).data;
              const rows = windowRows(spec.variant, tokens, us, [s], L, 1, slotKind(spec));
              const logits = studentLogits(new Tape(), cfg, weights, st, context, rows);
              // A query slot 0 has no training row (it is the teacher's own row there).
              const first = rows.first,
                infer = new Float32Array((L - first) * cfg.vocabSize);
              w.logits.slice(first).forEach((l, j) => infer.set(l, j * cfg.vocabSize));
              expect(logits.data.length).toBe(infer.length);
              if (infer.length > 0) expect(maxRelativeError(logits.data, infer)).toBeLessThan(roundingBound(graph, us, spec.aux === "anchors" ? [...w.us.keys()] : [], logits.data, st.params, weights));
            }
          },
        );
      }),
      { numRuns: 20, endOnFailure: true, reporter },
    );
    // Not vacuous for runner-up rows: some windows started on one.
    expect(runnerUpWindows).toBeGreaterThan(0);
  });
});

describe("GRAD-LORA-FUSED: linearLora is add(linear(x, W), scale(linear(linear(x, A), B), s)) exactly", () => {
  it("the same output and the same gradients in every input, bit for bit, on the js and the WASM kernels", () => {
    const wasm = wasmTrainKernels();
    fc.assert(
      fc.property(seedArb, fc.integer({ min: 1, max: 13 }), fc.integer({ min: 1, max: 19 }), fc.integer({ min: 1, max: 17 }), fc.integer({ min: 1, max: 9 }), fc.boolean(), fc.boolean(), (seed, M, K, N, r, xTrains, wTrains) => {
        const next = rng(seed),
          s = 2 * next() - 1;
        const data = (n: number) => Float32Array.from({ length: n }, () => 2 * next() - 1);
        const x0 = data(M * K),
          w0 = data(N * K),
          a0 = data(r * K),
          b0 = data(N * r),
          c = data(M * N);
        for (const kern of [jsKernels, wasm]) {
          const prev = useTrainKernels(kern);
          try {
            const run = (fused: boolean) => {
              const x = new Tensor(x0.slice(), [M, K], xTrains ? new Float32Array(M * K) : null);
              const w = new Tensor(w0.slice(), [N, K], wTrains ? new Float32Array(N * K) : null);
              const a = new Tensor(a0.slice(), [r, K], new Float32Array(r * K)),
                b = new Tensor(b0.slice(), [N, r], new Float32Array(N * r));
              const tape = new Tape();
              const y = fused ? linearLora(tape, x, w, a, b, s) : add(tape, linear(tape, x, w), scale(tape, linear(tape, linear(tape, x, a), b), s));
              const L = tape.output([1], [y], Float32Array.of(0));
              tape.record(L, (d) => {
                for (let i = 0; i < c.length; i++) y.grad![i] += d[0] * c[i];
              });
              tape.backward(L);
              return [y.data, x.grad ?? new Float32Array(0), w.grad ?? new Float32Array(0), a.grad!, b.grad!];
            };
            const fused = run(true),
              plain = run(false);
            fused.forEach((f, i) => expect(f).toEqual(plain[i]));
          } finally {
            useTrainKernels(prev);
          }
        }
      }),
      { numRuns: 60, endOnFailure: true },
    );
  });
});

describe("TAPE-POOL: a tape on a BufferPool computes the same bits as one on fresh arrays", () => {
  it("losses and every gradient agree bit for bit over several steps of varying shapes (reused arrays are dirty); a released tape refuses new arrays", () => {
    fc.assert(
      fc.property(tinyCheckpoint, studentSpecArb(), seedArb, (ckpt, spec, seed) => {
        const cfg = ckpt.config;
        const student = makeStudent(ckpt, spec);
        atTrainedScale(student);
        const st = trainableStudent(student, cfg);
        const weights = constantWeights(ckpt);
        const pool = new BufferPool();
        const run = (pooled: boolean) => {
          const next = rng(seed);
          const out: Float32Array[] = [];
          for (let step = 0; step < 3; step++) {
            const n = 6 + Math.floor(next() * 6),
              L = (slotKind(spec) === "query" ? 2 : 1) + Math.floor(next() * 3);
            const tokens = Array.from({ length: n }, () => Math.floor(next() * cfg.vocabSize));
            const us = Float32Array.from({ length: n }, () => next());
            const room = n - 1 - (slotKind(spec) === "query" ? 1 : 0);
            const rows = windowRows(spec.variant, tokens, us, [1 + Math.floor(next() * room)], L, 1, slotKind(spec));
            const ctx = randomContext(cfg, n, kvDim(cfg), next);
            const teacherLogits = Float32Array.from({ length: rows.positions.length * cfg.vocabSize }, () => 2 * next() - 1);
            for (const p of st.params) p.grad.fill(0);
            const tape = new Tape(undefined, pooled ? pool : undefined);
            const loss = windowLoss(tape, spec.variant, studentLogits(tape, cfg, weights, st, ctx, rows), rows, spec.variant === "O" ? "ce" : "kl", 0.8, teacherLogits);
            tape.backward(loss);
            out.push(loss.data.slice(), ...st.params.map((p) => p.grad.slice()));
            tape.release();
            expect(() => tape.alloc(1)).toThrow(/after release/);
          }
          return out;
        };
        const fresh = run(false);
        expect(pool.heldBytes).toBe(0);
        const pooled = run(true);
        expect(pool.heldBytes).toBeGreaterThan(0);
        expect(pooled).toEqual(fresh);
        // Runs again over the pool's now-dirty arrays: still the same bits.
        expect(run(true)).toEqual(fresh);
      }),
      { numRuns: 12, endOnFailure: true },
    );
  });

  it("the pool keeps no more free memory than the largest tape took, and hands out zeroed arrays", () => {
    const pool = new BufferPool();
    const big = [new Float32Array(100).fill(1), new Float32Array(50).fill(2)];
    pool.give(big);
    expect(pool.heldBytes).toBe(600);
    const a = pool.take(100);
    expect(a).toBe(big[0]);
    expect(a.every((x) => x === 0)).toBe(true);
    expect(pool.take(7)).toHaveLength(7);
    // A smaller tape's arrays on top of the free 50: over the 600-byte peak, the smallest go first.
    pool.give([a, new Float32Array(10), new Float32Array(20)]);
    expect(pool.heldBytes).toBeLessThanOrEqual(600);
    expect(pool.take(100)).toBe(a);
  });
});
