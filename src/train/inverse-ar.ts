import type { ModelConfig } from "../model/config.js";
import { checkCheckpoint, type Checkpoint } from "../model/weights.js";
import { Transformer } from "../model/transformer.js";
import { writeStudent } from "../ptp/files/adapter-file.js";
import { checkStudent, type Student } from "../ptp/student-weights.js";
import { binOf } from "../sampling/pick.js";
import { samplingDistribution, type SamplingSettings } from "../sampling/processors.js";
import { Tape, type BufferPool } from "./autograd/index.js";
import { betaSample, drawU } from "../sampling/u-in-bin.js";
import { acceptedPerCall, EVAL_SETTINGS, storedEvalSettings, type EvalSettings } from "./evaluate.js";
import type { ConstantContext, GraphWeights } from "./graph.js";
import type { ProgressStream } from "../util/progress.js";
import { loopSettings, resumableConfig, runLoop, withoutThreads, type LoopOptions, type LoopResult } from "./loop.js";
import { OrderedParallel, type OrderedInit } from "./ordered-parallel.js";
import { checkInteger, checkPositiveInteger, describeValue } from "../util/checks.js";
import { checkOptionKeys } from "../util/options.js";
import { checkFinitePositive, checkLoopOptions, checkProgressStream, checkTokenStream, checkTrainerFiles, checkTrainingSampling, trainerOptionKeys, type TrainerFiles } from "./train-options.js";
import { Mulberry32 } from "../util/prng.js";
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
export function recoverUs(cfg: ModelConfig, weights: GraphWeights, st: TrainableStudent, context: ConstantContext, tokens: ArrayLike<number>, starts: readonly number[], L: number, sampling: SamplingSettings, z: () => number, kernels?: TrainKernels, pool?: BufferPool): Float32Array {
  const us = new Float32Array(tokens.length).fill(0.5);
  for (let k = 0; k < L; k++) recoverSlot(k, cfg, weights, st, context, tokens, us, starts, L, sampling, z, kernels, pool);
  return us;
}

/** recoverUs's slot k: the u's of slot k of every window, from those of slots < k (already in `us`). */
function recoverSlot(k: number, cfg: ModelConfig, weights: GraphWeights, st: TrainableStudent, context: ConstantContext, tokens: ArrayLike<number>, us: Float32Array, starts: readonly number[], L: number, sampling: SamplingSettings, z: () => number, kernels?: TrainKernels, pool?: BufferPool): void {
  const V = cfg.vocabSize;
  const rows = windowRows("C", tokens, us, starts, L, 1, st.slots.input);
  const tape = new Tape(kernels, pool);
  const logits = studentLogits(tape, cfg, weights, st, context, rows).data;
  starts.forEach((s, w) => {
    if (s + k >= tokens.length) return;
    const P = samplingDistribution(logits.subarray((w * L + k) * V, (w * L + k + 1) * V), sampling);
    const [left, right] = binOf(P, tokens[s + k]);
    if (right > left) us[s + k] = drawU(left, right, z());
  });
  tape.release();
}

/** One text window of a step: its tokens, the starts of its slot windows, and the seed of the z's that place its u's in their bins. */
export interface TextWindowJob {
  tokens: Int32Array;
  starts: number[];
  seed: number;
}

/**
 * One text window's gradient, added into the student's params' grads:
 * the base model's context of the window, every slot's u recovered in the
 * student's own bins (z's from the job's seed), then the C-PTP
 * cross-entropy backpropagated. Returns the loss and the slot count.
 */
export function textWindowGradient(base: Transformer, weights: GraphWeights, st: TrainableStudent, job: TextWindowJob, o: { window: number; sampling: SamplingSettings; betaB: number }, kernels: TrainKernels, pool: BufferPool): [loss: number, slots: number] {
  const cfg = base.config,
    L = o.window;
  const { context } = teacherContext(base, job.tokens);
  const rng = new Mulberry32(job.seed);
  const us = recoverUs(cfg, weights, st, context, job.tokens, job.starts, L, o.sampling, () => betaSample(rng, o.betaB), kernels, pool);
  const rows = windowRows("C", job.tokens, us, job.starts, L, 1, st.slots.input);
  const tape = new Tape(kernels, pool);
  const l = windowLoss(tape, "C", studentLogits(tape, cfg, weights, st, context, rows), rows, "ce", o.sampling.temperature);
  tape.backward(l);
  const loss = l.data[0];
  tape.release();
  return [loss, rows.positions.length];
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
  /** Worker threads that share each step's text windows (default 1; at most sequences): any number gives the same bits. */
  threads?: number;
}

/**
 * A step's text windows, drawn from `rng` in a fixed order: for each of
 * `sequences`, a window of T tokens of the stream, the offset (1..L) of its
 * slot windows and the seed of the z's that place its u's in their bins.
 */
export function drawTextWindows(rng: Mulberry32, stream: Int32Array, sequences: number, T: number, L: number): TextWindowJob[] {
  const jobs: TextWindowJob[] = [];
  for (let b = 0; b < sequences; b++) {
    const at = Math.floor(rng.nextFloat() * (stream.length - T));
    const offset = 1 + Math.floor(rng.nextFloat() * L);
    const starts: number[] = [];
    for (let s = offset; s + L <= T; s += L) starts.push(s);
    jobs.push({ tokens: stream.slice(at, at + T), starts, seed: rng.nextU32() });
  }
  return jobs;
}

