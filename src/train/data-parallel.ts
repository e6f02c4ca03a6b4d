import type { Checkpoint } from "../model/weights.js";
import type { Transformer } from "../model/transformer.js";
import type { Proposer } from "../ptp/proposer.js";
import { trainKernels, type TrainKernels } from "./autograd/index.js";
import type { JobFigures, JobSettings, SequenceJob } from "./distill-step.js";
import { trainableDraft, trainableStudent } from "./student-params.js";
import { packParams, paramCount, type Param } from "./param.js";
import { WorkerGroup, type GroupInit } from "./worker-group.js";

/**
 * Data parallelism for distillation: the sequences of a step are split over
 * T worker threads (each with its own copy of the teacher and the
 * proposer), and their gradients are summed in a fixed order.
 *
 * Every job's gradient is computed from zero into its own slot of a shared
 * buffer, and the step's gradient is 0 + g_0 + g_1 + ... in job order. So a
 * step computes the same bits whatever the number of threads, and a run is
 * reproducible for a given seed on any thread count.
 *
 * Every job runs on a worker thread (T threads are T workers, see
 * worker-group.ts), never on the main thread, so Ctrl-C is seen at once
 * however long the step (a first signal abandons the step, a second
 * exits; see interrupt.ts).
 */

/** What a distillation worker is started with (structured-cloned; the buffers are shared). */
export interface DistillWorkerInit extends GroupInit {
  teacher: Checkpoint;
  proposer: Proposer;
  settings: JobSettings;
  backend: string;
  kernels: string;
  params: SharedArrayBuffer;
  grads: SharedArrayBuffer;
  figures: SharedArrayBuffer;
}

/** Per-job figures in the shared figures buffer: loss, correct, windows, slots. */
export const FIGURES_PER_JOB = 4;

export class DataParallel {
  readonly threads: number;
  private readonly params: readonly Param[];
  private readonly P: number;
  private readonly group: WorkerGroup;
  private readonly shared: { params: Float32Array; grads: Float32Array; figures: Float64Array };

  /**
   * Starts the workers and resolves once every one holds its teacher and
   * proposer. `proposer` is the model being trained (its arrays are what
   * the optimizer updates); `maxJobs` the number of sequences per step.
   */
  static async start(teacherCkpt: Checkpoint, teacher: Transformer, proposer: Proposer, settings: JobSettings, threads: number, maxJobs: number, kernels: TrainKernels = trainKernels()): Promise<DataParallel> {
    const parallel = new DataParallel(teacherCkpt, teacher, proposer, settings, threads, maxJobs, kernels);
    await parallel.group.ready();
    return parallel;
  }

  private constructor(teacherCkpt: Checkpoint, teacher: Transformer, proposer: Proposer, settings: JobSettings, threads: number, maxJobs: number, kernels: TrainKernels) {
    if (!(Number.isInteger(threads) && threads >= 1)) throw new RangeError(`training threads must be a positive integer, got ${threads}`);
    if (kernels.name !== "wasm" && kernels.name !== "js") throw new RangeError(`training threads run the "wasm" or "js" training kernels, got "${kernels.name}"`);
    this.threads = Math.min(threads, Math.max(1, maxJobs));
    this.params = proposer.kind === "draft" ? trainableDraft(proposer.draft).params : trainableStudent(proposer.student, teacherCkpt.config).params;
    this.P = paramCount(this.params);
    const sab = (bytes: number) => new SharedArrayBuffer(bytes);
    const buffers = { params: sab(4 * this.P), grads: sab(4 * this.P * maxJobs), figures: sab(8 * FIGURES_PER_JOB * maxJobs) };
    this.shared = { params: new Float32Array(buffers.params), grads: new Float32Array(buffers.grads), figures: new Float64Array(buffers.figures) };
    const data: Omit<DistillWorkerInit, keyof GroupInit> = { teacher: teacherCkpt, proposer, settings, backend: teacher.backend.name, kernels: kernels.name, ...buffers };
    this.group = new WorkerGroup("distill", "distill-worker.js", this.threads, () => data);
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
    const { params, P, shared } = this;
    const capacity = shared.grads.length / P;
    if (jobs.length > capacity) throw new RangeError(`data parallel: ${jobs.length} jobs in a step, room for ${capacity}`);
    const T = this.threads;
    packParams(params, "data", shared.params);
    const messages = Array.from({ length: T }, (_, i) => {
      const mine = jobs.flatMap((job, slot) => (slot % T === i ? [{ slot, tokens: job.tokens, us: job.us, starts: job.starts }] : []));
      return mine.length > 0 ? mine : undefined;
    });
    await this.group.run(messages);
    const figures: JobFigures[] = jobs.map((_, j) => {
      const f = shared.figures.subarray(j * FIGURES_PER_JOB, (j + 1) * FIGURES_PER_JOB);
      return { loss: f[0], correct: f[1], windows: f[2], slots: f[3] };
    });
    // The step's gradient: 0 + g_0 + g_1 + ... in job order, whatever thread computed each.
    for (const p of params) p.grad.fill(0);
    for (let j = 0; j < jobs.length; j++) {
      let o = j * P;
      for (const p of params) {
        const g = p.grad,
          n = g.length;
        for (let k = 0; k < n; k++) g[k] += shared.grads[o + k];
        o += n;
      }
    }
    return figures;
  }

  close(): void {
    this.group.close();
  }
}
