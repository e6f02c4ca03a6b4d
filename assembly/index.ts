// WASM SIMD kernels of the "wasm" backend.
//
// Built twice from this one source (see asconfig.json): target "simd" with
// plain SIMD and target "relaxed" with relaxed SIMD as well. The only
// difference is `madd` (assembly/madd.ts), selected by the compile-time constant
// ASC_FEATURE_RELAXED_SIMD.
//
// Rules of this module:
// - Compiled with `--runtime stub` and no managed allocation at all: every
//   kernel takes raw byte pointers (usize) into linear memory plus element
//   counts. The TypeScript side (src/backends/wasm/) owns the heap: it places
//   buffers above `heapBase()` and grows the memory itself.
// - BATCH INVARIANCE: the float operations that produce an output element
//   depend only on the sizes of the reduction (K, D, N, headSize, the set of
//   visible keys), never on M, on the row index, or on which tile kernel
//   handles the element. See the comment above `matmul` for the exact order.

import { madd } from "./madd";

export { gemmInt8, int8GroupSize, packedBytesInt8, packPanelsInt8, quantizedRowsBytes, quantizeRowsInt8 } from "./int8";

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/** Horizontal sum in the fixed order (l0 + l1) + (l2 + l3). */
// @ts-ignore: decorator
@inline function hsum(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

/**
 * Finishes one dot product: horizontal sum of the lane partials, then the
 * scalar tail k = k4 .. kEnd-1 (byte offsets) in index order with a plain
 * f32 multiply followed by a plain f32 add.
 */
// @ts-ignore: decorator
@inline function finish(acc: v128, xp: usize, wp: usize, k4: usize, kEnd: usize): f32 {
  let s = hsum(acc);
  for (let k = k4; k < kEnd; k += 4) {
    s += load<f32>(xp + k) * load<f32>(wp + k);
  }
  return s;
}

/** The dot product of two f32 vectors of n elements, in the matmul order. */
// @ts-ignore: decorator
@inline function dot(a: usize, b: usize, n: i32): f32 {
  const k4 = (<usize>(n & ~3)) << 2;
  const kEnd = (<usize>n) << 2;
  let acc = f32x4.splat(0);
  for (let k: usize = 0; k < k4; k += 16) {
    acc = madd(v128.load(a + k), v128.load(b + k), acc);
  }
  return finish(acc, a, b, k4, kEnd);
}

/** Start of the free linear memory: everything below is static data. */
export function heapBase(): usize {
  return __heap_base;
}

// ---------------------------------------------------------------------------
// matmul
// ---------------------------------------------------------------------------
//
// y[m, n] = sum_k x[m, k] * w[n, k]   (x: [M, K], w: [N, K], y: [M, N])
//
// EXACT PER-ELEMENT ORDER (identical in every tile kernel below, for every
// M and every m):
//   acc = f32x4(0, 0, 0, 0)
//   for c = 0 .. floor(K / 4) - 1, in increasing order:
//       acc = madd(x[m, 4c .. 4c+3], w[n, 4c .. 4c+3], acc)    (lane-wise)
//   s = (acc.l0 + acc.l1) + (acc.l2 + acc.l3)
//   for k = 4 * floor(K / 4) .. K - 1, in increasing order:
//       s = s + x[m, k] * w[n, k]                              (f32 mul, then f32 add)
//   y[m, n] = s
// where madd(a, b, c) is f32x4.relaxed_madd in the relaxed build and
// f32x4.add(f32x4.mul(a, b), c) in the plain SIMD build. The k loops are
// unrolled by two chunks, which does not change this sequence: each element
// has exactly one accumulator. Tiles only decide which elements are computed
// side by side (for instruction-level parallelism and register reuse); they
// never split K.

/** 4 rows of x times 2 rows of w: 8 independent accumulators. */
// @ts-ignore: decorator
@inline function tile4x2(y: usize, ys: usize, x: usize, xs: usize, w: usize, ws: usize, k4: usize, k8: usize, kEnd: usize): void {
  const x0 = x, x1 = x + xs, x2 = x1 + xs, x3 = x2 + xs;
  const w0 = w, w1 = w + ws;
  let a00 = f32x4.splat(0), a01 = f32x4.splat(0);
  let a10 = f32x4.splat(0), a11 = f32x4.splat(0);
  let a20 = f32x4.splat(0), a21 = f32x4.splat(0);
  let a30 = f32x4.splat(0), a31 = f32x4.splat(0);
  let k: usize = 0;
  for (; k < k8; k += 32) {
    let b0 = v128.load(w0 + k), b1 = v128.load(w1 + k);
    let v = v128.load(x0 + k);
    a00 = madd(v, b0, a00); a01 = madd(v, b1, a01);
    v = v128.load(x1 + k);
    a10 = madd(v, b0, a10); a11 = madd(v, b1, a11);
    v = v128.load(x2 + k);
    a20 = madd(v, b0, a20); a21 = madd(v, b1, a21);
    v = v128.load(x3 + k);
    a30 = madd(v, b0, a30); a31 = madd(v, b1, a31);
    b0 = v128.load(w0 + k, 16); b1 = v128.load(w1 + k, 16);
    v = v128.load(x0 + k, 16);
    a00 = madd(v, b0, a00); a01 = madd(v, b1, a01);
    v = v128.load(x1 + k, 16);
    a10 = madd(v, b0, a10); a11 = madd(v, b1, a11);
    v = v128.load(x2 + k, 16);
    a20 = madd(v, b0, a20); a21 = madd(v, b1, a21);
    v = v128.load(x3 + k, 16);
    a30 = madd(v, b0, a30); a31 = madd(v, b1, a31);
  }
  if (k < k4) {
    const b0 = v128.load(w0 + k), b1 = v128.load(w1 + k);
    let v = v128.load(x0 + k);
    a00 = madd(v, b0, a00); a01 = madd(v, b1, a01);
    v = v128.load(x1 + k);
    a10 = madd(v, b0, a10); a11 = madd(v, b1, a11);
    v = v128.load(x2 + k);
    a20 = madd(v, b0, a20); a21 = madd(v, b1, a21);
    v = v128.load(x3 + k);
    a30 = madd(v, b0, a30); a31 = madd(v, b1, a31);
  }
  const y0 = y, y1 = y + ys, y2 = y1 + ys, y3 = y2 + ys;
  store<f32>(y0, finish(a00, x0, w0, k4, kEnd));
  store<f32>(y0, finish(a01, x0, w1, k4, kEnd), 4);
  store<f32>(y1, finish(a10, x1, w0, k4, kEnd));
  store<f32>(y1, finish(a11, x1, w1, k4, kEnd), 4);
  store<f32>(y2, finish(a20, x2, w0, k4, kEnd));
  store<f32>(y2, finish(a21, x2, w1, k4, kEnd), 4);
  store<f32>(y3, finish(a30, x3, w0, k4, kEnd));
  store<f32>(y3, finish(a31, x3, w1, k4, kEnd), 4);
}

/** 4 rows of x times 1 row of w (odd N remainder). */
// @ts-ignore: decorator
@inline function tile4x1(y: usize, ys: usize, x: usize, xs: usize, w: usize, k4: usize, k8: usize, kEnd: usize): void {
  const x0 = x, x1 = x + xs, x2 = x1 + xs, x3 = x2 + xs;
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let k: usize = 0;
  for (; k < k8; k += 32) {
    let b = v128.load(w + k);
    a0 = madd(v128.load(x0 + k), b, a0);
    a1 = madd(v128.load(x1 + k), b, a1);
    a2 = madd(v128.load(x2 + k), b, a2);
    a3 = madd(v128.load(x3 + k), b, a3);
    b = v128.load(w + k, 16);
    a0 = madd(v128.load(x0 + k, 16), b, a0);
    a1 = madd(v128.load(x1 + k, 16), b, a1);
    a2 = madd(v128.load(x2 + k, 16), b, a2);
    a3 = madd(v128.load(x3 + k, 16), b, a3);
  }
  if (k < k4) {
    const b = v128.load(w + k);
    a0 = madd(v128.load(x0 + k), b, a0);
    a1 = madd(v128.load(x1 + k), b, a1);
    a2 = madd(v128.load(x2 + k), b, a2);
    a3 = madd(v128.load(x3 + k), b, a3);
  }
  store<f32>(y, finish(a0, x0, w, k4, kEnd));
  store<f32>(y + ys, finish(a1, x1, w, k4, kEnd));
  store<f32>(y + 2 * ys, finish(a2, x2, w, k4, kEnd));
  store<f32>(y + 3 * ys, finish(a3, x3, w, k4, kEnd));
}

/** 1 row of x times 4 rows of w (M = 1 and the M % 4 remainder rows). */
// @ts-ignore: decorator
@inline function tile1x4(y: usize, x: usize, w: usize, ws: usize, k4: usize, k8: usize, kEnd: usize): void {
  const w0 = w, w1 = w + ws, w2 = w1 + ws, w3 = w2 + ws;
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let k: usize = 0;
  for (; k < k8; k += 32) {
    let v = v128.load(x + k);
    a0 = madd(v, v128.load(w0 + k), a0);
    a1 = madd(v, v128.load(w1 + k), a1);
    a2 = madd(v, v128.load(w2 + k), a2);
    a3 = madd(v, v128.load(w3 + k), a3);
    v = v128.load(x + k, 16);
    a0 = madd(v, v128.load(w0 + k, 16), a0);
    a1 = madd(v, v128.load(w1 + k, 16), a1);
    a2 = madd(v, v128.load(w2 + k, 16), a2);
    a3 = madd(v, v128.load(w3 + k, 16), a3);
  }
  if (k < k4) {
    const v = v128.load(x + k);
    a0 = madd(v, v128.load(w0 + k), a0);
    a1 = madd(v, v128.load(w1 + k), a1);
    a2 = madd(v, v128.load(w2 + k), a2);
    a3 = madd(v, v128.load(w3 + k), a3);
  }
  store<f32>(y, finish(a0, x, w0, k4, kEnd));
  store<f32>(y, finish(a1, x, w1, k4, kEnd), 4);
  store<f32>(y, finish(a2, x, w2, k4, kEnd), 8);
  store<f32>(y, finish(a3, x, w3, k4, kEnd), 12);
}

/** 1 row of x times 1 row of w (the last remainder). */
// @ts-ignore: decorator
@inline function tile1x1(y: usize, x: usize, w: usize, k4: usize, k8: usize, kEnd: usize): void {
  let a = f32x4.splat(0);
  let k: usize = 0;
  for (; k < k8; k += 32) {
    a = madd(v128.load(x + k), v128.load(w + k), a);
    a = madd(v128.load(x + k, 16), v128.load(w + k, 16), a);
  }
  if (k < k4) {
    a = madd(v128.load(x + k), v128.load(w + k), a);
  }
  store<f32>(y, finish(a, x, w, k4, kEnd));
}

/** Bytes of w rows kept hot (in L2) while all row tiles of x pass over them. */
const W_BLOCK_BYTES: usize = 256 * 1024;

/** y = x W^T; see the order comment above. Pointers are byte addresses. */
export function matmul(y: usize, x: usize, w: usize, M: i32, K: i32, N: i32): void {
  gemm(y, x, w, 0, M, K, N, 0, N);
}

/**
 * Columns n0 .. n1-1 of y = x W^T (y keeps its full row stride N). `packed`
 * is 0 or the panels `packPanels` made of this very w; n0 is a multiple of 4.
 * Threads call this on disjoint column ranges: K is never split.
 */
export function gemm(y: usize, x: usize, w: usize, packed: usize, M: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  if (M <= 0 || n1 <= n0) return;
  if (packed != 0) gemmPacked(y, x, w, packed, M, K, N, n0, n1);
  else gemmRows(y, x, w, M, K, N, n0, n1);
}

function gemmRows(y: usize, x: usize, w: usize, M: i32, K: i32, N: i32, c0: i32, c1: i32): void {
  const kEnd = (<usize>K) << 2;
  const k4 = (<usize>(K & ~3)) << 2;
  const k8 = (<usize>(K & ~7)) << 2;
  const xs = kEnd, ws = kEnd, ys = (<usize>N) << 2;
  // Rows of w per block: a multiple of 4, at least 4.
  let nb = kEnd > 0 ? <i32>(W_BLOCK_BYTES / kEnd) : N;
  nb = max<i32>(4, nb & ~3);
  const M4 = M & ~3;
  for (let n0 = c0; n0 < c1; n0 += nb) {
    const n1 = min<i32>(c1, n0 + nb);
    const n2 = n0 + ((n1 - n0) & ~1);
    const n4 = n0 + ((n1 - n0) & ~3);
    // Full tiles of 4 x rows.
    for (let m = 0; m < M4; m += 4) {
      const xm = x + <usize>m * xs;
      const ym = y + <usize>m * ys;
      let n = n0;
      for (; n < n2; n += 2) {
        tile4x2(ym + ((<usize>n) << 2), ys, xm, xs, w + <usize>n * ws, ws, k4, k8, kEnd);
      }
      if (n < n1) {
        tile4x1(ym + ((<usize>n) << 2), ys, xm, xs, w + <usize>n * ws, k4, k8, kEnd);
      }
    }
    // Remainder rows (all rows when M < 4), one at a time.
    for (let m = M4; m < M; m++) {
      const xm = x + <usize>m * xs;
      const ym = y + <usize>m * ys;
      let n = n0;
      for (; n < n4; n += 4) {
        tile1x4(ym + ((<usize>n) << 2), xm, w + <usize>n * ws, ws, k4, k8, kEnd);
      }
      for (; n < n1; n++) {
        tile1x1(ym + ((<usize>n) << 2), xm, w + <usize>n * ws, k4, k8, kEnd);
      }
    }
  }
}

// ---- packed weight panels --------------------------------------------------
//
// For large W the backend keeps a second copy of w in panels of 4 rows, so
// that a tile reading 4 rows of w reads ONE sequential stream (one 64-byte
// line per chunk of 4 k's) instead of 4 interleaved ones, which the hardware
// prefetchers handle badly. Panel p holds rows 4p .. 4p+3 and chunk c of
// those rows at bytes (p * (K / 4) + c) * 64 + r * 16. Only the full chunks
// (K & ~3) and full panels (N & ~3) are packed: the K tail and the N % 4
// remainder rows are read from w itself. The per-element order is exactly
// the one above (one f32x4 accumulator per element over the chunks in order,
// hsum, tail), so packed and unpacked results are bit-identical.

// For long rows (more than KB_CHUNKS chunks) the panels are stored K-block
// major: block b (chunks b * KB_CHUNKS .. up to (b + 1) * KB_CHUNKS - 1) of
// every panel, panel after panel, then block b + 1. A call of M <= SCR_ROWS
// rows (gemmKBlocks, for either layout) walks block by block: each row's
// slice of x for one block (2 KiB) stays in L1 while the weights stream
// past it; with whole rows of
// x (8 KiB per row at K = 2048) the weight stream evicted x from L1 and a
// 2-row call of a 2048-wide matrix ran at 0.6x the speed of a 512-wide one
// (docs/BENCHMARKS.md, issue 12). Between blocks the accumulators wait in a
// trailer of the packed buffer (SCR_ROWS rows of f32x4 per column), so
// each element still has one accumulator running over the chunks in order:
// the same bits as the one-block layout. With one block (short rows) the
// layout is the plain panel-major one above and there is no trailer.

/** Chunks of 4 k per K-block of the packed layout. */
const KB_CHUNKS: usize = 128;
/** Rows a block-by-block call can carry (accumulator rows in the trailer). */
const SCR_ROWS: i32 = 4;

// @ts-ignore: decorator
@inline function packedChunks(K: i32): usize {
  return (<usize>(K & ~3)) >> 2;
}

// @ts-ignore: decorator
@inline function panelArea(K: i32, N: i32): usize {
  return (<usize>(N & ~3)) * (packedChunks(K) << 4);
}

/** Bytes `packPanels` writes for a [N, K] matrix. */
export function packedBytes(K: i32, N: i32): usize {
  const trailer = packedChunks(K) > KB_CHUNKS ? (<usize>(N & ~3)) * (<usize>SCR_ROWS << 4) : 0;
  return panelArea(K, N) + trailer;
}

/** Writes the panels of w [N, K] to dst (packedBytes(K, N) bytes). */
export function packPanels(dst: usize, w: usize, K: i32, N: i32): void {
  const rowBytes = (<usize>K) << 2;
  const C = packedChunks(K);
  const N4 = N & ~3;
  let d = dst;
  for (let c0: usize = 0; c0 < C; c0 += KB_CHUNKS) {
    const kFrom = c0 << 4, kTo = blockEnd(C, c0) << 4;
    for (let p = 0; p < N4; p += 4) {
      const r0 = w + <usize>p * rowBytes;
      for (let k = kFrom; k < kTo; k += 16) {
        v128.store(d, v128.load(r0 + k));
        v128.store(d, v128.load(r0 + rowBytes + k), 16);
        v128.store(d, v128.load(r0 + 2 * rowBytes + k), 32);
        v128.store(d, v128.load(r0 + 3 * rowBytes + k), 48);
        d += 64;
      }
    }
  }
}

// Every panel tile below runs the chunks [kFrom, kTo) of one block of a
// panel (pnl points at that block) and carries its accumulators between
// blocks through `acc` (one f32x4 per element, 64 bytes per row of four
// elements): it starts from zero in the first block (`first`) and ends with
// `finish` in the last (`last`); in between it parks them at acc. With one
// block, first and last hold and acc is never touched.

/** The four accumulators of one row of a tile: finished into y (the last block) or parked at acc. */
// @ts-ignore: decorator
@inline function settle(y: usize, acc: usize, last: bool, x: usize, w: usize, ws: usize, k4: usize, kEnd: usize, a0: v128, a1: v128, a2: v128, a3: v128): void {
  if (last) {
    const w1 = w + ws, w2 = w1 + ws, w3 = w2 + ws;
    store<f32>(y, finish(a0, x, w, k4, kEnd));
    store<f32>(y, finish(a1, x, w1, k4, kEnd), 4);
    store<f32>(y, finish(a2, x, w2, k4, kEnd), 8);
    store<f32>(y, finish(a3, x, w3, k4, kEnd), 12);
  } else {
    v128.store(acc, a0);
    v128.store(acc, a1, 16);
    v128.store(acc, a2, 32);
    v128.store(acc, a3, 48);
  }
}

/** An accumulator to resume: zero in the first block, else parked at p. */
// @ts-ignore: decorator
@inline function resume(first: bool, p: usize): v128 {
  return first ? f32x4.splat(0) : v128.load(p);
}

/** One past the last chunk of the K-block starting at chunk cb (C chunks in all). */
// @ts-ignore: decorator
@inline function blockEnd(C: usize, cb: usize): usize {
  return min<usize>(C, cb + KB_CHUNKS);
}

/**
 * Where panel pi's part of the K-block starting at chunk cb begins: the
 * full K-blocks before it hold cb chunks of every panel (as bytes per
 * chunk of all panels), and each panel's part of this one is its chunk
 * count times 64 bytes. The one place that knows the packed layout's order.
 */
// @ts-ignore: decorator
@inline function blockPanel(packed: usize, pi: usize, as: usize, C: usize, cb: usize): usize {
  return packed + cb * as + pi * ((blockEnd(C, cb) - cb) << 6);
}

/**
 * 2 rows of x times panel pi (4 rows of w) over the K-blocks from chunk
 * cbFrom to cbTo (one K-block when called per block; all of them, cbTo =
 * C, when the accumulators stay in registers): 8 accumulators.
 */
// @ts-ignore: decorator
@inline function ptile2x4(y: usize, ys: usize, x: usize, xs: usize, packed: usize, pi: usize, as: usize, C: usize, cbFrom: usize, cbTo: usize, w: usize, ws: usize, k4: usize, kEnd: usize, acc: usize, first: bool, last: bool): void {
  const x0 = x, x1 = x + xs;
  const c1 = acc + as;
  let a00 = resume(first, acc), a01 = resume(first, acc + 16), a02 = resume(first, acc + 32), a03 = resume(first, acc + 48);
  let a10 = resume(first, c1), a11 = resume(first, c1 + 16), a12 = resume(first, c1 + 32), a13 = resume(first, c1 + 48);
  for (let cb = cbFrom; cb < cbTo; cb += KB_CHUNKS) {
    let p = blockPanel(packed, pi, as, C, cb);
    const kTo = blockEnd(C, cb) << 4;
    for (let k = cb << 4; k < kTo; k += 16) {
      const v0 = v128.load(x0 + k), v1 = v128.load(x1 + k);
      let b = v128.load(p);
      a00 = madd(v0, b, a00); a10 = madd(v1, b, a10);
      b = v128.load(p, 16);
      a01 = madd(v0, b, a01); a11 = madd(v1, b, a11);
      b = v128.load(p, 32);
      a02 = madd(v0, b, a02); a12 = madd(v1, b, a12);
      b = v128.load(p, 48);
      a03 = madd(v0, b, a03); a13 = madd(v1, b, a13);
      p += 64;
    }
  }
  settle(y, acc, last, x0, w, ws, k4, kEnd, a00, a01, a02, a03);
  settle(y + ys, c1, last, x1, w, ws, k4, kEnd, a10, a11, a12, a13);
}

/** 1 row of x times panel pi over the K-blocks cbFrom .. cbTo: 4 accumulators, one sequential stream of w per K-block. */
// @ts-ignore: decorator
@inline function ptile1x4(y: usize, x: usize, packed: usize, pi: usize, as: usize, C: usize, cbFrom: usize, cbTo: usize, w: usize, ws: usize, k4: usize, kEnd: usize, acc: usize, first: bool, last: bool): void {
  let a0 = resume(first, acc), a1 = resume(first, acc + 16), a2 = resume(first, acc + 32), a3 = resume(first, acc + 48);
  for (let cb = cbFrom; cb < cbTo; cb += KB_CHUNKS) {
    let p = blockPanel(packed, pi, as, C, cb);
    const kTo = blockEnd(C, cb) << 4;
    for (let k = cb << 4; k < kTo; k += 16) {
      const v = v128.load(x + k);
      a0 = madd(v, v128.load(p), a0);
      a1 = madd(v, v128.load(p, 16), a1);
      a2 = madd(v, v128.load(p, 32), a2);
      a3 = madd(v, v128.load(p, 48), a3);
      p += 64;
    }
  }
  settle(y, acc, last, x, w, ws, k4, kEnd, a0, a1, a2, a3);
}

/**
 * 1 row of x times two panels far apart (panel i and panel i + h): two
 * independent sequential streams of w, which a core's prefetchers serve
 * faster than one when w is out of L2. Each element still has its own
 * accumulator and the order above, so results are bit-identical to ptile1x4.
 */
// @ts-ignore: decorator
@inline function ptile1x4x2(y: usize, yh: usize, x: usize, pnl: usize, ph: usize, w: usize, wh: usize, ws: usize, kFrom: usize, kTo: usize, k4: usize, kEnd: usize, acc: usize, acch: usize, first: bool, last: bool): void {
  let a0 = resume(first, acc), a1 = resume(first, acc + 16), a2 = resume(first, acc + 32), a3 = resume(first, acc + 48);
  let b0 = resume(first, acch), b1 = resume(first, acch + 16), b2 = resume(first, acch + 32), b3 = resume(first, acch + 48);
  let p = pnl, q = ph;
  for (let k = kFrom; k < kTo; k += 16) {
    const v = v128.load(x + k);
    a0 = madd(v, v128.load(p), a0);
    a1 = madd(v, v128.load(p, 16), a1);
    a2 = madd(v, v128.load(p, 32), a2);
    a3 = madd(v, v128.load(p, 48), a3);
    b0 = madd(v, v128.load(q), b0);
    b1 = madd(v, v128.load(q, 16), b1);
    b2 = madd(v, v128.load(q, 32), b2);
    b3 = madd(v, v128.load(q, 48), b3);
    p += 64;
    q += 64;
  }
  settle(y, acc, last, x, w, ws, k4, kEnd, a0, a1, a2, a3);
  settle(yh, acch, last, x, wh, ws, k4, kEnd, b0, b1, b2, b3);
}

/**
 * Panel bytes of a column range from which M = 1 reads two streams (w out of
 * L2). Below it the one-stream kernel is faster: measured 0.57-0.65x for the
 * two-stream kernel on 288x288, 288x768 and 768x768 (in cache), 1.03x on
 * 288x32000 (docs/BENCHMARKS.md, issue 12).
 */
const TWO_STREAM_BYTES: usize = 0;

/** Columns c0 .. c1-1 of y = x W^T from packed panels (one K-block or several). */
function gemmPacked(y: usize, x: usize, w: usize, packed: usize, M: i32, K: i32, N: i32, c0: i32, c1: i32): void {
  const N4 = N & ~3;
  const p1 = min<i32>(c1, N4);
  // Up to 8 short rows too (at most 2304 x values: 15M's 288-wide matrices; gemm-ab --cold 1.16-1.39x at
  // M = 5..8 there, 0.63-0.81x on 512-wide ones). Such rows are one K-block (K < 516), so no accumulator
  // is parked and the trailer's SCR_ROWS rows suffice.
  if (M <= SCR_ROWS || (M <= 2 * SCR_ROWS && M * K <= 2304)) gemmKBlocks(y, x, w, packed, M, K, N, c0, p1);
  else gemmPanels(y, x, w, packed, M, K, N, c0, p1);
  // The N % 4 remainder rows of w (never packed).
  const kEnd = (<usize>K) << 2;
  const k4 = (<usize>(K & ~3)) << 2;
  const k8 = (<usize>(K & ~7)) << 2;
  const r0 = max<i32>(c0, N4);
  for (let m = 0; m < M; m++) {
    const xm = x + <usize>m * kEnd;
    const ym = y + <usize>m * ((<usize>N) << 2);
    for (let n = r0; n < c1; n++) {
      tile1x1(ym + ((<usize>n) << 2), xm, w + <usize>n * kEnd, k4, k8, kEnd);
    }
  }
}

/**
 * Panel columns c0 .. p1-1 for calls of more rows than gemmKBlocks takes,
 * accumulators in registers: row pairs pass over blocks of panels hot in L2
 * with their whole rows of x in L1.
 */
function gemmPanels(y: usize, x: usize, w: usize, packed: usize, M: i32, K: i32, N: i32, c0: i32, p1: i32): void {
  const kEnd = (<usize>K) << 2;
  const k4 = (<usize>(K & ~3)) << 2;
  const xs = kEnd, ws = kEnd, ys = (<usize>N) << 2;
  const C = packedChunks(K);
  const as = (<usize>(N & ~3)) << 4; // bytes of one chunk of every panel
  const panelBytes = k4 << 2;
  // Panels per block kept hot in L2 while all row pairs pass over them.
  let nb = panelBytes > 0 ? <i32>(W_BLOCK_BYTES / panelBytes) << 2 : N;
  nb = max<i32>(4, nb);
  const M2 = M & ~1;
  for (let n0 = c0; n0 < p1; n0 += nb) {
    const n1 = min<i32>(p1, n0 + nb);
    for (let m = 0; m < M2; m += 2) {
      const xm = x + <usize>m * xs;
      const ym = y + <usize>m * ys;
      for (let n = n0; n < n1; n += 4) {
        ptile2x4(ym + ((<usize>n) << 2), ys, xm, xs, packed, <usize>(n >> 2), as, C, 0, C, w + <usize>n * ws, ws, k4, kEnd, 0, true, true);
      }
    }
    if (M2 < M) {
      const xm = x + <usize>M2 * xs;
      const ym = y + <usize>M2 * ys;
      for (let n = n0; n < n1; n += 4) {
        ptile1x4(ym + ((<usize>n) << 2), xm, packed, <usize>(n >> 2), as, C, 0, C, w + <usize>n * ws, ws, k4, kEnd, 0, true, true);
      }
    }
  }
}

/**
 * M <= SCR_ROWS rows and panel columns c0 .. p1-1 (either layout; the
 * one-K-block layout is one K-block): K-block after K-block, and in each
 * the panels, so the rows' slices of x for that K-block stay in L1 and each
 * panel's block serves every row while it is in L1; the accumulators wait
 * in the trailer between K-blocks. One row reads two streams, as above;
 * two rows take the panels of the two halves in turn.
 */
function gemmKBlocks(y: usize, x: usize, w: usize, packed: usize, M: i32, K: i32, N: i32, c0: i32, p1: i32): void {
  const kEnd = (<usize>K) << 2;
  const k4 = (<usize>(K & ~3)) << 2;
  const xs = kEnd, ws = kEnd, ys = (<usize>N) << 2;
  const C = packedChunks(K);
  const as = (<usize>(N & ~3)) << 4; // bytes per accumulator row (and per chunk of every panel)
  const scr = packed + panelArea(K, N);
  const two = M == 1 && p1 - c0 >= 8 && (<usize>((p1 - c0) >> 2)) * (C << 6) >= TWO_STREAM_BYTES;
  const h = ((p1 - c0) >> 3) << 2; // two streams (one or two rows): columns per half, a multiple of 4
  for (let cb: usize = 0; cb < C; cb += KB_CHUNKS) {
    const end = blockEnd(C, cb);
    const kFrom = cb << 4, kTo = end << 4;
    const first = cb == 0, last = end == C;
    let n = c0;
    if (two) {
      for (; n < c0 + h; n += 4) {
        const m = n + h;
        ptile1x4x2(y + ((<usize>n) << 2), y + ((<usize>m) << 2), x, blockPanel(packed, <usize>(n >> 2), as, C, cb), blockPanel(packed, <usize>(m >> 2), as, C, cb), w + <usize>n * ws, w + <usize>m * ws, ws, kFrom, kTo, k4, kEnd, scr + ((<usize>n) << 4), scr + ((<usize>m) << 4), first, last);
      }
      n = c0 + 2 * h;
    }
    if (M == 2 && p1 - c0 >= 8) {
      // Two rows: the panels of the two halves in turn, two streams advancing together
      // (gemm-ab --cold: 1.08-1.18x at M = 2; slower at M = 3 and 4, so only here).
      for (let i = 0; i < h; i += 4) {
        panelRows(y, x, w, c0 + i, packed, cb, C, scr, M, xs, ws, ys, as, k4, kEnd, first, last);
        panelRows(y, x, w, c0 + h + i, packed, cb, C, scr, M, xs, ws, ys, as, k4, kEnd, first, last);
      }
      n = c0 + 2 * h;
    }
    for (; n < p1; n += 4) panelRows(y, x, w, n, packed, cb, C, scr, M, xs, ws, ys, as, k4, kEnd, first, last);
  }
}

/** Every row (in pairs) of one panel's K-block cb at column n, the accumulators parked at the trailer. */
// @ts-ignore: decorator
@inline function panelRows(y: usize, x: usize, w: usize, n: i32, packed: usize, cb: usize, C: usize, scr: usize, M: i32, xs: usize, ws: usize, ys: usize, as: usize, k4: usize, kEnd: usize, first: bool, last: bool): void {
  const pi = <usize>(n >> 2), wn = w + <usize>n * ws, yn = (<usize>n) << 2, an = scr + ((<usize>n) << 4);
  let m = 0;
  for (; m + 1 < M; m += 2) ptile2x4(y + <usize>m * ys + yn, ys, x + <usize>m * xs, xs, packed, pi, as, C, cb, cb + 1, wn, ws, k4, kEnd, an + <usize>m * as, first, last);
  if (m < M) ptile1x4(y + <usize>m * ys + yn, x + <usize>m * xs, packed, pi, as, C, cb, cb + 1, wn, ws, k4, kEnd, an + <usize>m * as, first, last);
}

// ---- bf16 weights ------------------------------------------------------------
//
// The `weights: "bf16"` option of the backend: every matmul weight is used
// rounded to bfloat16 (round to nearest even; the model is then that bf16
// teacher), read from panels of half the bytes. Panel p (rows 4p .. 4p+3),
// chunk c (k = 4c .. 4c+3) is 32 bytes: lane j of the first f32x4 holds
// bf16(w[4p, 4c+j]) << 16 | bf16(w[4p+1, 4c+j]), of the second the same for
// rows 4p+2 and 4p+3, so one AND and one shift turn a vector into two rows'
// f32 values. The K tail and the N % 4 rows are read from w and rounded in
// the kernel. The per-element order is exactly the f32 one above with w
// replaced by its bf16 rounding, so batch invariance holds, and the result
// equals the f32 kernels run on weights rounded beforehand, bit for bit.

/** The bf16 bits of x, rounded to nearest even (NaN stays NaN). */
// @ts-ignore: decorator
@inline function bf16Bits(x: f32): u32 {
  const u = reinterpret<u32>(x);
  if ((u & 0x7fffffff) > 0x7f800000) return (u >> 16) | 0x40;
  return (u + 0x7fff + ((u >> 16) & 1)) >> 16;
}

/** x rounded to bf16, as an f32. */
// @ts-ignore: decorator
@inline function bf16(x: f32): f32 {
  return reinterpret<f32>(bf16Bits(x) << 16);
}

const HI_MASK: v128 = i32x4.splat(0xffff0000);

/** `finish` with the tail's weights rounded to bf16. */
// @ts-ignore: decorator
@inline function finishB(acc: v128, xp: usize, wp: usize, k4: usize, kEnd: usize): f32 {
  let s = hsum(acc);
  for (let k = k4; k < kEnd; k += 4) {
    s += load<f32>(xp + k) * bf16(load<f32>(wp + k));
  }
  return s;
}

/** Bytes `packPanelsBf16` writes for a [N, K] matrix. */
export function packedBytesBf16(K: i32, N: i32): usize {
  return (<usize>(N & ~3)) * ((<usize>(K & ~3)) << 1);
}

/** Writes the bf16 panels of w [N, K] to dst (packedBytesBf16(K, N) bytes). */
export function packPanelsBf16(dst: usize, w: usize, K: i32, N: i32): void {
  const rowBytes = (<usize>K) << 2;
  const k4 = (<usize>(K & ~3)) << 2;
  const N4 = N & ~3;
  let d = dst;
  for (let p = 0; p < N4; p += 4) {
    const r0 = w + <usize>p * rowBytes, r1 = r0 + rowBytes, r2 = r1 + rowBytes, r3 = r2 + rowBytes;
    for (let k: usize = 0; k < k4; k += 16) {
      for (let j: usize = 0; j < 16; j += 4) {
        store<u32>(d + j, (bf16Bits(load<f32>(r0 + k + j)) << 16) | bf16Bits(load<f32>(r1 + k + j)));
        store<u32>(d + j, (bf16Bits(load<f32>(r2 + k + j)) << 16) | bf16Bits(load<f32>(r3 + k + j)), 16);
      }
      d += 32;
    }
  }
}

/** ptile1x4 on bf16 panels. */
// @ts-ignore: decorator
@inline function bptile1x4(y: usize, x: usize, pnl: usize, w: usize, ws: usize, k4: usize, kEnd: usize): void {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let p = pnl;
  for (let k: usize = 0; k < k4; k += 16) {
    const v = v128.load(x + k);
    const b0 = v128.load(p), b1 = v128.load(p, 16);
    a0 = madd(v, v128.and(b0, HI_MASK), a0);
    a1 = madd(v, i32x4.shl(b0, 16), a1);
    a2 = madd(v, v128.and(b1, HI_MASK), a2);
    a3 = madd(v, i32x4.shl(b1, 16), a3);
    p += 32;
  }
  const w1 = w + ws, w2 = w1 + ws, w3 = w2 + ws;
  store<f32>(y, finishB(a0, x, w, k4, kEnd));
  store<f32>(y, finishB(a1, x, w1, k4, kEnd), 4);
  store<f32>(y, finishB(a2, x, w2, k4, kEnd), 8);
  store<f32>(y, finishB(a3, x, w3, k4, kEnd), 12);
}

/** ptile1x4x2 on bf16 panels: two streams. */
// @ts-ignore: decorator
@inline function bptile1x4x2(y: usize, yh: usize, x: usize, pnl: usize, ph: usize, w: usize, wh: usize, ws: usize, k4: usize, kEnd: usize): void {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
  let p = pnl, q = ph;
  for (let k: usize = 0; k < k4; k += 16) {
    const v = v128.load(x + k);
    const c0 = v128.load(p), c1 = v128.load(p, 16), d0 = v128.load(q), d1 = v128.load(q, 16);
    a0 = madd(v, v128.and(c0, HI_MASK), a0);
    a1 = madd(v, i32x4.shl(c0, 16), a1);
    a2 = madd(v, v128.and(c1, HI_MASK), a2);
    a3 = madd(v, i32x4.shl(c1, 16), a3);
    b0 = madd(v, v128.and(d0, HI_MASK), b0);
    b1 = madd(v, i32x4.shl(d0, 16), b1);
    b2 = madd(v, v128.and(d1, HI_MASK), b2);
    b3 = madd(v, i32x4.shl(d1, 16), b3);
    p += 32;
    q += 32;
  }
  const w1 = w + ws, w2 = w1 + ws, w3 = w2 + ws;
  store<f32>(y, finishB(a0, x, w, k4, kEnd));
  store<f32>(y, finishB(a1, x, w1, k4, kEnd), 4);
  store<f32>(y, finishB(a2, x, w2, k4, kEnd), 8);
  store<f32>(y, finishB(a3, x, w3, k4, kEnd), 12);
  const v1 = wh + ws, v2 = v1 + ws, v3 = v2 + ws;
  store<f32>(yh, finishB(b0, x, wh, k4, kEnd));
  store<f32>(yh, finishB(b1, x, v1, k4, kEnd), 4);
  store<f32>(yh, finishB(b2, x, v2, k4, kEnd), 8);
  store<f32>(yh, finishB(b3, x, v3, k4, kEnd), 12);
}

/** ptile2x4 on bf16 panels. */
// @ts-ignore: decorator
@inline function bptile2x4(y: usize, ys: usize, x: usize, xs: usize, pnl: usize, w: usize, ws: usize, k4: usize, kEnd: usize): void {
  const x0 = x, x1 = x + xs;
  let a00 = f32x4.splat(0), a01 = f32x4.splat(0), a02 = f32x4.splat(0), a03 = f32x4.splat(0);
  let a10 = f32x4.splat(0), a11 = f32x4.splat(0), a12 = f32x4.splat(0), a13 = f32x4.splat(0);
  let p = pnl;
  for (let k: usize = 0; k < k4; k += 16) {
    const v0 = v128.load(x0 + k), v1 = v128.load(x1 + k);
    const c0 = v128.load(p), c1 = v128.load(p, 16);
    let b = v128.and(c0, HI_MASK);
    a00 = madd(v0, b, a00); a10 = madd(v1, b, a10);
    b = i32x4.shl(c0, 16);
    a01 = madd(v0, b, a01); a11 = madd(v1, b, a11);
    b = v128.and(c1, HI_MASK);
    a02 = madd(v0, b, a02); a12 = madd(v1, b, a12);
    b = i32x4.shl(c1, 16);
    a03 = madd(v0, b, a03); a13 = madd(v1, b, a13);
    p += 32;
  }
  const w0 = w, w1 = w + ws, w2 = w1 + ws, w3 = w2 + ws;
  const y1 = y + ys;
  store<f32>(y, finishB(a00, x0, w0, k4, kEnd));
  store<f32>(y, finishB(a01, x0, w1, k4, kEnd), 4);
  store<f32>(y, finishB(a02, x0, w2, k4, kEnd), 8);
  store<f32>(y, finishB(a03, x0, w3, k4, kEnd), 12);
  store<f32>(y1, finishB(a10, x1, w0, k4, kEnd));
  store<f32>(y1, finishB(a11, x1, w1, k4, kEnd), 4);
  store<f32>(y1, finishB(a12, x1, w2, k4, kEnd), 8);
  store<f32>(y1, finishB(a13, x1, w3, k4, kEnd), 12);
}

/** tile1x1 with w rounded to bf16 on the fly (the N % 4 rows of w). */
// @ts-ignore: decorator
@inline function btile1x1(y: usize, x: usize, w: usize, k4: usize, kEnd: usize): void {
  let a = f32x4.splat(0);
  for (let k: usize = 0; k < k4; k += 16) {
    const u = v128.load(w + k);
    // Round each lane to bf16 exactly as bf16Bits does (no NaN weights expected; NaN lanes stay NaN).
    const r = f32x4(bf16(f32x4.extract_lane(u, 0)), bf16(f32x4.extract_lane(u, 1)), bf16(f32x4.extract_lane(u, 2)), bf16(f32x4.extract_lane(u, 3)));
    a = madd(v128.load(x + k), r, a);
  }
  store<f32>(y, finishB(a, x, w, k4, kEnd));
}

/** `gemm` with bf16 weights: `packed` is the panels packPanelsBf16 made of w (any size). */
export function gemmBf16(y: usize, x: usize, w: usize, packed: usize, M: i32, K: i32, N: i32, c0: i32, c1: i32): void {
  if (M <= 0 || c1 <= c0) return;
  const kEnd = (<usize>K) << 2;
  const k4 = (<usize>(K & ~3)) << 2;
  const xs = kEnd, ws = kEnd, ys = (<usize>N) << 2;
  const panelBytes = k4 << 1;
  const N4 = N & ~3;
  const p1 = min<i32>(c1, N4);
  let nb = panelBytes > 0 ? <i32>(W_BLOCK_BYTES / panelBytes) << 2 : N;
  nb = max<i32>(4, nb);
  const M2 = M & ~1;
  if (M == 1 && p1 - c0 >= 8 && (<usize>((p1 - c0) >> 2)) * panelBytes >= TWO_STREAM_BYTES) {
    const h = ((p1 - c0) >> 3) << 2;
    for (let n = c0; n < c0 + h; n += 4) {
      const m = n + h;
      bptile1x4x2(y + ((<usize>n) << 2), y + ((<usize>m) << 2), x, packed + <usize>(n >> 2) * panelBytes, packed + <usize>(m >> 2) * panelBytes, w + <usize>n * ws, w + <usize>m * ws, ws, k4, kEnd);
    }
    for (let n = c0 + 2 * h; n < p1; n += 4) {
      bptile1x4(y + ((<usize>n) << 2), x, packed + <usize>(n >> 2) * panelBytes, w + <usize>n * ws, ws, k4, kEnd);
    }
  } else for (let n0 = c0; n0 < p1; n0 += nb) {
    const n1 = min<i32>(p1, n0 + nb);
    for (let m = 0; m < M2; m += 2) {
      const xm = x + <usize>m * xs;
      const ym = y + <usize>m * ys;
      for (let n = n0; n < n1; n += 4) {
        bptile2x4(ym + ((<usize>n) << 2), ys, xm, xs, packed + <usize>(n >> 2) * panelBytes, w + <usize>n * ws, ws, k4, kEnd);
      }
    }
    if (M2 < M) {
      const xm = x + <usize>M2 * xs;
      const ym = y + <usize>M2 * ys;
      for (let n = n0; n < n1; n += 4) {
        bptile1x4(ym + ((<usize>n) << 2), xm, packed + <usize>(n >> 2) * panelBytes, w + <usize>n * ws, ws, k4, kEnd);
      }
    }
  }
  const r0 = max<i32>(c0, N4);
  for (let m = 0; m < M; m++) {
    const xm = x + <usize>m * xs;
    const ym = y + <usize>m * ys;
    for (let n = r0; n < c1; n++) {
      btile1x1(ym + ((<usize>n) << 2), xm, w + <usize>n * ws, k4, kEnd);
    }
  }
}

// ---------------------------------------------------------------------------
// Row-wise ops. Each row is computed on its own, in index order, so these are
// batch-invariant by construction. They follow the js reference backend (and
// llama2.c): float32 arithmetic rounded after every operation, sums one term
// at a time in index order, exp = the f64 Math.exp rounded to f32. Products
// that are not reduced are vectorised where that leaves every single float
// operation unchanged.
// ---------------------------------------------------------------------------

/** expf as the reference computes it: the f64 exp of an f32, rounded to f32. */
// @ts-ignore: decorator
@inline function expf(x: f32): f32 {
  return <f32>Math.exp(<f64>x);
}

/**
 * e^x on four lanes in f32 (Cody-Waite reduction x = n ln2 + r, a degree-7
 * polynomial in r, times 2^n), within about one ulp of the true value; +inf
 * above 88.72, 0 below -87.33 (where the true value is subnormal), NaN stays
 * NaN. A pure function of each lane, so it is the same for every row.
 */
// @ts-ignore: decorator
@inline function vexpf(x: v128): v128 {
  const hiLimit = f32x4.splat(88.3762626647949);
  const loLimit = f32x4.splat(-87.3365478515625);
  const xc = f32x4.max(f32x4.min(x, hiLimit), loLimit);
  const n = f32x4.nearest(f32x4.mul(xc, f32x4.splat(1.44269504088896341)));
  let r = f32x4.sub(xc, f32x4.mul(n, f32x4.splat(0.693359375)));
  r = f32x4.sub(r, f32x4.mul(n, f32x4.splat(-2.12194440e-4)));
  const z = f32x4.mul(r, r);
  let p = f32x4.splat(1.9875691500e-4);
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.3981999507e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(8.3334519073e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(4.1665795894e-2));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.6666665459e-1));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(5.0000001201e-1));
  p = f32x4.add(f32x4.add(f32x4.mul(p, z), r), f32x4.splat(1));
  const scale = i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(n), i32x4.splat(127)), 23);
  let e = f32x4.mul(p, scale);
  e = v128.bitselect(f32x4.splat(Infinity), e, f32x4.gt(x, hiLimit));
  e = v128.bitselect(f32x4.splat(0), e, f32x4.lt(x, loLimit));
  // NaN lanes: x != x.
  return v128.bitselect(x, e, f32x4.ne(x, x));
}

