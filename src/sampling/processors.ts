/**
 * The sampling distribution pipeline: logits -> temperature -> float32
 * softmax -> top-k -> top-p -> (renormalise over the kept tokens).
 *
 * The result is the distribution P that `pick` consumes. Filtered tokens get
 * probability exactly 0 (an empty bin); kept tokens stay in token-id order.
 * See spec/sampling.md for the exact rules.
 */

import { checkFloat32Row, describeValue } from "../util/checks.js";
import { nearestName } from "../util/options.js";
import { softmaxF32 } from "./softmax.js";

const fround = Math.fround;

/** Sampling settings. */
export interface SamplingSettings {
  /**
   * Temperature T >= 0. T = 0 means greedy decoding (argmax, no u consumed;
   * handled by the sampler). For T > 0 the logits are divided by the float32
   * value fround(T), as the reference program does.
   */
  temperature: number;
  /** Keep the k most probable tokens. Off when undefined, <= 0 or >= vocab size. */
  topK?: number;
  /** Nucleus threshold p. Off when undefined, <= 0 or >= 1. */
  topP?: number;
}

/**
 * The least positive temperature: below it, logits / T can overflow float32
 * (a logit of 1e3 / 1e-36 is +Infinity), so it is refused up front.
 */
export const MIN_TEMPERATURE = 1e-6;

/** The keys of SamplingSettings: another is a typo (a trainer refuses any; validateSamplingSettings the misspellings below). */
export const SAMPLING_SETTINGS: readonly (keyof SamplingSettings)[] = ["temperature", "topK", "topP"];

/** Spellings of the three options (lower case, letters only) that mean one of them: a key spelled so, but not exactly, is a typo that would be ignored. */
const MISSPELLED: Readonly<Record<string, string>> = { temperature: "temperature", temp: "temperature", t: "temperature", topk: "topK", k: "topK", topp: "topP", p: "topP", nucleus: "topP" };

/**
 * Validates settings; throws a RangeError with a clear message otherwise.
 * Rules: temperature 0 (greedy) or a finite number >= MIN_TEMPERATURE;
 * topK (if given) an integer; topP (if given) a number in [0, 1].
 * With `where` (the public function checking them) each message starts
 * with it and names the argument, `name` ("samplingDistribution:
 * settings.topP must be ..."); without it the message is the bare rule, for
 * callers that put their own context before it (a file's name).
 */
export function validateSamplingSettings(settings: SamplingSettings, where?: string, name = "settings"): void {
  const at = where === undefined ? "" : `${where}: ${name}.`;
  if (settings === null || typeof settings !== "object") {
    throw new TypeError(where === undefined ? "sampling settings must be an object" : `${where}: ${name} must be an object { ${SAMPLING_SETTINGS.join(", ")} }, got ${describeValue(settings)}`);
  }
  // Every other key is refused: a typo of topK or a setting this library does not have (minP) would otherwise sample unfiltered.
  for (const key of Object.keys(settings)) {
    if ((SAMPLING_SETTINGS as readonly string[]).includes(key)) continue;
    const meant = MISSPELLED[key.toLowerCase().replace(/[^a-z]/g, "")] ?? nearestName(key, SAMPLING_SETTINGS);
    throw new RangeError(`${where === undefined ? "sampling settings" : `${where}: ${name}`}: unknown option ${JSON.stringify(key)}${meant !== undefined ? `; did you mean ${meant}?` : ""} (the options are temperature, topK and topP)`);
  }
  const { temperature, topK, topP } = settings;
  if (typeof temperature !== "number" || !Number.isFinite(temperature) || temperature < 0 || (temperature > 0 && temperature < MIN_TEMPERATURE)) {
    throw new RangeError(`${at}temperature must be a finite number >= 0 (0 = greedy; a positive one at least ${MIN_TEMPERATURE}), got ${describeValue(temperature)}`);
  }
  if (topK !== undefined) {
    if (typeof topK !== "number" || !Number.isInteger(topK)) {
      throw new RangeError(`${at}topK must be an integer (<= 0 = off), got ${describeValue(topK)}`);
    }
  }
  if (topP !== undefined) {
    if (typeof topP !== "number" || Number.isNaN(topP) || topP < 0 || topP > 1) {
      throw new RangeError(`${at}topP must be a number in [0, 1] (0 or 1 = off), got ${describeValue(topP)}`);
    }
  }
}

/** Whether top-k is active for a vocabulary of `n` tokens. */
function topKActive(topK: number | undefined, n: number): topK is number {
  return topK !== undefined && topK > 0 && topK < n;
}

/** Whether top-p is active. */
function topPActive(topP: number | undefined): topP is number {
  return topP !== undefined && topP > 0 && topP < 1;
}

/**
 * Whether sampling from `n` logits under `settings` is temperature and
 * softmax alone (temperature > 0, no active top-k or top-p): the case a
 * backend's `pick` op computes where the logits are.
 */
export function plainSampling(settings: SamplingSettings, n: number): boolean {
  return settings.temperature > 0 && !topKActive(settings.topK, n) && !topPActive(settings.topP);
}

/**
 * Divides every logit by fround(T), rounding each quotient to float32:
 * x_i = fround(x_i / fround(T)). Returns a new array. T must be > 0.
 */
export function applyTemperature(logits: Float32Array, temperature: number): Float32Array {
  checkFloat32Row(logits, "applyTemperature", "logits");
  if (!(temperature > 0) || !Number.isFinite(temperature)) {
    throw new RangeError(`applyTemperature: temperature must be finite and > 0, got ${describeValue(temperature)}`);
  }
  const t = fround(temperature);
  const out = new Float32Array(logits.length);
  // Storing into a Float32Array rounds the (double) quotient to float32,
  // which equals float32 division.
  for (let i = 0; i < logits.length; i++) out[i] = logits[i] / t;
  return out;
}

