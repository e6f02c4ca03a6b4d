import type { Tape, Tensor } from "./tensor.js";

function sameSize(op: string, a: Tensor, b: Tensor): void {
  if (a.data.length !== b.data.length) throw new RangeError(`${op}: sizes differ (${a.data.length} vs ${b.data.length})`);
}

/** g[i] += dy[i] for i < dy.length (g may be longer: from offset `o`). */
function addInto(g: Float32Array, dy: Float32Array, o = 0): void {
  const n = dy.length;
  for (let i = 0; i < n; i++) g[o + i] += dy[i];
}

/** a + b, same shape. */
export function add(tape: Tape, a: Tensor, b: Tensor): Tensor {
  sameSize("add", a, b);
  const y = tape.output(a.shape, [a, b]);
  const yd = y.data,
    ad = a.data,
    bd = b.data,
    n = yd.length;
  for (let i = 0; i < n; i++) yd[i] = ad[i] + bd[i];
  tape.record(y, (dy) => {
    if (a.grad) addInto(a.grad, dy);
    if (b.grad) addInto(b.grad, dy);
  });
  return y;
}

/** c * x for a constant c. */
export function scale(tape: Tape, x: Tensor, c: number): Tensor {
  const y = tape.output(x.shape, [x]);
  const yd = y.data,
    xd = x.data,
    n = yd.length;
  for (let i = 0; i < n; i++) yd[i] = c * xd[i];
  tape.record(y, (dy) => {
    const g = x.grad!;
    for (let i = 0; i < n; i++) g[i] += c * dy[i];
  });
  return y;
}

/** x [M, N] + b [N] on every row. */
export function addBias(tape: Tape, x: Tensor, b: Tensor): Tensor {
  const N = x.cols,
    M = x.data.length / N;
  if (b.data.length !== N) throw new RangeError(`addBias: bias has ${b.data.length} values, rows have ${N}`);
  const y = tape.output(x.shape, [x, b]);
  const yd = y.data,
    xd = x.data,
    bd = b.data;
  for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) yd[m * N + n] = xd[m * N + n] + bd[n];
  tape.record(y, (dy) => {
    if (x.grad) addInto(x.grad, dy);
    const bg = b.grad;
    if (bg) for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) bg[n] += dy[m * N + n];
  });
  return y;
}

/** SwiGLU: silu(gate) * up, elementwise; silu(a) = a sigmoid(a). */
export function swiglu(tape: Tape, gate: Tensor, up: Tensor): Tensor {
  sameSize("swiglu", gate, up);
  const y = tape.output(gate.shape, [gate, up]);
  const g = gate.data,
    u = up.data,
    n = y.data.length;
  // sigmoid(gate), kept for the backward pass.
  const sg = tape.alloc(n);
  const k = tape.kernels;
  k.swiglu(y.data, sg, g, u, n);
  tape.record(y, (dy) => k.swigluBackward(gate.grad, up.grad, dy, g, u, sg, n));
  return y;
}

/**
 * For outputs of concatRows whose first part is a constant: how many leading
 * rows no gradient flows back from (attention skips their key / value
 * gradients, which concatRows would drop).
 */
const constantRows = new WeakMap<Tensor, number>();

/** The number of leading rows of t whose gradient goes nowhere (0 when unknown). */
export function constantPrefixRows(t: Tensor): number {
  return constantRows.get(t) ?? 0;
}

/** Rows of a [Ra, D] on top of rows of b [Rb, D] -> [Ra + Rb, D]. */
export function concatRows(tape: Tape, a: Tensor, b: Tensor): Tensor {
  if (a.cols !== b.cols) throw new RangeError(`concatRows: widths differ (${a.cols} vs ${b.cols})`);
  const D = a.cols,
    Ra = a.data.length / D,
    Rb = b.data.length / D;
  const y = tape.output([Ra + Rb, D], [a, b]);
  y.data.set(a.data, 0);
  y.data.set(b.data, a.data.length);
  if (!a.grad) constantRows.set(y, Ra + (b.grad ? 0 : Rb));
  tape.record(y, (dy) => {
    if (a.grad) addInto(a.grad, dy.subarray(0, a.data.length));
    if (b.grad) addInto(b.grad, dy.subarray(a.data.length));
  });
  return y;
}

/** Row m of the result is `row` [D] where take[m] is 1, else row m of x [M, D]. */
export function replaceRows(tape: Tape, x: Tensor, row: Tensor, take: Uint8Array): Tensor {
  const D = x.cols,
    M = x.data.length / D;
  if (row.data.length !== D) throw new RangeError(`replaceRows: the row has ${row.data.length} values, x rows have ${D}`);
  if (take.length !== M) throw new RangeError(`replaceRows: take has ${take.length} entries for ${M} rows`);
  const y = tape.output(x.shape, [x, row]);
  for (let m = 0; m < M; m++) y.data.set(take[m] ? row.data : x.data.subarray(m * D, (m + 1) * D), m * D);
  tape.record(y, (dy) => {
    for (let m = 0; m < M; m++) {
      const g = take[m] ? row.grad : x.grad;
      if (!g) continue;
      const o = take[m] ? 0 : m * D;
      for (let d = 0; d < D; d++) g[o + d] += dy[m * D + d];
    }
  });
  return y;
}

/** Rows [from, to) of x [M, D]. */
export function sliceRows(tape: Tape, x: Tensor, from: number, to: number): Tensor {
  const D = x.cols,
    M = x.data.length / D;
  if (!(0 <= from && from <= to && to <= M)) throw new RangeError(`sliceRows: rows [${from}, ${to}) of ${M}`);
  const y = tape.output([to - from, D], [x], x.data.slice(from * D, to * D));
  tape.record(y, (dy) => {
    addInto(x.grad!, dy, from * D);
  });
  return y;
}
