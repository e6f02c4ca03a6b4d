import type { Backend, Buffer } from "../backends/backend.js";
import type { ModelConfig } from "../model/config.js";
import { uploadArray } from "../model/device-weights.js";
import type { KVCache } from "../model/kv-cache.js";
import { RunState } from "../model/run-state.js";
import { Transformer, type TransformerOptions } from "../model/transformer.js";
import { checkCheckpoint, type Checkpoint, type ModelWeights } from "../model/weights.js";
import { checkInteger, describeValue } from "../util/checks.js";
import { checkObject, checkOptionKeys } from "../util/options.js";
import { finalStateKeysValues } from "./extra-blocks.js";
import { auxMetadata, auxSlots, checkAuxWeights, checkSlots, fieldFail, parseAux } from "./files/ptp-file-parts.js";
import { addTokenRow, slotInput } from "./ptp-model.js";
import type { AuxEmbeddingConfig, AuxEmbeddingWeights, Student } from "./student-weights.js";

/**
 * A draft head (StudentConfig.draftHead, spec/ptp.md 2.6) as a model of its
 * own beside the teacher: the student's extra blocks, with a final norm and
 * classifier, run on their own keys and values.
 *
 * - Every row the teacher verified gives each head block keys and values
 *   projected from its FINAL teacher hidden state h (ingest):
 *   K = RoPE(rmsnorm(P h) Wk_e^T), V = rmsnorm(P h) Wv_e^T, with P the
 *   bridge from the teacher's width to the head's (the identity when they
 *   are equal, as for a student trained on its teacher).
 * - A slot row (one per draft, one after another) starts from the
 *   auxiliary embedding of u and the feedback table's row for the token
 *   before it, runs the head's blocks over those keys and values and its
 *   own earlier slots, and gives logits through the head's final norm and
 *   classifier.
 *
 * The head's blocks and classifier are all a draft reads, so where the
 * teacher is large a draft costs a small fraction of a teacher call. The
 * head only proposes: the teacher verifies every draft.
 */
export interface DraftHeadSpec {
  /**
   * The head as a small transformer: layers = the extra blocks, token
   * table = the pick-feedback table (never read as an input id: a slot adds
   * its row to the slot input), final norm and classifier. Its vocabulary is
   * the teacher's.
   */
  model: Checkpoint;
  /** [head dim, teacher dim]: the map from the teacher's final hidden state to the head's width; absent: the identity (equal widths). */
  bridge?: Float32Array;
  /** The teacher's width (the rows `ingest` reads). */
  teacherDim: number;
  aux: AuxEmbeddingConfig;
  auxWeights: AuxEmbeddingWeights;
}

/**
 * The head of a draft-head student of a teacher of config `t`: the extra blocks,
 * the feedback table, and the teacher's final norm and classifier, which the
 * student's slots use (spec/ptp.md 2.6).
 */
export function draftHeadOf(student: Student, t: ModelConfig, teacher: Pick<ModelWeights, "rmsFinal" | "wcls">): DraftHeadSpec {
  if (student === null || typeof student !== "object" || student.config === null || typeof student.config !== "object" || student.weights === null || typeof student.weights !== "object") {
    throw new TypeError(`draftHeadOf: student must be a Student { config, weights } (readStudent, randomStudent), got ${describeValue(student)}`);
  }
  checkObject(t, "draftHeadOf", "t", "the teacher's ModelConfig");
  checkObject(teacher, "draftHeadOf", "teacher", "the teacher's weights { rmsFinal, wcls }");
  const { config, weights } = student;
  if (!config.draftHead) throw new Error("draftHeadOf: the student is not a draft head (StudentConfig.draftHead)");
  if (!weights.extra?.length || !weights.feedback) throw new Error("draftHeadOf: a draft head needs its extra blocks and its feedback table");
  return {
    model: {
      config: { ...t, nLayers: weights.extra.length, sharedClassifier: false },
      weights: { tokenEmbedding: weights.feedback, layers: weights.extra, rmsFinal: teacher.rmsFinal, wcls: teacher.wcls },
    },
    teacherDim: t.dim,
    aux: config.aux,
    auxWeights: weights.aux,
  };
}

