import { checkFloat32Row, describeValue } from "../util/checks.js";

/**
 * Pick(u, P): the inverse-CDF rule that turns an auxiliary variable
 * u ~ U[0, 1) and a sampling distribution P into a token id.
 *
 * The CDF is accumulated in token-id order in float32, exactly as the
 * llama2.c reference program does (`cdf += probabilities[i]` on a float,
 * then `if (coin < cdf) return i`), so that a given u picks the same token
 * as the reference. See spec/sampling.md.
 */

const fround = Math.fround;

/** Throws unless `probs` is a Float32Array of probabilities, each in [0, 1] (one pass; no sum is required). */
function checkProbabilities(probs: unknown, where: string): Float32Array {
  const p = checkFloat32Row(probs, where, "probs");
  for (let i = 0; i < p.length; i++) {
    const q = p[i];
    if (!(q >= 0 && q <= 1)) throw new RangeError(`${where}: probability ${i} must be in [0, 1], got ${describeValue(q)}`);
  }
  return p;
}

/** True when `u` is a number in [0, 1). */
export function isValidU(u: unknown): u is number {
  return typeof u === "number" && u >= 0 && u < 1;
}

/**
 * Throws a RangeError unless `u` is a number in [0, 1).
 * `where` is prepended to the message (e.g. a file name and line).
 */
export function assertValidU(u: unknown, where?: string): asserts u is number {
  if (!isValidU(u)) {
    const prefix = where ? `${where}: ` : "";
    throw new RangeError(`${prefix}auxiliary variable u must be in [0, 1), got ${describeValue(u)}`);
  }
}

/**
 * Pick(u, P): the first token i (in token-id order) with u < F_i, where
 * F_i = fround(F_{i-1} + P_i) is the float32 running sum.
 *
 * Tokens with probability 0 have an empty bin and are never returned.
 *
 * Fallback: when float32 rounding leaves the total F_{n-1} below 1 and u
 * lies in [F_{n-1}, 1), no token satisfies u < F_i. The reference program
 * returns n - 1 in that case; we return the LAST token with nonzero
 * probability instead, because with top-k / top-p the final token may be a
 * filtered one (probability 0), which must never be sampled. When the last
 * token has nonzero probability both rules agree.
 *
 * Every P_i must be a number in [0, 1] (as binOf requires), at least one
 * of them > 0: a NaN, negative or Infinity entry would otherwise shift every
 * later bin and pick a token silently.
 *
 * @throws RangeError when u is not a number in [0, 1), a probability is not
 *   in [0, 1], or none is > 0; TypeError when probs is not a Float32Array.
 */
export function pick(u: number, probs: Float32Array): number {
  assertValidU(u, "pick");
  checkProbabilities(probs, "pick");
  let cdf = 0;
  let lastNonZero = -1;
  const n = probs.length;
  for (let i = 0; i < n; i++) {
    const p = probs[i];
    if (p > 0) lastNonZero = i;
    cdf = fround(cdf + p);
    if (u < cdf) return i;
  }
  if (lastNonZero < 0) {
    throw new RangeError("pick: the distribution has no token with nonzero probability");
  }
  return lastNonZero;
}

/**
 * The bin [left, right) of `token` under Pick, consistent with `pick`:
 * for every u in [0, 1), pick(u, probs) === token  iff  left <= u < right.
 *
 * Edges are the float32 CDF values (clamped to at most 1). A token with
 * probability 0, or whose probability is absorbed by float32 rounding, gets
 * an empty bin (left === right). The last token with nonzero probability
 * gets right = 1 when the float32 total falls short of 1 (the fallback
 * region of `pick`).
 */
export function binOf(probs: Float32Array, token: number): [left: number, right: number] {
  const n = checkFloat32Row(probs, "binOf", "probs").length;
  if (!Number.isInteger(token) || token < 0 || token >= n) {
    throw new RangeError(`binOf: token must be an integer in [0, ${n}), got ${describeValue(token)}`);
  }
  checkProbabilities(probs, "binOf");
  let cdf = 0;
  for (let i = 0; i < token; i++) cdf = fround(cdf + probs[i]);
  const left = Math.min(cdf, 1);
  const p = probs[token];
  cdf = fround(cdf + p);
  let right = Math.min(cdf, 1);
  if (p > 0 && right < 1) {
    // Is `token` the last token with nonzero probability? Then it also owns
    // the fallback region [total, 1).
    let laterNonZero = false;
    for (let i = token + 1; i < n; i++) {
      if (probs[i] > 0) {
        laterNonZero = true;
        break;
      }
    }
    if (!laterNonZero) right = 1;
  }
  return [left, right];
}

/**
 * Index of the maximum value; the FIRST such index among ties (strict `>`,
 * as the reference program's argmax). NaN entries are never selected unless
 * at index 0 (then nothing compares greater and 0 is returned, as in C).
 *
 * @throws RangeError on an empty array.
 */
export function argmax(logits: ArrayLike<number>): number {
  const n = logits !== null && typeof logits === "object" ? logits.length : undefined;
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) throw new TypeError(`argmax: logits must be an array or typed array of numbers, got ${describeValue(logits)}`);
  if (n === 0) throw new RangeError("argmax: empty logits");
  let best = 0;
  let bestValue = logits[0];
  for (let i = 1; i < n; i++) {
    const v = logits[i];
    if (v > bestValue) {
      bestValue = v;
      best = i;
    }
  }
  return best;
}
