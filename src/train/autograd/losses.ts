import type { Tape, Tensor } from "./tensor.js";

/**
 * The training losses over rows of logits [R, V]. Each row has a weight
 * (gamma^k position weighting; 0 drops the row, e.g. a target past the end
 * of the text); a loss is the weighted mean over rows, so its scale does not
 * depend on how many rows a batch holds.
 *
 * Logits are divided by the sampling temperature first (`invTemp` = 1/T):
 * a C-PTP model is decoded by Pick(u, softmax(logits / T)), so that is the
 * distribution it must learn. O-PTP uses invTemp = 1 (only its argmax matters).
 */

/** log softmax(invTemp * row) in float64. */
function logSoftmax(row: Float32Array, invTemp: number, out: Float64Array): void {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) {
    const z = invTemp * row[i];
    if (z > max || Number.isNaN(z)) max = z;
  }
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(invTemp * row[i] - max);
  const lse = max + Math.log(sum);
  for (let i = 0; i < row.length; i++) out[i] = invTemp * row[i] - lse;
}

function checkRows(op: string, logits: Tensor, weights: Float32Array): [R: number, V: number, total: number] {
  const V = logits.cols,
    R = logits.data.length / V;
  if (weights.length !== R) throw new RangeError(`${op}: ${weights.length} row weights for ${R} rows`);
  let total = 0;
  for (const w of weights) total += w;
  if (!(total > 0)) throw new RangeError(`${op}: the row weights sum to ${total}; at least one row must count`);
  return [R, V, total];
}

/** Weighted mean over rows of -log softmax(invTemp * logits)[target]. */
export function crossEntropy(tape: Tape, logits: Tensor, targets: Int32Array, weights: Float32Array, invTemp = 1): Tensor {
  const [R, V, total] = checkRows("crossEntropy", logits, weights);
  if (targets.length !== R) throw new RangeError(`crossEntropy: ${targets.length} targets for ${R} rows`);
  const z = logits.data,
    e = new Float64Array(V),
    probs = tape.alloc(R * V);
  let loss = 0;
  for (let r = 0; r < R; r++) {
    if (weights[r] === 0) continue;
    const t = targets[r],
      o = r * V;
    if (!(t >= 0 && t < V)) throw new RangeError(`crossEntropy: target ${t} at row ${r} is outside the vocabulary of ${V}`);
    // log softmax in float64, one exp per entry: probs = e / sum, log p_t = z_t - max - log sum.
    let max = -Infinity;
    for (let i = 0; i < V; i++) {
      const zi = invTemp * z[o + i];
      if (zi > max) max = zi;
    }
    let sum = 0;
    for (let i = 0; i < V; i++) sum += e[i] = Math.exp(invTemp * z[o + i] - max);
    loss -= weights[r] * (invTemp * z[o + t] - (max + Math.log(sum)));
    const inv = 1 / sum;
    for (let i = 0; i < V; i++) probs[o + i] = e[i] * inv;
  }
  const y = tape.output([1], [logits], Float32Array.of(loss / total));
  tape.record(y, (dy) => {
    const g = logits.grad!;
    for (let r = 0; r < R; r++) {
      if (weights[r] === 0) continue;
      const c = (dy[0] * weights[r] * invTemp) / total,
        o = r * V,
        t = targets[r];
      for (let i = 0; i < t; i++) g[o + i] += c * probs[o + i];
      g[o + t] += c * (probs[o + t] - 1);
      for (let i = t + 1; i < V; i++) g[o + i] += c * probs[o + i];
    }
  });
  return y;
}

/**
 * Distribution matching against the teacher (C-PTP): per row,
 * "forward" KL(Q || P) = sum Q (log Q - log P), or
 * "reverse" KL(P || Q) = sum P (log P - log Q),
 * with P = softmax(invTemp * logits) the student's and
 * Q = softmax(invTemp * teacherLogits) the teacher's, weighted mean over rows.
 */
export function klDivergence(tape: Tape, logits: Tensor, teacherLogits: Float32Array, weights: Float32Array, invTemp: number, direction: "forward" | "reverse"): Tensor {
  const [R, V, total] = checkRows("klDivergence", logits, weights);
  if (teacherLogits.length !== R * V) throw new RangeError(`klDivergence: teacher logits have ${teacherLogits.length} values, expected ${R} x ${V}`);
  const lp = new Float64Array(V),
    lq = new Float64Array(V);
  const grads = tape.alloc(R * V);
  let loss = 0;
  for (let r = 0; r < R; r++) {
    if (weights[r] === 0) continue;
    logSoftmax(logits.data.subarray(r * V, (r + 1) * V), invTemp, lp);
    logSoftmax(teacherLogits.subarray(r * V, (r + 1) * V), invTemp, lq);
    let kl = 0;
    if (direction === "forward") {
      for (let i = 0; i < V; i++) {
        const q = Math.exp(lq[i]);
        kl += q * (lq[i] - lp[i]);
        grads[r * V + i] = Math.exp(lp[i]) - q; // d KL(Q||P) / d z_i
      }
    } else {
      for (let i = 0; i < V; i++) kl += Math.exp(lp[i]) * (lp[i] - lq[i]);
      for (let i = 0; i < V; i++) grads[r * V + i] = Math.exp(lp[i]) * (lp[i] - lq[i] - kl); // d KL(P||Q) / d z_i
    }
    loss += weights[r] * kl;
  }
  const y = tape.output([1], [logits], Float32Array.of(loss / total));
  tape.record(y, (dy) => {
    for (let r = 0; r < R; r++) {
      if (weights[r] === 0) continue;
      const c = (dy[0] * weights[r] * invTemp) / total;
      for (let i = 0; i < V; i++) logits.grad![r * V + i] += c * grads[r * V + i];
    }
  });
  return y;
}
