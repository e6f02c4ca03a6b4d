import type { PickFeedbackKind, Variant } from "../student-weights.js";
import { chain, range, type BaseRow, type Group, type GroupLogits, type SlotRow } from "./call.js";
import { excluding, type Sequence } from "./sequence.js";
import { argmax } from "../../sampling/pick.js";
import { describeValue } from "../../util/checks.js";
import { MIN_TEMPERATURE, type SamplingSettings } from "../../sampling/processors.js";
import { needsU } from "../../sampling/sampler.js";

/**
 * A decoding strategy: what rows a sequence puts into the next call, and
 * what it does with their logits. The loop in run.ts drives any strategy,
 * for any number of sequences sharing each call. S is the strategy's
 * per-sequence state (drafts, phase, confidences), which it keeps itself
 * (sequenceState) and shows through `state`.
 */
export interface Decoder<S = unknown> {
  readonly name: string;
  /** The rows this sequence adds to the next call. */
  plan(seq: Sequence): Group;
  /**
   * Finalize what the call verified; return the group-local indices of the
   * base rows to keep in the KV cache (the verified tokens, in order).
   */
  accept(seq: Sequence, group: Group, out: GroupLogits): number[];
  /** This decoder's state for a sequence (absent for stateless decoders). */
  readonly state?: (seq: Sequence) => S;
  /**
   * Forward calls the decoder made on a model of its own (a standalone draft
   * model), so far; run.ts adds those made during a decode to its modelCalls.
   */
  extraCalls?(): number;
  /**
   * Frees what the decoder holds for a sequence that will never finish (a
   * decode ended by an error: a u source or a callback that threw); run.ts
   * calls it then.
   */
  release?(seq: Sequence): void;
}

/**
 * A decoder's typed per-sequence state: `init()` on a sequence's first use,
 * then the same object for that sequence (kept in a WeakMap, so a finished
 * sequence takes its state with it).
 */
export function sequenceState<S>(init: () => S): (seq: Sequence) => S {
  const states = new WeakMap<Sequence, S>();
  return (seq) => {
    let s = states.get(seq);
    if (s === undefined) states.set(seq, (s = init()));
    return s;
  };
}

/**
 * A decoder with per-sequence state from `init` (see sequenceState): its
 * `plan` gets the sequence's state and the base rows of its pending tokens
 * (from the first uncached position), its `accept` the state.
 */
export function stateDecoder<S>(
  name: string,
  init: () => S,
  parts: {
    plan(seq: Sequence, s: S, base: BaseRow[]): Group;
    accept(seq: Sequence, s: S, group: Group, out: GroupLogits): number[];
  },
): Decoder<S> {
  const state = sequenceState(init);
  return {
    name,
    state,
    plan: (seq) => parts.plan(seq, state(seq), chain(seq.pending, seq.cached)),
    accept: (seq, group, out) => parts.accept(seq, state(seq), group, out),
  };
}

/**
 * What proposes drafts from u's: a PtpModel with its student, or a
 * standalone draft model. Both build slot inputs with the shared rule.
 */
export interface SlotProposer {
  readonly variant: Variant;
  /** Hybrid slot input: a window's first slot embeds the last known token and stands in for that token's row. */
  readonly hybrid: boolean;
  /** Query slot input (C-PTP): a window's first slot is the model's own AR query on the last known token, a row that reads that token. */
  readonly query: boolean;
  /** Pick feedback (spec/ptp.md 2.5): slot 1 ("first") or every slot after slot 0 ("chain") reads the pick of the slot before it, made inside the call. */
  readonly pickFeedback?: PickFeedbackKind;
  slotInput(ownU: number, previousU: number | undefined, lastToken?: number): Float32Array;
}

/**
 * A decoder whose drafts come from a model beside the teacher (a standalone
 * draft model, a draft head): per step `propose` gives drafts for next,
 * next + 1, ..., one teacher call runs the pending tokens and the drafts,
 * and verifyDrafts keeps the longest right prefix plus the teacher's pick.
 * `kept` then sees the rows the call keeps (group-local: the pending rows
 * and the accepted drafts; the last verified token stays pending).
 */
