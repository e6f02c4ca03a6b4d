// The thread pool's side in the module: how threads share one op.
//
// Every worker instantiates this module on the same shared memory and calls
// `workerLoop(ctrl)`, which returns only when the pool closes. The calling
// thread runs an op with `product` or `attend` (layer.ts's decoderLayer
// calls them too), which split it when it is large enough: its arguments and
// the bounds of its chunks go into a control block at `ctrl` (poolBytes()
// bytes, zeroed, never moved), then every thread, the calling one included,
// claims chunks one at a time and runs the same kernel on them.
// A chunk is a range of output columns of a matmul (a multiple of 4) or of
// query heads of attention; no reduction is ever split, so the result is bit
// for bit the one-thread result whoever computes which chunk.
//
// Nothing here is JavaScript: an op costs one call into the module, and a
// worker never leaves it (no JIT, no garbage, no event loop in the way).
//
// Signalling, all sequentially consistent atomics on the control block:
// - GEN counts posted jobs. An idle worker spins on it for `spin` rounds,
//   then sleeps in atomic.wait until it changes; SLEEPERS counts the sleepers
//   so that a post notifies only when someone sleeps (a sleeper adds itself
//   before it waits, and wait returns at once if GEN moved meanwhile).
// - CLAIM is (GEN & 0xffff) << 16 | the next chunk: a claim is a
//   compare-exchange, and a worker late for a job finds the tag changed.
// - COMPLETED counts the chunks the workers finished; the caller returns
//   when those and its own make the job's count.

import { attentionHeads } from "./attention";
import { gemmBf16 } from "./bf16";
import { gemm, gemmPanels, interleaveGroups } from "./gemm";
import { gemmInt8, quantizedRowsBytes, quantizeRowsInt8 } from "./int8";

// Slots (i32) of the control block.
const GEN = 0;
const CLAIM = 1;
const COMPLETED = 2;
const QUIT = 3;
const READY = 4; // workers running
const WORKER_CHUNKS = 5; // chunks workers computed, ever (tests, diagnostics)
const SLEEPERS = 6;
const JOBS = 7; // jobs posted to the threads, ever (tests, diagnostics)
const KIND = 8;
const COUNT = 9;
const ARGS = 10; // the kernel's arguments before (lo, hi)
const MAX_ARGS = 15;
const BOUNDS = ARGS + MAX_ARGS; // chunk i is [bounds[i], bounds[i + 1])
/** Chunks a job is cut into at most. */
const MAX_CHUNKS: i32 = 64;
const SLOTS = BOUNDS + MAX_CHUNKS + 1;

// Job kinds: which kernel a chunk runs, on the arguments in the block, then (lo, hi).
// A matmul job's arguments are x, M, K, then MAX_SEGMENTS segments (y, w, packed, N): weights that
// share x (product: one; products: q, k, v or w1, w3), their columns side by side in the job, each
// segment starting at a multiple of 4 (gemmSegments). The kernel of each kind:
const JOB_GEMM: i32 = 0; // gemm(y, x, w, packed, M, K, N, lo, hi)
const JOB_ATTENTION: i32 = 1; // attentionHeads(out, q, keys, values, mask, hasMask, M, nKeys, nHeads, nKvHeads, hs, scratch, lo, hi)
const JOB_GEMM_BF16: i32 = 2; // gemmBf16(y, x, w, packed, M, K, N, lo, hi)
const JOB_GEMM_INT8: i32 = 3; // gemmInt8(y, xq, packed, M, K, N, lo, hi): the block's x is xq, its w unused
const JOB_GEMM_GROUPED: i32 = 4; // gemmPanels(false, y, xq, packed, M, K, N, lo, hi, grouped): x as interleaveGroups wrote it
const JOB_GEMM_BF16_GROUPED: i32 = 5; // the same over bf16 panels

/** Address of slot i. */
// @ts-ignore: decorator
@inline function slot(ctrl: usize, i: i32): usize {
  return ctrl + ((<usize>i) << 2);
}

// @ts-ignore: decorator
@inline function arg(ctrl: usize, i: i32): i32 {
  return load<i32>(slot(ctrl, ARGS + i));
}

// @ts-ignore: decorator
@inline function bound(ctrl: usize, i: i32): i32 {
  return load<i32>(slot(ctrl, BOUNDS + i));
}