/** y[m, :] = weight * (scale * x[m, :]), scale = 1 / sqrt(sum(x^2) / D + eps), all f32. */
export function rmsnorm(y: usize, x: usize, weight: usize, M: i32, D: i32, eps: f32): void {
  const rowBytes = (<usize>D) << 2;
  const d4 = (<usize>(D & ~3)) << 2;
  for (let m = 0; m < M; m++) {
    const xr = x + <usize>m * rowBytes;
    const yr = y + <usize>m * rowBytes;
    // Sum of squares: one f32 term at a time, index order.
    let ss: f32 = 0;
    for (let i: usize = 0; i < rowBytes; i += 4) {
      const v = load<f32>(xr + i);
      ss += v * v;
    }
    const scale: f32 = <f32>1 / Mathf.sqrt(ss / <f32>D + eps);
    const sv = f32x4.splat(scale);
    let i: usize = 0;
    for (; i < d4; i += 16) {
      v128.store(yr + i, f32x4.mul(v128.load(weight + i), f32x4.mul(sv, v128.load(xr + i))));
    }
    for (; i < rowBytes; i += 4) {
      store<f32>(yr + i, load<f32>(weight + i) * (scale * load<f32>(xr + i)));
    }
  }
}

/**
 * RoPE in place. `table` holds, for every row m and pair p = i / 2, the f32
 * pair (cos, sin) of that row's angle, computed by the host from the shared
 * angle recipe: table[(m * headSize / 2 + p) * 2 + {0, 1}].
 * x0' = x0 c - x1 s, x1' = x0 s + x1 c (each product rounded, then the sum).
 */
