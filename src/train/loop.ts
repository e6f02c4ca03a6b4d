import type { TrainKernels } from "./autograd/kernels.js";
import { appendFileSync, existsSync, readFileSync } from "node:fs";
import { FileFormatError } from "../io/errors.js";
import { Mulberry32 } from "../util/prng.js";
import { isPlainObject } from "../util/options.js";
import { writeBytesAtomically, writeFailure } from "../io/atomic-write.js";
import { Interruption, type StopSignal, yieldToEventLoop } from "./interrupt.js";
import { AdamW, clipGradNorm, gradNorm } from "./optim.js";
import { zeroGrads, type Param } from "./param.js";
import { Progress, type ProgressStream } from "../util/progress.js";
import { lrAt, type ScheduleConfig } from "./schedule.js";
import { loadTrainCheckpoint, saveTrainCheckpoint } from "./train-checkpoint.js";
import { logLineStep, parseMetricsLog } from "./metrics-log.js";
import { reconcileResume } from "./resume-config.js";
import { checkLoopOptions } from "./train-options.js";

/**
 * The training loop every command shares (distill, train, inverse-AR):
 * seeded data order, AdamW with a warmup schedule and gradient clipping, a
 * progress bar, periodic evaluation, and checkpoints that make a run
 * resumable and interruption-safe.
 *
 * Signals: the loop yields to the event loop between steps, so Ctrl-C
 * (SIGINT) or SIGTERM is seen after the current step (at once when the
 * step is asynchronous: the step in flight is abandoned, and the state
 * before it is saved). An evaluation pauses between its parts (prompts),
 * showing its progress: a signal abandons it there, the state of its step
 * is saved, and a resumed run evaluates that step first. The run then
 * saves a checkpoint and returns with `signal` set; a second signal exits
 * the process at once, saying what its last checkpoint is.
 *
 * Non-finite steps: the first step whose loss or gradient norm is NaN/Inf
 * (or evaluation with a NaN/Inf figure) stops the run with a
 * NonFiniteLossError, before the update, any progress figure or any save.
 *
 * Interruption safety: the training checkpoint and the artifact (student
 * or model) are each written to a temporary file and renamed. The
 * checkpoint is written first and is what a resume continues from; it also
 * holds the evaluation's metrics log line (JSON lines, for plots), which is
 * appended next, and the artifact is written last. On resume the log loses
 * its lines past the checkpoint's step, gets the checkpoint's line back if a
 * kill cut it off, and the artifact is rewritten from the checkpoint, so a
 * kill at any moment leaves files a --resume completes exactly.
 */

export interface StepResult {
  /** The loss of this step (already backpropagated into the params' grads). */
  loss: number;
  /** Units of work for the rate (e.g. slots or tokens). */
  units: number;
  /** Extra figures for the progress bar and log, e.g. { correct: 2.1 }. */
  metrics?: Record<string, number>;
}

/** The optimizer and run-length settings every trainer takes from its command line. */
export interface LoopOptions {
  schedule: ScheduleConfig;
  /**
   * The warmup asked for (--warmup), when schedule.warmup is it cut to the
   * run length; stored with the config, so a resume with a larger --steps
   * tells a short run's warmup from a changed --warmup (resume-config.ts).
   * Default: schedule.warmup.
   */
  askedWarmup?: number;
  weightDecay: number;
  /** Clip the global gradient norm at this value (0 = off). */
  clip: number;
  seed: number;
  /** Stop after this many optimizer steps... */
  steps: number;
  /** ...or after this many minutes of training (0 = no limit), counted across resumes. */
  minutes: number;
  /** Stop as an interruption would after this many steps of this run (0 = never); for testing resume. */
  stopAfter?: number;
  /** Evaluate and checkpoint every this many steps (0: only at the end). */
  evalEvery: number;
  /** What to suspect when a step comes out non-finite, e.g. "--lr too high, or NaN in --init". */
  nonFiniteHint?: string;
  /** The training products' implementation (default: trainKernels(), plain TypeScript); any gives the same bits. */
  kernels?: TrainKernels;
}