/** Bytes of a control block. */
export function poolBytes(): usize {
  return (<usize>SLOTS) << 2;
}

/** The most chunks a job is cut into (for tests). */
export function poolMaxChunks(): i32 {
  return MAX_CHUNKS;
}

/**
 * Writes the bounds of a job's guided chunks over [0, total) to
 * out[0 .. count] (i32; out[0] = 0, out[count] = total) and returns count:
 * each chunk is 1 / (2 * threads) of what is left, rounded up to a multiple
 * of `align`, at least `minChunk` (a multiple of `align`), and the
 * MAX_CHUNKS-th takes the rest. Long chunks come first and short ones last,
 * so a thread that starts late takes fewer and the threads finish together.
 */
export function guidedChunks(out: usize, total: i32, threads: i32, align: i32, minChunk: i32): i32 {
  const share = 2 * threads * align;
  let count = 0;
  store<i32>(out, 0);
  for (let lo = 0; lo < total; ) {
    const left = total - lo;
    const size = count == MAX_CHUNKS - 1 ? left : max<i32>(minChunk, ((left + share - 1) / share) * align);
    lo = min<i32>(total, lo + size);
    count++;
    store<i32>(out + ((<usize>count) << 2), lo);
  }
  return count;
}

/** Runs chunk [lo, hi) of the posted job. */
function runChunk(ctrl: usize, kind: i32, lo: i32, hi: i32): void {
  if (kind == JOB_ATTENTION) {
    attentionHeads(
      <usize>arg(ctrl, 0), <usize>arg(ctrl, 1), <usize>arg(ctrl, 2), <usize>arg(ctrl, 3), <usize>arg(ctrl, 4), arg(ctrl, 5),
      arg(ctrl, 6), arg(ctrl, 7), arg(ctrl, 8), arg(ctrl, 9), arg(ctrl, 10), <usize>arg(ctrl, 11), lo, hi,
    );
    return;
  }
  gemmSegments(ctrl, kind, lo, hi);
}

/**
 * Posts the job whose arguments are in the block, cut into guided chunks over
 * [0, total), and runs its chunks with the workers; returns when all are done.
 */
function runJob(ctrl: usize, threads: i32, kind: i32, total: i32, align: i32, minChunk: i32): void {
  const count = guidedChunks(slot(ctrl, BOUNDS), total, threads, align, minChunk);
  store<i32>(slot(ctrl, KIND), kind);
  store<i32>(slot(ctrl, COUNT), count);
  const gen = atomic.load<i32>(slot(ctrl, GEN)) + 1;
  store<i32>(slot(ctrl, JOBS), load<i32>(slot(ctrl, JOBS)) + 1);
  atomic.store<i32>(slot(ctrl, COMPLETED), 0);
  atomic.store<i32>(slot(ctrl, CLAIM), (gen & 0xffff) << 16);
  atomic.store<i32>(slot(ctrl, GEN), gen);
  if (atomic.load<i32>(slot(ctrl, SLEEPERS)) > 0) atomic.notify(slot(ctrl, GEN), -1);
  let mine = 0;
  for (;;) {
    const cur = atomic.load<i32>(slot(ctrl, CLAIM));
    const i = cur & 0xffff;
    if (i >= count) break;
    if (atomic.cmpxchg<i32>(slot(ctrl, CLAIM), cur, cur + 1) != cur) continue;
    runChunk(ctrl, kind, bound(ctrl, i), bound(ctrl, i + 1));
    mine++;
  }
  // The chunks the workers claimed are in progress: wait for them.
  while (atomic.load<i32>(slot(ctrl, COMPLETED)) + mine < count) {}
}

// When an op is worth the threads. A hand-off costs microseconds, and a claim moves a shared cache
// line between cores, so:
/** Matmuls of fewer multiply-adds stay on the calling thread. */
const PARALLEL_MIN_MACS: i64 = 1 << 16;
/**
 * The least multiply-adds in a chunk of a threaded matmul (guided chunks). A claim costs (a shared
 * cache line changes hands) and a short chunk reads short memory streams. Against one to four equal
 * chunks per thread, 1.02-1.04x per decode step at 15M and 110M on two threads
 * (docs/BENCHMARKS.md, issue 12, sixteenth session); 4x this lost 8 % at 15M.
 */
