import type { Backend, Buffer } from "../backends/backend.js";
import { attention } from "../model/attention.js";
import { kvDim, headSize, type ModelConfig } from "../model/config.js";
import { uploadLayer, type DeviceLayer } from "../model/device-weights.js";
import { feedForward } from "../model/feedforward.js";
import type { LayerRun } from "../model/linear.js";
import type { LayerWeights } from "../model/weights.js";

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
 * must run these blocks: a call without slot rows computes only its rows'
 * keys and values.
 */
export class ExtraBlocks {
  private readonly layers: DeviceLayer[];
  /** The final hidden state of the call's rows, restored into the rows that are not slots [rows, dim]. */
  private hidden: { rows: number; buf: Buffer } | null = null;

  constructor(
    private readonly backend: Backend,
    private readonly teacher: ModelConfig,
    weights: readonly LayerWeights[],
  ) {
    this.layers = weights.map((w) => uploadLayer(backend, w));
  }

  get count(): number {
    return this.layers.length;
  }

  /** Runs the blocks for the slot rows of a call (slot[m] = 1) and appends every row's keys and values. */
  run(run: LayerRun, slot: Uint8Array): void {
    const { state: s, cache, cached, mask, M } = run;
    const b = this.backend,
      c = this.teacher,
      first = c.nLayers;
    if (cache.keys.length < first + this.layers.length) {
      throw new Error(`the student has ${this.layers.length} extra blocks but the KV cache holds ${cache.keys.length - first} extra layers: make the cache with PtpModel.newCache`);
    }
    if (!slot.includes(1)) {
      this.keysAndValues(run);
      return;
    }
    const hidden = this.reserve(M);
    b.copy(hidden, 0, s.x, 0, M * c.dim);
    this.layers.forEach((w, e) => {
      b.rmsnorm(s.xb, s.x, w.rmsAtt, M, c.dim, c.normEps);
      attention(b, c, w, first + e, s, cache, cached, mask, M);
      b.add(s.x, s.xb2, M * c.dim);
      b.rmsnorm(s.xb, s.x, w.rmsFfn, M, c.dim, c.normEps);
      feedForward(b, c, w, first + e, s, M);
      b.add(s.x, s.xb2, M * c.dim);
      // The rows that are not slots keep their final hidden state: the next block's keys and values and their logits come from it.
      for (let m = 0; m < M; ) {
        if (slot[m]) {
          m++;
          continue;
        }
        let end = m;
        while (end < M && !slot[end]) end++;
        b.copy(s.x, m * c.dim, hidden, m * c.dim, (end - m) * c.dim);
        m = end;
      }
    });
  }

  /** Only the keys and values of every extra block for the call's rows (none of them a slot). */
  private keysAndValues({ state: s, cache, cached, M }: LayerRun): void {
    const b = this.backend,
      c = this.teacher,
      kv = kvDim(c);
    this.layers.forEach((w, e) => {
      b.rmsnorm(s.xb, s.x, w.rmsAtt, M, c.dim, c.normEps);
      b.matmul(s.k, s.xb, w.wk, M, c.dim, kv);
      b.matmul(s.v, s.xb, w.wv, M, c.dim, kv);
      b.rope(s.k, s.positions, M, c.nKvHeads, headSize(c), c.ropeTheta);
      b.copy(cache.keys[c.nLayers + e], cached * kv, s.k, 0, M * kv);
      b.copy(cache.values[c.nLayers + e], cached * kv, s.v, 0, M * kv);
    });
  }

  private reserve(M: number): Buffer {
    if (this.hidden && this.hidden.rows >= M) return this.hidden.buf;
    if (this.hidden) this.backend.free(this.hidden.buf);
    const rows = Math.max(M, 2 * (this.hidden?.rows ?? 0));
    this.hidden = { rows, buf: this.backend.alloc(rows * this.teacher.dim) };
    return this.hidden.buf;
  }

  dispose(): void {
    if (this.hidden) this.backend.free(this.hidden.buf);
    this.hidden = null;
    for (const w of this.layers) for (const buf of Object.values(w)) this.backend.free(buf);
    this.layers.length = 0;
  }
}
