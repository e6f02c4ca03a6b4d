import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createBackend } from "../src/backends/registry.js";
import type { ModelConfig } from "../src/model/config.js";
import { kvDim } from "../src/model/config.js";
import { randomCheckpoint } from "../src/model/init.js";
import { Transformer } from "../src/model/transformer.js";
import type { Checkpoint } from "../src/model/weights.js";
import { parseStudent, readStudent, serializeStudent, writeStudent } from "../src/ptp/files/adapter-file.js";
import { randomStudent } from "../src/ptp/init.js";
import type { PickFeedbackKind, Student } from "../src/ptp/student-weights.js";
import { addEmbeddingRows, concatRows, sliceRows, Tape, Tensor } from "../src/train/autograd/index.js";
import { DataParallel } from "../src/train/data-parallel.js";
import type { SequenceJob } from "../src/train/distill-step.js";
import { constantWeights, head, layerStack, type ConstantContext } from "../src/train/graph.js";
import { AdamW } from "../src/train/optim.js";
import type { Param } from "../src/train/param.js";
import { fedPicks, slotInputs, studentLogits, windowLoss, windowRows, type WindowRows } from "../src/train/ptp-windows.js";
import { trainableStudent } from "../src/train/student-params.js";
import { teacherContext } from "../src/train/teacher-context.js";
import { maxRelativeError, pregenFixture, rng, runCli, tinyCheckpoint } from "./helpers.js";
import { lastFlagWins, withoutFlags } from "./flag-args.js";
import { makeStudent, slotKind, studentSpecArb, type StudentSpec } from "./ptp-helpers.js";

/**
 * A student's extra blocks in training (spec/ptp.md 2.4): the slot rows run
 * them after the teacher's layers; the context rows give each block keys and
 * values projected from their final hidden states.
 */

const seedArb = fc.integer({ min: 1, max: 1 << 30 });
const reporter = <T>(out: fc.RunDetails<T>): void => {
  if (out.failed) throw new Error(`property failed (seed ${out.seed}, path ${out.counterexamplePath}): ${out.errorInstance instanceof Error ? out.errorInstance.message : String(out.errorInstance)}`);
};

/** Random constant context keys and values per layer, and final hidden states, of `n` rows. */
function randomContext(cfg: ModelConfig, n: number, next: () => number): ConstantContext {
  const mk = (length: number) => Float32Array.from({ length }, () => 2 * next() - 1);
  const kv = kvDim(cfg);
  return { keys: Array.from({ length: cfg.nLayers }, () => mk(n * kv)), values: Array.from({ length: cfg.nLayers }, () => mk(n * kv)), length: n, hidden: mk(n * cfg.dim) };
}

/** Random windows of up to 3 slots over n random tokens (a query student's window has at least 2). */
function randomWindows(cfg: ModelConfig, spec: StudentSpec, next: () => number): { tokens: number[]; rows: WindowRows } {
  const n = 6 + Math.floor(next() * 6),
    kind = slotKind(spec),
    L = (kind === "query" ? 2 : 1) + Math.floor(next() * 2);
  const tokens = Array.from({ length: n }, () => Math.floor(next() * cfg.vocabSize));
  const us = Float32Array.from({ length: n }, () => next());
  const room = n - 1 - (kind === "query" ? 1 : 0);
  const starts = [1 + Math.floor(next() * room), 1 + Math.floor(next() * room)];
  return { tokens, rows: windowRows(spec.variant, tokens, us, starts, L, 0.9, kind) };
}

/** The same student without its extra blocks (the same arrays otherwise). */
function withoutExtra(s: Student): Student {
  const { extraBlocks: _e, pickFeedback: _p, ...config } = s.config;
  const { extra: _x, feedback: _f, ...weights } = s.weights;
  return { config, weights };
}

const f32 = Math.fround;

/**
 * The first param element whose backward gradient differs from finite
 * differences of `loss` (central, Richardson-extrapolated at h and h/2,
 * retried once at h/8 where the model is strongly curved), or null. The
 * tolerance is train-autograd.test.ts's: 2e-3 + 2e-2 * max(|analytic|, |numeric|).
 */