/** Where a run keeps its training checkpoint and metrics log, and whether it continues them. */
export interface RunFiles {
  checkpoint: string;
  log: string;
  resume: boolean;
  /**
   * What identifies the run's data (e.g. the dataset's header and record
   * count), stored in the checkpoint; a resume with other data is refused.
   */
  inputs?: unknown;
  /** How a refused resume names each key of `inputs` (the flag behind it, e.g. "--corpus (its SHA-256)"); default the key. */
  inputNames?: Readonly<Record<string, string>>;
  /** Called after each checkpoint the run writes (e.g. so a command knows its run has files worth keeping). */
  onCheckpoint?: () => void;
}

/** The LoopSpec fields that come straight from the options and files. */
export function loopSettings(o: LoopOptions, files: RunFiles): Pick<LoopSpec, keyof LoopOptions | "checkpointPath" | "logPath" | "resume" | "inputs" | "inputNames" | "onCheckpoint"> {
  const { schedule, askedWarmup, weightDecay, clip, seed, steps, minutes, stopAfter, evalEvery, nonFiniteHint } = o;
  return { schedule, askedWarmup, weightDecay, clip, seed, steps, minutes, stopAfter, evalEvery, nonFiniteHint, checkpointPath: files.checkpoint, logPath: files.log, resume: files.resume, inputs: files.inputs, inputNames: files.inputNames, onCheckpoint: files.onCheckpoint };
}

/** Options as stored in a checkpoint: without what may change on resume (run length, stop-after, diagnostics). */
export function resumableConfig<T extends LoopOptions>(o: T): Omit<T, "steps" | "minutes" | "stopAfter" | "nonFiniteHint" | "kernels"> {
  const { steps: _s, minutes: _m, stopAfter: _a, nonFiniteHint: _h, kernels: _kn, ...rest } = o;
  return rest;
}

/** The options without the thread count: a data-parallel run gives the same bits on any number of threads, so a resume may change it. */
export function withoutThreads<T extends { threads?: number }>(o: T): Omit<T, "threads"> {
  const { threads: _t, ...rest } = o;
  return rest;
}

export interface LoopSpec extends LoopOptions {
  params: readonly Param[];
  /**
   * Compute the grads of one step (they start at zero); `rng` is the data
   * stream. A long step may `await pause()` between its parts: it yields to
   * the event loop, so Ctrl-C is seen within the part, and rejects once the
   * run is interrupted (the loop has then abandoned the step and saved the
   * state before it).
   */
  step(rng: Mulberry32, step: number, pause: () => Promise<void>): StepResult | Promise<StepResult>;
  /**
   * Periodic evaluation (every evalEvery steps and at the end). A long one
   * awaits `pause` between its parts (see EvalPause): the loop shows its
   * progress, and a signal abandons it within a part.
   */
  evaluate?(pause: EvalPause): Record<string, number> | Promise<Record<string, number>>;
  /** Write the trained artifact (atomically). */
  save(): void;
  checkpointPath: string;
  logPath: string;
  /**
   * Stored in the checkpoint; a resume must present an equal config (the run
   * length, schedule.totalSteps, aside: it may grow; and the schedule's
   * warmup, which follows a short run's length: see resume-config.ts).
   */
  config: unknown;
  /** The run's data identity (RunFiles.inputs); a resume must present equal inputs (those the checkpoint stored). */
  inputs?: unknown;
  /** How a refused resume names each key of `inputs` (RunFiles.inputNames). */
  inputNames?: Readonly<Record<string, string>>;
  /** Called after each checkpoint is written (RunFiles.onCheckpoint). */
  onCheckpoint?: () => void;
  resume: boolean;
  unit: string;
  label: string;
  stream?: ProgressStream;
  /** Called for every progress or evaluation message (default: the stream). */
  log?: (line: string) => void;
  /** Listen for SIGINT/SIGTERM (default true). */
  handleSignals?: boolean;
}

