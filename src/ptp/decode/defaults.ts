import { describeValue } from "../../util/checks.js";
import type { Proposer } from "../proposer.js";
import type { PickFeedbackKind, StudentConfig } from "../student-weights.js";
import type { DecoderName } from "./run.js";
import type { BudgetMode } from "./budget.js";

/**
 * The decoder defaults, in one place: the proposal window when neither the
 * options nor the proposer give one, the single-call budget per window slot
 * and its split, and the number of multi-draft drafts.
 */
export const DECODER_DEFAULTS = {
  window: 16,
  /** single-call: proposal rows per call (slots and runner-up rows) = budgetPerSlot * window. */
  budgetPerSlot: 2,
  budgetMode: "adaptive" as BudgetMode,
  drafts: 4,
  /**
   * C-PTP drafts are picked at this fraction of the sampling temperature
   * (drafter in decoder.ts); measured best at 0.3-0.5 for the stories260K
   * students at T = 0.7 and T = 1 (docs/BENCHMARKS.md, "Sharpened drafts").
   */
  draftTemperatureScale: 0.4,
  /**
   * single-call: read this many runner-ups of each draft too
   * (decoders/single-call.ts; `true` in the options means the C count), for
   * a C-PTP proposer, whose output is a calibrated distribution (its second
   * choice carries information); not for O-PTP, trained towards one-hot
   * outputs. verify: never by default (the paper's Algorithm 1 verifies one
   * chain; decoders/verify.ts). Measured: the stories260K C-PTP student 1.64 -> 1.71 tokens per
   * call at T = 0.7 (159 held-out prompts); the demo's O-PTP student 2.54 -> 2.50
   * (docs/BENCHMARKS.md, "Runner-up rows").
   */
  runnerUps: { C: 1, O: 0 },
  /**
   * A student with chained pick feedback (spec/ptp.md 2.5) proposes each
   * draft from the token before it, so its distributions are the teacher's
   * next-token ones seen through a few blocks, not the blur of a slot that
   * must infer the tokens between: they need less sharpening, and its
   * later drafts are worth more than runner-up rows. Measured on the
   * stories260K chained student (159 held-out prompts, T = 0.7, verify /
   * single-call): scale 0.4 with runner-ups 4.24 / 2.57; 0.6 without
   * 4.42 / 2.74; 0.8 without 4.54 / 2.79 (T = 1: 3.72 / 2.29); 1.0 with
   * 4.39 / 2.62 (docs/BENCHMARKS.md, "The chained student").
   */
  chained: { draftTemperatureScale: 0.8, runnerUps: 0 },
  /**
   * verify with a draft head: stop drafting a window once the head's
   * probabilities of its drafts multiply to less than this (0: always the
   * full window; decoders/head-verify.ts). A draft that rarely passes
   * costs a teacher row and a slot for little, and a call of fewer rows
   * costs less (docs/BENCHMARKS.md, "Drafts that stop").
   */
  draftStop: 0.1,
  /**
   * verify with a draft head and no window given: rows a teacher call
   * carries at most (the pending token and up to headWindow - 1 drafts), or
   * the head's own window where that is smaller. On a CPU a call of four
   * rows still costs little more than one (the quad tile, spec/backend.md);
   * a fifth costs two thirds of a one-row call, more than later drafts win.
   * The shipped stories260K head (trained at window 8) at the widened 110M
   * shape: window 4 1.51-1.68x over AR on one thread and 1.45-1.51x on two,
   * its own 8 1.34x and 1.39x (docs/BENCHMARKS.md, 2026-12-03).
   */
  headWindow: 4,
} as const;

/**
 * The most slots a proposal window holds, the most proposal rows a
 * single-call call reads and the most drafts a multi-draft call carries
 * (the KV cache and every call's block grow with them): beyond these,
 * decode refuses at once instead of allocating for seconds before running
 * out of memory, or running for minutes.
 */
export const MAX_WINDOW = 1024;
export const MAX_BUDGET = 8192;
export const MAX_DRAFTS = 64;

/** The settings a decoder runs with, every default filled in. */
export interface DecoderSettings {
  window: number;
  budget: number;
  budgetMode: BudgetMode;
  drafts: number;
  draftTemperatureScale: number;
  /** Runner-ups read per draft (0: none). */
  runnerUps: number;
  /** verify with a draft head: the chance below which a window stops drafting (0: never). */
  draftStop: number | "auto";
}