const MIN_CHUNK_MACS: i64 = 1 << 15;
/**
 * A matmul chunk's columns are a multiple of this: 4 panels of 4 columns.
 * Each kernel cuts its range into 4 (one or two rows, f32, bf16 and int8)
 * or 2 far-apart groups of panels walked side by side, and runs the panels
 * left over one at a time; a single row's lone panel is one dependency
 * chain of K multiply-adds, several times slower per panel than the
 * four-stream tile. Chunks of whole groups of 4 panels leave none over but
 * in the job's last chunk (as one thread's single range does). Which thread
 * computes which columns never changes a bit.
 */
const CHUNK_ALIGN: i32 = 16;
/** Attention calls of fewer score multiply-adds (visited (row, key) pairs x heads x headSize) stay on the calling thread. */
const PARALLEL_MIN_ATTENTION: i64 = 1 << 15;

/** Weight types, in the order of WEIGHT_TYPES (src/backends/backend.ts). */
export const WEIGHTS_F32: i32 = 0;
export const WEIGHTS_BF16: i32 = 1;
export const WEIGHTS_INT8: i32 = 2;

/** Bytes of the scratch `xq` that product needs for M rows of K inputs with weights of type `weights` (0: none). */
export function productScratchBytes(weights: i32, M: i32, K: i32): usize {
  if (weights == WEIGHTS_INT8) return quantizedRowsBytes(M, K);
  return M >= 3 ? (<usize>M) * (<usize>K) << 2 : 0;
}

/** Segments a matmul job holds at most, and the argument where the first starts (after x, M and K). */
const MAX_SEGMENTS = 3;
const FIRST_SEGMENT_ARG = 3;

/**
 * Runs columns [lo, hi) of the posted matmul job: segment s covers job
 * columns [start, start + N) (start: the segments before it, each rounded
 * up to a multiple of 4, so every kernel gets column bounds as it wants
 * them), and each gets the part of [lo, hi) that falls in it.
 */
function gemmSegments(ctrl: usize, kind: i32, lo: i32, hi: i32): void {
  const x = <usize>arg(ctrl, 0), M = arg(ctrl, 1), K = arg(ctrl, 2);
  let start = 0;
  for (let s = 0; s < MAX_SEGMENTS; s++) {
    const at = FIRST_SEGMENT_ARG + 4 * s, N = arg(ctrl, at + 3);
    if (N == 0) break;
    const a = max<i32>(lo, start), b = min<i32>(hi, start + N);
    if (a < b) gemmRange(kind, <usize>arg(ctrl, at), x, <usize>arg(ctrl, at + 1), <usize>arg(ctrl, at + 2), M, K, N, a - start, b - start);
    start += (N + 3) & ~3;
  }
}

/**
 * y = x W^T for M rows, K inputs, N outputs, with weights of type `weights`
 * read from their panels (`packed`; `w` is the f32 matrix, for the kernels
 * that take it): `products` with one weight.
 */
export function product(ctrl: usize, threads: i32, weights: i32, y: usize, x: usize, w: usize, packed: usize, xq: usize, M: i32, K: i32, N: i32): void {
  products(ctrl, threads, weights, x, xq, M, K, y, w, packed, N, 0, 0, 0, 0, 0, 0, 0, 0);
}

/**
 * y_s = x W_s^T for up to three weights that share x (a decoder layer's q,
 * k and v; w1 and w3), segment s being (y_s, w_s, packed_s, N_s); N_1 = 0
 * leaves out segments 1 and 2, N_2 = 0 segment 2. x first goes into `xq`
 * (productScratchBytes bytes) as the kernels read it best, once for all of
 * them and before any split: int8 quantises it, f32 and bf16 with three or
 * more rows interleave its quads and triples (interleaveGroups; with xq 0,
 * they read x row by row). Split over the pool's threads when large enough (`ctrl` 0:
 * the pool is not running, or there is none) as one job over the
 * segments' columns side by side: guided chunks, multiples of CHUNK_ALIGN, none
 * under MIN_CHUNK_MACS multiply-adds but the last. Every column is computed
 * as it would be alone (the same kernel, the same x), so the bits do not
 * depend on the company.
 */
