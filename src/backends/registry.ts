import { describeValue } from "../util/checks.js";
import { isPlainObject } from "../util/options.js";
import type { Backend, BackendOptions } from "./backend.js";

export type { BackendOptions, WeightType } from "./backend.js";
export { WEIGHT_TYPES } from "./backend.js";

/** Matmul weight types of the wasm backend ("f32": as given, the reference). */

/**
 * Backends by name. Built-in backends register themselves lazily; a
 * separately installed package (e.g. a CUDA plug-in) calls registerBackend
 * with its own name and factory.
 */
export type BackendFactory = (options: BackendOptions) => Backend | Promise<Backend>;

const factories = new Map<string, BackendFactory>();

/** Makes `factory` the backend called `name` (lower-case letters, digits, '-' or '_'); an existing name is replaced. */
export function registerBackend(name: string, factory: BackendFactory): void {
  if (typeof name !== "string" || !/^[a-z][a-z0-9_-]*$/.test(name)) {
    throw new Error(`registerBackend: name must be lower-case letters, digits, '-' or '_', got ${typeof name === "string" ? JSON.stringify(name) : describeValue(name)}`);
  }
  if (typeof factory !== "function") throw new TypeError(`registerBackend: factory must be a function (options) => Backend or Promise<Backend>, got ${describeValue(factory)}`);
  factories.set(name, factory);
}

/** The ops every Backend has (spec/backend.md); a factory's result lacking one is refused by name. */
const REQUIRED_OPS = ["alloc", "upload", "download", "free", "matmul", "rmsnorm", "rope", "attention", "swiglu", "add", "embedding", "softmax", "copy"] as const;

/** The options each built-in backend reads; any other key is a typo that would be ignored. */
const BUILT_IN_OPTIONS: Readonly<Record<string, readonly string[]>> = {
  // threads: js runs on one thread, the results of every thread count are the same.
  js: ["threads", "weights"],
  wasm: ["wasmBuild", "threads", "wasmBaseUrl", "weights", "spawnWorker"],
};

/** Throws unless `options` is an object whose keys the built-in backend `name` reads (plug-ins take their own keys). */
function checkOptions(name: string, options: unknown): asserts options is BackendOptions {
  if (!isPlainObject(options)) {
    throw new TypeError(`createBackend: options must be an object (e.g. { threads: 4 }), got ${describeValue(options)}`);
  }
  const known = BUILT_IN_OPTIONS[name];
  if (!known || factories.get(name) !== BUILT_IN_FACTORIES.get(name)) return;
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) throw new RangeError(`createBackend: unknown option ${JSON.stringify(key)} for the ${name} backend; it reads ${known.join(", ")}`);
  }
  const { weights, threads } = options as BackendOptions;
  // js reads threads only to accept what wasm accepts; a bad count is refused as wasm refuses it.
  if (name === "js" && threads !== undefined && !(typeof threads === "number" && Number.isInteger(threads) && threads >= 1)) {
    throw new RangeError(`createBackend: threads must be a positive integer, got ${describeValue(threads)}`);
  }
  if (name === "js" && weights !== undefined && weights !== "f32") {
    throw new RangeError(`createBackend: the js backend computes in f32 only, got weights ${JSON.stringify(weights)} (bf16 and int8 weights need the wasm backend)`);
  }
}

/** The names of the registered backends, built-ins (js, wasm) first. */
export function listBackends(): string[] {
  return [...factories.keys()];
}

/** The backend createBackend and the CLI use when none is named. */
export const DEFAULT_BACKEND = "wasm";

/** A new backend instance by name ("js", "wasm", or a registered plug-in). */
export async function createBackend(name: string = DEFAULT_BACKEND, options: BackendOptions = {}): Promise<Backend> {
  const factory = typeof name === "string" ? factories.get(name) : undefined;
  if (!factory) {
    throw new Error(`unknown backend ${typeof name === "string" ? JSON.stringify(name) : describeValue(name)}; registered backends: ${listBackends().join(", ")}`);
  }
  checkOptions(name, options);
  const backend = await factory(options);
  const missing = backend !== null && typeof backend === "object" ? REQUIRED_OPS.filter((op) => typeof (backend as unknown as Record<string, unknown>)[op] !== "function") : REQUIRED_OPS;
  if (missing.length > 0 || typeof backend?.name !== "string") {
    throw new TypeError(`createBackend: the factory registered as ${JSON.stringify(name)} returned ${backend !== null && typeof backend === "object" ? `an object that is not a Backend (${missing.length > 0 ? `it lacks ${missing.join(", ")}` : "its name is not a string"})` : describeValue(backend)}`);
  }
  return backend;
}

const BUILT_IN_FACTORIES = new Map<string, BackendFactory>([
  ["js", async () => new (await import("./js/index.js")).JsBackend()],
  ["wasm", async (options) => (await import("./wasm/index.js")).createWasmBackend(options)],
]);
for (const [name, factory] of BUILT_IN_FACTORIES) registerBackend(name, factory);
