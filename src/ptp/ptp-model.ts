import { INT_SHAPE_FIELDS } from "../model/config.js";
import type { Block } from "../model/block.js";
import type { KVCache } from "../model/kv-cache.js";
import type { RowAdapter } from "../model/linear.js";
import { Transformer, TRANSFORMER_OPTIONS, type TransformerOptions } from "../model/transformer.js";
import { WEIGHT_TYPES } from "../backends/backend.js";
import { checkInteger, describeValue } from "../util/checks.js";
import { assertValidU } from "../sampling/pick.js";
import { checkOptionKeys } from "../util/options.js";
import { embedAux } from "./auxiliary.js";
import { checkDraftHeadSpec, DraftHead, draftHeadOf, type DraftHeadSpec } from "./draft-head.js";
import { checkExtraBlocks, ExtraBlocks, type PickFeedback } from "./extra-blocks.js";
import { checkStudentData } from "./files/adapter-file.js";
import { GatedLora } from "./gated-lora.js";
import { checkStudent, type AuxEmbeddingConfig, type AuxEmbeddingWeights, type PickFeedbackKind, type Student, type Variant } from "./student-weights.js";

/** What a slot's input is made of: the variant, the auxiliary embedding and (C-PTP) the start vector. */
export interface SlotInputSource {
  variant: Variant;
  aux: AuxEmbeddingConfig;
  auxWeights: AuxEmbeddingWeights;
  /** C-PTP: the input of a window's first slot [dim]. */
  start?: Float32Array;
  dim: number;
  /** Hybrid slot input: a token's embedding row [dim], which a window's first slot adds (tableRow of the table, or the teacher's tokenEmbeddingRow). */
  hybridTokens?: (token: number) => Float32Array;
}

/**
 * The slot-input rule shared by every PTP model (the gated-LoRA student and
 * the standalone draft model): O-PTP: embed(u) of the slot's own u. C-PTP:
 * its own u is withheld, so the input is embed of the u before it, or the
 * start vector for the window's first slot (`previousU` undefined).
 *
 * Hybrid models (`hybridTokens` set) add to a window's first slot the token
 * embedding of `lastToken`, the token at the slot's position: the last
 * finalized token, or the draft a branch assumes accepted. The slot then
 * starts from what the teacher's own row there would read instead of
 * rebuilding it through attention alone.
 */
export function slotInput(src: SlotInputSource, ownU: number, previousU: number | undefined, lastToken?: number): Float32Array {
  const x = src.variant === "O" ? embedAux(ownU, src.aux, src.auxWeights, src.dim) : previousU === undefined ? src.start!.slice() : embedAux(previousU, src.aux, src.auxWeights, src.dim);
  if (src.hybridTokens && previousU === undefined) {
    if (lastToken === undefined) throw new Error("slotInput: a hybrid model's first slot needs the last known token");
    const row = src.hybridTokens(lastToken);
    for (let d = 0; d < src.dim; d++) x[d] += row[d];
  }
  return x;
}

/** A RangeError unless `token` is one of a vocabulary of `vocabSize` (a hybrid slot input's last token). */
export function checkSlotToken(token: number, vocabSize: number): void {
  if (!(Number.isInteger(token) && token >= 0 && token < vocabSize)) throw new RangeError(`slot input: token ${token} is outside the vocabulary`);
}

/** Row `token` [dim] of a table [vocab, dim] (a view), or a RangeError for a token outside it. */
export function tableRow(table: Float32Array, token: number, dim: number): Float32Array {
  checkSlotToken(token, Math.floor(table.length / dim));
  return table.subarray(token * dim, (token + 1) * dim);
}

/** x += table[token] (float32 sums, as the training graph adds them). */
export function addTokenRow(x: Float32Array, table: Float32Array, token: number, dim: number): void {
  const row = tableRow(table, token, dim);
  for (let d = 0; d < dim; d++) x[d] += row[d];
}

