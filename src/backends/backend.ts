/**
 * The backend plug-in interface.
 *
 * A backend owns its memory: the model asks it for buffers, uploads weights
 * once, runs ops on buffer handles and downloads only what it needs (logits).
 * The model never looks inside a buffer, so the same model code runs on plain
 * TypeScript, on WASM SIMD kernels or on a GPU. spec/backend.md is the
 * contract a third-party backend implements.
 *
 * Conventions shared by every op:
 * - All tensors are dense, row-major float32 unless a dtype says otherwise.
 * - Sizes are element counts, never bytes.
 * - `M` is the number of rows in the call (the block size).
 * - Ops never allocate or free the caller's buffers; outputs are written in
 *   place into buffers the caller passed.
 * - BATCH INVARIANCE: the value written for row m may depend only on row m's
 *   own inputs (and, for attention, the keys row m is allowed to see). It must
 *   be bit-identical whatever M is and whatever the other rows hold. In
 *   particular no reduction may be split or reordered depending on M.
 */
import type { WorkerSpawner } from "./wasm/threads.js";

export type DType = "f32" | "i32" | "u8";

/** The most elements one typed array (a buffer, a tensor) holds here: 2^31 - 1, what every supported runtime allocates (the wasm backend's 4 GiB holds fewer f32s). */
export const MAX_ARRAY_LENGTH = 2 ** 31 - 1;

/** An opaque handle to a buffer owned by a backend. */
export interface Buffer {
  readonly dtype: DType;
  /** Number of elements. */
  readonly length: number;
}

/** The host arrays upload and download move: f32 for tensors, i32 for indices, u8 for masks. */
export type HostArray = Float32Array | Int32Array | Uint8Array;

/** What a backend implements (the contract: spec/backend.md; the checks: runBackendConformance). */
export interface Backend {
  /** Registry name, e.g. "js", "wasm". */
  readonly name: string;
  /** Human-readable detail, e.g. which WASM build is active. */
  readonly description: string;

  // ---- memory -------------------------------------------------------------

  /** A new zero-filled buffer of `length` elements. */
  alloc(length: number, dtype?: DType): Buffer;
  /** Copy host data into `buf` starting at element `offset` (default 0). */
  upload(buf: Buffer, data: HostArray, offset?: number): void;
  /** Copy `length` elements from element `offset` of `buf` to the host. */
  download(buf: Buffer, offset?: number, length?: number): Float32Array;
  /**
   * Optional: `download` into the caller's array: out.length elements from
   * element `offset` of `buf`, with no new array (a decode loop that reads
   * the same-sized rows call after call allocates nothing). A model
   * without it downloads and copies.
   */
  downloadInto?(buf: Buffer, out: Float32Array, offset?: number): void;
  /**
   * Optional: an f32 buffer's elements as host memory the caller fills in
   * place of an upload (wasm: a view of the module's memory), valid until
   * the next call on this backend. loadModel reads a checkpoint file
   * straight into a model's buffers through it, so the weights are never
   * held on the host as well; a backend without it is filled by upload.
   * `access` "read" promises the caller only reads the view (teacherChecksum
   * of a model): a weight then keeps the matmul panels the backend made of
   * it (wasm: those of another weight type; panels in the rows' place
   * become rows either way). Default "write".
   */
  hostView?(buf: Buffer, access?: "read" | "write"): Float32Array;
  /** Release a buffer; using it afterwards is an error. */
  free(buf: Buffer): void;

  // ---- ops ----------------------------------------------------------------

  /**
   * y[m, n] = sum_k x[m, k] * w[n, k] for m < M, n < N: y = x W^T with W
   * stored [out = N, in = K], as llama2.c stores it.
   * The sum over k for an element (m, n) is computed in one fixed order
   * that depends on K only (never on M or on m).
   */
  matmul(y: Buffer, x: Buffer, w: Buffer, M: number, K: number, N: number): void;

  /**
   * Optional: `matmul` reads `w` as its weight in `type` from now on, for
   * this buffer alone, whatever the backend's own (BackendOptions.weights):
   * a model part whose precision only costs speed, such as a draft head's
   * classifier, can run cheaper than the teacher. The products become that
   * type's, in the same fixed order. `decoderLayer` refuses a layer weight
   * whose type is not the backend's. A backend without it reads every weight
   * in f32.
   */
  setWeightType?(w: Buffer, type: WeightType): void;

  /** y[m, :] = x[m, :] / sqrt(mean(x[m, :]^2) + eps) * weight, per row of D. */
  rmsnorm(y: Buffer, x: Buffer, weight: Buffer, M: number, D: number, eps: number): void;

