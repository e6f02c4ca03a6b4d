import type { Block } from "../model/block.js";
import type { ModelConfig } from "../model/config.js";
import type { KVCache } from "../model/kv-cache.js";
import { Transformer, TRANSFORMER_OPTIONS, type TransformerOptions } from "../model/transformer.js";
import { describeValue } from "../util/checks.js";
import { checkOptionKeys } from "../util/options.js";
import { checkDraft } from "./student-weights.js";
import type { ModelWeights } from "../model/weights.js";
import { slotInput, tableRow } from "./ptp-model.js";
import type { AuxEmbeddingConfig, AuxEmbeddingWeights, Variant } from "./student-weights.js";

/**
 * The standalone draft model (method section 2.3, "alternative"): a small
 * transformer of its own, trained from scratch as a PTP, that shares only
 * the vocabulary with the teacher. Its slots take the auxiliary embedding
 * of u (and, for C-PTP, the start vector) as input, like the student's; it
 * keeps its own KV cache. The teacher verifies its drafts exactly as it
 * verifies a student's, so the output never depends on its weights.
 * Stored in safetensors files (src/ptp/files/draft-file.ts).
 */

export interface DraftConfig {
  variant: Variant;
  aux: AuxEmbeddingConfig;
  /** Window N: slots per proposal the draft model was built (trained) for. */
  window: number;
  /** Hybrid slot input (see StudentConfig.hybrid). */
  hybrid?: boolean;
  /** The draft transformer's own shape (its vocabSize is the teacher's). */
  model: ModelConfig;
  /** The teacher it drafts for: its vocab size and teacherChecksum. */
  teacherVocabSize: number;
  teacherChecksum: string;
}

/** A standalone draft's weights: a small transformer of its own and its auxiliary embedding. */
export interface DraftWeights {
  /** The draft transformer (wcls is tokenEmbedding when model.sharedClassifier). */
  model: ModelWeights;
  aux: AuxEmbeddingWeights;
  /** C-PTP only: the input of a window's first slot, whose u is withheld [dim]. */
  start?: Float32Array;
}

/** A standalone draft model (a PTP model with its own small transformer instead of the teacher's layers). */
export interface Draft {
  config: DraftConfig;
  weights: DraftWeights;
}

/**
 * A draft model on the teacher's backend: every row of a call runs the
 * draft's own weights; slot rows are embedding rows (token id -1) whose
 * input is slotInput(...).
 */
export class DraftModel {
  readonly transformer: Transformer;

  /** @param options How the draft's transformer runs (e.g. its classifier in int8: TransformerOptions.classifierWeights); its drafts only decide how many tokens a call keeps. */
  constructor(
    teacher: Transformer,
    readonly draft: Draft,
    options: TransformerOptions = {},
  ) {
    if (!(teacher instanceof Transformer)) throw new TypeError(`DraftModel: teacher must be a Transformer (the model the draft proposes for), got ${describeValue(teacher)}`);
    checkDraft(draft, "DraftModel");
    checkOptionKeys(options, "DraftModel", TRANSFORMER_OPTIONS);
    const { model, teacherVocabSize } = draft.config;
    const vocab = teacher.config.vocabSize;
    if (model.vocabSize !== vocab || teacherVocabSize !== vocab) {
      throw new Error(`the draft model has vocab size ${model.vocabSize}${teacherVocabSize !== model.vocabSize ? ` (made for a teacher with ${teacherVocabSize})` : ""} ` + `but the teacher's is ${vocab}: a draft model must share the teacher's vocabulary`);
    }
    if (draft.config.variant === "C" && draft.weights.start?.length !== model.dim) {
      throw new Error(`a C-PTP draft model needs a start vector of length dim = ${model.dim}`);
    }
    this.transformer = new Transformer(teacher.backend, { config: model, weights: draft.weights.model }, options);
  }

  get variant(): Variant {
    return this.draft.config.variant;
  }

  get hybrid(): boolean {
    return this.draft.config.hybrid === true;
  }

  /** Draft models have no query slot input (see draft-file.ts). */
  readonly query = false;

  get window(): number {
    return this.draft.config.window;
  }

  get config(): ModelConfig {
    return this.transformer.config;
  }

  /**
   * Run a block on the draft weights (slot rows: negative token ids with
   * their embeddings). With `into` (at least rows x vocab long) the logits
   * are written there (Transformer.forwardInto), not to a new array.
   */
  forward(block: Block, cache: KVCache, into?: Float32Array): Float32Array {
    return into ? this.transformer.forwardInto(into, block, cache) : this.transformer.forward(block, cache);
  }

  /** The input of a slot: the rule PtpModel's student follows (slotInput in ptp-model.ts). */
  slotInput(ownU: number, previousU: number | undefined, lastToken?: number): Float32Array {
    const { config, weights } = this.draft;
    const table = weights.model.tokenEmbedding;
    const hybridTokens = config.hybrid ? (token: number) => tableRow(table, token, config.model.dim) : undefined;
    return slotInput({ variant: config.variant, aux: config.aux, auxWeights: weights.aux, start: weights.start, dim: config.model.dim, hybridTokens }, ownU, previousU, lastToken);
  }

  /** A new, empty KV cache for the draft transformer. */
  newCache(capacity?: number): KVCache {
    return this.transformer.newCache(capacity);
  }

  /** True once dispose() ran. */
  get disposed(): boolean {
    return this.transformer.disposed;
  }

  dispose(): void {
    this.transformer.dispose();
  }
}