/** The decoder settings a caller may give (decode's options); each one left out takes its default (decoderSettings). */
export interface DecoderOptions {
  /** Slots per proposal window N (default: the draft model's or the student's window, a draft head's at most DECODER_DEFAULTS.headWindow, else 16). */
  window?: number;
  /** single-call: proposal rows per call across branches, slots and runner-up rows (default 2 N). */
  budget?: number;
  /** single-call: "adaptive" (confidence-weighted, default) or "fixed" (even split). */
  budgetMode?: BudgetMode;
  /** multi-draft: number of drafts M (default 4). */
  drafts?: number;
  /** C-PTP drafts are picked at this fraction of the sampling temperature, in (0, 1]; 1 = the method's plain Pick(u, Q) (default 0.4; see drafter). */
  draftTemperatureScale?: number;
  /**
   * single-call and verify: also read up to this many runner-ups of each
   * draft, so a call whose correction the student ranked next finalizes one
   * token more; true / false: the default count / none (default: single-call
   * with a C-PTP student reads DECODER_DEFAULTS.runnerUps.C, else none).
   */
  runnerUps?: boolean | number;
  /**
   * verify with a draft head: stop drafting a window once the head's
   * probabilities of its drafts (each under the distribution it was picked
   * from) multiply to less than this, in [0, 1); 0 = always the full window
   * (default DECODER_DEFAULTS.draftStop). "auto": those products read as the
   * drafts' chances of passing, a call carries the drafts that make its
   * expected tokens per unit of time largest, by the teacher's cost of a
   * call of r rows measured on its backend at first use (call-cost.ts).
   * Only the rows per call change.
   */
  draftStop?: number | "auto";
}

/** What the defaults read: the options given, and the proposer's own window (a draft model's before a student's). */
export interface DecoderSettingsInput extends DecoderOptions {
  /** The decoder, and the proposer's variant, if there is a proposer (the runner-up default). */
  decoder?: string;
  proposerVariant?: "O" | "C";
  /** The student's pick feedback, if it has any ("chain" changes the draft defaults). */
  proposerFeedback?: PickFeedbackKind;
  /** The standalone draft model's window, if one proposes. */
  draftWindow?: number;
  /** The student's window, if there is a student. */
  studentWindow?: number;
  /** Whether the student is a draft head (its default window is at most DECODER_DEFAULTS.headWindow). */
  studentDraftHead?: boolean;
}

/** The window, budget, split, drafts and draft temperature scale a decoder uses for these options. */
export function decoderSettings(o: DecoderSettingsInput): DecoderSettings {
  if (o === null || typeof o !== "object") throw new TypeError(`decoderSettings: the options must be an object (DecodeOptions and the proposer's settings), got ${describeValue(o)}`);
  const studentWindow = o.studentDraftHead && o.studentWindow !== undefined ? Math.min(o.studentWindow, DECODER_DEFAULTS.headWindow) : o.studentWindow;
  const window = o.window ?? o.draftWindow ?? studentWindow ?? DECODER_DEFAULTS.window;
  const chained = o.proposerFeedback === "chain";
  return {
    window: checkCount("window", window, MAX_WINDOW),
    // null reads as absent for every setting, as `??` reads it for the others (budget and drafts refused it).
    budget: o.budget == null ? DECODER_DEFAULTS.budgetPerSlot * window : checkCount("budget", o.budget, MAX_BUDGET),
    budgetMode: checkBudgetMode(o.budgetMode ?? DECODER_DEFAULTS.budgetMode),
    drafts: o.drafts == null ? DECODER_DEFAULTS.drafts : checkCount("drafts", o.drafts, MAX_DRAFTS),
    draftTemperatureScale: o.draftTemperatureScale ?? (chained ? DECODER_DEFAULTS.chained.draftTemperatureScale : DECODER_DEFAULTS.draftTemperatureScale),
    runnerUps: runnerUpCount(o.runnerUps) ?? (o.decoder === "single-call" && o.proposerVariant !== undefined && !chained ? DECODER_DEFAULTS.runnerUps[o.proposerVariant] : 0),
    draftStop: checkDraftStop(o.draftStop ?? DECODER_DEFAULTS.draftStop),
  };
}

/** A row count an option gives (window, budget, drafts): a positive integer, at most `most`, whichever decoder reads it (each sizes the KV cache). */
function checkCount(name: string, n: unknown, most = Number.POSITIVE_INFINITY): number {
  if (!(typeof n === "number" && Number.isInteger(n) && n >= 1)) throw new RangeError(`decode: ${name} must be a positive integer, got ${describeValue(n)}`);
  if (n > most) throw new RangeError(`decode: ${name} must be at most ${most}, got ${n}`);
  return n;
}

