import { ropeAngle } from "../../util/rope-angle.js";
import type { Tape, Tensor } from "./tensor.js";

/** The cos / sin tables of the last positions seen (q and k of a layer, and every layer, share them). */
let lastTables: { positions: Int32Array; headSize: number; theta: number; cos: Float64Array; sin: Float64Array } | null = null;

function ropeTables(positions: Int32Array, headSize: number, theta: number): [cos: Float64Array, sin: Float64Array] {
  const M = positions.length,
    half = headSize / 2,
    last = lastTables;
  if (last && last.headSize === headSize && last.theta === theta && last.positions.length === M) {
    let same = true;
    for (let m = 0; m < M && same; m++) same = last.positions[m] === positions[m];
    if (same) return [last.cos, last.sin];
  }
  const cos = new Float64Array(M * half),
    sin = new Float64Array(M * half);
  for (let m = 0; m < M; m++) {
    for (let i = 0; i < headSize; i += 2) {
      const a = ropeAngle(positions[m], i, headSize, theta);
      cos[m * half + i / 2] = Math.cos(a);
      sin[m * half + i / 2] = Math.sin(a);
    }
  }
  lastTables = { positions: positions.slice(), headSize, theta, cos, sin };
  return [cos, sin];
}

/**
 * RoPE on x [M, nHeads * headSize] at the rows' positions, with the angles
 * the inference backends use. A rotation, so its backward pass is the
 * rotation by the opposite angle.
 */
export function rope(tape: Tape, x: Tensor, positions: Int32Array, nHeads: number, headSize: number, theta: number): Tensor {
  const W = nHeads * headSize,
    M = x.data.length / W;
  if (x.cols !== W) throw new RangeError(`rope: rows have ${x.cols} values, expected nHeads * headSize = ${W}`);
  if (positions.length !== M) throw new RangeError(`rope: ${positions.length} positions for ${M} rows`);
  const half = headSize / 2;
  const [cos, sin] = ropeTables(positions, headSize, theta);
  const y = tape.output(x.shape, [x]);
  const src = x.data,
    dst = y.data;
  for (let m = 0; m < M; m++) {
    for (let i = 0; i < half; i++) {
      const c = cos[m * half + i],
        s = sin[m * half + i];
      for (let h = 0; h < nHeads; h++) {
        const o = m * W + h * headSize + 2 * i;
        const a = src[o],
          b = src[o + 1];
        dst[o] = a * c - b * s;
        dst[o + 1] = a * s + b * c;
      }
    }
  }
  tape.record(y, (dy) => {
    const g = x.grad!;
    for (let m = 0; m < M; m++) {
      for (let i = 0; i < half; i++) {
        const c = cos[m * half + i],
          s = -sin[m * half + i];
        for (let h = 0; h < nHeads; h++) {
          const o = m * W + h * headSize + 2 * i;
          const a = dy[o],
            b = dy[o + 1];
          g[o] += a * c - b * s;
          g[o + 1] += a * s + b * c;
        }
      }
    }
  });
  return y;
}