export function besideTeacherDecoder<S extends { drafts?: number[] }>(state: (seq: Sequence) => S, propose: (seq: Sequence) => number[], kept: (seq: Sequence, keep: number[], group: Group, out: GroupLogits) => void, release?: (seq: Sequence) => void): Decoder<S> {
  return {
    name: "verify",
    state,
    release,
    plan(seq) {
      const drafts = propose(seq);
      state(seq).drafts = drafts;
      return { seq, base: [...chain(seq.pending, seq.cached), ...chain(drafts, seq.next)], slots: [] };
    },
    accept(seq, group, out) {
      const s = state(seq);
      const drafts = s.drafts ?? [];
      const P = group.base.length - drafts.length; // the pending rows come first
      const verified = verifyDrafts(seq, out.base, P, drafts);
      seq.finalize(verified);
      seq.acceptedPerStep.push(verified.length);
      s.drafts = [];
      const keep = range(0, P + verified.length - 1);
      kept(seq, keep, group, out);
      return keep;
    },
  };
}

/** A chain of drafts up to its first NO_DRAFT (drafts after a wrong one are never verified). */
export function usableDrafts(drafts: readonly number[]): number[] {
  const end = drafts.indexOf(NO_DRAFT);
  return end < 0 ? drafts.slice() : drafts.slice(0, end);
}

/**
 * Teacher verification (method section 4.1) of drafts fed as base rows right
 * after the sequence's P pending rows: the last pending row's logits give
 * the teacher's token for position `next`, draft i's row the one for
 * next + i + 1. Returns the longest prefix of drafts equal to the teacher's
 * picks, followed by the teacher's pick at the first mismatch (the
 * correction) or after the last draft (the bonus). Every returned token is
 * Pick(u(k), Q(. | verified prefix)), so the result is the teacher's own
 * sample path whatever the drafts were. `check` sees each row before its
 * pick (the self decoder's rows are the student's own, which it checks).
 */
export function verifyDrafts(seq: Sequence, base: Float32Array[], P: number, drafts: readonly number[], check?: (logits: Float32Array) => void): number[] {
  const verified: number[] = [];
  for (let i = 0; i <= drafts.length; i++) {
    check?.(base[P - 1 + i]);
    const t = seq.pickAt(seq.next + i, base[P - 1 + i]);
    verified.push(t);
    // A BOS that stops the sequence ends it: the pick after it would read a u AR never draws.
    if (i === drafts.length || drafts[i] !== t || seq.endsWith(t)) break;
  }
  return verified;
}

/**
 * The base row reading draft i's runner-up `token`, at the draft's position
 * next + i and seeing what the draft sees (the P pending rows and drafts
 * 0..i-1), as group-local base row `index`.
 */
export function runnerUpRow(token: number, next: number, P: number, i: number, index: number): BaseRow {
  return { token, position: next + i, sees: [...range(0, P + i), index] };
}

/**
 * After verifyDrafts rejected draft m = verified.length - 1: when the
 * teacher's token there is one of that draft's runner-ups (`candidates`)
 * whose row was in the call (`rowOf(c)` gives candidate c's logits, or
 * undefined for a candidate without a row), that row is the teacher's own
 * row at the position, so the teacher's pick from it (the token after) is
 * appended. Returns the matched candidate's index, or -1.
 */
export function takeRunnerUp(seq: Sequence, verified: number[], candidates: readonly number[], rowOf: (c: number) => Float32Array | undefined): number {
  const m = verified.length - 1;
  const c = candidates.indexOf(verified[m]);
  // A correction that stops the sequence (BOS) has no token after it (nor a u for one).
  const logits = c < 0 || seq.endsWith(verified[m]) ? undefined : rowOf(c);
  if (logits === undefined) return -1;
  verified.push(seq.pickAt(seq.next + m + 1, logits));
  return c;
}

