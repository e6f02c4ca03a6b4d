import * as loader from "@assemblyscript/loader";
import { isNode, nodeBuiltin } from "../../host/node-builtin.js";
import { BackendError, hostDataLength, WEIGHT_TYPES, type Backend, type BackendOptions, type Buffer, type DType, type HostArray, type LayerActivations, type LayerShape, type LayerWeightBuffers, type WeightType } from "../backend.js";
import { describeValue } from "../../util/checks.js";
import { ropeAngle } from "../../util/rope-angle.js";
import { ALIGN, FreeListAllocator, OutOfMemoryError, WASM_MAX_PAGES, alignUp } from "./allocator.js";
import { relaxedSimdSupported } from "./detect.js";
import { defaultWorkerSpawner } from "./spawner.js";
import { ThreadPool, type PoolKernels, type WorkerSpawner } from "./threads.js";
import { wasmApi, type WasmMemory, type WasmModule } from "../../util/wasm-api.js";

export { relaxedSimdSupported, simdSupported } from "./detect.js";
export { FreeListAllocator } from "./allocator.js";

// Slots of decoderLayer's argument block (assembly/layer.ts): activations x .. hb2, the two norms'
// weights, the seven matmul weights (wq, wk, wv, wo, w1, w2, w3), their panels, the cache, then the RoPE table and
// the scalars.
const L_X = 0;
const L_RMS_ATT = 9;
const L_W = 11;
const L_PANELS = 18;
const L_KEYS = 25;
const L_TABLE = 27;

/** The names of attention's buffer operands, in argument order. */
const ATTENTION_OPERANDS = ["out", "q", "keys", "values"] as const;

/**
 * The WASM SIMD backend: AssemblyScript kernels (assembly/, exported by index.ts) compiled
 * to two builds, plain SIMD and relaxed SIMD (FMA where the hardware has it).
 *
 * The kernels work on raw pointers; this side owns the memory. Buffers are
 * blocks of the module's linear memory handed out by a first-fit free-list
 * allocator; scratch space (a call's RoPE cos/sin rows, attention scores)
 * lives in reusable blocks that only grow when a call needs more.
 */

export type WasmBuild = "simd" | "relaxed";

/** The exports of build/ptp-*.wasm (byte pointers are numbers). */
export interface Kernels extends PoolKernels {
  memory: WasmMemory;
  heapBase(): number;
  matmul(y: number, x: number, w: number, M: number, K: number, N: number): void;
  /** Columns n0 .. n1-1 of y = x W^T; `packed` is 0 or w's panels (see packPanels). */
  gemm(y: number, x: number, w: number, packed: number, M: number, K: number, N: number, n0: number, n1: number): void;
  packedBytes(K: number, N: number): number;
  packPanels(dst: number, w: number, K: number, N: number): void;
  /** w [N, K] (N a multiple of 4) into its panels where it lies, through `scratch` (inPlaceScratchBytes(K) bytes); the same bytes packPanels writes. */
  packPanelsInPlace(w: number, K: number, N: number, scratch: number): void;
  /** The inverse of packPanelsInPlace. */
  unpackPanelsInPlace(w: number, K: number, N: number, scratch: number): void;
  inPlaceScratchBytes(K: number): number;
  /** `gemm` with w rounded to bf16, reading the panels packPanelsBf16 made. */
  gemmBf16(y: number, x: number, w: number, packed: number, M: number, K: number, N: number, n0: number, n1: number): void;
  packedBytesBf16(K: number, N: number): number;
  packPanelsBf16(dst: number, w: number, K: number, N: number): void;
  /** Columns n0 .. n1-1 of y = x W^T with int8 weights: `xq` from quantizeRowsInt8, `packed` from packPanelsInt8 (assembly/int8.ts). */
  gemmInt8(y: number, xq: number, packed: number, M: number, K: number, N: number, n0: number, n1: number): void;
  packedBytesInt8(K: number, N: number): number;
  packPanelsInt8(dst: number, w: number, K: number, N: number): void;
  quantizedRowsBytes(M: number, K: number): number;
  quantizeRowsInt8(dst: number, x: number, M: number, K: number): void;
  int8GroupSize(): number;
  rmsnorm(y: number, x: number, weight: number, M: number, D: number, eps: number): void;
  rope(x: number, table: number, M: number, nHeads: number, headSize: number): void;
  attention(out: number, q: number, keys: number, values: number, mask: number, hasMask: number, M: number, nKeys: number, nHeads: number, nKvHeads: number, headSize: number, scratch: number): void;
  /** Query heads h0 .. h1-1 of `attention` (scratch: nHeads * nKeys * 8 bytes). */
  attentionHeads(out: number, q: number, keys: number, values: number, mask: number, hasMask: number, M: number, nKeys: number, nHeads: number, nKvHeads: number, headSize: number, scratch: number, h0: number, h1: number): void;
  /**
   * y = x W^T with weights of type `weights` (WEIGHT_TYPES index) read from
   * their panels, split over the pool's threads when large enough (`ctrl`:
   * the pool's control block, 0 for the calling thread alone); x goes into
   * `xq` first (productScratchBytes; assembly/pool.ts).
   */
  product(ctrl: number, threads: number, weights: number, y: number, x: number, w: number, packed: number, xq: number, M: number, K: number, N: number): void;
  /** Bytes of the scratch `xq` product needs for M rows of K inputs (int8's quantised rows, f32 and bf16 quads and triples interleaved; 0: none). */
  productScratchBytes(weights: number, M: number, K: number): number;
  /** `attention`, split over the pool's threads by query heads when large enough (`pairs`: the (row, key) pairs it visits at most). */
  attend(ctrl: number, threads: number, out: number, q: number, keys: number, values: number, mask: number, hasMask: number, M: number, nKeys: number, nHeads: number, nKvHeads: number, headSize: number, scratch: number, pairs: number): void;
  /** One decoder layer (assembly/layer.ts) from the i32 argument block at `args`. */
  decoderLayer(ctrl: number, threads: number, args: number): void;
  decoderLayerSlots(): number;
  /** Ops split over the pool's threads so far. */
  poolJobs(ctrl: number): number;
  poolBytes(): number;
  /** Test hook: the bounds of a job's chunks (i32 at out), returns their count. */
  guidedChunks(out: number, total: number, threads: number, align: number, minChunk: number): number;
  poolMaxChunks(): number;
  swiglu(y: number, gate: number, up: number, n: number): void;
  add(y: number, x: number, n: number): void;
  embedding(y: number, table: number, ids: number, M: number, D: number): void;
  /** `embedding` from a table packed into panels in place (packPanelsInPlace with K = D). */
  embeddingPanels(y: number, panels: number, ids: number, M: number, D: number): void;
  softmax(x: number, M: number, N: number): void;
  argmaxRows(out: number, x: number, M: number, N: number): void;
  pickRows(out: number, x: number, M: number, N: number, t: number, us: number, scratch: number): void;
  tokenProbabilities(out: number, x: number, M: number, N: number, t: number, tokens: number): void;
  /** Test hook: y[i] = the sampling kernel's exp of x[i], which must equal fround(Math.exp(x[i])). */
  expRows(y: number, x: number, n: number): void;
  copyBytes(dst: number, src: number, n: number): void;
  zeroBytes(dst: number, n: number): void;
  /** Benchmark only: `iters` rounds of 12 independent f32x4 multiply-adds. */
  fmaPeak(iters: number): number;
  /** Benchmark only: `iters` rounds of 12 independent i32x4.dot_i16x8_s + add (the int8 kernels' pair dot). */
  dotPeak(iters: number): number;
}

