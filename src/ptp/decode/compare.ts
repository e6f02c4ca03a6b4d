/**
 * The one PTP-vs-AR harness: decode prompts with a PTP decoder, decode them
 * again autoregressively with the same u's, and report the first mismatch,
 * the accepted-tokens histogram, model calls, tokens/s of both and the
 * speedup. `ptp generate`, `ptp demo`, bench/ptp-eval.ts and the trainers'
 * evaluation (src/train/evaluate.ts, which skips the AR half) all run it.
 */
import { checkAuxSource, type AuxSource } from "../../sampling/aux.js";
import { checkPositiveInteger, describeValue } from "../../util/checks.js";
import { checkObject, checkOptionalFunction, checkOptionKeys } from "../../util/options.js";
import type { PtpModel } from "../ptp-model.js";
import type { Decoder } from "./decoder.js";
import { runToEnd } from "./decode-ar.js";
import { decodeWithSteps, makeDecoder, type DecodeOptions, type DecoderName, type PtpResult, type PtpStats } from "./run.js";

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
  for (const [name, batch] of [
    ["a", a],
    ["b", b],
  ] as const) {
    if (!Array.isArray(batch) || batch.some((s) => !Array.isArray(s) && !ArrayBuffer.isView(s))) throw new TypeError(`firstMismatch: ${name} must be an array of token sequences (arrays of ids), got ${describeValue(batch)}`);
  }
  // Batches of different sizes are not equal: the prompts only b held were never compared (it answered "equal").
  if (a.length !== b.length) throw new RangeError(`firstMismatch: the batches hold ${a.length} and ${b.length} sequences; compare batches of the same prompts`);
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
  /**
   * Prompt i's u's; called once per decode, so the AR half sees the same
   * u's: it must return a new source each call (the same object twice
   * would hand AR the u's PTP already drew: refused). Optional at
   * temperature 0, where no pick reads a u (see DecodeOptions.aux).
   */
  aux?: (prompt: number) => AuxSource;
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
  return (ps: readonly (readonly number[])[], aux: AuxSource[] | undefined): Generator<void, PtpResult, void> => {
    const options: DecodeOptions = { ...o.decode, aux };
    return decodeWithSteps(model, ps, (o.decoder ?? makeDecoder)(model, options), options);
  };
}

/** The keys of DecodeBatchesOptions and CompareOptions; another is a typo that would be ignored. */
const BATCH_OPTIONS: readonly (keyof DecodeBatchesOptions)[] = ["decode", "aux", "batch", "decoder", "onBatch"];
const COMPARE_OPTIONS: readonly (keyof CompareOptions)[] = [...BATCH_OPTIONS, "warmUp"];

/**
 * The options of decodeBatches and comparePtpAr, checked once per call:
 * an object of known keys, `decode` an object (its own keys decode checks)
 * without aux (given as the `aux` function here, it would be overwritten),
 * `aux` a function, the callbacks functions. Returns the u sources of a
 * batch (undefined: none given, decoding greedily) and the batch size.
 */
function checkBatchOptions(o: unknown, prompts: readonly unknown[], where: string, known: readonly string[]): { sources: (from: number, n: number) => AuxSource[] | undefined; batch: number } {
  const options = checkOptionKeys(o, where, known);
  const decode = checkObject(options.decode, where, "decode", "the decode options (DecodeOptions without aux: { decoder, steps, sampling, ... })");
  if (decode.aux !== undefined) throw new RangeError(`${where}: decode.aux is not read; give the u's as the aux option, a function of the prompt index returning a new source each call`);
  checkOptionalFunction(options.aux, where, "aux");
  checkOptionalFunction(options.decoder, where, "decoder");
  checkOptionalFunction(options.onBatch, where, "onBatch");
  if (!Array.isArray(prompts) || prompts.length === 0) throw new RangeError(`${where}: no prompts (prompts must be a non-empty array of token arrays)`);
  const batch = options.batch === undefined ? prompts.length : checkPositiveInteger(options.batch, where, "batch");
  const aux = options.aux as DecodeBatchesOptions["aux"];
  // Each source given must be new: the same one twice (to PTP and then AR, or to two prompts) would share its u's. Weak: nothing is kept alive.
  const given = new WeakMap<AuxSource, number>();
  const sourceOf = (i: number): AuxSource => {
    const source = aux!(i);
    checkAuxSource(source, `${where}: aux(${i})`);
    const before = given.get(source);
    if (before !== undefined) throw new RangeError(`${where}: aux(${i}) returned the same object as ${before === i ? "an earlier" : `aux(${before})`} call; it must return a new source each call (the AR decode would read the u's the PTP decode already drew)`);
    given.set(source, i);
    return source;
  };
  return { sources: (from, n) => (aux === undefined ? undefined : Array.from({ length: n }, (_, i) => sourceOf(from + i))), batch };
}

