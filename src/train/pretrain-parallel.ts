import type { Checkpoint } from "../model/weights.js";
import type { TrainKernels } from "./autograd/index.js";
import { OrderedParallel, type OrderedInit } from "./ordered-parallel.js";
import type { Param } from "./param.js";

/**
 * `ptp train`'s steps on worker threads (`--threads`): a step's windows are
 * the jobs of an OrderedParallel (ordered-parallel.ts), each worker holding
 * a copy of the model and the token stream (pretrain-worker.ts). The step's
 * gradient is 0 + g_0 + g_1 + ... in window order, g_j being window j's
 * `windowGradient` (next-token.ts): the same bits on any number of threads.
 */

/** What a pretraining worker is started with besides OrderedInit (structured-cloned; the stream is shared). */
export interface PretrainWorkerInit extends OrderedInit {
  /** The model (its weights are overwritten from the shared params before every step). */
  model: Checkpoint;
  /** The training token stream (Int32). */
  stream: SharedArrayBuffer;
  context: number;
}

export class PretrainParallel {
  private constructor(private readonly parallel: OrderedParallel<number>) {}

  /**
   * Starts `threads` workers (at most `batch`) over `model`, whose params
   * (`params`, trainableWeights order) the optimizer steps on this thread,
   * and resolves once every one holds its copy.
   */
  static async start(model: Checkpoint, params: readonly Param[], train: Int32Array, o: { batch: number; context: number; threads: number; kernels?: TrainKernels }): Promise<PretrainParallel> {
    const stream = new SharedArrayBuffer(4 * train.length);
    new Int32Array(stream).set(train);
    const data: Pick<PretrainWorkerInit, "model" | "stream" | "context"> = { model, stream, context: o.context };
    return new PretrainParallel(await OrderedParallel.start<number>("pretrain", "pretrain-worker.js", params, { threads: o.threads, maxJobs: o.batch, figuresPerJob: 1, kernels: o.kernels, data }));
  }

  get threads(): number {
    return this.parallel.threads;
  }

  /**
   * One step over the windows at `starts`: afterwards the params' grads
   * hold the step's gradient. Resolves with the step's loss, the windows'
   * mean losses divided by their count and summed in order.
   */
  async step(starts: readonly number[]): Promise<number> {
    const figures = await this.parallel.run(starts);
    return figures.reduce((loss, f) => loss + f[0] / starts.length, 0);
  }

  close(): void {
    this.parallel.close();
  }
}
