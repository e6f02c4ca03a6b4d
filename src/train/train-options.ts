/**
 * The argument checks the three trainers (pretrain, distill, inverseArTrain)
 * share, one place for each: the keys and values of the loop's options, the
 * run's files, the sampling settings a PTP trainer learns under, and a token
 * stream. Each error starts with the trainer's name and names the option, as
 * the rest of the public API's do (src/util/options.ts), and is thrown at the
 * call, before any worker starts: a misspelt key (`evalEvry`, `thread`,
 * `files.chekpoint`) would otherwise be ignored and its default used, and a
 * value such as `clip: NaN` would train on silently.
 */
import { resolve } from "node:path";
import { checkPath } from "../io/errors.js";
import { checkInteger, describeValue } from "../util/checks.js";
import { MIN_TEMPERATURE, SAMPLING_SETTINGS, validateSamplingSettings, type SamplingSettings } from "../sampling/processors.js";
import { checkObject, checkOptionalBoolean, checkOptionalFunction, checkOptionKeys, isPlainObject } from "../util/options.js";
import type { ProgressStream } from "../util/progress.js";
import type { LoopOptions, RunFiles } from "./loop.js";
import { SCHEDULE_FIELDS, validateSchedule } from "./schedule.js";

/** Every LoopOptions key (the literal's type makes TypeScript keep the list whole and exact). */
const LOOP_OPTIONS: readonly string[] = Object.keys({
  schedule: 0,
  askedWarmup: 0,
  weightDecay: 0,
  clip: 0,
  seed: 0,
  steps: 0,
  minutes: 0,
  stopAfter: 0,
  evalEvery: 0,
  nonFiniteHint: 0,
  kernels: 0,
} satisfies Record<keyof LoopOptions, 0>);

/**
 * The option keys of a trainer whose options `T` extend LoopOptions: its
 * own (`own` names each key of T beyond LoopOptions once, which TypeScript
 * checks), then the loop's.
 */
export function trainerOptionKeys<T extends LoopOptions>(own: Record<Exclude<keyof T, keyof LoopOptions>, 0>): readonly string[] {
  return [...Object.keys(own), ...LOOP_OPTIONS];
}

/** The files every trainer writes: its artifact `out`, and RunFiles. */
export type TrainerFiles = { out: string } & RunFiles;

const TRAINER_FILES: readonly string[] = Object.keys({ out: 0, checkpoint: 0, log: 0, resume: 0, inputs: 0, inputNames: 0, onCheckpoint: 0 } satisfies Record<keyof TrainerFiles, 0>);

/** `value` as a finite number >= 0; else a RangeError "`where`: `name` must be a finite number >= 0`meaning`, got ...". */
function checkFiniteAtLeast0(value: unknown, where: string, name: string, meaning = ""): number {
  if (typeof value !== "number" || !(value >= 0 && value < Infinity)) throw new RangeError(`${where}: ${name} must be a finite number >= 0${meaning}, got ${describeValue(value)}`);
  return value;
}

/** `value` as a finite number > 0 (betaB, gamma); else a RangeError naming it. */
export function checkFinitePositive(value: unknown, where: string, name: string): number {
  if (typeof value !== "number" || !(value > 0 && value < Infinity)) throw new RangeError(`${where}: ${name} must be a finite number > 0, got ${describeValue(value)}`);
  return value;
}

/**
 * The loop's options of a trainer's `o` (its keys are checked with the
 * trainer's own, trainerOptionKeys): the schedule's keys and ranges, then
 * each value in the range LoopOptions documents (0 meaning off where it
 * says so). One pass over a few fields: cheap at every call.
 */
export function checkLoopOptions(o: LoopOptions, where: string): void {
  checkOptionKeys(o.schedule, where, SCHEDULE_FIELDS, "schedule");
  validateSchedule(o.schedule, `${where}: schedule.`);
  if (o.askedWarmup !== undefined) checkInteger(o.askedWarmup, where, "askedWarmup", 0);
  checkFiniteAtLeast0(o.weightDecay, where, "weightDecay");
  checkFiniteAtLeast0(o.clip, where, "clip", " (the gradient norm's bound; 0 = off)");
  checkInteger(o.seed, where, "seed");
  // A count of steps: Progress and the loop compare it with the optimizer's step count.
  checkInteger(o.steps, where, "steps", 0);
  checkFiniteAtLeast0(o.minutes, where, "minutes", " (0 = no limit)");
  if (o.stopAfter !== undefined) checkInteger(o.stopAfter, where, "stopAfter", 0);
  checkInteger(o.evalEvery, where, "evalEvery", 0);
  if (o.nonFiniteHint !== undefined && typeof o.nonFiniteHint !== "string") throw new TypeError(`${where}: nonFiniteHint must be a string, got ${describeValue(o.nonFiniteHint)}`);
  if (o.kernels !== undefined) checkObject(o.kernels, where, "kernels", "training kernels (trainKernels() or wasmTrainKernels())");
}

