import { totalmem } from "node:os";
import { kvDim, parameterCount, type ModelConfig } from "../model/config.js";
import type { MemoryEstimate } from "../train/memory.js";
import { UsageError } from "./args.js";
import { MAX_FILE_BYTES } from "../io/errors.js";
import { WASM_MAX_BYTES } from "../backends/wasm/allocator.js";

/** The wasm backend's linear memory is 32-bit: at most 4 GiB, weights and caches together. */
const WASM_LIMIT = WASM_MAX_BYTES;

const gib = (bytes: number): string => (bytes / 2 ** 30).toFixed(1);

/** Bytes of a model's weights and of a KV cache of `rows` rows (keys and values, every layer, float32). */
export function modelMemory(c: ModelConfig, cacheRows: number): { weights: number; cache: number } {
  return { weights: 4 * parameterCount(c), cache: 4 * 2 * c.nLayers * cacheRows * kvDim(c) };
}

/** The most `bytes` may be on this backend and machine, and how to say it; undefined when it fits. */
function beyond(bytes: number, backend: string): string | undefined {
  const machine = totalmem();
  const limit = backend === "wasm" ? Math.min(WASM_LIMIT, machine) : machine;
  if (bytes <= limit) return undefined;
  return limit === WASM_LIMIT ? "the wasm backend's 4 GiB" : `this machine's ${gib(machine)} GiB`;
}

/**
 * Refuses, before anything is allocated, a run whose weights and KV cache
 * would not fit the machine's memory (or the wasm backend's 4 GiB), with a
 * message saying what to lower.
 */
export function checkMemory(what: string, c: ModelConfig, cacheRows: number, backend: string, lower: string): void {
  const { weights, cache } = modelMemory(c, cacheRows);
  const where = beyond(weights + cache, backend);
  if (where !== undefined) {
    throw new Error(`${what} needs about ${gib(weights + cache)} GiB (weights ${gib(weights)} GiB, KV cache of ${cacheRows} rows ${gib(cache)} GiB), more than ${where}; ${lower}`);
  }
}

/**
 * Refuses (exit 2, a usage error: the flags ask for too much) a run
 * whose estimate (src/train/memory.ts) is beyond the machine's memory, or
 * whose per-thread wasm instance is beyond 4 GiB, naming its largest part
 * and the flags that drive the size.
 */
export function refuseBeyondMemory(what: string, e: MemoryEstimate, backend: string, flags: string): void {
  const largest = e.parts[0];
  const where = beyond(e.total, "js") ?? beyond(e.perInstance, backend);
  if (where !== undefined) {
    throw new UsageError(`${what} needs about ${gib(e.total)} GiB (largest part: ${largest.name}, ${gib(largest.bytes)} GiB${e.perInstance > 0 ? `; ${gib(e.perInstance)} GiB per wasm instance` : ""}), more than ${where}; lower ${flags}`);
  }
}

/**
 * A new draft model's weights, before they are made: within the machine's
 * memory (made once, written once: twice their bytes), and within the 2 GiB
 * a ptp file may hold (a larger one could not be read back, and past 2^32
 * values its arrays cannot even be made). The draft has `shape` and the
 * teacher's vocab and seqLen; messages name the shape flags with `prefix`
 * (distill's "draft-").
 */
export function refuseDraftBeyondLimits(teacher: ModelConfig, shape: Pick<ModelConfig, "dim" | "hiddenDim" | "nLayers" | "nHeads" | "nKvHeads">, prefix = ""): void {
  const config = { ...teacher, ...shape, sharedClassifier: true };
  const what = `a draft model of dim ${shape.dim}, hidden ${shape.hiddenDim}, ${shape.nLayers} layers (vocab ${config.vocabSize})`;
  const flags = `--${prefix}dim, --${prefix}hidden or --${prefix}layers`;
  const weightBytes = 4 * parameterCount(config);
  // The file bound first: it does not depend on the machine.
  if (weightBytes > MAX_FILE_BYTES) throw new UsageError(`${what} would be a ${gib(weightBytes)} GiB file, past the 2 GiB a ptp file may hold; lower ${flags}`);
  refuseBeyondMemory(what, { total: 2 * weightBytes, parts: [{ name: "weights", bytes: weightBytes }], perInstance: 0 }, "js", flags);
}
