// ptp-backend-cuda: the CUDA backend plug-in of ptp-ts.
//
// The Backend interface (spec/backend.md) on top of the native addon
// build/ptp_cuda.node (src/addon.cpp + src/kernels.cu). Buffers live on the
// GPU (cudaMalloc); upload/download are cudaMemcpy; ops launch kernels on
// buffer handles, and only what the caller downloads comes back to the host.
//
// The plug-in does not import the core package: the caller passes it in,
//   import * as core from "ptp-ts";            // or the repository's src/index.js
//   import { registerCudaBackend } from "ptp-backend-cuda";
//   registerCudaBackend(core);
//   const backend = await core.createBackend("cuda");
// so it works from the repository and when installed on its own.
//
// Host mirrors: i32 and u8 buffers (positions, token ids, attention masks)
// keep a host copy of what the caller uploaded (every write to them goes
// through upload or copy, which update the mirror). The mirrors let this
// side check ids and masks (BackendError for an id outside the table or a
// row that sees no key) and compute RoPE's cos/sin with exactly the js
// reference's float recipe, without reading anything back from the GPU.

import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));

/** Where build.sh puts the addon. */
export const ADDON_PATH = join(HERE, "build", "ptp_cuda.node");

const BUILD_HINT = "run npm run build:cuda (bash packages/backend-cuda/build.sh) on a machine with the CUDA toolkit";

let cached = null;

/**
 * Loads the addon once. Returns { addon, error }: error is a string saying
 * why there is no addon (not built, or it failed to load).
 */
export function loadAddon(path = ADDON_PATH) {
  if (cached && cached.path === path) return cached;
  let result;
  if (!existsSync(path)) {
    result = { path, addon: null, error: `the native addon is not built (${path} is missing); ${BUILD_HINT}` };
  } else {
    try {
      result = { path, addon: createRequire(import.meta.url)(path), error: null };
    } catch (err) {
      result = { path, addon: null, error: `the native addon failed to load (${err instanceof Error ? err.message : String(err)}); ${BUILD_HINT}` };
    }
  }
  cached = result;
  return result;
}

/**
 * What this machine offers, without throwing: whether the addon is built and
 * loads, how many CUDA devices it sees, and why there are none.
 */
export function cudaStatus(path = ADDON_PATH) {
  const { addon, error } = loadAddon(path);
  if (!addon) return { built: false, deviceCount: 0, deviceName: null, reason: error };
  const p = addon.probe();
  return { built: true, deviceCount: p.count, deviceName: p.count > 0 ? addon.deviceName(0) : null, reason: p.count > 0 ? "" : `no CUDA device (${p.reason})` };
}

/** The RoPE angle, rounded through float32 at every step exactly as src/backends/rope-angle.ts (and llama2.c) does. */
export function ropeAngle(pos, i, headSize, theta) {
  const f = Math.fround;
  const freq = f(1 / f(Math.pow(theta, f(i / headSize))));
  return f(pos * freq);
}

const ARRAYS = { f32: Float32Array, i32: Int32Array, u8: Uint8Array };
const BYTES = { f32: 4, i32: 4, u8: 1 };

class CudaBuffer {
  constructor(owner, dtype, length, handle) {
    this.owner = owner;
    this.dtype = dtype;
    this.length = length;
    this.handle = handle;
    this.freed = false;
    /** Host mirror of i32 / u8 buffers (see the file comment); null for f32. */
    this.host = dtype === "f32" ? null : new ARRAYS[dtype](length);
    /** Bumped on every write, so the RoPE table cache knows when positions changed. */
    this.version = 0;
  }
}

function makeErrorClass(core) {
  if (core && typeof core.BackendError === "function") return core.BackendError;
  return class BackendError extends Error {
    constructor(backend, message) {
      super(`backend "${backend}": ${message}`);
      this.name = "BackendError";
    }
  };
}