/**
 * A teacher with (optionally) its PTP student: the same transformer, with
 * gated LoRA switched on for the auxiliary-slot rows of a call. Context and
 * verification rows always run the teacher's exact weights, so one KV cache
 * serves both. A student with extra blocks (spec/ptp.md 2.4) runs them for
 * its slot rows after the teacher's layers; the cache then also holds their
 * keys and values (newCache).
 */
export class PtpModel {
  private readonly lora?: GatedLora;
  /** A draft-head student's head (StudentConfig.draftHead): it drafts beside the teacher, in calls of its own. */
  readonly head?: DraftHead;
  private readonly extra?: ExtraBlocks;
  /** What the teacher's forward calls: the gated LoRA, and the extra blocks after the teacher's layers. */
  private readonly adapter?: RowAdapter;
  /** The slots of the call in progress that read a pick (forward's `feedback`). */
  private feedback: readonly PickFeedback[] = [];
  private isDisposed = false;
  /** True once dispose() ran (the teacher is the caller's: it may still be in use). */
  get disposed(): boolean {
    return this.isDisposed;
  }

  /**
   * @param head Only for a draft-head student (StudentConfig.draftHead): the
   * head to draft with instead of draftHeadOf(student, teacher), e.g. the
   * narrow head widenDraftHead makes for a widened teacher; the student then
   * only says how to decode (its window and variant), and the head must fit
   * this teacher.
   * @param headOptions How a draft head's transformer runs (e.g. its
   * classifier in int8: TransformerOptions.classifierWeights); its drafts
   * decide only how many tokens a call keeps, never which. Checked always
   * (keys and values); without a draft head there is nothing they apply to
   * and they are ignored, so the options a DraftModel takes can be passed
   * here alike (the CLI and measureSpeedup do).
   */
  constructor(
    readonly teacher: Transformer,
    readonly student?: Student,
    head?: DraftHeadSpec,
    headOptions: TransformerOptions = {},
  ) {
    if (!(teacher instanceof Transformer)) throw new TypeError(`PtpModel: teacher must be a Transformer, got ${describeValue(teacher)}`);
    if (teacher.disposed) throw new Error("PtpModel: the teacher was disposed (Transformer.dispose); make a new Transformer");
    if (student !== undefined) checkStudent(student, "PtpModel");
    checkHeadOptions(headOptions);
    if (head !== undefined && !student?.config.draftHead) throw new Error("PtpModel: a draft head goes with a draft-head student (StudentConfig.draftHead)");
    if (head !== undefined) checkDraftHeadSpec(head, "PtpModel", "head");
    if (student) {
      const t = teacher.config,
        s = student.config.teacherShape;
      const diff = INT_SHAPE_FIELDS.filter((k) => t[k] !== s[k]);
      if (diff.length > 0 && head === undefined) {
        throw new Error(`PtpModel: the student was made for a teacher with ${diff.map((k) => `${k} ${s[k]}`).join(", ")} but the model has ${diff.map((k) => `${k} ${t[k]}`).join(", ")}`);
      }
      const E = student.config.extraBlocks ?? 0;
      if ((student.weights.extra?.length ?? 0) !== E) throw new Error(`PtpModel: the student's config has ${E} extra blocks but its weights have ${student.weights.extra?.length ?? 0}`);
      if (Array.isArray(student.weights.extra)) checkExtraBlocks(s, student.weights.extra, "PtpModel");
      checkPickFeedback(student);
      // The rest of the config and every weight's shape, as a file's would be: a rank 0 or a variant "X" would fail only at decode, in the backend.
      checkStudentData(student, "PtpModel", true);
      if (student.config.draftHead) {
        // The slots never run in the teacher's call: the head drafts beside it (decoder verify).
        const spec = head ?? draftHeadOf(student, t, { rmsFinal: teacher.finalNormTable, wcls: teacher.classifierTable });
        if (spec.teacherDim !== t.dim || spec.model.config.vocabSize !== t.vocabSize) {
          throw new Error(`PtpModel: the draft head reads a teacher of dim ${spec.teacherDim} and vocab ${spec.model.config.vocabSize}, but the model has dim ${t.dim} and vocab ${t.vocabSize}`);
        }
        this.head = new DraftHead(teacher.backend, spec, headOptions);
        return;
      }
      const lora = new GatedLora(teacher.backend, t, student.config, student.weights);
      this.lora = lora;
      if (E > 0) {
        const extra = new ExtraBlocks(teacher.backend, t, student.weights.extra!, student.config.pickFeedback ? student.weights.feedback : undefined);
        this.extra = extra;
        this.adapter = { apply: (l, n, y, x, M) => lora.apply(l, n, y, x, M), afterLayers: (run) => extra.run(run, lora.slotRows(run.M), this.feedback) };
      } else this.adapter = lora;
    }
  }

