import { ropeAngle } from "../../util/rope-angle.js";
import { BackendError, hostDataLength, MAX_ARRAY_LENGTH, type Backend, type Buffer, type DType, type HostArray } from "../backend.js";

/**
 * The reference backend: plain TypeScript loops that read like the math.
 *
 * Arithmetic is float32, rounded after every operation (`f` = Math.fround,
 * and stores into Float32Arrays), in the same order as llama2.c's run.c
 * computes it: sums run in index order, one term at a time. That order
 * depends only on the reduced length, never on the number of rows, so every
 * op is batch-invariant by construction.
 */
const f = Math.fround;

class JsBuffer implements Buffer {
  freed = false;
  constructor(
    readonly owner: JsBackend,
    readonly dtype: DType,
    readonly data: Float32Array | Int32Array | Uint8Array,
  ) {}
  get length(): number {
    return this.data.length;
  }
}

const ARRAYS = { f32: Float32Array, i32: Int32Array, u8: Uint8Array } as const;

export class JsBackend implements Backend {
  readonly name = "js";
  readonly description = "js (plain TypeScript reference)";

  private isDisposed = false;

  /** True once dispose ran: every later use but free is refused. */
  get disposed(): boolean {
    return this.isDisposed;
  }

  /** Releases nothing the garbage collector would not (buffers are plain arrays), but ends the backend as the wasm one ends: any later use but free is an error naming it. */
  dispose(): void {
    this.isDisposed = true;
  }

  alloc(length: number, dtype: DType = "f32"): Buffer {
    if (this.isDisposed) throw new BackendError(this.name, "alloc: the backend was disposed (dispose()); create a new one with createBackend");
    if (!Number.isInteger(length) || length < 0) throw new BackendError(this.name, `alloc: length must be a non-negative integer, got ${length}`);
    if (!Object.hasOwn(ARRAYS, dtype)) throw new BackendError(this.name, `alloc: unknown dtype ${JSON.stringify(dtype)}; expected "f32", "i32" or "u8"`);
    if (length > MAX_ARRAY_LENGTH) throw new BackendError(this.name, `out of memory: alloc of ${length} elements is more than the ${MAX_ARRAY_LENGTH} one typed array holds`);
    return new JsBuffer(this, dtype, new ARRAYS[dtype](length));
  }

  upload(buf: Buffer, data: HostArray, offset = 0): void {
    const b = this.buf(buf);
    hostDataLength(this.name, "upload", data);
    if (!Number.isInteger(offset) || offset < 0 || offset + data.length > b.data.length) {
      throw new BackendError(this.name, `upload: ${data.length} elements at offset ${offset} do not fit a buffer of ${b.data.length}`);
    }
    b.data.set(data, offset);
  }

  hostView(buf: Buffer, access: "read" | "write" = "write"): Float32Array {
    if (access !== "read" && access !== "write") throw new BackendError(this.name, `hostView: access must be "read" or "write", got ${JSON.stringify(access)}`);
    const b = this.buf(buf);
    if (!(b.data instanceof Float32Array)) throw new BackendError(this.name, `hostView: expected an f32 buffer, got ${b.dtype}`);
    return b.data;
  }

