import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { Checkpoint } from "../model/weights.js";
import type { Transformer } from "../model/transformer.js";
import type { Proposer } from "../ptp/proposer.js";
import { trainKernels, type TrainKernels } from "./autograd/index.js";
import { packParams, paramCount, type JobFigures, type JobSettings, type SequenceJob } from "./distill-step.js";
import { trainableDraft, trainableStudent } from "./student-params.js";
import type { Param } from "./param.js";

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
 * Every job runs on a worker thread (T threads are T workers), never on
 * the main thread: it posts the jobs, then awaits the workers without
 * blocking (Atomics.waitAsync), so its event loop keeps turning while a
 * step runs and Ctrl-C is seen at once, however long the step (a first
 * signal abandons the step, a second exits; see interrupt.ts).
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
  private readonly params: readonly Param[];
  private readonly P: number;
  private readonly workers: Worker[] = [];
  private readonly control: Int32Array;
  private readonly shared: { params: Float32Array; grads: Float32Array; figures: Float64Array; error: Uint8Array };
  private closed = false;

  /**
   * Starts the workers and resolves once every one holds its teacher and
   * proposer. `proposer` is the model being trained (its arrays are what
   * the optimizer updates); `maxJobs` the number of sequences per step.
   */
  static async start(teacherCkpt: Checkpoint, teacher: Transformer, proposer: Proposer, settings: JobSettings, threads: number, maxJobs: number, kernels: TrainKernels = trainKernels()): Promise<DataParallel> {
    const parallel = new DataParallel(teacherCkpt, teacher, proposer, settings, threads, maxJobs, kernels);
    try {
      for (let i = 0; i < parallel.threads; i++) await parallel.whileIn(i, WorkerState.Starting);
    } catch (err) {
      parallel.close();
      throw err;
    }
    return parallel;
  }

  private constructor(teacherCkpt: Checkpoint, teacher: Transformer, proposer: Proposer, settings: JobSettings, threads: number, maxJobs: number, kernels: TrainKernels) {
    if (!(Number.isInteger(threads) && threads >= 1)) throw new RangeError(`training threads must be a positive integer, got ${threads}`);
    if (kernels.name !== "wasm" && kernels.name !== "js") throw new RangeError(`training threads run the "wasm" or "js" training kernels, got "${kernels.name}"`);
    this.threads = Math.min(threads, Math.max(1, maxJobs));
    this.params = proposer.kind === "draft" ? trainableDraft(proposer.draft).params : trainableStudent(proposer.student, teacherCkpt.config).params;
    this.P = paramCount(this.params);
    const sab = (bytes: number) => new SharedArrayBuffer(bytes);
    const buffers = { control: sab(4 * this.threads), params: sab(4 * this.P), grads: sab(4 * this.P * maxJobs), figures: sab(8 * FIGURES_PER_JOB * maxJobs), error: sab(ERROR_BYTES) };
    this.control = new Int32Array(buffers.control);
    this.shared = { params: new Float32Array(buffers.params), grads: new Float32Array(buffers.grads), figures: new Float64Array(buffers.figures), error: new Uint8Array(buffers.error) };
    const url = workerUrl();
    for (let i = 0; i < this.threads; i++) {
      const init: WorkerInit = { index: i, teacher: teacherCkpt, proposer, settings, backend: teacher.backend.name, kernels: kernels.name, ...buffers };
      const w = new Worker(url, { workerData: init });
      // A worker that dies without saying why (an uncaught error, running out of memory) fails its jobs.
      w.on("error", (err) => this.failed(i, err.message));
      w.on("exit", (code) => this.failed(i, `exited with code ${code}`));
      w.unref();
      this.workers.push(w);
    }
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
    if (this.closed) throw new Error("data parallel: the workers were closed");
    const capacity = shared.grads.length / P;
    if (jobs.length > capacity) throw new RangeError(`data parallel: ${jobs.length} jobs in a step, room for ${capacity}`);
    const T = this.threads;
    packParams(params, "data", shared.params);
    const busy: number[] = [];
    for (let i = 0; i < T; i++) {
      const mine = jobs.map((job, slot) => ({ job, slot })).filter(({ slot }) => slot % T === i);
      if (mine.length === 0) continue;
      Atomics.store(this.control, i, WorkerState.Busy);
      this.workers[i].postMessage(mine.map(({ job, slot }) => ({ slot, tokens: job.tokens, us: job.us, starts: job.starts })));
      busy.push(i);
    }
    for (const i of busy) await this.whileIn(i, WorkerState.Busy);
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

  /** Resolves once worker i leaves state `from` (without blocking the event loop); rejects with its error if it failed. */
  private async whileIn(i: number, from: WorkerState): Promise<void> {
    // A pending waitAsync does not keep Node alive: the worker does, while it is awaited.
    const worker = this.workers[i];
    worker?.ref();
    try {
      while (Atomics.load(this.control, i) === from) {
        const w = waitAsync(this.control, i, from, 1000);
        if (w.async) await w.value;
      }
    } finally {
      worker?.unref();
    }
    if (Atomics.load(this.control, i) === WorkerState.Failed) {
      const bytes = this.shared.error,
        end = bytes.indexOf(0);
      const message = new TextDecoder().decode(bytes.slice(0, end < 0 ? bytes.length : end));
      this.close();
      throw new Error(`training worker ${i}: ${message}`);
    }
  }

  /** Worker i died: its error message for whoever awaits it (the first failure's message is kept). */
  private failed(i: number, message: string): void {
    if (this.closed || Atomics.load(this.control, i) === WorkerState.Failed) return;
    if (this.shared.error[0] === 0) this.shared.error.set(new TextEncoder().encode(message).subarray(0, ERROR_BYTES - 1));
    Atomics.store(this.control, i, WorkerState.Failed);
    Atomics.notify(this.control, i);
  }

  close(): void {
    this.closed = true;
    for (const w of this.workers) void w.terminate();
    this.workers.length = 0;
  }
}

/** Atomics.waitAsync (ES2024, in Node since 16), typed here: the project's TypeScript lib predates it. */
const waitAsync = (Atomics as unknown as { waitAsync(a: Int32Array, i: number, value: number, ms: number): { async: false; value: string } | { async: true; value: Promise<string> } }).waitAsync;

/** The compiled worker script (dist/train/distill-worker.js), also when this module runs from source (tests, tsx). */
function workerUrl(): URL {
  const here = import.meta.url;
  const url = here.endsWith(".ts") ? new URL("../../dist/train/distill-worker.js", here) : new URL("./distill-worker.js", here);
  if (!existsSync(fileURLToPath(url))) throw new Error(`training threads: the worker script ${fileURLToPath(url)} is missing (run 'npm run build')`);
  return url;
}
