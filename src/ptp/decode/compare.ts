/**
 * The one PTP-vs-AR harness: decode prompts with a PTP decoder, decode them
 * again autoregressively with the same u's, and report the first mismatch,
 * the accepted-tokens histogram, model calls, tokens/s of both and the
 * speedup. `ptp generate`, `ptp demo`, bench/ptp-eval.ts and the trainers'
 * evaluation (src/train/evaluate.ts, which skips the AR half) all run it.
 */
import type { AuxSource } from "../../sampling/aux.js";
import { checkPositiveInteger } from "../../sampling/checks.js";
import type { PtpModel } from "../ptp-model.js";
import type { Decoder } from "./decoder.js";
import { decodeWith, makeDecoder, type DecodeOptions, type DecoderName, type PtpResult, type PtpStats } from "./run.js";

export { DECODER_DEFAULTS, decoderSettings, defaultDecoder, defaultDecoders, type DecoderSettings } from "./defaults.js";

/** Where two batches of outputs first differ: prompt index, position, and each side's token there (undefined: that output ended). */
export interface Mismatch {
  prompt: number;
  position: number;
  ptp?: number;
  ar?: number;
}

/** The first position where two batches of token sequences differ, or undefined if they are equal. */
export function firstMismatch(a: readonly (readonly number[])[], b: readonly (readonly number[])[]): Mismatch | undefined {
  for (let p = 0; p < a.length; p++) {
    const n = Math.max(a[p].length, b[p].length);
    for (let k = 0; k < n; k++) {
      if (a[p][k] !== b[p][k]) return { prompt: p, position: k, ptp: a[p][k], ar: b[p][k] };
    }
  }
  return undefined;
}

/** Stats of several decode() runs, summed: calls, tokens, time, the histogram (and the mean from it). */
export class StatsSum {
  private modelCalls = 0;
  private generatedTokens = 0;
  private seconds = 0;
  private histogram: number[] = [];

  add(s: PtpStats): void {
    this.modelCalls += s.modelCalls;
    this.generatedTokens += s.generatedTokens;
    this.seconds += s.seconds;
    s.acceptedHistogram.forEach((n, a) => (this.histogram[a] = (this.histogram[a] ?? 0) + n));
  }

  stats(): PtpStats {
    const steps = this.histogram.reduce((a, n) => a + (n ?? 0), 0);
    const accepted = this.histogram.reduce((a, n, k) => a + (n ?? 0) * k, 0);
    return {
      modelCalls: this.modelCalls,
      generatedTokens: this.generatedTokens,
      seconds: this.seconds,
      tokensPerSecond: this.generatedTokens / this.seconds,
      meanAccepted: steps > 0 ? accepted / steps : 0,
      acceptedHistogram: Array.from(this.histogram, (n) => n ?? 0),
    };
  }
}

export interface DecodeBatchesOptions {
  /** The PTP decode (the AR half of comparePtpAr uses its steps, sampling and stopAtBos). */
  decode: Omit<DecodeOptions, "aux">;
  /** Prompt i's u's; called once per decode, so the AR half sees the same u's. */
  aux: (prompt: number) => AuxSource;
  /** Prompts decoded together per call (default: all). */
  batch?: number;
  /** The PTP decoder to run (default: makeDecoder(model, options.decode)); e.g. one wrapped to log its drafts. */
  decoder?: (model: PtpModel, options: DecodeOptions) => Decoder;
  /** Called after each batch, in order, with the index of its first prompt. */
  onBatch?: (batch: { from: number; ptp: PtpResult }) => void;
}

export interface CompareOptions extends Omit<DecodeBatchesOptions, "onBatch"> {
  /**
   * Before the clock starts, decode prompt 0 once (JIT tiers, allocations):
   * "ar" with AR only, "both" with the PTP decoder and then AR (default: none).
   */
  warmUp?: "ar" | "both";
  /** Called after each batch, in order, with the index of its first prompt. */
  onBatch?: (batch: BatchComparison) => void;
}

/** One batch's results: the PTP decode, the AR decode and their first mismatch. */
export interface BatchComparison {
  from: number;
  ptp: PtpResult;
  ar: PtpResult;
  /** Prompt indices are the batch's (add `from` for the run's). */
  mismatch?: Mismatch;
}