export class CudaBackend {
  /**
   * Use createCudaBackend(core, options) rather than this constructor.
   * @param addon the loaded addon, already initialised on a device
   */
  constructor(addon, core, deviceName, name = "cuda") {
    this.addon = addon;
    this.name = name;
    this.description = `cuda (${deviceName})`;
    this.BackendError = makeErrorClass(core);
    this.live = new Set();
    this.ropeCache = null; // { pos, version, M, headSize, theta, table: CudaBuffer }
    this.disposed = false;
  }

  // ---- memory ---------------------------------------------------------------

  alloc(length, dtype = "f32") {
    this.alive();
    if (!Number.isInteger(length) || length < 0) throw this.err(`alloc: length must be a non-negative integer, got ${length}`);
    if (!(dtype in ARRAYS)) throw this.err(`alloc: unknown dtype ${JSON.stringify(dtype)}`);
    const handle = this.call("alloc", () => this.addon.alloc(length * BYTES[dtype]));
    const b = new CudaBuffer(this, dtype, length, handle);
    this.live.add(b);
    return b;
  }

  upload(buf, data, offset = 0) {
    const b = this.buf(buf, "upload");
    if (!Number.isInteger(offset) || offset < 0 || offset + data.length > b.length) {
      throw this.err(`upload: ${data.length} elements at offset ${offset} do not fit a buffer of ${b.length}`);
    }
    // Convert like a typed-array set() into the buffer's dtype (what js does).
    const typed = data instanceof ARRAYS[b.dtype] ? data : ARRAYS[b.dtype].from(data);
    this.call("upload", () => this.addon.upload(b.handle, offset * BYTES[b.dtype], typed));
    if (b.host) b.host.set(typed, offset);
    b.version++;
  }

