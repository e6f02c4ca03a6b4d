import type { Tape, Tensor } from "./tensor.js";

/** y[m, :] = x[m, :] * r_m * w, r_m = 1 / sqrt(mean(x[m, :]^2) + eps). */
export function rmsnorm(tape: Tape, x: Tensor, w: Tensor, eps: number): Tensor {
  const D = x.cols,
    M = x.data.length / D;
  if (w.data.length !== D) throw new RangeError(`rmsnorm: weight has ${w.data.length} values, rows have ${D}`);
  const y = tape.output(x.shape, [x, w]);
  const r = new Float64Array(M),
    xd = x.data,
    wd = w.data,
    yd = y.data;
  for (let m = 0; m < M; m++) {
    const o = m * D;
    let ss = 0;
    for (let d = 0; d < D; d++) ss += xd[o + d] * xd[o + d];
    const rm = 1 / Math.sqrt(ss / D + eps);
    r[m] = rm;
    for (let d = 0; d < D; d++) yd[o + d] = xd[o + d] * rm * wd[d];
  }
  tape.record(y, (dy) => {
    const xg = x.grad,
      wg = w.grad;
    for (let m = 0; m < M; m++) {
      const o = m * D,
        rm = r[m];
      // d y_d / d x_e = w_d (r delta_de - x_d x_e r^3 / D)
      if (xg) {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += dy[o + d] * wd[d] * xd[o + d];
        const c = (rm * rm * rm * dot) / D;
        for (let d = 0; d < D; d++) xg[o + d] += dy[o + d] * wd[d] * rm - xd[o + d] * c;
      }
      if (wg) for (let d = 0; d < D; d++) wg[d] += dy[o + d] * xd[o + d] * rm;
    }
  });
  return y;
}