export function rope(x: usize, table: usize, M: i32, nHeads: i32, headSize: i32): void {
  const half = headSize >> 1;
  const width = <usize>nHeads * <usize>headSize;
  for (let m = 0; m < M; m++) {
    const xr = x + ((<usize>m * width) << 2);
    const tr = table + ((<usize>m * <usize>half) << 3);
    for (let p = 0; p < half; p++) {
      const c = load<f32>(tr + ((<usize>p) << 3));
      const s = load<f32>(tr + ((<usize>p) << 3), 4);
      for (let h = 0; h < nHeads; h++) {
        const o = xr + ((<usize>h * <usize>headSize + ((<usize>p) << 1)) << 2);
        const a = load<f32>(o);
        const b = load<f32>(o, 4);
        store<f32>(o, a * c - b * s);
        store<f32>(o, a * s + b * c, 4);
      }
    }
  }
}

/**
 * Masked multi-head attention (see Backend.attention): all heads. `scratch`
 * is host-owned, at least nHeads * nKeys * 8 bytes (see attentionHeads).
 */
export function attention(
  out: usize, q: usize, keys: usize, values: usize, mask: usize, hasMask: i32,
  M: i32, nKeys: i32, nHeads: i32, nKvHeads: i32, headSize: i32, scratch: usize,
): void {
  attentionHeads(out, q, keys, values, mask, hasMask, M, nKeys, nHeads, nKvHeads, headSize, scratch, 0, nHeads);
}

