import { describeValue } from "../util/checks.js";
import { checkOptionKeys, isPlainObject } from "../util/options.js";

/**
 * The shape of a Llama-architecture decoder, as a llama2.c header gives it.
 */
export interface ModelConfig {
  /** Width of the residual stream. */
  dim: number;
  /** Width of the SwiGLU hidden layer. */
  hiddenDim: number;
  nLayers: number;
  /** Query heads. */
  nHeads: number;
  /** Key/value heads (GQA when fewer than nHeads). */
  nKvHeads: number;
  vocabSize: number;
  /** Maximum sequence length (positions are < seqLen). */
  seqLen: number;
  /** True when the classifier is the token embedding table. */
  sharedClassifier: boolean;
  /** RMSNorm epsilon (llama2.c: 1e-5). */
  normEps: number;
  /** RoPE base (llama2.c: 10000). */
  ropeTheta: number;
}

/** llama2.c's RMSNorm epsilon and RoPE base: what its checkpoints, which hold neither, are read with, and what new models get. */
export const LLAMA2C_NORM_EPS = 1e-5;
export const LLAMA2C_ROPE_THETA = 10000;

/** Width of one attention head, dim / nHeads. */
export const headSize = (c: ModelConfig): number => {
  checkShapeFields(c, "headSize", ["dim", "nHeads"]);
  return c.dim / c.nHeads;
};
/** Width of the keys and values, dim x nKvHeads / nHeads. */
export const kvDim = (c: ModelConfig): number => {
  checkShapeFields(c, "kvDim", ["dim", "nHeads", "nKvHeads"]);
  return (c.dim * c.nKvHeads) / c.nHeads;
};

/**
 * Throws a TypeError naming `where` unless `c` is an object whose `fields`
 * are numbers (nHeads and nKvHeads not 0): a missing config or field gave
 * "Cannot read properties of undefined" or a silent NaN. One cheap test per
 * field, for the helpers that size arrays from a config.
 */
export function checkShapeFields(c: unknown, where: string, fields: readonly (keyof ModelConfig)[]): void {
  if (c === null || typeof c !== "object") throw new TypeError(`${where}: the config must be a ModelConfig object { ${CONFIG_FIELDS.join(", ")} }, got ${describeValue(c)}`);
  for (const key of fields) {
    const v: unknown = (c as Record<string, unknown>)[key];
    if (typeof v !== "number" || !Number.isFinite(v) || ((key === "nHeads" || key === "nKvHeads") && v === 0)) {
      throw new TypeError(`${where}: the config's ${key} must be a ${key === "nHeads" || key === "nKvHeads" ? "non-zero " : ""}number, got ${describeValue(v)}`);
    }
  }
}

/** The longest context a config may declare (2^20 positions). */
export const MAX_SEQ_LEN = 1 << 20;
/**
 * The largest vocabulary a config may declare: 2^24 (16,777,216), 64 times
 * the largest published one (262,144). Every token id then stays exact in
 * an i32 and in a float32, and the token embedding of the narrowest model
 * (dim 2) fits one array; 2^40 would pass every other check and fail only
 * when the weights are made.
 */
export const MAX_VOCAB_SIZE = 1 << 24;
/** The most layers a model config may have (Llama 3.1 405B has 126). */
export const MAX_LAYERS = 4096;

/** The integer fields of a model's shape, in ModelConfig order (how files store and compare them). */
export const INT_SHAPE_FIELDS = ["dim", "hiddenDim", "nLayers", "nHeads", "nKvHeads", "vocabSize", "seqLen"] as const;
/** A model's shape: the integer fields, then sharedClassifier (what a student's teacher shape records). */
export const SHAPE_FIELDS = [...INT_SHAPE_FIELDS, "sharedClassifier"] as const;
/** Every ModelConfig field, in canonical order. */
export const CONFIG_FIELDS = [...SHAPE_FIELDS, "normEps", "ropeTheta"] as const;