/**
 * An evaluation's pause when `done` of its `total` parts (e.g. prompts, the
 * `unit`) are done (best first with 0, so that the progress line times the
 * first part too): updates its progress line and yields to the event loop;
 * it rejects once the run is interrupted (the loop has then abandoned the
 * evaluation and saved the state of its step).
 */
export type EvalPause = (done: number, total: number, unit: string) => Promise<void>;

export interface LoopResult {
  steps: number;
  seconds: number;
  lastEval?: Record<string, number>;
  interrupted: boolean;
  /** The signal that interrupted the run, if one did (absent for --stop-after). */
  signal?: StopSignal;
}

/** A step's loss or gradient, or an evaluation's figure, came out NaN/Inf: the run diverged. */
export class NonFiniteLossError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NonFiniteLossError";
  }
}

/** The exit code of a command whose training run ended with `r`: 0, or 130/143 when a signal (or --stop-after: 130) stopped it. */
export function loopExitCode(r: LoopResult): number {
  if (!r.interrupted) return 0;
  return r.signal === "SIGTERM" ? 143 : 130;
}

interface Cursor {
  seconds: number;
  /** The run's data identity (LoopSpec.inputs), when it has one. */
  inputs?: unknown;
  /** The evaluation of the checkpoint's step was cut short by a signal: a resumed run evaluates first. */
  evalPending?: true;
  /** The running figures since the last evaluation (absent: none, as in checkpoints from before it), so a resumed run logs what a straight one does. */
  running?: RunningState;
  /** The metrics log line written with this checkpoint (absent: none), written again on resume if a kill cut it off. */
  logLine?: string;
}

export async function runLoop(spec: LoopSpec): Promise<LoopResult> {
  // The trainers check their options at the call; this is for a loop run directly.
  checkLoopOptions(spec, "runLoop");
  const stream = spec.stream ?? process.stderr;
  const say = spec.log ?? ((line: string) => void stream.write(line + "\n"));
  const opt = new AdamW(spec.params, { weightDecay: spec.weightDecay });
  let rng = new Mulberry32(spec.seed);
  let cursor: Cursor | undefined;
  if (spec.resume && existsSync(spec.checkpointPath)) {
    // The run length may change on resume (--steps extends a run): the run goes on with the checkpoint's warmup and its new length.
    const info = loadTrainCheckpoint(spec.checkpointPath, opt, (config) => {
      const r = reconcileResume(config, spec);
      if ("writtenBy" in r) throw new Error(`${spec.checkpointPath}: the checkpoint was written by ${r.writtenBy}, not by this command: resume it with that command, or start over with --force instead of --resume`);
      if (r.problems.length > 0) {
        throw new Error(`${spec.checkpointPath}: the checkpoint was made with a different configuration:\n  ${r.problems.join("\n  ")}\npass the checkpoint's values, or start over with --force instead of --resume`);
      }
      if ("schedule" in r) spec = { ...spec, schedule: r.schedule, config: r.config };
    });
    rng = Mulberry32.resume(checkedRng(spec.checkpointPath, info.rng));
    cursor = checkedCursor(spec.checkpointPath, info.dataCursor);
    const differ = cursor.inputs !== undefined && spec.inputs !== undefined ? inputDifferences(cursor.inputs, spec.inputs, spec.inputNames ?? {}) : [];
    if (differ.length > 0) {
      throw new Error(`${spec.checkpointPath}: the checkpoint was trained on other inputs; resume with the same ones (or start over with --force instead of --resume):\n  ${differ.join("\n  ")}`);
    }
    // What a kill cut short after the checkpoint, its log line and the output, is written again from it.
    const lastLogged = truncateLog(spec.logPath, info.step);
    if (cursor.logLine !== undefined && lastLogged < info.step) appendLogLine(spec.logPath, cursor.logLine);
    spec.save();
    say(`${spec.label}: resumed from ${spec.checkpointPath} at step ${info.step} (${(cursor.seconds / 60).toFixed(1)} min trained)`);
  } else if (spec.resume) {
    say(`${spec.label}: no checkpoint at ${spec.checkpointPath}; starting fresh`);
    truncateLog(spec.logPath, -1);
  } else {
    // A fresh run's log holds its own lines only (an earlier run's step-0 evaluation too goes).
    truncateLog(spec.logPath, -1);
  }

  const interruption = spec.handleSignals === false ? undefined : new Interruption();
  try {
    return await train(spec, opt, rng, cursor, say, stream, interruption);
  } finally {
    interruption?.dispose();
  }
}

