import { Mulberry32 } from "../util/prng.js";
import { checkInteger, checkPositiveInteger, describeValue } from "../util/checks.js";
import { writeCheckpoint } from "../io/checkpoint.js";
import { BOS } from "../io/tokenizer.js";
import { checkCheckpoint, type Checkpoint } from "../model/weights.js";
import { checkOptionKeys } from "../util/options.js";
import { Tape } from "./autograd/index.js";
import { trainableWeights } from "./graph.js";
import { nextTokenLoss } from "./next-token.js";
import { PretrainParallel } from "./pretrain-parallel.js";
import type { ProgressStream } from "../util/progress.js";
import { checkLoopOptions, checkProgressStream, checkTokenStream, checkTrainerFiles, trainerOptionKeys } from "./train-options.js";
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
  if (!Array.isArray(docs)) throw new TypeError(`tokenStream: docs must be an array of documents (arrays of token ids), got ${describeValue(docs)}`);
  docs.forEach((d: unknown, i) => {
    if (!Array.isArray(d) && !(d instanceof Int32Array)) throw new TypeError(`tokenStream: docs[${i}] must be an array of token ids, got ${describeValue(d)}`);
    // Ids only: Int32Array.set truncated 1.5 to 1 and made NaN and "x" token 0 without a word.
    for (let k = 0; k < d.length; k++) {
      const t: unknown = d[k];
      if (typeof t !== "number" || !Number.isInteger(t) || t < 0 || t > 0x7fffffff) throw new RangeError(`tokenStream: docs[${i}], position ${k}: token ids must be non-negative integers, got ${describeValue(t)}`);
    }
  });
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

/** The keys of PretrainOptions; another is a typo that would be ignored. */
const PRETRAIN_OPTIONS = trainerOptionKeys<PretrainOptions>({ batch: 0, context: 0, threads: 0 });

/**
 * Train `model` (in place) on `train`; evaluate on `valid`; writes the
 * llama2.c checkpoint to `files.out` at every checkpoint. The arguments are
 * checked at the call (a TypeError or RangeError naming the option); the run
 * is asynchronous.
 */
export function pretrain(model: Checkpoint, train: Int32Array, valid: Int32Array, o: PretrainOptions, files: { out: string } & RunFiles, stream?: ProgressStream): Promise<LoopResult> {
  checkCheckpoint(model, "pretrain", "model");
  const c = model.config;
  checkOptionKeys(o, "pretrain", PRETRAIN_OPTIONS);
  // Positions 0 .. context - 1 of each window must exist in the model (RoPE, the KV layout): context <= seqLen.
  const T = checkInteger(o.context, "pretrain", "context (tokens per window, at most the model's seqLen)", 1, c.seqLen);
  checkPositiveInteger(o.batch, "pretrain", "batch");
  const threads = checkPositiveInteger(o.threads ?? 1, "pretrain", "threads");
  checkLoopOptions(o, "pretrain");
  checkTrainerFiles(files, "pretrain");
  checkProgressStream(stream, "pretrain", "stream");
  const trainIds = checkTokenStream(train, c.vocabSize, "pretrain", "train");
  const validIds = checkTokenStream(valid, c.vocabSize, "pretrain", "valid");
  // A window is T tokens and the next one: a stream of T + 1 tokens holds one.
  if (trainIds.length < T + 1 || validIds.length < T + 1) throw new Error(`pretrain: the token streams are too short for context ${T}: a window takes ${T + 1} tokens, but the training stream has ${trainIds.length} and the validation stream ${validIds.length}`);
  const { params, weights } = trainableWeights(model);
  // A fixed validation sample: the same windows at every evaluation.
  const vr = new Mulberry32(o.seed ^ 0x5eed);
  const validStarts = Array.from({ length: 16 }, () => Math.floor(vr.nextFloat() * (validIds.length - T - 1)));
  const run = async (): Promise<LoopResult> => {
    const parallel = await PretrainParallel.start(model, params, trainIds, { batch: o.batch, context: T, threads, kernels: o.kernels });
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
        evaluate: () => ({ validLoss: nextTokenLoss(new Tape(o.kernels), c, weights, validIds, validStarts, T).data[0] }),
        async step(rng) {
          const starts = Array.from({ length: o.batch }, () => Math.floor(rng.nextFloat() * (trainIds.length - T - 1)));
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
