/**
 * The random initialisers of PTP proposers: an untrained student adapter
 * (randomStudent) and an untrained standalone draft model (randomDraft),
 * both deterministic per seed (Mulberry32). Their file formats live in
 * src/ptp/files/.
 */
import { CONFIG_FIELDS, type ModelConfig } from "../model/config.js";
import { MAX_FILE_BYTES } from "../io/errors.js";
import { randomCheckpoint } from "../model/init.js";
import { checkCheckpoint, type Checkpoint, type LayerWeights, type ModelWeights } from "../model/weights.js";
import { describeValue } from "../util/checks.js";
import { checkObject, checkOptionalBoolean, checkOptionKeys } from "../util/options.js";
import { Mulberry32, SEED_SALT } from "../util/prng.js";
import type { Draft, DraftConfig, DraftWeights } from "./draft-model.js";
import { MAX_EXTRA_BLOCKS, studentConfigFromMetadata, studentMetadata, studentSlots, teacherShapeOf } from "./files/adapter-file.js";
import { canonicalConfig, draftConfigFromMetadata, draftMetadata, draftSlots } from "./files/draft-file.js";
import { checkChecksumArgument, plainFail, product } from "./files/ptp-file-parts.js";
import { DEFAULT_ALPHA, DEFAULT_SLOT_INPUT, DEFAULT_STUDENT_WINDOW, type AuxEmbeddingConfig, type PickFeedbackKind, type Student, type StudentConfig, type StudentWeights, type Variant } from "./student-weights.js";

export interface RandomStudentOptions {
  variant: Variant;
  rank: number;
  /** LoRA alpha (default 8, PEFT's default, which the reference code keeps). */
  alpha?: number;
  /** Default { kind: "bits" }. */
  aux?: AuxEmbeddingConfig;
  /** Default DEFAULT_STUDENT_WINDOW (16). */
  window?: number;
  /** Hybrid slot input (StudentConfig.hybrid); default true (DEFAULT_SLOT_INPUT is "hybrid"); false: the plain aux input. */
  hybrid?: boolean;
  /** Query slot input (StudentConfig.query, C-PTP only; implies hybrid); default false. */
  query?: boolean;
  seed: number;
  /** B = 0 exactly (the standard LoRA initialisation: the student starts as the teacher). */
  zeroB?: boolean;
  /** Extra blocks E (StudentConfig.extraBlocks, 0..MAX_EXTRA_BLOCKS); default 0. */
  extraBlocks?: number;
  /** Pick feedback (StudentConfig.pickFeedback; query students with extra blocks): the table starts at 0, a no-op. Default none. */
  pickFeedback?: PickFeedbackKind;
  /** A draft head (StudentConfig.draftHead; chained pick feedback): the table then starts as the teacher's token embedding, so a slot row starts from the token before it as the teacher's first layer does. Default false. */
  draftHead?: boolean;
}

/** The keys of RandomStudentOptions, RandomDraftOptions and TeacherDraftOptions; another (windw: 5) is a typo that would be ignored. */
const RANDOM_STUDENT_OPTIONS: readonly (keyof RandomStudentOptions)[] = ["variant", "rank", "alpha", "aux", "window", "hybrid", "query", "seed", "zeroB", "extraBlocks", "pickFeedback", "draftHead"];
const RANDOM_DRAFT_OPTIONS: readonly (keyof RandomDraftOptions)[] = ["config", "variant", "aux", "window", "hybrid", "query", "seed"];
const TEACHER_DRAFT_OPTIONS: readonly (keyof TeacherDraftOptions)[] = ["variant", "aux", "window", "hybrid", "nLayers", "seed"];

/**
 * The arguments every initialiser checks first, once: the teacher a whole
 * checkpoint, the checksum a non-empty string, the options an object of
 * known keys whose flags are booleans and whose aux (if given) an object
 * and window (if given) a positive integer. The metadata check each then
 * makes (studentConfigFromMetadata, draftConfigFromMetadata) bounds the rest.
 */