/** Four dot products q . k_a, q . k_b, q . k_c, q . k_d, each in the matmul order, divided by d. */
// @ts-ignore: decorator
@inline function scores4(sp: usize, qp: usize, ka: usize, kb: usize, kc: usize, kd: usize, h4: usize, hsBytes: usize, d: f32): void {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  for (let k: usize = 0; k < h4; k += 16) {
    const v = v128.load(qp + k);
    a0 = madd(v, v128.load(ka + k), a0);
    a1 = madd(v, v128.load(kb + k), a1);
    a2 = madd(v, v128.load(kc + k), a2);
    a3 = madd(v, v128.load(kd + k), a3);
  }
  store<f32>(sp, finish(a0, qp, ka, h4, hsBytes) / d);
  store<f32>(sp, finish(a1, qp, kb, h4, hsBytes) / d, 4);
  store<f32>(sp, finish(a2, qp, kc, h4, hsBytes) / d, 8);
  store<f32>(sp, finish(a3, qp, kd, h4, hsBytes) / d, 12);
}

/** The cached key or value row whose index is the i32 at `ip`. */
// @ts-ignore: decorator
@inline function cachedRow(base: usize, ip: usize, rowBytes: usize): usize {
  return base + <usize>load<i32>(ip) * rowBytes;
}