  /** A new, empty KV cache for this model: the teacher's layers, and the student's extra blocks if it has them. */
  newCache(capacity: number = this.teacher.config.seqLen): KVCache {
    this.alive("newCache");
    // The teacher's own cache (the student runs in its calls), so the teacher accepts it.
    return this.teacher.newCache(capacity, this.teacher.config.nLayers + (this.extra?.count ?? 0));
  }

  get variant(): Variant {
    return this.requireStudent().config.variant;
  }

  /** Whether the student's slot 0 embeds the last known token (and stands in for its row). */
  get hybrid(): boolean {
    return this.student?.config.hybrid === true;
  }

  /** Which slots of a window read a pick made in the call (StudentConfig.pickFeedback, spec/ptp.md 2.5); undefined for none. */
  get pickFeedback(): PickFeedbackKind | undefined {
    return this.student?.config.pickFeedback;
  }

  /** Whether a window's first slot is the teacher's own AR query (C-PTP, StudentConfig.query). */
  get query(): boolean {
    return this.student?.config.query === true;
  }

  /**
   * Forward a block whose last `slots` rows are auxiliary slots (gated LoRA
   * on); every earlier row runs the teacher, and so does a slot row that
   * reads a token (a query student's first slot). `feedback` lists the slot
   * rows that read a pick (pick feedback, spec/ptp.md 2.5). With `into`,
   * the logits are written there (Transformer.forwardInto), not to a new
   * array. `slots` must be an integer from 0 to the block's rows (a
   * RangeError otherwise, before anything runs).
   */
  forward(block: Block, cache: KVCache, slots: number, feedback: readonly PickFeedback[] = [], into?: Float32Array): Float32Array {
    this.alive("forward");
    checkSlotCount(slots, block);
    if (!Array.isArray(feedback)) throw new TypeError(`PtpModel.forward: feedback must be an array of the slot rows that read a pick, got ${describeValue(feedback)}`);
    if (this.head && slots > 0) throw new Error("PtpModel.forward: a draft-head student's slots run in its head, not in the teacher's call (decoder verify)");
    const run = (adapter?: RowAdapter) => (into ? this.teacher.forwardInto(into, block, cache, adapter) : this.teacher.forward(block, cache, adapter));
    if (!this.lora) {
      if (slots > 0) this.requireStudent();
      return run();
    }
    if (feedback.length > 0 && this.pickFeedback === undefined) throw new Error("PtpModel.forward: the call feeds picks to slots, but the student has no pick feedback");
    // Without slots the LoRA touches no row, but extra blocks still need the rows' keys and values.
    if (slots === 0) return run(this.extra ? this.adapter : undefined);
    const M = block.positions.length,
      tokens = block.tokens;
    this.lora.slotStart = M - slots;
    this.lora.teacherRows = tokens ? Uint8Array.from({ length: slots }, (_, j) => (tokens[M - slots + j] >= 0 ? 1 : 0)) : null;
    this.feedback = feedback;
    try {
      return run(this.adapter);
    } finally {
      this.lora.slotStart = Infinity;
      this.lora.teacherRows = null;
      this.feedback = [];
    }
  }

