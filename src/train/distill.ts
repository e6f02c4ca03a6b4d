import { Mulberry32 } from "../io/prng.js";
import type { Checkpoint } from "../model/weights.js";
import type { Transformer } from "../model/transformer.js";
import type { Student } from "../ptp/student-weights.js";
import { writeStudent } from "../ptp/adapter-file.js";
import { writeDraft } from "../ptp/draft-file.js";
import type { Draft } from "../ptp/draft-model.js";
import { scale, Tape } from "./autograd/index.js";
import type { DatasetRecord } from "./dataset.js";
import { betaSample, drawU } from "./dataset.js";
import { evaluateStudent, type EvalSettings } from "./evaluate.js";
import { constantWeights } from "./graph.js";
import type { ProgressStream } from "./progress.js";
import { loopSettings, resumableConfig, runLoop, type LoopOptions, type LoopResult, type LoopSpec } from "./loop.js";
import { draftLogits, studentLogits, windowLoss, windowMetrics, windowRows, type LossKind } from "./ptp-windows.js";
import type { ScheduleConfig } from "./schedule.js";
import { trainableDraft, trainableStudent } from "./student-params.js";
import { teacherContext } from "./teacher-context.js";
import type { SamplingSettings } from "../sampling/processors.js";

/**
 * Distillation of a gated-LoRA PTP student from teacher samples (method
 * section 3): each step takes sequences from the dataset, draws every
 * sampled token's u inside its teacher bin (z ~ Beta(b, b)), lays windows of
 * L slots at random starts over each sequence and trains them all in one
 * pass against the teacher's KV of that sequence.
 */
export interface DistillOptions extends LoopOptions {
  loss: LossKind;
  /** Position weighting gamma^j of slot j. */
  gamma: number;
  /** b of z ~ Beta(b, b) for u inside the bin. */
  betaB: number;
  /** Windows per sequence per step, and sequences per step. */
  windows: number;
  sequences: number;
  /** Slots per window L (default: the student's window). */
  window: number;
  /** The dataset's sampling settings: C-PTP learns softmax(logits / T). */
  sampling: SamplingSettings;
  eval?: EvalSettings;
}

export interface DistillFiles {
  out: string;
  checkpoint: string;
  log: string;
  resume: boolean;
}

/**
 * Train `proposer` (in place) on `records`: a gated-LoRA Student of the
 * teacher, or a standalone Draft model (its own transformer runs the
 * context; no teacher pass is needed except for KL losses). Writes it to
 * files.out at every checkpoint.
 */
export function distill(teacherCkpt: Checkpoint, teacher: Transformer, proposer: Student | Draft, records: readonly DatasetRecord[], o: DistillOptions, files: DistillFiles, stream?: ProgressStream): Promise<LoopResult> {
  const cfg = teacherCkpt.config, variant = proposer.config.variant, L = o.window;
  const usable = records.filter((r) => r.tokens.length > r.promptLength && r.promptLength >= 1);
  if (usable.length === 0) throw new Error("distill: the dataset has no record with a sampled token");
  const isDraft = "model" in proposer.config;
  const st = isDraft ? undefined : trainableStudent(proposer as Student, cfg);
  const dt = isDraft ? trainableDraft(proposer as Draft) : undefined;
  const weights = constantWeights(teacherCkpt);
  const temperature = o.sampling.temperature;

  const spec: LoopSpec = {
    params: (st ?? dt!).params,
    ...loopSettings(o, files),
    unit: "slot",
    label: "distill",
    stream,
    config: { [isDraft ? "draft" : "student"]: proposer.config, distill: { ...resumableConfig(o), eval: o.eval ? { ...o.eval, prompts: o.eval.prompts.length } : null } },
    save: () => (isDraft ? writeDraft(files.out, proposer as Draft) : writeStudent(files.out, proposer as Student)),
    evaluate: o.eval ? () => ({ accepted: evaluateStudent(teacher, proposer, o.eval!).meanAccepted }) : undefined,
    step(rng: Mulberry32) {
      let loss = 0, correct = 0, windows = 0, slots = 0;
      for (let b = 0; b < o.sequences; b++) {
        const rec = usable[Math.floor(rng.nextFloat() * usable.length)];
        const n = rec.tokens.length, p = rec.promptLength;
        const us = new Float32Array(n);
        for (let k = p; k < n; k++) us[k] = drawU(rec.left[k - p], rec.right[k - p], betaSample(rng, o.betaB));
        const starts = Array.from({ length: o.windows }, () => p + Math.floor(rng.nextFloat() * (n - p)));
        const rows = windowRows(variant, rec.tokens, us, starts, L, o.gamma);
        // The last token is only ever a target: the teacher runs on the tokens before it
        // (for a draft model only when the loss needs its distributions).
        const needTeacher = !isDraft || o.loss !== "ce";
        const teacherRun = needTeacher ? teacherContext(teacher, rec.tokens.subarray(0, n - 1), o.loss !== "ce") : undefined;
        const tl = teacherRun?.logits;
        const tape = new Tape();
        const logits = st ? studentLogits(tape, cfg, weights, st, teacherRun!.context, rows) : draftLogits(tape, dt!, rec.tokens, rows);
        const teacherLogits = tl ? gatherRows(tl, rows.positions, cfg.vocabSize) : undefined;
        const l = windowLoss(tape, variant, logits, rows, o.loss, temperature, teacherLogits);
        tape.backward(scale(tape, l, 1 / o.sequences));
        loss += l.data[0] / o.sequences;
        const m = windowMetrics(variant, logits.data, rows, cfg.vocabSize, o.sampling);
        correct += m.correct.reduce((a, c) => a + c, 0);
        windows += m.correct.length;
        slots += rows.positions.length;
      }
      return { loss, units: slots, metrics: { correct: correct / windows } };
    },
  };
  return runLoop(spec);
}

/** The teacher's logits at each row's position (the distribution of the token that row predicts). */
function gatherRows(logits: Float32Array, positions: Int32Array, V: number): Float32Array {
  const out = new Float32Array(positions.length * V);
  positions.forEach((pos, r) => out.set(logits.subarray(pos * V, (pos + 1) * V), r * V));
  return out;
}