/** Where touchRows leaves what it read, so the loads stay in the program (see touchSink). */
let touched: i32 = 0;

/** What touchRows read last (keeps its loads observable; never needed otherwise). */
export function touchSink(): i32 {
  return touched;
}

/**
 * Loads one word of every cache line of bytes [from, to) of the first
 * nKeys key and value rows: independent loads, so the lines come from
 * memory with many misses in flight, before the score and value loops walk
 * them with arithmetic between the loads (in a decode step the weights
 * pushed them out of the caches since the last token). Every row of a call
 * sees a subset of these keys, so one pass serves all. Changes no float
 * operation.
 */
// @ts-ignore: decorator
@inline function touchRows(keys: usize, values: usize, nKeys: i32, rowBytes: usize, from: usize, to: usize): void {
  let acc: i32 = 0;
  const end = <usize>nKeys * rowBytes;
  for (let r: usize = 0; r < end; r += rowBytes) {
    for (let b = from; b < to; b += 64) acc |= load<i32>(keys + r + b) | load<i32>(values + r + b);
  }
  touched = acc;
}

/**
 * Query heads h0 .. h1-1 of masked multi-head attention (threads split the
 * heads into contiguous ranges). `scratch` holds, for head h, nKeys f32
 * scores at scratch + h * nKeys * 8; the visible key indices of the row go
 * to scratch + h0 * nKeys * 8 + nKeys * 4. hasMask = 0 selects the causal
 * default (row m sees keys 0 .. nKeys - M + m). The host checks beforehand
 * that every row sees at least one key. Masked keys are never read.
 * hasMask = 2: `mask` is a sparse mask of i32s, offsets [M + 1] then the
 * visible key indices of every row (strictly increasing), so a row costs its
 * visible keys only.
 *
 * Per (row, head), over the visible keys j only, each loop in index order:
 *   s_j = dot(q, k_j) / sqrt(headSize)   (dot in the matmul order over headSize)
 *   mx  = max s_j
 *   e_j = vexpf(s_j - mx);  sum = sum + e_j     (f32, one term at a time)
 *   p_j = e_j / sum
 *   out_i = 0;  out_i = out_i + p_j * v_j[i]    (f32 mul, then f32 add)
 * Four keys' dot products run side by side (each with its own accumulator)
 * and the value sum keeps out_i in a register across four keys; the loops
 * over keys run outside the loop over the range's heads, so each cached key
 * and value row is read once, front to back, for all of them (one memory
 * stream instead of one strided pass per head). None of this changes any
 * float operation, so every row and head gets the sequence above whatever
 * M, the mask, the head range or the thread count.
 */