/**
 * Marks in `keep` the k most probable tokens among those currently kept
 * (ties broken by lower token id); all other entries are cleared.
 */
function markTopK(probs: Float32Array, k: number, keep: Uint8Array): void {
  const n = probs.length;
  // The k-th largest probability is the threshold; everything above it is
  // kept, and tokens equal to it are kept in increasing id order until k.
  const sorted = Float32Array.from(probs).sort(); // ascending, numeric
  const threshold = sorted[n - k];
  let above = 0;
  for (let i = 0; i < n; i++) if (probs[i] > threshold) above++;
  let tiesLeft = k - above;
  for (let i = 0; i < n; i++) {
    const p = probs[i];
    if (p > threshold) {
      keep[i] = 1;
    } else if (p === threshold && tiesLeft > 0) {
      keep[i] = 1;
      tiesLeft--;
    } else {
      keep[i] = 0;
    }
  }
}

/**
 * Keeps, among the tokens marked in `keep`, the smallest prefix of the
 * order (probability descending, ties by lower id) whose float32 cumulative
 * probability reaches >= p; `q` holds the probabilities to accumulate
 * (already renormalised over the kept tokens). The crossing token is kept.
 */
function markTopP(q: Float32Array, p: number, keep: Uint8Array): void {
  const n = q.length;
  let kept = 0;
  for (let i = 0; i < n; i++) if (keep[i]) kept++;
  // Tokens with q below (1 - p) / (kept - 1) cannot be needed before the
  // cumulative reaches p (in exact arithmetic), so sort only the others
  // first. The candidates are a prefix of the full order (every excluded
  // token is strictly smaller than every candidate), so if the cumulative
  // reaches p among them the result is the same as with a full sort; if
  // float32 rounding prevents that, fall back to all kept tokens.
  const cutoff = kept > 1 ? (1 - p) / (kept - 1) : 0;
  const order = (candidates: number[]): number[] => candidates.sort((a, b) => q[b] - q[a] || a - b);
  const pass = (candidates: number[]): number => {
    let cum = 0;
    for (let j = 0; j < candidates.length; j++) {
      cum = fround(cum + q[candidates[j]]);
      if (cum >= p) return j + 1;
    }
    return -1;
  };
  const pruned: number[] = [];
  for (let i = 0; i < n; i++) if (keep[i] && q[i] >= cutoff) pruned.push(i);
  let sortedIds = order(pruned);
  let count = pass(sortedIds);
  if (count < 0) {
    const all: number[] = [];
    for (let i = 0; i < n; i++) if (keep[i]) all.push(i);
    sortedIds = order(all);
    count = pass(sortedIds);
    if (count < 0) count = sortedIds.length; // rounding: keep everything
  }
  keep.fill(0);
  for (let j = 0; j < count; j++) keep[sortedIds[j]] = 1;
}

/**
 * Renormalises `probs` over the tokens marked in `keep`: kept probabilities
 * are divided by their float32 sum taken in token-id order, the others are
 * set to 0. If no token with nonzero probability was removed, `probs` is
 * returned unchanged (nothing to renormalise).
 */
function renormalise(probs: Float32Array, keep: Uint8Array): Float32Array {
  const n = probs.length;
  let removedMass = false;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    if (keep[i]) sum = fround(sum + probs[i]);
    else if (probs[i] !== 0) removedMass = true;
  }
  if (!removedMass) return probs;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) if (keep[i]) out[i] = probs[i] / sum;
  return out;
}

/**
 * The sampling distribution for `logits` under `settings` (temperature must
 * be > 0 here; temperature 0 is greedy and handled by the sampler).
 *
 * 1. x_i = fround(x_i / fround(T));
 * 2. P = softmaxF32(x);
 * 3. top-k (if active): keep the k most probable tokens, ties by lower id;
 * 4. top-p (if active): on P renormalised over the top-k set, keep the
 *    smallest set of most probable tokens (descending, ties by lower id)
 *    whose float32 cumulative probability reaches >= p;
 * 5. if any filter removed probability mass: kept P_i are divided by the
 *    float32 sum (token-id order) of the kept P_i, the rest set to exactly 0.
 *
 * With no filter active the result is exactly softmaxF32 of the scaled
 * logits. Returns a new array; `logits` is not modified.
 */
export function samplingDistribution(logits: Float32Array, settings: SamplingSettings): Float32Array {
  // An empty row has no token to give a probability (softmaxF32 would refuse it, under its own name).
  if (checkFloat32Row(logits, "samplingDistribution", "logits").length === 0) throw new RangeError("samplingDistribution: logits must hold one logit per token, got an empty Float32Array");
  validateSamplingSettings(settings, "samplingDistribution");
  if (settings.temperature === 0) {
    throw new RangeError("samplingDistribution: temperature 0 means greedy decoding (argmax); use sampleToken or argmax");
  }
  const probs = softmaxF32(applyTemperature(logits, settings.temperature));
  const n = probs.length;
  const useK = topKActive(settings.topK, n);
  const useP = topPActive(settings.topP);
  if (!useK && !useP) return probs;

  const keep = new Uint8Array(n).fill(1);
  if (useK) markTopK(probs, settings.topK as number, keep);
  if (useP) {
    const q = useK ? renormalise(probs, keep) : probs;
    markTopP(q, settings.topP as number, keep);
  }
  return renormalise(probs, keep);
}