function checkDraftStop(stop: unknown): number | "auto" {
  if (stop === "auto") return stop;
  if (!(typeof stop === "number" && stop >= 0 && stop < 1)) throw new RangeError(`decode: draftStop must be a number in [0, 1) (0: the full window) or "auto", got ${describeValue(stop)}`);
  return stop;
}

/** The single-call budget split modes. */
export const BUDGET_MODES: readonly BudgetMode[] = ["adaptive", "fixed"];

function checkBudgetMode(mode: unknown): BudgetMode {
  if (!BUDGET_MODES.includes(mode as BudgetMode)) throw new RangeError(`decode: budgetMode must be one of ${BUDGET_MODES.map((m) => JSON.stringify(m)).join(", ")}, got ${describeValue(mode)}`);
  return mode as BudgetMode;
}

/** The runner-ups per draft an option asks for: on is the C-PTP default count, off is 0; undefined when not given. */
export function runnerUpCount(option: boolean | number | undefined): number | undefined {
  if (option == null) return undefined;
  if (typeof option === "boolean") return option ? DECODER_DEFAULTS.runnerUps.C : 0;
  if (!Number.isInteger(option) || option < 0) throw new RangeError(`decode: runner-ups (runnerUps) must be on, off or a whole number >= 0, got ${describeValue(option)}`);
  return option;
}

/**
 * What drafts for a decoder, as far as the choice of decoder goes: a student
 * whose slots run in the teacher's call ("student"), a draft-head student
 * (StudentConfig.draftHead, spec/ptp.md 2.6) or a standalone draft model.
 * The last two draft beside the teacher, in calls of their own.
 */
export type ProposerKind = "student" | "draft-head" | "draft";

/**
 * The decoders of a proposer that drafts beside the teacher, its default
 * first: a draft-head student's drafts are verified by the teacher's next
 * call (verify; ar runs the teacher alone), a draft model's likewise
 * (verify only). A "student" takes every decoder, single-call by default.
 * The one place of this rule: `decode`, `ptp generate`, `ptp demo` and the
 * benches read it here.
 */
const BESIDE_TEACHER_DECODERS: Record<Exclude<ProposerKind, "student">, readonly ("verify" | "ar")[]> = {
  "draft-head": ["verify", "ar"],
  draft: ["verify"],
};

/** The kind of a proposer: a draft model, a draft-head student, or another student. */
export function proposerKind(p: Proposer): ProposerKind {
  return p.kind === "draft" ? "draft" : studentKind(p.student);
}

/** The kind of a student: "draft-head" for a draft head (StudentConfig.draftHead), else "student". */
export function studentKind(student: { config: Pick<StudentConfig, "draftHead"> }): "student" | "draft-head" {
  return student.config.draftHead ? "draft-head" : "student";
}

/** Whether a proposer drafts beside the teacher, in calls of its own (a draft-head student, a draft model): verify is then its PTP decoder. */
export function draftsBesideTeacher(kind: ProposerKind): kind is Exclude<ProposerKind, "student"> {
  return kind !== "student";
}

/**
 * The decoder run when none is named (`ptp generate`, `ptp demo`, the
 * benches): single-call with a student, verify with a draft-head student or
 * a draft model, else (no proposer) AR.
 */
export function defaultDecoder(proposer: ProposerKind | undefined): "single-call" | "verify" | "ar" {
  if (proposer === undefined) return "ar";
  return draftsBesideTeacher(proposer) ? BESIDE_TEACHER_DECODERS[proposer][0] : "single-call";
}

/** The decoders a proposer works with, its default first; undefined for a student whose slots run in the teacher's call (every decoder). */
export function proposerDecoders(proposer: ProposerKind): readonly ("verify" | "ar")[] | undefined {
  return draftsBesideTeacher(proposer) ? BESIDE_TEACHER_DECODERS[proposer] : undefined;
}

/** Whether `decoder` works with the proposer (proposerDecoders). */
export function decoderGoesWith(proposer: ProposerKind, decoder: DecoderName): boolean {
  const decoders: readonly string[] | undefined = proposerDecoders(proposer);
  return decoders === undefined || decoders.includes(decoder);
}

/**
 * The decoders an evaluation compares by default: single-call, and self for
 * a C-PTP student (its own u withheld) unless it is a query student (whose
 * own AR path is the teacher's, so self decoding says nothing about it),
 * else verify.
 */
export function defaultDecoders(variant: "O" | "C", query = false): ("single-call" | "self" | "verify")[] {
  return variant === "C" && !query ? ["single-call", "self"] : ["single-call", "verify"];
}
