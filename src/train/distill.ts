import type { Mulberry32 } from "../util/prng.js";
import type { Checkpoint } from "../model/weights.js";
import type { Transformer } from "../model/transformer.js";
import { writeStudent } from "../ptp/files/adapter-file.js";
import { writeDraft } from "../ptp/files/draft-file.js";
import { proposerConfig, type Proposer } from "../ptp/proposer.js";
import type { DatasetRecord } from "../data/dataset.js";
import { betaSample, drawU } from "../sampling/u-in-bin.js";
import { DataParallel } from "./data-parallel.js";
import type { JobFigures, SequenceJob } from "./distill-step.js";
import { acceptedPerCall, storedEvalSettings, type EvalSettings } from "./evaluate.js";
import type { ProgressStream } from "../util/progress.js";
import { loopSettings, resumableConfig, runLoop, withoutThreads, type LoopOptions, type LoopResult, type LoopSpec } from "./loop.js";
import type { LossKind } from "./ptp-windows.js";
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
  /** Threads that share each step's sequences (default 1); the result is the same bits on any number. */
  threads?: number;
}

export interface DistillFiles {
  out: string;
  checkpoint: string;
  log: string;
  resume: boolean;
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

/**
 * Train `proposer` (in place) on `records`: a gated-LoRA Student of the
 * teacher, or a standalone Draft model (its own transformer runs the
 * context; no teacher pass is needed except for KL losses). Writes it to
 * files.out at every checkpoint.
 */
export async function distill(teacherCkpt: Checkpoint, teacher: Transformer, proposer: Proposer, records: readonly DatasetRecord[], o: DistillOptions, files: DistillFiles, stream?: ProgressStream): Promise<LoopResult> {
  const L = o.window;
  const { usable, first, need } = trainableRecords(records, proposer);
  if (usable.length === 0) throw new Error(`distill: the dataset has no record with ${need}`);
  const draft = proposer.kind === "draft";
  const settings = { loss: o.loss, gamma: o.gamma, window: L, sequences: o.sequences, sampling: o.sampling };
  const parallel = await DataParallel.start(teacherCkpt, teacher, proposer, settings, o.threads ?? 1, o.sequences, o.kernels);

  const spec: LoopSpec = {
    params: parallel.trainable,
    ...loopSettings(o, files),
    unit: "slot",
    label: "distill",
    stream,
    config: { [draft ? "draft" : "student"]: proposerConfig(proposer), distill: { ...resumableConfig(withoutThreads(o)), eval: o.eval ? storedEvalSettings(o.eval) : null } },
    save: () => (proposer.kind === "draft" ? writeDraft(files.out, proposer.draft) : writeStudent(files.out, proposer.student)),
    evaluate: o.eval ? acceptedPerCall(teacher, proposer, o.eval) : undefined,
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
}
