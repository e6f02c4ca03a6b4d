// f32 matmul: y = x W^T.
//
// y[m, n] = sum_k x[m, k] * w[n, k]   (x: [M, K], w: [N, K], y: [M, N])
//
// EXACT PER-ELEMENT ORDER (identical in every kernel below, for every M and
// every m):
//   acc = 0
//   for k = 0 .. K - 1, in increasing order:
//       acc = madd(x[m, k], w[n, k], acc)
//   y[m, n] = acc
// where madd(a, b, c) is f32x4.relaxed_madd in the relaxed build (one fused
// multiply-add on FMA hardware) and f32x4.add(f32x4.mul(a, b), c) in the plain
// SIMD build (a product rounded to f32, then a sum rounded to f32: llama2.c's
// and the js backend's sequence). An element is one lane of an f32x4
// accumulator that holds four adjacent columns n .. n + 3 of a row, with
// x[m, k] broadcast to the four lanes (a broadcast tile, as XNNPACK's
// kernels for x86). Tiles only decide which elements are computed side by
// side; no kernel ever splits K or reorders it, so a row's result never
// depends on M, on the other rows or on how threads cut the columns.

import { madd } from "./madd";

/** Bytes of packed panels kept hot (in L2) while all row groups of a long call pass over them. */
const W_BLOCK_BYTES: usize = 256 * 1024;

// ---- packed weight panels --------------------------------------------------
//
// The backend keeps a second copy of w in panels of 4 columns, k-major: panel
// q holds columns 4q .. 4q + 3 (the last panel padded with zero columns) and
// element (n, k) sits at (q * K + k) * 16 + (n - 4q) * 4. A tile reads one
// 16-byte vector per panel and k: four columns at once, each a lane. A panel
// is one sequential memory stream, and one core's prefetchers serve each
// stream at a limited rate (one stream 14.6 GB/s, two 18.4, four 22.7 in
// one scratch measurement), so each kernel walks several panels far apart at
// once: one or two rows four panels (one row of a small matrix six, whose
// accumulators then hide the multiply-add's latency where the panels are in
// cache), three rows three, four rows two (a quad
// or triple of rows interleaved k-major first, where product has scratch for
// it, so that a tile broadcasts every row's x[k] from one address). A tile
// has at most 9 accumulators (V8 gives 15 vector registers: with the loaded
// panel vectors and the broadcast x, 12 spill and read 0.7-0.98x as fast;
// V8 loads every operand of a loop body before its multiply-adds, so even
// a rows-in-lanes tile of 12 accumulators and one x vector spills, and
// read 0.5x as fast).

/** Bytes `packPanels` writes for a [N, K] matrix. */
export function packedBytes(K: i32, N: i32): usize {
  return (<usize>((N + 3) >> 2)) * (<usize>K) << 4;
}

/** Writes the panels of w [N, K] to dst (packedBytes(K, N) bytes). */
export function packPanels(dst: usize, w: usize, K: i32, N: i32): void {
  const rowBytes = (<usize>K) << 2;
  let d = dst;
  for (let n = 0; n < N; n += 4) {
    const r0 = w + <usize>n * rowBytes;
    const r1 = n + 1 < N ? r0 + rowBytes : 0, r2 = n + 2 < N ? r0 + 2 * rowBytes : 0, r3 = n + 3 < N ? r0 + 3 * rowBytes : 0;
    for (let k: usize = 0; k < rowBytes; k += 4) {
      store<f32>(d, load<f32>(r0 + k));
      store<f32>(d, r1 ? load<f32>(r1 + k) : 0, 4);
      store<f32>(d, r2 ? load<f32>(r2 + k) : 0, 8);
      store<f32>(d, r3 ? load<f32>(r3 + k) : 0, 12);
      d += 16;
    }
  }
}

/**
 * The four lanes of a, b, c, d's lane i as vector i (a 4x4 transpose; its own
 * inverse): four rows' elements k .. k + 3 become four panel entries, and back.
 */
// @ts-ignore: decorator
@inline function transpose4(dst: usize, a: v128, b: v128, c: v128, d: v128): void {
  const ab01 = v128.shuffle<f32>(a, b, 0, 4, 1, 5), cd01 = v128.shuffle<f32>(c, d, 0, 4, 1, 5);
  const ab23 = v128.shuffle<f32>(a, b, 2, 6, 3, 7), cd23 = v128.shuffle<f32>(c, d, 2, 6, 3, 7);
  v128.store(dst, v128.shuffle<f32>(ab01, cd01, 0, 1, 4, 5));
  v128.store(dst, v128.shuffle<f32>(ab01, cd01, 2, 3, 6, 7), 16);
  v128.store(dst, v128.shuffle<f32>(ab23, cd23, 0, 1, 4, 5), 32);
  v128.store(dst, v128.shuffle<f32>(ab23, cd23, 2, 3, 6, 7), 48);
}

