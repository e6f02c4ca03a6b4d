import { jsKernels, trainKernels, wasmTrainKernels, type TrainKernels } from "./autograd/index.js";
import { packParams, paramCount, unpackParams, type Param } from "./param.js";
import { serveJobs, WorkerGroup, type GroupInit } from "./worker-group.js";

/**
 * Data parallelism whose gradient is summed in job order, with memory for
 * one gradient per thread (`ptp train`'s windows, inverse-AR's text
 * windows). Job j runs on worker j mod T. A worker computes the job's
 * gradient from zero, waits for the job's turn, adds the gradient into the
 * step's (a shared buffer) and passes the turn on. So the step's gradient
 * is 0 + g_0 + g_1 + ... in job order: the same bits on any number of
 * threads, and a run may resume on another count.
 *
 * The main thread computes no job: it posts them and awaits the workers
 * without blocking (worker-group.ts), so Ctrl-C abandons a step at once
 * however long it is.
 */

/** What every worker of an OrderedParallel is started with, besides its own data (the buffers are shared). */
export interface OrderedInit extends GroupInit {
  kernels: string;
  /** The trained params' values, in the order of the worker's params (Float32). */
  params: SharedArrayBuffer;
  /** The step's gradient, summed in job order (Float32). */
  grads: SharedArrayBuffer;
  /** Int32: the job whose gradient is added next. */
  turn: SharedArrayBuffer;
  /** Each job's figures (Float64, figuresPerJob a job). */
  figures: SharedArrayBuffer;
  figuresPerJob: number;
}

/** What a worker is told each step: its jobs (in increasing index) and the step's job count. */
interface OrderedMessage<J> {
  jobs: { index: number; job: J }[];
  count: number;
}

export class OrderedParallel<J> {
  readonly threads: number;
  private readonly group: WorkerGroup;
  private readonly shared: { params: Float32Array; grads: Float32Array; turn: Int32Array; figures: Float64Array };

  /**
   * Starts `threads` workers (at most maxJobs) of dist/train/`script`, each
   * given `data` too, and resolves once every one is ready. `params` are
   * the main thread's (what the optimizer steps); a worker's params must
   * have the same sizes in the same order.
   */
  static async start<J>(label: string, script: string, params: readonly Param[], o: { threads: number; maxJobs: number; figuresPerJob: number; kernels?: TrainKernels; data: object }): Promise<OrderedParallel<J>> {
    const parallel = new OrderedParallel<J>(label, script, params, o);
    await parallel.group.ready();
    return parallel;
  }

  private constructor(
    private readonly label: string,
    script: string,
    private readonly params: readonly Param[],
    private readonly o: { threads: number; maxJobs: number; figuresPerJob: number; kernels?: TrainKernels; data: object },
  ) {
    const kernels = o.kernels ?? trainKernels();
    if (!(Number.isInteger(o.threads) && o.threads >= 1)) throw new RangeError(`${label}: threads must be a positive integer, got ${o.threads}`);
    if (kernels.name !== "wasm" && kernels.name !== "js") throw new RangeError(`${label}: training threads run the "wasm" or "js" training kernels, got "${kernels.name}"`);
    this.threads = Math.min(o.threads, o.maxJobs);
    const P = paramCount(params);
    const sab = (bytes: number) => new SharedArrayBuffer(bytes);
    const buffers = { params: sab(4 * P), grads: sab(4 * P), turn: sab(4), figures: sab(8 * o.figuresPerJob * o.maxJobs) };
    this.shared = { params: new Float32Array(buffers.params), grads: new Float32Array(buffers.grads), turn: new Int32Array(buffers.turn), figures: new Float64Array(buffers.figures) };
    const init: Omit<OrderedInit, keyof GroupInit> = { ...o.data, kernels: kernels.name, figuresPerJob: o.figuresPerJob, ...buffers };
    this.group = new WorkerGroup(label, script, this.threads, () => init);
  }

  /**
   * Runs one step's jobs: afterwards the params' grads hold the step's
   * gradient (0 + g_0 + g_1 + ... in job order). Resolves with each job's
   * figures.
   */
  async run(jobs: readonly J[]): Promise<Float64Array[]> {
    const { shared, threads: T } = this,
      F = this.o.figuresPerJob;
    if (jobs.length > this.o.maxJobs) throw new RangeError(`${this.label}: ${jobs.length} jobs in a step, room for ${this.o.maxJobs}`);
    packParams(this.params, "data", shared.params);
    shared.grads.fill(0);
    Atomics.store(shared.turn, 0, 0);
    const messages = Array.from({ length: T }, (_, i): OrderedMessage<J> | undefined => {
      const mine = jobs.flatMap((job, index) => (index % T === i ? [{ index, job }] : []));
      return mine.length > 0 ? { jobs: mine, count: jobs.length } : undefined;
    });
    await this.group.run(messages);
    unpackParams(this.params, "grad", shared.grads);
    return jobs.map((_, j) => shared.figures.slice(j * F, (j + 1) * F));
  }

  close(): void {
    this.group.close();
  }
}

/** A worker's side of an OrderedParallel: its copies of the params, and one job's gradient into their grads (from zero) with the job's figures (`count`: the step's jobs). */
export interface OrderedWorker<J> {
  params: readonly Param[];
  run(job: J, count: number): number[];
}

/**
 * The worker script's body: `setup` builds the worker's state from its
 * workerData and the training kernels the main thread named; then for
 * each message the params' values are read from the shared buffer and
 * every job's gradient is added at its turn.
 */
export async function serveOrdered<D extends OrderedInit, J>(setup: (init: D, kernels: TrainKernels) => Promise<OrderedWorker<J>> | OrderedWorker<J>): Promise<void> {
  await serveJobs(async (init: D) => {
    const worker = await setup(init, init.kernels === "wasm" ? wasmTrainKernels() : jsKernels);
    const values = new Float32Array(init.params),
      grads = new Float32Array(init.grads),
      turn = new Int32Array(init.turn),
      figures = new Float64Array(init.figures);
    // The flat buffers follow the main thread's params: the worker's must have the same sizes.
    if (paramCount(worker.params) !== values.length) throw new Error(`the worker's params hold ${paramCount(worker.params)} values, the main thread's ${values.length}`);
    return (message: OrderedMessage<J>) => {
      unpackParams(worker.params, "data", values);
      for (const { index, job } of message.jobs) {
        for (const p of worker.params) p.grad.fill(0);
        figures.set(worker.run(job, message.count).slice(0, init.figuresPerJob), index * init.figuresPerJob);
        // Wait for this job's turn (in short waits: a closing group terminates a waiting worker between them).
        for (let now = Atomics.load(turn, 0); now !== index; now = Atomics.load(turn, 0)) Atomics.wait(turn, 0, now, 100);
        let k = 0;
        for (const p of worker.params) {
          const g = p.grad;
          for (let i = 0; i < g.length; i++) grads[k + i] += g[i];
          k += g.length;
        }
        Atomics.store(turn, 0, index + 1);
        Atomics.notify(turn, 0);
      }
    };
  });
}
