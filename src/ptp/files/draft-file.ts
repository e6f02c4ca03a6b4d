/**
 * The standalone PTP draft model (draft-model.ts) stored as a safetensors
 * file.
 *
 * Tensors (all F32), with the draft's own shape (dim, hidden, kvDim = dim *
 * nKvHeads / nHeads, vocab = the teacher's):
 * - `token_embedding` [vocab, dim];
 * - per layer l: `layers.{l}.rms_att` [dim], `layers.{l}.wq` [dim, dim],
 *   `.wk` [kvDim, dim], `.wv` [kvDim, dim], `.wo` [dim, dim],
 *   `layers.{l}.rms_ffn` [dim], `.w1` [hidden, dim], `.w2` [dim, hidden],
 *   `.w3` [hidden, dim] (matrices [out, in], as in LayerWeights);
 * - `rms_final` [dim]; `wcls` [vocab, dim] only when the classifier is not
 *   shared with the token embedding;
 * - `aux.weight` [dim, 32] and `aux.bias` [dim] for aux kind "bits",
 *   `aux.weight` [dim, B] and `aux.bias` [dim] for "digits" (B digits),
 *   `aux.anchors` [3, dim] for "anchors" (as in adapter-file.ts);
 * - `start` [dim] for variant C only.
 *
 * Metadata (strings): `format` = "ptp-draft", `format_version` = "1",
 * `variant` ("O" | "C"), `aux_kind`, `aux_digits` (digits only), `window`,
 * `slot_input` ("hybrid" for hybrid draft models; absent otherwise),
 * `draft_config` (JSON of the draft's ModelConfig, keys in ModelConfig
 * order), `teacher_vocab_size` and `teacher_checksum` (teacherChecksum of
 * the teacher it drafts for).
 *
 * Serialisation is deterministic, so parse then serialise reproduces a file
 * written here byte for byte.
 */
import { quote } from "../../io/errors.js";
import { describeValue } from "../../util/checks.js";
import { checkDraft } from "../student-weights.js";
import { serializeSafetensors } from "../../io/safetensors.js";
import { CONFIG_FIELDS, type ModelConfig } from "../../model/config.js";
import { linearShape, type LayerWeights, type LinearName, type ModelWeights } from "../../model/weights.js";
import type { Draft, DraftConfig, DraftWeights } from "../draft-model.js";
import { auxMetadata, auxSlots, checkAuxWeights, checkChecksumArgument, checkFormat, checkModelShape, checkTeacherChecksum, checkTeacherWithConfig, parseAux, parseShapeObject, parseSlotInput, parseSlotFile, ptpFileAccess, slotInputFields } from "./ptp-file-parts.js";
import { parseTeacherChecksum, parseVariant, plainFail, positiveInteger, required, writeSlots, type Fail, type Slot } from "./ptp-file-parts.js";

export const DRAFT_FORMAT = "ptp-draft";
export const DRAFT_FORMAT_VERSION = "1";

/** Per-layer tensors: file name -> LayerWeights field. */
const LAYER_TENSORS = [
  ["rms_att", "rmsAtt"],
  ["wq", "wq"],
  ["wk", "wk"],
  ["wv", "wv"],
  ["wo", "wo"],
  ["rms_ffn", "rmsFfn"],
  ["w1", "w1"],
  ["w2", "w2"],
  ["w3", "w3"],
] as const satisfies readonly (readonly [string, keyof LayerWeights])[];

/** A model config with its keys in canonical order. */
export function canonicalConfig(c: ModelConfig): ModelConfig {
  return Object.fromEntries(CONFIG_FIELDS.map((k) => [k, c[k]])) as unknown as ModelConfig;
}

export function draftMetadata(config: DraftConfig): Record<string, string> {
  return {
    format: DRAFT_FORMAT,
    format_version: DRAFT_FORMAT_VERSION,
    ...auxMetadata(config),
    draft_config: JSON.stringify(config.model ? canonicalConfig(config.model) : null),
    teacher_vocab_size: String(config.teacherVocabSize),
    teacher_checksum: String(config.teacherChecksum),
  };
}

function parseDraftConfig(s: string, fail: Fail): ModelConfig {
  const o = parseShapeObject(s, "draft_config", fail);
  for (const key of ["normEps", "ropeTheta"] as const) {
    const v = o[key];
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) fail(`metadata "draft_config" needs ${key} as a positive number, found ${quote(v)}`);
  }
  const unknown = Object.keys(o).filter((k) => !(CONFIG_FIELDS as readonly string[]).includes(k));
  if (unknown.length > 0) fail(`metadata "draft_config" has unknown field${unknown.length > 1 ? "s" : ""} ${unknown.map((k) => quote(k)).join(", ")}`);
  const config = canonicalConfig(o as unknown as ModelConfig);
  checkModelShape(config, "draft_config", fail);
  return config;
}

/** Reads and validates a draft config from file metadata. */
export function draftConfigFromMetadata(meta: Record<string, string>, fail: Fail): DraftConfig {
  checkFormat(meta, DRAFT_FORMAT, DRAFT_FORMAT_VERSION, "a PTP draft model", fail);
  const variant = parseVariant(meta, fail);
  const window = positiveInteger(meta, "window", fail);
  const aux = parseAux(meta, fail);
  const model = parseDraftConfig(required(meta, "draft_config", fail), fail);
  const teacherVocabSize = positiveInteger(meta, "teacher_vocab_size", fail);
  if (model.vocabSize !== teacherVocabSize) {
    fail(`the draft model's vocabSize ${model.vocabSize} (draft_config) differs from teacher_vocab_size ${teacherVocabSize}: a draft model shares the teacher's vocabulary`);
  }
  const teacherChecksum = parseTeacherChecksum(meta, fail);
  if (window > model.seqLen) fail(`metadata "window" is ${window}, more than the draft model's seqLen ${model.seqLen} (draft_config)`);
  const config: DraftConfig = { variant, aux, window, model, teacherVocabSize, teacherChecksum };
  // A draft model's first slot as its own AR query is not supported (yet): the query kind is for LoRA students.
  Object.assign(config, slotInputFields(parseSlotInput(meta, fail, ["aux", "hybrid"])));
  return config;
}

