import type { BufferPool } from "./buffers.js";
import { trainKernels, type TrainKernels } from "./kernels.js";
import type { Param } from "../param.js";

/**
 * A value in a differentiable computation: float32 data with a shape and,
 * when something upstream trains, a gradient of the same size. Tensors made
 * from a Param share its data and grad arrays, so the backward pass writes
 * straight into what the optimizer reads.
 */
export class Tensor {
  constructor(
    readonly data: Float32Array,
    readonly shape: readonly number[],
    /** null: a constant (no gradient flows into it). */
    readonly grad: Float32Array | null = null,
  ) {
    const n = shape.reduce((a, b) => a * b, 1);
    if (n !== data.length) throw new RangeError(`tensor: shape [${shape.join(", ")}] needs ${n} values, got ${data.length}`);
    if (grad && grad.length !== data.length) throw new RangeError(`tensor: grad has ${grad.length} values, data ${data.length}`);
  }

  get requiresGrad(): boolean {
    return this.grad !== null;
  }

  /** Rows of a 2-D tensor (the first dimension). */
  get rows(): number {
    return this.shape[0];
  }

  /** Width of a 2-D tensor (the last dimension). */
  get cols(): number {
    return this.shape[this.shape.length - 1];
  }

  static constant(data: Float32Array, shape: readonly number[]): Tensor {
    return new Tensor(data, shape, null);
  }

  static param(p: Param): Tensor {
    return new Tensor(p.data, p.shape, p.grad);
  }
}

/**
 * The tape of reverse-mode autodiff (micrograd's idea, over tensors): every
 * op that produces a tensor needing a gradient records a closure that pushes
 * the output's gradient into its inputs' gradients; `backward` runs them in
 * reverse order of recording, which is a valid topological order.
 */
export class Tape {
  private readonly steps: (() => void)[] = [];
  /** The arrays this tape took from its pool (given back by release). */
  private readonly taken: Float32Array[] = [];
  private released = false;

  /**
   * `kernels`: the dense products' implementation the ops on this tape run
   * (default: trainKernels(), plain TypeScript unless switched). `pool`:
   * where the tape's arrays come from and, on `release()`, go back to (see
   * buffers.ts); without one every array is new and left to the collector.
   */
  constructor(
    readonly kernels: TrainKernels = trainKernels(),
    private readonly pool?: BufferPool,
  ) {}

  /** A zeroed array of n floats for an op on this tape (its output, its gradient, what its backward step keeps). */
  alloc(n: number): Float32Array {
    if (this.released) throw new Error("tape: used after release()");
    if (!this.pool) return new Float32Array(n);
    const a = this.pool.take(n);
    this.taken.push(a);
    return a;
  }

  /** The output tensor of an op on `inputs`: with a gradient iff any input has one. */
  output(shape: readonly number[], inputs: readonly Tensor[], data?: Float32Array): Tensor {
    const n = shape.reduce((a, b) => a * b, 1);
    const grad = inputs.some((t) => t.requiresGrad) ? this.alloc(n) : null;
    return new Tensor(data ?? this.alloc(n), shape, grad);
  }

  /** Record the backward step of an op whose output is `out` (skipped for constants). */
  record(out: Tensor, step: (dOut: Float32Array) => void): void {
    if (out.grad) {
      const g = out.grad;
      this.steps.push(() => step(g));
    }
  }

  /** Backpropagate from a scalar: d loss / d loss = 1, then every recorded step in reverse. */
  backward(loss: Tensor): void {
    if (loss.data.length !== 1) throw new RangeError(`backward: the loss must be a scalar, got shape [${loss.shape.join(", ")}]`);
    if (!loss.grad) throw new Error("backward: the loss does not depend on any trainable tensor");
    loss.grad[0] = 1;
    for (let i = this.steps.length - 1; i >= 0; i--) this.steps[i]();
    this.steps.length = 0;
  }

  /**
   * Gives the tape's arrays back to its pool: every tensor the tape made
   * (the loss included) is invalid afterwards, so read what is needed
   * first. The tape cannot be used again. Without a pool this only ends
   * the tape.
   */
  release(): void {
    this.released = true;
    this.steps.length = 0;
    this.pool?.give(this.taken);
    this.taken.length = 0;
  }
}