/**
 * Turns w [N, K] (N a multiple of 4) into its panels where it lies: the
 * panel of rows n .. n + 3 takes exactly their 4K floats, so each group of
 * four rows is copied to `scratch` (16K bytes) and written back interleaved.
 * The bytes are packPanels' (copies only, no float operation), and no
 * second copy of the matrix is made.
 */
export function packPanelsInPlace(w: usize, K: i32, N: i32, scratch: usize): void {
  const rowBytes = (<usize>K) << 2;
  const k4 = (<usize>(K & ~3)) << 2;
  for (let n = 0; n + 4 <= N; n += 4) {
    const g = w + <usize>n * rowBytes;
    memory.copy(scratch, g, rowBytes << 2);
    const r0 = scratch, r1 = r0 + rowBytes, r2 = r1 + rowBytes, r3 = r2 + rowBytes;
    let d = g;
    let k: usize = 0;
    for (; k < k4; k += 16, d += 64) transpose4(d, v128.load(r0 + k), v128.load(r1 + k), v128.load(r2 + k), v128.load(r3 + k));
    for (; k < rowBytes; k += 4, d += 16) {
      store<u32>(d, load<u32>(r0 + k));
      store<u32>(d, load<u32>(r1 + k), 4);
      store<u32>(d, load<u32>(r2 + k), 8);
      store<u32>(d, load<u32>(r3 + k), 12);
    }
  }
}

/** The inverse of packPanelsInPlace: panels back to the rows of w [N, K], where they lie. */
export function unpackPanelsInPlace(w: usize, K: i32, N: i32, scratch: usize): void {
  const rowBytes = (<usize>K) << 2;
  const k4 = (<usize>(K & ~3)) << 2;
  for (let n = 0; n + 4 <= N; n += 4) {
    const g = w + <usize>n * rowBytes;
    memory.copy(scratch, g, rowBytes << 2);
    const r0 = g, r1 = r0 + rowBytes, r2 = r1 + rowBytes, r3 = r2 + rowBytes;
    let p = scratch;
    let k: usize = 0;
    // Four panel entries (k .. k + 3) transposed are the four rows' elements k .. k + 3: written to scratch's end, then to each row.
    const tmp = scratch + (rowBytes << 2);
    for (; k < k4; k += 16, p += 64) {
      transpose4(tmp, v128.load(p), v128.load(p, 16), v128.load(p, 32), v128.load(p, 48));
      v128.store(r0 + k, v128.load(tmp));
      v128.store(r1 + k, v128.load(tmp, 16));
      v128.store(r2 + k, v128.load(tmp, 32));
      v128.store(r3 + k, v128.load(tmp, 48));
    }
    for (; k < rowBytes; k += 4, p += 16) {
      store<u32>(r0 + k, load<u32>(p));
      store<u32>(r1 + k, load<u32>(p, 4));
      store<u32>(r2 + k, load<u32>(p, 8));
      store<u32>(r3 + k, load<u32>(p, 12));
    }
  }
}

/** Bytes of the scratch that packPanelsInPlace and unpackPanelsInPlace need for K inputs. */
export function inPlaceScratchBytes(K: i32): usize {
  return ((<usize>K) << 4) + 64;
}

/** Row m's four columns n .. n + 3 from acc: a whole vector, or its first N - n lanes at the end of a row. */
// @ts-ignore: decorator
@inline function put(y: usize, n: i32, N: i32, acc: v128): void {
  const p = y + ((<usize>n) << 2);
  if (n + 4 <= N) {
    v128.store(p, acc);
  } else {
    store<f32>(p, f32x4.extract_lane(acc, 0));
    if (n + 1 < N) store<f32>(p, f32x4.extract_lane(acc, 1), 4);
    if (n + 2 < N) store<f32>(p, f32x4.extract_lane(acc, 2), 8);
  }
}

/**
 * Four columns' weights at p as f32 lanes: an f32 panel's 16 bytes, or a
 * bf16 panel's 8 (bf16.ts), widened exactly (the bits moved up 16; a
 * shuffle with zeros instead read 0.27x as fast).
 */
// @ts-ignore: decorator
@inline function lw(BF: bool, p: usize): v128 {
  return BF ? i32x4.shl(v128.load16x4_u(p), 16) : v128.load(p);
}

/**
 * One row of x times C panels `d` panels apart (C = 4 or 6, a constant at
 * every call; panel q, q + d, ..., q + (C - 1) d): C streams, C
 * accumulators. `p` is panel q's first byte and `pd` the bytes between two
 * of the panels. Four for a matrix from memory (six panels on two threads
 * read 0.96-0.97x as fast in a decode, eight 0.89-0.92x: too many streams
 * from two cores at once), six for a small one in cache (13 registers with
 * the loaded panels, no spill), whose accumulators then hide the
 * multiply-add's latency: 1.08-1.34x.
 */