/**
 * How a checkpoint's inputs (RunFiles.inputs) differ from a run's: one line
 * per differing key, named by `names`. Only the keys the checkpoint stored
 * are compared: one it lacks was added to the run's identity after it was
 * written (a checkpoint from before the tokenizer's digest was stored still
 * resumes).
 */
function inputDifferences(then: unknown, now: unknown, names: Readonly<Record<string, string>>): string[] {
  const show = (v: unknown) => (v === undefined ? "none" : JSON.stringify(v).slice(0, 300));
  if (!isPlainObject(then) || !isPlainObject(now)) return JSON.stringify(then) === JSON.stringify(now) ? [] : [`checkpoint: ${show(then)}`, `now:        ${show(now)}`];
  return Object.keys(then)
    .filter((k) => JSON.stringify(then[k]) !== JSON.stringify(now[k]))
    .map((k) => `${names[k] ?? k}: ${show(then[k])} in the checkpoint, now ${show(now[k])}`);
}

async function train(spec: LoopSpec, opt: AdamW, rng: Mulberry32, cursor: Cursor | undefined, say: (line: string) => void, stream: ProgressStream, interruption: Interruption | undefined): Promise<LoopResult> {
  const resumed = cursor !== undefined;
  let seconds = cursor?.seconds ?? 0;
  const running = new Running(cursor?.running);
  // A fresh run evaluates its starting point; a resumed one has logged it, unless a signal cut that step's evaluation short.
  const evaluateFirst = spec.evaluate !== undefined && (!resumed || cursor.evalPending === true);
  if (resumed && opt.t >= spec.steps && !evaluateFirst) {
    // A finished run: nothing to train, nothing to write (pass a larger --steps to extend it).
    say(`${spec.label}: the checkpoint is already at step ${opt.t} of ${spec.steps}; nothing to do (a larger --steps continues the run)`);
    return { steps: opt.t, seconds, interrupted: false };
  }
  const progress = new Progress({ total: spec.steps, initial: opt.t, unit: "step", label: spec.label, stream });
  // What is on disk, for a run that stops without saving.
  let savedStep = resumed ? opt.t : undefined;
  const lastCheckpoint = () => (savedStep === undefined ? "this run has written no checkpoint yet" : `the last checkpoint is ${spec.checkpointPath}, at step ${savedStep}`);
  if (interruption) interruption.onSecondSignal = (s) => say(`\n${spec.label}: second ${s}; exiting at once, without saving (${lastCheckpoint()})`);
  // The run diverged: ends the progress line (its figures are the last finite ones) and makes the error to throw.
  const diverged = (what: string) => {
    progress.finish();
    return new NonFiniteLossError(`${spec.label}: ${what}; stopped at step ${opt.t} without saving (${lastCheckpoint()})${spec.nonFiniteHint ? `; likely causes: ${spec.nonFiniteHint}` : ""}`);
  };
  let evalPending = false;
  // The checkpoint is the commit point: it is written first and holds the log line, and the output follows it. A kill
  // between the writes leaves a checkpoint whose log line or output is missing or older; a resume writes both again.
  // A resumed run starts with its checkpoint's log line, when that is its step's (a checkpoint it writes again at that step keeps it).
  let logged: { step: number; line: string } | undefined = cursor?.logLine !== undefined && logLineStep(cursor.logLine) === opt.t ? { step: opt.t, line: cursor.logLine } : undefined;
  const checkpoint = (evalFigures?: Record<string, number>) => {
    const fresh = evalFigures ? JSON.stringify({ step: opt.t, minutes: seconds / 60, ...evalFigures }) : undefined;
    // A checkpoint written again at the step of the last log line (a stop right after an evaluation) keeps that line.
    const logLine = fresh ?? (logged?.step === opt.t ? logged.line : undefined);
    if (fresh !== undefined) logged = { step: opt.t, line: fresh };
    const dataCursor: Cursor = { seconds, ...(spec.inputs !== undefined ? { inputs: spec.inputs } : {}), ...(evalPending ? { evalPending } : {}), ...(running.n > 0 ? { running: running.state() } : {}), ...(logLine !== undefined ? { logLine } : {}) };
    saveTrainCheckpoint(spec.checkpointPath, opt, { rng: rng.stateWord, dataCursor, config: spec.config });
    savedStep = opt.t;
    if (fresh !== undefined) appendLogLine(spec.logPath, fresh);
    spec.save();
    spec.onCheckpoint?.();
  };
  // A part of a step or an evaluation is over: let a pending Ctrl-C / SIGTERM be seen, and give up the rest once one is.
  const pause = async (): Promise<void> => {
    await yieldToEventLoop();
    if (interruption?.signal !== undefined) throw new Error(`${spec.label}: abandoned (${interruption.signal})`);
  };
  // An asynchronous step or evaluation settles as STOPPED as soon as a signal is seen.
  const settle = <T>(work: T | Promise<T>): Promise<T | typeof STOPPED> => (work instanceof Promise && interruption ? interruption.race(work, STOPPED) : Promise.resolve(work));
  let lastEval: Record<string, number> | undefined;
  // A resumed run has logged its checkpoint's step when the checkpoint holds that step's log line (a run stopped by
  // --minutes right after its last evaluation): its end then writes nothing again.
  let evaluatedAt = logged?.step ?? -1;
  /** Evaluates (without spec.evaluate, only the running figures) and checkpoints; false when a signal cut the evaluation short (nothing is printed or logged of it). */
  const evaluate = async (): Promise<boolean> => {
    const started = performance.now();
    let bar: Progress | undefined;
    const figures = await settle(
      spec.evaluate?.(async (done, total, unit) => {
        // On a terminal, on a line of its own below the training bar.
        if (bar === undefined && stream.isTTY) stream.write("\n");
        bar ??= new Progress({ total, unit, label: `${spec.label} eval`, stream });
        bar.update(done);
        await pause();
      }) ?? {},
    );
    bar?.finish();
    if (figures === STOPPED) {
      evalPending = true;
      return false;
    }
    const bad = Object.entries(figures).find(([, v]) => !Number.isFinite(v));
    if (bad) throw diverged(`the evaluation at step ${opt.t} gave ${bad[0]} ${bad[1]}`);
    lastEval = { ...figures, ...running.mean() };
    evalPending = false;
    say(
      `\n${spec.label}: step ${opt.t}  ${Object.entries(lastEval)
        .map(([k, v]) => `${k} ${Number(v.toPrecision(4))}`)
        .join("  ")}  (${((performance.now() - started) / 1000).toFixed(1)} s)`,
    );
    running.reset();
    checkpoint(lastEval);
    evaluatedAt = opt.t;
    return true;
  };

  const limit = spec.minutes > 0 ? spec.minutes * 60 : Infinity;
  const stopAt = spec.stopAfter ? opt.t + spec.stopAfter : Infinity;
  if (interruption) say(`${spec.label}: training from step ${opt.t} to ${spec.steps}; Ctrl-C saves a checkpoint and stops`);
  let interrupted = evaluateFirst && !(await evaluate());
  while (!interrupted && opt.t < spec.steps && seconds < limit) {
    // Let a pending Ctrl-C / SIGTERM be seen.
    if (interruption) await yieldToEventLoop();
    if (interruption?.signal !== undefined || opt.t >= stopAt) {
      interrupted = true;
      break;
    }
    const t0 = performance.now();
    const rngBefore = rng.stateWord;
    zeroGrads(spec.params);
    const r = await settle(spec.step(rng, opt.t, pause));
    if (r === STOPPED) {
      // Abandon the step in flight: nothing of it reached the params, so the state before it is saved.
      rng = Mulberry32.resume(rngBefore);
      interrupted = true;
      break;
    }
    const norm = spec.clip > 0 ? clipGradNorm(spec.params, spec.clip) : gradNorm(spec.params);
    // No update, and no NaN on the progress line.
    if (!Number.isFinite(r.loss) || !Number.isFinite(norm)) throw diverged(`step ${opt.t + 1} gave a non-finite loss or gradient (loss ${r.loss}, gradient norm ${norm})`);
    opt.step(lrAt(opt.t + 1, spec.schedule));
    const dt = (performance.now() - t0) / 1000;
    seconds += dt;
    running.add({ loss: r.loss, ...r.metrics }, r.units, dt);
    const m = running.mean();
    progress.update(opt.t, {
      loss: m.loss.toFixed(3),
      ...Object.fromEntries(
        Object.entries(m)
          .filter(([k]) => k !== "loss")
          // The log keeps the key unitsPerSecond; the bar names the unit (slots/s, tokens/s).
          .map(([k, v]) => [k === "unitsPerSecond" ? `${spec.unit}s/s` : k, Number(v.toPrecision(3))]),
      ),
    });
    if (spec.evalEvery > 0 && opt.t % spec.evalEvery === 0) interrupted = !(await evaluate());
  }
  progress.finish();
  // The end: a last evaluation (without one, a checkpoint with the running figures), unless this step has had it.
  if (!interrupted && evaluatedAt !== opt.t) {
    if (spec.evaluate) interrupted = !(await evaluate());
    else checkpoint({ ...running.mean() });
  }
  const signal = interruption?.signal;
  if (interrupted) {
    checkpoint();
    say(`${spec.label}: ${signal ? `${signal} received; ` : ""}interrupted at step ${opt.t}${evalPending ? " during its evaluation (evaluated first on --resume)" : ""}; checkpoint saved to ${spec.checkpointPath} (continue with --resume)`);
  }
  return { steps: opt.t, seconds, lastEval, interrupted, ...(signal ? { signal } : {}) };
}