  /**
   * Rotary position embedding in place on x [M, nHeads * headSize]: in every
   * head, the pair (2i, 2i+1) is rotated by angle positions[m] * theta^(-2i/headSize).
   * `positions` is an i32 buffer of M entries (arbitrary, not necessarily
   * consecutive).
   */
  rope(x: Buffer, positions: Buffer, M: number, nHeads: number, headSize: number, theta: number): void;

  /**
   * Masked multi-head attention over a KV store.
   * q: [M, nHeads * headSize]; keys, values: [>= nKeys, nKvHeads * headSize]
   * (RoPE already applied to keys); out: [M, nHeads * headSize].
   * mask: a u8 buffer [M, nKeys], 1 = row m may see key j; or null for the
   * causal default, where row m sees keys 0 .. nKeys - M + m.
   * Query head h reads KV head floor(h / (nHeads / nKvHeads)). Scores are
   * scaled by 1/sqrt(headSize); keys a row may not see take no part at all
   * (not even in the max), and the visible keys are visited in index order.
   * Every row must see at least one key.
   */
  attention(out: Buffer, q: Buffer, keys: Buffer, values: Buffer, mask: Buffer | null, M: number, nKeys: number, nHeads: number, nKvHeads: number, headSize: number): void;

  /**
   * `attention` with a sparse mask: `rows` is an i32 buffer holding offsets
   * [M + 1] (offsets[0] = 0) and then the visible key indices of every row,
   * row m's at offsets[m] .. offsets[m + 1] - 1, strictly increasing, at
   * least one. The result is bit-identical to `attention` with the matching
   * dense mask, and a row costs only its own visible keys (a batch of
   * sequences sharing a cache stays linear in the batch). Optional: a
   * backend without it gets the dense mask.
   */
  attentionSparse?(out: Buffer, q: Buffer, keys: Buffer, values: Buffer, rows: Buffer, M: number, nKeys: number, nHeads: number, nKvHeads: number, headSize: number): void;

  /** SwiGLU gating: y[i] = silu(gate[i]) * up[i], silu(a) = a / (1 + exp(-a)), for i < n. */
  swiglu(y: Buffer, gate: Buffer, up: Buffer, n: number): void;

  /** Residual add in place: y[i] += x[i] for i < n. */
  add(y: Buffer, x: Buffer, n: number): void;

  /**
   * Embedding gather: y[m, :] = table[ids[m], :] for every m < M with
   * ids[m] >= 0; rows with a negative id are left untouched (the caller
   * fills them, e.g. with auxiliary embeddings). ids is an i32 buffer.
   */
  embedding(y: Buffer, table: Buffer, ids: Buffer, M: number, D: number): void;

  /** Row-wise softmax in place over x [M, N]. */
  softmax(x: Buffer, M: number, N: number): void;

  /**
   * Greedy picks without downloading the rows (optional): for each of the M
   * rows of x [M, N], the index that `argmax` of src/sampling/pick.ts gives
   * on that row: the lowest index of the largest value, where a NaN never
   * wins (a row starting with NaN gives 0). A model without it downloads
   * the rows and runs that host argmax.
   */
  argmax?(x: Buffer, M: number, N: number): Int32Array;

  /**
   * Sampled picks without downloading the rows (optional): for the M rows of
   * x [*, N] from row `first` on, Pick(u[m], softmax(row / T)) exactly as
   * src/sampling computes it (applyTemperature, softmaxF32, pick; no top-k
   * or top-p), or -1 for a row that path would refuse (a NaN or +Infinity
   * logit after the division, every one -Infinity). u values are compared
   * as given (f64). The tokens in `exclude` (if any) take no part in any
   * row's pick: their logits read as -Infinity (the buffer is left as it
   * was).
   */
  pick?(x: Buffer, first: number, M: number, N: number, temperature: number, u: ArrayLike<number>, exclude?: ArrayLike<number>): Int32Array;

  /**
   * Token probabilities without downloading the rows (optional): for the M
   * rows of x [*, N] from row `first` on, the probability of tokens[m]
   * under softmax(row / temperature), as an estimate (f32 exponentials,
   * any summation order, terms under e^-80 left out): for choices that
   * cost only speed, such as how many drafts a call carries; never for a
   * pick. NaN for a row with a NaN or +Infinity, or only -Infinity. A
   * model without it computes the estimate on the host (tokenProbability,
   * src/sampling/softmax.ts).
   */
  tokenProbabilities?(x: Buffer, first: number, M: number, N: number, temperature: number, tokens: ArrayLike<number>): Float32Array;

