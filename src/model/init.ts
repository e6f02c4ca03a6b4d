/**
 * The random Llama initialisers, one place: randomCheckpoint (test and
 * benchmark weights, draft models) and initModel (a fresh model for ptp
 * train). Both fill the tensors in file order (token embedding, then per
 * layer wq, wk, wv, wo, w1, w2, w3, then the classifier when unshared) from
 * Mulberry32(seed), so the same config and seed give the same bytes.
 */
import { MAX_ARRAY_LENGTH } from "../backends/backend.js";
import { checkOptionKeys, isPlainObject } from "../util/options.js";
import { Mulberry32, seed32 } from "../util/prng.js";
import { CONFIG_FIELDS, kvDim, validateConfig, type ModelConfig } from "./config.js";
import type { Checkpoint, LayerWeights } from "./weights.js";

/**
 * A whole, valid ModelConfig whose every tensor fits one array: a key that
 * is none of its fields (`dimm` for `dim`) would be ignored and the shape
 * made without it, so it is refused by name before validateConfig's checks
 * (which name a non-object).
 */
function checkConfig(config: ModelConfig, where: string): void {
  if (isPlainObject(config)) checkOptionKeys(config, where, CONFIG_FIELDS, "config");
  validateConfig(config, where);
  const largest = Math.max(config.vocabSize, config.hiddenDim, config.dim) * config.dim;
  if (largest > MAX_ARRAY_LENGTH) throw new RangeError(`${where}: a tensor of this config would hold ${largest} values, more than the ${MAX_ARRAY_LENGTH} one array can`);
}

/**
 * A checkpoint with deterministic random weights (same config and seed ->
 * same values, hence the same serialized bytes). Values come from the
 * mulberry32 generator (see prng.ts) seeded with `seed >>> 0`, filled tensor
 * by tensor: the token embedding, then per layer wq, wk, wv, wo, w1, w2, w3,
 * then the classifier when unshared. Linear layers are uniform with std 1/sqrt(fan_in), the
 * token embedding and classifier uniform with std 1/sqrt(dim) (so logits of
 * a normalized state have std about 1), RMSNorm weights are 1.
 */
export function randomCheckpoint(config: ModelConfig, seed: number): Checkpoint {
  checkConfig(config, "randomCheckpoint");
  const c: ModelConfig = { ...config };
  const rng = new Mulberry32(seed32(seed, "randomCheckpoint: seed"));
  const uniform = (length: number, std: number): Float32Array => {
    const a = std * Math.sqrt(3);
    const out = new Float32Array(length);
    for (let i = 0; i < length; i++) out[i] = (2 * rng.nextFloat() - 1) * a;
    return out;
  };
  const ones = (length: number): Float32Array => new Float32Array(length).fill(1);
  const kv = kvDim(c);
  const inv = (fanIn: number): number => 1 / Math.sqrt(fanIn);
  const tokenEmbedding = uniform(c.vocabSize * c.dim, inv(c.dim));
  const layers: LayerWeights[] = [];
  for (let l = 0; l < c.nLayers; l++) {
    layers.push({
      rmsAtt: ones(c.dim),
      wq: uniform(c.dim * c.dim, inv(c.dim)),
      wk: uniform(kv * c.dim, inv(c.dim)),
      wv: uniform(kv * c.dim, inv(c.dim)),
      wo: uniform(c.dim * c.dim, inv(c.dim)),
      rmsFfn: ones(c.dim),
      w1: uniform(c.hiddenDim * c.dim, inv(c.dim)),
      w2: uniform(c.dim * c.hiddenDim, inv(c.hiddenDim)),
      w3: uniform(c.hiddenDim * c.dim, inv(c.dim)),
    });
  }
  const rmsFinal = ones(c.dim);
  const wcls = c.sharedClassifier ? tokenEmbedding : uniform(c.vocabSize * c.dim, inv(c.dim));
  return { config: c, weights: { tokenEmbedding, layers, rmsFinal, wcls } };
}

/** A fresh model: linear layers and embeddings N(0, 0.02)-like (uniform, same std), output projections scaled by 1/sqrt(2 layers), norms 1. */
export function initModel(config: ModelConfig, seed: number): Checkpoint {
  checkConfig(config, "initModel");
  const rng = new Mulberry32(seed32(seed, "initModel: seed")),
    std = 0.02,
    kv = kvDim(config);
  const u = (n: number, s = std) => Float32Array.from({ length: n }, () => (2 * rng.nextFloat() - 1) * s * Math.sqrt(3));
  const ones = (n: number) => new Float32Array(n).fill(1);
  const { dim, hiddenDim: h, nLayers } = config,
    proj = std / Math.sqrt(2 * nLayers);
  const tokenEmbedding = u(config.vocabSize * dim);
  const layers: LayerWeights[] = Array.from({ length: nLayers }, () => ({
    rmsAtt: ones(dim),
    wq: u(dim * dim),
    wk: u(kv * dim),
    wv: u(kv * dim),
    wo: u(dim * dim, proj),
    rmsFfn: ones(dim),
    w1: u(h * dim),
    w2: u(dim * h, proj),
    w3: u(h * dim),
  }));
  return { config, weights: { tokenEmbedding, layers, rmsFinal: ones(dim), wcls: config.sharedClassifier ? tokenEmbedding : u(config.vocabSize * dim) } };
}