function checkInitArguments(teacher: unknown, checksum: unknown, options: unknown, where: string, known: readonly string[], flags: readonly string[]): void {
  checkCheckpoint(teacher, where, "teacher");
  checkChecksumArgument(checksum, where);
  const o = checkOptionKeys(options, where, known);
  for (const flag of flags) checkOptionalBoolean(o[flag], where, flag);
  if (o.aux !== undefined) checkAuxOption(o.aux, where);
  checkNumbers(o, where, ["window", "seed"], ["seed"]);
}

/**
 * The aux option: an object { kind, digits? } and no other key (a "digts"
 * would be ignored), kind a string and digits a number. Which kinds and how
 * many digits the metadata check says; digits go with the "digits" kind
 * only.
 */
function checkAuxOption(aux: unknown, where: string): void {
  const a = checkOptionKeys(checkObject(aux, where, "aux", 'an auxiliary embedding config such as { kind: "bits" } or { kind: "digits", digits: 8 }'), where, ["kind", "digits"], "aux");
  if (typeof a.kind !== "string") throw new TypeError(`${where}: aux.kind must be a string ("bits", "digits" or "anchors"), got ${describeValue(a.kind)}`);
  if (a.digits !== undefined && typeof a.digits !== "number") throw new TypeError(`${where}: aux.digits must be a number, got ${describeValue(a.digits)}`);
  // A student of another kind has no digits: they would be dropped silently.
  if (a.digits !== undefined && a.kind !== "digits") throw new RangeError(`${where}: aux.digits goes with kind "digits" only (kind is ${describeValue(a.kind)})`);
}

/**
 * Numeric options are numbers (the metadata check reads String(value), so
 * a string such as "4" would pass it); their ranges are the metadata
 * check's (or Mulberry32's, for the seed). `required` ones must be given.
 */
function checkNumbers(o: object, where: string, names: readonly string[], required: readonly string[]): void {
  for (const name of names) {
    const v = (o as Record<string, unknown>)[name];
    if (v === undefined ? required.includes(name) : typeof v !== "number") throw new TypeError(`${where}: ${name} must be a number, got ${describeValue(v)}`);
  }
}

/** Whether a new model's slot input is hybrid: its `hybrid` option where given, else DEFAULT_SLOT_INPUT's. */
function newHybrid(options: { hybrid?: boolean }): boolean {
  return options.hybrid ?? DEFAULT_SLOT_INPUT === "hybrid";
}

/** Scale of the random B matrices, aux weights and biases, anchors and start vector. */
const SMALL = 0.02;

/**
 * An untrained student for `teacher`, deterministic per seed (Mulberry32).
 * Filled in file order: per layer and linear layer, A uniform in
 * ±1/sqrt(in) then B uniform in ±0.02 (or exactly 0 with zeroB); then the
 * aux weight and bias (or the anchors) uniform in ±0.02; then, for C, the
 * start vector uniform in ±0.02, or exactly 0 for a hybrid student (whose
 * first slot then reads the last token's embedding alone: with B = 0 it is
 * the teacher's own row, so its Pick is the teacher's token). Extra blocks
 * take no random values (teacherBlock), nor does a pick-feedback table (0;
 * a draft head's: the teacher's token embedding), so the rest is the same
 * as without.
 */
