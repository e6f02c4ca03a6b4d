import { totalmem } from "node:os";
import { kvDim, parameterCount, type ModelConfig } from "../model/config.js";

/** The wasm backend's linear memory is 32-bit: at most 4 GiB, weights and caches together. */
const WASM_LIMIT = 4 * 2 ** 30;

const gib = (bytes: number): string => (bytes / 2 ** 30).toFixed(1);

/** Bytes of a model's weights and of a KV cache of `rows` rows (keys and values, every layer, float32). */
export function modelMemory(c: ModelConfig, cacheRows: number): { weights: number; cache: number } {
  return { weights: 4 * parameterCount(c), cache: 4 * 2 * c.nLayers * cacheRows * kvDim(c) };
}

/**
 * Refuses, before anything is allocated, a run whose weights and KV cache
 * would not fit the machine's memory (or the wasm backend's 4 GiB), with a
 * message saying what to lower.
 */
export function checkMemory(what: string, c: ModelConfig, cacheRows: number, backend: string, lower: string): void {
  const { weights, cache } = modelMemory(c, cacheRows);
  const machine = totalmem();
  const limit = backend === "wasm" ? Math.min(WASM_LIMIT, machine) : machine;
  if (weights + cache > limit) {
    const where = limit === WASM_LIMIT ? "the wasm backend's 4 GiB" : `this machine's ${gib(machine)} GiB`;
    throw new Error(`${what} needs about ${gib(weights + cache)} GiB (weights ${gib(weights)} GiB, KV cache of ${cacheRows} rows ${gib(cache)} GiB), more than ${where}; ${lower}`);
  }
}