export function products(
  ctrl: usize, threads: i32, weights: i32, x: usize, xq: usize, M: i32, K: i32,
  y0: usize, w0: usize, p0: usize, N0: i32, y1: usize, w1: usize, p1: usize, N1: i32, y2: usize, w2: usize, p2: usize, N2: i32,
): void {
  if (N1 <= 0) N2 = 0;
  if (M <= 0 || N0 <= 0) return;
  let kind = weights == WEIGHTS_BF16 ? JOB_GEMM_BF16 : JOB_GEMM;
  if (weights == WEIGHTS_INT8) {
    quantizeRowsInt8(xq, x, M, K);
    x = xq;
    kind = JOB_GEMM_INT8;
  } else if (M >= 3 && xq != 0 && p0 != 0 && (N1 <= 0 || p1 != 0) && (N2 <= 0 || p2 != 0)) {
    interleaveGroups(xq, x, M, K);
    x = xq;
    kind = weights == WEIGHTS_BF16 ? JOB_GEMM_BF16_GROUPED : JOB_GEMM_GROUPED;
  }
  const N = N0 + max<i32>(0, N1) + max<i32>(0, N2);
  const macs = <i64>M * <i64>K * <i64>N;
  if (ctrl == 0 || threads < 2 || macs < PARALLEL_MIN_MACS || N < 8 * threads) {
    gemmRange(kind, y0, x, w0, p0, M, K, N0, 0, N0);
    if (N1 > 0) gemmRange(kind, y1, x, w1, p1, M, K, N1, 0, N1);
    if (N2 > 0) gemmRange(kind, y2, x, w2, p2, M, K, N2, 0, N2);
    return;
  }
  store<i32>(slot(ctrl, ARGS), <i32>x);
  store<i32>(slot(ctrl, ARGS + 1), M);
  store<i32>(slot(ctrl, ARGS + 2), K);
  segment(ctrl, 0, y0, w0, p0, N0);
  segment(ctrl, 1, y1, w1, p1, max<i32>(0, N1));
  segment(ctrl, 2, y2, w2, p2, max<i32>(0, N2));
  // The job's columns: the segments side by side, each but the last rounded up to 4.
  const total = N2 > 0 ? ((N0 + 3) & ~3) + ((N1 + 3) & ~3) + N2 : N1 > 0 ? ((N0 + 3) & ~3) + N1 : N0;
  // ceil(MIN_CHUNK_MACS * total / macs / CHUNK_ALIGN) * CHUNK_ALIGN columns
  const minChunk = <i32>((MIN_CHUNK_MACS * <i64>total + CHUNK_ALIGN * macs - 1) / (CHUNK_ALIGN * macs)) * CHUNK_ALIGN;
  runJob(ctrl, threads, kind, total, CHUNK_ALIGN, minChunk);
}

/** Writes segment s of a matmul job into the control block. */
// @ts-ignore: decorator
@inline function segment(ctrl: usize, s: i32, y: usize, w: usize, packed: usize, N: i32): void {
  const at = ARGS + FIRST_SEGMENT_ARG + 4 * s;
  store<i32>(slot(ctrl, at), <i32>y);
  store<i32>(slot(ctrl, at + 1), <i32>w);
  store<i32>(slot(ctrl, at + 2), <i32>packed);
  store<i32>(slot(ctrl, at + 3), N);
}

/** One matmul kernel on columns [lo, hi). */
// @ts-ignore: decorator
@inline function gemmRange(kind: i32, y: usize, x: usize, w: usize, packed: usize, M: i32, K: i32, N: i32, lo: i32, hi: i32): void {
  if (kind == JOB_GEMM) gemm(y, x, w, packed, M, K, N, lo, hi);
  else if (kind == JOB_GEMM_GROUPED) gemmPanels(false, y, x, packed, M, K, N, lo, hi, true);
  else if (kind == JOB_GEMM_BF16_GROUPED) gemmPanels(true, y, x, packed, M, K, N, lo, hi, true);
  else if (kind == JOB_GEMM_BF16) gemmBf16(y, x, w, packed, M, K, N, lo, hi);
  else gemmInt8(y, x, packed, M, K, N, lo, hi);
}

/**
 * `attention` (hasMask: 0 causal, 1 dense u8 mask, 2 sparse i32 rows;
 * `pairs`: the (row, key) pairs it visits at most), split over the pool's
 * threads by ranges of query heads when large enough (`ctrl` as product's).
 */
