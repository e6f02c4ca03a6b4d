import type { Backend, Buffer } from "../backends/backend.js";
import { headSize, kvDim, type ModelConfig } from "./config.js";
import type { DeviceLayer } from "./device-weights.js";
import type { KVCache } from "./kv-cache.js";
import { linear, type RowAdapter } from "./linear.js";
import type { RunState } from "./run-state.js";

/** Who sees whom in a block: a dense u8 mask, a sparse one (see Backend.attentionSparse), or neither (causal). */
export interface AttentionMask {
  dense?: Buffer;
  sparse?: Buffer;
}

/**
 * The attention sublayer of block `layer` for M rows:
 *   q, k, v = xb Wq^T, xb Wk^T, xb Wv^T;  RoPE(q, k) at the rows' positions;
 *   append k, v to the cache after its `cached` rows;
 *   xb2 = (masked softmax(q K^T / sqrt(hs)) V) Wo^T.
 * `s.xb` holds the normed input; the result is left in `s.xb2`.
 */
export function attention(backend: Backend, config: ModelConfig, w: DeviceLayer, layer: number, s: RunState, cache: KVCache, cached: number, mask: AttentionMask, M: number, adapter?: RowAdapter): void {
  const { dim, nHeads, nKvHeads, ropeTheta } = config;
  const hs = headSize(config),
    kv = kvDim(config);
  linear(backend, w, layer, "wq", s.q, s.xb, M, dim, dim, adapter);
  linear(backend, w, layer, "wk", s.k, s.xb, M, dim, kv, adapter);
  linear(backend, w, layer, "wv", s.v, s.xb, M, dim, kv, adapter);
  backend.rope(s.q, s.positions, M, nHeads, hs, ropeTheta);
  backend.rope(s.k, s.positions, M, nKvHeads, hs, ropeTheta);
  backend.copy(cache.keys[layer], cached * kv, s.k, 0, M * kv);
  backend.copy(cache.values[layer], cached * kv, s.v, 0, M * kv);
  if (mask.sparse) backend.attentionSparse!(s.att, s.q, cache.keys[layer], cache.values[layer], mask.sparse, M, cached + M, nHeads, nKvHeads, hs);
  else backend.attention(s.att, s.q, cache.keys[layer], cache.values[layer], mask.dense ?? null, M, cached + M, nHeads, nKvHeads, hs);
  linear(backend, w, layer, "wo", s.xb2, s.att, M, dim, dim, adapter);
}