  download(buf, offset = 0, length = buf.length - offset) {
    const b = this.buf(buf, "download");
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > b.length) {
      throw this.err(`download: range [${offset}, ${offset + length}) is outside a buffer of ${b.length}`);
    }
    const bytes = this.call("download", () => this.addon.download(b.handle, offset * BYTES[b.dtype], length * BYTES[b.dtype]));
    if (b.dtype === "f32") return new Float32Array(bytes);
    return Float32Array.from(new ARRAYS[b.dtype](bytes));
  }

  free(buf) {
    const b = this.buf(buf, "free");
    b.freed = true;
    this.live.delete(b);
    if (this.ropeCache && this.ropeCache.pos === b) this.ropeCache.pos = null;
    this.call("free", () => this.addon.free(b.handle));
  }

  // ---- ops --------------------------------------------------------------------

  matmul(y, x, w, M, K, N) {
    this.dims("matmul", { M, K, N });
    const Y = this.f32(y, M * N, "matmul: y"),
      X = this.f32(x, M * K, "matmul: x"),
      W = this.f32(w, N * K, "matmul: w");
    this.call("matmul", () => this.addon.matmul(Y.handle, X.handle, W.handle, M, K, N));
  }

  rmsnorm(y, x, weight, M, D, eps) {
    this.dims("rmsnorm", { M, D });
    const Y = this.f32(y, M * D, "rmsnorm: y"),
      X = this.f32(x, M * D, "rmsnorm: x"),
      G = this.f32(weight, D, "rmsnorm: weight");
    this.call("rmsnorm", () => this.addon.rmsnorm(Y.handle, X.handle, G.handle, M, D, Math.fround(eps)));
  }

  rope(x, positions, M, nHeads, headSize, theta) {
    this.dims("rope", { M, nHeads, headSize });
    if (headSize % 2 !== 0) throw this.err(`rope: headSize must be even, got ${headSize}`);
    const X = this.f32(x, M * nHeads * headSize, "rope: x");
    const P = this.typed(positions, "i32", M, "rope: positions");
    if (M === 0 || nHeads === 0 || headSize === 0) return;
    const table = this.ropeTable(P, M, headSize, theta);
    this.call("rope", () => this.addon.rope(X.handle, table.handle, M, nHeads, headSize));
  }

  attention(out, q, keys, values, mask, M, nKeys, nHeads, nKvHeads, headSize) {
    this.dims("attention", { M, nKeys, nHeads, nKvHeads, headSize });
    if (nKvHeads === 0 || nHeads % nKvHeads !== 0) throw this.err(`attention: nHeads (${nHeads}) must be a multiple of nKvHeads (${nKvHeads})`);
    const width = nHeads * headSize,
      kvWidth = nKvHeads * headSize;
    const O = this.f32(out, M * width, "attention: out"),
      Q = this.f32(q, M * width, "attention: q");
    const Kc = this.f32(keys, nKeys * kvWidth, "attention: keys"),
      Vc = this.f32(values, nKeys * kvWidth, "attention: values");
    let maskHandle = -1;
    if (mask) {
      const Mk = this.typed(mask, "u8", M * nKeys, "attention: mask");
      for (let m = 0; m < M; m++) {
        let any = false;
        for (let j = 0; j < nKeys && !any; j++) any = Mk.host[m * nKeys + j] !== 0;
        if (!any) throw this.err(`attention: row ${m} sees no key`);
      }
      maskHandle = Mk.handle;
    } else if (M > 0 && nKeys - M < 0) {
      throw this.err(`attention: row 0 sees no key (causal with ${nKeys} keys and ${M} rows)`);
    }
    this.call("attention", () => this.addon.attention(O.handle, Q.handle, Kc.handle, Vc.handle, maskHandle, M, nKeys, nHeads, nKvHeads, headSize));
  }

  swiglu(y, gate, up, n) {
    this.dims("swiglu", { n });
    const Y = this.f32(y, n, "swiglu: y"),
      G = this.f32(gate, n, "swiglu: gate"),
      U = this.f32(up, n, "swiglu: up");
    this.call("swiglu", () => this.addon.swiglu(Y.handle, G.handle, U.handle, n));
  }

  add(y, x, n) {
    this.dims("add", { n });
    const Y = this.f32(y, n, "add: y"),
      X = this.f32(x, n, "add: x");
    this.call("add", () => this.addon.add(Y.handle, X.handle, n));
  }

  embedding(y, table, ids, M, D) {
    this.dims("embedding", { M, D });
    const Y = this.f32(y, M * D, "embedding: y"),
      T = this.f32(table, 0, "embedding: table"),
      I = this.typed(ids, "i32", M, "embedding: ids");
    const rows = D > 0 ? Math.floor(T.length / D) : Infinity;
    for (let m = 0; m < M; m++) {
      const id = I.host[m];
      if (id >= rows) throw this.err(`embedding: id ${id} is outside a table of ${rows} rows`);
    }
    this.call("embedding", () => this.addon.embedding(Y.handle, T.handle, I.handle, M, D));
  }

  softmax(x, M, N) {
    this.dims("softmax", { M, N });
    const X = this.f32(x, M * N, "softmax: x");
    this.call("softmax", () => this.addon.softmax(X.handle, M, N));
  }

  copy(dst, dstOffset, src, srcOffset, n) {
    const D = this.buf(dst, "copy"),
      S = this.buf(src, "copy");
    if (D.dtype !== S.dtype) throw this.err(`copy: dtype ${S.dtype} into ${D.dtype}`);
    this.dims("copy", { dstOffset, srcOffset, n });
    if (dstOffset + n > D.length || srcOffset + n > S.length) throw this.err(`copy: ${n} elements out of range`);
    const e = BYTES[D.dtype];
    this.call("copy", () => this.addon.copy(D.handle, dstOffset * e, S.handle, srcOffset * e, n * e));
    if (D.host) D.host.set(S.host.slice(srcOffset, srcOffset + n), dstOffset);
    D.version++;
  }

  /** Waits for every queued kernel (for timing; downloads synchronise anyway). */
  synchronize() {
    this.alive();
    this.call("synchronize", () => this.addon.synchronize());
  }

  /** Live buffers of this backend (for leak tests). */
  get liveBuffers() {
    return this.live.size;
  }

  dispose() {
    if (this.disposed) return;
    if (this.ropeCache) this.ropeCache = null;
    for (const b of this.live) {
      b.freed = true;
      try {
        this.addon.free(b.handle);
      } catch {
        // already gone: nothing to release
      }
    }
    this.live.clear();
    this.disposed = true;
  }

  // ---- helpers ----------------------------------------------------------------

  /** (cos, sin) of every (row, pair) for these positions, on the device; cached while the positions are unchanged. */
  ropeTable(P, M, headSize, theta) {
    const c = this.ropeCache;
    if (c && c.pos === P && c.version === P.version && c.M === M && c.headSize === headSize && c.theta === theta) return c.table;
    const half = headSize / 2;
    const host = new Float32Array(M * half * 2);
    for (let m = 0; m < M; m++) {
      const pos = P.host[m];
      for (let p = 0; p < half; p++) {
        const angle = ropeAngle(pos, 2 * p, headSize, theta);
        host[(m * half + p) * 2] = Math.cos(angle); // rounded to float32 by the store, as js's f(Math.cos(angle))
        host[(m * half + p) * 2 + 1] = Math.sin(angle);
      }
    }
    let table = c ? c.table : null;
    if (!table || table.length < host.length) {
      if (table) this.free(table);
      table = this.alloc(Math.max(host.length, 1024));
    }
    this.upload(table, host);
    this.ropeCache = { pos: P, version: P.version, M, headSize, theta, table };
    return table;
  }

  err(message) {
    return new this.BackendError(this.name, message);
  }

  call(op, fn) {
    try {
      return fn();
    } catch (e) {
      if (e instanceof this.BackendError) throw e;
      throw this.err(`${op}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  alive() {
    if (this.disposed) throw this.err("the backend was disposed");
  }

  buf(b, op) {
    this.alive();
    if (!(b instanceof CudaBuffer) || b.owner !== this) throw this.err(`${op}: not a buffer of this backend`);
    if (b.freed) throw this.err(`${op}: buffer used after free`);
    return b;
  }

  typed(b, dtype, need, what) {
    const cb = this.buf(b, what.split(":")[0]);
    if (cb.dtype !== dtype) throw this.err(`${what}: expected an ${dtype} buffer, got ${cb.dtype}`);
    if (cb.length < need) throw this.err(`${what}: needs ${need} elements, the buffer has ${cb.length}`);
    return cb;
  }

  f32(b, need, what) {
    return this.typed(b, "f32", need, what);
  }

  dims(op, sizes) {
    for (const [k, v] of Object.entries(sizes)) {
      if (!Number.isInteger(v) || v < 0) throw this.err(`${op}: ${k} must be a non-negative integer, got ${v}`);
      if (v > 0x7fffffff) throw this.err(`${op}: ${k} = ${v} is too large`);
    }
  }
}

/**
 * A CUDA backend on device `options.cudaDevice` (default 0). Throws an Error
 * saying what to do when the addon is not built, and "no CUDA device: <why>"
 * when the machine has no usable GPU.
 */
export async function createCudaBackend(core, options = {}) {
  // options.cudaAddon: an object with the addon's functions (tests drive this
  // wrapper with a host stand-in of the addon on machines without a GPU).
  const { addon, error } = options.cudaAddon ? { addon: options.cudaAddon, error: null } : loadAddon(typeof options.cudaAddonPath === "string" ? options.cudaAddonPath : ADDON_PATH);
  if (!addon) throw new Error(`cuda backend: ${error}`);
  const p = addon.probe();
  if (p.count === 0) throw new Error(`no CUDA device: ${p.reason}`);
  const device = options.cudaDevice === undefined ? 0 : Number(options.cudaDevice);
  addon.init(device);
  return new CudaBackend(addon, core, addon.deviceName(device));
}

/** Registers the plug-in with the core package's registry under `name` (default "cuda"). */
export function registerCudaBackend(core, name = "cuda") {
  if (!core || typeof core.registerBackend !== "function") throw new Error("registerCudaBackend: pass the ptp-ts module (it needs registerBackend)");
  core.registerBackend(name, (options) => createCudaBackend(core, options));
}

/** Alias of registerCudaBackend. */
export const register = registerCudaBackend;