export function attend(
  ctrl: usize, threads: i32, out: usize, q: usize, keys: usize, values: usize, mask: usize, hasMask: i32,
  M: i32, nKeys: i32, nHeads: i32, nKvHeads: i32, headSize: i32, scratch: usize, pairs: i32,
): void {
  if (ctrl == 0 || threads < 2 || nHeads < 2 || <i64>pairs * <i64>nHeads * <i64>headSize < PARALLEL_MIN_ATTENTION) {
    attentionHeads(out, q, keys, values, mask, hasMask, M, nKeys, nHeads, nKvHeads, headSize, scratch, 0, nHeads);
    return;
  }
  store<i32>(slot(ctrl, ARGS), <i32>out);
  store<i32>(slot(ctrl, ARGS + 1), <i32>q);
  store<i32>(slot(ctrl, ARGS + 2), <i32>keys);
  store<i32>(slot(ctrl, ARGS + 3), <i32>values);
  store<i32>(slot(ctrl, ARGS + 4), <i32>mask);
  store<i32>(slot(ctrl, ARGS + 5), hasMask);
  store<i32>(slot(ctrl, ARGS + 6), M);
  store<i32>(slot(ctrl, ARGS + 7), nKeys);
  store<i32>(slot(ctrl, ARGS + 8), nHeads);
  store<i32>(slot(ctrl, ARGS + 9), nKvHeads);
  store<i32>(slot(ctrl, ARGS + 10), headSize);
  store<i32>(slot(ctrl, ARGS + 11), <i32>scratch);
  // One contiguous range of query heads per chunk (the kernel reads each cached row once per range).
  runJob(ctrl, threads, JOB_ATTENTION, nHeads, 1, (nHeads + threads - 1) / threads);
}

/** Claims and runs chunks of job `gen` until none is left (a worker's share). */
function work(ctrl: usize, gen: i32): void {
  const kind = load<i32>(slot(ctrl, KIND)),
    count = load<i32>(slot(ctrl, COUNT)),
    tag = gen & 0xffff;
  for (;;) {
    const cur = atomic.load<i32>(slot(ctrl, CLAIM));
    const i = cur & 0xffff;
    // A job posted after this one changed the tag: this one is over.
    if (cur >>> 16 != tag || i >= count) break;
    if (atomic.cmpxchg<i32>(slot(ctrl, CLAIM), cur, cur + 1) != cur) continue;
    runChunk(ctrl, kind, bound(ctrl, i), bound(ctrl, i + 1));
    atomic.add<i32>(slot(ctrl, WORKER_CHUNKS), 1);
    atomic.add<i32>(slot(ctrl, COMPLETED), 1);
  }
}

/**
 * A worker's life: counts itself ready, then runs its share of every posted
 * job until the pool closes. Between jobs it spins `spin` rounds on GEN,
 * then sleeps until GEN changes (an idle pool costs no CPU).
 */
export function workerLoop(ctrl: usize, spin: i32): void {
  let seen = atomic.load<i32>(slot(ctrl, GEN));
  atomic.add<i32>(slot(ctrl, READY), 1);
  for (;;) {
    let g = atomic.load<i32>(slot(ctrl, GEN));
    for (let i = 0; g == seen; i++) {
      if (i >= spin) {
        atomic.add<i32>(slot(ctrl, SLEEPERS), 1);
        atomic.wait<i32>(slot(ctrl, GEN), seen, -1);
        atomic.sub<i32>(slot(ctrl, SLEEPERS), 1);
        i = 0;
      }
      g = atomic.load<i32>(slot(ctrl, GEN));
    }
    seen = g;
    if (atomic.load<i32>(slot(ctrl, QUIT)) != 0) break;
    work(ctrl, g);
  }
}

/** Workers running (counted when they enter workerLoop). */
export function poolWorkers(ctrl: usize): i32 {
  return atomic.load<i32>(slot(ctrl, READY));
}

/** Ops split over the threads so far. */
export function poolJobs(ctrl: usize): i32 {
  return load<i32>(slot(ctrl, JOBS));
}

/** Chunks computed by workers so far. */
export function poolWorkerChunks(ctrl: usize): i32 {
  return atomic.load<i32>(slot(ctrl, WORKER_CHUNKS));
}

/** Tells every worker to leave workerLoop (waking the sleepers). */
export function poolClose(ctrl: usize): void {
  atomic.store<i32>(slot(ctrl, QUIT), 1);
  atomic.add<i32>(slot(ctrl, GEN), 1);
  atomic.notify(slot(ctrl, GEN), -1);
}