function gradientMismatch(params: readonly Param[], loss: (tape: Tape) => Tensor, next: () => number, samples = 3): string | null {
  for (const p of params) p.grad.fill(0);
  const tape = new Tape();
  tape.backward(loss(tape));
  const value = () => loss(new Tape()).data[0];
  const central = (p: Param, i: number, h: number) => {
    const x = p.data[i];
    p.data[i] = f32(x + h);
    const hi = p.data[i],
      lp = value();
    p.data[i] = f32(x - h);
    const lo = p.data[i],
      lm = value();
    p.data[i] = x;
    return (lp - lm) / (hi - lo);
  };
  for (const p of params) {
    const maxAbs = p.data.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const h = 1e-2 * Math.min(1, Math.max(maxAbs, 0.05));
    for (let s = 0; s < samples; s++) {
      const i = Math.floor(next() * p.data.length),
        analytic = p.grad[i];
      const close = (numeric: number) => Math.abs(analytic - numeric) <= 2e-3 + 2e-2 * Math.max(Math.abs(analytic), Math.abs(numeric));
      const richardson = (step: number) => (4 * central(p, i, step / 2) - central(p, i, step)) / 3;
      // Smaller steps where a larger one straddles a kink of the loss (a pick that changes within +-h). Seed -491676842,
      // path 2 of TRAIN-FEEDBACK-GRAD: wq.lora_A[3] reads -8.1 at h, 1.44 at h/8 and 1.65 from h/64 on (backward 1.652);
      // aux.bias[0] reads 981 at h/8, -78 at h/64 and -247 from h/512 on (backward -248.4). The tolerance is unchanged.
      let numeric = richardson(h);
      for (const shrink of [8, 64, 512, 4096]) if (!close(numeric)) numeric = richardson(h / shrink);
      if (!close(numeric)) return `${p.name}[${i}]: backward ${analytic}, finite differences ${numeric}`;
    }
  }
  return null;
}

/** Extra-block specs: 1 or 2 random, non-zero blocks. */
const extraSpecArb = studentSpecArb().map((s) => ({ ...s, extraBlocks: 1 + (s.seed % 2) }));

/** Query C-PTP students with extra blocks and pick feedback (a random table). */
const feedbackSpecArb = fc.tuple(studentSpecArb("C"), fc.constantFrom<PickFeedbackKind>("first", "chain")).map(([s, kind]) => ({ ...s, hybrid: true, query: true, extraBlocks: 1 + (s.seed % 2), pickFeedback: kind }));

