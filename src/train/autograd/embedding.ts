import type { Tape, Tensor } from "./tensor.js";

/** y[m, :] = table[ids[m], :]; the backward pass scatters into the table's rows. */
export function embedding(tape: Tape, table: Tensor, ids: Int32Array): Tensor {
  const D = table.cols,
    V = table.data.length / D,
    M = ids.length;
  const y = tape.output([M, D], [table]);
  for (let m = 0; m < M; m++) {
    const t = ids[m];
    if (!(t >= 0 && t < V)) throw new RangeError(`embedding: id ${t} at row ${m} is outside the table of ${V} rows`);
    y.data.set(table.data.subarray(t * D, (t + 1) * D), m * D);
  }
  tape.record(y, (dy) => {
    for (let m = 0; m < M; m++) {
      const o = ids[m] * D;
      for (let d = 0; d < D; d++) table.grad![o + d] += dy[m * D + d];
    }
  });
  return y;
}

/**
 * The "anchors" auxiliary embedding for rows of u's: piecewise-linear between
 * the learned vectors anchors [3, D] at u = 0, 0.5, 1 (src/ptp/auxiliary.ts
 * computes the same at inference).
 */
export function anchorEmbedding(tape: Tape, anchors: Tensor, us: Float32Array): Tensor {
  const D = anchors.cols,
    M = us.length;
  if (anchors.data.length !== 3 * D) throw new RangeError(`anchorEmbedding: anchors must be [3, D], got [${anchors.shape}]`);
  const lo = new Int32Array(M),
    t = new Float64Array(M);
  for (let m = 0; m < M; m++) {
    const hi = us[m] < 0.5 ? 1 : 2;
    lo[m] = hi - 1;
    t[m] = Math.fround((us[m] - (hi - 1) * 0.5) * 2);
  }
  const A = anchors.data,
    y = tape.output([M, D], [anchors]);
  for (let m = 0; m < M; m++) {
    for (let d = 0; d < D; d++) {
      // The same float32 steps as embedAux at inference, so training sees the decoders' exact inputs.
      const a = A[lo[m] * D + d];
      y.data[m * D + d] = Math.fround(a + Math.fround(t[m] * Math.fround(A[(lo[m] + 1) * D + d] - a)));
    }
  }
  tape.record(y, (dy) => {
    for (let m = 0; m < M; m++) {
      for (let d = 0; d < D; d++) {
        anchors.grad![lo[m] * D + d] += (1 - t[m]) * dy[m * D + d];
        anchors.grad![(lo[m] + 1) * D + d] += t[m] * dy[m * D + d];
      }
    }
  });
  return y;
}

/**
 * y = x with table[ids[m], :] added to row m wherever ids[m] >= 0 (PTP's
 * hybrid slot input: a window's first slot adds the embedding of the last
 * known token). The backward pass passes dy to x and scatters the chosen
 * rows' dy into the table's rows.
 */
export function addEmbeddingRows(tape: Tape, x: Tensor, table: Tensor, ids: Int32Array): Tensor {
  const D = table.cols,
    V = table.data.length / D,
    M = x.rows;
  if (x.cols !== D || ids.length !== M) throw new RangeError(`addEmbeddingRows: x is [${x.shape}], table [${table.shape}], ${ids.length} ids`);
  const y = tape.output([M, D], [x, table], x.data.slice());
  for (let m = 0; m < M; m++) {
    const t = ids[m];
    if (t < 0) continue;
    if (!(t < V)) throw new RangeError(`addEmbeddingRows: id ${t} at row ${m} is outside the table of ${V} rows`);
    for (let d = 0; d < D; d++) y.data[m * D + d] += table.data[t * D + d];
  }
  tape.record(y, (dy) => {
    if (x.grad) for (let i = 0; i < dy.length; i++) x.grad[i] += dy[i];
    if (!table.grad) return;
    for (let m = 0; m < M; m++) {
      const t = ids[m];
      if (t < 0) continue;
      for (let d = 0; d < D; d++) table.grad[t * D + d] += dy[m * D + d];
    }
  });
  return y;
}

/**
 * The linear auxiliary embedding of binary features (aux kinds "bits" and
 * "digits"): row m is bias + the columns of weight [D, F] whose feature is 1,
 * added one at a time in float32 in feature order, starting from the bias,
 * exactly as embedAux (src/ptp/auxiliary.ts) computes it at inference (a
 * matmul would sum in another order, and the decoders' inputs would differ
 * from training's in the last bits).
 */
export function featureEmbedding(tape: Tape, weight: Tensor, bias: Tensor, feats: Uint8Array): Tensor {
  const D = weight.rows,
    F = weight.cols,
    M = feats.length / F;
  if (bias.data.length !== D) throw new RangeError(`featureEmbedding: bias has ${bias.data.length} values, weight has ${D} rows`);
  if (!Number.isInteger(M)) throw new RangeError(`featureEmbedding: ${feats.length} features are not rows of ${F}`);
  const W = weight.data,
    b = bias.data,
    y = tape.output([M, D], [weight, bias]);
  for (let m = 0; m < M; m++) {
    for (let d = 0; d < D; d++) {
      let s = b[d];
      for (let i = 0; i < F; i++) if (feats[m * F + i]) s = Math.fround(s + W[d * F + i]);
      y.data[m * D + d] = s;
    }
  }
  tape.record(y, (dy) => {
    for (let m = 0; m < M; m++) {
      for (let d = 0; d < D; d++) {
        const g = dy[m * D + d];
        if (bias.grad) bias.grad[d] += g;
        if (weight.grad) for (let i = 0; i < F; i++) if (feats[m * F + i]) weight.grad[d * F + i] += g;
      }
    }
  });
  return y;
}
