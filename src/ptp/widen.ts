import { headSize, type ModelConfig } from "../model/config.js";
import { LINEAR_NAMES, linearShape, type Checkpoint, type LayerWeights, type LinearName } from "../model/weights.js";
import type { DraftHeadSpec } from "./draft-head.js";
import type { Draft } from "./draft-model.js";
import type { AuxEmbeddingWeights, LayerLora, Student } from "./student-weights.js";
import { teacherChecksum } from "./files/teacher-checksum.js";

/**
 * Function-preserving widening: a teacher (and its PTP student) rebuilt at a
 * larger shape whose extra width, heads, hidden units, layers and vocabulary
 * contribute nothing, so the tokens (and the student's acceptance) stay
 * those of the original while every call costs what a model of the larger
 * shape costs. Used to measure where PTP's fewer calls become less wall-clock
 * time (bench/ptp-speedup.ts, `ptp demo --scale`); not a way to make a better
 * model.
 *
 * With D, H, L, V the original sizes and D', H', L', V' the new ones:
 * - the residual stream keeps the original D dims in 0 .. D-1; dim D (the
 *   "constant" dim) holds A = 2^-10 in every input row (token embeddings, the
 *   student's aux embeddings and start vector); the rest are 0;
 * - new query heads D/hs .. D'/hs-1 (the head size and the GQA group stay)
 *   and new hidden units have zero weights; every linear layer is the
 *   original in its top-left block and zero elsewhere, so new dims never
 *   feed original ones and stay 0 (dim D stays A);
 * - RMSNorm over D' dims: gains g sqrt(D / D') on the original dims, 0 on
 *   the new ones (1 on dim D in the final norm), eps' = eps D / D', so the
 *   original dims are normalised as before (up to A^2 / D added to the mean
 *   square: below 1e-7 relative);
 * - layers L .. L'-1 are all zero (the residual passes through unchanged);
 * - tokens V .. V'-1 have classifier rows -2^30 on dim D and 0 elsewhere:
 *   their logits are about -2^20 times the final norm's scale, so softmax
 *   gives them probability 0 and no decoder ever picks them.
 * The GQA group is kept, so with a grouped original the k and v projections
 * cost less than the named shape's (for stories260K, group 2: half).
 */

/** The constant of dim D in every input row. */
export const WIDEN_CONSTANT = 2 ** -10;
const EXTRA_LOGIT_WEIGHT = -(2 ** 30);

export interface WidenTarget {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  vocabSize: number;
}

/** The widened config (validates that the target can hold the original). */
export function widenedConfig(c: ModelConfig, t: WidenTarget): ModelConfig {
  const hs = headSize(c);
  const group = c.nHeads / c.nKvHeads;
  const fail = (why: string) => {
    throw new RangeError(`widen: cannot widen dim ${c.dim} (head size ${hs}, group ${group}) to dim ${t.dim}: ${why}`);
  };
  if (t.dim <= c.dim) fail("the new dim must exceed the old one (one dim carries the constant)");
  if (t.dim % hs !== 0) fail(`the new dim must be a multiple of the head size ${hs}`);
  const nHeads = t.dim / hs;
  if (nHeads % group !== 0) fail(`${nHeads} heads are not a multiple of the GQA group ${group}`);
  if (t.hiddenDim < c.hiddenDim || t.nLayers < c.nLayers || t.vocabSize < c.vocabSize) {
    throw new RangeError("widen: hiddenDim, nLayers and vocabSize may only grow");
  }
  return {
    dim: t.dim,
    hiddenDim: t.hiddenDim,
    nLayers: t.nLayers,
    nHeads,
    nKvHeads: nHeads / group,
    vocabSize: t.vocabSize,
    seqLen: c.seqLen,
    sharedClassifier: false,
    normEps: (c.normEps * c.dim) / t.dim,
    ropeTheta: c.ropeTheta,
  };
}

/** A [rows', cols'] matrix with `src` [rows, cols] in its top-left block. */
function block(src: Float32Array | undefined, rows: number, cols: number, rows2: number, cols2: number): Float32Array {
  const out = new Float32Array(rows2 * cols2);
  if (src) for (let r = 0; r < rows; r++) out.set(src.subarray(r * cols, (r + 1) * cols), r * cols2);
  return out;
}