describe("TRAIN-EXTRA-GRAPH: the extra blocks in the training graph", () => {
  it("the loss matches finite differences in every param, the extra blocks' (context side included) and the LoRA's", () => {
    fc.assert(
      fc.property(tinyCheckpoint, extraSpecArb, seedArb, (ckpt, spec, seed) => {
        const next = rng(seed),
          cfg = ckpt.config;
        const student = makeStudent(ckpt, spec);
        // Aux embedding and start vector at a trained student's scale (untrained they are +-0.02).
        for (const a of [student.weights.aux.weight, student.weights.aux.bias, student.weights.aux.anchors, student.weights.start]) a?.forEach((v, i) => (a[i] = v * 30));
        const st = trainableStudent(student, cfg);
        expect(st.extra).toHaveLength(spec.extraBlocks);
        expect(st.params.filter((p) => p.name.startsWith("extra.")).map((p) => p.name)).toEqual(Array.from({ length: spec.extraBlocks }, (_, e) => ["rms_att", "rms_ffn", "wq", "wk", "wv", "wo", "w1", "w2", "w3"].map((n) => `extra.${e}.${n}`)).flat());
        const { tokens, rows } = randomWindows(cfg, spec, next);
        const ctx = randomContext(cfg, tokens.length, next);
        const weights = constantWeights(ckpt);
        const loss = spec.variant === "O" ? "ce" : "kl";
        const teacherLogits = Float32Array.from({ length: rows.positions.length * cfg.vocabSize }, () => 2 * next() - 1);
        const mismatch = gradientMismatch(st.params, (t) => windowLoss(t, spec.variant, studentLogits(t, cfg, weights, st, ctx, rows), rows, loss, 0.8, teacherLogits), next);
        if (mismatch !== null) throw new Error(mismatch);
      }),
      { numRuns: 8, endOnFailure: true, reporter },
    );
  });

  it("TRAIN-FEEDBACK-GRAD: with pick feedback the loss matches finite differences in the table too, whose rows of the picks read (slot 1's, or with chain every slot's) get gradients, and no other row", () => {
    fc.assert(
      fc.property(tinyCheckpoint, feedbackSpecArb, seedArb, (ckpt, spec, seed) => {
        const next = rng(seed),
          cfg = ckpt.config;
        const student = makeStudent(ckpt, spec);
        const st = trainableStudent(student, cfg);
        const table = st.params.find((p) => p.name === "feedback")!;
        expect(table.shape).toEqual([cfg.vocabSize, cfg.dim]);
        const { tokens, rows } = randomWindows(cfg, spec, next);
        // Slot 1 of each window (with chain every slot j >= 1) reads the data's token at its own position, t_{s+j-1}; a row past the end (weight 0) reads none.
        const read = new Set<number>();
        fedPicks(rows, spec.pickFeedback).forEach((t, r) => {
          if (t >= 0) read.add(t);
          const reads = rows.weights[r] > 0 && (spec.pickFeedback === "chain" || rows.positions[r] === rows.starts[Math.floor(r / (rows.L - 1))]);
          expect(t).toBe(reads ? tokens[rows.positions[r]] : -1);
        });
        expect(read.size).toBeGreaterThan(0);
        const ctx = randomContext(cfg, tokens.length, next);
        const weights = constantWeights(ckpt);
        const teacherLogits = Float32Array.from({ length: rows.positions.length * cfg.vocabSize }, () => 2 * next() - 1);
        const loss = (t: Tape) => windowLoss(t, "C", studentLogits(t, cfg, weights, st, ctx, rows), rows, "kl", 0.8, teacherLogits);
        // The table's gradient sits on the rows of the tokens slot 1 read, and only there (checked before the finite differences, which sample it).
        for (const p of st.params) p.grad.fill(0);
        const tape = new Tape();
        tape.backward(loss(tape));
        for (let v = 0; v < cfg.vocabSize; v++) {
          const g = table.grad.subarray(v * cfg.dim, (v + 1) * cfg.dim);
          expect(
            g.some((x) => x !== 0),
            `table row ${v}`,
          ).toBe(read.has(v));
        }
        const mismatch = gradientMismatch(st.params, loss, next);
        if (mismatch !== null) throw new Error(mismatch);
      }),
      { numRuns: 8, endOnFailure: true, reporter },
    );
  });

  it("the slot rows' logits are those of each extra block run as a plain block over [context final hidden states | slot rows] (the context rows' keys from their final hidden state, the same key ranges)", () => {
    fc.assert(
      fc.property(tinyCheckpoint, extraSpecArb, seedArb, (ckpt, spec, seed) => {
        const next = rng(seed),
          cfg = ckpt.config;
        const student = makeStudent(ckpt, spec);
        const { tokens, rows } = randomWindows(cfg, spec, next);
        const ctx = randomContext(cfg, tokens.length, next);
        const weights = constantWeights(ckpt);
        const actual = studentLogits(new Tape(), cfg, weights, trainableStudent(student, cfg), ctx, rows).data;

        // Reference: the teacher's layers with the LoRA, then per extra block a one-layer model
        // over the context rows (fed their final hidden states, causal) followed by the slot rows.
        const tape = new Tape(),
          C = rows.contextLength,
          R = rows.positions.length;
        const plain = trainableStudent(withoutExtra(student), cfg);
        const input = { x: slotInputs(tape, plain.slots, rows, cfg.dim, weights.tokenEmbedding), positions: rows.positions, visible: rows.visible, context: { ...ctx, length: C } };
        let x = layerStack(tape, cfg, weights, input, plain.lora);
        // Pick feedback: slot 1 (with chain every slot) adds the table's row for the pick before it, before the blocks.
        if (student.weights.feedback) x = addEmbeddingRows(tape, x, Tensor.constant(student.weights.feedback, [cfg.vocabSize, cfg.dim]), fedPicks(rows, student.config.pickFeedback!));
        const contextHidden = Tensor.constant(ctx.hidden!.subarray(0, C * cfg.dim), [C, cfg.dim]);
        const positions = Int32Array.from([...Array.from({ length: C }, (_, i) => i), ...rows.positions]);
        const visible = new Int32Array(4 * (C + R));
        for (let i = 0; i < C; i++) visible.set([0, i + 1, 0, 0], 4 * i);
        visible.set(rows.visible, 4 * C);
        for (const block of student.weights.extra!) {
          const one: Checkpoint = { config: { ...cfg, nLayers: 1 }, weights: { ...ckpt.weights, layers: [block] } };
          const all = layerStack(tape, one.config, constantWeights(one), { x: concatRows(tape, contextHidden, x), positions, visible });
          x = sliceRows(tape, all, C, C + R);
        }
        expect(maxRelativeError(actual, head(tape, cfg, weights, x).data)).toBeLessThan(1e-5);
      }),
      { numRuns: 20, endOnFailure: true, reporter },
    );
  });

  it("studentLogits refuses a context without final hidden states for a student with extra blocks", () => {
    const ckpt = randomCheckpoint({ dim: 8, hiddenDim: 12, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 16, seqLen: 32, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 }, 4);
    const st = trainableStudent(randomStudent(ckpt, "t", { variant: "O", rank: 2, seed: 1, extraBlocks: 1 }), ckpt.config);
    const rows = windowRows("O", [1, 2, 3, 4, 5, 6], new Float32Array(6).fill(0.5), [2], 2);
    const { hidden: _h, ...ctx } = randomContext(ckpt.config, 6, rng(1));
    expect(() => studentLogits(new Tape(), ckpt.config, constantWeights(ckpt), st, ctx, rows)).toThrow(/studentLogits: a student with extra blocks needs the final hidden states of 2 context rows/);
  });
});