/**
 * The worker threads of inverse-AR training (`threads` of them, at most
 * `sequences`), each with the base model on a one-thread `backend` and a
 * copy of `student`, whose trainable form `st` the optimizer steps on this
 * thread. A job's figures are its loss and slot count.
 */
export function inverseArThreads(baseCkpt: Checkpoint, backend: string, student: Student, st: TrainableStudent, o: { threads: number; sequences: number; window: number; sampling: SamplingSettings; betaB: number; kernels?: TrainKernels }): Promise<OrderedParallel<TextWindowJob>> {
  const data: Pick<InverseArWorkerInit, "base" | "backend" | "student" | "settings"> = { base: baseCkpt, backend, student, settings: { window: o.window, sampling: o.sampling, betaB: o.betaB } };
  return OrderedParallel.start<TextWindowJob>("inverse-AR", "inverse-ar-worker.js", st.params, { threads: o.threads, maxJobs: o.sequences, figuresPerJob: 2, kernels: o.kernels, data });
}

/** What an inverse-AR worker is started with besides OrderedInit (structured-cloned). */
export interface InverseArWorkerInit extends OrderedInit {
  base: Checkpoint;
  backend: string;
  student: Student;
  settings: { window: number; sampling: SamplingSettings; betaB: number };
}

/** The keys of InverseArOptions; another is a typo that would be ignored. */
const INVERSE_AR_OPTIONS = trainerOptionKeys<InverseArOptions>({ sequences: 0, context: 0, window: 0, sampling: 0, betaB: 0, eval: 0, threads: 0 });

/**
 * Inverse-AR training (see the module comment) of a C-PTP `student` on the
 * token `stream`, the base model giving the context of each window. Writes
 * the student, checkpoints and the log to `files`, and resumes from them.
 * The arguments are checked at the call (a TypeError or RangeError naming
 * the option); the run is asynchronous.
 */
export function inverseArTrain(baseCkpt: Checkpoint, base: Transformer, student: Student, stream: Int32Array, o: InverseArOptions, files: TrainerFiles, progressStream?: ProgressStream): Promise<LoopResult> {
  const where = "inverseArTrain";
  checkCheckpoint(baseCkpt, where, "baseCkpt");
  if (!(base instanceof Transformer)) throw new TypeError(`${where}: base must be a Transformer, got ${describeValue(base)}`);
  checkStudent(student, where);
  if (student.config.variant !== "C") throw new RangeError(`${where}: student must be a C-PTP student (inverse-AR training withholds its own u), got variant ${JSON.stringify(student.config.variant)}`);
  const cfg = baseCkpt.config;
  checkOptionKeys(o, where, INVERSE_AR_OPTIONS);
  const L = checkPositiveInteger(o.window, where, "window");
  // Positions 0 .. context - 1 of each text window must exist in the base model: context <= seqLen.
  const T = checkInteger(o.context, where, "context (tokens per text window, at most the model's seqLen)", 1, cfg.seqLen);
  checkPositiveInteger(o.sequences, where, "sequences");
  checkFinitePositive(o.betaB, where, "betaB");
  checkTrainingSampling(o.sampling, where);
  if (o.eval !== undefined) checkOptionKeys(o.eval, where, EVAL_SETTINGS, "eval");
  const threads = checkPositiveInteger(o.threads ?? 1, where, "threads");
  checkLoopOptions(o, where);
  checkTrainerFiles(files, where);
  checkProgressStream(progressStream, where, "progressStream");
  const tokens = checkTokenStream(stream, cfg.vocabSize, where, "stream");
  if (tokens.length < T + 1 || T < 2 * L) throw new RangeError(`${where}: needs text windows of at least twice the slot window, and a stream longer than one (context ${T}, window ${L}, ${tokens.length} tokens)`);
  const evaluate = o.eval ? acceptedPerCall(base, { kind: "student", student }, o.eval) : undefined;
  const st = trainableStudent(student, cfg);
  const run = async (): Promise<LoopResult> => {
    // A step takes seconds (L forward passes per text window, then one backward): its text windows
    // run on worker threads (ordered-parallel.ts), so Ctrl-C / SIGTERM abandons it at once.
    const parallel = await inverseArThreads(baseCkpt, base.backend.name, student, st, { ...o, threads });
    try {
      return await runLoop({
        params: st.params,
        ...loopSettings(o, files),
        unit: "slot",
        label: "inverse-ar",
        stream: progressStream,
        config: { student: student.config, inverseAr: { ...resumableConfig(withoutThreads(o)), eval: o.eval ? storedEvalSettings(o.eval) : null } },
        save: () => writeStudent(files.out, student),
        evaluate,
        async step(rng) {
          const jobs = drawTextWindows(rng, tokens, o.sequences, T, L);
          // No #correct here: the u's lie in the student's own bins, so its drafts match by construction;
          // what counts is the self-verified acceptance the evaluation measures.
          const figures = await parallel.run(jobs);
          // Gradients were summed over the text windows; average them.
          for (const p of st.params) for (let i = 0; i < p.grad.length; i++) p.grad[i] /= o.sequences;
          return { loss: figures.reduce((a, f) => a + f[0] / o.sequences, 0), units: figures.reduce((a, f) => a + f[1], 0) };
        },
      });
    } finally {
      parallel.close();
    }
  };
  return run();
}
