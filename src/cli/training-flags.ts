import type { loopFlags } from "./flag-groups.js";
import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { resolve } from "node:path";
import { lockPathOf } from "../io/output-lock.js";
import { FileFormatError, quotePath } from "../io/errors.js";
import { readSafetensors } from "../io/safetensors.js";
import { TRAIN_CHECKPOINT_FORMAT } from "../train/train-checkpoint.js";
import { loopExitCode, type LoopOptions, type LoopResult, type RunFiles } from "../train/loop.js";
import { type Io, processIo } from "./io.js";
import type { TextTokenizer } from "../io/hf-tokenizer.js";
import { readPrompts } from "./ptp-common.js";
import { checkOutputs, recognise, type PathFlag } from "./output-files.js";
import { UsageError, type Parsed } from "./args.js";
import { Progress } from "../util/progress.js";
import { runInterruptibly } from "../train/interrupt.js";
import { tokenStream } from "../train/pretrain.js";

type LoopFlags = Parsed<ReturnType<typeof loopFlags>>;

/** The loop options of parsed flags, checked; cosine decays to minLr. */
export function loopOptions(f: LoopFlags, minLr = 0): LoopOptions {
  // AdamW's decoupled decay multiplies each decayed weight by 1 - lr x wd every step: at 1 or more it wipes or flips them.
  if (f.lr * f["weight-decay"] >= 1) throw new UsageError(`--weight-decay ${f["weight-decay"]} with --lr ${f.lr} multiplies every decayed weight by 1 - lr x wd = ${1 - f.lr * f["weight-decay"]} each step; expected lr x wd < 1`);
  return {
    // A run shorter than --warmup warms up over its whole length; the --warmup asked for is stored too, so that a larger --steps on --resume extends it (src/train/resume-config.ts).
    schedule: { lr: f.lr, warmup: Math.min(f.warmup, f.steps), totalSteps: f.steps, decay: f.schedule, minLr },
    askedWarmup: f.warmup,
    weightDecay: f["weight-decay"],
    clip: f.clip,
    seed: f.seed,
    steps: f.steps,
    minutes: f.minutes,
    stopAfter: f["stop-after"],
    evalEvery: f["eval-every"],
    nonFiniteHint: `the learning rate --lr ${f.lr}${f["weight-decay"] > 0 ? ` (or the weight decay --weight-decay ${f["weight-decay"]})` : ""} may be too high, or the starting weights hold NaN/Inf${f.resume ? " (the checkpoint resumed: --checkpoint)" : ""}`,
  };
}

/**
 * The run's files next to OUT, checked before any work (output-files.ts):
 * outputs distinct from `inputs`, writable, and not replacing anything
 * unless --force; with --resume, existing files must be the run's own
 * (`outKind` recognises OUT; `extra` outputs carry their own test). An
 * existing checkpoint without --resume is refused (a run to continue?).
 */
export function runFiles(f: LoopFlags & { force?: boolean }, out: string, io: { inputs: readonly { flag: string; path: string | undefined }[]; outKind: (path: string) => true | string; extra?: readonly (PathFlag & { kind: (path: string) => true | string })[] }): RunFiles {
  const { checkpoint, log } = runPaths(f, out);
  if (!f.resume && !f.force && existsSync(checkpoint)) throw new Error(`${quotePath(checkpoint)} exists (a run to continue?); pass --resume, or --force to start over`);
  const kinds = new Map<string, (path: string) => true | string>([["--out", io.outKind], ["--checkpoint", trainCheckpointKind], ["--log", recognise.metricsLog], ...(io.extra ?? []).map((e) => [e.flag, e.kind] as const)]);
  // Only a run that exists can be continued: with --resume and no checkpoint, an existing output is someone's file, kept unless --force.
  const continuing = f.resume === true && existsSync(checkpoint);
  const kindOf = (o: PathFlag) => kinds.get(o.flag)!(o.path);
  const resumable = continuing ? kindOf : f.resume ? (o: PathFlag) => (kindOf(o) === true ? `no checkpoint (${quotePath(checkpoint)}) holds a run to continue` : kindOf(o)) : undefined;
  // The run's locks (one beside OUT and each of its other outputs, runLocks) are files of their own too: no output may be one.
  for (const locked of runLocks(f, out, io.extra)) {
    const lock = lockPathOf(locked);
    for (const [flag, path] of [["--out", out], ["--checkpoint", checkpoint], ["--log", log], ...(io.extra ?? []).map((e) => [e.flag, e.path])]) {
      if (resolve(path) === resolve(lock)) throw new UsageError(`${flag} ${quotePath(path)} is the lock file this run holds while it writes ${locked === out ? "--out " : ""}${quotePath(locked)}; choose another path`);
    }
  }
  checkOutputs([{ flag: "--out", path: out }, { flag: "--checkpoint", path: checkpoint }, { flag: "--log", path: log }, ...(io.extra ?? [])], { inputs: io.inputs, force: f.force === true, resumable });
  return { checkpoint, log, resume: f.resume === true };
}

