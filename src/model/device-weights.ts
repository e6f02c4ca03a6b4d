import type { Backend, Buffer } from "../backends/backend.js";
import { describeValue } from "../util/checks.js";
import { isPlainObject } from "../util/options.js";
import { validateConfig, type ModelConfig } from "./config.js";
import { LINEAR_NAMES, linearShape, type LayerWeights, type ModelWeights } from "./weights.js";

/** The weights of one block, resident in a backend's memory. */
export type DeviceLayer = { [K in keyof LayerWeights]: Buffer };

/** Every weight of a model, uploaded once to a backend. */
export interface DeviceWeights {
  tokenEmbedding: Buffer;
  layers: DeviceLayer[];
  rmsFinal: Buffer;
  wcls: Buffer;
}

/** A host array uploaded to a new buffer of the backend. */
export function uploadArray(backend: Backend, data: Float32Array): Buffer {
  const buf = backend.alloc(data.length);
  backend.upload(buf, data);
  return buf;
}

/** One block's weights, uploaded to a backend. */
export function uploadLayer(backend: Backend, layer: LayerWeights): DeviceLayer {
  const out = {} as DeviceLayer;
  for (const key of Object.keys(layer) as (keyof LayerWeights)[]) out[key] = uploadArray(backend, layer[key]);
  return out;
}

export function uploadWeights(backend: Backend, w: ModelWeights): DeviceWeights {
  const tokenEmbedding = uploadArray(backend, w.tokenEmbedding);
  const layers = w.layers.map((layer) => uploadLayer(backend, layer));
  return {
    tokenEmbedding,
    layers,
    rmsFinal: uploadArray(backend, w.rmsFinal),
    // A shared classifier is the embedding table: upload it once.
    wcls: w.wcls === w.tokenEmbedding ? tokenEmbedding : uploadArray(backend, w.wcls),
  };
}

/**
 * Zeroed buffers for every weight of a model of `config`, made in the order
 * the forward pass reads them (the embedding, then layer by layer, the
 * classifier last), as uploadWeights makes them: loadModel fills them from
 * a file whose order differs (a v0 file groups each matrix across layers).
 */
export function allocWeights(backend: Backend, config: ModelConfig): DeviceWeights {
  const made: Buffer[] = [];
  const alloc = (length: number): Buffer => {
    const b = backend.alloc(length);
    made.push(b);
    return b;
  };
  try {
    const lengths = layerLengths(config);
    const tokenEmbedding = alloc(config.vocabSize * config.dim);
    const layers = Array.from({ length: config.nLayers }, () => {
      const layer = {} as DeviceLayer;
      for (const f of FORWARD_ORDER) layer[f] = alloc(lengths[f]);
      return layer;
    });
    const rmsFinal = alloc(config.dim);
    return { tokenEmbedding, layers, rmsFinal, wcls: config.sharedClassifier ? tokenEmbedding : alloc(config.vocabSize * config.dim) };
  } catch (err) {
    for (const b of made) backend.free(b);
    throw err;
  }
}

/** A layer's weights in the order the forward pass reads them. */
const FORWARD_ORDER = ["rmsAtt", "wq", "wk", "wv", "wo", "rmsFfn", "w1", "w3", "w2"] as const;

/** The floats of each of a layer's weights (the matrices' shapes from linearShape). */
function layerLengths(config: ModelConfig): Record<keyof LayerWeights, number> {
  const out = { rmsAtt: config.dim, rmsFfn: config.dim } as Record<keyof LayerWeights, number>;
  for (const name of LINEAR_NAMES) {
    const [rows, cols] = linearShape(config, name);
    out[name] = rows * cols;
  }
  return out;
}

export function freeWeights(backend: Backend, d: DeviceWeights): void {
  const seen = new Set<Buffer>();
  const all = [d.tokenEmbedding, d.rmsFinal, d.wcls, ...d.layers.flatMap((l) => Object.values(l))];
  for (const b of all) if (!seen.has(b)) seen.add(b), backend.free(b);
}

/** A model's config and its weights already in a backend's buffers (loadModel fills them from a file): what `new Transformer` takes in place of a host Checkpoint. */
export interface DeviceCheckpoint {
  config: ModelConfig;
  device: DeviceWeights;
}

export function isDeviceCheckpoint(c: unknown): c is DeviceCheckpoint {
  return isPlainObject(c) && "device" in c;
}

/**
 * Checks a DeviceCheckpoint: a valid config, and every weight an f32 buffer
 * of the length the config gives (a buffer of another backend, or a freed
 * one, is refused by the backend at the first call); returns it. TypeErrors
 * name `Transformer`.
 */
export function checkDeviceCheckpoint(c: DeviceCheckpoint): DeviceCheckpoint {
  const where = "Transformer";
  const { config, device } = c;
  if (config === null || typeof config !== "object") throw new TypeError(`${where}: a device checkpoint's config must be a ModelConfig, got ${describeValue(config)}`);
  validateConfig(config, where);
  if (!isPlainObject(device) || !Array.isArray(device.layers) || device.layers.length !== config.nLayers) {
    throw new TypeError(`${where}: a device checkpoint's device must be { tokenEmbedding, layers (${config.nLayers}), rmsFinal, wcls } of buffers, got ${describeValue(device)}`);
  }
  const lengths = layerLengths(config);
  const check = (b: unknown, length: number, name: string): void => {
    const ok = b !== null && typeof b === "object" && (b as Buffer).length === length && (b as Buffer).dtype === "f32";
    if (!ok) throw new TypeError(`${where}: device weight ${name} must be an f32 buffer of ${length} elements, got ${describeValue(b)}`);
  };
  check(device.tokenEmbedding, config.vocabSize * config.dim, "tokenEmbedding");
  check(device.rmsFinal, config.dim, "rmsFinal");
  check(device.wcls, config.vocabSize * config.dim, "wcls");
  if (config.sharedClassifier && device.wcls !== device.tokenEmbedding) {
    throw new TypeError(`${where}: the config says the classifier is shared (sharedClassifier: true), so device.wcls must be the tokenEmbedding buffer itself, got a separate buffer`);
  }
  device.layers.forEach((layer, l) => {
    for (const f of FORWARD_ORDER) check((layer as Partial<DeviceLayer>)?.[f], lengths[f], `layers[${l}].${f}`);
  });
  return c;
}