export function attentionHeads(
  out: usize, q: usize, keys: usize, values: usize, mask: usize, hasMask: i32,
  M: i32, nKeys: i32, nHeads: i32, nKvHeads: i32, headSize: i32, scratch: usize, h0: i32, h1: i32,
): void {
  if (h1 <= h0) return;
  const width = <usize>nHeads * <usize>headSize;
  const kvWidthBytes = (<usize>nKvHeads * <usize>headSize) << 2;
  const hsBytes = (<usize>headSize) << 2;
  const h4 = (<usize>(headSize & ~3)) << 2;
  const group = nHeads / nKvHeads; // query heads per KV head (the host checks that nKvHeads divides nHeads)
  const sqrtHs = Mathf.sqrt(<f32>headSize);
  const headScratch = (<usize>nKeys) << 3; // bytes of scratch per head
  const idxScratch = scratch + <usize>h0 * headScratch + ((<usize>nKeys) << 2);
  // Head h reads KV head h / group: the loops over heads step these along (ko0: byte offset of h0's KV head in a row, g0: h0's place in its group).
  const g0 = h0 % group;
  const ko0 = <usize>(h0 / group) * hsBytes;
  touchRows(keys, values, nKeys, kvWidthBytes, ko0, <usize>((h1 - 1) / group) * hsBytes + hsBytes);
  for (let m = 0; m < M; m++) {
    // The visible keys, in index order.
    let n = 0;
    let idx = idxScratch;
    if (hasMask == 2) {
      // Sparse rows: i32 offsets [M + 1], then the key indices of every row.
      const from = load<i32>(mask + ((<usize>m) << 2));
      n = load<i32>(mask + ((<usize>m + 1) << 2)) - from;
      idx = mask + ((<usize>M + 1 + <usize>from) << 2);
    } else if (hasMask) {
      const maskRow = mask + <usize>m * <usize>nKeys;
      for (let j = 0; j < nKeys; j++) {
        if (load<u8>(maskRow + <usize>j) != 0) {
          store<i32>(idx + ((<usize>n) << 2), j);
          n++;
        }
      }
    } else {
      n = min<i32>(nKeys, nKeys - M + m + 1);
      for (let j = 0; j < n; j++) store<i32>(idx + ((<usize>j) << 2), j);
    }
    const n4 = n & ~3;
    const qRow = q + ((<usize>m * width) << 2);
    const oRow = out + ((<usize>m * width) << 2);
    // Scores, four keys at a time, every head of the range per four keys.
    let t = 0;
    for (; t < n4; t += 4) {
      const ip = idx + ((<usize>t) << 2);
      const ra = cachedRow(keys, ip, kvWidthBytes), rb = cachedRow(keys, ip + 4, kvWidthBytes);
      const rc = cachedRow(keys, ip + 8, kvWidthBytes), rd = cachedRow(keys, ip + 12, kvWidthBytes);
      for (let h = h0, ko = ko0, g = g0; h < h1; h++) {
        const sp = scratch + <usize>h * headScratch + ((<usize>t) << 2);
        scores4(sp, qRow + <usize>h * hsBytes, ra + ko, rb + ko, rc + ko, rd + ko, h4, hsBytes, sqrtHs);
        if (++g == group) { g = 0; ko += hsBytes; }
      }
    }
    for (; t < n; t++) {
      const r = cachedRow(keys, idx + ((<usize>t) << 2), kvWidthBytes);
      for (let h = h0, ko = ko0, g = g0; h < h1; h++) {
        store<f32>(scratch + <usize>h * headScratch + ((<usize>t) << 2), dot(qRow + <usize>h * hsBytes, r + ko, headSize) / sqrtHs);
        if (++g == group) { g = 0; ko += hsBytes; }
      }
    }
    // Per head: the max, exponentials (vexpf, four keys at a time), their sum one term at a time, probabilities.
    for (let h = h0; h < h1; h++) {
      const scores = scratch + <usize>h * headScratch;
      let mx: f32 = -Infinity;
      for (let t = 0; t < n; t++) {
        const s = load<f32>(scores + ((<usize>t) << 2));
        if (s > mx) mx = s;
      }
      const mv = f32x4.splat(mx);
      let t1 = 0;
      for (; t1 < n4; t1 += 4) {
        const sp = scores + ((<usize>t1) << 2);
        v128.store(sp, vexpf(f32x4.sub(v128.load(sp), mv)));
      }
      for (; t1 < n; t1++) {
        const sp = scores + ((<usize>t1) << 2);
        store<f32>(sp, f32x4.extract_lane(vexpf(f32x4.splat(load<f32>(sp) - mx)), 0));
      }
      let sum: f32 = 0;
      for (let t = 0; t < n; t++) sum += load<f32>(scores + ((<usize>t) << 2));
      const sv = f32x4.splat(sum);
      let t2 = 0;
      for (; t2 < n4; t2 += 4) {
        const sp = scores + ((<usize>t2) << 2);
        v128.store(sp, f32x4.div(v128.load(sp), sv));
      }
      for (; t2 < n; t2++) {
        const sp = scores + ((<usize>t2) << 2);
        store<f32>(sp, load<f32>(sp) / sum);
      }
      memory.fill(oRow + <usize>h * hsBytes, 0, hsBytes);
    }
    // Weighted sum of the visible values, every head of the range per four keys: each out_i stays in a register over four keys.
    let j = 0;
    for (; j < n4; j += 4) {
      const ip = idx + ((<usize>j) << 2);
      const ra = cachedRow(values, ip, kvWidthBytes), rb = cachedRow(values, ip + 4, kvWidthBytes);
      const rc = cachedRow(values, ip + 8, kvWidthBytes), rd = cachedRow(values, ip + 12, kvWidthBytes);
      for (let h = h0, vo = ko0, g = g0; h < h1; h++) {
        const va = ra + vo, vb = rb + vo, vc = rc + vo, vd = rd + vo;
        const op = oRow + <usize>h * hsBytes;
        const sp = scratch + <usize>h * headScratch + ((<usize>j) << 2);
        const pa = load<f32>(sp), pb = load<f32>(sp, 4), pc = load<f32>(sp, 8), pd = load<f32>(sp, 12);
        const qa = f32x4.splat(pa), qb = f32x4.splat(pb), qc = f32x4.splat(pc), qd = f32x4.splat(pd);
        let i: usize = 0;
        for (; i < h4; i += 16) {
          let o = v128.load(op + i);
          o = f32x4.add(o, f32x4.mul(qa, v128.load(va + i)));
          o = f32x4.add(o, f32x4.mul(qb, v128.load(vb + i)));
          o = f32x4.add(o, f32x4.mul(qc, v128.load(vc + i)));
          o = f32x4.add(o, f32x4.mul(qd, v128.load(vd + i)));
          v128.store(op + i, o);
        }
        for (; i < hsBytes; i += 4) {
          let o = load<f32>(op + i);
          o = o + pa * load<f32>(va + i);
          o = o + pb * load<f32>(vb + i);
          o = o + pc * load<f32>(vc + i);
          o = o + pd * load<f32>(vd + i);
          store<f32>(op + i, o);
        }
        if (++g == group) { g = 0; vo += hsBytes; }
      }
    }
    for (; j < n; j++) {
      const r = cachedRow(values, idx + ((<usize>j) << 2), kvWidthBytes);
      for (let h = h0, vo = ko0, g = g0; h < h1; h++) {
        const vp = r + vo;
        const op = oRow + <usize>h * hsBytes;
        const pj = load<f32>(scratch + <usize>h * headScratch + ((<usize>j) << 2));
        const pv = f32x4.splat(pj);
        let i: usize = 0;
        for (; i < h4; i += 16) {
          v128.store(op + i, f32x4.add(v128.load(op + i), f32x4.mul(pv, v128.load(vp + i))));
        }
        for (; i < hsBytes; i += 4) {
          store<f32>(op + i, load<f32>(op + i) + pj * load<f32>(vp + i));
        }
        if (++g == group) { g = 0; vo += hsBytes; }
      }
    }
  }
}

