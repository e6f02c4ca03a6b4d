import type { ModelConfig } from "../model/config.js";
import type { Checkpoint } from "../model/weights.js";
import { Tape, trainKernels, type BufferPool, type TrainKernels } from "./autograd/index.js";
import type { GraphWeights } from "./graph.js";
import { packParams, paramCount, unpackParams, type Param } from "./param.js";
import { windowGradient } from "./next-token.js";
import { WorkerGroup, type GroupInit } from "./worker-group.js";

/**
 * Data parallelism for next-token pretraining (`ptp train --threads`): the
 * windows of a step are its jobs, window j on worker j mod T. A worker
 * computes its window's gradient from zero, waits for the window's turn,
 * adds the gradient into the step's (a shared buffer) and passes the turn
 * on. So the step's gradient is 0 + g_0 + g_1 + ... in window order: the
 * same bits on any number of threads (a run may resume on another count),
 * with memory for one gradient per thread rather than one per window.
 *
 * The main thread computes no window: it posts the jobs and awaits the
 * workers without blocking (worker-group.ts), so Ctrl-C abandons a step at
 * once however long it is.
 */

/** What a pretraining worker is started with (structured-cloned; the buffers are shared). */
export interface PretrainWorkerInit extends GroupInit {
  /** The model (its weights are overwritten from `params` before every step). */
  model: Checkpoint;
  kernels: string;
  /** The training token stream (Int32). */
  stream: SharedArrayBuffer;
  context: number;
  /** The model's weights, in trainableWeights order (Float32). */
  params: SharedArrayBuffer;
  /** The step's gradient, summed in window order (Float32). */
  grads: SharedArrayBuffer;
  /** Int32: the window whose gradient is added next. */
  turn: SharedArrayBuffer;
  /** Each window's mean loss (Float64). */
  losses: SharedArrayBuffer;
}

/** What a worker is told each step: the windows it computes (in increasing order) and the step's window count. */
export interface PretrainJobs {
  windows: { index: number; start: number }[];
  batch: number;
}

/** The worker side: compute each of `jobs`' windows, then add its gradient into `grads` at its turn. */
export function runWindows(jobs: PretrainJobs, o: { c: ModelConfig; params: readonly Param[]; weights: GraphWeights; kernels: TrainKernels; pool: BufferPool; stream: Int32Array; T: number; grads: Float32Array; turn: Int32Array; losses: Float64Array }): void {
  for (const { index, start } of jobs.windows) {
    for (const p of o.params) p.grad.fill(0);
    const tape = new Tape(o.kernels, o.pool);
    o.losses[index] = windowGradient(tape, o.c, o.weights, o.stream, start, o.T, jobs.batch);
    tape.release();
    // Wait for this window's turn (in short waits: a closing group terminates a waiting worker between them).
    for (let now = Atomics.load(o.turn, 0); now !== index; now = Atomics.load(o.turn, 0)) Atomics.wait(o.turn, 0, now, 100);
    let k = 0;
    for (const p of o.params) {
      const g = p.grad;
      for (let i = 0; i < g.length; i++) o.grads[k + i] += g[i];
      k += g.length;
    }
    Atomics.store(o.turn, 0, index + 1);
    Atomics.notify(o.turn, 0);
  }
}

export class PretrainParallel {
  readonly threads: number;
  private readonly group: WorkerGroup;
  private readonly shared: { params: Float32Array; grads: Float32Array; turn: Int32Array; losses: Float64Array };

  /**
   * Starts `threads` workers (at most `batch`) over `model`, whose params
   * (`params`, trainableWeights order) the optimizer steps on this thread,
   * and resolves once every one holds its copy.
   */
  static async start(model: Checkpoint, params: readonly Param[], train: Int32Array, o: { batch: number; context: number; threads: number; kernels?: TrainKernels }): Promise<PretrainParallel> {
    const parallel = new PretrainParallel(model, params, train, o);
    await parallel.group.ready();
    return parallel;
  }

  private constructor(
    model: Checkpoint,
    private readonly params: readonly Param[],
    train: Int32Array,
    o: { batch: number; context: number; threads: number; kernels?: TrainKernels },
  ) {
    const kernels = o.kernels ?? trainKernels();
    if (!(Number.isInteger(o.threads) && o.threads >= 1)) throw new RangeError(`pretrain: threads must be a positive integer, got ${o.threads}`);
    if (kernels.name !== "wasm" && kernels.name !== "js") throw new RangeError(`pretrain: training threads run the "wasm" or "js" training kernels, got "${kernels.name}"`);
    this.threads = Math.min(o.threads, o.batch);
    const P = paramCount(params);
    const sab = (bytes: number) => new SharedArrayBuffer(bytes);
    const buffers = { stream: sab(4 * train.length), params: sab(4 * P), grads: sab(4 * P), turn: sab(4), losses: sab(8 * o.batch) };
    new Int32Array(buffers.stream).set(train);
    this.shared = { params: new Float32Array(buffers.params), grads: new Float32Array(buffers.grads), turn: new Int32Array(buffers.turn), losses: new Float64Array(buffers.losses) };
    const data: Omit<PretrainWorkerInit, keyof GroupInit> = { model, kernels: kernels.name, context: o.context, ...buffers };
    this.group = new WorkerGroup("pretrain", "pretrain-worker.js", this.threads, () => data);
  }

  /**
   * One step over the windows at `starts`: afterwards the params' grads
   * hold the step's gradient (0 + g_0 + g_1 + ... in window order).
   * Resolves with the step's loss, the mean of the windows' in order.
   */
  async step(starts: readonly number[]): Promise<number> {
    const { shared, threads: T } = this;
    if (starts.length > shared.losses.length) throw new RangeError(`pretrain: ${starts.length} windows in a step, room for ${shared.losses.length}`);
    packParams(this.params, "data", shared.params);
    shared.grads.fill(0);
    Atomics.store(shared.turn, 0, 0);
    const messages = Array.from({ length: T }, (_, i): PretrainJobs | undefined => {
      const windows = starts.flatMap((start, index) => (index % T === i ? [{ index, start }] : []));
      return windows.length > 0 ? { windows, batch: starts.length } : undefined;
    });
    await this.group.run(messages);
    unpackParams(this.params, "grad", shared.grads);
    let loss = 0;
    for (let j = 0; j < starts.length; j++) loss += shared.losses[j] / starts.length;
    return loss;
  }

  close(): void {
    this.group.close();
  }
}
