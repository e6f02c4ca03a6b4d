import type { Mulberry32 } from "../util/prng.js";
import { checkCheckpoint, type Checkpoint } from "../model/weights.js";
import type { Transformer } from "../model/transformer.js";
import { writeStudent } from "../ptp/files/adapter-file.js";
import { writeDraft } from "../ptp/files/draft-file.js";
import { proposerConfig, type Proposer } from "../ptp/proposer.js";
import type { DatasetRecord } from "../data/dataset.js";
import { betaSample, drawU } from "../sampling/u-in-bin.js";
import { DataParallel } from "./data-parallel.js";
import type { JobFigures, SequenceJob } from "./distill-step.js";
import { acceptedPerCall, checkTeacherAndProposer, EVAL_SETTINGS, storedEvalSettings, type EvalSettings } from "./evaluate.js";
import type { ProgressStream } from "../util/progress.js";
import { loopSettings, resumableConfig, runLoop, withoutThreads, type LoopOptions, type LoopResult, type LoopSpec, type RunFiles } from "./loop.js";
import { LOSSES, type LossKind } from "./ptp-windows.js";
import { checkPositiveInteger, describeValue } from "../util/checks.js";
import { checkOptionKeys } from "../util/options.js";
import { checkFinitePositive, checkLoopOptions, checkProgressStream, checkTrainerFiles, checkTrainingSampling, trainerOptionKeys } from "./train-options.js";
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
  /** Slots per window L. */
  window: number;
  /** The dataset's sampling settings: C-PTP learns softmax(logits / T). */
  sampling: SamplingSettings;
  eval?: EvalSettings;
  /** Threads that share each step's sequences (default 1); the result is the same bits on any number. */
  threads?: number;
}

/** Where distill writes: the student or draft model (`out`), and the run's checkpoint and log (RunFiles). */
export interface DistillFiles extends RunFiles {
  out: string;
}

/**
 * The records `proposer` can train on, and what one needs: a prompt and a
 * sampled token after it; two for a query student, whose window trains
 * from slot 1 on (`first`).
 */
export function trainableRecords(records: readonly DatasetRecord[], proposer: Proposer): { usable: DatasetRecord[]; first: number; need: string } {
  const first = proposer.kind === "student" && proposer.student.config.query ? 1 : 0;
  const usable = records.filter((r) => r.tokens.length > r.promptLength + first && r.promptLength >= 1);
  return { usable, first, need: first ? "two sampled tokens (a query student trains slots 1..N-1)" : "a sampled token" };
}

/** The keys of DistillOptions; another is a typo that would be ignored. */
const DISTILL_OPTIONS = trainerOptionKeys<DistillOptions>({ loss: 0, gamma: 0, betaB: 0, windows: 0, sequences: 0, window: 0, sampling: 0, eval: 0, threads: 0 });

/**
 * Train `proposer` (in place) on `records`: a gated-LoRA Student of the
 * teacher, or a standalone Draft model (its own transformer runs the
 * context; no teacher pass is needed except for KL losses). Writes it to
 * files.out at every checkpoint. The arguments are checked at the call (a
 * TypeError or RangeError naming the option); the run is asynchronous.
 */
