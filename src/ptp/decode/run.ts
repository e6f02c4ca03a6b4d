import type { AuxSource } from "../../sampling/aux.js";
import { callCost } from "./call-cost.js";
import type { SamplingSettings } from "../../sampling/processors.js";
import { validateSamplingSettings } from "../../sampling/processors.js";
import { checkAuxSource } from "../../sampling/aux.js";
import { checkTokens, describeValue } from "../../util/checks.js";
import { needsU } from "../../sampling/sampler.js";
import { checkOptionalBoolean, checkOptionalFunction, checkOptionKeys } from "../../util/options.js";
import { DraftModel } from "../draft-model.js";
import { PtpModel } from "../ptp-model.js";
import { UStream } from "../../sampling/ustream.js";
import type { KVCache } from "../../model/kv-cache.js";
import { commit, ReusedLogits, runCall, survivors } from "./call.js";
import { draftConfidence, drafter, type Decoder } from "./decoder.js";
import { arDecoder } from "./decoders/ar.js";
import { draftVerifyDecoder } from "./decoders/draft-verify.js";
import { headVerifyDecoder } from "./decoders/head-verify.js";
import { multiDraftDecoder } from "./decoders/multi-draft.js";
import { selfDecoder } from "./decoders/self.js";
import { singleCallDecoder } from "./decoders/single-call.js";
import { verifyDecoder } from "./decoders/verify.js";
import { runSteps, runToEnd } from "./decode-ar.js";
import { decoderGoesWith, decoderSettings, proposerDecoders, runnerUpCount, type DecoderOptions, type DecoderSettings, type ProposerKind } from "./defaults.js";
import { Sequence } from "./sequence.js";

/** The decoders `decode` and `ptp generate --decoder` take: ar (the reference) and the PTP decoders, all equal to ar for the same u's. */
export const DECODERS = ["ar", "verify", "single-call", "self", "multi-draft"] as const;
export type DecoderName = (typeof DECODERS)[number];

/** What decode runs: the decoder, its settings (DecoderOptions: window, budget, drafts, ...), and the prompts' sampling and u's. */
export interface DecodeOptions extends DecoderOptions {
  decoder: DecoderName;
  /** Positions to run per prompt, the prompt included (an integer; <= 0 or > seqLen: seqLen), as llama2.c counts them. */
  steps: number;
  /** Read once, when the decode starts (a callback changing the object changes nothing). */
  sampling: SamplingSettings;
  /**
   * One source of u's per prompt, each its own object (one source given for
   * two prompts would split its u's between them, so neither output would be
   * its prompt's AR path: refused); u's are indexed by output position.
   * Optional at temperature 0, as in decodeAR: greedy picks use no u, and a
   * student's slot inputs then read u = 0.5 (as past the end of a finite
   * source, spec/ptp.md 1).
   */
  aux?: AuxSource[];
  /**
   * A standalone draft model (draft-model.ts) proposing the drafts instead of
   * the student: decoder "verify" only. Its calls count in modelCalls.
   */
  draft?: DraftModel;
  /** Stop a sequence when it produces BOS (default true). */
  stopAtBos?: boolean;
  /**
   * Called once per prompt when it finishes, with the KV cache and the rows
   * holding that prompt's verified tokens (in position order), before they
   * are released. For inspection and tests: a callback that changes the
   * cache (crop, keep, free, a forward call on it) is an error.
   */
  onFinished?: (prompt: number, cache: KVCache, rows: number[]) => void;
  /** Called after every model call with each prompt's tokens so far, prompt included (e.g. to stream the text). */
  onCall?: (tokens: readonly (readonly number[])[]) => void;
}

/** What a decode measured, over all its prompts. */
export interface PtpStats {
  /** Forward calls made (each teacher call shared by every prompt still decoding), a draft model's calls included. */
  modelCalls: number;
  generatedTokens: number;
  seconds: number;
  tokensPerSecond: number;
  /** Tokens finalized per verification step, averaged (the paper's "accepted per call"). */
  meanAccepted: number;
  /** histogram[a] = number of steps that finalized a tokens. */
  acceptedHistogram: number[];
}

/** A decode's outputs (prompt then generated tokens, per prompt) and its statistics. */
export interface PtpResult {
  /** Per prompt: the prompt tokens followed by what was generated. */
  outputs: number[][];
  /**
   * Per prompt: how many tokens each verification step finalized, in order
   * (sums to that prompt's generated tokens), for showing accepted chunks.
   */
  chunks: number[][];
  stats: PtpStats;
}

