import { BOS } from "../../io/tokenizer.js";
import type { SamplingSettings } from "../../sampling/processors.js";
import { needsU, sampleToken } from "../../sampling/sampler.js";
import type { UStream } from "../../sampling/ustream.js";

/**
 * One sequence being decoded: its finalized tokens, which of them are in the
 * KV cache, its u's, and its statistics.
 *
 * Invariant between calls: tokens[0 .. cached) have their (exact teacher)
 * keys and values in the cache at rows cacheRows; tokens[cached ..] are
 * "pending" and are fed as the first base rows of the next call. After the
 * prompt, at least the last finalized token is always pending.
 */
export class Sequence {
  readonly tokens: number[];
  cached = 0;
  cacheRows: number[] = [];
  done = false;
  /** Tokens finalized per verification step, for the acceptance histogram. */
  readonly acceptedPerStep: number[] = [];

  constructor(
    prompt: readonly number[],
    readonly u: UStream,
    /** Positions to run, the prompt included (llama2.c's steps; the last token sits at position `steps`). */
    readonly steps: number,
    readonly sampling: SamplingSettings,
    readonly stopAtBos: boolean,
  ) {
    if (prompt.length === 0) throw new RangeError("decode: every prompt must hold at least one token (BOS)");
    this.tokens = prompt.slice(0, steps + 1);
    // Forced prompt tokens beyond `steps` are never run, as in the reference.
    if (this.tokens.length > steps) this.done = true;
    this.promptLength = this.tokens.length;
  }

  readonly promptLength: number;

  /** The last finalized token (at position next - 1). */
  get last(): number {
    return this.tokens[this.tokens.length - 1];
  }

  /** Position of the next token to finalize. */
  get next(): number {
    return this.tokens.length;
  }

  /** How many more tokens the sequence may take. */
  /** Tokens the sequence may still take: none once it is done (at the step limit, or at a BOS that ends it). */
  get room(): number {
    return this.done ? 0 : this.steps + 1 - this.tokens.length;
  }

  get pending(): number[] {
    return this.tokens.slice(this.cached);
  }

  /**
   * Where the logits of the latest call still are (decodeWith sets it):
   * Pick(u, P) of a row there (the tokens in `exclude` ruled out), or
   * undefined to pick on the host. Either way the token is sampleToken's,
   * bit for bit.
   */
  devicePick?: (logits: Float32Array, settings: SamplingSettings, u: number, exclude?: readonly number[]) => number | undefined;

  /** The token for position k from the distribution there: Pick(u(k), P) under the sampling settings, or argmax at T = 0. */
  pickAt(k: number, logits: Float32Array): number {
    return this.sample(logits, needsU(this.sampling) ? this.u.at(k) : undefined);
  }

  /**
   * sampleToken(logits, settings (the sequence's by default), u), on the
   * device where it can be; the tokens in `exclude` ruled out (their logits
   * taken as -Infinity).
   */
  sample(logits: Float32Array, u: number | undefined, settings: SamplingSettings = this.sampling, exclude: readonly number[] = []): number {
    if (u !== undefined && this.devicePick) {
      const t = this.devicePick(logits, settings, u, exclude);
      if (t !== undefined) return t;
    }
    return sampleToken(excluding(logits, exclude), settings, u);
  }

  /**
   * Append verified tokens, stopping at BOS (when asked) and at the step
   * limit. Returns how many were appended.
   */
  finalize(verified: readonly number[]): number {
    let n = 0;
    for (const t of verified) {
      if (this.done) break;
      if (this.stopAtBos && t === BOS) {
        this.done = true;
        break;
      }
      this.tokens.push(t);
      n++;
      if (this.room === 0) this.done = true;
    }
    return n;
  }

  /** Whether finalizing `token` ends the sequence (a BOS with stopAtBos): no pick after it is needed, nor its u. */
  endsWith(token: number): boolean {
    return this.stopAtBos && token === BOS;
  }

  /** Number of sampled (not prompt) tokens. */
  get generated(): number {
    return this.tokens.length - this.promptLength;
  }
}

/** `logits` with the tokens in `exclude` at -Infinity (the array itself when there are none). */
export function excluding(logits: Float32Array, exclude: readonly number[]): Float32Array {
  if (exclude.length === 0) return logits;
  const rest = Float32Array.from(logits);
  for (const t of exclude) rest[t] = Number.NEGATIVE_INFINITY;
  return rest;
}
