import type { Tape, Tensor } from "./tensor.js";

/** y[m, :] = x[m, :] * r_m * w, r_m = 1 / sqrt(mean(x[m, :]^2) + eps). */
export function rmsnorm(tape: Tape, x: Tensor, w: Tensor, eps: number): Tensor {
  const D = x.cols, M = x.data.length / D;
  if (w.data.length !== D) throw new RangeError(`rmsnorm: weight has ${w.data.length} values, rows have ${D}`);
  const y = tape.output(x.shape, [x, w]);
  const r = new Float64Array(M);
  for (let m = 0; m < M; m++) {
    let ss = 0;
    for (let d = 0; d < D; d++) ss += x.data[m * D + d] ** 2;
    r[m] = 1 / Math.sqrt(ss / D + eps);
    for (let d = 0; d < D; d++) y.data[m * D + d] = x.data[m * D + d] * r[m] * w.data[d];
  }
  tape.record(y, (dy) => {
    for (let m = 0; m < M; m++) {
      const o = m * D;
      // d y_d / d x_e = w_d (r delta_de - x_d x_e r^3 / D)
      let dot = 0;
      for (let d = 0; d < D; d++) dot += dy[o + d] * w.data[d] * x.data[o + d];
      const c = (r[m] ** 3 * dot) / D;
      for (let d = 0; d < D; d++) {
        if (x.grad) x.grad[o + d] += dy[o + d] * w.data[d] * r[m] - x.data[o + d] * c;
        if (w.grad) w.grad[d] += dy[o + d] * x.data[o + d] * r[m];
      }
    }
  });
  return y;
}