/** A proposer's decoders for a message: "verify", or "verify" (or "ar"). */
function decoderList(kind: ProposerKind): string {
  const [first, ...rest] = proposerDecoders(kind) ?? [];
  return `${JSON.stringify(first)}${rest.length > 0 ? ` (or ${rest.map((d) => JSON.stringify(d)).join(", ")})` : ""}`;
}

/** The decoder of a name, configured for this model. */
export function makeDecoder(model: PtpModel, options: DecodeOptions): Decoder {
  checkOptions(options);
  const { window, budget, budgetMode, drafts, draftTemperatureScale, runnerUps, draftStop } = settingsOf(model, options);
  if (options.draft) {
    if (!decoderGoesWith("draft", options.decoder)) throw new RangeError(`decode: a draft model works with decoder ${decoderList("draft")} only, got ${JSON.stringify(options.decoder)}`);
    return draftVerifyDecoder(options.draft, window, drafter(options.draft, draftTemperatureScale));
  }
  const toDraft = drafter(model, draftTemperatureScale);
  if (model.head && !decoderGoesWith("draft-head", options.decoder)) throw new RangeError(`decode: a draft-head student drafts beside the teacher, with decoder ${decoderList("draft-head")}, got ${JSON.stringify(options.decoder)}`);
  if (model.head && options.decoder === "verify") {
    const head = model.head.transformer;
    const confidence = draftConfidence(model, draftTemperatureScale, (logits, token, t) => head.tokenProbability(logits, token, t));
    return headVerifyDecoder(model.teacher, model.head, window, toDraft, confidence, draftStop === "auto" ? callCost(model.teacher, window) : draftStop);
  }
  switch (options.decoder) {
    case "ar":
      return arDecoder;
    case "verify":
      return verifyDecoder(model, window, toDraft, runnerUps);
    case "single-call": {
      if (!Number.isInteger(budget) || budget < 1) throw new RangeError(`decode: budget must be a positive integer, got ${budget}`);
      return singleCallDecoder(model, window, budget, budgetMode, toDraft, runnerUps);
    }
    case "self":
      return selfDecoder(model, window, toDraft);
    case "multi-draft":
      return multiDraftDecoder(model, window, drafts, toDraft);
    default:
      throw new RangeError(`decode: unknown decoder ${JSON.stringify(options.decoder)}; expected one of ${DECODERS.join(", ")}`);
  }
}

/** The keys of DecodeOptions (decodeWith's too, where decoder is not read); another (widnow, stopAtBOS) is a typo that would be ignored. */
const DECODE_OPTIONS: readonly (keyof DecodeOptions)[] = ["decoder", "steps", "sampling", "aux", "draft", "stopAtBos", "onFinished", "onCall", "window", "budget", "budgetMode", "drafts", "draftTemperatureScale", "runnerUps", "draftStop"];

/** The options object, its keys, flags, callbacks and draft model, checked before anything reads them (once per call). */
function checkOptions(options: unknown, where = "decode"): asserts options is object {
  const o = checkOptionKeys(options, where, DECODE_OPTIONS);
  const { draft } = o;
  if (draft !== undefined && !(draft instanceof DraftModel)) {
    throw new TypeError(`${where}: draft must be a DraftModel (new DraftModel(teacher, readDraft(path))), got ${describeValue(draft)}`);
  }
  checkOptionalBoolean(o.stopAtBos, where, "stopAtBos");
  checkOptionalFunction(o.onFinished, where, "onFinished");
  checkOptionalFunction(o.onCall, where, "onCall");
}

/** The decoder settings of these options on this model (DECODER_DEFAULTS where they and the proposer say nothing). */
export function settingsOf(model: PtpModel, options: Pick<DecodeOptions, "window" | "draft" | "budget" | "budgetMode" | "drafts" | "draftTemperatureScale" | "runnerUps" | "draftStop"> & { decoder?: DecoderName }): DecoderSettings {
  return decoderSettings({
    ...options,
    draftWindow: options.draft?.window,
    studentWindow: model.student?.config.window,
    studentDraftHead: model.student?.config.draftHead === true,
    decoder: options.decoder,
    proposerVariant: options.draft?.variant ?? model.student?.config.variant,
    proposerFeedback: options.draft ? undefined : model.student?.config.pickFeedback,
  });
}