const BYTES: Record<DType, number> = { f32: 4, i32: 4, u8: 1 };

/** Closes the thread pool of a backend that was garbage-collected without dispose(). */
const poolReaper = typeof FinalizationRegistry === "function" ? new FinalizationRegistry<ThreadPool>((pool) => pool.close()) : undefined;

/** True when W holds panels for K inputs and N outputs (made by an earlier matmul, not dropped since). */
function hasPanels(W: WasmBuffer, K: number, N: number): boolean {
  return W.packedPtr !== 0 && W.packedK === K && W.packedN === N;
}

class WasmBuffer implements Buffer {
  freed = false;
  /** Panels of this buffer as a matmul weight (0: none yet), valid for `packedK` x `packedN`. */
  packedPtr = 0;
  /** The panels are the buffer's own memory (packedPtr === ptr): its first packedK x packedN floats hold panels, not rows, until unpack puts the rows back. */
  panelsInPlace = false;
  packedK = 0;
  packedN = 0;
  /** The type matmuls read this buffer in as their weight (its index in WEIGHT_TYPES; setWeightType), or -1: the backend's. */
  weightIndex = -1;
  constructor(
    readonly owner: WasmBackend,
    readonly dtype: DType,
    readonly length: number,
    readonly ptr: number,
  ) {}
  get byteLength(): number {
    return this.length * BYTES[this.dtype];
  }
}

/**
 * The URL of a build's .wasm file: in `baseUrl` (a folder URL ending in "/",
 * e.g. where a web page serves ptp-simd.wasm and ptp-relaxed.wasm) when
 * given, else in the package's build/ folder (from src/backends/wasm and
 * dist/backends/wasm alike).
 */
export function wasmBuildUrl(build: WasmBuild, baseUrl?: string | URL): URL {
  if (baseUrl !== undefined) return new URL(`ptp-${build}.wasm`, baseUrl);
  return build === "relaxed" ? new URL("../../../build/ptp-relaxed.wasm", import.meta.url) : new URL("../../../build/ptp-simd.wasm", import.meta.url);
}

/** Resolves "auto" and checks that the runtime supports the requested build. */
export function resolveWasmBuild(requested: "auto" | WasmBuild = "auto"): WasmBuild {
  if (requested === "auto") return relaxedSimdSupported() ? "relaxed" : "simd";
  if (requested === "relaxed") {
    if (!relaxedSimdSupported()) {
      throw new Error("wasm backend: the relaxed SIMD build was requested but this runtime does not support relaxed SIMD; " + 'run Node with --experimental-wasm-relaxed-simd (needed on Node 20) or choose wasmBuild "simd"');
    }
    return "relaxed";
  }
  if (requested === "simd") return "simd";
  throw new Error(`wasm backend: unknown wasmBuild ${JSON.stringify(requested)}; expected "auto", "simd" or "relaxed"`);
}

async function loadBytes(url: URL): Promise<Uint8Array> {
  try {
    if (url.protocol === "file:") {
      return nodeBuiltin<typeof import("node:fs")>("node:fs", `reading ${url.href}`, "serve the .wasm files and pass options.wasmBaseUrl").readFileSync(url);
    }
    const res = await fetch(url);
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    return new Uint8Array(await res.arrayBuffer());
  } catch (e) {
    throw new Error(`wasm backend: the WASM build is missing or unreadable at ${url.href} (${(e as Error).message}); run \`npm run build:wasm\``);
  }
}

function requireWasm() {
  const api = wasmApi();
  if (!api) throw new Error("wasm backend: this runtime has no WebAssembly support");
  return api;
}

const compiled = new Map<string, Promise<WasmModule>>();

/** Compiles a build (by URL) once per process; every backend instance gets its own instance and memory. */
function compileBuild(build: WasmBuild, baseUrl?: string | URL): Promise<WasmModule> {
  const url = wasmBuildUrl(build, baseUrl);
  let p = compiled.get(url.href);
  if (!p) {
    p = loadBytes(url).then((bytes) => requireWasm().compile(bytes));
    compiled.set(url.href, p);
    p.catch(() => compiled.delete(url.href));
  }
  return p;
}

/** Pages of the shared memory at start; it grows to WASM_MAX_PAGES at most (the module imports it; see asconfig.json). */
const INITIAL_PAGES = 16;

interface SharedInstance {
  kernels: Kernels;
  module: WasmModule;
  memory: WasmMemory;
}

async function instantiateShared(build: WasmBuild, baseUrl?: string | URL): Promise<SharedInstance> {
  const module = await compileBuild(build, baseUrl);
  const WA = globalThis as unknown as { WebAssembly: { Memory: new (d: { initial: number; maximum: number; shared: boolean }) => WasmMemory } };
  const memory = new WA.WebAssembly.Memory({ initial: INITIAL_PAGES, maximum: WASM_MAX_PAGES, shared: true });
  // The AssemblyScript loader supplies the runtime imports and turns a kernel
  // abort into an Error carrying its message and source location.
  // env.exp: the host's Math.exp, which the sampling kernel calls for the rare exponentials it cannot settle itself.
  const imports = { env: { memory, exp: Math.exp } };
  // The kernels are the instance's own exports, not the loader's demangled copies: those wrap
  // every function in a rest-and-spread closure (for optional arguments, which no kernel has),
  // a cost on every call and more code for the JIT to compile into each caller.
  const { instance } = await loader.instantiate<Record<string, unknown>>(module as never, imports as never);
  return { kernels: instance.exports as unknown as Kernels, module, memory };
}

/**
 * A fresh instance of a build's kernels, with its own (shared) memory, which
 * the kernels import and export again as `memory`.
 */
export async function instantiateBuild(build: WasmBuild): Promise<Kernels> {
  return (await instantiateShared(build)).kernels;
}

/** The most threads a wasm backend runs (the pool's control block and chunk counts are sized for it). */
export const MAX_THREADS = 256;

/** The default thread count: the cores this process may use (Node), or navigator.hardwareConcurrency (browsers), at most MAX_THREADS. */
export function defaultThreads(): number {
  const nav = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator;
  const cores = isNode() ? nodeBuiltin<typeof import("node:os")>("node:os", "defaultThreads", "").availableParallelism() : (nav?.hardwareConcurrency ?? 1);
  return Math.min(MAX_THREADS, Math.max(1, cores));
}

/**
 * Why threads cannot be used here, or undefined where they can: worker
 * threads share the WASM memory, which a browser allows only on a
 * cross-origin isolated page (served with COOP/COEP headers).
 */
export function threadsUnavailableReason(): string | undefined {
  const g = globalThis as { crossOriginIsolated?: boolean; SharedArrayBuffer?: unknown };
  if (g.crossOriginIsolated === false || typeof g.SharedArrayBuffer !== "function") {
    return "one thread: this page is not cross-origin isolated, so worker threads cannot share the WASM memory " + "(serve it with the headers Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp)";
  }
  return undefined;
}

/**
 * Creates the wasm backend; options.wasmBuild is "auto" (default), "simd" or
 * "relaxed"; options.threads (undefined or null: the default, defaultThreads()) is how many
 * threads large matmuls are split over (output columns, never K); where
 * threads are unavailable (a browser page that is not cross-origin
 * isolated) it runs on one thread and says why in `threadNote`.
 * options.wasmBaseUrl is the folder URL the .wasm builds are fetched from
 * (default: the package's build/).
 */
