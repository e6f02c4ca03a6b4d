import { Mulberry32 } from "../util/prng.js";
import { checkInteger, checkPositiveInteger } from "../sampling/checks.js";
import { writeCheckpoint } from "../io/checkpoint.js";
import { BOS } from "../io/tokenizer.js";
import type { Checkpoint } from "../model/weights.js";
import { Tape } from "./autograd/index.js";
import { trainableWeights } from "./graph.js";
import { nextTokenLoss } from "./next-token.js";
import { PretrainParallel } from "./pretrain-parallel.js";
import type { ProgressStream } from "../util/progress.js";
import { loopSettings, resumableConfig, runLoop, withoutThreads, type LoopOptions, type LoopResult, type RunFiles } from "./loop.js";

/**
 * Ordinary next-token training of a Llama-architecture model from scratch,
 * as llama2.c's train.py does it: documents joined into one token stream
 * (BOS before each), random windows of seqLen + 1 tokens, causal attention
 * inside each window, cross-entropy on every next token (next-token.ts);
 * each step's windows are shared by worker threads (pretrain-parallel.ts).
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

/** The settings of pretrain beyond the shared loop's (steps, learning rate, checkpoints, ...). */
export interface PretrainOptions extends LoopOptions {
  /** Windows per step (a positive integer) and tokens per window (an integer in [1, seqLen]). */
  batch: number;
  context: number;
  evalEvery: number;
  /** Worker threads that share each step's windows (default 1; at most batch): any number gives the same bits (pretrain-parallel.ts). */
  threads?: number;
}

/** Train `model` (in place) on `train`; evaluate on `valid`; writes the llama2.c checkpoint to `files.out` at every checkpoint. */
export function pretrain(model: Checkpoint, train: Int32Array, valid: Int32Array, o: PretrainOptions, files: { out: string } & RunFiles, stream?: ProgressStream): Promise<LoopResult> {
  const c = model.config;
  // Positions 0 .. context - 1 of each window must exist in the model (RoPE, the KV layout): context <= seqLen.
  const T = checkInteger(o.context, "pretrain", "context (tokens per window, at most the model's seqLen)", 1, c.seqLen);
  checkPositiveInteger(o.batch, "pretrain", "batch");
  const threads = checkPositiveInteger(o.threads ?? 1, "pretrain", "threads");
  // A window is T tokens and the next one: a stream of T + 1 tokens holds one.
  if (train.length < T + 1 || valid.length < T + 1) throw new Error(`pretrain: the token streams are too short for context ${T}: a window takes ${T + 1} tokens, but the training stream has ${train.length} and the validation stream ${valid.length}`);
  const { params, weights } = trainableWeights(model);
  // A fixed validation sample: the same windows at every evaluation.
  const vr = new Mulberry32(o.seed ^ 0x5eed);
  const validStarts = Array.from({ length: 16 }, () => Math.floor(vr.nextFloat() * (valid.length - T - 1)));
  // The arguments are checked above, at the call; the run is asynchronous.
  const run = async (): Promise<LoopResult> => {
    const parallel = await PretrainParallel.start(model, params, train, { batch: o.batch, context: T, threads, kernels: o.kernels });
    try {
      // Awaited here, so the workers are closed only once the run (which yields between steps) is over.
      return await runLoop({
        params,
        ...loopSettings(o, files),
        unit: "tok",
        label: "train",
        stream,
        config: { model: c, train: resumableConfig(withoutThreads(o)) },
        save: () => writeCheckpoint(files.out, model),
        evaluate: () => ({ validLoss: nextTokenLoss(new Tape(o.kernels), c, weights, valid, validStarts, T).data[0] }),
        async step(rng) {
          const starts = Array.from({ length: o.batch }, () => Math.floor(rng.nextFloat() * (train.length - T - 1)));
          // Awaited: the main thread stays free while the workers compute, so a signal abandons the step at once.
          return { loss: await parallel.step(starts), units: o.batch * T };
        },
      });
    } finally {
      parallel.close();
    }
  };
  return run();
}
