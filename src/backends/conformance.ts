/**
 * The backend contract (spec/backend.md) as a suite a third party can run
 * against its own backend, without any test framework:
 *
 *   import { registerBackend, runBackendConformance } from "ptp-ts";
 *   registerBackend("mine", async () => new MyBackend()); // your class implementing Backend
 *   const report = await runBackendConformance("mine");
 *   if (!report.passed) console.error(report.checks.filter((c) => !c.passed));
 *
 * Checks, each on random problems drawn from a seeded generator:
 * - agreement with the js reference: matmul within (1.25 K + 8) u sum|x w|,
 *   attention within 4 (1.25 hs + 8) u sqrt(hs) + 1e-6, swiglu and softmax
 *   within 1e-6 relative, rmsnorm, rope, add, embedding and copy bit for bit;
 * - batch invariance, bit for bit: every row of every op equals the same row
 *   computed alone (attention: with the same visible keys; keys hidden by the
 *   mask, even NaN ones, change nothing);
 * - host access, where the backend has it: downloadInto equals download,
 *   and hostView is the buffer itself (reads and writes through it are what
 *   the ops see, also for a buffer that served as a matmul weight);
 * - the error contract: use after free, double free, wrong dtypes, spans out
 *   of range, buffers of another backend instance, embedding ids outside the
 *   table and rows that see no key throw BackendError.
 *
 * Tolerances (u = 2^-24): js sums in index order one term at a time; a
 * backend whose summation has an error bound of at most gamma_{K/4+6} S
 * (e.g. four lane partials, then pairwise adds) stays within the matmul
 * bound; attention only reorders the q.k sums, and a score error d moves
 * the softmax weights by at most ~2d relative; exp may come from another
 * f64 exp rounded to f32, hence the 1e-6 for swiglu and softmax.
 */
import { checkInteger, checkPositiveInteger, describeValue } from "../util/checks.js";
import { argmax, binOf } from "../sampling/pick.js";
import { samplingDistribution } from "../sampling/processors.js";
import { sampleToken } from "../sampling/sampler.js";
import { tokenProbability } from "../sampling/softmax.js";
import { Gen } from "../util/prng.js";
import { checkOptionKeys } from "../util/options.js";
import { BackendError, type Backend, type Buffer, type DType, type HostArray } from "./backend.js";
import { randomCheckpoint } from "../model/init.js";
import type { Block } from "../model/block.js";
import { Transformer } from "../model/transformer.js";
import { JsBackend } from "./js/index.js";
import { createBackend, type BackendOptions } from "./registry.js";

export const UNIT_ROUNDOFF = 2 ** -24;
/** Tolerance factor of a matmul element, times sum |x w|. */
export const matmulTol = (K: number): number => (1.25 * K + 8) * UNIT_ROUNDOFF * 1.01;
/** Tolerance of an attention output element of head size hs. */
export const attentionTol = (headSize: number): number => 4 * (1.25 * headSize + 8) * UNIT_ROUNDOFF * Math.sqrt(headSize) + 1e-6;

/** One check of a conformance or exactness suite and how it went. */
export interface ConformanceCheck {
  /** e.g. "matmul-agrees", "errors". */
  id: string;
  description: string;
  passed: boolean;
  /** Random problems tried. */
  cases: number;
  /** The first failure, when not passed. */
  failure?: string;
}

/** What runBackendConformance (or runPtpExactness) found: passed only when every check passed. */
export interface ConformanceReport {
  backend: string;
  description: string;
  passed: boolean;
  checks: ConformanceCheck[];
}

export interface ConformanceOptions {
  /** Random problems per check, a positive integer (default 10). */
  runs?: number;
  /** Seed of the problem generator, an integer (default 1). */
  seed?: number;
  /** Options passed to createBackend when a name is given. */
  backendOptions?: BackendOptions;
}

class CheckFailure extends Error {}

function fail(message: string): never {
  throw new CheckFailure(message);
}

function bitDifference(a: ArrayLike<number>, b: ArrayLike<number>): string | null {
  if (a.length !== b.length) return `lengths differ: ${a.length} vs ${b.length}`;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return `element ${i}: ${a[i]} vs ${b[i]}`;
  return null;
}

function bitExact(a: ArrayLike<number>, b: ArrayLike<number>, what: string): void {
  const d = bitDifference(a, b);
  if (d !== null) fail(`${what}: not bit-identical: ${d}`);
}

function close(a: ArrayLike<number>, ref: ArrayLike<number>, tol: (i: number) => number, what: string): void {
  if (a.length !== ref.length) fail(`${what}: ${a.length} elements, the reference has ${ref.length}`);
  for (let i = 0; i < a.length; i++) {
    const err = Math.abs(a[i] - ref[i]);
    if (!(err <= tol(i))) fail(`${what}: element ${i}: ${a[i]} vs reference ${ref[i]} (|err| ${err} > ${tol(i)})`);
  }
}

function throwsBackendError(fn: () => unknown, what: string, pattern?: RegExp): void {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof BackendError)) fail(`${what}: threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}, expected a BackendError`);
    if (pattern && !pattern.test(e.message)) fail(`${what}: BackendError ${JSON.stringify(e.message)} does not match ${pattern}`);
    return;
  }
  fail(`${what}: no error thrown, expected a BackendError`);
}

/** Runs `fn` with allocation helpers (upload host data, or zeros) and frees what it allocated. */
export function scoped<T>(b: Backend, fn: (alloc: (data: HostArray, dtype?: DType) => Buffer, zeros: (n: number) => Buffer) => T): T {
  const owned: Buffer[] = [];
  try {
    return fn(
      (data, dtype = "f32") => {
        const buf = b.alloc(data.length, dtype);
        owned.push(buf);
        b.upload(buf, data);
        return buf;
      },
      (n) => {
        const buf = b.alloc(n);
        owned.push(buf);
        return buf;
      },
    );
  } finally {
    for (const buf of owned) b.free(buf);
  }
}

