import { Mulberry32 } from "../util/prng.js";
import { checkInteger, checkPositiveInteger } from "../sampling/checks.js";
import { writeCheckpoint } from "../io/checkpoint.js";
import { BOS } from "../io/tokenizer.js";
import type { ModelConfig } from "../model/config.js";
import type { Checkpoint } from "../model/weights.js";
import { BufferPool, crossEntropy, embedding, scale, Tape } from "./autograd/index.js";
import { forwardRows, trainableWeights, type GraphWeights } from "./graph.js";
import type { ProgressStream } from "../util/progress.js";
import { loopSettings, resumableConfig, runLoop, type LoopOptions, type LoopResult, type RunFiles } from "./loop.js";

/**
 * Ordinary next-token training of a Llama-architecture model from scratch,
 * as llama2.c's train.py does it: documents joined into one token stream
 * (BOS before each), random windows of seqLen + 1 tokens, causal attention
 * inside each window, cross-entropy on every next token.
 */

/** The documents (one per corpus line), each BOS-first, joined into one stream; BOS also marks each end. */
export function tokenStream(docs: readonly number[][]): Int32Array {
  const n = docs.reduce((a, d) => a + d.length, 0) + 1;
  const out = new Int32Array(n);
  let o = 0;
  for (const d of docs) {
    out.set(d, o);
    o += d.length;
  }
  out[o] = BOS;
  return out;
}

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
 * Rows (windows x context) of one part of a step. A step's windows are
 * built into graphs and back-propagated a part at a time, their gradients
 * adding up in the params' grads; the step pauses between parts, so a
 * signal is seen within one part, and the graph's memory is one part's.
 * A step of at most this many rows is one part: the same bits as one
 * graph over the whole batch.
 */
export const PART_ROWS = 4096;

/** Windows in each part of a step (the last part may hold fewer). */
export function windowsPerPart(batch: number, context: number): number {
  return Math.min(batch, Math.max(1, Math.floor(PART_ROWS / context)));
}

/** The settings of pretrain beyond the shared loop's (steps, learning rate, checkpoints, ...). */
export interface PretrainOptions extends LoopOptions {
  /** Windows per step (a positive integer) and tokens per window (an integer in [1, seqLen]). */
  batch: number;
  context: number;
  evalEvery: number;
}

/** Train `model` (in place) on `train`; evaluate on `valid`; writes the llama2.c checkpoint to `files.out` at every checkpoint. */
export function pretrain(model: Checkpoint, train: Int32Array, valid: Int32Array, o: PretrainOptions, files: { out: string } & RunFiles, stream?: ProgressStream): Promise<LoopResult> {
  const c = model.config;
  // Positions 0 .. context - 1 of each window must exist in the model (RoPE, the KV layout): context <= seqLen.
  const T = checkInteger(o.context, "pretrain", "context (tokens per window, at most the model's seqLen)", 1, c.seqLen);
  checkPositiveInteger(o.batch, "pretrain", "batch");
  // A window is T tokens and the next one: a stream of T + 1 tokens holds one.
  if (train.length < T + 1 || valid.length < T + 1) throw new Error(`pretrain: the token streams are too short for context ${T}: a window takes ${T + 1} tokens, but the training stream has ${train.length} and the validation stream ${valid.length}`);
  const { params, weights } = trainableWeights(model);
  // A fixed validation sample: the same windows at every evaluation.
  const vr = new Mulberry32(o.seed ^ 0x5eed);
  const validStarts = Array.from({ length: 16 }, () => Math.floor(vr.nextFloat() * (valid.length - T - 1)));
  // Each part's graph reuses the arrays of the part before (buffers.ts).
  const pool = new BufferPool();
  return runLoop({
    params,
    ...loopSettings(o, files),
    unit: "tok",
    label: "train",
    stream,
    config: { model: c, train: resumableConfig(o) },
    save: () => writeCheckpoint(files.out, model),
    evaluate: () => ({ validLoss: nextTokenLoss(new Tape(o.kernels), c, weights, valid, validStarts, T).data[0] }),
    async step(rng, _t, pause) {
      const starts = Array.from({ length: o.batch }, () => Math.floor(rng.nextFloat() * (train.length - T - 1)));
      const per = windowsPerPart(o.batch, T);
      let loss = 0;
      for (let b = 0; b < o.batch; b += per) {
        if (b > 0) await pause();
        const part = starts.slice(b, b + per);
        // The batch's mean loss is the sum over parts of each part's mean, weighted by its share of the windows.
        const share = part.length / o.batch;
        const tape = new Tape(o.kernels, pool);
        const partLoss = nextTokenLoss(tape, c, weights, train, part, T);
        tape.backward(scale(tape, partLoss, share));
        loss += partLoss.data[0] * share;
        tape.release();
      }
      return { loss, units: o.batch * T };
    },
  });
}