/**
 * The slots of one proposal window predicting positions k0, k0+1, ...:
 * slot j sits at position k0 - 1 + j (where an AR model reads t_{k0-1+j}),
 * sees the base rows `base` and the window's slots 0..j, and takes the
 * auxiliary input for u(k0 + j) (see slotInput in ptp-model.ts). `lastToken`
 * is the token at position k0 - 1 (finalized, or a draft the window assumes
 * accepted), which a hybrid model's slot 0 embeds; slot 0 then stands in for
 * that token's row, so the window does not see it (the last of `base`, which
 * lists the base rows the window conditions on in position order). `first` is the
 * group-local index the window's first slot will have; `u` gives the u's
 * the window is built from (the sequence's own by default). A query
 * student's slot 0 is a row reading `lastToken` itself (see SlotRow).
 *
 * With pick feedback (spec/ptp.md 2.5) slot j reads, inside the call, the
 * draft `toDraft` makes of slot j - 1's logits with the window's u's: the
 * very draft the decoder reads from the call's output for that slot (the
 * same logits, bit for bit), so whenever the slots before j are right, slot
 * j reads the token the teacher's verification finalizes there. Slot 0's
 * draft is the plain Pick of the teacher's own row (a query student), i.e.
 * the teacher's token.
 */
export function proposalWindow(model: SlotProposer, seq: Sequence, k0: number, lastToken: number, count: number, base: number[], first: number, toDraft: Drafter, u: (k: number) => number = (k) => seq.u.forStudent(k)): SlotRow[] {
  const reads = (j: number) => j >= 1 && (model.pickFeedback === "chain" || (model.pickFeedback === "first" && j === 1));
  return range(0, count).map((j) => ({
    input: j === 0 && model.query ? lastToken : model.slotInput(u(k0 + j), j > 0 ? u(k0 + j - 1) : undefined, j === 0 ? lastToken : undefined),
    position: k0 - 1 + j,
    sees: [...(model.hybrid ? base.slice(0, -1) : base), ...range(first, first + j + 1)],
    ...(reads(j) ? { feedback: { from: first + j - 1, pick: (logits: Float32Array) => toDraft(seq, k0 + j - 1, j - 1, logits, u) } } : {}),
  }));
}

/** The draft of a slot whose logits hold NaN or +Infinity: no token, a wrong draft by definition. */
export const NO_DRAFT = -1;

/** Whether logits can give a draft: no NaN, no +Infinity (-Infinity is probability 0). */
export function finiteLogits(logits: ArrayLike<number>): boolean {
  // x * 0 is 0 for a finite x and NaN for NaN or either infinity: four independent sums of
  // those show in one pass, without a branch an element, that every value is finite (the
  // common case, about twice as fast as testing each value); only a row that holds a NaN
  // or an infinity is looked at value by value, since -Infinity is allowed.
  const n = logits.length;
  let s0 = 0,
    s1 = 0,
    s2 = 0,
    s3 = 0,
    i = 0;
  for (; i + 3 < n; i += 4) {
    s0 += logits[i] * 0;
    s1 += logits[i + 1] * 0;
    s2 += logits[i + 2] * 0;
    s3 += logits[i + 3] * 0;
  }
  for (; i < n; i++) s0 += logits[i] * 0;
  const s = s0 + s1 + s2 + s3;
  if (s === s) return true;
  for (let j = 0; j < n; j++) {
    const x = logits[j];
    if (x !== x || x === Infinity) return false;
  }
  return true;
}

/**
 * How a decoder turns a slot's logits into its draft for position k (slot
 * `slot` of its window): argmax for O-PTP (the ideal output is one-hot);
 * for C-PTP, Pick(u(k), Q) with Q the slot's distribution taken at
 * temperature `temperatureScale` x T (the sampling settings otherwise
 * unchanged); NO_DRAFT when the logits are not finite (a broken student
 * only costs speed: its drafts are rejected). At T = 0 every draft is the
 * argmax.
 *
 * Why a scale below 1: a student's Q is the teacher's next distribution
 * blurred by what one call cannot work out, and the inverse CDF in token-id
 * order turns that blur into shifted bins, so Pick(u, Q) often misses the
 * token whose teacher bin holds u even when Q's most likely token is right.
 * Picking from a sharpened Q keeps u's choice among the likely tokens and
 * drops the blur (docs/BENCHMARKS.md, "Sharpened drafts"). Scale 1 is the
 * method's plain Pick(u, Q). A window's slot 0 sees no u (C-PTP withholds
 * its own): it is the model's own next-token query (for a query student
 * the teacher's row itself), with no earlier pick to blur it, so its draft
 * is always the plain pick. Drafts are only proposals: whatever the scale,
 * verification makes the output the teacher's sample path.
 */