// @ts-ignore: decorator
@inline function tile1xC(C: i32, BF: bool, y: usize, n: i32, N: i32, d: i32, x: usize, p: usize, pd: usize, kEnd: usize): void {
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;
  for (let k: usize = 0; k < kEnd; k += 4) {
    const v = v128.load32_splat(x + k);
    a0 = madd(v, lw(BF, p), a0);
    a1 = madd(v, lw(BF, p + pd), a1);
    a2 = madd(v, lw(BF, p + 2 * pd), a2);
    a3 = madd(v, lw(BF, p + 3 * pd), a3);
    if (C > 4) {
      a4 = madd(v, lw(BF, p + 4 * pd), a4);
      a5 = madd(v, lw(BF, p + 5 * pd), a5);
    }
    p += BF ? 8 : 16;
  }
  const dn = d << 2;
  put(y, n, N, a0);
  put(y, n + dn, N, a1);
  put(y, n + 2 * dn, N, a2);
  put(y, n + 3 * dn, N, a3);
  if (C > 4) {
    put(y, n + 4 * dn, N, a4);
    put(y, n + 5 * dn, N, a5);
  }
}

/** Two rows of x times four panels `d` apart: four streams, 8 accumulators. */
// @ts-ignore: decorator
@inline function tile2x4(BF: bool, y: usize, ys: usize, n: i32, N: i32, d: i32, x: usize, xs: usize, p: usize, pd: usize, kEnd: usize): void {
  const x1 = x + xs;
  let a0 = f32x4.splat(0), a1 = a0, b0 = a0, b1 = a0, c0 = a0, c1 = a0, d0 = a0, d1 = a0;
  for (let k: usize = 0; k < kEnd; k += 4) {
    const u = v128.load32_splat(x + k), v = v128.load32_splat(x1 + k);
    let e = lw(BF, p);
    a0 = madd(u, e, a0); a1 = madd(v, e, a1);
    e = lw(BF, p + pd);
    b0 = madd(u, e, b0); b1 = madd(v, e, b1);
    e = lw(BF, p + 2 * pd);
    c0 = madd(u, e, c0); c1 = madd(v, e, c1);
    e = lw(BF, p + 3 * pd);
    d0 = madd(u, e, d0); d1 = madd(v, e, d1);
    p += BF ? 8 : 16;
  }
  const dn = d << 2, y1 = y + ys;
  put(y, n, N, a0); put(y1, n, N, a1);
  put(y, n + dn, N, b0); put(y1, n + dn, N, b1);
  put(y, n + 2 * dn, N, c0); put(y1, n + 2 * dn, N, c1);
  put(y, n + 3 * dn, N, d0); put(y1, n + 3 * dn, N, d1);
}

/** R rows of x (R = 1 .. 4, a constant at every call) times two panels `d` apart: two streams, 2R accumulators. */
// @ts-ignore: decorator
@inline function tileRx2(R: i32, BF: bool, y: usize, ys: usize, n: i32, N: i32, d: i32, x: usize, xs: usize, p: usize, pd: usize, kEnd: usize): void {
  const x1 = x + xs, x2 = x1 + xs, x3 = x2 + xs;
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
  for (let k: usize = 0; k < kEnd; k += 4) {
    const e = lw(BF, p), f = lw(BF, p + pd);
    let v = v128.load32_splat(x + k);
    a0 = madd(v, e, a0); b0 = madd(v, f, b0);
    if (R > 1) {
      v = v128.load32_splat(x1 + k);
      a1 = madd(v, e, a1); b1 = madd(v, f, b1);
    }
    if (R > 2) {
      v = v128.load32_splat(x2 + k);
      a2 = madd(v, e, a2); b2 = madd(v, f, b2);
    }
    if (R > 3) {
      v = v128.load32_splat(x3 + k);
      a3 = madd(v, e, a3); b3 = madd(v, f, b3);
    }
    p += BF ? 8 : 16;
  }
  const dn = d << 2;
  put(y, n, N, a0); put(y, n + dn, N, b0);
  if (R > 1) { put(y + ys, n, N, a1); put(y + ys, n + dn, N, b1); }
  if (R > 2) { put(y + 2 * ys, n, N, a2); put(y + 2 * ys, n + dn, N, b2); }
  if (R > 3) { put(y + 3 * ys, n, N, a3); put(y + 3 * ys, n + dn, N, b3); }
}