describe("TRAIN-EXTRA-INIT: extra blocks start as exact no-ops", () => {
  it("randomStudent's extra blocks copy the teacher's layers (e mod nLayers) with wo = w2 = 0, its other weights are those without them, and the training graph's slot logits are the same bits; training moves wo and w2", async () => {
    const js = await createBackend("js");
    fc.assert(
      fc.property(tinyCheckpoint, studentSpecArb(), fc.integer({ min: 1, max: 4 }), seedArb, (ckpt, spec, E, seed) => {
        const next = rng(seed),
          cfg = ckpt.config;
        const aux = spec.aux === "digits" ? { kind: "digits" as const, digits: 8 } : { kind: spec.aux };
        const options = { variant: spec.variant, rank: spec.rank, aux, window: 4, hybrid: spec.hybrid, query: slotKind(spec) === "query", seed: spec.seed };
        const withBlocks = randomStudent(ckpt, "t", { ...options, extraBlocks: E });
        const without = randomStudent(ckpt, "t", options);
        expect(withBlocks.config.extraBlocks).toBe(E);
        expect(Buffer.from(serializeStudent(withoutExtra(withBlocks))).equals(Buffer.from(serializeStudent(without)))).toBe(true);
        withBlocks.weights.extra!.forEach((block, e) => {
          const layer = ckpt.weights.layers[e % cfg.nLayers];
          for (const [k, a] of Object.entries(block)) expect(a, `extra.${e}.${k}`).toEqual(k === "wo" || k === "w2" ? new Float32Array(a.length) : layer[k as keyof typeof layer]);
          expect(block.wq).not.toBe(layer.wq); // a copy, not the teacher's array
        });

        const teacher = new Transformer(js, ckpt);
        try {
          const { tokens, rows } = randomWindows(cfg, spec, next);
          const { context } = teacherContext(teacher, tokens, false, true);
          expect(context.hidden).toHaveLength(tokens.length * cfg.dim);
          const weights = constantWeights(ckpt);
          const a = trainableStudent(withBlocks, cfg),
            b = trainableStudent(without, cfg);
          const tape = new Tape();
          const logits = studentLogits(tape, cfg, weights, a, context, rows);
          const plain = studentLogits(new Tape(), cfg, weights, b, context, rows).data;
          expect(logits.data.every((v, i) => v === plain[i])).toBe(true);
          tape.backward(windowLoss(tape, spec.variant, logits, rows, "ce", 0.8));
          const grad = (name: string) => a.params.find((p) => p.name === name)!.grad;
          expect(grad("extra.0.wo").some((g) => g !== 0) || grad("extra.0.w2").some((g) => g !== 0)).toBe(true);
        } finally {
          teacher.dispose();
        }
      }),
      { numRuns: 20, endOnFailure: true, reporter },
    );
  });

  it("randomStudent refuses a bad extraBlocks", () => {
    const ckpt = randomCheckpoint({ dim: 8, hiddenDim: 12, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 16, seqLen: 32, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 }, 4);
    for (const bad of [-1, 1.5, 65]) expect(() => randomStudent(ckpt, "t", { variant: "O", rank: 2, seed: 1, extraBlocks: bad })).toThrow(`randomStudent: extraBlocks must be an integer in [0, 64], got ${bad}`);
  });
});

