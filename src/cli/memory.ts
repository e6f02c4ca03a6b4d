import { totalmem } from "node:os";
import { parameterCount, type ModelConfig } from "../model/config.js";
import type { MemoryEstimate } from "../train/memory.js";
import { UsageError } from "./args.js";
import { MAX_FILE_BYTES } from "../io/errors.js";
import { WASM_MAX_BYTES } from "../backends/wasm/allocator.js";
import { quotePath } from "../io/errors.js";

/** The wasm backend's linear memory is 32-bit: at most 4 GiB, weights and caches together. */
const WASM_LIMIT = WASM_MAX_BYTES;

const gib = (bytes: number): string => (bytes / 2 ** 30).toFixed(1);

/** The most `bytes` may be on this backend and machine, and how to say it; undefined when it fits. */
function beyond(bytes: number, backend: string): string | undefined {
  const machine = totalmem();
  const limit = backend === "wasm" ? Math.min(WASM_LIMIT, machine) : machine;
  if (bytes <= limit) return undefined;
  return limit === WASM_LIMIT ? "the wasm backend's 4 GiB" : `this machine's ${gib(machine)} GiB`;
}

/**
 * The one refusal of a run too large for memory, for every command
 * (generate, pregenerate, distill, train, random-draft): before anything is
 * allocated, a run whose estimate (src/train/memory.ts) is beyond the
 * machine's memory, or whose per-thread wasm instance is beyond 4 GiB, is
 * refused with exit 2 (a usage error: the flags ask for too much) and one
 * line naming its largest part and the flags to lower. `what` names the
 * run without the command (the CLI prefixes it). Where the run reads a
 * model file (`model`) whose weights alone are beyond the limit, no flag
 * can help: the error (exit 1) names the file and its weights instead.
 */
export function refuseBeyondMemory(what: string, e: MemoryEstimate, backend: string, flags: string, model?: string): void {
  const largest = e.parts[0];
  const where = beyond(e.total, "js") ?? beyond(e.perInstance, backend);
  if (where === undefined) return;
  const weights = e.parts.find((p) => p.name === "weights");
  const weightsBeyond = weights && (beyond(weights.bytes, "js") ?? beyond(weights.bytes, backend));
  if (model !== undefined && weightsBeyond !== undefined) {
    const jsFits = backend === "wasm" && beyond(weights!.bytes, "js") === undefined;
    throw new Error(`${quotePath(model)}: the model's weights alone need about ${gib(weights!.bytes)} GiB, more than ${weightsBeyond}${jsFits ? " (--backend js has no 4 GiB bound)" : ""}`);
  }
  throw new UsageError(`${what} needs about ${gib(e.total)} GiB (largest part: ${largest.name}, ${gib(largest.bytes)} GiB${e.perInstance > 0 ? `; ${gib(e.perInstance)} GiB per wasm instance` : ""}), more than ${where}; lower ${flags}`);
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
