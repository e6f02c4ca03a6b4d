import type { Block } from "../../model/block.js";
import { Transformer } from "../../model/transformer.js";
import { checkAuxSource, drawU, type AuxSource } from "../../sampling/aux.js";
import { checkTokens, describeValue } from "../../util/checks.js";
import { validateSamplingSettings, type SamplingSettings } from "../../sampling/processors.js";
import { checkOptionalBoolean, checkOptionalFunction, checkOptionKeys } from "../../util/options.js";
import { needsU } from "../../sampling/sampler.js";

import { BOS } from "../../io/tokenizer.js";

/** The keys of ArOptions; another (stopAtBOS, step) is a typo that would be ignored. */
const AR_OPTIONS: readonly (keyof ArOptions)[] = ["steps", "sampling", "aux", "stopAtBos", "onToken"];

/** The options of decodeAR: how far to run, the sampling settings, the u source and the callbacks. */
export interface ArOptions {
  /**
   * Number of positions to run, the prompt included, as the llama2.c
   * reference counts them: position p reads token p and produces token p+1.
   * 0 or more than the model's seqLen means seqLen.
   */
  steps: number;
  /** Read once, when the decode starts (a callback changing the object changes nothing). */
  sampling: SamplingSettings;
  /** The auxiliary variables: one u per SAMPLED token (none for prompt tokens, none at temperature 0). */
  aux?: AuxSource;
  /** Stop when the model produces BOS (the reference's end of text). Default true. */
  stopAtBos?: boolean;
  /** Called for every token appended after the first, with the token before it. */
  onToken?: (prev: number, token: number) => void;
}

/** What an AR decode measured. */
export interface DecodeStats {
  /** Forward calls made. */
  modelCalls: number;
  /** Tokens produced by sampling (prompt tokens not counted). */
  generatedTokens: number;
  seconds: number;
  /** generatedTokens / seconds (the prompt's prefill time included). */
  tokensPerSecond: number;
}

/** An AR decode's sequence and statistics. */
export interface DecodeResult {
  /** The whole sequence: the prompt tokens (BOS first) and what followed. */
  tokens: number[];
  stats: DecodeStats;
}

/**
 * Autoregressive decoding, one sampled token per model call: the baseline
 * every PTP decoder must reproduce token for token.
 *
 * t_{k} = Pick(u_k, P(. | t_<k)) with u_k the next value of `aux`. The prompt
 * is prefilled in a single call: batch invariance makes its last row's
 * logits identical to feeding the prompt one token at a time.
 */
export function decodeAR(model: Transformer, prompt: ArrayLike<number>, options: ArOptions): DecodeResult {
  return runToEnd(decodeARSteps(model, prompt, options));
}

/**
 * decodeAR one model call at a time: a generator that yields after every
 * call (the tokens generated so far) and returns decodeAR's result, token
 * for token the same. A caller can turn the event loop between calls (so
 * that Ctrl-C is seen: `ptp generate`, runInterruptibly) and stop early by
 * calling return(), which frees the KV cache. The options are checked at
 * the first next().
 */
export function* decodeARSteps(model: Transformer, prompt: ArrayLike<number>, options: ArOptions): Generator<number, DecodeResult, void> {
  if (!(model instanceof Transformer)) throw new TypeError(`decodeAR: model must be a Transformer, got ${describeValue(model)}`);
  checkOptionKeys(options, "decodeAR", AR_OPTIONS);
  const { seqLen, vocabSize } = model.config;
  const promptTokens = checkTokens(prompt, vocabSize, "decodeAR");
  if (promptTokens.length === 0) throw new RangeError("decodeAR: the prompt must hold at least one token (BOS)");
  const steps = runSteps(options.steps, seqLen, "decodeAR");
  validateSamplingSettings(options.sampling);
  // A copy: a callback changing the caller's object mid-run would change the path (or read a u from no source).
  const sampling = { ...options.sampling };
  const aux = options.aux;
  if (aux !== undefined) checkAuxSource(aux, "decodeAR: aux");
  else if (needsU(sampling)) throw new Error("decodeAR: sampling at temperature > 0 needs a source of auxiliary variables (aux)");
  const stopAtBos = checkOptionalBoolean(options.stopAtBos, "decodeAR", "stopAtBos") ?? true;
  checkOptionalFunction(options.onToken, "decodeAR", "onToken");

  const start = performance.now();
  // Sized to the run, not the model's seqLen: positions 0 .. steps - 1 are all it ever holds.
  const cache = model.newCache(steps);
  const tokens = promptTokens.slice(0, Math.min(promptTokens.length, steps + 1));
  let modelCalls = 0,
    generated = 0;
  // Prefill: positions 0 .. n-1 in one call (when the prompt leaves room to sample).
  let pos = Math.min(promptTokens.length, steps);
  // The token after a block's last row, picked where the logits are when the backend can (Transformer.greedy, sampleLast).
  const greedy = !needsU(sampling);
  const nextAfter = (block: Block): number => {
    modelCalls++;
    const last = block.tokens!.length - 1;
    if (greedy) return model.greedy(block, cache)[last];
    // The u is checked here, before any backend sees it (a device's pick may not check it).
    return model.sampleLast(block, cache, sampling, drawU(aux!, `decodeAR: aux, u for position ${Number(block.positions[last]) + 1}`));
  };
  // The cache is freed however the run ends (a u source or a callback that throws included).
  try {
    for (let i = 1; i < tokens.length; i++) options.onToken?.(tokens[i - 1], tokens[i]);
    if (pos === promptTokens.length) {
      let next = nextAfter({ tokens: tokens.slice(0, pos), positions: range(0, pos) });
      for (;;) {
        if (stopAtBos && next === BOS) break;
        options.onToken?.(tokens[tokens.length - 1], next);
        tokens.push(next);
        generated++;
        if (pos >= steps) break;
        yield generated;
        next = nextAfter({ tokens: [next], positions: [pos] });
        pos++;
      }
    }
  } finally {
    cache.free();
  }
  const seconds = (performance.now() - start) / 1000;
  return { tokens, stats: { modelCalls, generatedTokens: generated, seconds, tokensPerSecond: generated / seconds } };
}

/**
 * The positions a decode runs (llama2.c's steps, the prompt included) for
 * the `steps` option: an integer, where <= 0 or more than the model's
 * seqLen means seqLen. decodeAR, decode and the evaluation share it.
 */
export function runSteps(steps: unknown, seqLen: number, where: string): number {
  if (typeof steps !== "number" || !Number.isInteger(steps)) throw new RangeError(`${where}: steps must be an integer (<= 0 or > seqLen: the model's seqLen), got ${describeValue(steps)}`);
  return steps <= 0 || steps > seqLen ? seqLen : steps;
}

/** Runs a decode generator (decodeARSteps, decodeWithSteps, comparePtpArSteps) to its end, synchronously, and returns its result. */
export function runToEnd<T>(steps: Generator<unknown, T, void>): T {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i);
}
