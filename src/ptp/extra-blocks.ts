import type { Backend, Buffer } from "../backends/backend.js";
import { attention } from "../model/attention.js";
import { kvDim, headSize, type ModelConfig } from "../model/config.js";
import { uploadLayer, type DeviceLayer } from "../model/device-weights.js";
import { tailRows, type Block } from "../model/block.js";
import { feedForward } from "../model/feedforward.js";
import type { KVCache } from "../model/kv-cache.js";
import type { LayerRun } from "../model/linear.js";
import { RunState } from "../model/run-state.js";
import { LINEAR_NAMES, linearShape, type LayerWeights } from "../model/weights.js";

/**
 * A slot row of a call that reads a pick (spec/ptp.md 2.5): the token
 * `pick` makes of the logits of an earlier call row `from`, computed inside
 * the call: the teacher's logits for a row that runs no extra blocks (a
 * query slot), the student's after the extra blocks for a slot row.
 */
export interface PickFeedback {
  /** The slot's row in the call's block. */
  row: number;
  /** The earlier row whose logits give the pick (the window's first slot, or the slot before this one). */
  from: number;
  /** The token for those logits (the sequence's Pick with the window's u); anything but a token id feeds nothing. */
  pick(logits: Float32Array): number;
}

/**
 * A student's extra blocks (spec/ptp.md 2.4) on a backend: E Llama blocks of
 * the teacher's shape that the slot rows run after the teacher's layers.
 *
 * Slot rows need the teacher's whole computation at earlier positions, but
 * one call has only the teacher's depth: a slot row's layer l reads the
 * context rows' layer-l keys, which know nothing of what the teacher's
 * later layers make of them. Every other row (context, verification, a
 * query slot) therefore gives extra block e keys and values projected from
 * its FINAL hidden state h:
 *   K = RoPE(rmsnorm(h) Wk_e^T),  V = rmsnorm(h) Wv_e^T,
 * and keeps h (its residual stream is not updated). Their logits stay the
 * teacher's, so verification is untouched.
 *
 * The keys and values of extra block e live in layer nLayers + e of the
 * KV cache (PtpModel.newCache makes room), so every call that appends rows
 * must run these blocks; rows that are not slots cost only their keys and
 * values (two products per block) when they come before the first slot.
 */
export class ExtraBlocks {
  private readonly layers: DeviceLayer[];
  /** The final hidden state of the rows of the segment running (see run), restored into those that are not slots [rows, dim]. */
  private hidden: { rows: number; buf: Buffer } | null = null;
  /** The activations of the segment's rows (a block of their own). */
  private tail: RunState | null = null;

  /**
   * @param feedback Pick feedback (spec/ptp.md 2.5): the table [vocab, dim]
   * whose row for the pick it reads (the window's first, or the slot
   * before's) a slot adds before the blocks; absent when the student has
   * none.
   */
  constructor(
    private readonly backend: Backend,
    private readonly teacher: ModelConfig,
    weights: readonly LayerWeights[],
    private readonly feedback?: Float32Array,
  ) {
    checkExtraBlocks(teacher, weights);
    if (feedback !== undefined && !(feedback instanceof Float32Array && feedback.length === teacher.vocabSize * teacher.dim)) {
      throw new TypeError(`pick feedback: the table must be a Float32Array of ${teacher.vocabSize} x ${teacher.dim} values (vocab x dim), got ${feedback instanceof Float32Array ? `${feedback.length} values` : typeof feedback}`);
    }
    this.layers = weights.map((w) => uploadLayer(backend, w));
  }

  get count(): number {
    return this.layers.length;
  }

  /**
   * Runs the blocks for the slot rows of a call (slot[m] = 1) and appends
   * every row's keys and values. Rows before the first slot (context,
   * verification) cost only their keys and values; the rows from the first
   * slot on run as blocks of their own after them (tailRows), the rows
   * among them that are not slots (a query slot) keeping their final state.
   * A slot that reads the pick of a slot row (chained pick feedback) starts
   * a new segment: the rows before it have run every block, and their
   * logits give the pick, before it runs any.
   */
  run(run: LayerRun, slot: Uint8Array, feedback: readonly PickFeedback[] = []): void {
    const { state: s, cache, cached, M } = run;
    const c = this.teacher;
    if (cache.keys.length < c.nLayers + this.layers.length) {
      throw new Error(`the student has ${this.layers.length} extra blocks but the KV cache holds ${cache.keys.length - c.nLayers} extra layers: make the cache with PtpModel.newCache`);
    }
    const from = slot.indexOf(1);
    this.keysAndValues(s, cache, cached, from < 0 ? M : from);
    if (from < 0) return;
    checkFeedback(feedback, slot, M, this.feedback !== undefined);
    for (const [a, b] of segments(slot, feedback, from, M)) {
      this.runRows(
        run,
        slot,
        feedback.filter((f) => f.row >= a && f.row < b),
        a,
        b,
      );
    }
  }