/**
 * The ops as host-in, host-out calls: each uploads its inputs to fresh
 * buffers of `b`, runs the op, downloads the result and frees what it
 * allocated (in-place ops start from, and return, their first array).
 */
export const hostOps = {
  matmul: (b: Backend, x: Float32Array, w: Float32Array, M: number, K: number, N: number) =>
    scoped(b, (alloc, zeros) => {
      const y = zeros(M * N);
      b.matmul(y, alloc(x), alloc(w), M, K, N);
      return b.download(y);
    }),
  rmsnorm: (b: Backend, x: Float32Array, g: Float32Array, M: number, D: number, eps: number) =>
    scoped(b, (alloc, zeros) => {
      const y = zeros(M * D);
      b.rmsnorm(y, alloc(x), alloc(g), M, D, eps);
      return b.download(y);
    }),
  rope: (b: Backend, x: Float32Array, pos: Int32Array, M: number, nHeads: number, hs: number, theta: number) =>
    scoped(b, (alloc) => {
      const xb = alloc(x);
      b.rope(xb, alloc(pos, "i32"), M, nHeads, hs, theta);
      return b.download(xb);
    }),
  swiglu: (b: Backend, g: Float32Array, u: Float32Array) =>
    scoped(b, (alloc, zeros) => {
      const y = zeros(g.length);
      b.swiglu(y, alloc(g), alloc(u), g.length);
      return b.download(y);
    }),
  softmax: (b: Backend, x: Float32Array, M: number, N: number) =>
    scoped(b, (alloc) => {
      const xb = alloc(x);
      b.softmax(xb, M, N);
      return b.download(xb);
    }),
  add: (b: Backend, y: Float32Array, x: Float32Array, n: number) =>
    scoped(b, (alloc) => {
      const yb = alloc(y);
      b.add(yb, alloc(x), n);
      return b.download(yb);
    }),
  embedding: (b: Backend, y: Float32Array, table: Float32Array, ids: Int32Array, M: number, D: number) =>
    scoped(b, (alloc) => {
      const yb = alloc(y);
      b.embedding(yb, alloc(table), alloc(ids, "i32"), M, D);
      return b.download(yb);
    }),
  copy: (b: Backend, dst: Float32Array, dOff: number, src: Float32Array, sOff: number, n: number) =>
    scoped(b, (alloc) => {
      const d = alloc(dst);
      b.copy(d, dOff, alloc(src), sOff, n);
      return b.download(d);
    }),
  attention: (b: Backend, c: Attn) =>
    scoped(b, (alloc, zeros) => {
      const out = zeros(c.M * c.nHeads * c.headSize);
      b.attention(out, alloc(c.q), alloc(c.keys), alloc(c.values), c.mask ? alloc(c.mask, "u8") : null, c.M, c.nKeys, c.nHeads, c.nKvHeads, c.headSize);
      return b.download(out);
    }),
};

/** Attention through `attentionSparse`, with `c.mask` (or the causal default) as offsets and key indices. */
function sparseAttention(b: Backend, c: Attn): Float32Array {
  const offsets: number[] = [0],
    keys: number[] = [];
  for (let m = 0; m < c.M; m++) {
    for (let j = 0; j < c.nKeys; j++) if (c.mask ? c.mask[m * c.nKeys + j] : j <= c.nKeys - c.M + m) keys.push(j);
    offsets.push(keys.length);
  }
  return scoped(b, (alloc, zeros) => {
    const out = zeros(c.M * c.nHeads * c.headSize);
    b.attentionSparse!(out, alloc(c.q), alloc(c.keys), alloc(c.values), alloc(Int32Array.from([...offsets, ...keys]), "i32"), c.M, c.nKeys, c.nHeads, c.nKvHeads, c.headSize);
    return b.download(out);
  });
}

/** An attention problem on the host. */
export interface Attn {
  q: Float32Array;
  keys: Float32Array;
  values: Float32Array;
  mask: Uint8Array | null;
  M: number;
  nKeys: number;
  nHeads: number;
  nKvHeads: number;
  headSize: number;
}

/** A random attention problem drawn from `g`; mask null (causal) or random with at least one visible key per row. */
export function randomAttention(g: Gen, M: number, extraKeys: number, nKvHeads: number, group: number, headSize: number, masked: boolean): Attn {
  const nHeads = nKvHeads * group;
  const nKeys = M + extraKeys;
  const q = g.f32(M * nHeads * headSize);
  const keys = g.f32(nKeys * nKvHeads * headSize);
  const values = g.f32(nKeys * nKvHeads * headSize);
  let mask: Uint8Array | null = null;
  if (masked) {
    mask = new Uint8Array(M * nKeys);
    for (let m = 0; m < M; m++) {
      for (let j = 0; j < nKeys; j++) mask[m * nKeys + j] = g.next() < 0.6 ? 1 : 0;
      mask[m * nKeys + g.int(0, nKeys - 1)] = 1;
    }
  }
  return { q, keys, values, mask, M, nKeys, nHeads, nKvHeads, headSize };
}

