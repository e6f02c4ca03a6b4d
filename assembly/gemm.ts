// f32 matmul: y = x W^T.
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

import { madd } from "./madd";
import { finish } from "./reduce";

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
export const W_BLOCK_BYTES: usize = 256 * 1024;

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
// For large W the backend keeps a second copy of w in panels of 2 rows, so
// that a tile reads each panel as ONE sequential stream. Panel p holds rows
// 2p and 2p+1, and chunk c of those rows at bytes (p * (K / 4) + c) * 32 +
// r * 16. Two rows per panel keep a tile of 4 rows of x at 8 accumulators
// (4 x 2 elements; V8 gives 15 vector registers), and they let the few-row
// kernels walk several panels far apart at once: one core's prefetchers
// serve each sequential stream at a limited rate (one stream 14.6 GB/s, two
// 18.4, four 22.7 in one scratch measurement), so one row reads four
// streams (ptile1x2x4) and two to four rows two (ptileRx2x2, a pair of rows
// at a time). Only the full chunks (K & ~3) and full panels (N & ~1) are
// packed: the K tail and an odd last row of w are read from w itself. The
// per-element order is exactly the one above (one f32x4 accumulator per
// element over the chunks in order, hsum, tail), so packed and unpacked
// results are bit-identical.
//
// For long rows (more than KB_CHUNKS chunks) the panels are stored K-block
// major: block b (chunks b * KB_CHUNKS .. up to (b + 1) * KB_CHUNKS - 1) of
// every panel, panel after panel, then block b + 1. A call of M <= SCR_ROWS
// rows (gemmKBlocks, for either layout) walks block by block: each row's
// slice of x for one block (2 KiB) stays in L1 while the weights stream
// past it; with whole rows of x (8 KiB per row at K = 2048) the weight
// stream evicted x from L1 and a 2-row call of a 2048-wide matrix ran at
// 0.6x the speed of a 512-wide one (docs/BENCHMARKS.md, issue 12). Between
// blocks the accumulators wait in a trailer of the packed buffer (SCR_ROWS
// rows of f32x4 per column), so each element still has one accumulator
// running over the chunks in order: the same bits as the one-block layout.
// With one block (short rows) the layout is the plain panel-major one above
// and there is no trailer.

/** Chunks of 4 k per K-block of the packed layout. */
const KB_CHUNKS: usize = 128;
/** Rows a block-by-block call can carry (accumulator rows in the trailer). */
const SCR_ROWS: i32 = 4;

// @ts-ignore: decorator
@inline function packedChunks(K: i32): usize {
  return (<usize>(K & ~3)) >> 2;
}

/** Bytes of one chunk of every panel (N & ~1 rows of 16 bytes); also the trailer's bytes per row of accumulators. */
// @ts-ignore: decorator
@inline function chunkBytes(N: i32): usize {
  return (<usize>(N & ~1)) << 4;
}

// @ts-ignore: decorator
@inline function panelArea(K: i32, N: i32): usize {
  return chunkBytes(N) * packedChunks(K);
}

/** Bytes `packPanels` writes for a [N, K] matrix. */
export function packedBytes(K: i32, N: i32): usize {
  const trailer = packedChunks(K) > KB_CHUNKS ? chunkBytes(N) * <usize>SCR_ROWS : 0;
  return panelArea(K, N) + trailer;
}

/** Writes the panels of w [N, K] to dst (packedBytes(K, N) bytes). */
export function packPanels(dst: usize, w: usize, K: i32, N: i32): void {
  const rowBytes = (<usize>K) << 2;
  const C = packedChunks(K);
  const N2 = N & ~1;
  let d = dst;
  for (let c0: usize = 0; c0 < C; c0 += KB_CHUNKS) {
    const kFrom = c0 << 4, kTo = blockEnd(C, c0) << 4;
    for (let p = 0; p < N2; p += 2) {
      const r0 = w + <usize>p * rowBytes;
      for (let k = kFrom; k < kTo; k += 16) {
        v128.store(d, v128.load(r0 + k));
        v128.store(d, v128.load(r0 + rowBytes + k), 16);
        d += 32;
      }
    }
  }
}

