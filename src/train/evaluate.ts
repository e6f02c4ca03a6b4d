import type { Transformer } from "../model/transformer.js";
import { decodeBatches } from "../ptp/decode/compare.js";
import type { DecoderName } from "../ptp/decode/run.js";
import { PtpModel } from "../ptp/ptp-model.js";
import { DraftModel } from "../ptp/draft-model.js";
import type { Proposer } from "../ptp/proposer.js";
import { XorShiftAux } from "../sampling/aux.js";
import { checkPositiveInteger } from "../sampling/checks.js";
import type { SamplingSettings } from "../sampling/processors.js";
import { runSteps } from "../ptp/decode/decode-ar.js";

export interface EvalSettings {
  /** Held-out prompts, as token arrays (BOS first). */
  prompts: readonly (readonly number[])[];
  /** Positions to run per prompt, the prompt included. */
  steps: number;
  sampling: SamplingSettings;
  decoder: DecoderName;
  /** Prompt i draws its u's from the xorshift stream seeded seed + i (an integer >= 1). */
  seed: number;
  /** Prompts decoded together in one call, a positive integer (default: all). */
  batch?: number;
}

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
  runSteps(s.steps, teacher.config.seqLen, "evaluateStudent");
  // xorshift seeds start at 1 (seed 0 would give u = 0 forever).
  const seed = checkPositiveInteger(s.seed, "evaluateStudent", "seed");
  if (s.batch !== undefined) checkPositiveInteger(s.batch, "evaluateStudent", "batch");
  // A standalone draft model proposes for the teacher-only PtpModel (decoder verify).
  const model = proposer.kind === "draft" ? new PtpModel(teacher) : new PtpModel(teacher, proposer.student);
  const draft = proposer.kind === "draft" ? new DraftModel(teacher, proposer.draft) : undefined;
  try {
    const r = decodeBatches(model, s.prompts, {
      decode: { decoder: s.decoder, steps: s.steps, sampling: s.sampling, draft },
      aux: (i) => new XorShiftAux(BigInt(seed + i)),
      batch: s.batch,
    });
    return {
      meanAccepted: r.stats.meanAccepted,
      acceptedHistogram: r.stats.acceptedHistogram,
      modelCalls: r.stats.modelCalls,
      generatedTokens: r.stats.generatedTokens,
      seconds: r.stats.seconds,
    };
  } finally {
    draft?.dispose();
    model.dispose();
  }
}