  /**
   * The blocks for call rows [a, b) (a tail segment; every row before a has
   * its keys and values in the cache and, for a slot, its final state in the
   * run state's residual stream). Bit for bit what running all the rows from
   * the first slot at once gives, every op being batch-invariant.
   */
  private runRows(run: LayerRun, slot: Uint8Array, feedback: readonly PickFeedback[], a: number, b: number): void {
    const { state: s, cache, cached, M } = run;
    const be = this.backend,
      c = this.teacher,
      first = c.nLayers,
      rows = b - a,
      after = cached + a;
    const t = (this.tail ??= new RunState(be, c));
    const mask = t.prepare(segmentRows(run.block, cached, M, a, b), after, rows);
    be.copy(t.x, 0, s.x, a * c.dim, rows * c.dim);
    const keep = slot.subarray(a, b).includes(0) ? this.reserve(rows) : null;
    if (keep) be.copy(keep, 0, t.x, 0, rows * c.dim);
    this.feedBack(run, feedback, a, t);
    this.layers.forEach((w, e) => {
      be.rmsnorm(t.xb, t.x, w.rmsAtt, rows, c.dim, c.normEps);
      attention(be, c, w, first + e, t, cache, after, mask, rows);
      be.add(t.x, t.xb2, rows * c.dim);
      be.rmsnorm(t.xb, t.x, w.rmsFfn, rows, c.dim, c.normEps);
      feedForward(be, c, w, first + e, t, rows);
      be.add(t.x, t.xb2, rows * c.dim);
      // A row that is not a slot keeps its final hidden state: its keys and values in the next block and its logits come from it.
      if (keep) for (let m = a; m < b; m++) if (!slot[m]) be.copy(t.x, (m - a) * c.dim, keep, (m - a) * c.dim, c.dim);
    });
    be.copy(s.x, a * c.dim, t.x, 0, rows * c.dim);
  }

  /**
   * Pick feedback: each slot row in `feedback` (all in the segment starting
   * at call row `a`) adds the table's row for the token picked from the
   * logits of its source row, whose final state is in the call's residual
   * stream: a row that runs no blocks (the window's first slot) or a slot
   * row of an earlier segment. Then the blocks run.
   */
  private feedBack(run: LayerRun, feedback: readonly PickFeedback[], a: number, t: RunState): void {
    if (feedback.length === 0) return;
    const table = this.feedback!,
      dim = this.teacher.dim,
      V = this.teacher.vocabSize;
    const logits = run.logitsOf(feedback.map((f) => f.from));
    feedback.forEach((f, i) => {
      const token = f.pick(logits.subarray(i * V, (i + 1) * V));
      if (!(Number.isInteger(token) && token >= 0 && token < V)) return; // no pick (non-finite logits): the slot reads nothing
      const at = (f.row - a) * dim,
        x = this.backend.download(t.x, at, dim);
      for (let d = 0; d < dim; d++) x[d] += table[token * dim + d];
      this.backend.upload(t.x, x, at);
    });
  }

  /** The keys and values of every extra block for the first `rows` rows of the call, from their final hidden states. */
  private keysAndValues(s: RunState, cache: KVCache, cached: number, rows: number): void {
    finalStateKeysValues(this.backend, this.teacher, this.layers, s, cache, this.teacher.nLayers, cached, rows);
  }

  private reserve(M: number): Buffer {
    if (this.hidden && this.hidden.rows >= M) return this.hidden.buf;
    const rows = Math.max(M, 2 * (this.hidden?.rows ?? 0));
    // The new buffer first: should the allocation fail (out of memory), the old one is still there, not freed and still referenced.
    const buf = this.backend.alloc(rows * this.teacher.dim);
    if (this.hidden) this.backend.free(this.hidden.buf);
    this.hidden = { rows, buf };
    return buf;
  }

  dispose(): void {
    if (this.hidden) this.backend.free(this.hidden.buf);
    this.hidden = null;
    this.tail?.release();
    this.tail = null;
    for (const w of this.layers) for (const buf of Object.values(w)) this.backend.free(buf);
    this.layers.length = 0;
  }
}

/**
 * The keys and values that rows give blocks they do not run (spec/ptp.md
 * 2.4): for the first `rows` rows of the run state, whose residual stream
 * holds their final hidden states h, block e gets K = RoPE(rmsnorm(h)
 * Wk_e^T) and V = rmsnorm(h) Wv_e^T in cache layer firstLayer + e at row
 * `at`. The run state's positions are the rows' own. A student's extra
 * blocks and a draft head (draft-head.ts) both take them so.
 */
export function finalStateKeysValues(b: Backend, c: ModelConfig, blocks: readonly Pick<DeviceLayer, "rmsAtt" | "wk" | "wv">[], s: RunState, cache: KVCache, firstLayer: number, at: number, rows: number): void {
  if (rows === 0) return;
  const kv = kvDim(c);
  blocks.forEach((w, e) => {
    b.rmsnorm(s.xb, s.x, w.rmsAtt, rows, c.dim, c.normEps);
    b.matmul(s.k, s.xb, w.wk, rows, c.dim, kv);
    b.matmul(s.v, s.xb, w.wv, rows, c.dim, kv);
    b.rope(s.k, s.positions, rows, c.nKvHeads, headSize(c), c.ropeTheta);
    b.copy(cache.keys[firstLayer + e], at * kv, s.k, 0, rows * kv);
    b.copy(cache.values[firstLayer + e], at * kv, s.v, 0, rows * kv);
  });
}