// Every panel tile below runs the chunks of one K-block or of several and
// carries its accumulators between blocks through `acc` (one f32x4 per
// element: element (m, n) at acc + m * as + n * 16 of the trailer): it
// starts from zero in the first block (`first`) and ends with `finish` in
// the last (`last`); in between it parks them at acc. With one block, or
// when one call runs every block, first and last hold and acc is never
// touched.

/** The two accumulators of one row of x on one panel: finished into y (the last block) or parked at acc. */
// @ts-ignore: decorator
@inline function settle(y: usize, acc: usize, last: bool, x: usize, w: usize, ws: usize, k4: usize, kEnd: usize, a0: v128, a1: v128): void {
  if (last) {
    store<f32>(y, finish(a0, x, w, k4, kEnd));
    store<f32>(y, finish(a1, x, w + ws, k4, kEnd), 4);
  } else {
    v128.store(acc, a0);
    v128.store(acc, a1, 16);
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
 * full K-blocks before it hold cb chunks of every panel (`as` bytes per
 * chunk of all panels), and each panel's part of this one is its chunk
 * count times 32 bytes. The one place that knows the packed layout's order.
 */
// @ts-ignore: decorator
@inline function blockPanel(packed: usize, pi: usize, as: usize, C: usize, cb: usize): usize {
  return packed + cb * as + pi * ((blockEnd(C, cb) - cb) << 5);
}

/**
 * R rows of x (R = 1 .. 4, a constant at every call) times panel pi over the
 * K-blocks from chunk cbFrom to cbTo (one K-block when called per block; all
 * of them, cbTo = C, when the accumulators stay in registers): 2R
 * accumulators, one stream of w.
 */
// @ts-ignore: decorator
@inline function ptileRx2(R: i32, y: usize, ys: usize, x: usize, xs: usize, packed: usize, pi: usize, as: usize, C: usize, cbFrom: usize, cbTo: usize, w: usize, ws: usize, k4: usize, kEnd: usize, acc: usize, first: bool, last: bool): void {
  const x1 = x + xs, x2 = x1 + xs, x3 = x2 + xs;
  const c1 = acc + as, c2 = c1 + as, c3 = c2 + as;
  const z = f32x4.splat(0);
  let a00 = resume(first, acc), a01 = resume(first, acc + 16);
  let a10 = R > 1 ? resume(first, c1) : z, a11 = R > 1 ? resume(first, c1 + 16) : z;
  let a20 = R > 2 ? resume(first, c2) : z, a21 = R > 2 ? resume(first, c2 + 16) : z;
  let a30 = R > 3 ? resume(first, c3) : z, a31 = R > 3 ? resume(first, c3 + 16) : z;
  for (let cb = cbFrom; cb < cbTo; cb += KB_CHUNKS) {
    let p = blockPanel(packed, pi, as, C, cb);
    const kTo = blockEnd(C, cb) << 4;
    for (let k = cb << 4; k < kTo; k += 16) {
      const b0 = v128.load(p), b1 = v128.load(p, 16);
      let v = v128.load(x + k);
      a00 = madd(v, b0, a00); a01 = madd(v, b1, a01);
      if (R > 1) {
        v = v128.load(x1 + k);
        a10 = madd(v, b0, a10); a11 = madd(v, b1, a11);
      }
      if (R > 2) {
        v = v128.load(x2 + k);
        a20 = madd(v, b0, a20); a21 = madd(v, b1, a21);
      }
      if (R > 3) {
        v = v128.load(x3 + k);
        a30 = madd(v, b0, a30); a31 = madd(v, b1, a31);
      }
      p += 32;
    }
  }
  settle(y, acc, last, x, w, ws, k4, kEnd, a00, a01);
  if (R > 1) settle(y + ys, c1, last, x1, w, ws, k4, kEnd, a10, a11);
  if (R > 2) settle(y + 2 * ys, c2, last, x2, w, ws, k4, kEnd, a20, a21);
  if (R > 3) settle(y + 3 * ys, c3, last, x3, w, ws, k4, kEnd, a30, a31);
}

/**
 * R rows of x (R = 1 or 2, a constant at every call) times two panels far
 * apart (pa and pb, d columns apart): two streams of w over the chunks
 * [kFrom, kTo) of one K-block, 4R accumulators.
 */
// @ts-ignore: decorator
@inline function ptileRx2x2(R: i32, y: usize, ys: usize, x: usize, xs: usize, pa: usize, pb: usize, d: usize, w: usize, ws: usize, kFrom: usize, kTo: usize, k4: usize, kEnd: usize, acc: usize, as: usize, first: bool, last: bool): void {
  const x1 = x + xs, c1 = acc + as;
  const ad = d << 4, yd = d << 2, wd = d * ws;
  const z = f32x4.splat(0);
  let a00 = resume(first, acc), a01 = resume(first, acc + 16);
  let b00 = resume(first, acc + ad), b01 = resume(first, acc + ad + 16);
  let a10 = R > 1 ? resume(first, c1) : z, a11 = R > 1 ? resume(first, c1 + 16) : z;
  let b10 = R > 1 ? resume(first, c1 + ad) : z, b11 = R > 1 ? resume(first, c1 + ad + 16) : z;
  let p = pa, q = pb;
  for (let k = kFrom; k < kTo; k += 16) {
    const v0 = v128.load(x + k);
    const v1 = R > 1 ? v128.load(x1 + k) : z;
    let e0 = v128.load(p), e1 = v128.load(p, 16);
    a00 = madd(v0, e0, a00); a01 = madd(v0, e1, a01);
    if (R > 1) {
      a10 = madd(v1, e0, a10); a11 = madd(v1, e1, a11);
    }
    e0 = v128.load(q);
    e1 = v128.load(q, 16);
    b00 = madd(v0, e0, b00); b01 = madd(v0, e1, b01);
    if (R > 1) {
      b10 = madd(v1, e0, b10); b11 = madd(v1, e1, b11);
    }
    p += 32;
    q += 32;
  }
  settle(y, acc, last, x, w, ws, k4, kEnd, a00, a01);
  settle(y + yd, acc + ad, last, x, w + wd, ws, k4, kEnd, b00, b01);
  if (R > 1) {
    settle(y + ys, c1, last, x1, w, ws, k4, kEnd, a10, a11);
    settle(y + ys + yd, c1 + ad, last, x1, w + wd, ws, k4, kEnd, b10, b11);
  }
}

/**
 * 1 row of x times four panels far apart (pi and the three after it, dp
 * panels apart) over the K-blocks from chunk cbFrom to cbTo: four streams
 * of w, 8 accumulators.
 */
// @ts-ignore: decorator
@inline function ptile1x2x4(y: usize, x: usize, packed: usize, pi: usize, dp: usize, as: usize, C: usize, cbFrom: usize, cbTo: usize, w: usize, ws: usize, k4: usize, kEnd: usize, acc: usize, first: bool, last: bool): void {
  const d = dp << 1; // columns between the panels
  const ad = d << 4, yd = d << 2, wd = d * ws;
  let a0 = resume(first, acc), a1 = resume(first, acc + 16);
  let b0 = resume(first, acc + ad), b1 = resume(first, acc + ad + 16);
  let c0 = resume(first, acc + 2 * ad), c1 = resume(first, acc + 2 * ad + 16);
  let d0 = resume(first, acc + 3 * ad), d1 = resume(first, acc + 3 * ad + 16);
  for (let cb = cbFrom; cb < cbTo; cb += KB_CHUNKS) {
    const e = blockEnd(C, cb);
    const pd = dp * ((e - cb) << 5); // bytes between the panels in this K-block
    let p = blockPanel(packed, pi, as, C, cb);
    const kTo = e << 4;
    for (let k = cb << 4; k < kTo; k += 16) {
      const v = v128.load(x + k);
      a0 = madd(v, v128.load(p), a0);
      a1 = madd(v, v128.load(p, 16), a1);
      b0 = madd(v, v128.load(p + pd), b0);
      b1 = madd(v, v128.load(p + pd, 16), b1);
      c0 = madd(v, v128.load(p + 2 * pd), c0);
      c1 = madd(v, v128.load(p + 2 * pd, 16), c1);
      d0 = madd(v, v128.load(p + 3 * pd), d0);
      d1 = madd(v, v128.load(p + 3 * pd, 16), d1);
      p += 32;
    }
  }
  settle(y, acc, last, x, w, ws, k4, kEnd, a0, a1);
  settle(y + yd, acc + ad, last, x, w + wd, ws, k4, kEnd, b0, b1);
  settle(y + 2 * yd, acc + 2 * ad, last, x, w + 2 * wd, ws, k4, kEnd, c0, c1);
  settle(y + 3 * yd, acc + 3 * ad, last, x, w + 3 * wd, ws, k4, kEnd, d0, d1);
}

/** Columns c0 .. c1-1 of y = x W^T from packed panels (one K-block or several). */
function gemmPacked(y: usize, x: usize, w: usize, packed: usize, M: i32, K: i32, N: i32, c0: i32, c1: i32): void {
  const N2 = N & ~1;
  const p1 = min<i32>(c1, N2);
  // Up to 8 short rows too (at most 2304 x values: 15M's 288-wide matrices; gemm-ab --cold 1.16-1.39x at
  // M = 5..8 there, 0.63-0.81x on 512-wide ones, measured with the earlier 4-row panels). Such rows are one K-block (K < 516), so no accumulator
  // is parked and the trailer's SCR_ROWS rows suffice.
  if (M <= SCR_ROWS || (M <= 2 * SCR_ROWS && M * K <= 2304)) gemmKBlocks(y, x, w, packed, M, K, N, c0, p1);
  else gemmPanels(y, x, w, packed, M, K, N, c0, p1);
  // An odd last row of w (never packed).
  const kEnd = (<usize>K) << 2;
  const k4 = (<usize>(K & ~3)) << 2;
  const k8 = (<usize>(K & ~7)) << 2;
  const r0 = max<i32>(c0, N2);
  for (let m = 0; m < M; m++) {
    const xm = x + <usize>m * kEnd;
    const ym = y + <usize>m * ((<usize>N) << 2);
    for (let n = r0; n < c1; n++) {
      tile1x1(ym + ((<usize>n) << 2), xm, w + <usize>n * kEnd, k4, k8, kEnd);
    }
  }
}

/**
 * Every row of one panel over the K-blocks cbFrom .. cbTo, four rows at a
 * time, then the M % 4 rows left (R is a constant at each call of ptileRx2).
 */
// @ts-ignore: decorator
@inline function panelRows(y: usize, x: usize, w: usize, n: i32, packed: usize, C: usize, cbFrom: usize, cbTo: usize, scr: usize, M: i32, xs: usize, ws: usize, ys: usize, as: usize, k4: usize, kEnd: usize, first: bool, last: bool): void {
  const pi = <usize>(n >> 1), wn = w + <usize>n * ws, yn = y + ((<usize>n) << 2), an = scr + ((<usize>n) << 4);
  let m = 0;
  for (; m + 3 < M; m += 4) ptileRx2(4, yn + <usize>m * ys, ys, x + <usize>m * xs, xs, packed, pi, as, C, cbFrom, cbTo, wn, ws, k4, kEnd, an + <usize>m * as, first, last);
  const left = M - m, ym = yn + <usize>m * ys, xm = x + <usize>m * xs, am = an + <usize>m * as;
  if (left == 3) ptileRx2(3, ym, ys, xm, xs, packed, pi, as, C, cbFrom, cbTo, wn, ws, k4, kEnd, am, first, last);
  else if (left == 2) ptileRx2(2, ym, ys, xm, xs, packed, pi, as, C, cbFrom, cbTo, wn, ws, k4, kEnd, am, first, last);
  else if (left == 1) ptileRx2(1, ym, ys, xm, xs, packed, pi, as, C, cbFrom, cbTo, wn, ws, k4, kEnd, am, first, last);
}

/**
 * Panel columns c0 .. p1-1 for calls of more rows than gemmKBlocks takes,
 * accumulators in registers: row quads pass over blocks of panels hot in L2
 * with their rows of x in L1.
 */
function gemmPanels(y: usize, x: usize, w: usize, packed: usize, M: i32, K: i32, N: i32, c0: i32, p1: i32): void {
  const kEnd = (<usize>K) << 2;
  const k4 = (<usize>(K & ~3)) << 2;
  const xs = kEnd, ws = kEnd, ys = (<usize>N) << 2;
  const C = packedChunks(K);
  const as = chunkBytes(N);
  const panelBytes = k4 << 1;
  // Columns per block of panels kept hot in L2 while all row quads pass over them.
  let nb = panelBytes > 0 ? <i32>(W_BLOCK_BYTES / panelBytes) << 1 : N;
  nb = max<i32>(2, nb);
  for (let n0 = c0; n0 < p1; n0 += nb) {
    const n1 = min<i32>(p1, n0 + nb);
    for (let n = n0; n < n1; n += 2) panelRows(y, x, w, n, packed, C, 0, C, 0, M, xs, ws, ys, as, k4, kEnd, true, true);
  }
}

/**
 * M <= SCR_ROWS rows (or up to 8 short ones) and panel columns c0 .. p1-1
 * (either layout; the one-K-block layout is one K-block): K-block after
 * K-block, and in each the panels, so the rows' slices of x for that
 * K-block stay in L1 and each panel's block serves every row while it is in
 * L1; the accumulators wait in the trailer between K-blocks. One row reads
 * four streams (the quarters of the column range); two to four rows two
 * (the halves), a pair of rows at a time.
 */
function gemmKBlocks(y: usize, x: usize, w: usize, packed: usize, M: i32, K: i32, N: i32, c0: i32, p1: i32): void {
  const kEnd = (<usize>K) << 2;
  const k4 = (<usize>(K & ~3)) << 2;
  const xs = kEnd, ws = kEnd, ys = (<usize>N) << 2;
  const C = packedChunks(K);
  const as = chunkBytes(N);
  const scr = packed + panelArea(K, N);
  const cols = p1 - c0;
  const q = (cols >> 3) << 1; // M = 1: columns per quarter, whole panels
  const h = (cols >> 2) << 1; // M = 2 .. 4: columns per half
  for (let cb: usize = 0; cb < C; cb += KB_CHUNKS) {
    const end = blockEnd(C, cb);
    const kFrom = cb << 4, kTo = end << 4;
    const first = cb == 0, last = end == C;
    let n = c0;
    if (M == 1 && q > 0) {
      for (; n < c0 + q; n += 2) ptile1x2x4(y + ((<usize>n) << 2), x, packed, <usize>(n >> 1), <usize>(q >> 1), as, C, cb, cb + 1, w + <usize>n * ws, ws, k4, kEnd, scr + ((<usize>n) << 4), first, last);
      n = c0 + 4 * q;
    } else if (M <= 4 && h > 0) {
      // Rows in pairs (and a last single row) over two streams; the rows after the first pair
      // find the two panels' blocks in L1 (gemm-ab --cold: 1.07-1.12x at M = 4 and 1.04-1.13x at
      // M = 3 over every panel once with the 4x2 and 3x2 kernels).
      for (; n < c0 + h; n += 2) {
        const pa = blockPanel(packed, <usize>(n >> 1), as, C, cb);
        const pb = pa + <usize>(h >> 1) * ((end - cb) << 5);
        let m = 0;
        for (; m + 1 < M; m += 2) {
          ptileRx2x2(2, y + <usize>m * ys + ((<usize>n) << 2), ys, x + <usize>m * xs, xs, pa, pb, <usize>h, w + <usize>n * ws, ws, kFrom, kTo, k4, kEnd, scr + <usize>m * as + ((<usize>n) << 4), as, first, last);
        }
        if (m < M) ptileRx2x2(1, y + <usize>m * ys + ((<usize>n) << 2), ys, x + <usize>m * xs, xs, pa, pb, <usize>h, w + <usize>n * ws, ws, kFrom, kTo, k4, kEnd, scr + <usize>m * as + ((<usize>n) << 4), as, first, last);
      }
      n = c0 + 2 * h;
    }
    for (; n < p1; n += 2) panelRows(y, x, w, n, packed, C, cb, cb + 1, scr, M, xs, ws, ys, as, k4, kEnd, first, last);
  }
}
