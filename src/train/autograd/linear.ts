import { trainKernels } from "./kernels.js";
import type { Tape, Tensor } from "./tensor.js";

/** y = x W^T, x [M, K], W [N, K] -> y [M, N]. */
export function linear(tape: Tape, x: Tensor, w: Tensor): Tensor {
  const [M, K] = x.shape, [N, K2] = w.shape;
  if (K !== K2) throw new RangeError(`linear: x has ${K} columns but W is [${N}, ${K2}]`);
  const k = trainKernels();
  const y = tape.output([M, N], [x, w]);
  k.matmul(y.data, x.data, w.data, M, K, N);
  tape.record(y, (dy) => {
    if (x.grad) k.matmulGradX(x.grad, dy, w.data, M, K, N);
    if (w.grad) k.matmulGradW(w.grad, dy, x.data, M, K, N);
  });
  return y;
}