  /**
   * The input vector of a slot whose window sees the u's `us` (in window
   * order). O-PTP: embed(u) of the slot's own u, the last of `us`. C-PTP:
   * its own u is withheld, so the input is embed of the u before it, or the
   * learned start vector for the window's first slot; the mask then lets
   * slot j see slots <= j, which carry u's up to u_{j-1} only. A hybrid
   * student's first slot also embeds `lastToken` with the teacher's table.
   */
  slotInput(ownU: number, previousU: number | undefined, lastToken?: number): Float32Array {
    const { config, weights } = this.requireStudent();
    assertValidU(ownU, "PtpModel.slotInput: ownU");
    if (previousU !== undefined) assertValidU(previousU, "PtpModel.slotInput: previousU");
    if (config.query && previousU === undefined) throw new Error("slotInput: a query student's first slot has no input vector: it is a row reading the last known token (SlotRow.input = the token)");
    const vocab = this.teacher.config.vocabSize;
    const hybridTokens = config.hybrid ? (token: number) => (checkSlotToken(token, vocab), this.teacher.tokenEmbeddingRow(token)) : undefined;
    return slotInput({ variant: config.variant, aux: config.aux, auxWeights: weights.aux, start: weights.start, dim: this.teacher.config.dim, hybridTokens }, ownU, previousU, lastToken);
  }

  private requireStudent(): Student {
    if (!this.student) throw new Error("this decoder needs a PTP student (an adapter file), but the model has none");
    return this.student;
  }

  /** Throws, naming `op`, once the model is disposed (the student's buffers freed: the backend would say only "buffer used after free"). */
  private alive(op: string): void {
    if (this.isDisposed) throw new Error(`PtpModel.${op}: the model was disposed (dispose() freed the student's weights); make a new PtpModel`);
  }

  /** Free the student's buffers (not the teacher's); later calls are refused by name, and a second dispose does nothing. */
  dispose(): void {
    if (this.isDisposed) return;
    this.isDisposed = true;
    this.head?.dispose();
    this.lora?.dispose();
    this.extra?.dispose();
  }
}

/** Pick feedback needs a query student with extra blocks (its first pick is the teacher's, known once the teacher's layers ran) and a table [vocab, dim]. */
export function checkPickFeedback(student: Student): void {
  const c = student.config,
    w = student.weights;
  if (!c.pickFeedback) {
    if (w.feedback !== undefined) throw new Error("PtpModel: the student has a pick-feedback table but its config has no pick feedback");
    return;
  }
  if (!c.query) throw new Error("PtpModel: pick feedback needs a query student (slot_input query): only its first pick is known inside the call");
  if (!c.extraBlocks) throw new Error("PtpModel: pick feedback needs extra blocks: a pick is known only after the teacher's layers, which is where the extra blocks start");
  const n = c.teacherShape.vocabSize * c.teacherShape.dim;
  if (!(w.feedback instanceof Float32Array && w.feedback.length === n)) throw new Error(`PtpModel: the student's pick-feedback table must hold ${c.teacherShape.vocabSize} x ${c.teacherShape.dim} values (vocab x dim), got ${w.feedback instanceof Float32Array ? w.feedback.length : "none"}`);
}

/**
 * PtpModel's head options: an object of TransformerOptions keys whose
 * classifierWeights (if given) is a weight type, checked even where no head
 * reads them (a misspelt key or value would be ignored silently).
 */
function checkHeadOptions(options: unknown): void {
  const { classifierWeights } = checkOptionKeys(options, "PtpModel", TRANSFORMER_OPTIONS, "the head's options");
  if (classifierWeights !== undefined && !(WEIGHT_TYPES as readonly unknown[]).includes(classifierWeights)) {
    throw new RangeError(`PtpModel: the head's options.classifierWeights must be one of ${WEIGHT_TYPES.join(", ")}, got ${describeValue(classifierWeights)}`);
  }
}

/**
 * forward's `slots`: an integer from 0 to the block's rows (when the block
 * has them; a malformed block is the teacher's forward's to name), checked
 * before anything changes: a NaN once reached the scratch allocation.
 */
function checkSlotCount(slots: unknown, block: unknown): void {
  const positions = (block as { positions?: unknown } | null | undefined)?.positions;
  const rows = (positions as { length?: unknown } | null | undefined)?.length;
  checkInteger(slots, "PtpModel.forward", "slots", 0, typeof rows === "number" && Number.isSafeInteger(rows) ? rows : Number.MAX_SAFE_INTEGER);
}
