import type { ScheduleConfig } from "./schedule.js";
import { isPlainObject } from "../util/options.js";

/**
 * What a resumed run must agree on with its training checkpoint (the
 * `config` it stored, LoopSpec.config), and how a disagreement is told:
 * setting by setting, each named by the command-line flag that sets it.
 *
 * The run length may change: --steps extends (or shortens) a run, so the
 * schedule's `totalSteps` is not compared, and the cosine decays to the new
 * end. Nor is the schedule's `warmup` compared as such: a run shorter than
 * --warmup warms up over its whole length (warmup = min(--warmup, --steps),
 * loopOptions), so it follows --steps. What must agree is the --warmup asked
 * for (`askedWarmup`, stored beside the schedule; a checkpoint from before
 * it is judged by its warmup and run length). The resumed run keeps the
 * checkpoint's warmup (at most the new --steps): its steps so far were taken
 * on it. So a finished run shorter than --warmup, extended with a larger
 * --steps, continues exactly as a run started with --warmup equal to its
 * old length and the new --steps: its warmup is over, and the cosine decays
 * from there to the new end.
 */

type Json = unknown;
type Path = readonly string[];

/**
 * The flag (or what to change) behind each setting of the configs that
 * `pretrain`, `distill` and `inverseArTrain` store, by the tail of its path
 * in the config; the deepest match names a difference (e.g.
 * `student.teacherShape.dim` is the teacher's shape, `model.dim` --dim).
 */
const SETTING_NAMES: Readonly<Record<string, string>> = {
  // The loop's options (resumableConfig).
  "schedule.lr": "--lr",
  "schedule.minLr": "--lr (its final rate, minLr)",
  "schedule.decay": "--schedule",
  weightDecay: "--weight-decay",
  clip: "--clip",
  seed: "--seed",
  evalEvery: "--eval-every",
  // ptp train --objective ar: the new model's shape and its batches.
  "model.dim": "--dim",
  "model.hiddenDim": "--hidden",
  "model.nLayers": "--layers",
  "model.nHeads": "--heads",
  "model.nKvHeads": "--kv-heads",
  "model.seqLen": "--seq-len",
  "model.vocabSize": "the vocabulary size (--tokenizer or --char-vocab)",
  "train.batch": "--batch",
  "train.context": "--context",
  // distill and inverse-ar: the student or draft model and the step's data.
  variant: "--variant",
  rank: "--rank",
  alpha: "--alpha",
  "aux.kind": "--aux",
  "aux.digits": "--digits",
  window: "--window",
  hybrid: "--slot-input",
  query: "--slot-input",
  extraBlocks: "--extra-blocks",
  pickFeedback: "--pick-feedback",
  draftHead: "--draft-head",
  teacherShape: "the teacher's shape (--model)",
  teacherChecksum: "the teacher (--model), its checksum",
  teacherVocabSize: "the teacher's vocabulary size (--model)",
  "draft.model.dim": "--draft-dim",
  "draft.model.hiddenDim": "--draft-hidden",
  "draft.model.nLayers": "--draft-layers",
  "draft.model.nHeads": "--draft-heads",
  "draft.model.nKvHeads": "--draft-kv-heads",
  "draft.model": "the draft model's shape (--draft-*, --draft-init)",
  loss: "--loss",
  gamma: "--gamma",
  betaB: "--beta",
  windows: "--windows",
  sequences: "--batch",
  context: "--context",
  "distill.sampling": "the dataset's sampling settings (--dataset)",
  "distill.eval.sampling": "the dataset's sampling settings (--dataset)",
  "inverseAr.sampling.temperature": "--temperature",
  "inverseAr.eval.sampling.temperature": "--temperature",
  eval: "--eval-prompts",
  "eval.prompts": "--eval-count (or the --eval-prompts file's length)",
  "eval.promptsChecksum": "--eval-prompts (its prompts' tokens, a checksum; or the --tokenizer that encodes them)",
  "eval.steps": "--eval-steps",
  "eval.decoder": "--eval-decoder",
};

/** The setting a difference at `path` belongs to: its deepest ancestor-or-self whose tail is a known setting (its name and path), else the path itself. */
function setting(path: Path): { name: string; path: Path } {
  for (let end = path.length; end > 0; end--) {
    for (let start = 0; start < end; start++) {
      const name = SETTING_NAMES[path.slice(start, end).join(".")];
      if (name !== undefined) return { name, path: path.slice(0, end) };
    }
  }
  return { name: `the setting ${path.join(".")}`, path };
}

const valueAt = (config: Json, path: Path): Json => path.reduce<Json>((o, k) => (isPlainObject(o) ? o[k] : undefined), config);

/** A value as a message shows it: numbers and strings as they are, a missing one as "none", anything else as JSON. */
function shown(v: Json): string {
  if (v === undefined || v === null) return "none";
  if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") return String(v);
  return JSON.stringify(v);
}

/** Settings the comparison leaves out: the run length, and the schedule's warmup with the --warmup asked for (compared on their own). */
function ignored(path: Path): boolean {
  const key = path[path.length - 1];
  if (key === "totalSteps" || key === "askedWarmup") return true;
  return key === "warmup" && path[path.length - 2] === "schedule";
}

