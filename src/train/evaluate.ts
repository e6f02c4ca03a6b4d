import { Transformer } from "../model/transformer.js";
import { decodeBatches, StatsSum } from "../ptp/decode/compare.js";
import type { DecoderName } from "../ptp/decode/run.js";
import { PtpModel } from "../ptp/ptp-model.js";
import { DraftModel } from "../ptp/draft-model.js";
import type { Proposer } from "../ptp/proposer.js";
import { XorShiftAux } from "../sampling/aux.js";
import { checkPositiveInteger, describeValue } from "../util/checks.js";
import { checkDraft, checkStudent } from "../ptp/student-weights.js";
import { checkObject, checkOptionKeys } from "../util/options.js";
import type { SamplingSettings } from "../sampling/processors.js";
import { runSteps } from "../ptp/decode/decode-ar.js";
import type { LoopSpec } from "./loop.js";

/** How a training run measures its student: the decoder it runs on held-out prompts, and with what settings. */
export interface EvalSettings {
  /** Held-out prompts, as token arrays (BOS first). */
  prompts: readonly (readonly number[])[];
  /** Positions to run per prompt, the prompt included. */
  steps: number;
  sampling: SamplingSettings;
  decoder: DecoderName;
  /** Prompt i draws its u's from the xorshift stream seeded seed + i (an integer >= 1). */
  seed: number;
  /** Prompts decoded together in one call, a positive integer (default: all; 1 in the trainers' periodic evaluation, acceptedPerCall). */
  batch?: number;
}

/**
 * The evaluation settings a training checkpoint stores (LoopSpec.config):
 * the prompts as their count and a checksum of their tokens, so a resume
 * with other --eval-prompts (or another --tokenizer encoding them) is
 * refused, not logged as the same measurement.
 */
export function storedEvalSettings(e: EvalSettings): Record<string, unknown> {
  // FNV-1a over each prompt's length and tokens.
  let h = 0x811c9dc5;
  const mix = (v: number) => {
    for (let b = 0; b < 4; b++) h = Math.imul(h ^ ((v >>> (8 * b)) & 0xff), 0x01000193);
  };
  for (const p of e.prompts) {
    mix(p.length);
    for (const t of p) mix(t);
  }
  return { ...e, prompts: e.prompts.length, promptsChecksum: (h >>> 0).toString(16).padStart(8, "0") };
}

/** One evaluation: what the student's decoder achieved on the held-out prompts. */
export interface EvalResult {
  /** Mean tokens finalized per verification step: the paper's accepted tokens per call. */
  meanAccepted: number;
  acceptedHistogram: number[];
  modelCalls: number;
  generatedTokens: number;
  seconds: number;
}

/**
 * Accepted tokens per call of a student on held-out prompts, measured with
 * the real decoder (not a training-time proxy), on the u's of the
 * xorshift stream. Sequences still stop at BOS as generation does.
 */
export function evaluateStudent(teacher: Transformer, proposer: Proposer, s: EvalSettings): EvalResult {
  checkArguments(teacher, proposer, s, "evaluateStudent");
  const run = evaluation(teacher, proposer, s);
  for (;;) {
    const next = run.next();
    if (next.done) return next.value;
  }
}

/**
 * evaluateStudent, awaiting `between(done, total)` before the first batch
 * of prompts (done 0) and after each (with `batch: 1`, each prompt): a
 * caller can show progress there and yield to the event loop. If `between`
 * rejects, the evaluation is abandoned (its models freed) with that
 * rejection.
 */
export async function evaluateStudentAsync(teacher: Transformer, proposer: Proposer, s: EvalSettings, between: (done: number, total: number) => Promise<void>): Promise<EvalResult> {
  checkArguments(teacher, proposer, s, "evaluateStudentAsync");
  if (typeof between !== "function") throw new TypeError(`evaluateStudentAsync: between must be a function (done, total) => Promise<void>, got ${describeValue(between)}`);
  const run = evaluation(teacher, proposer, s);
  for (;;) {
    const next = run.next();
    if (next.done) return next.value;
    try {
      await between(next.value, s.prompts.length);
    } catch (err) {
      // Abandoned: the error is thrown into the evaluation where it paused, which frees its models and throws it on.
      run.throw(err);
    }
  }
}

