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

export function registerBackend(name: string, factory: BackendFactory): void {
  if (!/^[a-z][a-z0-9_-]*$/.test(name)) {
    throw new Error(`registerBackend: name must be lower-case letters, digits, '-' or '_', got ${JSON.stringify(name)}`);
  }
  factories.set(name, factory);
}

export function listBackends(): string[] {
  return [...factories.keys()];
}

export const DEFAULT_BACKEND = "wasm";

/** A new backend instance by name ("js", "wasm", or a registered plug-in). */
export async function createBackend(name: string = DEFAULT_BACKEND, options: BackendOptions = {}): Promise<Backend> {
  const factory = factories.get(name);
  if (!factory) {
    throw new Error(`unknown backend ${JSON.stringify(name)}; registered backends: ${listBackends().join(", ")}`);
  }
  return factory(options);
}

registerBackend("js", async () => new (await import("./js/index.js")).JsBackend());
registerBackend("wasm", async (options) => (await import("./wasm/index.js")).createWasmBackend(options));
