import { describeValue } from "../util/checks.js";
import type { ModelConfig } from "../model/config.js";
import { auxFeatures, auxFeatureCount } from "../ptp/auxiliary.js";
import type { SlotInputKind } from "../ptp/files/ptp-file-parts.js";
import type { PickFeedbackKind, Variant } from "../ptp/student-weights.js";
import { draftSampling } from "../ptp/decode/decoder.js";
import { DECODER_DEFAULTS } from "../ptp/decode/defaults.js";
import { argmax } from "../sampling/pick.js";
import { sampleToken } from "../sampling/sampler.js";
import type { SamplingSettings } from "../sampling/processors.js";
import { addEmbeddingRows, anchorEmbedding, concatRows, crossEntropy, embedding, featureEmbedding, klDivergence, replaceRows, sliceRows, Tensor, type Tape } from "./autograd/index.js";
import { forwardRows, head, layerStack, runExtraBlocks, type ConstantContext, type GraphWeights } from "./graph.js";
import type { TrainableDraft, TrainableSlots, TrainableStudent } from "./student-params.js";

/**
 * PTP training windows (method section 3.2) laid out as the rows of one
 * student pass over a sequence, exactly as the decoders lay out a proposal:
 * the slot of window w that predicts t_k (k = s_w + j) sits at position
 * k - 1, sees the sequence's keys before s_w (the teacher's KV, a constant)
 * and its own window's slots 0..j, and takes
 *   O-PTP: embed(u_k);   C-PTP: embed(u_{k-1}), or the start vector at j = 0;
 * a hybrid model's slot 0 also adds the embedding of t_{s_w - 1}, the token
 * at its position (the last context token), and stands in for that token's
 * row: the window's slots see the context before it, [0, s_w - 1).
 *
 * A query student's slot 0 is the teacher's own row at s_w - 1 (the same
 * keys and values as the context row there, the teacher's distribution as
 * output, nothing to train), so it has no row here: slots 1 .. L-1 see the
 * context [0, s_w), whose last row is exactly that slot 0.
 */
export interface WindowRows {
  /** Slots per window. */
  L: number;
  /** The first slot that has a row: 1 for query students (slot 0 is the teacher's row), else 0. */
  first: number;
  starts: readonly number[];
  positions: Int32Array;
  /** Per row: [0, s_w) of the context, then the window's slots 0..j. */
  visible: Int32Array;
  /** The u each row's input embeds (unused for C-PTP's first slot). */
  inputU: Float32Array;
  /** C-PTP: rows whose input is the start vector. */
  takeStart: Uint8Array;
  /** Per row: the token at its position for a window's first slot (hybrid input), -1 for the others. */
  lastToken: Int32Array;
  /**
   * Per row: for slot j >= 1 of a query layout, t_{s_w+j-1}, the token the
   * data has before the row's target, which a student with pick feedback
   * reads (slot 1 only, or every slot with "chain"): the call's pick of the
   * slot before whenever the slots before it are right, which is the only
   * case in which the row's draft counts. -1 for the others and past the
   * sequence end (weight 0).
   */
  pickBefore: Int32Array;
  /** The token each row predicts, its u, and its loss weight (gamma^j; 0 past the sequence end). */
  targets: Int32Array;
  targetU: Float32Array;
  weights: Float32Array;
  /** How many context keys the rows need (max s_w). */
  contextLength: number;
}

/**
 * The rows of windows of L slots starting at `starts` over a sequence of
 * `tokens` with u's `us` (us[k] is the u of position k). Slots past the end
 * of the sequence get weight 0 and u = 0.5 (their outputs are never read).
 */