export function distill(teacherCkpt: Checkpoint, teacher: Transformer, proposer: Proposer, records: readonly DatasetRecord[], o: DistillOptions, files: DistillFiles, stream?: ProgressStream): Promise<LoopResult> {
  checkDistillArguments(teacherCkpt, teacher, proposer, records, o, files, stream);
  const L = o.window;
  const { usable, first, need } = trainableRecords(records, proposer);
  if (usable.length === 0) throw new Error(`distill: the dataset has no record with ${need}`);
  const draft = proposer.kind === "draft";
  const settings = { loss: o.loss, gamma: o.gamma, window: L, sequences: o.sequences, sampling: o.sampling };
  const evaluate = o.eval ? acceptedPerCall(teacher, proposer, o.eval) : undefined;
  const run = async (): Promise<LoopResult> => {
    const parallel = await DataParallel.start(teacherCkpt, teacher, proposer, settings, o.threads ?? 1, o.sequences, o.kernels);
    const spec: LoopSpec = {
      params: parallel.trainable,
      ...loopSettings(o, files),
      unit: "slot",
      label: "distill",
      stream,
      config: { [draft ? "draft" : "student"]: proposerConfig(proposer), distill: { ...resumableConfig(withoutThreads(o)), eval: o.eval ? storedEvalSettings(o.eval) : null } },
      save: () => (proposer.kind === "draft" ? writeDraft(files.out, proposer.draft) : writeStudent(files.out, proposer.student)),
      evaluate,
      async step(rng: Mulberry32) {
        // The data of the step, drawn on this thread in a fixed order: each sequence, the u of
        // every sampled token inside its bin, and the window starts.
        const jobs: SequenceJob[] = [];
        for (let b = 0; b < o.sequences; b++) {
          const rec = usable[Math.floor(rng.nextFloat() * usable.length)];
          const n = rec.tokens.length,
            p = rec.promptLength;
          const us = new Float32Array(n);
          for (let k = p; k < n; k++) us[k] = drawU(rec.left[k - p], rec.right[k - p], betaSample(rng, o.betaB));
          const starts = Array.from({ length: o.windows }, () => p + Math.floor(rng.nextFloat() * (n - p - first)));
          jobs.push({ tokens: Int32Array.from(rec.tokens), us, starts });
        }
        // Awaited: the main thread stays free while the workers compute, so a signal abandons the step at once.
        const figures = await parallel.run(jobs);
        const sum = (k: keyof JobFigures) => figures.reduce((a, f) => a + f[k], 0);
        return { loss: sum("loss"), units: sum("slots"), metrics: { correct: sum("correct") / sum("windows") } };
      },
    };
    try {
      // Awaited here, so the workers are closed only once the run (which yields between steps) is over.
      return await runLoop(spec);
    } finally {
      parallel.close();
    }
  };
  return run();
}

/** distill's arguments, each checked before anything reads it (see distill). */
function checkDistillArguments(teacherCkpt: unknown, teacher: unknown, proposer: unknown, records: unknown, o: DistillOptions, files: unknown, stream: unknown): void {
  const where = "distill";
  checkCheckpoint(teacherCkpt, where, "teacherCkpt");
  checkTeacherAndProposer(teacher, proposer, where);
  if (!Array.isArray(records)) throw new TypeError(`${where}: records must be an array of dataset records (readDataset), got ${describeValue(records)}`);
  checkOptionKeys(o, where, DISTILL_OPTIONS);
  if (!(LOSSES as readonly unknown[]).includes(o.loss)) throw new RangeError(`${where}: loss must be ${LOSSES.map((l) => JSON.stringify(l)).join(", ")}, got ${describeValue(o.loss)}`);
  // KL and reverse KL match the teacher's distribution, which only a C-PTP proposer predicts (windowLoss, in the workers, refuses them too).
  const variant = proposerConfig(proposer as Proposer).variant;
  if (o.loss !== "ce" && variant !== "C") throw new RangeError(`${where}: loss ${JSON.stringify(o.loss)} matches the teacher's distribution, which only a C-PTP proposer predicts; this one is ${variant}-PTP (use "ce")`);
  checkFinitePositive(o.gamma, where, "gamma");
  checkFinitePositive(o.betaB, where, "betaB");
  for (const key of ["windows", "sequences", "window"] as const) checkPositiveInteger(o[key], where, key);
  checkTrainingSampling(o.sampling, where);
  if (o.eval !== undefined) checkOptionKeys(o.eval, where, EVAL_SETTINGS, "eval");
  if (o.threads !== undefined) checkPositiveInteger(o.threads, where, "threads");
  checkLoopOptions(o, where);
  checkTrainerFiles(files, where);
  checkProgressStream(stream, where, "stream");
}
