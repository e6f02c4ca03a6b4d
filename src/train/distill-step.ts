import { slotInputOf } from "../ptp/files/ptp-file-parts.js";
import type { Checkpoint } from "../model/weights.js";
import type { Transformer } from "../model/transformer.js";
import { decoderSettings } from "../ptp/decode/defaults.js";
import { proposerConfig, type Proposer } from "../ptp/proposer.js";
import type { SamplingSettings } from "../sampling/processors.js";
import { BufferPool, scale, Tape, trainKernels, type TrainKernels } from "./autograd/index.js";
import { constantWeights, type GraphWeights } from "./graph.js";
import type { Param } from "./param.js";
import { draftLogits, studentLogits, windowLoss, windowMetrics, windowRows, type LossKind } from "./ptp-windows.js";
import { trainableDraft, trainableStudent, type TrainableDraft, type TrainableStudent } from "./student-params.js";
import { teacherContext } from "./teacher-context.js";

/**
 * One sequence's share of a distillation step, the unit the step is split
 * into across threads: the sequence's tokens, the u of every position
 * (drawn inside the teacher's bins) and the starts of its windows.
 */
export interface SequenceJob {
  tokens: Int32Array;
  us: Float32Array;
  starts: number[];
}

/** What a job adds to the step's figures. */
export interface JobFigures {
  loss: number;
  /** Summed #correct over the job's windows, and their count. */
  correct: number;
  windows: number;
  slots: number;
}

/** The settings a job needs (the same on every thread). */
export interface JobSettings {
  loss: LossKind;
  gamma: number;
  window: number;
  /** Sequences per step: each job's loss is scaled by 1 / sequences. */
  sequences: number;
  sampling: SamplingSettings;
}

/**
 * Computes the gradient of one sequence's windows (method section 3.2) with
 * respect to the proposer's parameters: the teacher's KV of the sequence
 * (and its final hidden states, for a student's extra blocks), the student
 * (or draft) pass over every window's slots, the window loss
 * scaled by 1 / sequences, and backward. Every thread holds one of these
 * over its own copy of the teacher and the proposer; the copies' parameter
 * values are set before each step.
 */
export class SequenceGradient {
  readonly params: readonly Param[];
  private readonly weights: GraphWeights;
  private readonly st?: TrainableStudent;
  private readonly dt?: TrainableDraft;
  /** Each job's graph reuses the arrays of the job before (buffers.ts). */
  private readonly pool = new BufferPool();

  constructor(
    private readonly teacherCkpt: Checkpoint,
    private readonly teacher: Transformer,
    readonly proposer: Proposer,
    private readonly o: JobSettings,
    private readonly kernels: TrainKernels = trainKernels(),
  ) {
    if (proposer.kind === "draft") this.dt = trainableDraft(proposer.draft);
    else this.st = trainableStudent(proposer.student, teacherCkpt.config);
    this.params = (this.st ?? this.dt)!.params;
    this.weights = constantWeights(teacherCkpt);
  }

  /** Adds the job's gradient into the params' grads; returns its figures. */
  run(job: SequenceJob): JobFigures {
    const cfg = this.teacherCkpt.config,
      o = this.o,
      config = proposerConfig(this.proposer),
      variant = config.variant;
    const n = job.tokens.length;
    const rows = windowRows(variant, job.tokens, job.us, job.starts, o.window, o.gamma, slotInputOf(config));
    // The last token is only ever a target: the teacher runs on the tokens before it
    // (for a draft model only when the loss needs its distributions).
    const needTeacher = this.st !== undefined || o.loss !== "ce";
    // A student's extra blocks also need the context rows' final hidden states.
    const teacherRun = needTeacher ? teacherContext(this.teacher, job.tokens.subarray(0, n - 1), o.loss !== "ce", this.st?.extra !== undefined) : undefined;
    const tape = new Tape(this.kernels, this.pool);
    const logits = this.st ? studentLogits(tape, cfg, this.weights, this.st, teacherRun!.context, rows) : draftLogits(tape, this.dt!, job.tokens, rows);
    const teacherLogits = teacherRun?.logits ? gatherRows(teacherRun.logits, rows.positions, cfg.vocabSize) : undefined;
    const l = windowLoss(tape, variant, logits, rows, o.loss, o.sampling.temperature, teacherLogits);
    tape.backward(scale(tape, l, 1 / o.sequences));
    // #correct with the decoders' draft rule for this proposer (a chained student's scale is its own).
    const feedback = this.proposer.kind === "student" ? this.proposer.student.config.pickFeedback : undefined;
    const m = windowMetrics(variant, logits.data, rows, cfg.vocabSize, o.sampling, decoderSettings({ proposerFeedback: feedback }).draftTemperatureScale);
    const figures = { loss: l.data[0] / o.sequences, correct: m.correct.reduce((a, c) => a + c, 0), windows: m.correct.length, slots: rows.positions.length };
    tape.release();
    return figures;
  }
}

/** The teacher's logits at each row's position (the distribution of the token that row predicts). */
function gatherRows(logits: Float32Array, positions: Int32Array, V: number): Float32Array {
  const out = new Float32Array(positions.length * V);
  positions.forEach((pos, r) => out.set(logits.subarray(pos * V, (pos + 1) * V), r * V));
  return out;
}