const STOPPED = Symbol("stopped");

/** The data stream's state word of a checkpoint: an integer in [0, 2^32). */
function checkedRng(path: string, rng: unknown): number {
  if (typeof rng !== "number" || !Number.isInteger(rng) || rng < 0 || rng > 0xffffffff) throw new FileFormatError(path, `metadata "rng" must be an integer in [0, 4294967295], found ${JSON.stringify(rng)}`);
  return rng;
}

/** The loop's cursor of a checkpoint: { seconds } trained so far, finite and >= 0 (and evalPending, true when present; running, a RunningState, when present). */
function checkedCursor(path: string, cursor: unknown): Cursor {
  const { seconds, inputs, evalPending, running, logLine } = (cursor ?? {}) as Partial<Cursor>;
  if (typeof seconds !== "number" || !(seconds >= 0 && seconds < Infinity) || (evalPending !== undefined && evalPending !== true) || (running !== undefined && !isRunningState(running)) || (logLine !== undefined && !isLogLine(logLine))) {
    throw new FileFormatError(path, `metadata "data_cursor" must be {"seconds": S} with S >= 0 (and "evalPending": true, "running": {"sums": {...}, "n": N, "units": U, "seconds": S} and "logLine": a one-line JSON object with a "step", if present), found ${JSON.stringify(cursor).slice(0, 200)}`);
  }
  return { seconds, inputs, ...(evalPending ? { evalPending } : {}), ...(running !== undefined ? { running } : {}), ...(logLine !== undefined ? { logLine } : {}) };
}