  download(buf: Buffer, offset = 0, length?: number): Float32Array {
    const b = this.buf(buf);
    length ??= b.data.length - offset;
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > b.data.length) {
      throw new BackendError(this.name, `download: range [${offset}, ${offset + length}) is outside a buffer of ${b.data.length}`);
    }
    return Float32Array.from(b.data.subarray(offset, offset + length));
  }

  downloadInto(buf: Buffer, out: Float32Array, offset = 0): void {
    const b = this.buf(buf);
    if (!(out instanceof Float32Array)) throw new BackendError(this.name, "downloadInto: out must be a Float32Array");
    if (!Number.isInteger(offset) || offset < 0 || offset + out.length > b.data.length) {
      throw new BackendError(this.name, `downloadInto: range [${offset}, ${offset + out.length}) is outside a buffer of ${b.data.length}`);
    }
    out.set(b.data.subarray(offset, offset + out.length));
  }

  free(buf: Buffer): void {
    // Freeing after dispose does nothing (Backend.dispose).
    if (this.isDisposed) return;
    this.buf(buf).freed = true;
  }

  matmul(y: Buffer, x: Buffer, w: Buffer, M: number, K: number, N: number): void {
    this.dims("matmul", { M, K, N });
    const Y = this.f32(y, M * N, "matmul"),
      X = this.f32(x, M * K, "matmul"),
      W = this.f32(w, N * K, "matmul");
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s = f(s + f(X[m * K + k] * W[n * K + k]));
        Y[m * N + n] = s;
      }
    }
  }

  rmsnorm(y: Buffer, x: Buffer, weight: Buffer, M: number, D: number, eps: number): void {
    this.dims("rmsnorm", { M, D });
    const Y = this.f32(y, M * D, "rmsnorm"),
      X = this.f32(x, M * D, "rmsnorm"),
      G = this.f32(weight, D, "rmsnorm");
    for (let m = 0; m < M; m++) {
      let ss = 0;
      for (let i = 0; i < D; i++) ss = f(ss + f(X[m * D + i] * X[m * D + i]));
      const scale = f(1 / f(Math.sqrt(f(f(ss / D) + f(eps)))));
      for (let i = 0; i < D; i++) Y[m * D + i] = f(G[i] * f(scale * X[m * D + i]));
    }
  }

  rope(x: Buffer, positions: Buffer, M: number, nHeads: number, headSize: number, theta: number): void {
    this.dims("rope", { M, nHeads, headSize });
    if (headSize % 2 !== 0) throw new BackendError(this.name, `rope: headSize must be even, got ${headSize}`);
    const width = nHeads * headSize;
    const X = this.f32(x, M * width, "rope"),
      P = this.i32(positions, M, "rope");
    for (let m = 0; m < M; m++) {
      for (let i = 0; i < headSize; i += 2) {
        const angle = ropeAngle(P[m], i, headSize, theta);
        const c = f(Math.cos(angle)),
          s = f(Math.sin(angle));
        for (let h = 0; h < nHeads; h++) {
          const o = m * width + h * headSize + i;
          const a = X[o],
            b = X[o + 1];
          X[o] = f(a * c) - f(b * s);
          X[o + 1] = f(a * s) + f(b * c);
        }
      }
    }
  }

  attention(out: Buffer, q: Buffer, keys: Buffer, values: Buffer, mask: Buffer | null, M: number, nKeys: number, nHeads: number, nKvHeads: number, headSize: number): void {
    this.attentionDims("attention", M, nKeys, nHeads, nKvHeads, headSize);
    const Mk = mask ? this.u8(mask, M * nKeys, "attention") : null;
    const visible = new Int32Array(nKeys);
    this.attend(out, q, keys, values, M, nKeys, nHeads, nKvHeads, headSize, (m) => {
      let n = 0;
      for (let j = 0; j < nKeys; j++) if (Mk ? Mk[m * nKeys + j] !== 0 : j <= nKeys - M + m) visible[n++] = j;
      return visible.subarray(0, n);
    });
  }

  attentionSparse(out: Buffer, q: Buffer, keys: Buffer, values: Buffer, rows: Buffer, M: number, nKeys: number, nHeads: number, nKvHeads: number, headSize: number): void {
    this.attentionDims("attentionSparse", M, nKeys, nHeads, nKvHeads, headSize);
    const offsets = this.i32(rows, M + 1, "attentionSparse");
    const R = this.i32(rows, M + 1 + offsets[M], "attentionSparse");
    this.attend(out, q, keys, values, M, nKeys, nHeads, nKvHeads, headSize, (m) => R.subarray(M + 1 + R[m], M + 1 + R[m + 1]));
  }

  /** Attention of every row over the keys `visibleOf(m)` lists (increasing): scores, softmax and value sum, key by key. */
  private attend(out: Buffer, q: Buffer, keys: Buffer, values: Buffer, M: number, nKeys: number, nHeads: number, nKvHeads: number, headSize: number, visibleOf: (m: number) => Int32Array): void {
    const kvWidth = nKvHeads * headSize,
      width = nHeads * headSize;
    const sizes = [M * width, M * width, nKeys * kvWidth, nKeys * kvWidth];
    const [O, Q, Kc, Vc] = [out, q, keys, values].map((b, i) => this.f32(b, sizes[i], "attention"));
    const group = nHeads / nKvHeads;
    const sqrtHs = f(Math.sqrt(headSize));
    const scores = new Float32Array(nKeys);
    for (let m = 0; m < M; m++) {
      const visible = visibleOf(m);
      const n = visible.length;
      if (n === 0) throw new BackendError(this.name, `attention: row ${m} sees no key`);
      for (let h = 0; h < nHeads; h++) {
        const qo = m * width + h * headSize,
          kvo = Math.floor(h / group) * headSize;
        // Scores of the visible keys only (in key order), then a softmax over exactly those keys.
        let max = -Infinity;
        for (let t = 0; t < n; t++) {
          const j = visible[t];
          if (!(j >= 0 && j < nKeys)) throw new BackendError(this.name, `attention: row ${m} sees key ${j}, not in [0, ${nKeys})`);
          let s = 0;
          for (let i = 0; i < headSize; i++) s = f(s + f(Q[qo + i] * Kc[j * kvWidth + kvo + i]));
          scores[t] = s / sqrtHs;
          if (scores[t] > max) max = scores[t];
        }
        let sum = 0;
        for (let t = 0; t < n; t++) {
          scores[t] = Math.exp(f(scores[t] - max));
          sum = f(sum + scores[t]);
        }
        for (let t = 0; t < n; t++) scores[t] = scores[t] / sum;
        // Weighted sum of values, accumulated key by key as llama2.c does.
        O.fill(0, qo, qo + headSize);
        for (let t = 0; t < n; t++) {
          const vo = visible[t] * kvWidth + kvo;
          for (let i = 0; i < headSize; i++) O[qo + i] = O[qo + i] + f(scores[t] * Vc[vo + i]);
        }
      }
    }
  }

  swiglu(y: Buffer, gate: Buffer, up: Buffer, n: number): void {
    this.dims("swiglu", { n });
    const Y = this.f32(y, n, "swiglu"),
      G = this.f32(gate, n, "swiglu"),
      U = this.f32(up, n, "swiglu");
    for (let i = 0; i < n; i++) Y[i] = f(f(G[i] * f(1 / f(1 + f(Math.exp(-G[i]))))) * U[i]);
  }

  add(y: Buffer, x: Buffer, n: number): void {
    this.dims("add", { n });
    const Y = this.f32(y, n, "add"),
      X = this.f32(x, n, "add");
    for (let i = 0; i < n; i++) Y[i] += X[i];
  }

  embedding(y: Buffer, table: Buffer, ids: Buffer, M: number, D: number): void {
    this.dims("embedding", { M, D });
    const Y = this.f32(y, M * D, "embedding"),
      T = this.f32(table, 0, "embedding"),
      I = this.i32(ids, M, "embedding");
    for (let m = 0; m < M; m++) {
      const id = I[m];
      if (id < 0) continue;
      if (id * D + D > T.length) throw new BackendError(this.name, `embedding: id ${id} is outside a table of ${T.length / D} rows`);
      Y.set(T.subarray(id * D, id * D + D), m * D);
    }
  }

  softmax(x: Buffer, M: number, N: number): void {
    this.dims("softmax", { M, N });
    const X = this.f32(x, M * N, "softmax");
    for (let m = 0; m < M; m++) {
      const row = X.subarray(m * N, (m + 1) * N);
      let max = -Infinity;
      for (let i = 0; i < N; i++) if (row[i] > max) max = row[i];
      let sum = 0;
      for (let i = 0; i < N; i++) {
        row[i] = Math.exp(f(row[i] - max));
        sum = f(sum + row[i]);
      }
      for (let i = 0; i < N; i++) row[i] = row[i] / sum;
    }
  }

  copy(dst: Buffer, dstOffset: number, src: Buffer, srcOffset: number, n: number): void {
    const D = this.buf(dst),
      S = this.buf(src);
    if (D.dtype !== S.dtype) throw new BackendError(this.name, `copy: dtype ${S.dtype} into ${D.dtype}`);
    this.dims("copy", { dstOffset, srcOffset, n });
    if (dstOffset < 0 || srcOffset < 0 || n < 0 || dstOffset + n > D.data.length || srcOffset + n > S.data.length) throw new BackendError(this.name, `copy: ${n} elements out of range`);
    D.data.set(S.data.slice(srcOffset, srcOffset + n), dstOffset);
  }

  /** Checks the size arguments of an op: each a non-negative integer (as the wasm backend requires), before any loop reads them. */
  private dims(op: string, sizes: Record<string, number>): void {
    for (const name in sizes) {
      const v = sizes[name];
      if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff) throw new BackendError(this.name, `${op}: ${name} must be a non-negative integer, got ${v}`);
    }
  }
  private attentionDims(op: string, M: number, nKeys: number, nHeads: number, nKvHeads: number, headSize: number): void {
    this.dims(op, { M, nKeys, nHeads, nKvHeads, headSize });
    if (nKvHeads < 1 || nHeads % nKvHeads !== 0) throw new BackendError(this.name, `${op}: nHeads ${nHeads} is not a multiple of nKvHeads ${nKvHeads}`);
  }

  private buf(b: Buffer): JsBuffer {
    if (this.isDisposed) throw new BackendError(this.name, "the backend was disposed (dispose()); create a new one with createBackend");
    if (!(b instanceof JsBuffer) || b.owner !== this) throw new BackendError(this.name, "not a buffer of this backend");
    if (b.freed) throw new BackendError(this.name, "buffer used after free");
    return b;
  }
  private f32(b: Buffer, need: number, op: string): Float32Array {
    return this.typed(b, "f32", need, op) as Float32Array;
  }
  private i32(b: Buffer, need: number, op: string): Int32Array {
    return this.typed(b, "i32", need, op) as Int32Array;
  }
  private u8(b: Buffer, need: number, op: string): Uint8Array {
    return this.typed(b, "u8", need, op) as Uint8Array;
  }
  /** The data of a live buffer of this backend with `dtype` and at least `need` elements (the op's span). */
  private typed(b: Buffer, dtype: DType, need: number, op: string) {
    const jb = this.buf(b);
    if (jb.dtype !== dtype) throw new BackendError(this.name, `${op}: expected a ${dtype} buffer, got ${jb.dtype}`);
    if (need > jb.data.length) throw new BackendError(this.name, `${op}: needs ${need} elements but the buffer has ${jb.data.length} (out of range)`);
    return jb.data;
  }
}