/**
 * A trainer's `files`: known keys only, `out`, `checkpoint` and `log` paths
 * that differ (each is written in turn at every checkpoint: two on one path
 * would keep only the last), `resume` a boolean (undefined: false) and
 * `onCheckpoint` a function when given.
 */
export function checkTrainerFiles(files: unknown, where: string): asserts files is TrainerFiles {
  const f = checkOptionKeys(files, where, TRAINER_FILES, "files");
  const paths = ["out", "checkpoint", "log"] as const;
  for (const key of paths) checkPath(f[key], where, `files.${key}`);
  for (let i = 0; i < paths.length; i++) {
    for (let j = i + 1; j < paths.length; j++) {
      if (resolve(f[paths[i]] as string) === resolve(f[paths[j]] as string)) throw new RangeError(`${where}: files.${paths[i]} and files.${paths[j]} are the same path (${f[paths[i]]}); each file needs its own`);
    }
  }
  checkOptionalBoolean(f.resume, where, "files.resume");
  checkOptionalFunction(f.onCheckpoint, where, "files.onCheckpoint");
  const names = f.inputNames;
  if (names !== undefined && !(isPlainObject(names) && Object.values(names).every((v) => typeof v === "string"))) {
    throw new TypeError(`${where}: files.inputNames must be an object of strings (how a refused resume names each key of files.inputs), got ${describeValue(names)}`);
  }
}

/** An optional progress stream: undefined (stderr), or an object with write(text); else a TypeError naming it. */
export function checkProgressStream(stream: unknown, where: string, name: string): asserts stream is ProgressStream | undefined {
  if (stream !== undefined && typeof (stream as { write?: unknown } | null)?.write !== "function") throw new TypeError(`${where}: ${name} must be a ProgressStream (an object with write(text)), got ${describeValue(stream)}`);
}

/**
 * The sampling settings a PTP trainer learns under (the dataset's, or the
 * ones inverse-AR recovers u's in): known keys only, validateSamplingSettings'
 * ranges, and a temperature > 0, since every sampled token's u lies in a
 * bin of softmax(logits / T) (0 is greedy: no bins).
 */
export function checkTrainingSampling(sampling: unknown, where: string): void {
  const s = checkOptionKeys(sampling, where, SAMPLING_SETTINGS, "sampling");
  validateSamplingSettings(s as unknown as SamplingSettings, where, "sampling");
  if (s.temperature === 0) throw new RangeError(`${where}: sampling.temperature must be > 0 (at least ${MIN_TEMPERATURE}): the u's lie in the bins of softmax(logits / T), and T = 0 is greedy, got 0`);
}

/**
 * A token stream argument (`name`) as an Int32Array of ids in
 * [0, vocabSize): an Int32Array as it is, any other array-like of integers
 * (a plain array) copied into one. A fractional id (7.5 was cut to 7 when
 * the stream was copied for the workers) or one outside the vocabulary (it
 * failed only inside a worker) is a RangeError naming the argument and the
 * position. One pass over the stream, before any worker starts.
 */
export function checkTokenStream(stream: unknown, vocabSize: number, where: string, name: string): Int32Array {
  const length = stream !== null && typeof stream === "object" ? (stream as { length?: unknown }).length : undefined;
  if (typeof length !== "number" || !Number.isSafeInteger(length) || length < 0) throw new TypeError(`${where}: ${name} must be an Int32Array of token ids, got ${describeValue(stream)}`);
  const ids = stream as ArrayLike<unknown>;
  for (let i = 0; i < length; i++) {
    const t = ids[i];
    if (typeof t !== "number" || !Number.isInteger(t) || t < 0 || t >= vocabSize) throw new RangeError(`${where}: ${name}, position ${i}: token ids must be integers in [0, ${vocabSize}) (the model's vocabulary), got ${describeValue(t)}`);
  }
  return stream instanceof Int32Array ? stream : Int32Array.from(ids as ArrayLike<number>);
}