/** Row m alone, seeing the same keys (its mask row, or the causal prefix). */
export function attentionRow(c: Attn, m: number): Attn {
  const width = c.nHeads * c.headSize;
  const q = c.q.slice(m * width, (m + 1) * width);
  if (c.mask) return { ...c, q, M: 1, mask: c.mask.slice(m * c.nKeys, (m + 1) * c.nKeys) };
  // Causal default: row m of M sees keys 0 .. nKeys - M + m, which is what a
  // single row sees with nKeys' = nKeys - M + m + 1 keys.
  return { ...c, q, M: 1, nKeys: c.nKeys - c.M + m + 1 };
}

/**
 * The same problem with three poisoned keys appended (NaN keys, 1e30 values)
 * and an explicit mask that shows every row exactly the keys it saw before:
 * a correct backend gives the same bits.
 */
export function withPoisonedKeys<A extends Attn>(c: A): A {
  const M = c.M,
    kvW = c.nKvHeads * c.headSize,
    nKeys = c.nKeys + 3;
  const keys = new Float32Array(nKeys * kvW),
    values = new Float32Array(nKeys * kvW);
  keys.set(c.keys);
  values.set(c.values);
  keys.fill(NaN, c.nKeys * kvW);
  values.fill(1e30, c.nKeys * kvW);
  const mask = new Uint8Array(M * nKeys);
  for (let m = 0; m < M; m++) for (let j = 0; j < c.nKeys; j++) mask[m * nKeys + j] = c.mask ? c.mask[m * c.nKeys + j] : j <= c.nKeys - M + m ? 1 : 0;
  return { ...c, keys, values, mask, nKeys };
}

/** Sum over k of |x[m, k] w[n, k]|: the scale of the matmul rounding error. */
export function absDot(x: Float32Array, w: Float32Array, m: number, n: number, K: number): number {
  let s = 0;
  for (let k = 0; k < K; k++) s += Math.abs(x[m * K + k] * w[n * K + k]);
  return s;
}

/** A random matmul problem: the fixed [M, K, N] or M <= 40, K <= 80, N <= maxN; x is M x K, w is N x K. */
function matmulProblem(g: Gen, fixed: [number, number, number] | null, maxN: number) {
  const [M, K, N] = fixed ?? [g.int(1, 40), g.int(1, 80), g.int(1, maxN)];
  const x = g.f32(M * K),
    w = g.f32(N * K);
  return { M, K, N, x, w };
}

/** A random rows problem: M rows of D = nHeads * hs (hs even), x scaled by xScale, a norm weight w and a second input y. */
function rowsProblem(g: Gen, maxM: number, maxHeads: number, maxHalfHead: number, xScale: number) {
  const M = g.int(1, maxM),
    nHeads = g.int(1, maxHeads),
    hs = 2 * g.int(1, maxHalfHead),
    D = nHeads * hs;
  const x = g.f32(M * D, xScale),
    w = g.f32(D),
    y = g.f32(M * D);
  return { M, nHeads, hs, D, x, w, y };
}

interface CheckSpec {
  id: string;
  description: string;
  /** One random case; `i` counts from 0. */
  run(b: Backend, ref: Backend, g: Gen, i: number): void;
  /** Cases to run (default: options.runs). */
  cases?: number;
}