  /**
   * One decoder layer in one call (optional): exactly what
   * src/model/transformer.ts does op by op for a layer without an adapter,
   * with the same results bit for bit, in place on `a.x`:
   *   xb = rmsnorm(x) * rmsAtt; q, k, v = xb Wq^T, xb Wk^T, xb Wv^T;
   *   RoPE(q), RoPE(k) at `a.positions`; keys, values rows cached .. cached+M-1 = k, v;
   *   x += attention(q, keys, values, mask; nKeys = cached + M) Wo^T;
   *   xb = rmsnorm(x) * rmsFfn; x += (silu(xb W1^T) * (xb W3^T)) W2^T.
   * `mask` is attention's: a dense u8 mask, a sparse one (as
   * attentionSparse's rows) or neither (causal). The other activations are
   * scratch, left as the ops would leave them. A backend where each op is a
   * call across a boundary saves that per op; one without it runs the ops.
   */
  decoderLayer?(a: LayerActivations, w: LayerWeightBuffers, keys: Buffer, values: Buffer, cached: number, M: number, mask: { dense?: Buffer; sparse?: Buffer }, shape: LayerShape): void;

  /** dst[dstOffset + i] = src[srcOffset + i] for i < n (same dtype). */
  copy(dst: Buffer, dstOffset: number, src: Buffer, srcOffset: number, n: number): void;

  /** Release everything this backend holds (optional). Freeing a buffer afterwards does nothing; any other use is an error. */
  dispose?(): void;
  /** True once `dispose` ran (optional): a model on the backend then refuses calls by name instead of failing inside an op. */
  readonly disposed?: boolean;
}

/**
 * Allocates a buffer of each length (f32 unless a dtype is given) or none:
 * should an allocation fail (out of memory), the ones already made are
 * freed and the error passed on. Grow-on-demand scratch takes its new
 * buffers this way before freeing the old ones, so a failed allocation
 * leaves the old scratch in place and usable.
 */
export function allocAll(b: Backend, sizes: readonly (number | readonly [number, DType])[]): Buffer[] {
  const made: Buffer[] = [];
  try {
    for (const s of sizes) made.push(typeof s === "number" ? b.alloc(s) : b.alloc(s[0], s[1]));
  } catch (err) {
    for (const buf of made) b.free(buf);
    throw err;
  }
  return made;
}

/** The activation buffers of a decoderLayer call (a model's run state): f32 [rows, width], positions i32 [rows]. */
export interface LayerActivations {
  x: Buffer; // residual stream [M, dim]
  xb: Buffer; // [M, dim]
  xb2: Buffer; // [M, dim]
  q: Buffer; // [M, dim]
  k: Buffer; // [M, kvDim]
  v: Buffer; // [M, kvDim]
  att: Buffer; // [M, dim]
  hb: Buffer; // [M, hidden]
  hb2: Buffer; // [M, hidden]
  positions: Buffer; // i32 [M]
}

/** One layer's weights as a decoderLayer call takes them (W is [out, in]). */
export interface LayerWeightBuffers {
  rmsAtt: Buffer;
  rmsFfn: Buffer;
  wq: Buffer;
  wk: Buffer;
  wv: Buffer;
  wo: Buffer;
  w1: Buffer;
  w2: Buffer;
  w3: Buffer;
}

/** The sizes and constants of a decoder layer. */
export interface LayerShape {
  dim: number;
  hiddenDim: number;
  nHeads: number;
  nKvHeads: number;
  headSize: number;
  ropeTheta: number;
  normEps: number;
}

/** Thrown when a buffer is used wrongly (freed, wrong dtype, out of range). */
export class BackendError extends Error {
  constructor(backend: string, message: string) {
    super(`backend "${backend}": ${message}`);
    this.name = "BackendError";
  }
}

/**
 * The length of `upload`'s host data, or a BackendError naming the backend
 * when it is no typed array (undefined, null, a number): the check every
 * backend makes before reading `data.length`, with the same message.
 */
export function hostDataLength(backend: string, op: string, data: unknown): number {
  const n = data !== null && typeof data === "object" ? (data as { length?: unknown }).length : undefined;
  if (typeof n !== "number") throw new BackendError(backend, `${op}: data must be a typed array (Float32Array, Int32Array or Uint8Array), got ${data === null ? "null" : typeof data}`);
  return n;
}

/** The weight types a backend may run matmuls in (BackendOptions.weights). */
export const WEIGHT_TYPES = ["f32", "bf16", "int8"] as const;
/** One of WEIGHT_TYPES. */
export type WeightType = (typeof WEIGHT_TYPES)[number];

/** Options of createBackend (src/backends/registry.ts), read by the backend a name picks. */
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
  /**
   * For "wasm": how a worker thread starts (default: Node's worker_threads,
   * or Web Workers in a browser); a WorkerSpawner (src/backends/wasm/threads.ts).
   */
  spawnWorker?: WorkerSpawner;
  /** Plug-in backends (registerBackend) read keys of their own. */
  [key: string]: unknown;
}
