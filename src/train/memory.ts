import { kvDim, parameterCount, type ModelConfig } from "../model/config.js";

/**
 * Estimates, before anything is allocated, of the memory a training run
 * needs, so that a command can refuse a run beyond the machine with a clear
 * message instead of dying in the middle of an allocation. The estimates
 * count float32 arrays (4 bytes) and are generous rather than exact: they
 * follow what a step keeps alive at its peak (spec/train.md, "Memory").
 */
export interface MemoryEstimate {
  /** Bytes in all, over every thread. */
  total: number;
  /** The named parts of `total`, largest first. */
  parts: { name: string; bytes: number }[];
  /** Bytes one wasm instance (one thread's teacher: weights, KV cache, activations) holds; wasm memory is at most 4 GiB per instance. */
  perInstance: number;
}

const F = 4;

/** Floats of a model's weights (the tied classifier counted once). */
function weightFloats(c: ModelConfig): number {
  return parameterCount(c);
}

/**
 * Bytes of one inference forward of `rows` rows through a model on a
 * backend after a KV cache of `cacheRows` rows: the KV cache, the
 * activations of the block (residual, norms, q/k/v, attention, SwiGLU,
 * logits) and the attention scratch.
 */
export function forwardBytes(c: ModelConfig, rows: number, cacheRows: number): { cache: number; activations: number } {
  const kv = kvDim(c);
  return {
    cache: F * 2 * c.nLayers * cacheRows * kv,
    activations: F * (rows * (5 * c.dim + 2 * kv + 2 * c.hiddenDim + c.vocabSize) + 2 * c.nHeads * cacheRows),
  };
}

/**
 * Bytes a training graph of `rows` rows keeps on its autograd tape at the
 * peak of backward (values and gradients): per layer the norms, q/k/v and
 * their rotations, attention output, projections, SwiGLU and residuals (plus
 * a LoRA adapter's rank-wide products), the attention probabilities of
 * `visible` keys per row and head, the constant context keys and values
 * concatenated in front of the rows' own, then the final norm, logits and
 * softmax.
 */
export function graphBytes(c: ModelConfig, rows: number, visible: number, contextRows: number, rank = 0): number {
  const kv = kvDim(c);
  const perRowLayer = 11 * c.dim + 4 * kv + 4 * c.hiddenDim + 7 * rank;
  const perLayer = rows * perRowLayer + c.nHeads * rows * visible + 2 * (contextRows + rows) * kv;
  return F * 2 * (c.nLayers * perLayer + rows * (c.dim + 2 * c.vocabSize));
}

function estimate(parts: { name: string; bytes: number }[], perInstance: number): MemoryEstimate {
  const kept = parts.filter((p) => p.bytes > 0).sort((a, b) => b.bytes - a.bytes);
  return { total: kept.reduce((n, p) => n + p.bytes, 0), parts: kept, perInstance };
}

/**
 * Decoding `rows`-row blocks after a KV cache of `cacheRows` rows (`ptp
 * pregenerate`: the longest prompt's prefill, a cache sized to the longest
 * prompt + --steps; `ptp generate`: the prompt's prefill, or a batch's, and
 * the decode's cache): the weights (read straight into the backend by
 * loadModel: one copy), the cache and the activations.
 */
export function inferenceMemory(c: ModelConfig, cacheRows: number, rows: number): MemoryEstimate {
  const run = forwardBytes(c, rows, cacheRows);
  return estimate(
    [
      { name: "weights", bytes: F * weightFloats(c) },
      { name: `KV cache of ${cacheRows} rows`, bytes: run.cache },
      { name: `activations of ${rows} rows`, bytes: run.activations },
    ],
    F * weightFloats(c) + run.cache + run.activations,
  );
}

export interface DistillMemoryOptions {
  /** Floats of the proposer's trainable weights (student adapter or draft model). */
  proposerParams: number;
  /** The shape a draft model's graph runs at (absent: a LoRA student over the teacher). */
  draft?: ModelConfig;
  /** LoRA rank (students). */
  rank: number;
  /** A student's extra blocks (spec/ptp.md 2.4): each runs over the slot rows, with its context keys and values from the hidden states in the graph. */
  extraBlocks?: number;
  windows: number;
  window: number;
  /** Sequences per step, and threads (each holds its own teacher; at most `sequences` are used). */
  sequences: number;
  threads: number;
}