/** The shape ptp train gives a fresh model: nKvHeads defaults to nHeads. */
export interface NewModelShape {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads?: number;
  vocabSize: number;
  seqLen: number;
}

/** The config of a fresh Llama-architecture model of this shape: shared classifier, normEps 1e-5, ropeTheta 10000 (llama2.c's train.py). */
export function newModelConfig(s: NewModelShape): ModelConfig {
  if (!isPlainObject(s)) throw new TypeError(`newModelConfig: the shape must be an object { dim, hiddenDim, nLayers, nHeads, nKvHeads?, vocabSize, seqLen }, got ${describeValue(s)}`);
  checkOptionKeys(s, "newModelConfig", ["dim", "hiddenDim", "nLayers", "nHeads", "nKvHeads", "vocabSize", "seqLen"], "shape");
  const config: ModelConfig = {
    dim: s.dim,
    hiddenDim: s.hiddenDim,
    nLayers: s.nLayers,
    nHeads: s.nHeads,
    nKvHeads: s.nKvHeads ?? s.nHeads,
    vocabSize: s.vocabSize,
    seqLen: s.seqLen,
    sharedClassifier: true,
    normEps: LLAMA2C_NORM_EPS,
    ropeTheta: LLAMA2C_ROPE_THETA,
  };
  // Numbers only (a string "64" made a config that failed far from here); the shape itself is the caller's to validate (ptp train sizes memory before the vocabulary is known).
  checkShapeFields(config, "newModelConfig", INT_SHAPE_FIELDS);
  return config;
}

/**
 * Problems with a config, as readable sentences; empty when it is valid.
 * Loaders prefix these with the file name.
 */
export function configProblems(c: ModelConfig): string[] {
  if (!isPlainObject(c)) return [`the config must be a ModelConfig object { ${CONFIG_FIELDS.join(", ")} }, got ${describeValue(c)}`];
  const problems: string[] = [];
  for (const key of INT_SHAPE_FIELDS) {
    const v: unknown = c[key];
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) problems.push(`${key} must be a positive integer, got ${describeValue(v)}`);
  }
  // A string such as "yes" would read as true (and "false" too).
  if (typeof c.sharedClassifier !== "boolean") problems.push(`sharedClassifier must be a boolean, got ${describeValue(c.sharedClassifier)}`);
  if (problems.length > 0) return problems;
  // seqLen sizes the KV cache and the RoPE positions, yet (in a v1 checkpoint) no array of the file: bound it here.
  if (c.seqLen > MAX_SEQ_LEN) problems.push(`seqLen must be <= ${MAX_SEQ_LEN}, got ${c.seqLen}`);
  if (c.dim % c.nHeads !== 0) problems.push(`nHeads (${c.nHeads}) must divide dim (${c.dim})`);
  else if ((c.dim / c.nHeads) % 2 !== 0) problems.push(`head size dim/nHeads (${c.dim / c.nHeads}) must be even for RoPE`);
  if (c.nHeads % c.nKvHeads !== 0) problems.push(`nKvHeads (${c.nKvHeads}) must divide nHeads (${c.nHeads})`);
  // Numbers, not numeric strings ("1e-5" > 0 is true).
  if (typeof c.normEps !== "number" || !(c.normEps > 0) || !Number.isFinite(c.normEps)) problems.push(`normEps must be a finite number > 0, got ${describeValue(c.normEps)}`);
  if (typeof c.ropeTheta !== "number" || !(c.ropeTheta > 0) || !Number.isFinite(c.ropeTheta)) problems.push(`ropeTheta must be a finite number > 0, got ${describeValue(c.ropeTheta)}`);
  return problems;
}

/**
 * configProblems, vocabSize at most MAX_VOCAB_SIZE and nLayers at most MAX_LAYERS: for configs whose layers
 * size a loop over tensor names before any tensor is read (an HF
 * config.json, a PEFT teacher shape). Files whose size is checked against
 * their header first (llama2.c checkpoints, ptp files) report that size instead.
 */