export function randomStudent(teacher: Checkpoint, checksum: string, options: RandomStudentOptions): Student {
  checkInitArguments(teacher, checksum, options, "randomStudent", RANDOM_STUDENT_OPTIONS, ["hybrid", "query", "zeroB", "draftHead"]);
  checkNumbers(options, "randomStudent", ["rank", "alpha", "extraBlocks"], ["rank"]);
  const aux: AuxEmbeddingConfig = options.aux ? { ...options.aux } : { kind: "bits" };
  const E = options.extraBlocks ?? 0;
  if (!(Number.isInteger(E) && E >= 0 && E <= MAX_EXTRA_BLOCKS)) throw new RangeError(`randomStudent: extraBlocks must be an integer in [0, ${MAX_EXTRA_BLOCKS}], got ${E}`);
  const draft: StudentConfig = {
    variant: options.variant,
    rank: options.rank,
    alpha: options.alpha ?? DEFAULT_ALPHA,
    aux,
    window: options.window ?? DEFAULT_STUDENT_WINDOW,
    ...(options.query ? { hybrid: true, query: true } : newHybrid(options) ? { hybrid: true } : {}),
    ...(E > 0 ? { extraBlocks: E } : {}),
    ...(options.pickFeedback ? { pickFeedback: options.pickFeedback } : {}),
    ...(options.draftHead ? { draftHead: true } : {}),
    teacherShape: teacherShapeOf(teacher.config),
    teacherChecksum: checksum,
  };
  const config = studentConfigFromMetadata(studentMetadata(draft), plainFail("randomStudent"));
  checkStudentSize(config);
  const rng = new Mulberry32(options.seed);
  const uniform = (length: number, scale: number): Float32Array => {
    const out = new Float32Array(length);
    for (let i = 0; i < length; i++) out[i] = (2 * rng.nextFloat() - 1) * scale;
    return out;
  };
  const weights: StudentWeights = { layers: [], aux: {} };
  for (const slot of studentSlots(config)) {
    if (slot.name.startsWith("extra.")) continue;
    // Pick feedback starts at 0: slot 1 reads nothing until training grows the table.
    if (slot.name === "feedback") {
      slot.set(weights, config.draftHead ? teacher.weights.tokenEmbedding.slice() : new Float32Array(product(slot.shape)));
      continue;
    }
    const n = product(slot.shape);
    let a: Float32Array;
    if (slot.name.endsWith(".lora_A")) a = uniform(n, 1 / Math.sqrt(slot.shape[1]));
    else if (slot.name.endsWith(".lora_B")) a = options.zeroB ? new Float32Array(n) : uniform(n, SMALL);
    else if (slot.name === "start" && config.hybrid) a = new Float32Array(n);
    else a = uniform(n, SMALL);
    slot.set(weights, a);
  }
  if (E > 0) weights.extra = Array.from({ length: E }, (_, e) => teacherBlock(teacher.weights.layers[e % teacher.config.nLayers]));
  return { config, weights };
}

/**
 * A rank so large that the student's own tensors could never be stored (a
 * student adapter file holds at most MAX_FILE_BYTES, as a PEFT folder's
 * zeros may) is refused before anything is allocated: a rank of 1e9 would
 * otherwise fail deep in the allocation ("Invalid typed array length") or
 * exhaust memory. The extra blocks copy teacher layers and do not count.
 */
function checkStudentSize(config: StudentConfig): void {
  const floats = studentSlots(config)
    .filter((slot) => !slot.name.startsWith("extra."))
    .reduce((sum, slot) => sum + product(slot.shape), 0);
  if (floats * 4 > MAX_FILE_BYTES) {
    const t = config.teacherShape;
    throw new RangeError(`randomStudent: rank ${config.rank} and the teacher's shape (dim ${t.dim}, hiddenDim ${t.hiddenDim}, nLayers ${t.nLayers}) make a student of ${floats} floats (${floats * 4} bytes), more than a student adapter may hold (${MAX_FILE_BYTES} bytes)`);
  }
}

/**
 * The "teacher" initialisation of an extra block (spec/ptp.md 2.4): a copy
 * of a teacher layer with wo and w2 exactly 0, so it adds exactly 0 to the
 * residual stream and an untrained student's slot logits are those without
 * it, bit for bit; training grows it once wo and w2 move.
 */
