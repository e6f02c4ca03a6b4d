import type { Backend, Buffer } from "../backends/backend.js";
import type { AttentionMask } from "./attention.js";
import type { Block } from "./block.js";
import type { DeviceLayer } from "./device-weights.js";
import type { KVCache } from "./kv-cache.js";
import type { RunState } from "./run-state.js";
import type { LinearName } from "./weights.js";

/** A forward call as `RowAdapter.afterLayers` sees it: the residual stream of its M rows is in `state.x`. */
export interface LayerRun {
  state: RunState;
  cache: KVCache;
  /** Rows in the cache before this call. */
  cached: number;
  mask: AttentionMask;
  M: number;
  /** The call's block as given (its positions and mask on the host). */
  block: Block;
  /**
   * The model's logits [rows.length, vocab] for the current hidden states of
   * the given rows (the final norm and classifier, as the call will apply
   * them at its end: the same bits, every op being batch-invariant). Uses
   * the run state's scratch (xb, xb2, logits), not x.
   */
  logitsOf(rows: readonly number[]): Float32Array;
}

/**
 * Something that adjusts the output of a block's linear layers after the
 * base product, for some rows of the call: PTP's gated LoRA is one. The
 * base product y = x W^T is always computed for every row; rows the adapter
 * leaves alone keep exactly the base weights' output.
 */
export interface RowAdapter {
  apply(layer: number, name: LinearName, y: Buffer, x: Buffer, M: number): void;
  /**
   * Runs after the model's own layers, before the final norm; it must leave
   * the rows it does not adjust exactly as it found them (PTP's extra
   * blocks, spec/ptp.md 2.4).
   */
  afterLayers?(run: LayerRun): void;
}

/** y = x W^T for the M rows of a call, then the adapter's correction, if any. */
export function linear(backend: Backend, w: DeviceLayer, layer: number, name: LinearName, y: Buffer, x: Buffer, M: number, K: number, N: number, adapter?: RowAdapter): void {
  backend.matmul(y, x, w[name], M, K, N);
  adapter?.apply(layer, name, y, x, M);
}