export function boundedConfigProblems(c: ModelConfig): string[] {
  const problems = vocabProblems(c);
  if (problems.length === 0 && c.nLayers > MAX_LAYERS) problems.push(`nLayers must be <= ${MAX_LAYERS}, got ${c.nLayers}`);
  return problems;
}

/** configProblems, and vocabSize at most MAX_VOCAB_SIZE (a file checks its size against its header first, so a file's loader reports that instead). */
function vocabProblems(c: ModelConfig): string[] {
  const problems = configProblems(c);
  if (problems.length === 0 && c.vocabSize > MAX_VOCAB_SIZE) problems.push(`vocabSize must be <= ${MAX_VOCAB_SIZE} (2^24), got ${c.vocabSize}`);
  return problems;
}

/**
 * Throws with every problem listed when the config is invalid: a TypeError
 * when it is not an object at all, a RangeError otherwise.
 */
export function validateConfig(c: ModelConfig, where = "validateConfig"): void {
  const problems = vocabProblems(c);
  if (problems.length === 0) return;
  if (!isPlainObject(c)) throw new TypeError(`${where}: ${problems[0]}`);
  throw new RangeError(`${where}: ${problems.join("; ")}`);
}

/**
 * Number of float32 parameters in the weights (without legacy RoPE tables).
 * The fields it reads are checked first (`{}` gave NaN): integers >= 0
 * (nHeads >= 1) and a boolean sharedClassifier. Nothing more, so a
 * memory estimate may count a shape not yet whole (a vocabulary still 0).
 */
export function parameterCount(c: ModelConfig): number {
  if (!isPlainObject(c)) throw new TypeError(`parameterCount: config must be a ModelConfig object { ${CONFIG_FIELDS.join(", ")} }, got ${describeValue(c)}`);
  for (const key of ["dim", "hiddenDim", "nLayers", "nHeads", "nKvHeads", "vocabSize"] as const) {
    const v: unknown = c[key];
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < (key === "nHeads" ? 1 : 0)) throw new RangeError(`parameterCount: ${key} must be ${key === "nHeads" ? "a positive" : "a non-negative"} integer, got ${describeValue(v)}`);
  }
  if (typeof c.sharedClassifier !== "boolean") throw new TypeError(`parameterCount: sharedClassifier must be a boolean, got ${describeValue(c.sharedClassifier)}`);
  const kv = kvDim(c);
  const perLayer = 2 * c.dim + c.dim * c.dim * 2 + 2 * kv * c.dim + 3 * c.hiddenDim * c.dim;
  return c.vocabSize * c.dim * (c.sharedClassifier ? 1 : 2) + c.nLayers * perLayer + c.dim;
}

/** The published TinyStories shapes, for random-weight benchmarks. */
export const SHAPES: Record<string, Omit<ModelConfig, "normEps" | "ropeTheta" | "sharedClassifier">> = {
  "260K": { dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 512 },
  "15M": { dim: 288, hiddenDim: 768, nLayers: 6, nHeads: 6, nKvHeads: 6, vocabSize: 32000, seqLen: 256 },
  "42M": { dim: 512, hiddenDim: 1376, nLayers: 8, nHeads: 8, nKvHeads: 8, vocabSize: 32000, seqLen: 1024 },
  "110M": { dim: 768, hiddenDim: 2048, nLayers: 12, nHeads: 12, nKvHeads: 12, vocabSize: 32000, seqLen: 1024 },
};

/** A published shape as a whole config: the shared classifier and llama2.c's norm eps and RoPE theta, as `ptp random-model` writes it. */
export function shapeConfig(name: keyof typeof SHAPES): ModelConfig {
  return { ...SHAPES[name], sharedClassifier: true, normEps: LLAMA2C_NORM_EPS, ropeTheta: LLAMA2C_ROPE_THETA };
}