/** The tensors a draft model of this config has, in file-description order. */
export function draftSlots(config: DraftConfig): Slot<DraftWeights>[] {
  const c = config.model;
  const out: Slot<DraftWeights>[] = [];
  out.push({ name: "token_embedding", shape: [c.vocabSize, c.dim], get: (w) => w.model?.tokenEmbedding, set: (w, a) => (w.model.tokenEmbedding = a) });
  for (let l = 0; l < c.nLayers; l++) {
    for (const [file, field] of LAYER_TENSORS) {
      const shape = field === "rmsAtt" || field === "rmsFfn" ? [c.dim] : linearShape(c, field as LinearName);
      out.push({ name: `layers.${l}.${file}`, shape, get: (w) => w.model?.layers?.[l]?.[field], set: (w, a) => (ensureLayer(w.model, l)[field] = a) });
    }
  }
  out.push({ name: "rms_final", shape: [c.dim], get: (w) => w.model?.rmsFinal, set: (w, a) => (w.model.rmsFinal = a) });
  if (!c.sharedClassifier) out.push({ name: "wcls", shape: [c.vocabSize, c.dim], get: (w) => w.model?.wcls, set: (w, a) => (w.model.wcls = a) });
  out.push(...auxSlots<DraftWeights>(config, c.dim));
  return out;
}

function ensureLayer(m: ModelWeights, l: number): LayerWeights {
  while (m.layers.length <= l) m.layers.push({} as LayerWeights);
  return m.layers[l];
}

function emptyWeights(): DraftWeights {
  return { model: { layers: [] } as unknown as ModelWeights, aux: {} };
}

/**
 * The safetensors bytes of a draft model. Throws a plain Error when the
 * config is invalid or an array is missing, superfluous or of the wrong
 * length.
 */
export function serializeDraft(draft: Draft): Uint8Array {
  checkDraft(draft, "serializeDraft");
  const fail = plainFail("serializeDraft");
  const metadata = draftMetadata(draft.config);
  const config = draftConfigFromMetadata(metadata, fail);
  const w = draft.weights;
  const c = config.model;
  if (w.model?.layers?.length !== c.nLayers) fail(`draft_config has ${c.nLayers} layers but the weights have ${w.model?.layers?.length}`);
  if (c.sharedClassifier && w.model.wcls !== undefined && w.model.wcls !== w.model.tokenEmbedding) {
    fail(`the classifier is shared, so weights.model.wcls must be the token embedding array (or unset)`);
  }
  checkAuxWeights(config, w, fail);
  return serializeSafetensors(writeSlots(draftSlots(config), w, fail), metadata);
}

/**
 * Parses a draft model file. `name` (usually the path) starts every error
 * message. Throws FileFormatError when the file is not safetensors, not a
 * ptp-draft file, has an unsupported version or invalid metadata, or its
 * tensors are not exactly the expected F32 tensors with the expected shapes.
 */
export function parseDraft(bytes: Uint8Array, name: string): Draft {
  const { config, weights } = parseSlotFile(
    bytes,
    name,
    draftConfigFromMetadata,
    (c) => ({ ...c.model, key: "draft_config" }),
    "draft model",
    draftSlots,
    emptyWeights(),
    (c, file, fail) => {
      if (c.model.sharedClassifier && file.tensors.has("wcls")) fail(`draft_config says the classifier is shared with the token embedding, but the file has a tensor "wcls"`);
    },
  );
  if (config.model.sharedClassifier) weights.model.wcls = weights.model.tokenEmbedding;
  return { config, weights };
}

const draftFile = ptpFileAccess({ what: "a PTP draft model (safetensors)", names: { read: "readDraft", write: "writeDraft" }, parse: parseDraft, serialize: serializeDraft, check: checkDraft });

/** Reads a draft model file synchronously (see parseDraft). */
export const readDraft: (path: string) => Draft = draftFile.read;
/** Writes a draft model atomically: to a unique temporary file next to `path`, then renamed over it. */
export const writeDraft: (path: string, draft: Draft) => void = draftFile.write;

/**
 * Throws an Error unless the draft model was made for this teacher: first
 * the vocabulary size (the only shape they share), then the checksum
 * (`checksum` = teacherChecksum(teacher)). `where` names the draft file,
 * usually its path; messages start "draft model <where>".
 * `teacher`: anything with the teacher's config (as checkStudentMatchesTeacher).
 */
export function checkDraftMatchesTeacher(draft: Draft, teacher: { config: ModelConfig }, checksum: string, where: string): void {
  checkDraft(draft, "checkDraftMatchesTeacher");
  checkTeacherWithConfig(teacher, "checkDraftMatchesTeacher");
  checkChecksumArgument(checksum, "checkDraftMatchesTeacher");
  if (typeof where !== "string") throw new TypeError(`checkDraftMatchesTeacher: where must be a string naming the draft file (usually its path), got ${describeValue(where)}`);
  const vocab = teacher.config.vocabSize;
  const theirs = draft.config.model.vocabSize;
  if (theirs !== vocab || draft.config.teacherVocabSize !== vocab) {
    throw new Error(`draft model ${where} has vocab size ${theirs} but the model's is ${vocab}: a draft model must share the teacher's vocabulary`);
  }
  checkTeacherChecksum(`draft model ${where}`, draft.config.teacherChecksum, checksum, "made for");
}
