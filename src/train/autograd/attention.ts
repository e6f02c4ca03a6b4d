import { constantPrefixRows } from "./elementwise.js";
import type { Tape, Tensor } from "./tensor.js";

/**
 * Which keys each query row sees, as at most two half-open index ranges per
 * row: bounds[4m .. 4m+3] = [a0, b0, a1, b1], keys a0..b0-1 then a1..b1-1
 * (an empty range has a = b). Two ranges cover every layout training needs:
 * a PTP slot sees its context prefix and its own window's slots; a row of a
 * packed sequence sees its own sequence up to itself.
 */
export type KeyRanges = Int32Array;

/**
 * Masked multi-head attention with GQA, as the inference backends define it:
 * out = softmax(q k^T / sqrt(hs)) v over the visible keys only.
 * q [M, nHeads * hs]; k, v [nKeys, nKvHeads * hs]; out [M, nHeads * hs].
 */
export function attention(tape: Tape, q: Tensor, k: Tensor, v: Tensor, visible: KeyRanges, nHeads: number, nKvHeads: number, hs: number): Tensor {
  const W = nHeads * hs,
    KW = nKvHeads * hs,
    M = q.data.length / W,
    nKeys = k.data.length / KW;
  if (q.cols !== W || k.cols !== KW || v.cols !== KW || v.data.length !== k.data.length) {
    throw new RangeError(`attention: q [${q.shape}] k [${k.shape}] v [${v.shape}] do not fit nHeads ${nHeads}, nKvHeads ${nKvHeads}, headSize ${hs}`);
  }
  if (visible.length !== 4 * M) throw new RangeError(`attention: key ranges for ${visible.length / 4} rows, expected ${M}`);
  const scale = 1 / Math.sqrt(hs);
  // Probabilities are kept for the backward pass: offsets[m] indexes row m's block of nHeads * count(m).
  const offsets = new Int32Array(M + 1);
  for (let m = 0; m < M; m++) {
    const [a0, b0, a1, b1] = visible.subarray(4 * m, 4 * m + 4);
    const overlap = b0 > a0 && b1 > a1 && a1 < b0;
    if (a0 < 0 || b0 < a0 || a1 < 0 || b1 < a1 || b0 > nKeys || b1 > nKeys || overlap || b0 - a0 + b1 - a1 === 0) {
      throw new RangeError(`attention: row ${m} has bad key ranges [${a0}, ${b0}) [${a1}, ${b1}) for ${nKeys} keys (ranges must not overlap, and each row must see at least one key)`);
    }
    offsets[m + 1] = offsets[m] + nHeads * (b0 - a0 + b1 - a1);
  }
  const probs = tape.alloc(offsets[M]);
  const k_ = tape.kernels;
  const out = tape.output(q.shape, [q, k, v]);
  k_.attentionForward(out.data, probs, q.data, k.data, v.data, visible, offsets, M, nHeads, nKvHeads, hs, scale);
  tape.record(out, (dO) => {
    // Inputs without a gradient still get one computed, into scratch.
    const grad = (t: Tensor) => t.grad ?? tape.alloc(t.data.length);
    // Leading key rows that are constants (a context prefix concatenated in front) need no dk, dv.
    const kvFrom = Math.min(constantPrefixRows(k), constantPrefixRows(v));
    k_.attentionBackward(grad(q), grad(k), grad(v), dO, probs, q.data, k.data, v.data, visible, offsets, M, nHeads, nKvHeads, hs, scale, kvFrom);
  });
  return out;
}
