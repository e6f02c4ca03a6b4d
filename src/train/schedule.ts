/**
 * Learning-rate schedules: linear warmup from 0 to `lr` over `warmup`
 * steps, then either constant at `lr` or cosine decay to `minLr` at
 * `totalSteps`.
 *
 * Steps are counted from 1: lrAt(t) is the rate for the t-th update (the
 * optimizer's step count after that update), so the first update gets
 * lr / warmup rather than 0, update `warmup` gets exactly lr, and update
 * `totalSteps` gets exactly minLr under cosine. lrAt(0) is 0 when there is
 * a warmup. Past totalSteps the rate stays at its final value.
 */

import { describeValue } from "../util/checks.js";
import { checkObject } from "../util/options.js";

export type LrDecay = "constant" | "cosine";

export interface ScheduleConfig {
  /** Peak learning rate, reached at the end of warmup. */
  lr: number;
  /** Warmup length in steps (0 for none). */
  warmup: number;
  /** Length of the run in steps; cosine reaches minLr here. */
  totalSteps: number;
  decay: LrDecay;
  /** Final rate of the cosine decay (default 0); not used by "constant". */
  minLr?: number;
}

/** Every ScheduleConfig key (the literal's type makes TypeScript keep the list whole and exact): another is a typo. */
export const SCHEDULE_FIELDS: readonly string[] = Object.keys({ lr: 0, warmup: 0, totalSteps: 0, decay: 0, minLr: 0 } satisfies Record<keyof ScheduleConfig, 0>);

/** Throws a RangeError naming the first field of `cfg` out of its range; `at` starts each message (a trainer passes "pretrain: schedule."). */
export function validateSchedule(cfg: ScheduleConfig, at = "schedule: "): void {
  const { lr, warmup, totalSteps, decay } = cfg;
  const minLr = cfg.minLr ?? 0;
  if (typeof lr !== "number" || !Number.isFinite(lr) || lr < 0) throw new RangeError(`${at}lr must be a finite number >= 0, got ${describeValue(lr)}`);
  if (!Number.isSafeInteger(totalSteps) || totalSteps < 1) throw new RangeError(`${at}totalSteps must be an integer >= 1, got ${describeValue(totalSteps)}`);
  if (!Number.isSafeInteger(warmup) || warmup < 0 || warmup > totalSteps) {
    throw new RangeError(`${at}warmup must be an integer in [0, totalSteps = ${totalSteps}], got ${describeValue(warmup)}`);
  }
  if (decay !== "constant" && decay !== "cosine") throw new RangeError(`${at}decay must be "constant" or "cosine", got ${JSON.stringify(decay)}`);
  if (typeof minLr !== "number" || !Number.isFinite(minLr) || minLr < 0 || minLr > lr) {
    throw new RangeError(`${at}minLr must be a finite number in [0, lr = ${lr}], got ${describeValue(minLr)}`);
  }
}

/** The learning rate of update `step` (see the module comment). Pure; validates its arguments. */
export function lrAt(step: number, cfg: ScheduleConfig): number {
  checkObject(cfg, "lrAt", "cfg", "a ScheduleConfig { lr, warmup, totalSteps, decay, minLr? }");
  validateSchedule(cfg);
  if (!Number.isSafeInteger(step) || step < 0) throw new RangeError(`schedule: step must be an integer >= 0, got ${describeValue(step)}`);
  const { lr, warmup, totalSteps, decay } = cfg;
  if (step < warmup) return (lr * step) / warmup;
  // Exact at the boundaries: lr at the end of warmup, minLr at totalSteps (cos(pi) is exactly -1).
  if (decay === "constant" || step === warmup) return lr;
  const minLr = cfg.minLr ?? 0;
  const span = totalSteps - warmup;
  if (span === 0) return lr; // the run is all warmup: nothing to decay over
  const progress = Math.min(step - warmup, span) / span;
  return minLr + 0.5 * (lr - minLr) * (1 + Math.cos(Math.PI * progress));
}