/**
 * `ptp distill`: per worker thread, a copy of the teacher (host and backend), the
 * teacher's forward over a whole sequence (seqLen rows: its KV cache, a host
 * copy of it, the logits) and the graph of windows x window slot rows that
 * each see up to seqLen context keys and their window; then the proposer's
 * weights and gradients per thread and Adam's two moments; and the main
 * thread's teacher, which the run loads and evaluates with.
 */
export function distillMemory(teacher: ModelConfig, o: DistillMemoryOptions): MemoryEstimate {
  const T = Math.max(1, Math.min(o.threads, o.sequences)),
    n = teacher.seqLen,
    R = o.windows * o.window;
  const weights = F * 2 * weightFloats(teacher);
  const run = forwardBytes(teacher, n, n);
  const teacherRun = run.cache * 2 + run.activations + F * n * teacher.vocabSize + F * R * teacher.vocabSize;
  const E = o.draft ? 0 : (o.extraBlocks ?? 0);
  // Extra blocks: E more layers of slot rows, plus each block's context norm, keys and values (values and gradients).
  const extra = E > 0 ? graphBytes({ ...teacher, nLayers: E }, R, n + o.window, n, 0) + F * 2 * E * n * (teacher.dim + 2 * kvDim(teacher)) + F * n * teacher.dim : 0;
  const graph = graphBytes(o.draft ?? teacher, R, n + o.window, o.draft ? 0 : n, o.draft ? 0 : o.rank) + extra;
  return estimate(
    [
      // The workers' copies, and the main thread's (it evaluates and holds the teacher the run loaded).
      { name: `teacher weights x ${T + 1} (${T} worker threads and the main thread)`, bytes: (T + 1) * weights },
      { name: `teacher KV and activations of a ${n}-token sequence x ${T} threads`, bytes: T * teacherRun },
      { name: `training graph of ${o.windows} windows x ${o.window} slots x ${T} threads`, bytes: T * graph },
      { name: "proposer weights, gradients and Adam state", bytes: F * o.proposerParams * (2 * T + 3) },
    ],
    weights / 2 + run.cache + run.activations,
  );
}

/**
 * `ptp train` (next-token pretraining, pretrain-parallel.ts): on the main
 * thread the weights, gradients and Adam state, the shared copies of the
 * weights and of the step's gradient; per worker
 * thread a copy of the weights and its gradient, and the graph of one
 * window (context rows, causal attention).
 */
export function pretrainMemory(c: ModelConfig, o: { context: number; threads: number }): MemoryEstimate {
  const T = o.threads;
  return estimate(
    [
      { name: "weights, gradients and Adam state, and their shared copies", bytes: F * 6 * weightFloats(c) },
      { name: `each worker thread's weights and gradient (x ${T})`, bytes: F * 2 * weightFloats(c) * T },
      { name: `training graph of one window of ${o.context} tokens (x ${T} threads)`, bytes: graphBytes(c, o.context, (o.context + 1) / 2, 0) * T },
    ],
    0,
  );
}

/**
 * `ptp train --objective inverse-ar` (its text windows on worker threads,
 * inverse-ar.ts): per thread the base model's weights (host and backend),
 * its forward over a text window of `context` tokens (KV, a host copy),
 * the C-PTP graph over that window's slots (about `context` rows) and a
 * copy of the student with its gradient; on the main thread the base model
 * again (for evaluations) and the student's weights, gradient, Adam state
 * and their shared copies.
 */
export function inverseArMemory(c: ModelConfig, o: { proposerParams: number; rank: number; context: number; window: number; threads: number }): MemoryEstimate {
  const run = forwardBytes(c, o.context, o.context);
  const T = o.threads;
  return estimate(
    [
      { name: `base model weights (x ${T + 1}: each thread's and the main thread's)`, bytes: F * 2 * weightFloats(c) * (T + 1) },
      { name: `base model KV and activations of a ${o.context}-token window (x ${T} threads)`, bytes: (run.cache * 2 + run.activations) * T },
      { name: `training graph of a ${o.context}-token window (--window ${o.window} slots, x ${T} threads)`, bytes: graphBytes(c, o.context, o.context + o.window, o.context, o.rank) * T },
      { name: "student weights, gradients, Adam state and copies", bytes: F * (6 + 2 * T) * o.proposerParams },
    ],
    F * weightFloats(c) + run.cache + run.activations,
  );
}
