import type { Checkpoint } from "../model/weights.js";
import type { Transformer } from "../model/transformer.js";
import type { Proposer } from "../ptp/proposer.js";
import { trainKernels, type TrainKernels } from "./autograd/index.js";
import type { JobFigures, JobSettings, SequenceJob } from "./distill-step.js";
import { OrderedParallel, type OrderedInit } from "./ordered-parallel.js";
import { trainableDraft, trainableStudent } from "./student-params.js";
import type { Param } from "./param.js";

/**
 * Data parallelism for distillation: the sequences of a step are the jobs
 * of an OrderedParallel (ordered-parallel.ts) over T worker threads, each
 * with its own copy of the teacher and the proposer (distill-worker.ts).
 * Every sequence's gradient is computed from zero and the step's gradient
 * is 0 + g_0 + g_1 + ... in sequence order, so a step computes the same
 * bits whatever the number of threads, and a run is reproducible for a
 * given seed on any thread count. The main thread computes none of them,
 * so Ctrl-C is seen at once however long the step (a first signal
 * abandons the step, a second exits; see interrupt.ts).
 */

/** What a distillation worker is started with besides OrderedInit (structured-cloned). */
export interface DistillWorkerInit extends OrderedInit {
  teacher: Checkpoint;
  proposer: Proposer;
  settings: JobSettings;
  backend: string;
}

/** Per-job figures: loss, correct, windows, slots. */
const FIGURES_PER_JOB = 4;

export class DataParallel {
  private constructor(
    private readonly parallel: OrderedParallel<SequenceJob>,
    private readonly params: readonly Param[],
  ) {}

  /**
   * Starts the workers and resolves once every one holds its teacher and
   * proposer. `proposer` is the model being trained (its arrays are what
   * the optimizer updates); `maxJobs` the number of sequences per step.
   */
  static async start(teacherCkpt: Checkpoint, teacher: Transformer, proposer: Proposer, settings: JobSettings, threads: number, maxJobs: number, kernels: TrainKernels = trainKernels()): Promise<DataParallel> {
    const params = proposer.kind === "draft" ? trainableDraft(proposer.draft).params : trainableStudent(proposer.student, teacherCkpt.config).params;
    const data: Pick<DistillWorkerInit, "teacher" | "proposer" | "settings" | "backend"> = { teacher: teacherCkpt, proposer, settings, backend: teacher.backend.name };
    const parallel = await OrderedParallel.start<SequenceJob>("distill", "distill-worker.js", params, { threads, maxJobs: Math.max(1, maxJobs), figuresPerJob: FIGURES_PER_JOB, kernels, data });
    return new DataParallel(parallel, params);
  }

  get threads(): number {
    return this.parallel.threads;
  }

  /** The params of the main thread's proposer (the arrays the optimizer steps). */
  get trainable(): readonly Param[] {
    return this.params;
  }

  /**
   * Runs the step's jobs; afterwards the params' grads hold the sum of the
   * jobs' gradients in job order. Resolves with each job's figures.
   */
  async run(jobs: readonly SequenceJob[]): Promise<JobFigures[]> {
    const figures = await this.parallel.run(jobs);
    return figures.map((f) => ({ loss: f[0], correct: f[1], windows: f[2], slots: f[3] }));
  }

  close(): void {
    this.parallel.close();
  }
}