describe("TRAIN-EXTRA-FILES: a student with extra blocks in files", () => {
  it("serializeStudent then parseStudent gives the same bytes, config and arrays back", () => {
    fc.assert(
      fc.property(tinyCheckpoint, extraSpecArb, (ckpt, spec) => {
        const student = makeStudent(ckpt, spec);
        const bytes = serializeStudent(student);
        const back = parseStudent(bytes, "s.safetensors");
        expect(back.config.extraBlocks).toBe(spec.extraBlocks);
        expect(back.weights.extra).toEqual(student.weights.extra);
        expect(Buffer.from(serializeStudent(back)).equals(Buffer.from(bytes))).toBe(true);
      }),
      { numRuns: 20, endOnFailure: true, reporter },
    );
  });
});

describe("TRAIN-EXTRA-THREADS: data-parallel steps with extra blocks", () => {
  it.each([undefined, "first", "chain"] as const)("1 and 2 threads give bit-identical params and figures after a few AdamW steps, updating the student's own extra-block arrays (pick feedback: %s, TRAIN-FEEDBACK-THREADS)", async (pickFeedback) => {
    const ckpt = randomCheckpoint({ dim: 16, hiddenDim: 24, nLayers: 2, nHeads: 2, nKvHeads: 1, vocabSize: 32, seqLen: 32, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 }, 7);
    const backend = await createBackend("wasm", { threads: 1 });
    const next = rng(3);
    const steps = Array.from({ length: 3 }, () =>
      Array.from({ length: 3 }, (): SequenceJob => {
        const tokens = Int32Array.from({ length: 14 }, () => Math.floor(next() * 32));
        return { tokens, us: Float32Array.from({ length: 14 }, () => next()), starts: [2 + Math.floor(next() * 10), 2 + Math.floor(next() * 10)] };
      }),
    );
    const train = async (threads: number) => {
      const student = randomStudent(ckpt, "t", { variant: "C", rank: 2, window: 3, hybrid: true, query: true, seed: 5, zeroB: true, extraBlocks: 2, pickFeedback });
      const teacher = new Transformer(backend, ckpt);
      const parallel = await DataParallel.start(ckpt, teacher, { kind: "student", student }, { loss: "kl", gamma: 0.9, window: 3, sequences: 3, sampling: { temperature: 0.8 } }, threads, 3);
      try {
        const opt = new AdamW(parallel.trainable, { lr: 1e-2 });
        const figures = [];
        for (const jobs of steps) {
          figures.push(await parallel.run(jobs));
          opt.step();
        }
        return { student, figures, names: parallel.trainable.map((p) => p.name) };
      } finally {
        parallel.close();
        teacher.dispose();
      }
    };
    const one = await train(1),
      two = await train(2);
    expect(two.names).toEqual(one.names);
    expect(one.names.filter((n) => n.startsWith("extra."))).toHaveLength(18);
    expect(one.names.includes("feedback")).toBe(pickFeedback !== undefined);
    if (pickFeedback) expect(one.student.weights.feedback!.some((v) => v !== 0)).toBe(true);
    expect(two.figures).toEqual(one.figures);
    expect(Buffer.from(serializeStudent(two.student)).equals(Buffer.from(serializeStudent(one.student)))).toBe(true);
    // The optimizer stepped the student's own arrays: the extra blocks' output projections left 0.
    expect(one.student.weights.extra!.every((b) => b.wo.some((v) => v !== 0) && b.w2.some((v) => v !== 0))).toBe(true);
  });
});