export type Drafter = (seq: Sequence, k: number, slot: number, logits: Float32Array, u?: (k: number) => number, exclude?: readonly number[]) => number;

export function drafter(model: SlotProposer, temperatureScale: number): Drafter {
  checkDraftTemperatureScale(temperatureScale);
  return (seq, k, slot, logits, u = (k) => seq.u.forStudent(k), exclude = []) => {
    if (!finiteLogits(logits)) return NO_DRAFT;
    if (model.variant === "O" || !needsU(seq.sampling)) return argmax(excluding(logits, exclude));
    return seq.sample(logits, u(k), draftSampling(seq.sampling, slot, temperatureScale), exclude);
  };
}

/**
 * The probability a proposer gives its own draft for position k (slot
 * `slot`): the draft's share of the distribution it was picked from,
 * softmax(logits / T) at the draft's temperature (drafter's rule; top-k and
 * top-p left aside), or at temperature 1 for an argmax draft. `probability`
 * computes it where the logits are (Transformer.tokenProbability). A
 * decoder that stops a window early (DecodeOptions.draftStop) multiplies
 * these along the window: an estimate of the chance that every draft so
 * far passes. Only how many drafts a call carries depends on it.
 */
export type DraftConfidence = (seq: Sequence, slot: number, logits: Float32Array, draft: number) => number;

export function draftConfidence(model: SlotProposer, temperatureScale: number, probability: (logits: Float32Array, token: number, temperature: number) => number): DraftConfidence {
  checkDraftTemperatureScale(temperatureScale);
  return (seq, slot, logits, draft) => {
    const sampled = model.variant === "C" && needsU(seq.sampling);
    return probability(logits, draft, sampled ? draftSampling(seq.sampling, slot, temperatureScale).temperature : 1);
  };
}

/**
 * A slot's runner-ups: up to `count` more drafts, each the one the same rule
 * makes once `draft` and the runner-ups before it are ruled out (their
 * logits taken as -Infinity, on the device where the logits are); fewer
 * when nothing else is left. Where the teacher rejects slot 1's draft of
 * the stories260K student, its own token is the first runner-up about a
 * fifth of the time, one of the first two 31 %, one of three 38 %
 * (bench/correction-candidates.ts).
 */
export function runnerUps(toDraft: Drafter, seq: Sequence, k: number, slot: number, logits: Float32Array, draft: number, count: number): number[] {
  const found: number[] = [];
  if (draft === NO_DRAFT || count <= 0) return found;
  const ruledOut = [draft];
  while (found.length < count) {
    if (!logits.some((x, t) => x > Number.NEGATIVE_INFINITY && !ruledOut.includes(t))) break;
    const next = toDraft(seq, k, slot, logits, undefined, ruledOut);
    if (next === NO_DRAFT) break;
    found.push(next);
    ruledOut.push(next);
  }
  return found;
}

/**
 * The sampling settings of a C-PTP slot's draft (T > 0): slot 0 at T, later
 * slots at `temperatureScale` x T (see drafter), but never below
 * MIN_TEMPERATURE: any T the sampler accepts gives drafts (a draft only
 * proposes; the output is the teacher's pick at T whatever it is).
 */
export function draftSampling(sampling: SamplingSettings, slot: number, temperatureScale: number): SamplingSettings {
  return slot === 0 || temperatureScale === 1 ? sampling : { ...sampling, temperature: Math.max(MIN_TEMPERATURE, sampling.temperature * temperatureScale) };
}

function checkDraftTemperatureScale(temperatureScale: number): void {
  if (!(typeof temperatureScale === "number" && temperatureScale > 0 && temperatureScale <= 1)) throw new RangeError(`decode: the draft temperature scale must be in (0, 1] (draftTemperatureScale, a number), got ${describeValue(temperatureScale)}`);
}