/** The settings that differ between `have` (the checkpoint's) and `want` (this run's): leaf paths with both values. */
function differences(have: Json, want: Json, path: string[] = [], out: { path: string[]; have: Json; want: Json }[] = []) {
  if (isPlainObject(have) && isPlainObject(want)) {
    const keys = [...Object.keys(want), ...Object.keys(have).filter((k) => !(k in want))];
    for (const k of keys) if (!ignored([...path, k])) differences(have[k], want[k], [...path, k], out);
  } else if (JSON.stringify(have) !== JSON.stringify(want)) out.push({ path, have, want });
  return out;
}

/** Where a config holds its schedule (the object under a key "schedule" with a warmup and totalSteps), with the --warmup stored beside it. */
function findSchedule(config: Json, path: string[] = []): { path: string[]; schedule: ScheduleConfig; askedWarmup?: number } | undefined {
  if (!isPlainObject(config)) return undefined;
  const s = config.schedule;
  if (isPlainObject(s) && typeof s.warmup === "number" && typeof s.totalSteps === "number") {
    const asked = config.askedWarmup;
    return { path: [...path, "schedule"], schedule: s as unknown as ScheduleConfig, ...(typeof asked === "number" ? { askedWarmup: asked } : {}) };
  }
  for (const [k, v] of Object.entries(config)) {
    const found = findSchedule(v, [...path, k]);
    if (found) return found;
  }
  return undefined;
}

/** The command whose config this is, by the key of its training settings (LoopSpec.config of pretrain, distill, inverseArTrain). */
function commandOf(config: Json): string | undefined {
  if (!isPlainObject(config)) return undefined;
  if ("distill" in config) return "ptp distill";
  if ("inverseAr" in config) return "ptp train --objective inverse-ar";
  if ("train" in config) return "ptp train";
  return undefined;
}

/** The --slot-input a student config's hybrid and query fields make. */
function slotInputOf(student: Json): string | undefined {
  if (!isPlainObject(student)) return undefined;
  return student.query === true ? "query" : student.hybrid === true ? "hybrid" : "aux";
}

/** This run's side of a resume: its config (with the schedule in it), schedule, the --warmup it asks for, and its run length. */
export interface ResumeRun {
  config: Json;
  schedule: ScheduleConfig;
  /** The --warmup asked for (schedule.warmup is it at most the run length); default schedule.warmup. */
  askedWarmup?: number;
  steps: number;
}

/**
 * Checks this run against the checkpoint's stored config. Returns the lines
 * naming each setting that differs (empty when the run may resume), or,
 * when none does, the schedule and config the resumed run goes on with:
 * the checkpoint's warmup (see the file comment) and this run's length.
 */
export function reconcileResume(stored: Json, run: ResumeRun): { problems: string[] } | { problems: []; schedule: ScheduleConfig; config: Json } | { problems: string[]; writtenBy: string } {
  // A checkpoint of another command: said as such, not as every setting of two configs that share none.
  const by = commandOf(stored);
  if (by !== commandOf(run.config)) return { problems: [], writtenBy: by ?? "something other than ptp's training commands" };
  const lines = new Map<string, string>();
  const say = (name: string, have: Json, want: Json) => {
    // One line per flag: --lr changes both the rate and its final rate.
    const flag = name.match(/--[a-z][a-z-]*/)?.[0] ?? name;
    if (!lines.has(flag)) lines.set(flag, `${name} was ${shown(have)} in the checkpoint, now ${shown(want)}`);
  };
  for (const d of differences(stored, run.config)) {
    // A checkpoint from before the prompts' checksum was stored: its prompts can only be compared by count.
    if (d.path.at(-1) === "promptsChecksum" && valueAt(stored, d.path) === undefined) continue;
    // The values of the whole setting (e.g. the teacher's shape), not of the field inside it that differs.
    const s = setting(d.path);
    // --slot-input is two fields of the student (hybrid, query): name the kind each says.
    if (s.name === "--slot-input") say(s.name, slotInputOf(valueAt(stored, s.path.slice(0, -1))), slotInputOf(valueAt(run.config, s.path.slice(0, -1))));
    else say(s.name, valueAt(stored, s.path), valueAt(run.config, s.path));
  }
  const had = findSchedule(stored);
  const asked = run.askedWarmup ?? run.schedule.warmup;
  if (had !== undefined) {
    // A checkpoint from before askedWarmup: a warmup shorter than the run was the --warmup asked for; one as long as the run, any --warmup of at least that.
    const hadAsked = had.askedWarmup ?? (had.schedule.warmup < had.schedule.totalSteps ? had.schedule.warmup : undefined);
    if (hadAsked !== undefined ? hadAsked !== asked : asked < had.schedule.totalSteps) say("--warmup", hadAsked ?? `${had.schedule.totalSteps} or more`, asked);
  }
  if (lines.size > 0) return { problems: [...lines.values()] };
  if (had === undefined) return { problems: [], schedule: run.schedule, config: run.config };
  const schedule: ScheduleConfig = { ...run.schedule, warmup: Math.min(had.schedule.warmup, run.steps) };
  return { problems: [], schedule, config: withSchedule(run.config, schedule) };
}

/** `config` with the schedule it holds (found as findSchedule finds it) replaced by `schedule`. */
function withSchedule(config: Json, schedule: ScheduleConfig): Json {
  const at = findSchedule(config);
  if (at === undefined) return config;
  const copy = JSON.parse(JSON.stringify(config)) as Record<string, Json>;
  let o = copy;
  for (const k of at.path.slice(0, -1)) o = o[k] as Record<string, Json>;
  o.schedule = schedule;
  return copy;
}
