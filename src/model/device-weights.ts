import type { Backend, Buffer } from "../backends/backend.js";
import type { LayerWeights, ModelWeights } from "./weights.js";

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

export function freeWeights(backend: Backend, d: DeviceWeights): void {
  const seen = new Set<Buffer>();
  const all = [d.tokenEmbedding, d.rmsFinal, d.wcls, ...d.layers.flatMap((l) => Object.values(l))];
  for (const b of all) if (!seen.has(b)) seen.add(b), backend.free(b);
}