export async function createWasmBackend(options: BackendOptions = {}): Promise<WasmBackend> {
  const build = resolveWasmBuild(options.wasmBuild ?? "auto");
  const requested = options.threads ?? defaultThreads();
  if (typeof requested !== "number" || !Number.isInteger(requested) || requested < 1 || requested > MAX_THREADS) {
    throw new Error(`wasm backend: threads must be an integer from 1 to ${MAX_THREADS}, got ${describeValue(requested)}`);
  }
  const baseUrl = options.wasmBaseUrl;
  if (baseUrl !== undefined && typeof baseUrl !== "string" && !(baseUrl instanceof URL)) {
    throw new Error(`wasm backend: wasmBaseUrl must be a string or URL, got ${describeValue(baseUrl)}`);
  }
  if (options.spawnWorker !== undefined && typeof options.spawnWorker !== "function") throw new Error(`wasm backend: spawnWorker must be a function (a WorkerSpawner, src/backends/wasm/threads.ts), got ${describeValue(options.spawnWorker)}`);
  const weights = options.weights ?? "f32";
  if (!(WEIGHT_TYPES as readonly unknown[]).includes(weights)) throw new Error(`wasm backend: weights must be ${WEIGHT_TYPES.map((t) => `"${t}"`).join(", ")}, got ${JSON.stringify(weights)}`);
  const note = requested > 1 ? threadsUnavailableReason() : undefined;
  const inst = await instantiateShared(build, baseUrl);
  const backend = new WasmBackend(inst.kernels, build, note ? 1 : requested, inst.module, options.spawnWorker as WorkerSpawner | undefined, weights);
  backend.threadNote = note;
  // Every entry point (CLI, library, demo) gets running workers: ops are synchronous,
  // so the pool must be up before the first one.
  try {
    await backend.startThreads();
  } catch (e) {
    // The workers that did start are stopped: nothing else holds this backend to dispose it.
    backend.dispose();
    const message = e instanceof Error ? e.message : String(e);
    throw new Error(message.startsWith("wasm backend:") ? message : `wasm backend: a worker thread failed to start: ${message}`, { cause: e });
  }
  return backend;
}

/** Floats the RoPE rows by position may hold (16 MiB); positions past them are computed per call. */
const ROPE_TABLE_FLOATS = 1 << 22;

/** One position's RoPE row: (cos, sin) of every pair's angle, rounded to f32, written at `t`. */
function ropeRow(out: Float32Array, t: number, p: number, headSize: number, theta: number): void {
  for (let i = 0; i < headSize; i += 2) {
    const angle = ropeAngle(p, i, headSize, theta);
    out[t + i] = Math.cos(angle);
    out[t + i + 1] = Math.sin(angle);
  }
}

export class WasmBackend implements Backend {
  readonly name = "wasm";
  readonly description: string;
  readonly build: WasmBuild;

  private readonly k: Kernels;
  private readonly heap: FreeListAllocator;
  private isDisposed = false;
  /** True once dispose() ran (Backend.disposed). */
  get disposed(): boolean {
    return this.isDisposed;
  }

  // Views over the current memory.buffer, re-created after every growth.
  private viewGeneration = -1;
  private u8v!: Uint8Array;
  private i32v!: Int32Array;
  private f32v!: Float32Array;

  // One reusable scratch block (attention scores).
  private readonly scratchBlock = { ptr: 0, bytes: 0 };
  /** Scratch of the in-place (un)packing (its own: packing runs while an op holds scratchBlock). */
  private readonly packBlock = { ptr: 0, bytes: 0 };
  // A call's RoPE cos/sin rows (see ropeTable), copied from the rows by position of its
  // (headSize, theta): rows of positions 0 .. length / headSize - 1, kept per (headSize, theta)
  // since models of different head sizes may share a backend (a teacher and its draft);
  // ropeRows is those of the latest call.
  private readonly ropeBlock = { ptr: 0, bytes: 0 };
  private readonly ropeTables = new Map<string, Float32Array>();
  private ropeRows: Float32Array = new Float32Array(0);
  private ropeHeadSize = 0;
  private ropeTheta = 0;

  /** Threads a large matmul is split over (1: the calling thread only). */
  readonly threads: number;
  private readonly module: WasmModule | undefined;
  private pool: ThreadPool | undefined;
  /** Ops (matmuls, attention) split over threads so far (for tests and diagnostics). */
  get threadedCalls(): number {
    return this.pool ? this.k.poolJobs(this.pool.ctrl) : 0;
  }
  /** Set when more threads were asked for than could be used, saying why (see threadsUnavailableReason). */
  threadNote: string | undefined;

  private readonly spawn: WorkerSpawner;

  /**
   * Matmul weights as given ("f32"), rounded to bfloat16 ("bf16", read from
   * half-size panels) or quantised to int8 per group of 32 along K with
   * activations quantised the same way per row ("int8"; assembly/int8.ts).
   */
  readonly weights: WeightType;
  /** `weights` as the kernels take it: its index in WEIGHT_TYPES. */
  private readonly weightIndex: number;

  /**
   * `threads` > 1 needs the compiled `module` (workers instantiate it on the
   * same shared memory); the pool starts at once, and its workers join the
   * ops as soon as they run (checked with an atomic load, so synchronous
   * callers use them too). `spawn` starts one worker (default: Node's
   * worker_threads; a browser build passes a Web Worker spawner).
   */
  constructor(kernels: Kernels, build: WasmBuild, threads = 1, module?: WasmModule, spawn: WorkerSpawner = defaultWorkerSpawner(), weights: WeightType = "f32") {
    this.k = kernels;
    this.build = build;
    this.module = module;
    this.spawn = spawn;
    this.weights = weights;
    this.weightIndex = WEIGHT_TYPES.indexOf(weights);
    this.threads = module ? threads : 1;
    this.description = (build === "relaxed" ? "wasm (relaxed SIMD" : "wasm (SIMD") + (weights === "f32" ? ")" : `, ${weights} weights)`);
    this.heap = new FreeListAllocator(kernels.memory, kernels.heapBase());
    this.ensurePool();
  }

  // ---- memory -------------------------------------------------------------

  alloc(length: number, dtype: DType = "f32"): Buffer {
    this.alive();
    if (!Number.isInteger(length) || length < 0) throw this.err(`alloc: length must be a non-negative integer, got ${length}`);
    if (!(dtype in BYTES)) throw this.err(`alloc: unknown dtype ${JSON.stringify(dtype)}`);
    const bytes = length * BYTES[dtype];
    const ptr = this.allocBytes(bytes);
    this.k.zeroBytes(ptr, alignUp(Math.max(bytes, 1), ALIGN));
    return new WasmBuffer(this, dtype, length, ptr);
  }

  upload(buf: Buffer, data: HostArray, offset = 0): void {
    const b = this.buf(buf, "upload");
    hostDataLength(this.name, "upload", data);
    if (!Number.isInteger(offset) || offset < 0 || offset + data.length > b.length) {
      throw this.err(`upload: ${data.length} elements at offset ${offset} do not fit a buffer of ${b.length}`);
    }
    this.unpack(b);
    this.view(b.dtype).set(data, this.index(b) + offset);
  }

  hostView(buf: Buffer, access: "read" | "write" = "write"): Float32Array {
    if (access !== "read" && access !== "write") throw this.err(`hostView: access must be "read" or "write", got ${JSON.stringify(access)}`);
    // Panels in the rows' place become rows (buf); panels of their own go only where the caller writes the rows.
    const b = this.buf(buf, "hostView");
    if (b.dtype !== "f32") throw this.err(`hostView: expected an f32 buffer, got ${b.dtype}`);
    if (access === "write") this.unpack(b);
    return new Float32Array(this.k.memory.buffer, b.ptr, b.length);
  }