function gains(g: Float32Array | undefined, D: number, D2: number, constant: number): Float32Array {
  const out = new Float32Array(D2);
  const s = Math.sqrt(D / D2);
  if (g) for (let i = 0; i < D; i++) out[i] = g[i] * s;
  out[D] = constant;
  return out;
}

/** The widened teacher: same tokens, the compute of the target shape. */
export function widenCheckpoint(ckpt: Checkpoint, t: WidenTarget): Checkpoint {
  const c = ckpt.config,
    w = ckpt.weights;
  const c2 = widenedConfig(c, t);
  const D = c.dim,
    D2 = c2.dim,
    V = c.vocabSize,
    V2 = c2.vocabSize;
  const tokenEmbedding = block(w.tokenEmbedding, V, D, V2, D2);
  for (let v = 0; v < V2; v++) tokenEmbedding[v * D2 + D] = WIDEN_CONSTANT;
  const wcls = block(w.wcls, V, D, V2, D2);
  for (let v = V; v < V2; v++) wcls[v * D2 + D] = EXTRA_LOGIT_WEIGHT;
  const layers = Array.from({ length: c2.nLayers }, (_, l) => widenLayer(l < c.nLayers ? w.layers[l] : undefined, c, c2));
  return { config: c2, weights: { tokenEmbedding, layers, rmsFinal: gains(w.rmsFinal, D, D2, 1), wcls } };
}

/** One block widened from config c to c2 (a zero block, which passes the residual through, for `src` undefined). */
function widenLayer(src: LayerWeights | undefined, c: ModelConfig, c2: ModelConfig): LayerWeights {
  const layer = { rmsAtt: gains(src?.rmsAtt, c.dim, c2.dim, 0), rmsFfn: gains(src?.rmsFfn, c.dim, c2.dim, 0) } as LayerWeights;
  for (const name of LINEAR_NAMES) {
    const [out, inp] = linearShape(c, name),
      [out2, inp2] = linearShape(c2, name);
    layer[name] = block(src?.[name], out, inp, out2, inp2);
  }
  return layer;
}

/** A dim-long vector widened to D' with the constant on dim D. */
function inputRow(v: Float32Array, D: number, D2: number): Float32Array {
  const out = new Float32Array(D2);
  out.set(v.subarray(0, D));
  out[D] = WIDEN_CONSTANT;
  return out;
}

/** The student of `teacher` for its widened copy `widened` (see widenCheckpoint). */
export function widenStudent(student: Student, teacher: Checkpoint, widened: Checkpoint): Student {
  const c = teacher.config,
    c2 = widened.config;
  const D = c.dim,
    D2 = c2.dim;
  const r = student.config.rank;
  const layers: LayerLora[] = [];
  for (let l = 0; l < c2.nLayers; l++) {
    const src = l < c.nLayers ? student.weights.layers[l] : undefined;
    const layer = {} as LayerLora;
    for (const name of LINEAR_NAMES as readonly LinearName[]) {
      const [out, inp] = linearShape(c, name),
        [out2, inp2] = linearShape(c2, name);
      // A [rank, in] gains zero columns, B [out, rank] zero rows.
      layer[name] = { A: block(src?.[name].A, r, inp, r, inp2), B: block(src?.[name].B, out, r, out2, r) };
    }
    layers.push(layer);
  }
  const { aux, start } = widenSlotInputs(student.weights, student.config.hybrid === true, D, D2);
  const { sharedClassifier, dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, seqLen } = c2;
  return {
    config: {
      ...student.config,
      teacherShape: { dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, seqLen, sharedClassifier },
      teacherChecksum: teacherChecksum(widened),
    },
    // Extra blocks read the final hidden state, which the widened teacher keeps in the original dims: they widen like its layers.
    // A pick-feedback row is added to a residual stream that carries the constant already: zero on the new tokens and dims.
    weights: {
      layers,
      aux,
      ...(start ? { start } : {}),
      ...(student.weights.extra ? { extra: student.weights.extra.map((l) => widenLayer(l, c, c2)) } : {}),
      ...(student.weights.feedback ? { feedback: block(student.weights.feedback, c.vocabSize, D, c2.vocabSize, D2) } : {}),
    },
  };
}

/**
 * The aux embedding and start vector of a student or draft, widened from D
 * to D2 dims: every slot input row gets the constant on dim D. A hybrid
 * model's first slot adds the start vector to a token embedding, which
 * carries the constant already, so its start vector gets 0 there.
 */
