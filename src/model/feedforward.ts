import type { Backend } from "../backends/backend.js";
import type { ModelConfig } from "./config.js";
import type { DeviceLayer } from "./device-weights.js";
import type { RunState } from "./run-state.js";

/**
 * The SwiGLU feed-forward sublayer for M rows:
 *   xb2 = (silu(xb W1^T) * (xb W3^T)) W2^T.
 * `s.xb` holds the normed input; the result is left in `s.xb2`.
 */
export function feedForward(backend: Backend, config: ModelConfig, w: DeviceLayer, s: RunState, M: number): void {
  const { dim, hiddenDim } = config;
  backend.matmul(s.hb, s.xb, w.w1, M, dim, hiddenDim);
  backend.matmul(s.hb2, s.xb, w.w3, M, dim, hiddenDim);
  backend.swiglu(s.hb, s.hb, s.hb2, M * hiddenDim);
  backend.matmul(s.xb2, s.hb, w.w2, M, hiddenDim, dim);
}