  // Downloads read a weight's rows out of its panels where they lie in its place (rowsOutOfPanels): a
  // read leaves them, so the next matmul does not pack the weight again (a host table fetched mid-decode).
  download(buf: Buffer, offset = 0, length?: number): Float32Array {
    const b = this.buf(buf, "download", true);
    length ??= b.length - offset;
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > b.length) {
      throw this.err(`download: range [${offset}, ${offset + length}) is outside a buffer of ${b.length}`);
    }
    if (b.panelsInPlace) {
      const out = new Float32Array(length);
      this.rowsOutOfPanels(b, out, offset);
      return out;
    }
    const start = this.index(b) + offset;
    // f32: one copy out of the shared memory (slice); other dtypes convert element by element.
    if (b.dtype === "f32") return (this.view("f32") as Float32Array).slice(start, start + length);
    return Float32Array.from(this.view(b.dtype).subarray(start, start + length));
  }

  downloadInto(buf: Buffer, out: Float32Array, offset = 0): void {
    const b = this.buf(buf, "downloadInto", true);
    if (!(out instanceof Float32Array)) throw this.err("downloadInto: out must be a Float32Array");
    if (!Number.isInteger(offset) || offset < 0 || offset + out.length > b.length) {
      throw this.err(`downloadInto: range [${offset}, ${offset + out.length}) is outside a buffer of ${b.length}`);
    }
    if (b.panelsInPlace) return this.rowsOutOfPanels(b, out, offset);
    const start = this.index(b) + offset;
    out.set(this.view(b.dtype).subarray(start, start + out.length));
  }

  /**
   * Floats [offset, offset + out.length) of a weight whose panels lie in its
   * place, as rows: element (n, k) of the packedN x packedK rows sits at
   * float (n >> 2) * 4K + 4k + (n & 3) (packPanels, N a multiple of 4);
   * floats past the panels are rows as they were.
   */
  private rowsOutOfPanels(b: WasmBuffer, out: Float32Array, offset: number): void {
    const f = this.view("f32") as Float32Array;
    const base = this.index(b),
      K = b.packedK,
      packed = K * b.packedN,
      end = offset + out.length;
    let i = offset;
    while (i < Math.min(end, packed)) {
      const n = Math.floor(i / K),
        k0 = i - n * K,
        k1 = Math.min(K, k0 + (end - i));
      let src = base + (n >> 2) * 4 * K + (n & 3) + 4 * k0;
      let dst = i - offset;
      for (let k = k0; k < k1; k++, src += 4) out[dst++] = f[src];
      i += k1 - k0;
    }
    if (end > i) out.set(f.subarray(base + i, base + end), i - offset);
  }

  free(buf: Buffer): void {
    // dispose() released everything: a model or cache freed after its backend (in either order) is no error.
    if (this.isDisposed) return;
    const b = this.buf(buf, "free", true);
    // Panels in place need not become rows again: the memory goes.
    if (b.panelsInPlace) this.dropPanelsInPlace(b);
    else this.unpack(b);
    b.freed = true;
    this.heap.release(b.ptr);
  }

  dispose(): void {
    if (this.isDisposed) return;
    this.isDisposed = true;
    this.pool?.close();
    if (this.pool) poolReaper?.unregister(this);
    this.pool = undefined;
  }

  /**
   * Resolves when the worker threads (started with the backend) are running.
   * `createWasmBackend` awaits this, so a backend from it uses its threads
   * from the first op; ops before then run on the calling thread alone, with
   * the same results.
   */
  async startThreads(): Promise<void> {
    this.alive();
    await this.ensurePool()?.whenReady();
  }

  /** True when the worker threads are running (always false with 1 thread). */
  get threadsReady(): boolean {
    return this.pool?.ready ?? false;
  }

  /** Chunks of work (matmul column ranges, attention heads) that worker threads computed so far. */
  get workerChunks(): number {
    return this.pool?.workerChunks ?? 0;
  }

  private ensurePool(): ThreadPool | undefined {
    if (this.threads > 1 && !this.pool && this.module && !this.isDisposed) {
      // The pool's control block lives as long as the backend (never freed: a terminated worker may touch it late).
      const ctrl = this.allocBytes(this.k.poolBytes());
      this.k.zeroBytes(ctrl, alignUp(this.k.poolBytes(), ALIGN));
      this.pool = new ThreadPool(this.threads, this.module, this.k.memory, ctrl, this.k, this.spawn);
      // A backend dropped without dispose() still stops its workers (they hold its memory).
      poolReaper?.register(this, this.pool, this);
    }
    return this.pool;
  }

  /** Bytes held by live buffers and scratch (for tests and diagnostics). */
  get liveBytes(): number {
    return this.heap.liveBytes;
  }

  /** Size of the WASM memory in bytes. */
  get memoryBytes(): number {
    return this.heap.memoryBytes;
  }

  // ---- ops ----------------------------------------------------------------

  matmul(y: Buffer, x: Buffer, w: Buffer, M: number, K: number, N: number): void {
    this.dim("matmul", "M", M);
    this.dim("matmul", "K", K);
    this.dim("matmul", "N", N);
    const Y = this.f32(y, M * N, "matmul y"),
      X = this.f32(x, M * K, "matmul x"),
      W = this.typed(w, "f32", N * K, "matmul w", true);
    if (M === 0 || N === 0) return;
    // Every weight gets panels (assembly/gemm.ts; bf16.ts and int8.ts at half and a quarter of the
    // bytes), made on its first use; x goes into scratch first, once, before any split (int8
    // quantised, three or more rows interleaved in quads and triples).
    const type = W.weightIndex < 0 ? this.weightIndex : W.weightIndex;
    const xBytes = this.k.productScratchBytes(type, M, K);
    const xq = xBytes > 0 ? this.scratch(xBytes) : 0;
    this.unpack(Y);
    this.k.product(this.ctrl(), this.threads, type, Y.ptr, X.ptr, W.ptr, this.panels(W, K, N, W !== X && W !== Y), xq, M, K, N);
  }

  /**
   * Matmuls read `w` as their weight in `type` from now on, whatever the
   * backend's `weights` (e.g. a draft head's classifier in int8 beside an
   * f32 teacher). Its panels are remade at the next matmul. decoderLayer
   * refuses a layer weight whose type is not the backend's.
   */
  setWeightType(w: Buffer, type: WeightType): void {
    const W = this.buf(w, "setWeightType");
    if (W.dtype !== "f32") throw this.err(`setWeightType: a matmul weight is an f32 buffer, got ${W.dtype}`);
    const index = WEIGHT_TYPES.indexOf(type);
    if (index < 0) throw this.err(`setWeightType: the type must be ${WEIGHT_TYPES.map((t) => `"${t}"`).join(", ")}, got ${JSON.stringify(type)}`);
    const own = index === this.weightIndex ? -1 : index;
    if (own === W.weightIndex) return;
    this.unpack(W);
    W.weightIndex = own;
  }

  /** The pool's control block while its workers run, else 0 (every op on the calling thread). */
  private ctrl(): number {
    return this.pool?.ready ? this.pool.ctrl : 0;
  }

  /**
   * The packed panels of a large weight (made on its first use as a matmul
   * weight, kept until the buffer is written to or freed). They change only
   * the memory layout, never the order of float operations.
   */
  private panels(W: WasmBuffer, K: number, N: number, inPlace: boolean): number {
    return hasPanels(W, K, N) ? W.packedPtr : this.pack(W, K, N, inPlace);
  }

  /** panels' slow path, kept out of line so that the hot callers stay small to compile. */
  private pack(W: WasmBuffer, K: number, N: number, inPlace: boolean): number {
    this.unpack(W);
    const type = W.weightIndex < 0 ? this.weights : WEIGHT_TYPES[W.weightIndex];
    // f32 panels hold the same floats as the rows, so with whole panels (N a multiple of 4) they take the rows' place:
    // no second copy of the model (loading a 110M model touched 440 MB of fresh pages for it, about 1.5 s on this VM).
    // Not when W is also an operand the op reads or writes as rows (inPlace false).
    if (type === "f32" && inPlace && N % 4 === 0) {
      this.ensure(this.packBlock, this.k.inPlaceScratchBytes(K));
      this.k.packPanelsInPlace(W.ptr, K, N, this.packBlock.ptr);
      W.packedPtr = W.ptr;
      W.panelsInPlace = true;
      W.packedK = K;
      W.packedN = N;
      return W.ptr;
    }
    const [bytes, pack] = type === "bf16" ? [this.k.packedBytesBf16, this.k.packPanelsBf16] : type === "int8" ? [this.k.packedBytesInt8, this.k.packPanelsInt8] : [this.k.packedBytes, this.k.packPanels];
    const ptr = this.allocBytes(Math.max(1, bytes(K, N)));
    pack(ptr, W.ptr, K, N);
    W.packedPtr = ptr;
    W.packedK = K;
    W.packedN = N;
    return ptr;
  }

  /** Drops a buffer's packed panels: every op calls it on what it writes (upload, copy and each op's output), so panels never outlive a write. */
  private unpack(b: WasmBuffer): void {
    if (b.panelsInPlace) {
      // Its rows are read or written: put them back (the panels are remade at the next matmul).
      this.ensure(this.packBlock, this.k.inPlaceScratchBytes(b.packedK));
      this.k.unpackPanelsInPlace(b.ptr, b.packedK, b.packedN, this.packBlock.ptr);
      this.dropPanelsInPlace(b);
    } else if (b.packedPtr !== 0) {
      this.heap.release(b.packedPtr);
      b.packedPtr = 0;
    }
  }

  private dropPanelsInPlace(b: WasmBuffer): void {
    b.panelsInPlace = false;
    b.packedPtr = 0;
  }

  rmsnorm(y: Buffer, x: Buffer, weight: Buffer, M: number, D: number, eps: number): void {
    this.dim("rmsnorm", "M", M);
    this.dim("rmsnorm", "D", D);
    const Y = this.f32(y, M * D, "rmsnorm y"),
      X = this.f32(x, M * D, "rmsnorm x"),
      G = this.f32(weight, D, "rmsnorm weight");
    this.unpack(Y);
    this.k.rmsnorm(Y.ptr, X.ptr, G.ptr, M, D, eps);
  }

  rope(x: Buffer, positions: Buffer, M: number, nHeads: number, headSize: number, theta: number): void {
    this.dim("rope", "M", M);
    this.dim("rope", "nHeads", nHeads);
    this.dim("rope", "headSize", headSize);
    if (headSize % 2 !== 0) throw this.err(`rope: headSize must be even, got ${headSize}`);
    const X = this.f32(x, M * nHeads * headSize, "rope x");
    const P = this.typed(positions, "i32", M, "rope positions");
    const table = this.ropeTable(P, M, headSize, theta);
    this.unpack(X);
    this.k.rope(X.ptr, table, M, nHeads, headSize);
  }

  /**
   * The cos/sin table of this call's rows, one (cos, sin) per pair of a
   * head, rounded to f32, from the shared angle recipe. Rows are copied from
   * a table by position, made once per (headSize, theta) and grown when a
   * larger position comes, so a decode step computes no angle; a position
   * past the table's cap is computed on its own.
   */
  private ropeTable(P: WasmBuffer, M: number, headSize: number, theta: number): number {
    if (headSize !== this.ropeHeadSize || !Object.is(theta, this.ropeTheta)) {
      this.ropeRows = this.ropeTables.get(`${headSize} ${theta}`) ?? new Float32Array(0);
      this.ropeHeadSize = headSize;
      this.ropeTheta = theta;
    }
    this.ensure(this.ropeBlock, M * headSize * 4);
    const pos = this.i32v,
      p0 = P.ptr >>> 2;
    let last = -1;
    for (let m = 0; m < M; m++) last = Math.max(last, pos[p0 + m]);
    if (last >= this.ropeRows.length / headSize) this.growRope(last);
    const rows = this.ropeRows,
      known = rows.length / headSize,
      f32 = this.f32v;
    for (let m = 0, t = this.ropeBlock.ptr >>> 2; m < M; m++, t += headSize) {
      const p = pos[p0 + m];
      if (p >= 0 && p < known) for (let i = 0, r = p * headSize; i < headSize; i++) f32[t + i] = rows[r + i];
      else ropeRow(f32, t, p, headSize, theta);
    }
    return this.ropeBlock.ptr;
  }

  /** Grows the rows by position to cover `last` (doubling, at least 256 positions, at most ROPE_TABLE_FLOATS floats). */
  private growRope(last: number): void {
    const hs = this.ropeHeadSize,
      cap = Math.floor(ROPE_TABLE_FLOATS / hs),
      old = this.ropeRows.length / hs;
    let n = Math.max(256, old);
    while (n <= last && n < cap) n *= 2;
    n = Math.min(n, cap);
    if (n <= old) return;
    const rows = new Float32Array(n * hs);
    rows.set(this.ropeRows);
    for (let p = old; p < n; p++) ropeRow(rows, p * hs, p, hs, this.ropeTheta);
    this.ropeRows = rows;
    this.ropeTables.set(`${hs} ${this.ropeTheta}`, rows);
  }

  attention(out: Buffer, q: Buffer, keys: Buffer, values: Buffer, mask: Buffer | null, M: number, nKeys: number, nHeads: number, nKvHeads: number, headSize: number): void {
    this.attentionOperands("attention", out, q, keys, values, M, nKeys, nHeads, nKvHeads, headSize);
    const maskPtr = mask ? this.denseMask("attention", mask, M, nKeys) : 0;
    if (!mask && M > 0 && nKeys < M) throw this.err(`attention: row 0 sees no key (causal default with ${nKeys} keys for ${M} rows)`);
    if (M === 0) return;
    this.runAttention(out, q, keys, values, maskPtr, mask ? 1 : 0, M, nKeys, nHeads, nKvHeads, headSize, M * nKeys);
  }

  attentionSparse(out: Buffer, q: Buffer, keys: Buffer, values: Buffer, rows: Buffer, M: number, nKeys: number, nHeads: number, nKvHeads: number, headSize: number): void {
    this.attentionOperands("attentionSparse", out, q, keys, values, M, nKeys, nHeads, nKvHeads, headSize);
    const nnz = this.sparseRows("attentionSparse", rows, M, nKeys);
    if (M === 0) return;
    this.runAttention(out, q, keys, values, (rows as WasmBuffer).ptr, 2, M, nKeys, nHeads, nKvHeads, headSize, nnz);
  }

  /** Checks a dense attention mask [M, nKeys] (u8, every row sees a key) and returns its address. */
  private denseMask(op: string, mask: Buffer, M: number, nKeys: number): number {
    const Mk = this.typed(mask, "u8", M * nKeys, `${op} mask`);
    const u8 = this.view("u8") as Uint8Array;
    for (let m = 0; m < M; m++) {
      let any = false;
      for (let j = Mk.ptr + m * nKeys, end = j + nKeys; j < end; j++) {
        if (u8[j] !== 0) {
          any = true;
          break;
        }
      }
      if (!any) throw this.err(`${op}: row ${m} sees no key`);
    }
    return Mk.ptr;
  }

  /** Checks a sparse mask (attentionSparse's `rows`: offsets [M + 1], then strictly increasing keys below nKeys, at least one a row) and returns how many keys it lists. */
  private sparseRows(op: string, rows: Buffer, M: number, nKeys: number): number {
    const offsets = this.typed(rows, "i32", M + 1, `${op} rows`);
    const i32 = this.view("i32") as Int32Array,
      base = offsets.ptr >>> 2;
    const nnz = i32[base + M];
    this.typed(rows, "i32", M + 1 + Math.max(0, nnz), `${op} rows`);
    // The kernel trusts the indices: check them here (linear in the visible keys).
    if (i32[base] !== 0) throw this.err(`${op}: offsets[0] must be 0, got ${i32[base]}`);
    for (let m = 0; m < M; m++) {
      const from = i32[base + m],
        to = i32[base + m + 1];
      if (!(to > from)) throw this.err(`${op}: row ${m} sees no key`);
      for (let t = from, prev = -1; t < to; t++) {
        const j = i32[base + M + 1 + t];
        if (!(j > prev && j < nKeys)) throw this.err(`${op}: row ${m}'s keys must increase within [0, ${nKeys}), got ${j} after ${prev}`);
        prev = j;
      }
    }
    return nnz;
  }

  /** The attention kernel, split over the threads when the call is large (hasMask: 0 causal, 1 dense u8 mask, 2 sparse i32 rows; `pairs`: the (row, key) pairs to visit at most). */
  private runAttention(out: Buffer, q: Buffer, keys: Buffer, values: Buffer, maskPtr: number, hasMask: number, M: number, nKeys: number, nHeads: number, nKvHeads: number, headSize: number, pairs: number): void {
    // Checked by attentionOperands.
    this.unpack(out as WasmBuffer);
    const O = (out as WasmBuffer).ptr,
      Q = (q as WasmBuffer).ptr,
      K = (keys as WasmBuffer).ptr,
      V = (values as WasmBuffer).ptr;
    this.k.attend(this.ctrl(), this.threads, O, Q, K, V, maskPtr, hasMask, M, nKeys, nHeads, nKvHeads, headSize, this.scratch(nHeads * nKeys * 8), pairs);
  }

  decoderLayer(a: LayerActivations, w: LayerWeightBuffers, keys: Buffer, values: Buffer, cached: number, M: number, mask: { dense?: Buffer; sparse?: Buffer }, shape: LayerShape): void {
    const op = "decoderLayer";
    const { dim, hiddenDim: hidden, nHeads, nKvHeads, headSize: hs } = shape;
    this.dim(op, "cached", cached);
    this.dim(op, "M", M);
    this.dim(op, "dim", dim);
    this.dim(op, "hiddenDim", hidden);
    this.dim(op, "nHeads", nHeads);
    this.dim(op, "nKvHeads", nKvHeads);
    this.dim(op, "headSize", hs);
    if (nKvHeads < 1 || nHeads % nKvHeads !== 0) throw this.err(`${op}: nHeads ${nHeads} is not a multiple of nKvHeads ${nKvHeads}`);
    if (nHeads * hs !== dim || hs % 2 !== 0) throw this.err(`${op}: nHeads x headSize must be dim with an even headSize, got ${nHeads} x ${hs} and ${dim}`);
    if (mask.dense && mask.sparse) throw this.err(`${op}: give a dense or a sparse mask, not both`);
    if (M === 0) return;
    const kv = nKvHeads * hs,
      nKeys = cached + M;
    // Every operand checked before anything is written.
    this.operand(L_X, a.x, M * dim, "x");
    this.operand(L_X + 1, a.xb, M * dim, "xb");
    this.operand(L_X + 2, a.xb2, M * dim, "xb2");
    this.operand(L_X + 3, a.q, M * dim, "q");
    this.operand(L_X + 4, a.k, M * kv, "k");
    this.operand(L_X + 5, a.v, M * kv, "v");
    this.operand(L_X + 6, a.att, M * dim, "att");
    this.operand(L_X + 7, a.hb, M * hidden, "hb");
    this.operand(L_X + 8, a.hb2, M * hidden, "hb2");
    this.operand(L_RMS_ATT, w.rmsAtt, dim, "rmsAtt");
    this.operand(L_RMS_ATT + 1, w.rmsFfn, dim, "rmsFfn");
    this.operand(L_W, w.wq, dim * dim, "wq", dim, dim);
    this.operand(L_W + 1, w.wk, kv * dim, "wk", dim, kv);
    this.operand(L_W + 2, w.wv, kv * dim, "wv", dim, kv);
    this.operand(L_W + 3, w.wo, dim * dim, "wo", dim, dim);
    this.operand(L_W + 4, w.w1, hidden * dim, "w1", dim, hidden);
    this.operand(L_W + 5, w.w2, dim * hidden, "w2", hidden, dim);
    this.operand(L_W + 6, w.w3, hidden * dim, "w3", dim, hidden);
    const K = this.f32(keys, nKeys * kv, `${op} keys`),
      V = this.f32(values, nKeys * kv, `${op} values`);
    const P = this.typed(a.positions, "i32", M, `${op} positions`);
    let hasMask = 0,
      maskPtr = 0,
      pairs = M * nKeys;
    if (mask.dense) {
      maskPtr = this.denseMask(op, mask.dense, M, nKeys);
      hasMask = 1;
    } else if (mask.sparse) {
      pairs = this.sparseRows(op, mask.sparse, M, nKeys);
      maskPtr = (mask.sparse as WasmBuffer).ptr;
      hasMask = 2;
    }
    // Then what the ops would make on the way: panels, the RoPE table, one scratch for attention's scores and int8's rows.
    const ptrs = this.layerPtrs;
    for (let i = 0; i < 7; i++) {
      const W = this.layerWeights[i]!,
        inputs = this.layerShapes[2 * i],
        outputs = this.layerShapes[2 * i + 1];
      // Whether the panels may take W's place is asked only when they are made (not every call).
      ptrs[L_PANELS + i] = hasPanels(W, inputs, outputs) ? W.packedPtr : this.pack(W, inputs, outputs, this.onlyWeight(W.ptr, K.ptr, V.ptr));
    }
    const table = this.ropeTable(P, M, hs, shape.ropeTheta);
    const scratch = this.scratch(Math.max(nHeads * nKeys * 8, this.k.productScratchBytes(this.weightIndex, M, Math.max(dim, hidden))));
    this.unpack(K);
    this.unpack(V);
    const args = this.layerArgs();
    const i32 = this.i32v,
      at = args >>> 2;
    for (let i = 0; i < L_KEYS; i++) i32[at + i] = ptrs[i];
    i32[at + L_KEYS] = K.ptr;
    i32[at + L_KEYS + 1] = V.ptr;
    i32[at + L_TABLE] = table;
    i32[at + L_TABLE + 1] = maskPtr;
    i32[at + L_TABLE + 2] = hasMask;
    i32[at + L_TABLE + 3] = pairs;
    i32[at + L_TABLE + 4] = cached;
    i32[at + L_TABLE + 5] = M;
    i32[at + L_TABLE + 6] = dim;
    i32[at + L_TABLE + 7] = hidden;
    i32[at + L_TABLE + 8] = nHeads;
    i32[at + L_TABLE + 9] = nKvHeads;
    i32[at + L_TABLE + 10] = hs;
    this.f32v[at + L_TABLE + 11] = shape.normEps;
    i32[at + L_TABLE + 12] = this.weightIndex;
    i32[at + L_TABLE + 13] = scratch;
    this.k.decoderLayer(this.ctrl(), this.threads, args);
  }

  /** decoderLayer's argument block (assembly/layer.ts), made once. */
  private layerArgs(): number {
    if (this.layerArgsPtr === 0) this.layerArgsPtr = this.allocBytes(4 * this.k.decoderLayerSlots());
    this.refreshViews();
    return this.layerArgsPtr;
  }

  /** One checked f32 operand of decoderLayer: its address into slot i; for a matmul weight (in, out given), the buffer and its shape for its panels. */
  private operand(i: number, b: Buffer, need: number, what: string, inputs = 0, outputs = 0): void {
    // The common case checked in place; the message is built only for a failure.
    const wb = b instanceof WasmBuffer && b.owner === this && !b.freed && b.dtype === "f32" && b.length >= need ? b : this.typed(b, "f32", need, `decoderLayer ${what}`, inputs > 0);
    this.layerPtrs[i] = wb.ptr;
    // The layer writes its activations (their panels go) and reads the norms' rows; the weights are read as panels.
    if (i < L_RMS_ATT || (wb.panelsInPlace && inputs === 0)) this.unpack(wb);
    if (inputs > 0) {
      if (wb.weightIndex >= 0) throw this.err(`decoderLayer: ${what} reads as ${WEIGHT_TYPES[wb.weightIndex]} (setWeightType), but a layer's weights take the backend's type (${this.weights})`);
      this.layerWeights[i - L_W] = wb;
      this.layerShapes[2 * (i - L_W)] = inputs;
      this.layerShapes[2 * (i - L_W) + 1] = outputs;
    }
  }

  /** True when no activation, norm, key or value operand of this decoderLayer call is the weight at `ptr` (its panels may then take its place). */
  private onlyWeight(ptr: number, keys: number, values: number): boolean {
    if (ptr === keys || ptr === values) return false;
    for (let i = 0; i < L_W; i++) if (this.layerPtrs[i] === ptr) return false;
    return true;
  }

  private layerArgsPtr = 0;
  /** A decoderLayer call's pointers (slots before the cache), its matmul weights and their (in, out), gathered while its operands are checked. */
  private readonly layerPtrs = new Array<number>(L_KEYS).fill(0.5); // doubles from the start (a pointer past 1 GiB is no small integer)
  private readonly layerWeights = new Array<WasmBuffer | undefined>(7).fill(undefined);
  private readonly layerShapes = new Array<number>(14).fill(0);

  swiglu(y: Buffer, gate: Buffer, up: Buffer, n: number): void {
    this.dim("swiglu", "n", n);
    const Y = this.f32(y, n, "swiglu y"),
      G = this.f32(gate, n, "swiglu gate"),
      U = this.f32(up, n, "swiglu up");
    this.unpack(Y);
    this.k.swiglu(Y.ptr, G.ptr, U.ptr, n);
  }

  add(y: Buffer, x: Buffer, n: number): void {
    this.dim("add", "n", n);
    const Y = this.f32(y, n, "add y"),
      X = this.f32(x, n, "add x");
    this.unpack(Y);
    this.k.add(Y.ptr, X.ptr, n);
  }

  embedding(y: Buffer, table: Buffer, ids: Buffer, M: number, D: number): void {
    this.dim("embedding", "M", M);
    this.dim("embedding", "D", D);
    const Y = this.f32(y, M * D, "embedding y"),
      T = this.typed(table, "f32", 0, "embedding table", true);
    const I = this.typed(ids, "i32", M, "embedding ids");
    const idv = this.view("i32") as Int32Array;
    const i0 = this.index(I);
    for (let m = 0; m < M; m++) {
      const id = idv[i0 + m];
      if (id >= 0 && id * D + D > T.length) {
        throw this.err(`embedding: id ${id} is outside a table of ${D > 0 ? Math.floor(T.length / D) : 0} rows`);
      }
    }
    this.unpack(Y);
    // A table that is also the classifier (a shared one) stays in its panels: its rows are read from them.
    if (T.panelsInPlace && T.packedK === D && T.length === D * T.packedN) this.k.embeddingPanels(Y.ptr, T.ptr, I.ptr, M, D);
    else {
      // Its rows are read: panels in their place become rows again; panels of their own (bf16, int8) stay valid, as the rows
      // do not change (dropping them made a shared classifier pack again at every token: 21 tok/s at 15M with int8).
      if (T.panelsInPlace) this.unpack(T);
      this.k.embedding(Y.ptr, T.ptr, I.ptr, M, D);
    }
  }

  softmax(x: Buffer, M: number, N: number): void {
    this.dim("softmax", "M", M);
    this.dim("softmax", "N", N);
    const X = this.f32(x, M * N, "softmax x");
    this.unpack(X);
    this.k.softmax(X.ptr, M, N);
  }

  argmax(x: Buffer, M: number, N: number): Int32Array {
    this.dim("argmax", "M", M);
    this.dim("argmax", "N", N);
    if (N === 0) throw this.err("argmax: rows of 0 elements have no largest value");
    const X = this.f32(x, M * N, "argmax x");
    const out = this.scratch(4 * Math.max(1, M));
    this.k.argmaxRows(out, X.ptr, M, N);
    return (this.view("i32") as Int32Array).slice(out >>> 2, (out >>> 2) + M);
  }

  pick(x: Buffer, first: number, M: number, N: number, temperature: number, u: ArrayLike<number>, exclude: ArrayLike<number> = []): Int32Array {
    this.dim("pick", "first", first);
    this.dim("pick", "M", M);
    this.dim("pick", "N", N);
    if (!(temperature > 0) || !Number.isFinite(temperature)) throw this.err(`pick: temperature must be finite and > 0, got ${temperature}`);
    if (u.length !== M) throw this.err(`pick: ${M} rows need ${M} u's, got ${u.length}`);
    for (let e = 0; e < exclude.length; e++) if (!(Number.isInteger(exclude[e]) && exclude[e] >= 0 && exclude[e] < N)) throw this.err(`pick: excluded tokens must be integers in [0, ${N}), got ${exclude[e]}`);
    const X = this.f32(x, (first + M) * N, "pick x");
    // One block: the picks (4 bytes per row), the u's (8 bytes per row, 8-aligned), the row's exponentials.
    const usAt = (4 * M + 7) & ~7;
    const block = this.scratch(usAt + 8 * M + 4 * N);
    const f64 = new Float64Array(this.k.memory.buffer, block + usAt, M);
    for (let m = 0; m < M; m++) {
      if (!(u[m] >= 0 && u[m] < 1)) throw this.err(`pick: u[${m}] must be in [0, 1), got ${u[m]}`);
      f64[m] = u[m];
    }
    const run = () => this.k.pickRows(block, X.ptr + 4 * first * N, M, N, Math.fround(temperature), block + usAt, block + usAt + 8 * M);
    if (exclude.length === 0) run();
    else this.withExcluded(X.ptr + 4 * first * N, M, N, exclude, run);
    return (this.view("i32") as Int32Array).slice(block >>> 2, (block >>> 2) + M);
  }

  tokenProbabilities(x: Buffer, first: number, M: number, N: number, temperature: number, tokens: ArrayLike<number>): Float32Array {
    this.dim("tokenProbabilities", "first", first);
    this.dim("tokenProbabilities", "M", M);
    this.dim("tokenProbabilities", "N", N);
    if (!(temperature > 0) || !Number.isFinite(temperature)) throw this.err(`tokenProbabilities: temperature must be finite and > 0, got ${temperature}`);
    if (tokens.length !== M) throw this.err(`tokenProbabilities: ${M} rows need ${M} tokens, got ${tokens.length}`);
    const X = this.f32(x, (first + M) * N, "tokenProbabilities x");
    // One block: the probabilities, then the tokens (4 bytes a row each).
    const block = this.scratch(8 * Math.max(1, M));
    const i32 = this.view("i32") as Int32Array;
    for (let m = 0; m < M; m++) {
      if (!(Number.isInteger(tokens[m]) && tokens[m] >= 0 && tokens[m] < N)) throw this.err(`tokenProbabilities: tokens must be integers in [0, ${N}), got ${tokens[m]}`);
      i32[(block >>> 2) + M + m] = tokens[m];
    }
    this.k.tokenProbabilities(block, X.ptr + 4 * first * N, M, N, Math.fround(temperature), block + 4 * M);
    return (this.view("f32") as Float32Array).slice(block >>> 2, (block >>> 2) + M);
  }

  /**
   * Runs `fn` with the tokens in `exclude` at -Infinity in each of the M rows
   * of N f32 at `rows`, then puts the logits back (in reverse, so a token
   * listed twice gets its own value back).
   */
  private withExcluded(rows: number, M: number, N: number, exclude: ArrayLike<number>, fn: () => void): void {
    const f32 = this.view("f32") as Float32Array;
    const E = exclude.length;
    const at = (m: number, e: number) => (rows >>> 2) + m * N + exclude[e];
    const saved = new Float32Array(M * E);
    for (let m = 0; m < M; m++) for (let e = 0; e < E; e++) [saved[m * E + e], f32[at(m, e)]] = [f32[at(m, e)], Number.NEGATIVE_INFINITY];
    try {
      fn();
    } finally {
      for (let m = M - 1; m >= 0; m--) for (let e = E - 1; e >= 0; e--) f32[at(m, e)] = saved[m * E + e];
    }
  }

  copy(dst: Buffer, dstOffset: number, src: Buffer, srcOffset: number, n: number): void {
    const D = this.buf(dst, "copy"),
      S = this.buf(src, "copy");
    if (D.dtype !== S.dtype) throw this.err(`copy: dtype ${S.dtype} into ${D.dtype}`);
    this.dim("copy", "dstOffset", dstOffset);
    this.dim("copy", "srcOffset", srcOffset);
    this.dim("copy", "n", n);
    if (dstOffset + n > D.length || srcOffset + n > S.length) throw this.err(`copy: ${n} elements out of range`);
    const bpe = BYTES[D.dtype];
    this.unpack(D);
    this.k.copyBytes(D.ptr + dstOffset * bpe, S.ptr + srcOffset * bpe, n * bpe);
  }

  // ---- internals ----------------------------------------------------------

  private err(message: string): BackendError {
    return new BackendError(this.name, message);
  }

  private alive(): void {
    if (this.isDisposed) throw this.err("backend used after dispose");
  }

  private allocBytes(bytes: number): number {
    try {
      return this.heap.alloc(bytes);
    } catch (e) {
      if (e instanceof OutOfMemoryError) throw this.err(`out of memory: ${e.message}`);
      throw e;
    }
  }

  /** A scratch block of at least `bytes` bytes; grows (never shrinks) only when needed. */
  private scratch(bytes: number): number {
    this.ensure(this.scratchBlock, bytes);
    return this.scratchBlock.ptr;
  }

  /** Grows a reusable block to at least `bytes` (by half again, at least 4 KiB; never shrinks), then refreshes the views. */
  private ensure(block: { ptr: number; bytes: number }, bytes: number): void {
    if (bytes > block.bytes) {
      if (block.bytes > 0) this.heap.release(block.ptr);
      block.bytes = 0; // released: a failed allocation below must not release it again
      const size = Math.max(4096, alignUp(bytes * 1.5, ALIGN));
      block.ptr = this.allocBytes(size);
      block.bytes = size;
    }
    this.refreshViews();
  }

  private refreshViews(): void {
    if (this.viewGeneration === this.heap.generation && this.u8v.byteLength > 0) return;
    const buffer = this.k.memory.buffer;
    this.u8v = new Uint8Array(buffer);
    this.i32v = new Int32Array(buffer);
    this.f32v = new Float32Array(buffer);
    this.viewGeneration = this.heap.generation;
  }

  private view(dtype: DType): Float32Array | Int32Array | Uint8Array {
    this.refreshViews();
    return dtype === "f32" ? this.f32v : dtype === "i32" ? this.i32v : this.u8v;
  }

  /** Element index of a buffer's first element in its dtype's view. */
  private index(b: WasmBuffer): number {
    return b.ptr / BYTES[b.dtype];
  }

  /**
   * A live buffer of this backend, its rows in place (a buffer packed into
   * panels in place gets its rows back first) unless `asPanels`: a matmul
   * weight, read as its panels.
   */
  private buf(b: Buffer, op: string, asPanels = false): WasmBuffer {
    this.alive();
    if (!(b instanceof WasmBuffer) || b.owner !== this) throw this.err(`${op}: not a buffer of this backend`);
    if (b.freed) throw this.err(`${op}: buffer used after free`);
    if (b.panelsInPlace && !asPanels) this.unpack(b);
    return b;
  }

  private typed(b: Buffer, dtype: DType, need: number, what: string, asPanels = false): WasmBuffer {
    const wb = this.buf(b, what, asPanels);
    if (wb.dtype !== dtype) throw this.err(`${what}: expected a ${dtype} buffer, got ${wb.dtype}`);
    if (wb.length < need) throw this.err(`${what}: needs ${need} elements, the buffer has ${wb.length}`);
    return wb;
  }

  private f32(b: Buffer, need: number, what: string): WasmBuffer {
    return this.typed(b, "f32", need, what);
  }

  /**
   * Checks attention's dimensions (the GQA grouping too) and its out, q,
   * keys and values: f32 buffers of this backend, large enough.
   */
  private attentionOperands(op: string, out: Buffer, q: Buffer, keys: Buffer, values: Buffer, M: number, nKeys: number, nHeads: number, nKvHeads: number, headSize: number): void {
    // Checked without building names or objects first: this runs for every layer of every call.
    this.dim(op, "M", M);
    this.dim(op, "nKeys", nKeys);
    this.dim(op, "nHeads", nHeads);
    this.dim(op, "nKvHeads", nKvHeads);
    this.dim(op, "headSize", headSize);
    if (nKvHeads < 1 || nHeads % nKvHeads !== 0) throw this.err(`${op}: nHeads ${nHeads} is not a multiple of nKvHeads ${nKvHeads}`);
    const rows = M * nHeads * headSize,
      cached = nKeys * nKvHeads * headSize;
    this.attentionOperand(op, out, rows, 0);
    this.attentionOperand(op, q, rows, 1);
    this.attentionOperand(op, keys, cached, 2);
    this.attentionOperand(op, values, cached, 3);
  }

  /** One operand of attention (its name is built only when the check fails). */
  private attentionOperand(op: string, b: Buffer, need: number, i: number): void {
    if (!this.isDisposed && b instanceof WasmBuffer && b.owner === this && !b.freed && b.dtype === "f32" && b.length >= need && !b.panelsInPlace) return;
    this.f32(b, need, `${op} ${ATTENTION_OPERANDS[i]}`);
  }

  /** Checks one size argument; allocates nothing (it runs on every op call). */
  private dim(op: string, name: string, v: number): void {
    if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff) throw this.err(`${op}: ${name} must be a non-negative integer, got ${v}`);
  }
}