/** y[i] = (gate[i] * (1 / (1 + vexpf(-gate[i])))) * up[i], all f32, four at a time (element-wise, so batch-invariant). */
export function swiglu(y: usize, gate: usize, up: usize, n: i32): void {
  const end = (<usize>n) << 2;
  const end4 = (<usize>(n & ~3)) << 2;
  const one = f32x4.splat(1);
  let i: usize = 0;
  for (; i < end4; i += 16) {
    const g = v128.load(gate + i);
    const e = vexpf(f32x4.neg(g));
    v128.store(y + i, f32x4.mul(f32x4.mul(g, f32x4.div(one, f32x4.add(one, e))), v128.load(up + i)));
  }
  for (; i < end; i += 4) {
    const g = load<f32>(gate + i);
    const e = f32x4.extract_lane(vexpf(f32x4.splat(-g)), 0);
    store<f32>(y + i, (g * (<f32>1 / (<f32>1 + e))) * load<f32>(up + i));
  }
}

/** y[i] += x[i]. */
export function add(y: usize, x: usize, n: i32): void {
  const end = (<usize>n) << 2;
  const end4 = (<usize>(n & ~3)) << 2;
  let i: usize = 0;
  for (; i < end4; i += 16) {
    v128.store(y + i, f32x4.add(v128.load(y + i), v128.load(x + i)));
  }
  for (; i < end; i += 4) {
    store<f32>(y + i, load<f32>(y + i) + load<f32>(x + i));
  }
}

/** y[m, :] = table[ids[m], :] for ids[m] >= 0 (ids already range-checked by the host). */
export function embedding(y: usize, table: usize, ids: usize, M: i32, D: i32): void {
  const rowBytes = (<usize>D) << 2;
  for (let m = 0; m < M; m++) {
    const id = load<i32>(ids + ((<usize>m) << 2));
    if (id < 0) continue;
    memory.copy(y + <usize>m * rowBytes, table + <usize>id * rowBytes, rowBytes);
  }
}

/**
 * out[m] = argmax of row m of x [M, N] (N >= 1), exactly as the host's
 * sequential scan (src/sampling/pick.ts) gives it: best = 0, then index i
 * replaces it when x[i] > x[best]. So: the lowest index of the largest
 * value, a NaN never wins, and a row starting with NaN gives 0. Four lanes
 * each scan every fourth element the same way (starting below every value,
 * so a NaN cannot stick to a lane), then the lanes are merged by value,
 * ties to the lower index, and the N % 4 tail is scanned last.
 */
export function argmaxRows(out: usize, x: usize, M: i32, N: i32): void {
  const rowBytes = (<usize>N) << 2;
  const end4 = (<usize>(N & ~3)) << 2;
  for (let m = 0; m < M; m++) {
    const xr = x + <usize>m * rowBytes;
    const first = load<f32>(xr);
    let best: i32 = 0;
    if (first == first) {
      let bv = f32x4.splat(-Infinity);
      let bi = i32x4.splat(-1);
      let idx = i32x4(0, 1, 2, 3);
      const four = i32x4.splat(4);
      for (let i: usize = 0; i < end4; i += 16) {
        const v = v128.load(xr + i);
        const gt = f32x4.gt(v, bv);
        bv = v128.bitselect(v, bv, gt);
        bi = v128.bitselect(idx, bi, gt);
        idx = i32x4.add(idx, four);
      }
      let bestValue = first;
      for (let lane = 0; lane < 4; lane++) {
        let i: i32, v: f32;
        if (lane == 0) { i = i32x4.extract_lane(bi, 0); v = f32x4.extract_lane(bv, 0); }
        else if (lane == 1) { i = i32x4.extract_lane(bi, 1); v = f32x4.extract_lane(bv, 1); }
        else if (lane == 2) { i = i32x4.extract_lane(bi, 2); v = f32x4.extract_lane(bv, 2); }
        else { i = i32x4.extract_lane(bi, 3); v = f32x4.extract_lane(bv, 3); }
        if (i < 0) continue;
        if (v > bestValue || (v == bestValue && i < best)) {
          bestValue = v;
          best = i;
        }
      }
      for (let i: usize = end4; i < rowBytes; i += 4) {
        const v = load<f32>(xr + i);
        if (v > bestValue) {
          bestValue = v;
          best = <i32>(i >> 2);
        }
      }
    }
    store<i32>(out + ((<usize>m) << 2), best);
  }
}

// ---- sampling ----------------------------------------------------------------

/** 2^(j / 64) for j = 0 .. 63, as f64 (each within an ulp; exp's error bound allows far more). */
const EXP2_TABLE: usize = memory.data<f64>([
  1.0,
  1.0108892860517005,
  1.0218971486541166,
  1.0330248790212284,
  1.0442737824274138,
  1.0556451783605572,
  1.0671404006768237,
  1.0787607977571199,
  1.0905077326652577,
  1.102382583307841,
  1.1143867425958924,
  1.1265216186082418,
  1.1387886347566916,
  1.1511892299529827,
  1.1637248587775775,
  1.1763969916502812,
  1.189207115002721,
  1.202156731452703,
  1.215247359980469,
  1.22848053610687,
  1.241857812073484,
  1.255380757024691,
  1.2690509571917332,
  1.2828700160787783,
  1.2968395546510096,
  1.3109612115247644,
  1.3252366431597413,
  1.339667524053303,
  1.3542555469368927,
  1.3690024229745905,
  1.383909881963832,
  1.3989796725383112,
  1.4142135623730951,
  1.42961333839197,
  1.4451808069770467,
  1.460917794180647,
  1.4768261459394993,
  1.4929077282912648,
  1.5091644275934228,
  1.5255981507445384,
  1.5422108254079407,
  1.559004400237837,
  1.5759808451078865,
  1.593142151342267,
  1.6104903319492543,
  1.6280274218573478,
  1.645755478153965,
  1.6636765803267364,
  1.681792830507429,
  1.7001063537185235,
  1.718619298122478,
  1.7373338352737062,
  1.7562521603732995,
  1.7753764925265212,
  1.7947090750031072,
  1.8142521755003989,
  1.8340080864093424,
  1.8539791250833855,
  1.8741676341103,
  1.8945759815869656,
  1.9152065613971474,
  1.9360617934922943,
  1.9571441241754002,
  1.978456026387951
]);

/** The host's Math.exp: the rare exponentials the fast path below cannot settle. */
@external("env", "exp")
declare function hostExp(x: f64): f64;

const INV_LN2: f64 = 1.4426950408889634;
const LN2_HI: f64 = 6.93147180369123816490e-1; // low 32 bits zero: k * LN2_HI is exact for |k| < 2^20
const LN2_LO: f64 = 1.90821492927058770002e-10;

/**
 * fround(Math.exp(x)) for a float32 x, bit for bit, as the host's sampling
 * (src/sampling/softmax.ts) computes it. For -87 < x <= 0 an f64 exp good to
 * about 2^-50 (reduction by ln 2, degree-13 Taylor polynomial) is rounded to
 * float32, unless it lies within 2^-48 of a rounding boundary between two
 * float32 values; the host's Math.exp (error below one f64 ulp, 2^-52) then
 * rounds the same way, so the result is the same. Everything else (the
 * rare near-boundary values, x <= -87 where float32 results get small, and
 * x > 0) calls the host's Math.exp itself.
 */
// @ts-ignore: decorator
@inline function expf32(x: f32): f32 {
  if (!(x > -87.0 && x <= 0.0)) return <f32>hostExp(<f64>x);
  const xd = <f64>x;
  const k = nearest<f64>(xd * INV_LN2); // -126 .. 0
  const r = xd - k * LN2_HI - k * LN2_LO;
  const p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0 + r * (1.0 / 40320.0 + r * (1.0 / 362880.0 + r * (1.0 / 3628800.0 + r * (1.0 / 39916800.0 + r * (1.0 / 479001600.0 + r * (1.0 / 6227020800.0)))))))))))));
  const y = p * reinterpret<f64>((<i64>(1023 + <i32>k)) << 52);
  const f = <f32>y;
  const bits = reinterpret<u32>(f);
  const ulp = reinterpret<f64>((<i64>(<i32>(bits >>> 23) - 150 + 1023)) << 52);
  const half = (bits & 0x7fffff) == 0 && y < <f64>f ? ulp * 0.25 : ulp * 0.5;
  if (half - Math.abs(y - <f64>f) > y * 3.552713678800501e-15) return f;
  return <f32>hostExp(xd);
}

