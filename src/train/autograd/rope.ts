import { ropeAngle } from "../../backends/rope-angle.js";
import type { Tape, Tensor } from "./tensor.js";

/**
 * RoPE on x [M, nHeads * headSize] at the rows' positions, with the angles
 * the inference backends use. A rotation, so its backward pass is the
 * rotation by the opposite angle.
 */
export function rope(tape: Tape, x: Tensor, positions: Int32Array, nHeads: number, headSize: number, theta: number): Tensor {
  const W = nHeads * headSize, M = x.data.length / W;
  if (x.cols !== W) throw new RangeError(`rope: rows have ${x.cols} values, expected nHeads * headSize = ${W}`);
  if (positions.length !== M) throw new RangeError(`rope: ${positions.length} positions for ${M} rows`);
  const half = headSize / 2;
  const cos = new Float64Array(M * half), sin = new Float64Array(M * half);
  for (let m = 0; m < M; m++) {
    for (let i = 0; i < headSize; i += 2) {
      const a = ropeAngle(positions[m], i, headSize, theta);
      cos[m * half + i / 2] = Math.cos(a);
      sin[m * half + i / 2] = Math.sin(a);
    }
  }
  const y = tape.output(x.shape, [x]);
  const rotate = (src: Float32Array, dst: Float32Array, sign: number, accumulate: boolean) => {
    for (let m = 0; m < M; m++) {
      for (let i = 0; i < half; i++) {
        const c = cos[m * half + i], s = sign * sin[m * half + i];
        for (let h = 0; h < nHeads; h++) {
          const o = m * W + h * headSize + 2 * i;
          const a = src[o], b = src[o + 1];
          const ya = a * c - b * s, yb = a * s + b * c;
          if (accumulate) {
            dst[o] += ya;
            dst[o + 1] += yb;
          } else {
            dst[o] = ya;
            dst[o + 1] = yb;
          }
        }
      }
    }
  };
  rotate(x.data, y.data, 1, false);
  tape.record(y, (dy) => rotate(dy, x.grad!, -1, true));
  return y;
}
