/**
 * Token sampling as a deterministic function of an explicit auxiliary
 * variable u: t = Pick(u, P(logits, settings)), or argmax when the
 * temperature is 0.
 */

import { argmax, pick } from "./pick.js";
import { samplingDistribution, validateSamplingSettings, type SamplingSettings } from "./processors.js";

/** Whether sampling with `settings` consumes an auxiliary variable u (temperature > 0). */
export function needsU(settings: SamplingSettings): boolean {
  validateSamplingSettings(settings);
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
 *   [0, 1) while needed.
 */
export function sampleToken(logits: Float32Array, settings: SamplingSettings, u: number | undefined): number {
  if (!needsU(settings)) return argmax(logits);
  if (u === undefined) {
    throw new RangeError(`sampleToken: temperature ${settings.temperature} > 0 needs an auxiliary variable u in [0, 1), got undefined`);
  }
  return pick(u, samplingDistribution(logits, settings));
}