/** The PTP half alone: `prompts` decoded batch by batch on the u's of `o.aux`, stats summed (the trainers' evaluation). */
export function decodeBatches(model: PtpModel, prompts: readonly (readonly number[])[], o: DecodeBatchesOptions): PtpRun {
  const { batch, sources } = checkBatchOptions(o, prompts, "decodeBatches", BATCH_OPTIONS);
  return runToEnd(batchesOf(model, prompts, o, batch, sources, (b) => void o.onBatch?.(b)));
}

/** The batches decoded in turn, yielding after every model call; `afterBatch` runs after each (comparePtpAr's AR decode of it). */
function* batchesOf(
  model: PtpModel,
  prompts: readonly (readonly number[])[],
  o: Pick<DecodeBatchesOptions, "decode" | "decoder">,
  batch: number,
  sources: (from: number, n: number) => AuxSource[] | undefined,
  afterBatch: (b: { from: number; ptp: PtpResult }) => Generator<void, void, void> | void,
): Generator<void, PtpRun, void> {
  const ptpDecode = ptpDecoder(model, o);
  const total = new StatsSum();
  const outputs: number[][] = [];
  for (let from = 0; from < prompts.length; from += batch) {
    const slice = prompts.slice(from, from + batch);
    const ptp = yield* ptpDecode(slice, sources(from, slice.length));
    total.add(ptp.stats);
    outputs.push(...ptp.outputs);
    const more = afterBatch({ from, ptp });
    if (more) yield* more;
  }
  return { decoder: o.decode.decoder, stats: total.stats(), outputs };
}

/** Decode `prompts` with PTP and with AR on the same u's, batch by batch; see CompareOptions. */
export function comparePtpAr(model: PtpModel, prompts: readonly (readonly number[])[], o: CompareOptions): Comparison {
  return runToEnd(comparePtpArSteps(model, prompts, o));
}

/**
 * comparePtpAr one model call at a time: a generator that yields after
 * every call (the warm-up's, PTP's and AR's) and returns comparePtpAr's
 * result (see decodeARSteps). return() stops it early; a batch is handed
 * to onBatch only once both of its decodes are done. The options are
 * checked at the first next().
 */
export function* comparePtpArSteps(model: PtpModel, prompts: readonly (readonly number[])[], o: CompareOptions): Generator<void, Comparison, void> {
  const { batch, sources } = checkBatchOptions(o, prompts, "comparePtpAr", COMPARE_OPTIONS);
  if (o.warmUp !== undefined && o.warmUp !== "ar" && o.warmUp !== "both") throw new RangeError(`comparePtpAr: warmUp must be "ar" or "both" (or left out), got ${describeValue(o.warmUp)}`);
  const ptpDecode = ptpDecoder(model, o);
  const arDecode = (ps: readonly (readonly number[])[], aux: AuxSource[] | undefined): Generator<void, PtpResult, void> => {
    const options: DecodeOptions = { steps: o.decode.steps, sampling: o.decode.sampling, stopAtBos: o.decode.stopAtBos, decoder: "ar", aux };
    return decodeWithSteps(model, ps, makeDecoder(model, options), options);
  };
  if (o.warmUp === "both") yield* ptpDecode([prompts[0]], sources(0, 1));
  if (o.warmUp !== undefined) yield* arDecode([prompts[0]], sources(0, 1));

  const arTotal = new StatsSum();
  let mismatch: Mismatch | undefined;
  const afterBatch = function* ({ from, ptp }: { from: number; ptp: PtpResult }): Generator<void, void, void> {
    const ar = yield* arDecode(prompts.slice(from, from + ptp.outputs.length), sources(from, ptp.outputs.length));
    arTotal.add(ar.stats);
    const m = firstMismatch(ptp.outputs, ar.outputs);
    if (m && !mismatch) mismatch = { ...m, prompt: from + m.prompt };
    o.onBatch?.({ from, ptp, ar, mismatch: m });
  };
  const run = yield* batchesOf(model, prompts, { decode: o.decode, decoder: o.decoder }, batch, sources, afterBatch);
  const ar = arTotal.stats();
  return { ...run, ar, speedup: run.stats.tokensPerSecond / ar.tokensPerSecond, mismatch, equalsAR: mismatch === undefined };
}