function teacherBlock(layer: LayerWeights): LayerWeights {
  return { ...copyLayer(layer), wo: new Float32Array(layer.wo.length), w2: new Float32Array(layer.w2.length) };
}

/** A layer's weights in new arrays. */
function copyLayer(layer: LayerWeights): LayerWeights {
  return Object.fromEntries(Object.entries(layer).map(([k, v]) => [k, v.slice()])) as unknown as LayerWeights;
}

/** The draft shape randomDraft uses where `config` leaves a field out (vocab and seqLen: the teacher's). */
export const DEFAULT_DRAFT_SHAPE = { dim: 32, hiddenDim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, sharedClassifier: true } as const;

export interface RandomDraftOptions {
  /** The draft's shape; missing fields: DEFAULT_DRAFT_SHAPE, the teacher's vocabSize, seqLen, normEps and ropeTheta. */
  config?: Partial<ModelConfig>;
  variant: Variant;
  /** Default { kind: "bits" }. */
  aux?: AuxEmbeddingConfig;
  /** Default DEFAULT_STUDENT_WINDOW (16). */
  window?: number;
  /** Hybrid slot input (DraftConfig.hybrid); default true (DEFAULT_SLOT_INPUT is "hybrid"); false: the plain aux input. */
  hybrid?: boolean;
  /** Draft models have no query slot input: only false is accepted (the CLI's slot-input flags give it); true is a RangeError. */
  query?: boolean;
  seed: number;
}

/**
 * An untrained draft model for `teacher`, deterministic per seed: the
 * transformer is randomCheckpoint(draft config, seed); then, from
 * Mulberry32(seed ^ SEED_SALT), the aux weight and bias (or the anchors)
 * and, for C, the start vector, uniform with std 1/sqrt(dim) (the token
 * embedding's scale).
 */
export function randomDraft(teacher: Checkpoint, checksum: string, options: RandomDraftOptions): Draft {
  checkInitArguments(teacher, checksum, options, "randomDraft", RANDOM_DRAFT_OPTIONS, ["hybrid"]);
  if (options.query !== undefined && options.query !== false) throw new RangeError(`randomDraft: a draft model has no query slot input (query is for LoRA students; hybrid or aux here), got query ${describeValue(options.query)}`);
  // Every key a ModelConfig field: a misspelt one (dimm) would leave the default in place unseen.
  if (options.config !== undefined) checkOptionKeys(checkObject(options.config, "randomDraft", "config", "a partial ModelConfig (the draft's shape)"), "randomDraft", CONFIG_FIELDS, "config");
  const t = teacher.config;
  const model: ModelConfig = canonicalConfig({
    ...DEFAULT_DRAFT_SHAPE,
    vocabSize: t.vocabSize,
    seqLen: t.seqLen,
    normEps: t.normEps,
    ropeTheta: t.ropeTheta,
    ...Object.fromEntries(Object.entries(options.config ?? {}).filter(([, v]) => v !== undefined)),
  });
  const draft: DraftConfig = {
    variant: options.variant,
    aux: options.aux ? { ...options.aux } : { kind: "bits" },
    window: options.window ?? DEFAULT_STUDENT_WINDOW,
    ...(newHybrid(options) ? { hybrid: true } : {}),
    model,
    teacherVocabSize: t.vocabSize,
    teacherChecksum: checksum,
  };
  const config = draftConfigFromMetadata(draftMetadata(draft), plainFail("randomDraft"));
  const weights: DraftWeights = { model: randomCheckpoint(config.model, options.seed).weights, aux: {} };
  const rng = new Mulberry32((options.seed ^ SEED_SALT) >>> 0);
  const a = Math.sqrt(3 / config.model.dim);
  for (const slot of draftSlots(config)) {
    if (!slot.name.startsWith("aux.") && slot.name !== "start") continue;
    const v = new Float32Array(product(slot.shape));
    for (let i = 0; i < v.length; i++) v[i] = (2 * rng.nextFloat() - 1) * a;
    slot.set(weights, v);
  }
  return { config, weights };
}