/**
 * Three rows of x times three panels `d` apart: three streams, 9
 * accumulators. tileRx2 with three rows holds 6, too few to hide the
 * multiply-add's latency on two FMA pipes (a three-row call cost as much
 * as a four-row one).
 */
// @ts-ignore: decorator
@inline function tile3x3(BF: bool, y: usize, ys: usize, n: i32, N: i32, d: i32, x: usize, xs: usize, p: usize, pd: usize, kEnd: usize): void {
  const x1 = x + xs, x2 = x1 + xs;
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, b0 = a0, b1 = a0, b2 = a0, c0 = a0, c1 = a0, c2 = a0;
  for (let k: usize = 0; k < kEnd; k += 4) {
    const e = lw(BF, p), f = lw(BF, p + pd), g = lw(BF, p + 2 * pd);
    let v = v128.load32_splat(x + k);
    a0 = madd(v, e, a0); b0 = madd(v, f, b0); c0 = madd(v, g, c0);
    v = v128.load32_splat(x1 + k);
    a1 = madd(v, e, a1); b1 = madd(v, f, b1); c1 = madd(v, g, c1);
    v = v128.load32_splat(x2 + k);
    a2 = madd(v, e, a2); b2 = madd(v, f, b2); c2 = madd(v, g, c2);
    p += BF ? 8 : 16;
  }
  const dn = d << 2, y1 = y + ys, y2 = y1 + ys;
  put(y, n, N, a0); put(y, n + dn, N, b0); put(y, n + 2 * dn, N, c0);
  put(y1, n, N, a1); put(y1, n + dn, N, b1); put(y1, n + 2 * dn, N, c1);
  put(y2, n, N, a2); put(y2, n + dn, N, b2); put(y2, n + 2 * dn, N, c2);
}

/** R rows of x (R = 1 .. 4, a constant at every call) times one panel: one stream, R accumulators. */
// @ts-ignore: decorator
@inline function tileRx1(R: i32, BF: bool, y: usize, ys: usize, n: i32, N: i32, x: usize, xs: usize, p: usize, kEnd: usize): void {
  const x1 = x + xs, x2 = x1 + xs, x3 = x2 + xs;
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
  for (let k: usize = 0; k < kEnd; k += 4) {
    const e = lw(BF, p);
    a0 = madd(v128.load32_splat(x + k), e, a0);
    if (R > 1) a1 = madd(v128.load32_splat(x1 + k), e, a1);
    if (R > 2) a2 = madd(v128.load32_splat(x2 + k), e, a2);
    if (R > 3) a3 = madd(v128.load32_splat(x3 + k), e, a3);
    p += BF ? 8 : 16;
  }
  put(y, n, N, a0);
  if (R > 1) put(y + ys, n, N, a1);
  if (R > 2) put(y + 2 * ys, n, N, a2);
  if (R > 3) put(y + 3 * ys, n, N, a3);
}

/**
 * A group of G rows (G = 3 or 4, a constant at every call), k-major at xt
 * (the G rows' x[k] side by side, as interleaveGroups writes them), times
 * two panels `d` apart: two streams, 2G accumulators. Each k broadcasts
 * the G values from one address at constant offsets, where tileRx2
 * computes an address per row (V8 emits an add for each, and the tile is
 * bound by instructions, not multiply-adds).
 */
// @ts-ignore: decorator
@inline function tileGx2(G: i32, BF: bool, y: usize, ys: usize, n: i32, N: i32, d: i32, xt: usize, p: usize, pd: usize, kEnd: usize): void {
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
  const xe = xt + kEnd * G;
  let p2 = p + pd;
  for (let xk = xt; xk < xe; xk += 4 * G) {
    const e = lw(BF, p), f = lw(BF, p2);
    p2 += BF ? 8 : 16;
    let v = v128.load32_splat(xk);
    a0 = madd(v, e, a0); b0 = madd(v, f, b0);
    v = v128.load32_splat(xk, 4);
    a1 = madd(v, e, a1); b1 = madd(v, f, b1);
    v = v128.load32_splat(xk, 8);
    a2 = madd(v, e, a2); b2 = madd(v, f, b2);
    if (G > 3) {
      v = v128.load32_splat(xk, 12);
      a3 = madd(v, e, a3); b3 = madd(v, f, b3);
    }
    p += BF ? 8 : 16;
  }
  const dn = d << 2;
  put(y, n, N, a0); put(y, n + dn, N, b0);
  put(y + ys, n, N, a1); put(y + ys, n + dn, N, b1);
  put(y + 2 * ys, n, N, a2); put(y + 2 * ys, n + dn, N, b2);
  if (G > 3) { put(y + 3 * ys, n, N, a3); put(y + 3 * ys, n + dn, N, b3); }
}