/**
 * The outputs a run locks (lockOutput): OUT, its checkpoint and log (where
 * they are given or next to OUT), and the `extra` outputs, so that no other
 * run, whatever its --out, writes into any of them meanwhile.
 */
export function runLocks(f: LoopFlags, out: string, extra: readonly PathFlag[] = []): string[] {
  const { checkpoint, log } = runPaths(f, out);
  return [out, checkpoint, log, ...extra.map((e) => e.path)];
}

/** The run's training checkpoint and metrics log: --checkpoint and --log, by default next to OUT. */
function runPaths(f: LoopFlags, out: string): { checkpoint: string; log: string } {
  return { checkpoint: f.checkpoint ?? `${out}.train.safetensors`, log: f.log ?? `${out}.log.jsonl` };
}

/**
 * A training checkpoint written by ptp: safetensors whose metadata says so.
 * Asked only of the checkpoint a --resume continues: one that cannot be read
 * (truncated, corrupt) is an error naming it and what is wrong with it, and
 * is left as it is.
 */
function trainCheckpointKind(path: string): true | string {
  let format: unknown;
  try {
    format = readSafetensors(path).metadata.format;
  } catch (err) {
    const problem = err instanceof FileFormatError ? err.problem : err instanceof Error ? err.message : String(err);
    throw new FileFormatError(path, `cannot resume from this training checkpoint: ${problem}; it was left as it is (to start over instead, run without --resume and with --force)`);
  }
  return format === TRAIN_CHECKPOINT_FORMAT ? true : "is not a ptp training checkpoint";
}

/** Worker threads of a run: --threads, else the machine's cores; never more than the windows of a step. */
export function trainThreads(f: { threads?: number; batch: number }): number {
  return Math.min(f.threads ?? availableParallelism(), f.batch);
}

/** Where a training run's progress goes: stderr, redrawn in place on a terminal. */
export function progressSink(io: Io): { write(text: string): void; isTTY: boolean } {
  return { write: (text) => io.stderr(text), isTTY: io === processIo && process.stderr.isTTY };
}

/**
 * The documents (corpus lines) encoded by `tokenizer`, BOS first in each, as
 * tokenStream joins them: a large corpus takes minutes (about 0.13 s a MB),
 * so the work runs a document at a time with the event loop turning every
 * few milliseconds (runInterruptibly), where a signal stops the run before
 * its loop starts (the output lock's handler: nothing is saved yet), and an
 * encoding that lasts more than a second shows a progress bar on stderr.
 */
export async function encodeDocuments(io: Io, label: string, lines: readonly string[], tokenizer: Pick<TextTokenizer, "encode">): Promise<Int32Array> {
  const started = performance.now();
  let progress: Progress | undefined;
  function* encode(): Generator<void, number[][], void> {
    const docs: number[][] = [];
    for (const line of lines) {
      docs.push(tokenizer.encode(line, true, false));
      if (progress === undefined && performance.now() - started > ENCODE_QUIET_MS) progress = new Progress({ total: lines.length, unit: "document", label: `${label}: encoding`, stream: progressSink(io) });
      progress?.update(docs.length);
      yield;
    }
    return docs;
  }
  // No signal source of its own: the output lock's handler ends the process on one.
  const r = await runInterruptibly(encode(), { signal: undefined });
  if (!r.done) throw new Error(`${label}: encoding stopped by ${r.signal}`);
  progress?.finish();
  return tokenStream(r.value);
}

/** How long encodeDocuments works before it shows a bar, ms. */
const ENCODE_QUIET_MS = 1000;

/** The last line of a training command ("distill: done after 40 steps, 1.2 min of training; student: s.safetensors") and its exit code. */
export function finishRun(io: Io, label: string, r: LoopResult, wrote: string): number {
  io.stderr(`${label}: ${r.interrupted ? "stopped" : "done"} after ${r.steps} steps, ${(r.seconds / 60).toFixed(1)} min of training; ${wrote}\n`);
  return loopExitCode(r);
}

/** The seed of an evaluation's u's in the training commands (the same prompts see the same u's at every evaluation). */
export const EVAL_SEED = 1000;

/** The first `count` prompts of an --eval-prompts file as tokens (BOS first). */
export function evalPromptTokens(path: string, count: number, tokenizer: TextTokenizer): number[][] {
  return readPrompts(path)
    .slice(0, count)
    .map((t) => tokenizer.encode(t, true, false));
}