/**
 * expf32 of two float32 values at once (the f64 lanes of xd, each in
 * (-87, 0]): x = n ln2 / 64 + r with |r| <= ln 2 / 128, exp(x) =
 * 2^(n >> 6) 2^((n & 63) / 64) exp(r), the middle factor from EXP2_TABLE
 * and exp(r) a degree-5 Taylor polynomial (error about 2^-54), so y is
 * within about 2^-51 of exp(x). A lane is kept only where y - d and y + d
 * (d = y * 2^-47, far above the error of y and of the host's Math.exp)
 * round to the same float32 as y, so that float32 is the one
 * fround(Math.exp(x)) gives. Returns the results in f32 lanes 0 and 1 and
 * in lanes 2 and 3 whether lane 0 and 1 were kept (all ones) or not (0).
 */
// @ts-ignore: decorator
@inline function expf32x2(xd: v128): v128 {
  // n = nearest(x 64 / ln 2); x = n ln2 / 64 + r, |r| <= ln 2 / 128; exp(x) = 2^(n >> 6) 2^((n & 63) / 64) exp(r).
  const n = f64x2.nearest(f64x2.mul(xd, f64x2.splat(INV_LN2 * 64.0)));
  const r = f64x2.sub(f64x2.sub(xd, f64x2.mul(n, f64x2.splat(LN2_HI / 64.0))), f64x2.mul(n, f64x2.splat(LN2_LO / 64.0)));
  let p = f64x2.splat(1.0 / 120.0);
  p = f64x2.add(f64x2.splat(1.0 / 24.0), f64x2.mul(r, p));
  p = f64x2.add(f64x2.splat(1.0 / 6.0), f64x2.mul(r, p));
  p = f64x2.add(f64x2.splat(0.5), f64x2.mul(r, p));
  p = f64x2.add(f64x2.splat(1.0), f64x2.mul(r, p));
  p = f64x2.add(f64x2.splat(1.0), f64x2.mul(r, p));
  const ni = i32x4.trunc_sat_f64x2_s_zero(n);
  const n0 = i32x4.extract_lane(ni, 0), n1 = i32x4.extract_lane(ni, 1);
  const tj = f64x2.replace_lane(f64x2.splat(load<f64>(EXP2_TABLE + ((<usize>(n0 & 63)) << 3))), 1, load<f64>(EXP2_TABLE + ((<usize>(n1 & 63)) << 3)));
  const e = i64x2.shl(i64x2.add(i64x2.extend_low_i32x4_s(i32x4.shr_s(ni, 6)), i64x2.splat(1023)), 52);
  const y = f64x2.mul(f64x2.mul(p, tj), e);
  const d = f64x2.mul(y, f64x2.splat(7.105427357601002e-15)); // 2^-47
  const f = f32x4.demote_f64x2_zero(y);
  const same = v128.and(i32x4.eq(f, f32x4.demote_f64x2_zero(f64x2.sub(y, d))), i32x4.eq(f, f32x4.demote_f64x2_zero(f64x2.add(y, d))));
  // f in lanes 0, 1; the verdicts in lanes 2, 3.
  return i32x4.shuffle(f, same, 0, 1, 4, 5);
}

/** expf32 of four float32 values: two expf32x2 where every lane is in (-87, 0], the scalar expf32 for the lanes they leave. */
// @ts-ignore: decorator
@inline function expf32x4(v: v128): v128 {
  const inRange = v128.and(f32x4.gt(v, f32x4.splat(-87.0)), f32x4.le(v, f32x4.splat(0.0)));
  if (!i32x4.all_true(inRange)) {
    return f32x4.replace_lane(f32x4.replace_lane(f32x4.replace_lane(f32x4.splat(expf32(f32x4.extract_lane(v, 0))), 1, expf32(f32x4.extract_lane(v, 1))), 2, expf32(f32x4.extract_lane(v, 2))), 3, expf32(f32x4.extract_lane(v, 3)));
  }
  const lo = expf32x2(f64x2.promote_low_f32x4(v));
  const hi = expf32x2(f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 2, 3)));
  let out = i32x4.shuffle(lo, hi, 0, 1, 4, 5);
  if (i32x4.extract_lane(lo, 2) == 0) out = f32x4.replace_lane(out, 0, expf32(f32x4.extract_lane(v, 0)));
  if (i32x4.extract_lane(lo, 3) == 0) out = f32x4.replace_lane(out, 1, expf32(f32x4.extract_lane(v, 1)));
  if (i32x4.extract_lane(hi, 2) == 0) out = f32x4.replace_lane(out, 2, expf32(f32x4.extract_lane(v, 2)));
  if (i32x4.extract_lane(hi, 3) == 0) out = f32x4.replace_lane(out, 3, expf32(f32x4.extract_lane(v, 3)));
  return out;
}

/** y[i] = expf32(x[i]) for n float32 values (tests check it against fround(Math.exp) on millions of arguments). */
export function expRows(y: usize, x: usize, n: i32): void {
  const end = (<usize>n) << 2, end4 = (<usize>(n & ~3)) << 2;
  let i: usize = 0;
  for (; i < end4; i += 16) v128.store(y + i, expf32x4(v128.load(x + i)));
  for (; i < end; i += 4) store<f32>(y + i, expf32(load<f32>(x + i)));
}

/**
 * out[m] = Pick(u[m], P_m), P_m the sampling distribution of row m of x
 * [M, N] at temperature t (already float32) with no top-k or top-p, computed
 * as the host does (src/sampling: applyTemperature, softmaxF32, pick):
 *   s_i = x_i / t;  mx = max s_i;  e_i = expf(s_i - mx);  sum = sum + e_i
 *   (f32, index order);  p_i = e_i / sum;  the first i with u < cdf_i, cdf
 *   summed in f32 in index order, else the last i with p_i > 0.
 * u is f64, compared as the host compares it. A row the host would refuse
 * (a NaN or +Infinity s_i, every s_i -Infinity, no nonzero p_i) gives -1.
 * `scratch` holds N f32 (the e_i).
 */
export function pickRows(out: usize, x: usize, M: i32, N: i32, t: f32, us: usize, scratch: usize): void {
  const rowBytes = (<usize>N) << 2;
  for (let m = 0; m < M; m++) {
    const xr = x + <usize>m * rowBytes;
    const row4 = (<usize>(N & ~3)) << 2;
    const tv = f32x4.splat(t);
    // The max of s_i = x_i / t (any order gives the same value; -0 and 0 give the same exponentials), and NaN or +Infinity.
    let mv = f32x4.splat(-Infinity);
    let badv = i32x4.splat(0);
    for (let i: usize = 0; i < row4; i += 16) {
      const v = f32x4.div(v128.load(xr + i), tv);
      badv = v128.or(badv, v128.or(f32x4.ne(v, v), f32x4.eq(v, f32x4.splat(Infinity))));
      mv = f32x4.pmax(mv, v);
    }
    let mx: f32 = max(max(f32x4.extract_lane(mv, 0), f32x4.extract_lane(mv, 1)), max(f32x4.extract_lane(mv, 2), f32x4.extract_lane(mv, 3)));
    let bad = N == 0 || v128.any_true(badv);
    for (let i = row4; i < rowBytes; i += 4) {
      const v = load<f32>(xr + i) / t;
      if (v != v || v == Infinity) bad = true;
      if (v > mx) mx = v;
    }
    if (bad || mx == -Infinity) { store<i32>(out + ((<usize>m) << 2), -1); continue; }
    const mxv = f32x4.splat(mx);
    for (let i: usize = 0; i < row4; i += 16) v128.store(scratch + i, expf32x4(f32x4.sub(f32x4.div(v128.load(xr + i), tv), mxv)));
    for (let i = row4; i < rowBytes; i += 4) store<f32>(scratch + i, expf32(load<f32>(xr + i) / t - mx));
    let sum: f32 = 0;
    for (let i: usize = 0; i < rowBytes; i += 4) sum += load<f32>(scratch + i);
    const u = load<f64>(us + ((<usize>m) << 3));
    let cdf: f32 = 0;
    let pick: i32 = -1, lastNonZero: i32 = -1;
    for (let i = 0; i < N; i++) {
      const q = load<f32>(scratch + ((<usize>i) << 2)) / sum;
      if (q > 0) lastNonZero = i;
      cdf += q;
      if (u < <f64>cdf) { pick = i; break; }
    }
    store<i32>(out + ((<usize>m) << 2), pick >= 0 ? pick : lastNonZero);
  }
}

/** Row-wise softmax in place over x [M, N]: max, e = expf(x - max), f32 sum in index order, e / sum. */
export function softmax(x: usize, M: i32, N: i32): void {
  const rowBytes = (<usize>N) << 2;
  for (let m = 0; m < M; m++) {
    const xr = x + <usize>m * rowBytes;
    let mx: f32 = -Infinity;
    for (let i: usize = 0; i < rowBytes; i += 4) {
      const v = load<f32>(xr + i);
      if (v > mx) mx = v;
    }
    let sum: f32 = 0;
    for (let i: usize = 0; i < rowBytes; i += 4) {
      const e = expf(load<f32>(xr + i) - mx);
      store<f32>(xr + i, e);
      sum += e;
    }
    for (let i: usize = 0; i < rowBytes; i += 4) {
      store<f32>(xr + i, load<f32>(xr + i) / sum);
    }
  }
}

/** memmove of n bytes. */
export function copyBytes(dst: usize, src: usize, n: usize): void {
  memory.copy(dst, src, n);
}

/** memset of n bytes to zero. */
export function zeroBytes(dst: usize, n: usize): void {
  memory.fill(dst, 0, n);
}
export { fmaPeak } from "./peak";