/** The keys of DraftHeadSpec; another is a typo (a misspelt bridge would leave a wide head without one). */
const DRAFT_HEAD_SPEC_KEYS: readonly (keyof DraftHeadSpec)[] = ["model", "bridge", "teacherDim", "aux", "auxWeights"];

/**
 * Throws, naming `where` and `name`, unless `spec` is a DraftHeadSpec: its
 * known keys only, a Checkpoint for its model, a positive teacherDim, and
 * an auxiliary embedding whose config is valid (as a file's would be) and
 * whose weights have the tensors of that kind at the head's width. The
 * bridge and the widths are the DraftHead constructor's to check.
 */
export function checkDraftHeadSpec(spec: unknown, where: string, name = "spec"): asserts spec is DraftHeadSpec {
  const s = checkObject(spec, where, name, "a DraftHeadSpec { model, teacherDim, aux, auxWeights, bridge? } (draftHeadOf, widenDraftHead)");
  checkOptionKeys(s, where, DRAFT_HEAD_SPEC_KEYS, name);
  checkCheckpoint(s.model, where, `${name}.model`);
  checkInteger(s.teacherDim, where, `${name}.teacherDim`, 1);
  const aux = checkOptionKeys(checkObject(s.aux, where, `${name}.aux`, 'an auxiliary embedding config such as { kind: "bits" }'), where, ["kind", "digits"], `${name}.aux`);
  if (typeof aux.kind !== "string") throw new TypeError(`${where}: ${name}.aux.kind must be a string, got ${describeValue(aux.kind)}`);
  if (aux.digits !== undefined && typeof aux.digits !== "number") throw new TypeError(`${where}: ${name}.aux.digits must be a number when given, got ${describeValue(aux.digits)}`);
  const auxWeights = checkObject(s.auxWeights, where, `${name}.auxWeights`, "the auxiliary embedding's weights { weight, bias } or { anchors }");
  // A head's slots are C-PTP rows without a start vector (the token before each comes from the feedback table).
  const config = { variant: "C" as const, aux: parseAux(auxMetadata({ variant: "C", aux: aux as unknown as AuxEmbeddingConfig, window: 1 }), fieldFail(where, { aux_kind: `${name}.aux.kind`, aux_digits: `${name}.aux.digits` })), query: true };
  const fail = fieldFail(`${where}: ${name}`, {});
  const weights = { aux: auxWeights as AuxEmbeddingWeights };
  checkAuxWeights(config, weights, fail);
  checkSlots(auxSlots(config, (s.model as unknown as Checkpoint).config.dim), weights, fail);
}

export class DraftHead {
  /** The head's blocks, final norm and classifier (a slot row is a one-row call of it). */
  readonly transformer: Transformer;
  /** Per block, what ingest reads: the attention norm and the key and value projections. */
  private readonly blocks: { rmsAtt: Buffer; wk: Buffer; wv: Buffer }[];
  private readonly bridge?: Buffer;
  /** Scratch of ingest: the teacher's hidden rows, and the head-width activations. */
  private hidden: { length: number; buf: Buffer } | null = null;
  private readonly scratch: RunState;