/** Throws unless every pick-feedback entry is a slot row reading an earlier row of the call, with a table to read. */
function checkFeedback(feedback: readonly PickFeedback[], slot: Uint8Array, M: number, hasTable: boolean): void {
  if (feedback.length === 0) return;
  if (!hasTable) throw new Error("pick feedback: this student has no feedback table, so its slots read no picks");
  const seen = new Set<number>();
  for (const f of feedback) {
    if (!(Number.isInteger(f.row) && f.row >= 0 && f.row < M && slot[f.row] === 1)) throw new RangeError(`pick feedback: row ${f.row} is not a slot row of the call`);
    if (!(Number.isInteger(f.from) && f.from >= 0 && f.from < f.row)) throw new RangeError(`pick feedback: source row ${f.from} of row ${f.row} must be an earlier row of the call`);
    if (seen.has(f.row)) throw new RangeError(`pick feedback: row ${f.row} reads two picks`);
    seen.add(f.row);
  }
}

/**
 * The tail [from, M) cut into segments [a, b) that run the blocks one after
 * another: a new one starts at each row reading the pick of a slot row at or
 * after the current segment's start (that row's logits need every block
 * first). Without such reads: one segment, the whole tail.
 */
export function segments(slot: Uint8Array, feedback: readonly PickFeedback[], from: number, M: number): [number, number][] {
  const source = new Map(feedback.map((f) => [f.row, f.from]));
  const out: [number, number][] = [];
  let a = from;
  for (let m = from + 1; m < M; m++) {
    const src = source.get(m);
    if (src !== undefined && src >= a && slot[src] === 1) {
      out.push([a, m]);
      a = m;
    }
  }
  out.push([a, M]);
  return out;
}

/**
 * Rows [a, b) of a checked block of M rows as a block of their own once
 * rows [0, a) have joined the cache: keys numbered as in the whole call, up
 * to cached + b. A row of the segment that sees a later row (whose keys the
 * extra blocks do not have yet) is refused.
 */
function segmentRows(block: Pick<Block, "positions" | "mask" | "visible">, cached: number, M: number, a: number, b: number): Pick<Block, "positions" | "mask" | "visible"> {
  const tail = tailRows(block, cached, M, a);
  if (b === M) return tail;
  const n = cached + b,
    stride = cached + M,
    rows = b - a;
  const late = () => new RangeError(`extra blocks: a row in call rows [${a}, ${b}) sees a later row, which a segment of the chained pick feedback cannot give`);
  const positions = (tail.positions as number[]).slice(0, rows);
  if (tail.mask) {
    const mask = new Uint8Array(rows * n);
    for (let r = 0; r < rows; r++) {
      const row = tail.mask.subarray(r * stride, (r + 1) * stride);
      if (row.subarray(n).includes(1)) throw late();
      mask.set(row.subarray(0, n), r * n);
    }
    return { positions, mask };
  }
  if (tail.visible) {
    const { offsets, keys } = tail.visible;
    const end = offsets[rows];
    for (let i = 0; i < end; i++) if (keys[i] >= n) throw late();
    return { positions, visible: { offsets: offsets.subarray(0, rows + 1), keys: keys.subarray(0, end) } };
  }
  return { positions };
}

/**
 * Throws a TypeError naming the first tensor of the extra blocks that is
 * missing or not the layer shape of a teacher of shape `c` ("`where`: extra
 * block e: ..."; without `where`, "extra block e: ...").
 */
export function checkExtraBlocks(c: Omit<ModelConfig, "normEps" | "ropeTheta">, weights: readonly LayerWeights[], where?: string): void {
  weights.forEach((w, e) => checkBlock(c, w, e, where === undefined ? "" : `${where}: `));
}

/** checkExtraBlocks for extra block e; `prefix` starts the message. */
function checkBlock(c: Omit<ModelConfig, "normEps" | "ropeTheta">, w: LayerWeights, e: number, prefix: string): void {
  const expect = (name: string, length: number) => {
    const a = (w as unknown as Record<string, unknown> | undefined)?.[name];
    if (!(a instanceof Float32Array) || a.length !== length) throw new TypeError(`${prefix}extra block ${e}: ${name} must be a Float32Array of ${length} values (the teacher's layer shape), got ${a instanceof Float32Array ? `${a.length} values` : a === undefined ? "none" : typeof a}`);
  };
  expect("rmsAtt", c.dim);
  expect("rmsFfn", c.dim);
  for (const name of LINEAR_NAMES) {
    const [out, inp] = linearShape(c, name);
    expect(name, out * inp);
  }
}