/**
 * The trainers' periodic evaluation (LoopSpec.evaluate): accepted tokens per
 * call, one prompt at a time unless `s.batch` says otherwise, pausing
 * before the first and after each, so that the loop shows its progress and
 * a signal stops it within a prompt.
 */
export function acceptedPerCall(teacher: Transformer, proposer: Proposer, s: EvalSettings): NonNullable<LoopSpec["evaluate"]> {
  checkArguments(teacher, proposer, s, "acceptedPerCall");
  return async (pause) => ({ accepted: (await evaluateStudentAsync(teacher, proposer, { ...s, batch: s.batch ?? 1 }, (done, total) => pause(done, total, "prompt"))).meanAccepted });
}

/** The keys of EvalSettings; another is a typo that would be ignored. */
export const EVAL_SETTINGS: readonly (keyof EvalSettings)[] = ["prompts", "steps", "sampling", "decoder", "seed", "batch"];

/** The teacher a Transformer, the proposer a { kind: "student", student } or { kind: "draft", draft }, the settings an object of known keys: checked before anything reads them. */
function checkArguments(teacher: unknown, proposer: unknown, s: unknown, where: string): void {
  checkTeacherAndProposer(teacher, proposer, where);
  checkOptionKeys(s, where, EVAL_SETTINGS, "settings");
}

/** The teacher a Transformer and the proposer a { kind: "student", student } or { kind: "draft", draft } (as distill takes them too); else a TypeError naming `where`. */
export function checkTeacherAndProposer(teacher: unknown, proposer: unknown, where: string): void {
  if (!(teacher instanceof Transformer)) throw new TypeError(`${where}: teacher must be a Transformer, got ${describeValue(teacher)}`);
  const p = checkObject(proposer, where, "proposer", '{ kind: "student", student } or { kind: "draft", draft }');
  if (p.kind === "student") checkStudent(p.student, where, "proposer.student");
  else if (p.kind === "draft") checkDraft(p.draft, where, "proposer.draft");
  else throw new TypeError(`${where}: proposer.kind must be "student" or "draft", got ${describeValue(p.kind)}`);
}

/** The evaluation, batch by batch: yields the prompts done (0 once the settings are checked, then after each batch); returns the result. The models are freed when it ends or is abandoned. */
function* evaluation(teacher: Transformer, proposer: Proposer, s: EvalSettings): Generator<number, EvalResult, void> {
  runSteps(s.steps, teacher.config.seqLen, "evaluateStudent");
  // xorshift seeds start at 1 (seed 0 would give u = 0 forever).
  const seed = checkPositiveInteger(s.seed, "evaluateStudent", "seed");
  if (!Array.isArray(s.prompts) || s.prompts.length === 0) throw new RangeError("evaluateStudent: no prompts (prompts must be a non-empty array of token arrays)");
  const n = s.prompts.length;
  const batch = s.batch === undefined ? n : checkPositiveInteger(s.batch, "evaluateStudent", "batch");
  // A standalone draft model proposes for the teacher-only PtpModel (decoder verify).
  const model = proposer.kind === "draft" ? new PtpModel(teacher) : new PtpModel(teacher, proposer.student);
  const draft = proposer.kind === "draft" ? new DraftModel(teacher, proposer.draft) : undefined;
  try {
    const total = new StatsSum();
    yield 0;
    for (let from = 0; from < n; from += batch) {
      const r = decodeBatches(model, s.prompts.slice(from, from + batch), {
        decode: { decoder: s.decoder, steps: s.steps, sampling: s.sampling, draft },
        aux: (i) => new XorShiftAux(BigInt(seed + from + i)),
      });
      total.add(r.stats);
      yield Math.min(from + batch, n);
    }
    const { meanAccepted, acceptedHistogram, modelCalls, generatedTokens, seconds } = total.stats();
    return { meanAccepted, acceptedHistogram, modelCalls, generatedTokens, seconds };
  } finally {
    draft?.dispose();
    model.dispose();
  }
}