/** A group of G rows (k-major at xt) times one panel: one stream, G accumulators. */
// @ts-ignore: decorator
@inline function tileGx1(G: i32, BF: bool, y: usize, ys: usize, n: i32, N: i32, xt: usize, p: usize, kEnd: usize): void {
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
  const xe = xt + kEnd * G;
  for (let xk = xt; xk < xe; xk += 4 * G) {
    const e = lw(BF, p);
    a0 = madd(v128.load32_splat(xk), e, a0);
    a1 = madd(v128.load32_splat(xk, 4), e, a1);
    a2 = madd(v128.load32_splat(xk, 8), e, a2);
    if (G > 3) a3 = madd(v128.load32_splat(xk, 12), e, a3);
    p += BF ? 8 : 16;
  }
  put(y, n, N, a0);
  put(y + ys, n, N, a1);
  put(y + 2 * ys, n, N, a2);
  if (G > 3) put(y + 3 * ys, n, N, a3);
}

/**
 * A triple of rows (k-major at xt) times three panels `d` apart: three
 * streams, 9 accumulators (tile3x3 with x read from one address; 1.19-1.23x
 * as fast on weights from memory at K >= 768, bench/gemm-ab.ts --rows 3
 * --cold, docs/BENCHMARKS.md).
 */
// @ts-ignore: decorator
@inline function tileT3x3(BF: bool, y: usize, ys: usize, n: i32, N: i32, d: i32, xt: usize, p: usize, pd: usize, kEnd: usize): void {
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, b0 = a0, b1 = a0, b2 = a0, c0 = a0, c1 = a0, c2 = a0;
  const xe = xt + kEnd * 3;
  let p1 = p + pd, p2 = p1 + pd;
  for (let xk = xt; xk < xe; xk += 12) {
    const e = lw(BF, p), f = lw(BF, p1), g = lw(BF, p2);
    let v = v128.load32_splat(xk);
    a0 = madd(v, e, a0); b0 = madd(v, f, b0); c0 = madd(v, g, c0);
    v = v128.load32_splat(xk, 4);
    a1 = madd(v, e, a1); b1 = madd(v, f, b1); c1 = madd(v, g, c1);
    v = v128.load32_splat(xk, 8);
    a2 = madd(v, e, a2); b2 = madd(v, f, b2); c2 = madd(v, g, c2);
    p += BF ? 8 : 16; p1 += BF ? 8 : 16; p2 += BF ? 8 : 16;
  }
  const dn = d << 2, y1 = y + ys, y2 = y1 + ys;
  put(y, n, N, a0); put(y, n + dn, N, b0); put(y, n + 2 * dn, N, c0);
  put(y1, n, N, a1); put(y1, n + dn, N, b1); put(y1, n + 2 * dn, N, c1);
  put(y2, n, N, a2); put(y2, n + dn, N, b2); put(y2, n + 2 * dn, N, c2);
}

/**
 * A group of G rows (k-major at xt) over panels q0 .. q1-1: a quad on two
 * streams, the panel left over alone; a triple on three, the two left over
 * side by side, then one alone.
 */
// @ts-ignore: decorator
@inline function groupOverPanels(G: i32, BF: bool, y: usize, ys: usize, N: i32, xt: usize, packed: usize, q0: i32, q1: i32, kEnd: usize): void {
  const pb = BF ? kEnd << 1 : kEnd << 2;
  const S = G > 3 ? 2 : 3;
  const d = (q1 - q0) / S;
  const pd = <usize>d * pb;
  let q = q0;
  for (; q < q0 + d; q++) {
    if (G > 3) tileGx2(4, BF, y, ys, q << 2, N, d, xt, packed + <usize>q * pb, pd, kEnd);
    else tileT3x3(BF, y, ys, q << 2, N, d, xt, packed + <usize>q * pb, pd, kEnd);
  }
  q = q0 + S * d;
  if (G == 3 && q + 2 <= q1) {
    tileGx2(3, BF, y, ys, q << 2, N, 1, xt, packed + <usize>q * pb, pb, kEnd);
    q += 2;
  }
  for (; q < q1; q++) tileGx1(G, BF, y, ys, q << 2, N, xt, packed + <usize>q * pb, kEnd);
}

/**
 * Stores the 4 x 4 transpose of four vectors of 32-bit lanes at o (64
 * bytes): vector j of the result holds lane j of r0, r1, r2 and r3. The
 * quads of x are made with it (here, and int8.ts's k pairs).
 */