export function windowRows(variant: Variant, tokens: ArrayLike<number>, us: Float32Array, starts: readonly number[], L: number, gamma = 1, slotInput: SlotInputKind = "aux"): WindowRows {
  // Checked here, not where a bad value first shows (a u of 1.5 trained in silence; a short us read NaN rows later).
  if (variant !== "O" && variant !== "C") throw new RangeError(`windowRows: variant must be "O" or "C", got ${describeValue(variant)}`);
  if (!(Number.isInteger(L) && L >= 1)) throw new RangeError(`windowRows: L (slots per window) must be a positive integer, got ${describeValue(L)}`);
  if (!(us instanceof Float32Array) || us.length < tokens.length) throw new RangeError(`windowRows: us must be a Float32Array with a u for each of the ${tokens.length} tokens, got ${us instanceof Float32Array ? `${us.length} u's` : describeValue(us)}`);
  for (let k = 0; k < tokens.length; k++) {
    const t = tokens[k],
      u = us[k];
    if (!(Number.isInteger(t) && t >= 0)) throw new RangeError(`windowRows: tokens[${k}] must be a token id (an integer >= 0), got ${describeValue(t)}`);
    if (!(u >= 0 && u < 1)) throw new RangeError(`windowRows: us[${k}] must be a u in [0, 1), got ${describeValue(u)}`);
  }
  if (slotInput === "query" && variant !== "C") throw new RangeError(`windowRows: query slot input needs C-PTP, got ${variant}-PTP`);
  const first = slotInput === "query" ? 1 : 0,
    hybrid = slotInput === "hybrid";
  const Lw = L - first,
    W = starts.length,
    R = W * Lw,
    n = tokens.length;
  const rows: WindowRows = {
    L,
    first,
    starts,
    positions: new Int32Array(R),
    visible: new Int32Array(4 * R),
    inputU: new Float32Array(R),
    takeStart: new Uint8Array(R),
    lastToken: new Int32Array(R).fill(-1),
    pickBefore: new Int32Array(R).fill(-1),
    targets: new Int32Array(R),
    targetU: new Float32Array(R),
    weights: new Float32Array(R),
    // A loop, not Math.max(...starts): very many windows overflowed the call stack with its arguments.
    contextLength: starts.reduce((m, s) => Math.max(m, s), -Infinity),
  };
  const C = rows.contextLength;
  starts.forEach((s, w) => {
    if (!(Number.isInteger(s) && s >= 1 && s < n)) throw new RangeError(`windowRows: window start ${s} must be in [1, ${n - 1}] (a context token before it, a target at it)`);
    for (let j = first; j < L; j++) {
      const r = w * Lw + j - first,
        k = s + j,
        inside = k < n;
      const u = (i: number) => (i < n ? us[i] : 0.5);
      rows.positions[r] = k - 1;
      rows.visible.set([0, hybrid ? s - 1 : s, C + w * Lw, C + r + 1], 4 * r);
      rows.targets[r] = inside ? tokens[k] : 0;
      rows.targetU[r] = u(k);
      rows.weights[r] = inside ? gamma ** (j - first) : 0;
      if (j === 0 && hybrid) rows.lastToken[r] = tokens[s - 1];
      if (j >= 1 && first === 1 && inside) rows.pickBefore[r] = tokens[k - 1];
      if (variant === "O") rows.inputU[r] = u(k);
      else if (j === 0) rows.takeStart[r] = 1;
      else rows.inputU[r] = u(k - 1);
    }
  });
  return rows;
}

/**
 * The slot input rows [R, dim]: the auxiliary embedding of each row's u (or
 * the start vector), plus for hybrid models the embedding of each window's
 * last known token from `tokenTable` (the teacher's, or a draft model's own).
 */
export function slotInputs(tape: Tape, slots: TrainableSlots, rows: WindowRows, dim: number, tokenTable: Tensor): Tensor {
  const cfg = slots.aux,
    t = slots.tensors,
    R = rows.inputU.length;
  let x: Tensor;
  if (cfg.kind === "anchors") x = anchorEmbedding(tape, t.anchors!, rows.inputU);
  else {
    const F = auxFeatureCount(cfg),
      feats = new Uint8Array(R * F);
    for (let r = 0; r < R; r++) feats.set(auxFeatures(rows.inputU[r], cfg), r * F);
    x = featureEmbedding(tape, t.weight!, t.bias!, feats);
  }
  if (x.cols !== dim) throw new RangeError(`slotInputs: the aux embedding gives ${x.cols} values per row, the model needs ${dim}`);
  if (slots.start) x = replaceRows(tape, x, slots.start, rows.takeStart);
  return slots.input === "hybrid" ? addEmbeddingRows(tape, x, tokenTable, rows.lastToken) : x;
}

/**
 * The student's logits [R, vocab] for the window rows, against the teacher's
 * KV of the sequence: the teacher's layers with the gated LoRA (none for a
 * draft head, StudentConfig.draftHead), then the student's extra blocks (against the context's final hidden states; with
 * pick feedback a slot first reads the pick before it, fedPicks), then the
 * teacher's final norm and classifier.
 */
export function studentLogits(tape: Tape, teacher: ModelConfig, weights: GraphWeights, st: TrainableStudent, context: ConstantContext, rows: WindowRows): Tensor {
  const C = rows.contextLength;
  if (context.length < C) throw new RangeError(`studentLogits: windows need ${C} context rows, the teacher KV has ${context.length}`);
  const x = slotInputs(tape, st.slots, rows, teacher.dim, weights.tokenEmbedding);
  const input = { x, positions: rows.positions, visible: rows.visible, context: { ...context, length: C } };
  // A draft head's slot rows skip the teacher's layers: the extra blocks read their input directly.
  let hidden = st.student.config.draftHead ? x : layerStack(tape, teacher, weights, input, st.lora);
  if (!st.extra) return head(tape, teacher, weights, hidden);
  if (!context.hidden || context.hidden.length < C * teacher.dim) throw new RangeError(`studentLogits: a student with extra blocks needs the final hidden states of ${C} context rows (teacherContext with hidden)`);
  const contextHidden = Tensor.constant(context.hidden.subarray(0, C * teacher.dim), [C, teacher.dim]);
  // Pick feedback (spec/ptp.md 2.5): slot 1, or with "chain" every slot, reads the pick before it, before the extra blocks.
  if (st.feedback) hidden = addEmbeddingRows(tape, hidden, st.feedback, fedPicks(rows, st.student.config.pickFeedback!));
  return head(tape, teacher, weights, runExtraBlocks(tape, teacher, st.extra, hidden, input, contextHidden));
}

/** The token each window row reads through pick feedback of this kind (WindowRows.pickBefore), -1 for none. */
export function fedPicks(rows: WindowRows, kind: PickFeedbackKind): Int32Array {
  // Row r of a window is slot first + r mod (L - first).
  const perWindow = rows.L - rows.first;
  return kind === "chain" ? rows.pickBefore : rows.pickBefore.map((t, r) => (rows.first + (r % perWindow) === 1 ? t : -1));
}

/**
 * A standalone draft model's logits for the window rows: it has no teacher
 * KV, so its own transformer runs the context tokens (causal) and the slots
 * in one graph, the slots after the context exactly as in `windowRows`.
 * Returns the slot rows' logits [R, vocab] and every row's for the caller.
 */
export function draftLogits(tape: Tape, d: TrainableDraft, tokens: ArrayLike<number>, rows: WindowRows): Tensor {
  const cfg = d.draft.config.model,
    C = rows.contextLength,
    R = rows.positions.length;
  const ids = Int32Array.from({ length: C }, (_, i) => tokens[i]);
  const x = concatRows(tape, embedding(tape, d.weights.tokenEmbedding, ids), slotInputs(tape, d.slots, rows, cfg.dim, d.weights.tokenEmbedding));
  const positions = new Int32Array(C + R),
    visible = new Int32Array(4 * (C + R));
  for (let i = 0; i < C; i++) {
    positions[i] = i;
    visible.set([0, i + 1, 0, 0], 4 * i);
  }
  positions.set(rows.positions, C);
  visible.set(rows.visible, 4 * C);
  const all = forwardRows(tape, cfg, d.weights, { x, positions, visible });
  return sliceRows(tape, all, C, C + R);
}

/** The window losses: ce (cross-entropy on the sampled tokens), kl and rkl (C-PTP: KL or reverse KL to the teacher). */
export const LOSSES = ["ce", "kl", "rkl"] as const;
/** Which PTP loss (method section 3.3). */
export type LossKind = (typeof LOSSES)[number];

/**
 * The window loss: cross-entropy on the sampled tokens (O-PTP: own u seen;
 * C-PTP: own u withheld, on logits / T), or for C-PTP KL / reverse KL to the
 * teacher's distributions `teacherLogits` [R, vocab] (the teacher's logits at
 * each row's position). Weighted by gamma^j through rows.weights.
 */
export function windowLoss(tape: Tape, variant: Variant, logits: Tensor, rows: WindowRows, kind: LossKind, temperature: number, teacherLogits?: Float32Array): Tensor {
  const invTemp = variant === "C" && temperature > 0 ? 1 / temperature : 1;
  if (kind === "ce") return crossEntropy(tape, logits, rows.targets, rows.weights, invTemp);
  if (variant !== "C") throw new RangeError(`loss "${kind}" matches the teacher's distribution, which only a C-PTP student predicts; use "ce" for O-PTP`);
  if (!teacherLogits) throw new RangeError(`loss "${kind}" needs the teacher's logits`);
  return klDivergence(tape, logits, teacherLogits, rows.weights, invTemp, kind === "kl" ? "forward" : "reverse");
}

export interface WindowMetrics {
  /** Per window: the length of the prefix where the student's token equals the target. */
  correct: number[];
  /** Per window: min(#correct + 1, number of valid slots). */
  accepted: number[];
}

/**
 * #correct and #accepted of each window: the student's token is argmax
 * (O-PTP) or Pick(u_k, P(logits)) under the sampling settings (C-PTP), with
 * slots j >= 1 at `draftTemperatureScale` x T, as the decoders draft it
 * (drafter in ptp/decode/decoder.ts).
 */
export function windowMetrics(variant: Variant, logits: Float32Array, rows: WindowRows, vocab: number, sampling: SamplingSettings, draftTemperatureScale: number = DECODER_DEFAULTS.draftTemperatureScale): WindowMetrics {
  const correct: number[] = [],
    accepted: number[] = [];
  // A query student's slot 0 (no row) is the teacher's own pick: always correct.
  const Lw = rows.L - rows.first;
  for (let w = 0; w < rows.starts.length; w++) {
    let c = 0,
      valid = 0;
    for (let j = 0; j < Lw; j++) if (rows.weights[w * Lw + j] > 0) valid++;
    for (; c < valid; c++) {
      const r = w * Lw + c,
        row = logits.subarray(r * vocab, (r + 1) * vocab);
      // A diverged step's non-finite logits (the loop skips such a step) make the slot wrong, not an error.
      if (variant === "C" && !row.every(Number.isFinite)) break;
      const t = variant === "O" ? argmax(row) : sampleToken(row, draftSampling(sampling, rows.first + c, draftTemperatureScale), rows.targetU[r]);
      if (t !== rows.targets[r]) break;
    }
    correct.push(rows.first + c);
    accepted.push(Math.min(rows.first + c + 1, rows.first + valid));
  }
  return { correct, accepted };
}