export interface TeacherDraftOptions {
  variant: Variant;
  /** Default { kind: "bits" }. */
  aux?: AuxEmbeddingConfig;
  /** Default DEFAULT_STUDENT_WINDOW (16). */
  window?: number;
  /** Hybrid slot input (DraftConfig.hybrid); default true (DEFAULT_SLOT_INPUT is "hybrid"); false: the plain aux input. */
  hybrid?: boolean;
  /** Layers of the draft, at least the teacher's (default: the teacher's). */
  nLayers?: number;
  seed: number;
}

/**
 * A draft model that starts as a copy of the teacher: the teacher's shape
 * and weights, deepened by nLayers - teacher layers extra blocks whose
 * output projections (wo, w2) are exactly 0, so at the start they add
 * exactly 0 to the residual stream and the draft's logits for any token row
 * are the teacher's, bit for bit. The other weights of the extra blocks come
 * from randomCheckpoint(draft config, seed) (so training can grow them once
 * wo and w2 move); the aux weights and biases (or anchors) are uniform in
 * ±0.02 from Mulberry32(seed ^ SEED_SALT); a C-PTP start vector is 0 for a
 * hybrid draft (its first slot then reads the last token's embedding alone
 * and, untrained, drafts the teacher's own token) and ±0.02 otherwise.
 *
 * Unlike a gated-LoRA student, every row of the draft, context rows
 * included, runs trainable weights: training may make the draft's own
 * context keys and values carry look-ahead the teacher's do not.
 */
export function teacherDraft(teacher: Checkpoint, checksum: string, options: TeacherDraftOptions): Draft {
  checkInitArguments(teacher, checksum, options, "teacherDraft", TEACHER_DRAFT_OPTIONS, ["hybrid"]);
  const t = teacher.config;
  const nLayers = options.nLayers ?? t.nLayers;
  if (!(Number.isInteger(nLayers) && nLayers >= t.nLayers)) throw new RangeError(`teacherDraft: a draft copied from the teacher has at least its ${t.nLayers} layers, got ${nLayers}`);
  const draft: DraftConfig = {
    variant: options.variant,
    aux: options.aux ? { ...options.aux } : { kind: "bits" },
    window: options.window ?? DEFAULT_STUDENT_WINDOW,
    ...(newHybrid(options) ? { hybrid: true } : {}),
    model: canonicalConfig({ ...t, nLayers }),
    teacherVocabSize: t.vocabSize,
    teacherChecksum: checksum,
  };
  const config = draftConfigFromMetadata(draftMetadata(draft), plainFail("teacherDraft"));
  const fresh = randomCheckpoint(config.model, options.seed).weights;
  const w = teacher.weights;
  const tokenEmbedding = w.tokenEmbedding.slice();
  const layers = fresh.layers.map((extra, l) => {
    if (l < t.nLayers) return copyLayer(w.layers[l]);
    return { ...extra, wo: new Float32Array(extra.wo.length), w2: new Float32Array(extra.w2.length) };
  });
  const model: ModelWeights = { tokenEmbedding, layers, rmsFinal: w.rmsFinal.slice(), wcls: t.sharedClassifier ? tokenEmbedding : w.wcls.slice() };
  const weights: DraftWeights = { model, aux: {} };
  const rng = new Mulberry32((options.seed ^ SEED_SALT) >>> 0);
  for (const slot of draftSlots(config)) {
    if (!slot.name.startsWith("aux.") && slot.name !== "start") continue;
    const v = new Float32Array(product(slot.shape));
    if (!(slot.name === "start" && config.hybrid)) for (let i = 0; i < v.length; i++) v[i] = (2 * rng.nextFloat() - 1) * SMALL;
    slot.set(weights, v);
  }
  return { config, weights };
}
