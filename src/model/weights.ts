import { describeValue } from "../util/checks.js";
import { isPlainObject } from "../util/options.js";
import { checkShapeFields, validateConfig, type ModelConfig } from "./config.js";

/**
 * The weights of a Llama-architecture decoder on the host, as plain arrays.
 * Per-layer matrices are stored [out, in] row-major (y = W x), one array
 * per layer.
 */
export interface LayerWeights {
  rmsAtt: Float32Array; // [dim]
  wq: Float32Array; // [dim, dim]
  wk: Float32Array; // [kvDim, dim]
  wv: Float32Array; // [kvDim, dim]
  wo: Float32Array; // [dim, dim]
  rmsFfn: Float32Array; // [dim]
  w1: Float32Array; // [hidden, dim]  (gate)
  w2: Float32Array; // [dim, hidden]  (down)
  w3: Float32Array; // [hidden, dim]  (up)
}

/** A Llama model's weights on the host, as llama2.c lays them out (every matrix [out, in], row-major). */
export interface ModelWeights {
  tokenEmbedding: Float32Array; // [vocab, dim]
  layers: LayerWeights[];
  rmsFinal: Float32Array; // [dim]
  /** The classifier [vocab, dim]; the same array as tokenEmbedding when shared. */
  wcls: Float32Array;
}

/** A model as read from a file: its config and its weights. */
export interface Checkpoint {
  config: ModelConfig;
  weights: ModelWeights;
}

/** The names of the seven linear layers of a block, in llama2.c's order. */
export const LINEAR_NAMES = ["wq", "wk", "wv", "wo", "w1", "w2", "w3"] as const;
export type LinearName = (typeof LINEAR_NAMES)[number];

/** [out, in] of a block's linear layer. */
export function linearShape(c: Pick<ModelConfig, "dim" | "hiddenDim" | "nHeads" | "nKvHeads">, name: LinearName): [out: number, inp: number] {
  checkShapeFields(c, "linearShape", ["dim", "hiddenDim", "nHeads", "nKvHeads"]);
  if (!(LINEAR_NAMES as readonly unknown[]).includes(name)) throw new RangeError(`linearShape: name must be one of ${LINEAR_NAMES.join(", ")}, got ${describeValue(name)}`);
  const kv = (c.dim * c.nKvHeads) / c.nHeads;
  switch (name) {
    case "wq":
    case "wo":
      return [c.dim, c.dim];
    case "wk":
    case "wv":
      return [kv, c.dim];
    case "w1":
    case "w3":
      return [c.hiddenDim, c.dim];
    case "w2":
      return [c.dim, c.hiddenDim];
  }
}

/**
 * Throws a TypeError naming the first tensor of `w` that is missing, not a
 * Float32Array or not the length `c` gives it (`where` prefixes the message).
 */
export function checkWeights(c: ModelConfig, w: ModelWeights, where = "weights"): void {
  const expect = (name: string, a: unknown, length: number): void => {
    if (!(a instanceof Float32Array)) throw new TypeError(`${where}: ${name} must be a Float32Array of ${length} values, got ${a === undefined ? "none" : a === null ? "null" : Array.isArray(a) ? "an array" : typeof a}`);
    if (a.length !== length) throw new TypeError(`${where}: ${name} has ${a.length} values; the config needs ${length}`);
  };
  if (w === null || typeof w !== "object") throw new TypeError(`${where}: the weights must be an object, got ${w === null ? "null" : typeof w}`);
  expect("tokenEmbedding", w.tokenEmbedding, c.vocabSize * c.dim);
  if (!Array.isArray(w.layers) || w.layers.length !== c.nLayers) {
    throw new TypeError(`${where}: layers must be an array of nLayers = ${c.nLayers} layers, got ${Array.isArray(w.layers) ? w.layers.length : typeof w.layers}`);
  }
  w.layers.forEach((layer, l) => {
    if (layer === null || typeof layer !== "object") throw new TypeError(`${where}: layers[${l}] must be an object of tensors`);
    expect(`layers[${l}].rmsAtt`, layer.rmsAtt, c.dim);
    expect(`layers[${l}].rmsFfn`, layer.rmsFfn, c.dim);
    for (const name of LINEAR_NAMES) {
      const [out, inp] = linearShape(c, name);
      expect(`layers[${l}].${name}`, layer[name], out * inp);
    }
  });
  expect("rmsFinal", w.rmsFinal, c.dim);
  expect("wcls", w.wcls, c.vocabSize * c.dim);
  // A tied classifier is the embedding itself: a separate array would be what the forward pass uses but not what the config (and a teacher checksum) says.
  if (c.sharedClassifier && w.wcls !== w.tokenEmbedding) {
    throw new TypeError(`${where}: the config says the classifier is shared (sharedClassifier: true), so wcls must be the tokenEmbedding array itself, got a separate array`);
  }
}

/**
 * Throws unless `ckpt` is a whole Checkpoint { config, weights }: a
 * TypeError naming `where` and the argument for a non-object (undefined,
 * null, `{}`), then validateConfig's and checkWeights's errors for the
 * parts. Checks shapes only (no pass over the values): cheap enough for
 * every function taking a checkpoint.
 */
export function checkCheckpoint(ckpt: unknown, where: string, name = "checkpoint"): asserts ckpt is Checkpoint {
  const what = "a Checkpoint { config, weights } (readModel, readCheckpoint, randomCheckpoint)";
  if (!isPlainObject(ckpt)) throw new TypeError(`${where}: ${name} must be ${what}, got ${describeValue(ckpt)}`);
  const { config, weights } = ckpt as Partial<Checkpoint>;
  if (config === null || typeof config !== "object") throw new TypeError(`${where}: ${name} must be ${what}, but its config is ${describeValue(config)}`);
  validateConfig(config, where);
  checkWeights(config, weights as ModelWeights, where);
}