const CHECKS: CheckSpec[] = [
  {
    id: "matmul-agrees",
    description: "matmul agrees with the js reference within (1.25 K + 8) u sum|x w|",
    run(b, ref, g, i) {
      const { M, K, N, x, w } = matmulProblem(g, i === 0 ? [37, 301, 67] : null, 70);
      close(hostOps.matmul(b, x, w, M, K, N), hostOps.matmul(ref, x, w, M, K, N), (e) => matmulTol(K) * absDot(x, w, Math.floor(e / N), e % N, K), `matmul M=${M} K=${K} N=${N}`);
    },
  },
  {
    id: "elementwise-exact",
    description: "rmsnorm, rope, add, embedding and copy agree with the js reference bit for bit",
    run(b, ref, g) {
      const { M, nHeads, hs, D, x, w, y } = rowsProblem(g, 12, 4, 12, 3);
      bitExact(hostOps.rmsnorm(b, x, w, M, D, 1e-5), hostOps.rmsnorm(ref, x, w, M, D, 1e-5), "rmsnorm");
      // Mostly positions a decode meets, some far past any table of them, negative or the largest i32.
      const far = [-7, 1 << 20, 2 ** 31 - 1];
      const pos = Int32Array.from({ length: M }, () => (g.int(0, 5) === 0 ? far[g.int(0, 2)] : g.int(0, 4999)));
      bitExact(hostOps.rope(b, x, pos, M, nHeads, hs, 10000), hostOps.rope(ref, x, pos, M, nHeads, hs, 10000), "rope");
      // A run of consecutive positions from anywhere in the first few thousand, one row each.
      const from = g.int(0, 4000),
        run = Int32Array.from({ length: 64 }, (_, m) => from + m),
        xs = g.f32(64 * nHeads * hs);
      bitExact(hostOps.rope(b, xs, run, 64, nHeads, hs, 10000), hostOps.rope(ref, xs, run, 64, nHeads, hs, 10000), "rope run");
      // Head sizes and thetas taking turns on one backend (a teacher and its draft may share one).
      for (const [size, theta] of [
        [2 * g.int(1, 8), 500000],
        [hs, 10000],
        [2 * g.int(1, 8), 10000],
        [hs, 500000],
        [hs, 10000],
      ]) {
        const xt = g.f32(M * nHeads * size);
        bitExact(hostOps.rope(b, xt, pos, M, nHeads, size, theta), hostOps.rope(ref, xt, pos, M, nHeads, size, theta), `rope headSize ${size} theta ${theta}`);
      }
      bitExact(hostOps.add(b, y, x, M * D), hostOps.add(ref, y, x, M * D), "add");
      const table = g.f32(5 * D),
        ids = Int32Array.from({ length: M }, () => g.int(-2, 4));
      bitExact(hostOps.embedding(b, y, table, ids, M, D), hostOps.embedding(ref, y, table, ids, M, D), "embedding");
      const n = g.int(0, M * D),
        so = g.int(0, M * D - n),
        dOff = g.int(0, M * D - n);
      bitExact(hostOps.copy(b, y, dOff, x, so, n), hostOps.copy(ref, y, dOff, x, so, n), "copy");
    },
  },
  {
    id: "written-weights-fresh",
    description: "a buffer that an op writes is read anew when it serves as a matmul weight again (no copy kept of it, such as packed panels, outlives the write)",
    run(b, _ref, g) {
      // w [N, K] serves as a weight, an op writes it, and the next product must use what it holds now.
      const K = 2 * g.int(2, 20),
        N = g.int(2, 24),
        n = N * K,
        x = g.f32(K);
      const rows = (f: (m: number) => number) => Int32Array.from({ length: N }, (_, m) => f(m));
      const writers: [string, (w: Buffer, alloc: (d: HostArray, t?: DType) => Buffer) => void][] = [
        ["add", (w, alloc) => b.add(w, alloc(g.f32(n)), n)],
        ["copy", (w, alloc) => b.copy(w, 0, alloc(g.f32(n)), 0, n)],
        ["rmsnorm", (w, alloc) => b.rmsnorm(w, alloc(g.f32(n)), alloc(g.f32(K)), N, K, 1e-5)],
        [
          "rope",
          (w, alloc) =>
            b.rope(
              w,
              alloc(
                rows((m) => m + 3),
                "i32",
              ),
              N,
              1,
              K,
              10000,
            ),
        ],
        ["swiglu", (w, alloc) => b.swiglu(w, alloc(g.f32(n)), alloc(g.f32(n)), n)],
        ["softmax", (w) => b.softmax(w, N, K)],
        [
          "embedding",
          (w, alloc) =>
            b.embedding(
              w,
              alloc(g.f32(3 * K)),
              alloc(
                rows((m) => m % 3),
                "i32",
              ),
              N,
              K,
            ),
        ],
        ["matmul", (w, alloc) => b.matmul(w, alloc(g.f32(N * 5)), alloc(g.f32(K * 5)), N, 5, K)],
        ["attention", (w, alloc) => b.attention(w, alloc(g.f32(n)), alloc(g.f32(n)), alloc(g.f32(n)), null, N, N, 1, 1, K)],
      ];
      for (const [name, write] of writers) {
        scoped(b, (alloc, zeros) => {
          const w = alloc(g.f32(n)),
            xb = alloc(x),
            y = zeros(N);
          b.matmul(y, xb, w, 1, K, N);
          write(w, alloc);
          b.matmul(y, xb, w, 1, K, N);
          const got = b.download(y);
          b.matmul(y, xb, alloc(b.download(w)), 1, K, N);
          bitExact(got, b.download(y), `a product after ${name} wrote its weight`);
        });
      }
    },
  },
  {
    id: "host-access",
    description: "where a backend has them, downloadInto equals download over any range, and hostView is the buffer itself: a read view holds its values (also once it served as a matmul weight), writes through a write view are what later ops read, a bad access is a BackendError",
    run(b, _ref, g) {
      const K = g.int(1, 40),
        N = g.int(1, 24),
        n = N * K,
        data = g.f32(n),
        x = g.f32(K);
      scoped(b, (alloc, zeros) => {
        const w = alloc(data),
          xb = alloc(x),
          y = zeros(N);
        b.matmul(y, xb, w, 1, K, N); // as a weight first: a backend may keep it in another layout
        if (b.downloadInto) {
          const off = g.int(0, n),
            out = new Float32Array(g.int(0, n - off));
          b.downloadInto(w, out, off);
          bitExact(out, data.subarray(off, off + out.length), `downloadInto of [${off}, ${off + out.length}) of a weight`);
        }
        if (!b.hostView) return;
        bitExact(b.hostView(w, "read"), data, "a read view of a weight");
        const before = b.download(y);
        b.matmul(y, xb, w, 1, K, N);
        bitExact(b.download(y), before, "a product after a read view of its weight");
        const fresh = g.f32(n);
        b.hostView(w, "write").set(fresh);
        bitExact(b.download(w), fresh, "a download after a write through a view");
        b.matmul(y, xb, w, 1, K, N);
        const got = b.download(y);
        b.matmul(y, xb, alloc(fresh), 1, K, N);
        bitExact(got, b.download(y), "a product after a write through a view of its weight");
        throwsBackendError(() => b.hostView!(w, "readwrite" as "read"), 'hostView with access "readwrite"');
      });
    },
  },
  {
    id: "exp-ops-agree",
    description: "swiglu and softmax agree with the js reference within 1e-6 relative",
    run(b, ref, g) {
      const M = g.int(1, 10),
        N = g.int(1, 300);
      const x = g.f32(M * N, 8),
        u = g.f32(M * N, 2);
      const s = hostOps.swiglu(ref, x, u);
      close(hostOps.swiglu(b, x, u), s, (e) => 1e-6 * Math.abs(s[e]) + 1e-12, "swiglu");
      const z = hostOps.softmax(ref, x, M, N);
      close(hostOps.softmax(b, x, M, N), z, (e) => 1e-6 * Math.abs(z[e]) + 1e-12, "softmax");
    },
  },
  {
    id: "attention-agrees",
    description: "attention agrees with the js reference (causal and masked, MHA and GQA)",
    run(b, ref, g, i) {
      const c = i === 0 ? randomAttention(g, 3, 297, 2, 2, 16, false) : i === 1 ? randomAttention(g, 5, 200, 1, 4, 130, true) : randomAttention(g, g.int(1, 8), g.int(0, 12), g.int(1, 3), g.int(1, 3), g.int(1, 19), g.next() < 0.5);
      close(hostOps.attention(b, c), hostOps.attention(ref, c), () => attentionTol(c.headSize), `attention M=${c.M} nKeys=${c.nKeys} hs=${c.headSize}`);
    },
  },
  {
    id: "matmul-batch-invariant",
    description: "matmul rows are bit-identical whatever M",
    run(b, _ref, g, i) {
      const { M, K, N, x, w } = matmulProblem(g, i === 0 ? [70, 257, 33] : null, 40);
      const all = hostOps.matmul(b, x, w, M, K, N);
      for (let m = 0; m < M; m++) bitExact(all.subarray(m * N, (m + 1) * N), hostOps.matmul(b, x.slice(m * K, (m + 1) * K), w, 1, K, N), `matmul row ${m} of M=${M} K=${K} N=${N}`);
      for (const [from, to] of [
        [1, M - 1],
        [0, 2],
        [M - 5, M],
      ]) {
        if (from < 0 || to <= from || to > M) continue;
        bitExact(all.subarray(from * N, to * N), hostOps.matmul(b, x.slice(from * K, to * K), w, to - from, K, N), `matmul rows ${from}..${to - 1} of ${M}`);
      }
    },
  },
  {
    id: "rows-batch-invariant",
    description: "rmsnorm, rope, swiglu, softmax, add and embedding rows are bit-identical whatever M",
    run(b, _ref, g) {
      const { M, nHeads, hs, D, x, w, y: u } = rowsProblem(g, 20, 3, 20, 4);
      const pos = Int32Array.from({ length: M }, () => g.int(0, 2999));
      const table = g.f32(4 * D),
        ids = Int32Array.from({ length: M }, () => g.int(-1, 3));
      const norm = hostOps.rmsnorm(b, x, w, M, D, 1e-6),
        rot = hostOps.rope(b, x, pos, M, nHeads, hs, 500000);
      const sw = hostOps.swiglu(b, x, u),
        sm = hostOps.softmax(b, x, M, D),
        ad = hostOps.add(b, u, x, M * D),
        em = hostOps.embedding(b, u, table, ids, M, D);
      for (let m = 0; m < M; m++) {
        const xr = x.slice(m * D, (m + 1) * D),
          ur = u.slice(m * D, (m + 1) * D),
          row = (a: Float32Array) => a.subarray(m * D, (m + 1) * D);
        bitExact(row(norm), hostOps.rmsnorm(b, xr, w, 1, D, 1e-6), `rmsnorm row ${m}`);
        bitExact(row(rot), hostOps.rope(b, xr, pos.slice(m, m + 1), 1, nHeads, hs, 500000), `rope row ${m}`);
        bitExact(row(sw), hostOps.swiglu(b, xr, ur), `swiglu row ${m}`);
        bitExact(row(sm), hostOps.softmax(b, xr, 1, D), `softmax row ${m}`);
        bitExact(row(ad), hostOps.add(b, ur, xr, D), `add row ${m}`);
        bitExact(row(em), hostOps.embedding(b, ur, table, ids.slice(m, m + 1), 1, D), `embedding row ${m}`);
      }
    },
  },
  {
    id: "attention-batch-invariant",
    description: "attention rows equal the row alone with the same visible keys; masked-out NaN keys change nothing; attentionSparse (where present) gives the same bits",
    run(b, _ref, g) {
      const M = g.int(1, 12),
        nKv = g.int(1, 2),
        hs = g.int(1, 18);
      const c = randomAttention(g, M, g.int(0, 10), nKv, g.int(1, 3), hs, g.next() < 0.5);
      const all = hostOps.attention(b, c);
      const width = c.nHeads * hs;
      for (let m = 0; m < M; m++) bitExact(all.subarray(m * width, (m + 1) * width), hostOps.attention(b, attentionRow(c, m)), `attention row ${m} of ${M}`);
      const poisoned = withPoisonedKeys(c);
      bitExact(hostOps.attention(b, poisoned), all, "attention with poisoned masked-out keys");
      // The same mask in sparse form, where the backend has attentionSparse: the same bits.
      if (b.attentionSparse) bitExact(sparseAttention(b, poisoned), all, `attentionSparse M=${M} nKeys=${poisoned.nKeys}`);
    },
  },
  {
    id: "argmax-exact",
    description: "argmax (where the backend has it) gives, for every row, the index the host argmax of sampling/pick.ts gives: ties to the lower index, NaN never wins, a row starting with NaN gives 0",
    run(b, _ref, g, i) {
      if (!b.argmax) return;
      const M = g.int(1, 6),
        N = i === 0 ? 32000 : g.int(1, 41);
      // Few distinct values, so ties, NaNs, infinities and signed zeros all turn up.
      const values = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 0, -0, 1, 2, -3, 2.5];
      const x = Float32Array.from({ length: M * N }, () => (g.next() < 0.6 ? g.pick(values) : g.next() * 4 - 2));
      const got = scoped(b, (alloc) => b.argmax!(alloc(x), M, N));
      for (let m = 0; m < M; m++) {
        const want = argmax(x.subarray(m * N, (m + 1) * N));
        if (got[m] !== want) throw new Error(`argmax row ${m} of ${M} (N=${N}): got ${got[m]}, the host argmax gives ${want}`);
      }
    },
  },
  {
    id: "decoder-layer-exact",
    description: "decoderLayer (where the backend has it) gives a model forward the bits of the same forward with each layer's ops run one by one: any row count, causal, dense or sparse masks, grouped-query heads",
    run(b, _ref, g) {
      if (!b.decoderLayer) return;
      const nKvHeads = g.pick([1, 2]),
        nHeads = nKvHeads * g.pick([1, 2, 3]),
        dim = nHeads * g.pick([4, 6, 8]);
      const config = { dim, hiddenDim: g.int(1, 40), nLayers: 2, nHeads, nKvHeads, vocabSize: 37, seqLen: 32, sharedClassifier: false, normEps: 1e-5, ropeTheta: 10000 };
      const ckpt = randomCheckpoint(config, g.int(1, 1e6));
      for (const layer of ckpt.weights.layers) for (const w of [layer.rmsAtt, layer.rmsFfn]) for (let i = 0; i < dim; i++) w[i] = 0.5 + g.next();
      const cached = g.int(1, 6),
        M = g.int(1, 5);
      const prefix = { tokens: Array.from({ length: cached }, () => g.int(0, 36)), positions: Array.from({ length: cached }, (_, i) => i) };
      const block: Block = { tokens: Array.from({ length: M }, () => g.int(0, 36)), positions: Array.from({ length: M }, () => cached + g.int(0, 4)) };
      const kind = g.int(0, 2);
      if (kind === 1) block.mask = Uint8Array.from({ length: M * (cached + M) }, (_, j) => (j % (cached + M) === cached + Math.floor(j / (cached + M)) || g.next() < 0.5 ? 1 : 0));
      if (kind === 2) block.visible = { offsets: Int32Array.from({ length: M + 1 }, (_, m) => m * 2), keys: Int32Array.from({ length: 2 * M }, (_, j) => (j % 2 === 0 ? g.int(0, cached - 1) : cached + (j >> 1))) };
      const forward = (backend: Backend) => {
        const model = new Transformer(backend, ckpt);
        try {
          const cache = model.newCache();
          return [model.forward(prefix, cache), model.forward(block, cache)];
        } finally {
          model.dispose();
        }
      };
      // The same backend with decoderLayer hidden: the model then runs each op.
      const opByOp = new Proxy(b, { get: (t, p) => (p === "decoderLayer" ? undefined : Reflect.get(t, p, t)) });
      const [fused, ops] = [forward(b), forward(opByOp)];
      bitExact(fused[0], ops[0], `decoderLayer: the prefix call (${cached} rows)`);
      bitExact(fused[1], ops[1], `decoderLayer: a ${["causal", "dense-masked", "sparse-masked"][kind]} call of ${M} rows after ${cached}`);
    },
  },
  {
    id: "pick-exact",
    description: "pick (where the backend has it) gives the token sampleToken gives on the host, for random rows, temperatures and u's, u's on the bin edges included, with and without excluded tokens (read as -Infinity, the buffer left unchanged); -1 exactly where the host refuses the row",
    run(b, _ref, g, i) {
      if (!b.pick) return;
      const N = i === 0 ? 32000 : g.int(1, 300),
        M = g.int(1, 4);
      const temperature = g.pick([0.05, 0.7, 1, 1.3, 2.5]);
      // Flat rows, or a language model's peaked ones (most tokens far below the top: the kernel's passes skip them).
      const peaked = g.next() < 0.5;
      const gauss = () => Math.sqrt(-2 * Math.log(1 - g.next())) * Math.cos(2 * Math.PI * g.next());
      const x = Float32Array.from({ length: M * N }, () => (g.next() < 0.05 ? Number.NEGATIVE_INFINITY : peaked ? (g.next() < 0.01 ? 20 + 8 * g.next() : 3 * gauss()) : (g.next() * 2 - 1) * 12));
      if (g.next() < 0.2) x[g.int(0, M * N - 1)] = g.pick([Number.NaN, Number.POSITIVE_INFINITY]);
      if (g.next() < 0.1) x.fill(Number.NEGATIVE_INFINITY, 0, N);
      const settings = { temperature };
      for (let trial = 0; trial < 4; trial++) {
        // Per row: a random u, or an edge of a random token's bin on the host (the hard cases).
        const us = Array.from({ length: M }, (_, m) => {
          if (trial === 0) return g.next() < 0.2 ? 1 - 2 ** -53 : g.next(); // sometimes past the last cdf: the last nonzero token
          if (trial === 2 && g.next() < 0.3) return 1 - 2 ** -53;
          try {
            const [left, right] = binOf(samplingDistribution(x.subarray(m * N, (m + 1) * N), settings), g.int(0, N - 1));
            const u = trial === 1 ? left : right;
            return u < 1 ? u : g.next();
          } catch {
            return g.next();
          }
        });
        // Some trials rule tokens out (the runner-ups' picks), a token twice included: the host's pick with their logits at -Infinity, the buffer unchanged.
        const exclude = trial === 3 ? Array.from({ length: g.int(1, 3) }, () => g.int(0, N - 1)) : [];
        if (exclude.length > 1 && g.next() < 0.5) exclude.push(exclude[0]);
        const [got, after] = scoped(b, (alloc) => {
          const buf = alloc(x);
          return [b.pick!(buf, 0, M, N, temperature, us, exclude), b.download(buf)] as const;
        });
        if (!after.every((v, j) => Object.is(v, x[j]))) throw new Error("pick with excluded tokens changed the logits buffer");
        for (let m = 0; m < M; m++) {
          let want = -1;
          const row = Float32Array.from(x.subarray(m * N, (m + 1) * N));
          for (const e of exclude) row[e] = Number.NEGATIVE_INFINITY;
          try {
            want = sampleToken(row, settings, us[m]);
          } catch {
            /* the host refuses this row: -1 expected */
          }
          if (got[m] !== want) throw new Error(`pick row ${m} of ${M} (N=${N}, T=${temperature}, u=${us[m]}, excluding ${exclude.join(", ") || "none"}): got ${got[m]}, the host gives ${want}`);
        }
      }
    },
  },
  {
    id: "token-probabilities",
    description: "tokenProbabilities (where the backend has it) is the host's tokenProbability estimate within 1e-5 relative (plus the f32 rounding of x / T), for random rows, temperatures and tokens; NaN for a row with a NaN or +Infinity",
    run(b, _ref, g, i) {
      if (!b.tokenProbabilities) return;
      const N = i === 0 ? 32000 : g.int(1, 300),
        M = g.int(1, 4);
      const temperature = g.pick([0.05, 0.28, 0.7, 1, 2.5]);
      const x = Float32Array.from({ length: M * N }, () => (g.next() < 0.05 ? Number.NEGATIVE_INFINITY : (g.next() * 2 - 1) * g.pick([1, 12, 100])));
      for (let m = 0; m < M; m++) x[m * N + g.int(0, N - 1)] = 5; // every row holds a finite value
      const poisoned = g.next() < 0.2 ? g.int(0, M - 1) : -1;
      if (poisoned >= 0) x[poisoned * N + g.int(0, N - 1)] = g.pick([Number.NaN, Number.POSITIVE_INFINITY]);
      const tokens = Array.from({ length: M }, () => g.int(0, N - 1));
      const got = scoped(b, (alloc) => b.tokenProbabilities!(alloc(x), 0, M, N, temperature, tokens));
      for (let m = 0; m < M; m++) {
        const row = x.subarray(m * N, (m + 1) * N);
        const what = `tokenProbabilities row ${m} of ${M} (N=${N}, T=${temperature}, token ${tokens[m]})`;
        if (m === poisoned) {
          if (!Number.isNaN(got[m])) throw new Error(`${what}: a row holding a NaN or +Infinity gives NaN, got ${got[m]}`);
          continue;
        }
        const want = tokenProbability(row, tokens[m], temperature);
        let maxArg = 0;
        for (const v of row) if (Number.isFinite(v)) maxArg = Math.max(maxArg, Math.abs(v) / temperature);
        const tol = want * (1e-5 + 8 * maxArg * UNIT_ROUNDOFF) + 1e-30;
        if (!(Math.abs(got[m] - want) <= tol)) throw new Error(`${what}: got ${got[m]}, the host estimate is ${want}`);
      }
    },
  },
  {
    id: "set-weight-type",
    description: "setWeightType (where the backend has it): a weight used in one type and set to another reads as a fresh weight set to that type (its panels remade), the type survives an upload, and an unknown type is a BackendError",
    cases: 3,
    run(b, _ref, g) {
      if (!b.setWeightType) return;
      const M = g.int(1, 6),
        K = g.int(1, 70),
        N = g.int(1, 70);
      const rand = (n: number) => Float32Array.from({ length: n }, () => g.next() * 2 - 1);
      const x = rand(M * K),
        w = rand(N * K),
        w2 = rand(N * K);
      scoped(b, (alloc, zeros) => {
        const product = (W: Buffer) => {
          const X = alloc(x),
            Y = zeros(M * N);
          b.matmul(Y, X, W, M, K, N);
          return b.download(Y);
        };
        const fresh = (data: Float32Array, type: "f32" | "bf16" | "int8") => {
          const W = alloc(data);
          b.setWeightType!(W, type);
          return W;
        };
        const [from, to] = g.next() < 0.5 ? (["int8", "f32"] as const) : (["f32", "bf16"] as const);
        const W = fresh(w, from);
        product(W);
        b.setWeightType!(W, to);
        bitExact(product(W), product(fresh(w, to)), `matmul after setWeightType ${from} -> ${to}, M=${M} K=${K} N=${N}`);
        b.upload(W, w2);
        bitExact(product(W), product(fresh(w2, to)), `matmul after an upload into a ${to} weight`);
        let refused = false;
        try {
          b.setWeightType!(W, "fp4" as never);
        } catch (e) {
          refused = e instanceof BackendError;
        }
        if (!refused) throw new Error('setWeightType(w, "fp4") must throw a BackendError');
      });
    },
  },
  {
    id: "errors",
    description: "misuse throws BackendError: after free, double free, dtype, out-of-range spans, foreign buffers, ids outside the table, rows that see no key (dense or sparse), argmax of empty rows and pick's bad arguments (where present)",
    cases: 1,
    run(b) {
      const other = new JsBackend();
      const foreign = other.alloc(8);
      const f = b.alloc(8),
        i = b.alloc(8, "i32"),
        u = b.alloc(8, "u8"),
        dead = b.alloc(8);
      try {
        b.free(dead);
        throwsBackendError(() => b.download(dead), "download after free");
        throwsBackendError(() => b.free(dead), "double free");
        throwsBackendError(() => b.add(f, dead, 8), "add reading a freed buffer");
        throwsBackendError(() => b.rope(f, f, 1, 1, 2, 10000), "rope with f32 positions", /i32/);
        throwsBackendError(() => b.copy(f, 0, i, 0, 1), "copy between dtypes");
        throwsBackendError(() => b.upload(f, new Float32Array(9)), "upload past the end");
        throwsBackendError(() => b.download(f, 4, 5), "download past the end");
        throwsBackendError(() => b.add(f, f, 9), "add past the end");
        throwsBackendError(() => b.matmul(f, f, f, 3, 3, 3), "matmul past the end");
        throwsBackendError(() => b.swiglu(f, f, f, 9), "swiglu past the end");
        throwsBackendError(() => b.rmsnorm(f, f, f, 3, 3, 1e-5), "rmsnorm past the end");
        throwsBackendError(() => b.softmax(f, 3, 3), "softmax past the end");
        throwsBackendError(() => b.copy(f, 5, f, 0, 4), "copy past the end");
        throwsBackendError(() => b.add(f, foreign, 8), "a buffer of another backend instance");
        b.upload(i, Int32Array.from([0, -1, 4, 0, 0, 0, 0, 0]));
        throwsBackendError(() => b.embedding(f, f, i, 3, 2), "embedding id outside the table", /outside/);
        b.upload(u, Uint8Array.from([1, 1, 0, 0, 1, 0, 0, 0]));
        throwsBackendError(() => b.attention(f, f, f, f, u, 2, 2, 1, 1, 2), "attention row with an all-zero mask row", /sees no key/);
        throwsBackendError(() => b.attention(f, f, f, f, null, 3, 2, 1, 1, 1), "causal attention with fewer keys than rows", /sees no key/);
        const back = Array.from(b.download(i, 0, 3));
        if (back.join() !== "0,-1,4") fail(`download of an i32 buffer gave ${back.join()}, expected 0,-1,4`);
        if (b.attentionSparse) {
          b.upload(i, Int32Array.from([0, 0, 0, 0, 0, 0, 0, 0]));
          throwsBackendError(() => b.attentionSparse!(f, f, f, f, i, 1, 2, 1, 1, 2), "attentionSparse row that sees no key", /sees no key/);
        }
        if (b.pick) {
          throwsBackendError(() => b.pick!(f, 2, 1, 4, 1, [0.5]), "pick past the end");
          throwsBackendError(() => b.pick!(f, 0, 2, 4, 1, [0.5]), "pick with fewer u's than rows");
          throwsBackendError(() => b.pick!(f, 0, 1, 4, 0, [0.5]), "pick at temperature 0");
          throwsBackendError(() => b.pick!(f, 0, 1, 4, 1, [1]), "pick with u = 1");
          throwsBackendError(() => b.pick!(f, 0, 1, 4, 1, [0.5], [4]), "pick excluding a token past the row");
        }
        if (b.argmax) {
          throwsBackendError(() => b.argmax!(f, 3, 3), "argmax past the end");
          throwsBackendError(() => b.argmax!(i, 1, 2), "argmax of an i32 buffer", /f32/);
          throwsBackendError(() => b.argmax!(f, 1, 0), "argmax of empty rows");
        }
      } finally {
        for (const x of [f, i, u]) b.free(x);
        other.free(foreign);
      }
    },
  },
];

