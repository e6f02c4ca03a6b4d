import type { ModelConfig } from "../model/config.js";
import { crossEntropy, embedding, scale, type Tape } from "./autograd/index.js";
import { forwardRows, type GraphWeights } from "./graph.js";

/**
 * The loss of ordinary next-token training (`ptp train`, pretrain.ts):
 * windows of T + 1 tokens of a token stream, causal attention inside each
 * window, cross-entropy on every next token.
 */

/** Mean next-token cross-entropy of `batch` windows of T + 1 tokens taken at `starts` of the stream. */
export function nextTokenLoss(tape: Tape, c: ModelConfig, w: GraphWeights, stream: Int32Array, starts: readonly number[], T: number) {
  const R = starts.length * T;
  const ids = new Int32Array(R),
    targets = new Int32Array(R),
    positions = new Int32Array(R),
    visible = new Int32Array(4 * R);
  starts.forEach((s, b) => {
    for (let t = 0; t < T; t++) {
      const r = b * T + t;
      ids[r] = stream[s + t];
      targets[r] = stream[s + t + 1];
      positions[r] = t;
      visible.set([b * T, r + 1, 0, 0], 4 * r);
    }
  });
  const logits = forwardRows(tape, c, w, { x: embedding(tape, w.tokenEmbedding, ids), positions, visible });
  return crossEntropy(tape, logits, targets, new Float32Array(R).fill(1));
}

/**
 * One window's share of a step's loss, backpropagated into the params
 * behind `weights` (their grads must start at zero): the window's mean
 * next-token cross-entropy times 1 / batch, the step's loss being the mean
 * over its windows. Returns the window's mean loss.
 */
export function windowGradient(tape: Tape, c: ModelConfig, weights: GraphWeights, stream: Int32Array, start: number, T: number, batch: number): number {
  const loss = nextTokenLoss(tape, c, weights, stream, [start], T);
  tape.backward(scale(tape, loss, 1 / batch));
  return loss.data[0];
}