/**
 * KV cache rows a decode of `prompts` prompts needs: room for every
 * prompt's tokens plus the most rows one call can add per prompt (pending +
 * drafts + slots + verify's runner-up rows: at most steps + 1 + the
 * proposal rows). For memory estimates before a run, and the decode itself.
 * `vocabSize` caps the runner-ups per draft (a draft has at most
 * vocabSize - 1 of them).
 */
export function decodeCacheRows(prompts: number, steps: number, window: number, options: Pick<DecodeOptions, "drafts" | "budget" | "runnerUps">, vocabSize = Number.POSITIVE_INFINITY): number {
  const { budget, drafts } = decoderSettings({ ...options, window });
  // verify reads up to R runner-ups of each of its window - 1 drafts (single-call's come out of its budget).
  const runnerUpRows = window * Math.min(runnerUpCount(options.runnerUps) ?? 0, vocabSize - 1);
  const perCall = window * (drafts + 2) + budget + 1 + runnerUpRows;
  return prompts * (steps + 1 + perCall);
}

/** The decode's KV cache, or an error naming the options that sized it when the backend cannot hold it. */
function newDecodeCache(model: PtpModel, rows: number, options: Omit<DecodeOptions, "decoder">) {
  try {
    return model.newCache(rows);
  } catch (e) {
    const given = (["window", "budget", "drafts", "runnerUps"] as const).filter((k) => options[k] !== undefined).map((k) => `${k} ${String(options[k])}`);
    throw new RangeError(`decode: a KV cache of ${rows} rows (prompts x (steps + 1 + the rows one call can add${given.length > 0 ? `, from ${given.join(", ")}` : ""})) does not fit: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/**
 * Decode several prompts together: every call carries the rows of every
 * prompt still running, each with its own cache rows and u's (masks keep
 * them apart). The output of each prompt is exactly its autoregressive
 * sample path for its u's, whatever the decoder and the student.
 */
export function decode(model: PtpModel, prompts: readonly ArrayLike<number>[], options: DecodeOptions): PtpResult {
  // The options, prompts, steps and u sources before the decoder is built (so their errors come first).
  checkRun(model, prompts, options);
  // The built-in decoders read each call's logits in accept and keep tokens only: one array serves every call.
  return runToEnd(decodeLoop(model, prompts, makeDecoder(model, options), options, new ReusedLogits()));
}

/**
 * Checks what a decode is given, naming the option: prompts (each an
 * array-like of token ids in [0, vocabSize)), steps, one u source per
 * prompt, the sampling settings. Returns the prompts as arrays and the
 * positions to run.
 */
function checkRun(model: PtpModel, prompts: unknown, options: Omit<DecodeOptions, "decoder">, where = "decode"): { prompts: number[][]; steps: number; aux: AuxSource[]; sampling: SamplingSettings } {
  if (!(model instanceof PtpModel)) throw new TypeError(`${where}: model must be a PtpModel (new PtpModel(teacher, student?)), got ${describeValue(model)}`);
  checkOptions(options, where);
  checkLive(model, options.draft, where);
  if (!Array.isArray(prompts)) throw new TypeError(`${where}: prompts must be an array of prompts (each an array of token ids), got ${describeValue(prompts)}`);
  if (prompts.length === 0) throw new RangeError(`${where}: no prompts`);
  const { seqLen, vocabSize } = model.teacher.config;
  const checked = prompts.map((p, i) => checkTokens(p, vocabSize, where, `prompt ${i}`));
  const steps = runSteps(options.steps, seqLen, where);
  validateSamplingSettings(options.sampling);
  // A copy: a callback changing the caller's object mid-run would change the path (or sample with the greedy run's stand-in u's).
  const sampling = { ...options.sampling };
  const { aux } = options;
  // Greedy picks use no u (decodeAR asks for none either): a student's slot inputs read 0.5, as past the end of a finite source.
  if (aux === undefined && !needsU(sampling)) return { prompts: checked, steps, aux: checked.map(() => NO_US), sampling };
  if (!Array.isArray(aux)) throw new TypeError(`${where}: aux must be an array with one source of u's per prompt (e.g. prompts.map((_, i) => new XorShiftAux(seed + i)); optional at temperature 0), got ${describeValue(aux)}`);
  if (aux.length !== prompts.length) throw new RangeError(`${where}: ${prompts.length} prompts need ${prompts.length} u sources, got ${aux.length}`);
  const seen = new Map<AuxSource, number>();
  aux.forEach((a, i) => {
    checkAuxSource(a, `${where}: aux[${i}]`);
    const first = seen.get(a);
    if (first !== undefined) throw new RangeError(`${where}: aux[${first}] and aux[${i}] are the same object; each prompt needs a source of its own (their u's would be split between the prompts, so neither output would be its prompt's AR sample path)`);
    seen.set(a, i);
  });
  return { prompts: checked, steps, aux, sampling };
}

/**
 * Throws, naming `where`, when the model, its teacher, its backend or the
 * draft model was disposed (before the decode, or by one of its callbacks:
 * checked before every call), instead of a backend's "buffer used after
 * free" or an error about the KV cache's size.
 */
function checkLive(model: PtpModel, draft: DraftModel | undefined, where: string, running = false): void {
  const dead = model.disposed
    ? "the model was disposed (PtpModel.dispose)"
    : model.teacher.disposed
      ? "the model's teacher was disposed (Transformer.dispose)"
      : model.teacher.backend.disposed
        ? "the model's backend was disposed (backend.dispose())"
        : draft?.disposed
          ? "the draft model was disposed (DraftModel.dispose)"
          : undefined;
  if (dead) throw new Error(`${where}: ${dead}${running ? " by a callback while the decode ran; a callback must not dispose what a running decode uses" : "; make a new one"}`);
}

/** Throws, naming `where`, when a callback changed the decode's KV cache (it held `rows` rows before it ran). */
function checkCacheUntouched(cache: KVCache, rows: number, callback: string, where: string): void {
  if (cache.length !== rows || cache.keys.length === 0) {
    throw new Error(`${where}: ${callback} changed the decode's KV cache (${cache.keys.length === 0 ? "freed it" : `it held ${rows} rows, now ${cache.length}`}); the cache a callback sees is for reading only (no crop, keep, free or forward call on it)`);
  }
}

/**
 * The u source of a prompt decoded greedily without one: no pick reads a u
 * at temperature 0, so only a student's slot inputs see these, 0.5 each
 * (what forStudent gives past the end of a finite source). Stateless, so
 * every prompt may share it.
 */
const NO_US: AuxSource = Object.freeze({ next: (): number => 0.5 });

/**
 * `decode` with a decoder object of your own (e.g. an experimental
 * strategy). Each call's logits are a fresh array, so the decoder may keep
 * `out`'s views after accept.
 */
export function decodeWith(model: PtpModel, promptsGiven: readonly ArrayLike<number>[], decoder: Decoder, options: Omit<DecodeOptions, "decoder">): PtpResult {
  checkDecoder(decoder);
  return runToEnd(decodeLoop(model, promptsGiven, decoder, options, undefined, "decodeWith"));
}

/**
 * decodeWith one model call at a time: a generator that yields after every
 * call and returns decodeWith's result, the same outputs (see
 * decodeARSteps). return() stops it early, its cache freed. The options are
 * checked at the first next().
 */
export function* decodeWithSteps(model: PtpModel, promptsGiven: readonly ArrayLike<number>[], decoder: Decoder, options: Omit<DecodeOptions, "decoder">): Generator<void, PtpResult, void> {
  checkDecoder(decoder);
  return yield* decodeLoop(model, promptsGiven, decoder, options, undefined, "decodeWith");
}

function checkDecoder(decoder: Decoder): void {
  if (typeof decoder !== "object" || decoder === null || typeof decoder.plan !== "function" || typeof decoder.accept !== "function") {
    throw new TypeError(`decodeWith: decoder must be a Decoder { name, plan(seq), accept(seq, group, out) }, got ${describeValue(decoder)}`);
  }
}

/** The decode loop, yielding after every model call; with `callLogits`, every call's logits go into that one array (its views die at the next call). */
function* decodeLoop(model: PtpModel, promptsGiven: readonly ArrayLike<number>[], decoder: Decoder, options: Omit<DecodeOptions, "decoder">, callLogits?: ReusedLogits, where = "decode"): Generator<void, PtpResult, void> {
  const { prompts, steps, aux, sampling } = checkRun(model, promptsGiven, options, where);
  const stopAtBos = options.stopAtBos ?? true;
  const sequences = prompts.map((p, i) => new Sequence(p, new UStream(aux[i], Math.min(p.length, steps + 1), `decode: aux[${i}]`), steps, sampling, stopAtBos));
  // Picks from the latest call's rows where its logits are (the teacher's, a draft model's or a draft head's).
  const transformers = [model.teacher, ...(options.draft ? [options.draft.transformer] : []), ...(model.head ? [model.head.transformer] : [])];
  const devicePick = (logits: Float32Array, settings: SamplingSettings, u: number, exclude?: readonly number[]) => {
    for (const t of transformers) {
      const token = t.pickRow(logits, settings, u, exclude);
      if (token !== undefined) return token;
    }
    return undefined;
  };
  for (const s of sequences) s.devicePick = devicePick;

  const start = performance.now();
  // Room for every prompt's tokens plus the most rows one call can add per prompt
  // (pending + drafts + slots: at most steps + 1 + the proposal rows).
  const cacheRows = decodeCacheRows(sequences.length, steps, settingsOf(model, options).window, options, model.teacher.config.vocabSize);
  const cache = newDecodeCache(model, cacheRows, options);
  let modelCalls = 0;
  const extraBefore = decoder.extraCalls?.() ?? 0;
  // The caches are freed however the decode ends (a u source or a callback that throws included).
  try {
    // Prompts longer than `steps` are never run (as in the reference): finished, with no cache rows.
    if (options.onFinished) sequences.forEach((s, i) => s.done && options.onFinished!(i, cache, []));
    checkCacheUntouched(cache, 0, "onFinished", where);
    for (;;) {
      const active = sequences.filter((s) => !s.done);
      if (active.length === 0) break;
      checkLive(model, options.draft, where, true);
      const groups = active.map((s) => decoder.plan(s));
      const firstRow = cache.length;
      const out = runCall(model, cache, groups, true, callLogits);
      modelCalls++;
      const keep = new Map(groups.map((g, i) => [g.seq, checkKept(decoder.accept(g.seq, g, out[i]), g.base.length, decoder.name, where)]));
      const rows = commit(firstRow, sequences, groups, keep);
      // A sequence that just finished: show its cache rows before they are dropped.
      if (options.onFinished) {
        const held = cache.length;
        for (const [seq, r] of rows) if (seq.done) options.onFinished(sequences.indexOf(seq), cache, r);
        checkCacheUntouched(cache, held, "onFinished", where);
      }
      cache.keep(survivors(sequences, rows));
      const held = cache.length;
      options.onCall?.(sequences.map((s) => s.tokens));
      checkCacheUntouched(cache, held, "onCall", where);
      yield;
    }
  } finally {
    cache.free();
    for (const s of sequences) if (!s.done) decoder.release?.(s);
  }
  // Calls on a model of the decoder's own (a draft model) count too.
  modelCalls += (decoder.extraCalls?.() ?? 0) - extraBefore;
  const seconds = (performance.now() - start) / 1000;

  const perStep = sequences.flatMap((s) => s.acceptedPerStep);
  const histogram: number[] = [];
  for (const a of perStep) histogram[a] = (histogram[a] ?? 0) + 1;
  const generatedTokens = sequences.reduce((n, s) => n + s.generated, 0);
  return {
    outputs: sequences.map((s) => s.tokens.slice()),
    chunks: sequences.map(chunksOf),
    stats: {
      modelCalls,
      generatedTokens,
      seconds,
      tokensPerSecond: generatedTokens / seconds,
      meanAccepted: perStep.length ? perStep.reduce((a, b) => a + b, 0) / perStep.length : 0,
      acceptedHistogram: Array.from(histogram, (v) => v ?? 0),
    },
  };
}

/**
 * What a decoder's accept returned, checked (a decoder of the user's, through decodeWith): the group-local base rows
 * to keep, strictly increasing integers in [0, base rows). Anything else would corrupt the cache's bookkeeping.
 */
function checkKept(keep: unknown, baseRows: number, decoder: string, where: string): number[] {
  const ok = Array.isArray(keep) && keep.every((r, i) => Number.isInteger(r) && r >= 0 && r < baseRows && (i === 0 || r > keep[i - 1]));
  if (!ok) throw new TypeError(`${where}: decoder ${JSON.stringify(decoder)}'s accept must return the base rows to keep, strictly increasing integers in [0, ${baseRows}), got ${describeValue(keep)}`);
  return keep as number[];
}

/**
 * A sequence's tokens per step, cut to what was appended: a step's verified
 * tokens past a BOS stop or the step limit were not kept, and a step that
 * kept none is left out.
 */
function chunksOf(seq: Sequence): number[] {
  const chunks: number[] = [];
  let left = seq.generated;
  for (const a of seq.acceptedPerStep) {
    const n = Math.min(a, left);
    if (n > 0) chunks.push(n);
    left -= n;
  }
  if (left > 0) chunks.push(left); // a step still open when the sequence ended
  return chunks;
}
