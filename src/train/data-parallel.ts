import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { Checkpoint } from "../model/weights.js";
import type { Transformer } from "../model/transformer.js";
import type { Proposer } from "../ptp/proposer.js";
import { trainKernels, type TrainKernels } from "./autograd/index.js";
import { packParams, paramCount, SequenceGradient, type JobFigures, type JobSettings, type SequenceJob } from "./distill-step.js";
import type { Param } from "./param.js";

/**
 * Data parallelism for distillation: the sequences of a step are split over
 * threads (the main thread and T - 1 worker threads, each with its own copy
 * of the teacher and the proposer), and their gradients are summed in a
 * fixed order.
 *
 * Every job's gradient is computed from zero into its own slot of a shared
 * buffer, and the step's gradient is 0 + g_0 + g_1 + ... in job order. So a
 * step computes the same bits whatever the number of threads, and a run is
 * reproducible for a given seed on any thread count.
 *
 * The main thread stays synchronous (the training loop calls `run` inside a
 * step): it posts the workers their jobs, computes its own, then blocks on
 * Atomics.wait until each worker flags its slots done.
 */

/** Worker states in the control array (one Int32 per worker). */
export const WorkerState = { Starting: 0, Ready: 1, Busy: 2, Failed: 3 } as const;
type WorkerState = (typeof WorkerState)[keyof typeof WorkerState];

/** What a worker thread is started with (structured-cloned; the buffers are shared). */
export interface WorkerInit {
  index: number;
  teacher: Checkpoint;
  proposer: Proposer;
  settings: JobSettings;
  backend: string;
  kernels: string;
  control: SharedArrayBuffer;
  params: SharedArrayBuffer;
  grads: SharedArrayBuffer;
  figures: SharedArrayBuffer;
  error: SharedArrayBuffer;
}

/** Per-job figures in the shared figures buffer: loss, correct, windows, slots. */
export const FIGURES_PER_JOB = 4;
export const ERROR_BYTES = 4096;

export class DataParallel {
  readonly threads: number;
  private readonly main: SequenceGradient;
  private readonly params: readonly Param[];
  private readonly P: number;
  private readonly workers: Worker[] = [];
  private readonly control: Int32Array;
  private readonly shared: { params: Float32Array; grads: Float32Array; figures: Float64Array; error: Uint8Array };

  /**
   * `proposer` is the model being trained (its arrays are what the
   * optimizer updates); `maxJobs` the number of sequences per step.
   */
  constructor(teacherCkpt: Checkpoint, teacher: Transformer, proposer: Proposer, settings: JobSettings, threads: number, maxJobs: number, kernels: TrainKernels = trainKernels()) {
    if (!(Number.isInteger(threads) && threads >= 1)) throw new RangeError(`training threads must be a positive integer, got ${threads}`);
    this.threads = Math.min(threads, Math.max(1, maxJobs));
    this.main = new SequenceGradient(teacherCkpt, teacher, proposer, settings, kernels);
    this.params = this.main.params;
    this.P = paramCount(this.params);
    const sab = (bytes: number) => new SharedArrayBuffer(bytes);
    const buffers = { control: sab(4 * this.threads), params: sab(4 * this.P), grads: sab(4 * this.P * maxJobs), figures: sab(8 * FIGURES_PER_JOB * maxJobs), error: sab(ERROR_BYTES) };
    this.control = new Int32Array(buffers.control);
    this.shared = { params: new Float32Array(buffers.params), grads: new Float32Array(buffers.grads), figures: new Float64Array(buffers.figures), error: new Uint8Array(buffers.error) };
    if (this.threads === 1) return;
    const url = workerUrl();
    for (let i = 1; i < this.threads; i++) {
      const init: WorkerInit = { index: i, teacher: teacherCkpt, proposer, settings, backend: teacher.backend.name, kernels: kernels.name, ...buffers };
      const w = new Worker(url, { workerData: init });
      w.unref();
      this.workers.push(w);
    }
    for (let i = 1; i < this.threads; i++) this.await(i, WorkerState.Starting);
  }

  /** The params of the main thread's proposer (the arrays the optimizer steps). */
  get trainable(): readonly Param[] {
    return this.params;
  }

  /**
   * Runs the step's jobs; afterwards the params' grads hold the sum of the
   * jobs' gradients in job order. Returns each job's figures.
   */
  run(jobs: readonly SequenceJob[]): JobFigures[] {
    const { params, P, shared } = this;
    const capacity = shared.grads.length / P;
    if (jobs.length > capacity) throw new RangeError(`data parallel: ${jobs.length} jobs in a step, room for ${capacity}`);
    const T = this.threads;
    if (T > 1) {
      packParams(params, "data", shared.params);
      for (let i = 1; i < T; i++) {
        const mine = jobs.map((job, j) => ({ job, slot: j })).filter(({ slot }) => slot % T === i);
        if (mine.length === 0) continue;
        Atomics.store(this.control, i, WorkerState.Busy);
        this.workers[i - 1].postMessage(mine.map(({ job, slot }) => ({ slot, tokens: job.tokens, us: job.us, starts: job.starts })));
      }
    }
    const figures: JobFigures[] = new Array(jobs.length);
    for (let j = 0; j < jobs.length; j += T) {
      for (const p of params) p.grad.fill(0);
      figures[j] = this.main.run(jobs[j]);
      packParams(params, "grad", shared.grads.subarray(j * P, (j + 1) * P));
    }
    for (let i = 1; i < T; i++) this.await(i, WorkerState.Busy);
    for (let j = 0; j < jobs.length; j++) {
      if (j % T === 0) continue;
      const f = shared.figures.subarray(j * FIGURES_PER_JOB, (j + 1) * FIGURES_PER_JOB);
      figures[j] = { loss: f[0], correct: f[1], windows: f[2], slots: f[3] };
    }
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

  /** Blocks until worker i leaves state `from`; throws its error if it failed. */
  private await(i: number, from: WorkerState): void {
    while (Atomics.load(this.control, i) === from) Atomics.wait(this.control, i, from, 1000);
    if (Atomics.load(this.control, i) === WorkerState.Failed) {
      const bytes = this.shared.error,
        end = bytes.indexOf(0);
      const message = new TextDecoder().decode(bytes.slice(0, end < 0 ? bytes.length : end));
      this.close();
      throw new Error(`training worker ${i}: ${message}`);
    }
  }

  close(): void {
    for (const w of this.workers) void w.terminate();
    this.workers.length = 0;
  }
}

/** The compiled worker script (dist/train/distill-worker.js), also when this module runs from source (tests, tsx). */
function workerUrl(): URL {
  const here = import.meta.url;
  const url = here.endsWith(".ts") ? new URL("../../dist/train/distill-worker.js", here) : new URL("./distill-worker.js", here);
  if (!existsSync(fileURLToPath(url))) throw new Error(`training threads: the worker script ${fileURLToPath(url)} is missing (run 'npm run build')`);
  return url;
}