// @ts-ignore: decorator
@inline export function storeTransposed4x4(o: usize, r0: v128, r1: v128, r2: v128, r3: v128): void {
  const lo01 = i32x4.shuffle(r0, r1, 0, 4, 1, 5), lo23 = i32x4.shuffle(r2, r3, 0, 4, 1, 5);
  const hi01 = i32x4.shuffle(r0, r1, 2, 6, 3, 7), hi23 = i32x4.shuffle(r2, r3, 2, 6, 3, 7);
  v128.store(o, i32x4.shuffle(lo01, lo23, 0, 1, 4, 5));
  v128.store(o, i32x4.shuffle(lo01, lo23, 2, 3, 6, 7), 16);
  v128.store(o, i32x4.shuffle(hi01, hi23, 0, 1, 4, 5), 32);
  v128.store(o, i32x4.shuffle(hi01, hi23, 2, 3, 6, 7), 48);
}

/**
 * How many quads of rows the kernels take out of M rows: M / 4 rounded
 * down, but one fewer when a lone row would be left over (M = 4Q + 1, Q >=
 * 1): the last five rows go as a triple and a pair (tileT3x3 or tile3x3, tile2x4),
 * whose tiles keep both FMA pipes busy where a lone row's (tile1xC) keeps
 * half of them. M = 9 and 13 gained 1.05-1.09x on cold weights; M = 5,
 * whose first group reads the weights from memory either way, ran the
 * same (bench/gemm-ab.ts, docs/BENCHMARKS.md).
 */
// @ts-ignore: decorator
@inline function quadsOf(M: i32): i32 {
  const Q = M >> 2;
  return (M & 3) == 1 && Q >= 1 ? Q - 1 : Q;
}

/**
 * Rows m .. m + 2 of x, k-major at dst (row r's x[k] at dst + 12 k + 4 r):
 * a triple as tileT3x3 reads it.
 */
// @ts-ignore: decorator
@inline function interleaveTriple(dst: usize, x: usize, rowBytes: usize): void {
  for (let k: usize = 0; k < rowBytes; k += 4) {
    store<f32>(dst, load<f32>(x + k));
    store<f32>(dst, load<f32>(x + rowBytes + k), 4);
    store<f32>(dst, load<f32>(x + 2 * rowBytes + k), 8);
    dst += 12;
  }
}

/**
 * Writes x [M, K] (M >= 3) as the group tiles read it: rows 0 .. 4Q-1 (Q =
 * quadsOf(M)) as quads, k-major (quad t's four values of k at dst + (t K +
 * k) 16), then three of the rows after them (when three or five are left)
 * as a triple, k-major (at dst + 4Q K 4 + 12 k), then the rest (two rows)
 * as they are. Each group starts where its first row starts in x. A copy:
 * the values and so the products are unchanged.
 */
export function interleaveGroups(dst: usize, x: usize, M: i32, K: i32): void {
  const rowBytes = (<usize>K) << 2;
  const Q = quadsOf(M);
  for (let t = 0; t < Q; t++) {
    const r0 = x + (<usize>(4 * t)) * rowBytes, r1 = r0 + rowBytes, r2 = r1 + rowBytes, r3 = r2 + rowBytes;
    let d = dst + (<usize>t) * (rowBytes << 2);
    let k: usize = 0;
    // Four k's at a time: a 4 x 4 transpose.
    for (; k + 16 <= rowBytes; k += 16) {
      storeTransposed4x4(d, v128.load(r0 + k), v128.load(r1 + k), v128.load(r2 + k), v128.load(r3 + k));
      d += 64;
    }
    for (; k < rowBytes; k += 4) {
      store<f32>(d, load<f32>(r0 + k));
      store<f32>(d, load<f32>(r1 + k), 4);
      store<f32>(d, load<f32>(r2 + k), 8);
      store<f32>(d, load<f32>(r3 + k), 12);
      d += 16;
    }
  }
  let done = (<usize>(4 * Q)) * rowBytes;
  const left = M - 4 * Q;
  if (left == 3 || left == 5) {
    interleaveTriple(dst + done, x + done, rowBytes);
    done += 3 * rowBytes;
  }
  memory.copy(dst + done, x + done, (<usize>M) * rowBytes - done);
}

/**
 * R rows of x (R = 1 .. 4, a constant at every call) over panels q0 .. q1-1:
 * the panels cut into S groups far apart (S streams: 4 for one or two rows,
 * 6 for one row of a small matrix, 3 for three, 2 for four), the few left
 * over one at a time (three rows: two side by side; one row of a small
 * matrix: four, then two, side by side).
 */