function widenSlotInputs(w: { aux: AuxEmbeddingWeights; start?: Float32Array }, hybrid: boolean, D: number, D2: number): { aux: AuxEmbeddingWeights; start?: Float32Array } {
  const aux: AuxEmbeddingWeights = {};
  if (w.aux.anchors) {
    aux.anchors = new Float32Array(3 * D2);
    for (let i = 0; i < 3; i++) aux.anchors.set(inputRow(w.aux.anchors.subarray(i * D, (i + 1) * D), D, D2), i * D2);
  }
  if (w.aux.weight) {
    const F = w.aux.weight.length / D;
    aux.weight = block(w.aux.weight, D, F, D2, F);
  }
  if (w.aux.bias) aux.bias = inputRow(w.aux.bias, D, D2);
  if (!w.start) return { aux };
  const start = inputRow(w.start, D, D2);
  if (hybrid) start[D] = 0;
  return { aux, start };
}

/**
 * A standalone draft model for a widened teacher `widened`: the draft keeps its own
 * size and only takes the widened teacher's vocabulary (a draft must share
 * it), for which it grows by the fewest dims that hold the constant (one
 * GQA group of heads). Its extra tokens get the teacher's treatment, so
 * they are never drafted; its tokens and acceptance stay the original's.
 * The draft's cost is then what a small draft of a large-vocabulary teacher
 * costs (its classifier over the whole vocabulary included).
 */
export function widenDraft(draft: Draft, widened: Checkpoint): Draft {
  const vocabSize = widened.config.vocabSize;
  const c = draft.config.model;
  const dim = c.dim + headSize(c) * (c.nHeads / c.nKvHeads);
  const wide = widenCheckpoint({ config: c, weights: draft.weights.model }, { dim, hiddenDim: c.hiddenDim, nLayers: c.nLayers, vocabSize });
  const { aux, start } = widenSlotInputs(draft.weights, draft.config.hybrid === true, c.dim, dim);
  return {
    config: { ...draft.config, model: wide.config, teacherVocabSize: vocabSize, teacherChecksum: teacherChecksum(widened) },
    weights: { model: wide.weights, aux, ...(start ? { start } : {}) },
  };
}

/**
 * A draft head (draft-head.ts) for a widened teacher `widened`: like a
 * standalone draft it keeps its own size, growing by one GQA group of
 * heads to hold the constant, and takes the widened vocabulary. Its bridge
 * reads the widened teacher's original dims and its constant dim (which
 * carries into the head's), so it drafts what it drafted for the original
 * teacher. A draft then costs what a small head over a large vocabulary
 * costs, not the teacher's width.
 */
export function widenDraftHead(head: DraftHeadSpec, widened: Checkpoint): DraftHeadSpec {
  const c = head.model.config,
    D = c.dim,
    Dt = head.teacherDim,
    Dt2 = widened.config.dim;
  const dim = D + headSize(c) * (c.nHeads / c.nKvHeads);
  const model = widenCheckpoint(head.model, { dim, hiddenDim: c.hiddenDim, nLayers: c.nLayers, vocabSize: widened.config.vocabSize });
  // The feedback table adds to a slot input that carries the constant already.
  for (let v = 0; v < model.config.vocabSize; v++) model.weights.tokenEmbedding[v * dim + D] = 0;
  const bridge = new Float32Array(dim * Dt2);
  for (let i = 0; i < D; i++) for (let j = 0; j < Dt; j++) bridge[i * Dt2 + j] = head.bridge ? head.bridge[i * Dt + j] : i === j ? 1 : 0;
  bridge[D * Dt2 + Dt] = 1;
  const { aux } = widenSlotInputs({ aux: head.auxWeights }, false, D, dim);
  return { ...head, model, bridge, teacherDim: Dt2, auxWeights: aux };
}

/** Widening targets with the compute of the published TinyStories shapes (vocab 32000). */
export const WIDEN_SHAPES: Record<string, WidenTarget> = {
  "15M": { dim: 288, hiddenDim: 768, nLayers: 6, vocabSize: 32000 },
  "42M": { dim: 512, hiddenDim: 1376, nLayers: 8, vocabSize: 32000 },
  "110M": { dim: 768, hiddenDim: 2048, nLayers: 12, vocabSize: 32000 },
};
