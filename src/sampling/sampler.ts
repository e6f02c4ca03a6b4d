/**
 * Token sampling as a deterministic function of an explicit auxiliary
 * variable u: t = Pick(u, P(logits, settings)), or argmax when the
 * temperature is 0.
 */

import { checkFloat32Row } from "../util/checks.js";
import { argmax, assertValidU, pick } from "./pick.js";
import { NonFiniteLogitsError } from "./softmax.js";
import { samplingDistribution, validateSamplingSettings, type SamplingSettings } from "./processors.js";

/** Whether sampling with `settings` consumes an auxiliary variable u (temperature > 0). */
export function needsU(settings: SamplingSettings): boolean {
  validateSamplingSettings(settings, "needsU");
  return settings.temperature > 0;
}

/**
 * Samples one token from `logits`.
 *
 * - temperature 0: greedy, argmax(logits) (first index among ties); `u` is
 *   not used and may be undefined;
 * - temperature > 0: pick(u, samplingDistribution(logits, settings)); `u`
 *   must be a number in [0, 1).
 *
 * @throws RangeError for invalid settings, or when u is missing or outside
 *   [0, 1) while needed; NonFiniteLogitsError (a RangeError) for a row no
 *   token can be picked from (NaN or +Infinity; greedy: a largest logit that
 *   is not finite).
 */
export function sampleToken(logits: Float32Array, settings: SamplingSettings, u: number | undefined): number {
  checkFloat32Row(logits, "sampleToken", "logits");
  validateSamplingSettings(settings, "sampleToken");
  if (settings.temperature === 0) {
    // The reference's argmax passes over a NaN (and a row of NaN gives 0): a largest logit that is not finite is no pick.
    const t = argmax(logits);
    if (!Number.isFinite(logits[t])) throw new NonFiniteLogitsError(t, logits[t]);
    return t;
  }
  if (u === undefined) {
    throw new RangeError(`sampleToken: temperature ${settings.temperature} > 0 needs an auxiliary variable u in [0, 1), got undefined`);
  }
  // Checked here, so that the message names this function rather than pick.
  assertValidU(u, "sampleToken");
  return pick(u, samplingDistribution(logits, settings));
}
