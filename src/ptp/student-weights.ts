import { describeValue } from "../util/checks.js";
import type { Draft } from "./draft-model.js";
import type { ModelConfig } from "../model/config.js";
import type { LayerWeights, LinearName } from "../model/weights.js";

/**
 * The PTP student as data: which variant, the auxiliary embedding, and the
 * gated-LoRA adapters it adds to a frozen teacher. Stored in safetensors
 * files (src/ptp/files/adapter-file.ts); see spec/ptp.md.
 */

/**
 * How u enters the model (method section 2.1):
 * - "bits": the 32 IEEE-754 bits of float32 u (sign, exponent, mantissa;
 *   MSB first) -> linear (the paper's);
 * - "digits": the first B binary digits of u (digit i = floor(u 2^i) mod 2,
 *   i = 1..B) -> linear (the paper's toy-ablation winner);
 * - "anchors": linear interpolation between learned vectors at u = 0, 0.5, 1
 *   (the reference code's default).
 */
export type AuxKind = "bits" | "digits" | "anchors";

/** How u is embedded: its bits, its B decimal digits, or anchors (spec/ptp.md). */
export interface AuxEmbeddingConfig {
  kind: AuxKind;
  /** B, for "digits" (1..24). */
  digits?: number;
}

/** O-PTP: slot j sees u_s..u_{s+j} (predict by argmax). C-PTP: own u withheld (predict by Pick). */
export type Variant = "O" | "C";

/**
 * The range of a LoRA student's alpha, for every writer and reader (the
 * CLI's --alpha, student files, PEFT folders). The update is scaled by
 * alpha / rank (rank 1 .. 4096): at most 10^4 keeps an untrained student's
 * update (B uniform in +-0.02) within a few hundred times the teacher's
 * activations, so its forward stays finite in float32 (alpha 1e300 gave a
 * scale of ~1e299, far past float32's range); at least 10^-3 keeps the
 * update from vanishing (a scale below float32's range would make the
 * student the teacher, untrainably). PEFT's alphas are 8 to 2 x rank.
 */
export const MIN_ALPHA = 1e-3;
export const MAX_ALPHA = 1e4;
/** LoRA alpha when none is given: PEFT's `lora_alpha` default, which the reference code keeps. */
export const DEFAULT_ALPHA = 8;
/** A new student's or draft's window when none is given (randomStudent, randomDraft, random-student, random-draft). */
export const DEFAULT_STUDENT_WINDOW = 16;
/**
 * A new student's or draft model's slot input when none is given
 * (randomStudent, randomDraft and teacherDraft where neither `hybrid` nor
 * `query` is, and the CLI's --slot-input): hybrid, spec/ptp.md 2.2. Query is
 * no general default (C-PTP students with a window of 2 or more only).
 */
export const DEFAULT_SLOT_INPUT: "hybrid" | "aux" = "hybrid";

/** A student's shape and kind: everything its file's header stores besides the weights. */
export interface StudentConfig {
  variant: Variant;
  /** LoRA rank r. */
  rank: number;
  /** LoRA alpha; the update is scaled by alpha / r. */
  alpha: number;
  aux: AuxEmbeddingConfig;
  /** Window N: slots per proposal the student was built (trained) for. */
  window: number;
  /**
   * Hybrid slot input: a window's first slot also receives the token
   * embedding of the token at its position (the last known token), besides
   * embed(u). Absent or false: slots see only the auxiliary input.
   */
  hybrid?: boolean;
  /**
   * Query slot input (C-PTP only; implies `hybrid`): a window's first slot is
   * the teacher's own AR query on the last known token, i.e. a row that reads
   * that token with the teacher's weights (no start vector, gated LoRA off),
   * so its Pick is the teacher's token exactly and training goes to the
   * later slots. Such a student has no start vector.
   */
  query?: boolean;
  /**
   * Extra blocks E (absent: 0): Llama blocks of the teacher's shape, with
   * weights of their own, that the slot rows run after the teacher's layers
   * (spec/ptp.md 2.4). Every other row (context, verification, a query
   * slot) runs none of them; it gives them keys and values projected from
   * its final hidden state, so a slot sees the teacher's whole computation at
   * every earlier position, one call's depth ahead.
   */
  extraBlocks?: number;
  /**
   * Pick feedback (query students with extra blocks only; spec/ptp.md 2.5):
   * a slot adds, before the extra blocks, a learned vector for the pick of
   * the slot before it, made inside the call. "first": slot 1 reads
   * t_s = Pick(u_s, P_s), the window's first pick, which the call has
   * exactly once the teacher's layers have run on the query slot. "chain":
   * every slot j >= 1 reads the draft of slot j - 1, so the slots run the
   * extra blocks one after another (the teacher's layers stay one pass for
   * all). A slot then knows the token before it instead of inferring it
   * from the u's.
   */
  pickFeedback?: PickFeedbackKind;
  /**
   * Draft head (chained pick feedback only; spec/ptp.md 2.6): the slot rows
   * skip the teacher's layers (and so its LoRA) and go straight into the
   * extra blocks, from their slot input plus the feedback table's row for
   * the token before them. The extra blocks with the teacher's final norm
   * and classifier are then a small model of their own beside the teacher:
   * after each teacher call it drafts the next tokens one by one from the
   * final hidden states of the rows the call verified, and the next teacher
   * call verifies them (decoder "verify"). Its cost per draft is that of the
   * extra blocks, not of the teacher's layers.
   */
  draftHead?: boolean;
  /** The teacher it belongs to: its shape and a checksum of its weights (teacherChecksum). */
  teacherShape: Omit<ModelConfig, "normEps" | "ropeTheta">;
  teacherChecksum: string;
}

