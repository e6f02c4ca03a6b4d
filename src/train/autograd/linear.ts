import type { Tape, Tensor } from "./tensor.js";

/** y = x W^T, x [M, K], W [N, K] -> y [M, N]. */
export function linear(tape: Tape, x: Tensor, w: Tensor): Tensor {
  const [M, K] = x.shape,
    [N, K2] = w.shape;
  if (K !== K2) throw new RangeError(`linear: x has ${K} columns but W is [${N}, ${K2}]`);
  const k = tape.kernels;
  const y = tape.output([M, N], [x, w]);
  k.matmul(y.data, x.data, w.data, M, K, N);
  tape.record(y, (dy) => {
    if (x.grad) k.matmulGradX(x.grad, dy, w.data, M, K, N);
    if (w.grad) k.matmulGradW(w.grad, dy, x.data, M, K, N);
  });
  return y;
}

/**
 * A linear layer with a LoRA update in one op:
 *   y = x W^T + s ((x A^T) B^T),  x [M, K], W [N, K], A [r, K], B [N, r].
 * Computes exactly what add(linear(x, W), scale(linear(linear(x, A), B), s))
 * computes, value for value and gradient for gradient (the same float32
 * products and roundings), without the intermediate tensors, their
 * gradients and the copies between them.
 */
export function linearLora(tape: Tape, x: Tensor, w: Tensor, a: Tensor, b: Tensor, s: number): Tensor {
  const [M, K] = x.shape,
    [N, K2] = w.shape,
    [r, K3] = a.shape,
    [N2, r2] = b.shape;
  if (K !== K2 || K !== K3 || N !== N2 || r !== r2) {
    throw new RangeError(`linearLora: x [${x.shape}] W [${w.shape}] A [${a.shape}] B [${b.shape}] do not fit y = x W^T + s (x A^T) B^T`);
  }
  const k = tape.kernels;
  const y = tape.output([M, N], [x, w, a, b]);
  const t = tape.alloc(M * r);
  k.loraForward(y.data, t, x.data, w.data, a.data, b.data, M, K, N, r, s);
  tape.record(y, (dy) => k.loraBackward(x.grad, a.grad, b.grad, w.grad, dy, x.data, w.data, a.data, b.data, t, M, K, N, r, s));
  return y;
}