// @ts-ignore: decorator
@inline function rowsOverPanels(R: i32, BF: bool, y: usize, ys: usize, N: i32, x: usize, xs: usize, packed: usize, q0: i32, q1: i32, kEnd: usize): void {
  const pb = BF ? kEnd << 1 : kEnd << 2; // bytes per panel
  let q = q0;
  // One row of a small matrix (its panels within W_BLOCK_BYTES: warm in the caches in a small
  // model's step, and never split over threads) on six streams; a large one on four.
  if (R == 1 && <usize>((N + 3) >> 2) * pb <= W_BLOCK_BYTES) {
    const d6 = (q1 - q0) / 6;
    for (; q < q0 + d6; q++) tile1xC(6, BF, y, q << 2, N, d6, x, packed + <usize>q * pb, <usize>d6 * pb, kEnd);
    q = q0 + 6 * d6;
    if (q + 4 <= q1) {
      tile1xC(4, BF, y, q << 2, N, 1, x, packed + <usize>q * pb, pb, kEnd);
      q += 4;
    }
    if (q + 2 <= q1) {
      tileRx2(1, BF, y, ys, q << 2, N, 1, x, xs, packed + <usize>q * pb, pb, kEnd);
      q += 2;
    }
    for (; q < q1; q++) tileRx1(1, BF, y, ys, q << 2, N, x, xs, packed + <usize>q * pb, kEnd);
    return;
  }
  const S = R <= 2 ? 4 : R == 3 ? 3 : 2;
  const d = (q1 - q0) / S;
  const pd = <usize>d * pb;
  for (; q < q0 + d; q++) {
    const p = packed + <usize>q * pb;
    if (R == 1) tile1xC(4, BF, y, q << 2, N, d, x, p, pd, kEnd);
    else if (R == 2) tile2x4(BF, y, ys, q << 2, N, d, x, xs, p, pd, kEnd);
    else if (R == 3) tile3x3(BF, y, ys, q << 2, N, d, x, xs, p, pd, kEnd);
    else tileRx2(R, BF, y, ys, q << 2, N, d, x, xs, p, pd, kEnd);
  }
  q = q0 + S * d;
  // Three rows: two panels left over go side by side.
  if (R == 3 && q + 2 <= q1) {
    tileRx2(3, BF, y, ys, q << 2, N, 1, x, xs, packed + <usize>q * pb, pb, kEnd);
    q += 2;
  }
  for (; q < q1; q++) tileRx1(R, BF, y, ys, q << 2, N, x, xs, packed + <usize>q * pb, kEnd);
}

/** The rows m .. m + R - 1 (R = 1 .. 4, not a constant) over f32 panels q0 .. q1-1. */
function rowGroupF32(R: i32, y: usize, ys: usize, N: i32, x: usize, xs: usize, packed: usize, q0: i32, q1: i32, kEnd: usize): void {
  if (R >= 4) rowsOverPanels(4, false, y, ys, N, x, xs, packed, q0, q1, kEnd);
  else if (R == 3) rowsOverPanels(3, false, y, ys, N, x, xs, packed, q0, q1, kEnd);
  else if (R == 2) rowsOverPanels(2, false, y, ys, N, x, xs, packed, q0, q1, kEnd);
  else rowsOverPanels(1, false, y, ys, N, x, xs, packed, q0, q1, kEnd);
}

/** rowGroupF32 over bf16 panels (bf16.ts). */
function rowGroupBf16(R: i32, y: usize, ys: usize, N: i32, x: usize, xs: usize, packed: usize, q0: i32, q1: i32, kEnd: usize): void {
  if (R >= 4) rowsOverPanels(4, true, y, ys, N, x, xs, packed, q0, q1, kEnd);
  else if (R == 3) rowsOverPanels(3, true, y, ys, N, x, xs, packed, q0, q1, kEnd);
  else if (R == 2) rowsOverPanels(2, true, y, ys, N, x, xs, packed, q0, q1, kEnd);
  else rowsOverPanels(1, true, y, ys, N, x, xs, packed, q0, q1, kEnd);
}

/** A group of G = 3 or 4 rows over f32 panels (groupOverPanels with G and BF constants, so the tiles hold no branch on them). */
function groupF32(G: i32, y: usize, ys: usize, N: i32, xt: usize, packed: usize, q0: i32, q1: i32, kEnd: usize): void {
  if (G > 3) groupOverPanels(4, false, y, ys, N, xt, packed, q0, q1, kEnd);
  else groupOverPanels(3, false, y, ys, N, xt, packed, q0, q1, kEnd);
}

/** groupF32 over bf16 panels. */
function groupBf16(G: i32, y: usize, ys: usize, N: i32, xt: usize, packed: usize, q0: i32, q1: i32, kEnd: usize): void {
  if (G > 3) groupOverPanels(4, true, y, ys, N, xt, packed, q0, q1, kEnd);
  else groupOverPanels(3, true, y, ys, N, xt, packed, q0, q1, kEnd);
}

/**
 * Columns c0 .. c1-1 from packed panels, f32 (BF false) or bf16 (BF true),
 * x row by row, or (grouped) as interleaveGroups wrote it. Up to four rows
 * walk every panel once; more rows go four at a time over blocks of panels
 * that stay in L2 (W_BLOCK_BYTES) while all of them pass, so only the first
 * group reads the block from memory.
 */