describe("TRAIN-EXTRA-CLI: ptp distill --extra-blocks", () => {
  const fx = pregenFixture("ptp-extra-blocks-");
  const dataset = fx.dataset;
  // A --draft model has no LoRA rank: the default --rank is left out there (distill refuses it).
  const distillArgs = (out: string, ...extra: string[]) => {
    const args = lastFlagWins(["distill", "--model", fx.TEACHER, "--dataset", fx.DATA, "--out", out, "--rank", "2", "--window", "3", "--windows", "3", "--batch", "2", "--steps", "4", "--warmup", "1", "--eval-every", "2", "--backend", "wasm", "--threads", "1", ...extra]);
    return extra.includes("--draft") ? withoutFlags(args, "rank") : args;
  };

  it("TRAIN-EXTRA-USAGE: refuses a bad --extra-blocks with a one-line usage error (exit 2)", async () => {
    for (const [value, message] of [
      ["-1", "--extra-blocks must be in [0, 64], got -1"],
      ["65", "--extra-blocks must be in [0, 64], got 65"],
      ["1.5", '--extra-blocks must be an integer, got "1.5"'],
      ["two", '--extra-blocks must be a number, got "two"'],
    ]) {
      const r = await runCli(...distillArgs(join(fx.tmp, "bad.safetensors"), "--extra-blocks", value));
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr.split("\n")[0]).toBe(`ptp distill: ${message}`);
    }
    const draft = await runCli(...distillArgs(join(fx.tmp, "bad.safetensors"), "--draft", "--extra-blocks", "1"));
    expect(draft.code).toBe(2);
    expect(draft.stderr).toMatch(/--extra-blocks is for LoRA students; a --draft model is deepened with --draft-layers/);
  });

  it("TRAIN-EXTRA-RESUME: trains a student with extra blocks that resumes exactly (also on another thread count); an --init student keeps its own blocks, and --extra-blocks may not contradict them; export-peft refuses it", async () => {
    await dataset();
    const straight = join(fx.tmp, "x.safetensors"),
      resumed = join(fx.tmp, "x-resumed.safetensors");
    const r = await runCli(...distillArgs(straight, "--extra-blocks", "2"));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/student rank 2 with 2 extra blocks/);
    const student = readStudent(straight);
    expect(student.config.extraBlocks).toBe(2);
    expect(student.weights.extra!.every((b) => b.wo.some((v) => v !== 0))).toBe(true);
    // The training checkpoint holds the extra blocks' values and Adam moments.
    expect(readFileSync(`${straight}.train.safetensors`).includes("adam_v.extra.1.w3")).toBe(true);

    expect((await runCli(...distillArgs(resumed, "--extra-blocks", "2", "--stop-after", "2"))).code).toBe(130);
    const again = await runCli(...distillArgs(resumed, "--extra-blocks", "2", "--resume", "--threads", "2"));
    expect(again.code, again.stderr).toBe(0);
    expect(readFileSync(resumed).equals(readFileSync(straight))).toBe(true);

    // --init: the file's blocks are trained; a contradicting --extra-blocks is refused.
    const init = join(fx.tmp, "init.safetensors");
    writeStudent(init, student);
    const contradicts = await runCli(...distillArgs(join(fx.tmp, "y.safetensors"), "--init", init, "--extra-blocks", "1"));
    expect(contradicts.code).toBe(2);
    expect(contradicts.stderr.split("\n")[0]).toBe(`ptp distill: --extra-blocks 1 does not match the --init student ${init}, which has 2 extra blocks (it trains the blocks it has)`);
    const fromInit = join(fx.tmp, "z.safetensors");
    const ok = await runCli(...distillArgs(fromInit, "--init", init, "--steps", "1"));
    expect(ok.code, ok.stderr).toBe(0);
    expect(readStudent(fromInit).config.extraBlocks).toBe(2);

    // Chained pick feedback: trained, resumed exactly (on another thread count); refused without extra blocks, with --draft,
    // against an --init student without it or with another kind, or with a kind that does not exist.
    const fb = join(fx.tmp, "fb.safetensors"),
      fbResumed = join(fx.tmp, "fb-resumed.safetensors");
    const f = await runCli(...distillArgs(fb, "--extra-blocks", "1", "--pick-feedback", "chain"));
    expect(f.code, f.stderr).toBe(0);
    expect(readStudent(fb).config.pickFeedback).toBe("chain");
    expect(readStudent(fb).weights.feedback!.some((v) => v !== 0)).toBe(true);
    expect(readFileSync(`${fb}.train.safetensors`).includes("adam_v.feedback")).toBe(true);
    expect((await runCli(...distillArgs(fbResumed, "--extra-blocks", "1", "--pick-feedback", "chain", "--stop-after", "3"))).code).toBe(130);
    const fbAgain = await runCli(...distillArgs(fbResumed, "--extra-blocks", "1", "--pick-feedback", "chain", "--resume", "--threads", "2"));
    expect(fbAgain.code, fbAgain.stderr).toBe(0);
    expect(readFileSync(fbResumed).equals(readFileSync(fb))).toBe(true);
    for (const [args, message] of [
      [["--pick-feedback", "first"], "--pick-feedback needs --extra-blocks E >= 1 (the pick is read after the teacher's layers, by the extra blocks)"],
      [["--pick-feedback", "chain", "--draft"], "--pick-feedback is for LoRA query students with --extra-blocks, not a --draft model"],
      [["--pick-feedback", "first", "--extra-blocks", "1", "--slot-input", "hybrid"], "--pick-feedback needs --slot-input query (only a query student's first pick is known inside the call)"],
      [["--pick-feedback", "first", "--init", init], `--pick-feedback first does not match the --init student ${init}, which has no pick feedback (it trains the parts it has)`],
      [["--pick-feedback", "first", "--init", fb], `--pick-feedback first does not match the --init student ${fb}, which has pick feedback chain (it trains the parts it has)`],
      [["--pick-feedback", "all", "--extra-blocks", "1"], "BAD-CHOICE"],
    ] as const) {
      const bad = await runCli(...distillArgs(join(fx.tmp, "bad.safetensors"), ...args));
      expect(bad.code, bad.stderr).toBe(2);
      if (message === "BAD-CHOICE") expect(bad.stderr.split("\n")[0]).toMatch(/^ptp distill: --pick-feedback .*first.*chain/);
      else expect(bad.stderr.split("\n")[0]).toBe(`ptp distill: ${message}`);
    }

    const peft = join(fx.tmp, "peft");
    const exported = await runCli("export-peft", straight, "--out", peft);
    expect(exported.code).toBe(1);
    expect(exported.stderr).toBe(`ptp export-peft: ${straight}: the student has 2 extra blocks, which a PEFT LoRA folder cannot hold (PEFT knows only the LoRA adapters); keep the ptp adapter file\n`);
    expect(existsSync(peft)).toBe(false);
  });
});