  /**
   * @param options How the head's transformer runs, e.g. its classifier in
   * int8 beside an f32 teacher (TransformerOptions.classifierWeights): the
   * head only proposes, so that changes its drafts and speed, never the
   * output.
   */
  constructor(
    readonly backend: Backend,
    readonly spec: DraftHeadSpec,
    options: TransformerOptions = {},
  ) {
    checkDraftHeadSpec(spec, "DraftHead");
    const c = spec.model.config;
    if (spec.bridge !== undefined && !(spec.bridge instanceof Float32Array && spec.bridge.length === c.dim * spec.teacherDim)) {
      throw new TypeError(`draft head: the bridge must be a Float32Array of ${c.dim} x ${spec.teacherDim} values (head dim x teacher dim)`);
    }
    if (spec.bridge === undefined && c.dim !== spec.teacherDim) throw new TypeError(`draft head: its width ${c.dim} differs from the teacher's ${spec.teacherDim}, so it needs a bridge`);
    this.transformer = new Transformer(backend, spec.model, options);
    this.blocks = spec.model.weights.layers.map((w) => ({ rmsAtt: uploadArray(backend, w.rmsAtt), wk: uploadArray(backend, w.wk), wv: uploadArray(backend, w.wv) }));
    if (spec.bridge) this.bridge = uploadArray(backend, spec.bridge);
    this.scratch = new RunState(backend, c);
  }

  get config(): ModelConfig {
    return this.transformer.config;
  }

  /** A new, empty KV cache of the head (one layer per block). */
  newCache(capacity?: number): KVCache {
    return this.transformer.newCache(capacity);
  }

  /**
   * Appends to `cache` the keys and values of rows whose final teacher
   * hidden states are `hidden` [rows, teacher dim], at `positions` (after
   * the rows already there, in position order).
   */
  ingest(cache: KVCache, hidden: Float32Array, positions: ArrayLike<number>): void {
    const rows = positions.length,
      D = this.spec.teacherDim;
    if (hidden.length !== rows * D) throw new RangeError(`draft head: ingest needs ${rows} x ${D} hidden values, got ${hidden.length}`);
    if (rows === 0) return;
    const b = this.backend,
      c = this.config,
      s = this.scratch;
    cache.ensureRoom(rows);
    s.prepare({ positions: Array.from(positions) }, 0, rows);
    const h = this.reserve(rows * D);
    b.upload(h, hidden);
    if (this.bridge) b.matmul(s.x, h, this.bridge, rows, D, c.dim);
    else b.copy(s.x, 0, h, 0, rows * D);
    finalStateKeysValues(b, c, this.blocks, s, cache, 0, cache.length, rows);
    cache.commit(positions);
  }

  /**
   * The logits [vocab] of one slot row at `position`, after the rows in
   * `cache` (which it sees, and which it joins): its input is the auxiliary
   * embedding of `previousU` (C-PTP withholds the slot's own u) plus the
   * feedback table's row for `tokenBefore`, the token at its position.
   * With `into` (vocab long) the logits are written there, not to a new
   * array (Transformer.forwardInto): a decoder drafting slot after slot
   * allocates nothing.
   */
  slot(cache: KVCache, position: number, previousU: number, tokenBefore: number, into?: Float32Array): Float32Array {
    const c = this.config;
    const x = slotInput({ variant: "C", aux: this.spec.aux, auxWeights: this.spec.auxWeights, dim: c.dim }, Number.NaN, previousU);
    addTokenRow(x, this.spec.model.weights.tokenEmbedding, tokenBefore, c.dim);
    const block = { tokens: [-1], positions: [position], embeddings: x };
    return into ? this.transformer.forwardInto(into, block, cache) : this.transformer.forward(block, cache);
  }

  private reserve(n: number): Buffer {
    if (this.hidden && this.hidden.length >= n) return this.hidden.buf;
    const length = Math.max(n, 2 * (this.hidden?.length ?? 0));
    // The new buffer first: should the allocation fail (out of memory), the old one is still there, not freed and still referenced.
    const buf = this.backend.alloc(length);
    if (this.hidden) this.backend.free(this.hidden.buf);
    this.hidden = { length, buf };
    return buf;
  }

  dispose(): void {
    this.transformer.dispose();
    for (const w of this.blocks) for (const buf of Object.values(w)) this.backend.free(buf);
    this.blocks.length = 0;
    if (this.bridge) this.backend.free(this.bridge);
    if (this.hidden) this.backend.free(this.hidden.buf);
    this.hidden = null;
    this.scratch.release();
  }
}
