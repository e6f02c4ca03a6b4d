import type { Backend } from "../backends/backend.js";
import type { ModelConfig } from "./config.js";
import type { DeviceLayer } from "./device-weights.js";
import { linear, type RowAdapter } from "./linear.js";
import type { RunState } from "./run-state.js";

/**
 * The SwiGLU feed-forward sublayer for M rows:
 *   xb2 = (silu(xb W1^T) * (xb W3^T)) W2^T.
 * `s.xb` holds the normed input; the result is left in `s.xb2`.
 */
export function feedForward(backend: Backend, config: ModelConfig, w: DeviceLayer, layer: number, s: RunState, M: number, adapter?: RowAdapter): void {
  const { dim, hiddenDim } = config;
  linear(backend, w, layer, "w1", s.hb, s.xb, M, dim, hiddenDim, adapter);
  linear(backend, w, layer, "w3", s.hb2, s.xb, M, dim, hiddenDim, adapter);
  backend.swiglu(s.hb, s.hb, s.hb2, M * hiddenDim);
  linear(backend, w, layer, "w2", s.xb2, s.hb, M, hiddenDim, dim, adapter);
}