/** One LoRA adapter: delta W = (alpha / r) B A, A [rank, in], B [out, rank]. */
export interface LoraPair {
  A: Float32Array;
  B: Float32Array;
}

export type LayerLora = Record<LinearName, LoraPair>;

/**
 * Parameters of the auxiliary embedding, by kind:
 * - bits:    weight [dim, 32], bias [dim]
 * - digits:  weight [dim, B],  bias [dim]
 * - anchors: anchors [3, dim] (the vectors at u = 0, 0.5, 1)
 */
export interface AuxEmbeddingWeights {
  weight?: Float32Array;
  bias?: Float32Array;
  anchors?: Float32Array;
}

/** A student's own weights: the teacher's are not included (the student runs beside a teacher). */
export interface StudentWeights {
  layers: LayerLora[];
  aux: AuxEmbeddingWeights;
  /** C-PTP only: the learned input of slot 0, whose u is withheld [dim]. */
  start?: Float32Array;
  /** The extra blocks (StudentConfig.extraBlocks of them; absent when none), shaped like the teacher's layers. */
  extra?: LayerWeights[];
  /** Pick feedback (StudentConfig.pickFeedback): the vector each picked token adds to the slot reading it [vocab, dim]; zero to start. */
  feedback?: Float32Array;
}

/** Which slots read a pick (StudentConfig.pickFeedback): slot 1 only, or every slot after slot 0. */
export type PickFeedbackKind = "first" | "chain";

export const PICK_FEEDBACK_KINDS: readonly PickFeedbackKind[] = ["first", "chain"];

/** A PTP student: its config and weights (the adapter, auxiliary embeddings and any extra blocks), beside a teacher it was made for. */
export interface Student {
  config: StudentConfig;
  weights: StudentWeights;
}

/**
 * Throws a TypeError naming `where` and the argument unless `student` is a
 * Student { config, weights } (with config.teacherShape): the first check
 * of every function taking one, before anything reads its fields (the file
 * writers then validate every tensor). Shapes only, no pass over values.
 */
export function checkStudent(student: unknown, where: string, name = "student"): asserts student is Student {
  const s = student as Partial<Student> | null | undefined;
  if (s === null || typeof s !== "object" || Array.isArray(s) || typeof s.config !== "object" || s.config === null || typeof s.config.teacherShape !== "object" || s.config.teacherShape === null || typeof s.weights !== "object" || s.weights === null) {
    throw new TypeError(
      `${where}: ${name} must be a Student { config, weights } (readStudent, loadStudent, randomStudent), got ${describeValue(student)}${s !== null && typeof s === "object" && !Array.isArray(s) ? ` without ${typeof s.config !== "object" || s.config === null ? "a config" : typeof s.config.teacherShape !== "object" || s.config.teacherShape === null ? "config.teacherShape" : "weights"}` : ""}`,
    );
  }
}

/** checkStudent for a standalone draft model: a Draft { config, weights } (with config.model and weights.model), else a TypeError naming `where`. */
export function checkDraft(draft: unknown, where: string, name = "draft"): asserts draft is Draft {
  const d = draft as Partial<Draft> | null | undefined;
  if (d === null || typeof d !== "object" || Array.isArray(d) || typeof d.config !== "object" || d.config === null || typeof d.config.model !== "object" || d.config.model === null || typeof d.weights !== "object" || d.weights === null || typeof d.weights.model !== "object" || d.weights.model === null) {
    throw new TypeError(`${where}: ${name} must be a Draft { config, weights } (readDraft, randomDraft, teacherDraft), got ${describeValue(draft)}`);
  }
}

/** The Float32Arrays under `weights` (a student's or a draft model's), each counted once however often it is referenced: how many, and their values. */
export function weightCounts(weights: unknown): { tensors: number; parameters: number } {
  const seen = new Set<unknown>();
  const counts = { tensors: 0, parameters: 0 };
  const walk = (x: unknown): void => {
    if (typeof x !== "object" || x === null || seen.has(x)) return;
    seen.add(x);
    if (x instanceof Float32Array) counts.tensors++, (counts.parameters += x.length);
    else for (const v of Object.values(x)) walk(v);
  };
  walk(weights);
  return counts;
}
