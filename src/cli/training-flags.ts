import { slotInputFlag } from "./aux-flags.js";
import { existsSync } from "node:fs";
import { readSafetensors } from "../io/safetensors.js";
import { TRAIN_CHECKPOINT_FORMAT } from "../train/train-checkpoint.js";
import type { LoopOptions, RunFiles } from "../train/loop.js";
import { checkOutputs, forceFlag, recognise, type PathFlag } from "./output-files.js";
import type { LrDecay } from "../train/schedule.js";
import { UsageError, defineFlags, type Parsed } from "./args.js";

/** The optimizer, run-length and checkpoint flags every training command shares (distill, train). */
export function loopFlags(d: { lr: number; schedule: LrDecay; weightDecay: number; steps: number; seedHelp: string; evalHelp: string }) {
  return defineFlags({
    checkpoint: { kind: "string", value: "FILE", help: "training checkpoint (default: OUT.train.safetensors)" },
    log: { kind: "string", value: "FILE", help: "metrics log, JSON lines per evaluation (default: OUT.log.jsonl)" },
    resume: { kind: "bool", help: "continue from --checkpoint (same options)" },
    ...forceFlag,
    steps: { kind: "int", value: "N", help: "optimizer steps", default: d.steps },
    "stop-after": { kind: "int", value: "N", help: "stop as Ctrl-C does after N steps of this run, saving a checkpoint (for testing --resume)", default: 0 },
    minutes: { kind: "number", value: "M", help: "stop after M minutes of training (0 = no limit), counted across resumes", default: 0 },
    lr: { kind: "number", value: "LR", help: "peak learning rate", default: d.lr },
    warmup: { kind: "int", value: "N", help: "warmup steps", default: 100 },
    schedule: { kind: "string", value: "KIND", help: "constant|cosine after warmup", default: d.schedule, choices: ["constant", "cosine"] },
    "weight-decay": { kind: "number", value: "W", help: "AdamW decoupled weight decay", default: d.weightDecay },
    clip: { kind: "number", value: "C", help: "clip the gradient norm (0 = off)", default: 1 },
    seed: { kind: "int", value: "S", help: d.seedHelp, default: 1 },
    "eval-every": { kind: "int", value: "N", help: d.evalHelp, default: 200 },
  });
}

/** The PTP student's shape flags (distill; train --objective inverse-ar), with per-command defaults. */
export function studentFlags(d: { aux: "bits" | "digits" | "anchors"; digits: number; window: number; beta: number; helpPrefix: string }) {
  const h = d.helpPrefix;
  return defineFlags({
    rank: { kind: "int", value: "R", help: `${h}LoRA rank`, default: 32, max: 4096 },
    alpha: { kind: "number", value: "A", help: `${h}LoRA alpha (update scaled by alpha / rank)`, default: 32 },
    aux: { kind: "string", value: "KIND", help: `${h}auxiliary embedding of u: bits|digits|anchors`, default: d.aux, choices: ["bits", "digits", "anchors"] },
    digits: { kind: "int", value: "B", help: `${h}binary digits of u for --aux digits`, default: d.digits },
    window: { kind: "int", value: "L", help: `${h}slots per window`, default: d.window, max: 1024 },
    beta: { kind: "number", value: "B", help: `${h}u drawn in its bin at left + z (right - left), z ~ Beta(B, B)`, default: d.beta },
    ...slotInputFlag(h),
  });
}

type LoopFlags = Parsed<ReturnType<typeof loopFlags>>;

/** The loop options of parsed flags, checked; cosine decays to minLr. */
export function loopOptions(f: LoopFlags, minLr = 0): LoopOptions {
  if (f.steps < 1) throw new UsageError(`--steps must be a positive integer, got ${f.steps}`);
  if (!(f.lr > 0)) throw new UsageError(`--lr must be > 0, got ${f.lr}`);
  for (const k of ["minutes", "warmup", "eval-every", "clip", "weight-decay", "stop-after"] as const) if (f[k] < 0) throw new UsageError(`--${k} must be >= 0, got ${f[k]}`);
  return {
    schedule: { lr: f.lr, warmup: Math.min(f.warmup, f.steps), totalSteps: f.steps, decay: f.schedule, minLr },
    weightDecay: f["weight-decay"],
    clip: f.clip,
    seed: f.seed,
    steps: f.steps,
    minutes: f.minutes,
    stopAfter: f["stop-after"],
    evalEvery: f["eval-every"],
    nonFiniteHint: `the learning rate --lr ${f.lr} may be too high, or the starting weights hold NaN/Inf${f.resume ? " (the checkpoint resumed: --checkpoint)" : ""}`,
  };
}

/**
 * The run's files next to OUT, checked before any work (output-files.ts):
 * outputs distinct from `inputs`, writable, and not replacing anything
 * unless --force; with --resume, existing files must be the run's own
 * (`outKind` recognises OUT; `extra` outputs carry their own test). An
 * existing checkpoint without --resume is refused (a run to continue?).
 */
export function runFiles(
  f: LoopFlags & { force?: boolean },
  out: string,
  io: { inputs: readonly { flag: string; path: string | undefined }[]; outKind: (path: string) => true | string; extra?: readonly (PathFlag & { kind: (path: string) => true | string })[] },
): RunFiles {
  const checkpoint = f.checkpoint ?? `${out}.train.safetensors`, log = f.log ?? `${out}.log.jsonl`;
  if (!f.resume && !f.force && existsSync(checkpoint)) throw new Error(`${checkpoint} exists (a run to continue?); pass --resume, or --force to start over`);
  const kinds = new Map<string, (path: string) => true | string>([
    ["--out", io.outKind],
    ["--checkpoint", trainCheckpointKind],
    ["--log", recognise.metricsLog],
    ...(io.extra ?? []).map((e) => [e.flag, e.kind] as const),
  ]);
  checkOutputs(
    [{ flag: "--out", path: out }, { flag: "--checkpoint", path: checkpoint }, { flag: "--log", path: log }, ...(io.extra ?? [])],
    { inputs: io.inputs, force: f.force === true, resumable: f.resume ? (o) => kinds.get(o.flag)!(o.path) : undefined },
  );
  return { checkpoint, log, resume: f.resume === true };
}

/** A training checkpoint written by ptp: safetensors whose metadata says so. */
function trainCheckpointKind(path: string): true | string {
  try {
    return readSafetensors(path).metadata.format === TRAIN_CHECKPOINT_FORMAT ? true : "is not a ptp training checkpoint";
  } catch {
    return "is not a ptp training checkpoint";
  }
}