/** The options of runBackendConformance; another key is a typo that would be ignored. */
const CONFORMANCE_OPTIONS: readonly string[] = ["runs", "seed", "backendOptions"];

/** The most random problems per check: 10^4 (a run of the suite at 10 takes seconds; more would hold the thread for hours). */
export const MAX_CONFORMANCE_RUNS = 10_000;

/**
 * What a check suite (runBackendConformance, runPtpExactness) reads before
 * it runs: its options object (no unknown key), the backend (a registered
 * name is created with `backendOptions`; an instance is used as it is), the
 * random cases per check (`runs`: a positive integer up to `runs.max`) and
 * the seed of their generator.
 */
export async function openSuite(where: string, backend: unknown, options: { runs?: number; seed?: number; backendOptions?: BackendOptions }, known: readonly string[], runsRule: { default: number; max: number; what: string }): Promise<{ b: Backend; runs: number; g: Gen }> {
  checkOptionKeys(options, where, known);
  if (typeof backend !== "string" && (backend === null || typeof backend !== "object" || typeof (backend as { alloc?: unknown }).alloc !== "function")) {
    throw new TypeError(`${where}: backend must be a registered backend's name or a Backend instance, got ${describeValue(backend)}`);
  }
  const runs = options.runs === undefined ? runsRule.default : checkPositiveInteger(options.runs, where, "runs");
  if (runs > runsRule.max) throw new RangeError(`${where}: runs must be at most ${runsRule.max} (${runsRule.what}), got ${runs}`);
  const g = new Gen(options.seed === undefined ? 1 : checkInteger(options.seed, where, "seed"));
  const b = typeof backend === "string" ? await createBackend(backend, options.backendOptions) : (backend as Backend);
  return { b, runs, g };
}

/**
 * Runs the backend contract's checks on a backend (a registered name, or an
 * instance) against the js reference. Never throws for a failing check: the
 * report lists every check with its first failure.
 */
export async function runBackendConformance(backend: string | Backend, options: ConformanceOptions = {}): Promise<ConformanceReport> {
  const { b, runs, g } = await openSuite("runBackendConformance", backend, options, CONFORMANCE_OPTIONS, { default: 10, max: MAX_CONFORMANCE_RUNS, what: "random problems per check" });
  const ref = new JsBackend();
  const checks: ConformanceCheck[] = [];
  for (const spec of CHECKS) {
    const total = spec.cases ?? runs;
    let done = 0;
    let failure: string | undefined;
    for (let i = 0; i < total && failure === undefined; i++) {
      try {
        spec.run(b, ref, g, i);
        done++;
      } catch (e) {
        failure = e instanceof CheckFailure ? e.message : `case ${i} threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`;
      }
    }
    checks.push({ id: spec.id, description: spec.description, passed: failure === undefined, cases: done + (failure ? 1 : 0), ...(failure ? { failure } : {}) });
  }
  return { backend: b.name, description: b.description, passed: checks.every((c) => c.passed), checks };
}