/** A metrics log line as a checkpoint stores it: one line of JSON with a numeric "step". */
function isLogLine(line: unknown): line is string {
  return typeof line === "string" && !line.includes("\n") && typeof logLineStep(line) === "number";
}

/** Running's state as a checkpoint stores it: the sums of each figure (a non-finite one as null), the steps, units and seconds they cover. */
interface RunningState {
  sums: Record<string, number | null>;
  n: number;
  units: number;
  seconds: number;
}

const finiteAtLeast0 = (x: unknown): x is number => typeof x === "number" && x >= 0 && x < Infinity;

function isRunningState(r: unknown): r is RunningState {
  if (typeof r !== "object" || r === null) return false;
  const { sums, n, units, seconds } = r as Partial<RunningState>;
  if (!(Number.isSafeInteger(n) && (n as number) >= 1 && finiteAtLeast0(units) && finiteAtLeast0(seconds))) return false;
  return isPlainObject(sums) && Object.values(sums).every((v) => v === null || Number.isFinite(v));
}

/** Running means of the step figures since the last evaluation, plus units/s; a resumed run starts from the checkpoint's. */
class Running {
  private sums: Record<string, number> = {};
  n = 0;
  private units = 0;
  private seconds = 0;
  constructor(from?: RunningState) {
    if (from === undefined) return;
    // Object.defineProperty keeps any figure's name an ordinary key.
    for (const [k, v] of Object.entries(from.sums)) Object.defineProperty(this.sums, k, { value: v ?? NaN, enumerable: true, writable: true, configurable: true });
    this.n = from.n;
    this.units = from.units;
    this.seconds = from.seconds;
  }
  state(): RunningState {
    return { sums: { ...this.sums }, n: this.n, units: this.units, seconds: this.seconds };
  }
  add(figures: Record<string, number>, units: number, seconds: number): void {
    for (const [k, v] of Object.entries(figures)) this.sums[k] = (this.sums[k] ?? 0) + v;
    this.n++;
    this.units += units;
    this.seconds += seconds;
  }
  mean(): Record<string, number> {
    if (this.n === 0) return {};
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(this.sums)) out[k] = v / this.n;
    out.unitsPerSecond = this.units / this.seconds;
    return out;
  }
  reset(): void {
    this.sums = {};
    this.n = this.units = this.seconds = 0;
  }
}

/**
 * Drops the log's lines past `step` (and a torn last line), atomically;
 * returns the step of the last line kept (-1: none). A file that is not a
 * metrics log (a line that is not JSON with a step, other than a torn last
 * line) is refused, never rewritten.
 */
function truncateLog(path: string, step: number): number {
  if (!existsSync(path)) return -1;
  const log = parseMetricsLog(readFileSync(path, "utf8"));
  if (!log.ok) throw new FileFormatError(path, `line ${log.line} is not a metrics log entry (JSON with a "step"); refusing to rewrite a file this run did not write`);
  const kept = log.entries.filter((e) => e.step <= step);
  writeBytesAtomically(path, new TextEncoder().encode(kept.map((e) => e.text + "\n").join("")));
  return kept.reduce((last, e) => Math.max(last, e.step), -1);
}

/** Appends one line to the metrics log; a failure (a full disk) is an error naming the log. */
function appendLogLine(path: string, line: string): void {
  try {
    appendFileSync(path, line + "\n");
  } catch (err) {
    throw writeFailure(path, err);
  }
}