/** Prompts decoded with one PTP decoder, batch by batch. */
export interface PtpRun {
  decoder: DecoderName;
  /** PTP stats summed over all prompts: calls, tokens, seconds, the accepted histogram and its mean. */
  stats: PtpStats;
  /** Every prompt's PTP output, in order. */
  outputs: number[][];
}

export interface Comparison extends PtpRun {
  /** AR stats summed likewise. */
  ar: PtpStats;
  /** PTP tokens/s over AR tokens/s. */
  speedup: number;
  /** The first mismatch over all prompts (prompt: the run's index). */
  mismatch?: Mismatch;
  /** Every output equals AR's. */
  equalsAR: boolean;
}

function ptpDecoder(model: PtpModel, o: Pick<DecodeBatchesOptions, "decode" | "decoder">) {
  return (ps: readonly (readonly number[])[], aux: AuxSource[]): PtpResult => {
    const options: DecodeOptions = { ...o.decode, aux };
    return decodeWith(model, ps, (o.decoder ?? makeDecoder)(model, options), options);
  };
}

/** Prompts per batch: the `batch` option (a positive integer), or all of them; there must be some. */
function batchSize(batch: unknown, prompts: readonly unknown[], where: string): number {
  if (!Array.isArray(prompts) || prompts.length === 0) throw new RangeError(`${where}: no prompts (prompts must be a non-empty array of token arrays)`);
  return batch === undefined ? prompts.length : checkPositiveInteger(batch, where, "batch");
}

/** The PTP half alone: `prompts` decoded batch by batch on the u's of `o.aux`, stats summed (the trainers' evaluation). */
export function decodeBatches(model: PtpModel, prompts: readonly (readonly number[])[], o: DecodeBatchesOptions): PtpRun {
  const batch = batchSize(o.batch, prompts, "decodeBatches");
  const ptpDecode = ptpDecoder(model, o);
  const total = new StatsSum();
  const outputs: number[][] = [];
  for (let from = 0; from < prompts.length; from += batch) {
    const slice = prompts.slice(from, from + batch);
    const ptp = ptpDecode(
      slice,
      slice.map((_, i) => o.aux(from + i)),
    );
    total.add(ptp.stats);
    outputs.push(...ptp.outputs);
    o.onBatch?.({ from, ptp });
  }
  return { decoder: o.decode.decoder, stats: total.stats(), outputs };
}

/** Decode `prompts` with PTP and with AR on the same u's, batch by batch; see CompareOptions. */
export function comparePtpAr(model: PtpModel, prompts: readonly (readonly number[])[], o: CompareOptions): Comparison {
  batchSize(o.batch, prompts, "comparePtpAr");
  const ptpDecode = ptpDecoder(model, o);
  const arDecode = (ps: readonly (readonly number[])[], aux: AuxSource[]): PtpResult => {
    const options: DecodeOptions = { steps: o.decode.steps, sampling: o.decode.sampling, stopAtBos: o.decode.stopAtBos, decoder: "ar", aux };
    return decodeWith(model, ps, makeDecoder(model, options), options);
  };
  if (o.warmUp === "both") ptpDecode([prompts[0]], [o.aux(0)]);
  if (o.warmUp !== undefined) arDecode([prompts[0]], [o.aux(0)]);

  const arTotal = new StatsSum();
  let mismatch: Mismatch | undefined;
  const run = decodeBatches(model, prompts, {
    decode: o.decode,
    aux: o.aux,
    batch: o.batch,
    decoder: o.decoder,
    onBatch: ({ from, ptp }) => {
      const ar = arDecode(
        prompts.slice(from, from + ptp.outputs.length),
        ptp.outputs.map((_, i) => o.aux(from + i)),
      );
      arTotal.add(ar.stats);
      const m = firstMismatch(ptp.outputs, ar.outputs);
      if (m && !mismatch) mismatch = { ...m, prompt: from + m.prompt };
      o.onBatch?.({ from, ptp, ar, mismatch: m });
    },
  });
  const ar = arTotal.stats();
  return { ...run, ar, speedup: run.stats.tokensPerSecond / ar.tokensPerSecond, mismatch, equalsAR: mismatch === undefined };
}
