import type { ModelConfig } from "../model/config.js";
import type { Checkpoint } from "../model/weights.js";
import type { Transformer } from "../model/transformer.js";
import { writeStudent } from "../ptp/files/adapter-file.js";
import type { Student } from "../ptp/student-weights.js";
import { binOf } from "../sampling/pick.js";
import { samplingDistribution, type SamplingSettings } from "../sampling/processors.js";
import { BufferPool, Tape } from "./autograd/index.js";
import { betaSample, drawU } from "../sampling/u-in-bin.js";
import { acceptedPerCall, storedEvalSettings, type EvalSettings } from "./evaluate.js";
import { constantWeights, type ConstantContext, type GraphWeights } from "./graph.js";
import type { ProgressStream } from "../util/progress.js";
import { loopSettings, resumableConfig, runLoop, type LoopOptions, type LoopResult } from "./loop.js";
import { studentLogits, windowLoss, windowRows } from "./ptp-windows.js";
import type { TrainKernels } from "./autograd/kernels.js";
import { trainableStudent, type TrainableStudent } from "./student-params.js";
import { teacherContext } from "./teacher-context.js";

/**
 * Inverse autoregressive training (method section 3.4): a C-PTP model
 * learns from plain text, with no teacher samples and so no known u's.
 * For a window over the text, the u's are recovered one slot at a time:
 * slot k's distribution P(t_k | context, u_0..u_{k-1}) is computed with the
 * u's found so far, and u_k is drawn inside the bin of the OBSERVED token
 * t_k under that distribution. With every u fixed, one gradient step on the
 * C-PTP cross-entropy follows. Windows are laid end to end without overlap,
 * so each position's u belongs to exactly one window.
 */
/**
 * The u's of non-overlapping C-PTP windows over `tokens`, recovered slot by
 * slot inside the student's own bins of the observed tokens, so that
 * Pick(u_k, P_theta(t_k | context, u_<k)) = t_k for every slot whose token
 * has probability > 0 (u stays 0.5 where the bin is empty). `z()` places u
 * inside its bin. Indexed by position in `tokens`.
 */
export function recoverUs(cfg: ModelConfig, weights: GraphWeights, st: TrainableStudent, context: ConstantContext, tokens: ArrayLike<number>, starts: readonly number[], L: number, sampling: SamplingSettings, z: () => number, kernels?: TrainKernels): Float32Array {
  const us = new Float32Array(tokens.length).fill(0.5);
  for (let k = 0; k < L; k++) recoverSlot(k, cfg, weights, st, context, tokens, us, starts, L, sampling, z, kernels);
  return us;
}

/** recoverUs's slot k: the u's of slot k of every window, from those of slots < k (already in `us`). */
function recoverSlot(k: number, cfg: ModelConfig, weights: GraphWeights, st: TrainableStudent, context: ConstantContext, tokens: ArrayLike<number>, us: Float32Array, starts: readonly number[], L: number, sampling: SamplingSettings, z: () => number, kernels?: TrainKernels): void {
  const V = cfg.vocabSize;
  const rows = windowRows("C", tokens, us, starts, L, 1, st.slots.input);
  const logits = studentLogits(new Tape(kernels), cfg, weights, st, context, rows).data;
  starts.forEach((s, w) => {
    if (s + k >= tokens.length) return;
    const P = samplingDistribution(logits.subarray((w * L + k) * V, (w * L + k + 1) * V), sampling);
    const [left, right] = binOf(P, tokens[s + k]);
    if (right > left) us[s + k] = drawU(left, right, z());
  });
}

/** The settings of inverseArTrain beyond the shared loop's (steps, learning rate, checkpoints, ...). */
export interface InverseArOptions extends LoopOptions {
  /** Text windows per step (each from a random place in the stream) and tokens per text window. */
  sequences: number;
  context: number;
  window: number;
  sampling: SamplingSettings;
  betaB: number;
  eval?: EvalSettings;
}

/**
 * Inverse-AR training (see the module comment) of a C-PTP `student` on the
 * token `stream`, the base model giving the context of each window. Writes
 * the student, checkpoints and the log to `files`, and resumes from them.
 */
export function inverseArTrain(baseCkpt: Checkpoint, base: Transformer, student: Student, stream: Int32Array, o: InverseArOptions, files: { out: string; checkpoint: string; log: string; resume: boolean }, progressStream?: ProgressStream): Promise<LoopResult> {
  if (student.config.variant !== "C") throw new Error("inverse-AR training needs a C-PTP student (its own u withheld)");
  const cfg = baseCkpt.config,
    L = o.window,
    T = o.context;
  if (stream.length < T + 1 || T < 2 * L) throw new Error(`inverse-AR: needs text windows of at least twice the slot window, and a stream longer than one (context ${T}, window ${L}, ${stream.length} tokens)`);
  const st = trainableStudent(student, cfg),
    weights = constantWeights(baseCkpt);
  // A step takes seconds (L forward passes per text window, then one backward): it pauses between its
  // parts, so Ctrl-C / SIGTERM stops the run within about a second (see LoopSpec.step).
  // Each window's graph reuses the arrays of the one before (buffers.ts).
  const pool = new BufferPool();
  return runLoop({
    params: st.params,
    ...loopSettings(o, files),
    unit: "slot",
    label: "inverse-ar",
    stream: progressStream,
    config: { student: student.config, inverseAr: { ...resumableConfig(o), eval: o.eval ? storedEvalSettings(o.eval) : null } },
    save: () => writeStudent(files.out, student),
    evaluate: o.eval ? acceptedPerCall(base, { kind: "student", student }, o.eval) : undefined,
    async step(rng, _t, pause) {
      // No #correct here: the u's lie in the student's own bins, so its drafts match by construction;
      // what counts is the self-verified acceptance the evaluation measures.
      let loss = 0,
        slots = 0;
      for (let b = 0; b < o.sequences; b++) {
        await pause();
        const at = Math.floor(rng.nextFloat() * (stream.length - T));
        const tokens = stream.subarray(at, at + T);
        const offset = 1 + Math.floor(rng.nextFloat() * L);
        const starts: number[] = [];
        for (let s = offset; s + L <= T; s += L) starts.push(s);
        const { context } = teacherContext(base, tokens);
        const us = new Float32Array(tokens.length).fill(0.5);
        for (let k = 0; k < L; k++) {
          await pause();
          recoverSlot(k, cfg, weights, st, context, tokens, us, starts, L, o.sampling, () => betaSample(rng, o.betaB), o.kernels);
        }
        await pause();
        const rows = windowRows("C", tokens, us, starts, L, 1, st.slots.input);
        const tape = new Tape(o.kernels, pool);
        const logits = studentLogits(tape, cfg, weights, st, context, rows);
        const l = windowLoss(tape, "C", logits, rows, "ce", o.sampling.temperature);
        tape.backward(l);
        loss += l.data[0] / o.sequences;
        tape.release();
        slots += rows.positions.length;
      }
      // Gradients were summed over the text windows; average them.
      for (const p of st.params) for (let i = 0; i < p.grad.length; i++) p.grad[i] /= o.sequences;
      return { loss, units: slots };
    },
  });
}