export function gemmPanels(BF: bool, y: usize, x: usize, packed: usize, M: i32, K: i32, N: i32, c0: i32, c1: i32, grouped: bool = false): void {
  const kEnd = (<usize>K) << 2;
  const xs = kEnd, ys = (<usize>N) << 2;
  const q0 = c0 >> 2, q1 = (c1 + 3) >> 2;
  const Q = grouped ? quadsOf(M) : 0;
  if (M <= 4) {
    if (grouped && M >= 3) {
      if (BF) groupBf16(M, y, ys, N, x, packed, q0, q1, kEnd);
      else groupF32(M, y, ys, N, x, packed, q0, q1, kEnd);
    }
    else if (BF) rowGroupBf16(M, y, ys, N, x, xs, packed, q0, q1, kEnd);
    else rowGroupF32(M, y, ys, N, x, xs, packed, q0, q1, kEnd);
    return;
  }
  // Panels per block: whole pairs (the two streams of a four-row group), at least two.
  const nb = max<i32>(2, <i32>(W_BLOCK_BYTES / (BF ? kEnd << 1 : kEnd << 2)) & ~1);
  for (let b = q0; b < q1; b += nb) {
    const e = min<i32>(q1, b + nb);
    for (let t = 0; t < Q; t++) {
      const yt = y + <usize>(4 * t) * ys, xt = x + <usize>t * (kEnd << 2);
      if (BF) groupBf16(4, yt, ys, N, xt, packed, b, e, kEnd);
      else groupF32(4, yt, ys, N, xt, packed, b, e, kEnd);
    }
    // The rows after the quads in groups of up to four; five left go as three, then two (quadsOf).
    for (let m = 4 * Q; m < M; ) {
      const R = M - m == 5 ? 3 : min<i32>(4, M - m);
      const ym = y + <usize>m * ys, xm = x + <usize>m * xs;
      if (grouped && R == 3) {
        if (BF) groupBf16(3, ym, ys, N, xm, packed, b, e, kEnd);
        else groupF32(3, ym, ys, N, xm, packed, b, e, kEnd);
      }
      else if (BF) rowGroupBf16(R, ym, ys, N, xm, xs, packed, b, e, kEnd);
      else rowGroupF32(R, ym, ys, N, xm, xs, packed, b, e, kEnd);
      m += R;
    }
  }
}

/**
 * Columns c0 .. c1-1 straight from w (no panels), one row and four columns
 * at a time: the same sequence per element (the reference for the panel
 * kernels, and the path for a weight without panels).
 */
function gemmRows(y: usize, x: usize, w: usize, M: i32, K: i32, N: i32, c0: i32, c1: i32): void {
  const kEnd = (<usize>K) << 2;
  const ys = (<usize>N) << 2;
  for (let m = 0; m < M; m++) {
    const xm = x + <usize>m * kEnd, ym = y + <usize>m * ys;
    for (let n = c0; n < c1; n += 4) {
      const r0 = w + <usize>n * kEnd;
      const r1 = n + 1 < N ? r0 + kEnd : r0, r2 = n + 2 < N ? r0 + 2 * kEnd : r0, r3 = n + 3 < N ? r0 + 3 * kEnd : r0;
      let a = f32x4.splat(0);
      for (let k: usize = 0; k < kEnd; k += 4) {
        let e = f32x4.splat(load<f32>(r0 + k));
        e = f32x4.replace_lane(e, 1, load<f32>(r1 + k));
        e = f32x4.replace_lane(e, 2, load<f32>(r2 + k));
        e = f32x4.replace_lane(e, 3, load<f32>(r3 + k));
        a = madd(v128.load32_splat(xm + k), e, a);
      }
      put(ym, n, min<i32>(N, c1), a);
    }
  }
}

/** y = x W^T straight from w; see the order comment above. Pointers are byte addresses. */
export function matmul(y: usize, x: usize, w: usize, M: i32, K: i32, N: i32): void {
  gemm(y, x, w, 0, M, K, N, 0, N);
}

/**
 * Columns n0 .. n1-1 of y = x W^T (y keeps its full row stride N). `packed`
 * is 0 or the panels `packPanels` made of this very w; n0 is a multiple of 4
 * and so is n1 unless it is N. Threads call this on disjoint column ranges:
 * K is never split.
 */
export function gemm(y: usize, x: usize, w: usize, packed: usize, M: i32, K: i32, N: i32, n0: i32, n1: i32): void {
  if (M <= 0 || n1 <= n0) return;
  if (packed != 0) gemmPanels(false, y, x, packed, M, K, N, n0, n1);
  else gemmRows(y, x, w, M, K, N, n0, n1);
}
