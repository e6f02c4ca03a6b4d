import type { Backend } from "./backend.js";

/** Matmul weight types of the wasm backend ("f32": as given, the reference). */
export const WEIGHT_TYPES = ["f32", "bf16", "int8"] as const;
export type WeightType = (typeof WEIGHT_TYPES)[number];

/**
 * Backends by name. Built-in backends register themselves lazily; a
 * separately installed package (e.g. a CUDA plug-in) calls registerBackend
 * with its own name and factory.
 */
export interface BackendOptions {
  /** For "wasm": which build to load; "auto" picks relaxed SIMD where the runtime validates it. */
  wasmBuild?: "auto" | "simd" | "relaxed";
  /** For "wasm": threads large matmuls are split over; default os.availableParallelism(). Results do not depend on it. */
  threads?: number;
  /** For "wasm": the folder URL holding ptp-simd.wasm and ptp-relaxed.wasm (default: the package's build/); for browsers. */
  wasmBaseUrl?: string | URL;
  /**
   * For "wasm": matmul weights as given ("f32", default), rounded to bfloat16
   * ("bf16": half the bytes read; the model becomes that bf16 model) or
   * quantised to int8 per group of 32 along K, activations likewise per row
   * ("int8": about a quarter of the bytes; the model becomes that int8 model).
   */
  weights?: WeightType;
  [key: string]: unknown;
}

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
