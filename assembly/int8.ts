// int8 weights: the `weights: "int8"` option of the wasm backend (llama2.c's
// runq.c scheme, with a fixed per-element order).
//
// GROUPS: K is cut into groups of GS = 32 consecutive k's; the last group
// holds the K % 32 remainder when K is not a multiple of 32 (so any K works).
// A group of values v (a row of w at upload, a row of x in every matmul) is
// quantised symmetrically:
//   amax  = max |v_i|                       (f32; 0 for an all-zero group)
//   scale = amax / 127                      (f32 division)
//   q_i   = clamp(nearest(v_i / scale), -127, 127)
//           (f32 division, round to nearest, ties to even; NaN -> 0)
// EXACT PER-ELEMENT ORDER of y[m, n], the same in every tile, for every M:
//   acc = 0
//   for g = 0 .. G-1, in increasing order:
//       isum = sum over the group of qx[m, k] * qw[n, k]   (exact, i32)
//       acc  = acc + (f32(isum) * sw[n, g]) * sx[m, g]     (f32 mul, mul, add)
//   y[m, n] = acc
// The integer sums are exact whatever the lane order; the float steps are
// plain f32 operations (no fused multiply-add), so both builds give the same
// bits, each row depends on its own x row alone (batch invariance), and a
// column range computed by any thread is the same (thread invariance).
//
// LAYOUTS. Weight panels (made once per weight, packPanelsInt8): panel p
// holds rows 4p .. 4p+3 (rows past N are zero with scale 0); for each group
// g a 144-byte block: 16 k pairs of 8 bytes, pair j holding the four rows'
// values 2j and 2j + 1 side by side (row r at bytes 8 j + 2 r and 8 j + 2 r
// + 1; zero past K), then the four rows' scales as f32x4 at byte 128.
// Quantised x (quantizeRowsInt8, per matmul), values as i16 (zero past K):
// - with M >= 4, rows 0 .. 4Q-1 (Q = M / 4, rounded down) go as quads of four
//   rows interleaved: quad t, group g is a 272-byte block at xq + (t G + g)
//   272, k pair j of the group holding the four rows' pairs side by side
//   (row r's two values at 16 j + 4 r), then the four rows' scales as f32x4
//   at byte 256;
// - the M - 4Q rows after them go row by row from xr = xq + Q G 272: row i's
//   values at xr + i G 64, its scales as f32 at xr + (M - 4Q) G 64 + i G 4.
// A decode's single row is thus laid out as it always was.
//
// KERNEL SHAPE. A k pair of one x row (two i16, one 32-bit load) is
// broadcast to the four lanes and multiplied with a panel's pair block by
// i32x4.dot_i16x8_s: lane r gets x[k] w[r, k] + x[k+1] w[r, k+1], so the
// four columns' integer sums build up in the lanes with no horizontal sums
// (XNNPACK's broadcast tiles, with the pair dot standing in for the FMA).
// Tiles: one row x four panels far apart (four memory streams for a decode),
// a quad of rows x two panels for more rows (a pair block widened once for
// all four, the quad's four pairs one 16-byte load that a lane shuffle
// broadcasts), and up to three rows x two panels for the rows after the
// quads. These replaced kernels over row-major groups that summed lanes
// across at the end: the same bits, 1.2-1.4x as fast for one row and
// 1.5-2.2x for more (docs/BENCHMARKS.md, nineteenth session); the quads
// cut the address arithmetic V8 emits per k pair of a row-by-row tile
// (twentieth session).

import { storeTransposed4x4 } from "./gemm";

export const GS: i32 = 32;
const BLOCK: usize = 144;
const W_BLOCK_BYTES: usize = 256 * 1024;

/** Groups along K. */
// @ts-ignore: decorator
@inline function groups(K: i32): i32 {
  return (K + GS - 1) / GS;
}

/** The group size (for the TypeScript side). */
export function int8GroupSize(): i32 {
  return GS;
}

/** The scale of the n f32 values at p: max |v| / 127. */
// @ts-ignore: decorator
@inline function groupScale(p: usize, n: i32): f32 {
  let amax: f32 = 0;
  for (let i = 0; i < n; i++) amax = max<f32>(amax, abs<f32>(load<f32>(p + ((<usize>i) << 2))));
  return amax / 127;
}

/** v quantised with `scale` (see the rule above). */
// @ts-ignore: decorator
@inline function quant(v: f32, scale: f32): i32 {
  const r = min<f32>(127, max<f32>(-127, nearest<f32>(v / scale)));
  return r != r ? 0 : <i32>r;
}

/** Where a panel's row r (0 .. 3), value i (0 .. 31) of a group sits in its block: k pairs interleaved by row. */
// @ts-ignore: decorator
@inline function at(r: i32, i: i32): usize {
  return <usize>((i >> 1) * 8 + r * 2 + (i & 1));
}

/** Bytes `packPanelsInt8` writes for a [N, K] matrix. */
export function packedBytesInt8(K: i32, N: i32): usize {
  return (<usize>((N + 3) >> 2)) * (<usize>groups(K)) * BLOCK;
}

/** Writes the int8 panels of w [N, K] to dst (packedBytesInt8(K, N) bytes). */
export function packPanelsInt8(dst: usize, w: usize, K: i32, N: i32): void {
  const G = groups(K);
  const rowBytes = (<usize>K) << 2;
  let d = dst;
  for (let p = 0; p < N; p += 4) {
    for (let g = 0; g < G; g++) {
      const k0 = g * GS, n = min<i32>(GS, K - k0);
      for (let r = 0; r < 4; r++) {
        const row = p + r;
        let scale: f32 = 0;
        let i = 0;
        if (row < N) {
          const src = w + <usize>row * rowBytes + ((<usize>k0) << 2);
          scale = groupScale(src, n);
          for (; i < n; i++) store<i8>(d + at(r, i), <i8>quant(load<f32>(src + ((<usize>i) << 2)), scale));
        }
        for (; i < GS; i++) store<i8>(d + at(r, i), 0);
        store<f32>(d + 128 + <usize>(r << 2), scale);
      }
      d += BLOCK;
    }
  }
}

/** Eight values at p (f32) quantised with the splat scale s, as i16 lanes: quant() lane by lane. */
// @ts-ignore: decorator
@inline function quant8(p: usize, s: v128): v128 {
  const lo = quant4(v128.load(p), s), hi = quant4(v128.load(p, 16), s);
  return i16x8.narrow_i32x4_s(lo, hi);
}

/** quant() on four lanes: the same f32 division, rounding and clamp (max and min keep a NaN), then NaN -> 0. */
// @ts-ignore: decorator
@inline function quant4(v: v128, s: v128): v128 {
  const r = f32x4.min(f32x4.splat(127), f32x4.max(f32x4.splat(-127), f32x4.nearest(f32x4.div(v, s))));
  return i32x4.trunc_sat_f32x4_s(v128.and(r, f32x4.eq(r, r)));
}

/**
 * A whole group of 32 values at src quantised to i16 at q, vector by vector:
 * the same bits as groupScale and quant() one by one (the maximum of |v| is
 * exact in any order, a NaN anywhere makes it NaN as the scalar max does).
 * Returns the scale.
 */
// @ts-ignore: decorator
@inline function quantGroup32(q: usize, src: usize): f32 {
  let a = f32x4.max(f32x4.abs(v128.load(src)), f32x4.abs(v128.load(src, 16)));
  a = f32x4.max(a, f32x4.max(f32x4.abs(v128.load(src, 32)), f32x4.abs(v128.load(src, 48))));
  a = f32x4.max(a, f32x4.max(f32x4.abs(v128.load(src, 64)), f32x4.abs(v128.load(src, 80))));
  a = f32x4.max(a, f32x4.max(f32x4.abs(v128.load(src, 96)), f32x4.abs(v128.load(src, 112))));
  const amax = max<f32>(max<f32>(max<f32>(<f32>0, f32x4.extract_lane(a, 0)), f32x4.extract_lane(a, 1)), max<f32>(f32x4.extract_lane(a, 2), f32x4.extract_lane(a, 3)));
  const scale = amax / 127;
  const s = f32x4.splat(scale);
  v128.store(q, quant8(src, s));
  v128.store(q, quant8(src + 32, s), 16);
  v128.store(q, quant8(src + 64, s), 32);
  v128.store(q, quant8(src + 96, s), 48);
  return scale;
}

/** Bytes of the quantised rows quantizeRowsInt8 writes for [M, K] (quads and rows alike: 68 bytes a row and group). */
export function quantizedRowsBytes(M: i32, K: i32): usize {
  return (<usize>M) * (<usize>groups(K)) * (64 + 4);
}

/** Quantises one group of a row (n = min(GS, K - k0) values at src) to i16 at q (GS values, zero past n); returns its scale. */
// @ts-ignore: decorator
@inline function quantGroup(q: usize, src: usize, n: i32): f32 {
  if (n == GS) return quantGroup32(q, src);
  const scale = groupScale(src, n);
  let i = 0;
  for (; i < n; i++) store<i16>(q + ((<usize>i) << 1), <i16>quant(load<f32>(src + ((<usize>i) << 2)), scale));
  for (; i < GS; i++) store<i16>(q + ((<usize>i) << 1), 0);
  return scale;
}

/**
 * Quantises x [M, K] per row and group into the layout above: quads of rows
 * interleaved pair by pair, then the rows left over row by row.
 */
export function quantizeRowsInt8(dst: usize, x: usize, M: i32, K: i32): void {
  const G = groups(K);
  const rowBytes = (<usize>K) << 2;
  const Q = M >> 2;
  // Quads: each row's group row-major into the block, then a 4 x 4 transpose of k pairs (i32 lanes) per 4 pairs.
  for (let t = 0; t < Q; t++) {
    for (let g = 0; g < G; g++) {
      const k0 = g * GS, n = min<i32>(GS, K - k0);
      const b = dst + (<usize>(t * G + g)) * 272;
      for (let r = 0; r < 4; r++) {
        const src = x + (<usize>(4 * t + r)) * rowBytes + ((<usize>k0) << 2);
        store<f32>(b + 256 + (<usize>r << 2), quantGroup(b + (<usize>r << 6), src, n));
      }
      // Every vector is read before any is written: the block is transposed in place.
      const a0 = v128.load(b), a1 = v128.load(b, 16), a2 = v128.load(b, 32), a3 = v128.load(b, 48);
      const b0 = v128.load(b, 64), b1 = v128.load(b, 80), b2 = v128.load(b, 96), b3 = v128.load(b, 112);
      const c0 = v128.load(b, 128), c1 = v128.load(b, 144), c2 = v128.load(b, 160), c3 = v128.load(b, 176);
      const d0 = v128.load(b, 192), d1 = v128.load(b, 208), d2 = v128.load(b, 224), d3 = v128.load(b, 240);
      storeTransposed4x4(b, a0, b0, c0, d0);
      storeTransposed4x4(b + 64, a1, b1, c1, d1);
      storeTransposed4x4(b + 128, a2, b2, c2, d2);
      storeTransposed4x4(b + 192, a3, b3, c3, d3);
    }
  }
  // The rows after the quads, row by row.
  const R = M - 4 * Q;
  const xr = dst + (<usize>(Q * G)) * 272;
  const sx = xr + (<usize>R) * (<usize>G) * 64;
  for (let i = 0; i < R; i++) {
    const src0 = x + (<usize>(4 * Q + i)) * rowBytes;
    const qr = xr + <usize>(i * G) * 64;
    for (let g = 0; g < G; g++) {
      const k0 = g * GS;
      store<f32>(sx + (<usize>(i * G + g) << 2), quantGroup(qr + <usize>g * 64, src0 + ((<usize>k0) << 2), min<i32>(GS, K - k0)));
    }
  }
}

/** acc + (f32(isum) * sw) * sx, lane-wise (the order above). */
// @ts-ignore: decorator
@inline function step(acc: v128, isum: v128, sw: v128, sx: f32): v128 {
  return f32x4.add(acc, f32x4.mul(f32x4.mul(f32x4.convert_i32x4_s(isum), sw), f32x4.splat(sx)));
}

/** Stores the 4 columns n .. n+3 of acc at y (only those below N). */
// @ts-ignore: decorator
@inline function store4(y: usize, acc: v128, n: i32, N: i32): void {
  if (n + 4 <= N) {
    v128.store(y, acc);
  } else {
    store<f32>(y, f32x4.extract_lane(acc, 0));
    if (n + 1 < N) store<f32>(y, f32x4.extract_lane(acc, 1), 4);
    if (n + 2 < N) store<f32>(y, f32x4.extract_lane(acc, 2), 8);
  }
}

/** acc + one k pair's exact products: u (an x pair broadcast) against e (a pair block widened to i16), a column per lane. */
// @ts-ignore: decorator
@inline function pairDot(acc: v128, u: v128, e: v128): v128 {
  return i32x4.add(acc, i32x4.dot_i16x8_s(u, e));
}

/**
 * R rows of quantised x (R = 1 .. 3, a constant) times C panels `pd` bytes
 * apart (C = 1, 2 or 4, a constant; C = 4 only with R = 1): C streams,
 * R x C column quads. Each k pair broadcasts a row's two i16 values to the
 * lanes and multiplies them with a panel's pair of weights per column
 * (i32x4.dot_i16x8_s): no horizontal sums.
 */
// @ts-ignore: decorator
@inline function qtile(R: i32, C: i32, y: usize, ys: usize, xq: usize, xs: usize, sx: usize, sxs: usize, p: usize, pd: usize, G: i32, n: i32, dn: i32, N: i32): void {
  let f0 = f32x4.splat(0), f1 = f0, f2 = f0, f3 = f0, h0 = f0, h1 = f0, k0 = f0, k1 = f0;
  let xr = xq;
  for (let g = 0; g < G; g++) {
    let a0 = i32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, c0 = a0, c1 = a0;
    // j: the k pair's byte offset in the panel's group block (8 bytes a pair); its x pair is at j / 2 (4 bytes).
    for (let j: usize = 0; j < 128; j += 8) {
      const xj = xr + (j >> 1);
      const e0 = v128.load8x8_s(p + j);
      const e1 = C > 1 ? v128.load8x8_s(p + pd + j) : e0;
      let u = v128.load32_splat(xj);
      a0 = pairDot(a0, u, e0);
      if (C > 1) a1 = pairDot(a1, u, e1);
      if (C > 2) {
        a2 = pairDot(a2, u, v128.load8x8_s(p + 2 * pd + j));
        a3 = pairDot(a3, u, v128.load8x8_s(p + 3 * pd + j));
      }
      if (R > 1) {
        u = v128.load32_splat(xj + xs);
        b0 = pairDot(b0, u, e0);
        if (C > 1) b1 = pairDot(b1, u, e1);
      }
      if (R > 2) {
        u = v128.load32_splat(xj + 2 * xs);
        c0 = pairDot(c0, u, e0);
        if (C > 1) c1 = pairDot(c1, u, e1);
      }
    }
    const gs = (<usize>g) << 2;
    const w0 = v128.load(p, 128), w1 = C > 1 ? v128.load(p + pd, 128) : w0;
    const s0 = load<f32>(sx + gs);
    f0 = step(f0, a0, w0, s0);
    if (C > 1) f1 = step(f1, a1, w1, s0);
    if (C > 2) {
      f2 = step(f2, a2, v128.load(p + 2 * pd, 128), s0);
      f3 = step(f3, a3, v128.load(p + 3 * pd, 128), s0);
    }
    if (R > 1) {
      const s1 = load<f32>(sx + sxs + gs);
      h0 = step(h0, b0, w0, s1);
      if (C > 1) h1 = step(h1, b1, w1, s1);
    }
    if (R > 2) {
      const s2 = load<f32>(sx + 2 * sxs + gs);
      k0 = step(k0, c0, w0, s2);
      if (C > 1) k1 = step(k1, c1, w1, s2);
    }
    p += BLOCK;
    xr += 64;
  }
  const ds = (<usize>dn) << 2;
  store4(y, f0, n, N);
  if (C > 1) store4(y + ds, f1, n + dn, N);
  if (C > 2) {
    store4(y + 2 * ds, f2, n + 2 * dn, N);
    store4(y + 3 * ds, f3, n + 3 * dn, N);
  }
  if (R > 1) {
    store4(y + ys, h0, n, N);
    if (C > 1) store4(y + ys + ds, h1, n + dn, N);
  }
  if (R > 2) {
    store4(y + 2 * ys, k0, n, N);
    if (C > 1) store4(y + 2 * ys + ds, k1, n + dn, N);
  }
}

/**
 * A quad of rows (its interleaved blocks at xt) times C panels `pd` bytes
 * apart (C = 1 or 2, a constant): per k pair, one 16-byte load holds the
 * four rows' pairs and a lane shuffle broadcasts each (qtile's arithmetic,
 * the same bits, with one x address a pair instead of four).
 */
// @ts-ignore: decorator
@inline function qquad(C: i32, y: usize, ys: usize, xt: usize, p: usize, pd: usize, G: i32, n: i32, dn: i32, N: i32): void {
  let f0 = f32x4.splat(0), f1 = f0, h0 = f0, h1 = f0, k0 = f0, k1 = f0, l0 = f0, l1 = f0;
  let xg = xt;
  for (let g = 0; g < G; g++) {
    let a0 = i32x4.splat(0), a1 = a0, b0 = a0, b1 = a0, c0 = a0, c1 = a0, d0 = a0, d1 = a0;
    let xj = xg;
    const pe = p + 128;
    for (let pj = p; pj < pe; pj += 8) {
      const e0 = v128.load8x8_s(pj);
      const e1 = C > 1 ? v128.load8x8_s(pj + pd) : e0;
      const xx = v128.load(xj);
      let u = i32x4.shuffle(xx, xx, 0, 0, 0, 0);
      a0 = pairDot(a0, u, e0);
      if (C > 1) a1 = pairDot(a1, u, e1);
      u = i32x4.shuffle(xx, xx, 1, 1, 1, 1);
      b0 = pairDot(b0, u, e0);
      if (C > 1) b1 = pairDot(b1, u, e1);
      u = i32x4.shuffle(xx, xx, 2, 2, 2, 2);
      c0 = pairDot(c0, u, e0);
      if (C > 1) c1 = pairDot(c1, u, e1);
      u = i32x4.shuffle(xx, xx, 3, 3, 3, 3);
      d0 = pairDot(d0, u, e0);
      if (C > 1) d1 = pairDot(d1, u, e1);
      xj += 16;
    }
    const w0 = v128.load(p, 128), w1 = C > 1 ? v128.load(p + pd, 128) : w0;
    const s0 = load<f32>(xg, 256), s1 = load<f32>(xg, 260), s2 = load<f32>(xg, 264), s3 = load<f32>(xg, 268);
    f0 = step(f0, a0, w0, s0);
    h0 = step(h0, b0, w0, s1);
    k0 = step(k0, c0, w0, s2);
    l0 = step(l0, d0, w0, s3);
    if (C > 1) {
      f1 = step(f1, a1, w1, s0);
      h1 = step(h1, b1, w1, s1);
      k1 = step(k1, c1, w1, s2);
      l1 = step(l1, d1, w1, s3);
    }
    p += BLOCK;
    xg += 272;
  }
  store4(y, f0, n, N);
  store4(y + ys, h0, n, N);
  store4(y + 2 * ys, k0, n, N);
  store4(y + 3 * ys, l0, n, N);
  if (C > 1) {
    const ds = (<usize>dn) << 2;
    store4(y + ds, f1, n + dn, N);
    store4(y + ys + ds, h1, n + dn, N);
    store4(y + 2 * ys + ds, k1, n + dn, N);
    store4(y + 3 * ys + ds, l1, n + dn, N);
  }
}

/** A quad of rows over panels q0 .. q1-1: two panels far apart at a time, the one left over alone. */
// @ts-ignore: decorator
@inline function qquads(y: usize, ys: usize, xt: usize, packed: usize, panelBytes: usize, G: i32, N: i32, q0: i32, q1: i32): void {
  const d = (q1 - q0) >> 1;
  const pd = <usize>d * panelBytes;
  let q = q0;
  for (; q < q0 + d; q++) {
    const n = q << 2;
    qquad(2, y + ((<usize>n) << 2), ys, xt, packed + <usize>q * panelBytes, pd, G, n, d << 2, N);
  }
  for (q = q0 + 2 * d; q < q1; q++) {
    const n = q << 2;
    qquad(1, y + ((<usize>n) << 2), ys, xt, packed + <usize>q * panelBytes, 0, G, n, 0, N);
  }
}

/**
 * R rows (1 .. 3, a constant; row by row, R strides of xs) over panels q0 ..
 * q1-1: one row walks four panels far apart at once, more rows two (several
 * memory streams, as the f32 kernels), the panels left over one at a time.
 */
// @ts-ignore: decorator
@inline function qrows(R: i32, y: usize, ys: usize, xq: usize, xs: usize, sx: usize, sxs: usize, packed: usize, panelBytes: usize, G: i32, N: i32, q0: i32, q1: i32): void {
  const S = R == 1 ? 4 : 2;
  const d = (q1 - q0) / S;
  const pd = <usize>d * panelBytes;
  let q = q0;
  for (; q < q0 + d; q++) {
    const n = q << 2;
    const yn = y + ((<usize>n) << 2), p = packed + <usize>q * panelBytes;
    if (R == 1) qtile(1, 4, yn, ys, xq, xs, sx, sxs, p, pd, G, n, d << 2, N);
    else qtile(R, 2, yn, ys, xq, xs, sx, sxs, p, pd, G, n, d << 2, N);
  }
  for (q = q0 + S * d; q < q1; q++) {
    const n = q << 2;
    qtile(R, 1, y + ((<usize>n) << 2), ys, xq, xs, sx, sxs, packed + <usize>q * panelBytes, 0, G, n, 0, N);
  }
}

/**
 * Columns c0 .. c1-1 of y = x W^T with int8 weights: `xq` is what
 * quantizeRowsInt8 wrote for x [M, K], `packed` the panels packPanelsInt8
 * made of w; c0 is a multiple of 4. Threads call this on disjoint column
 * ranges: K is never split. One row walks every panel once; more rows go
 * a quad at a time, then the rows left over together, over blocks of panels
 * that stay in L2 (W_BLOCK_BYTES), so only the first quad reads a block from
 * memory.
 */
export function gemmInt8(y: usize, xq: usize, packed: usize, M: i32, K: i32, N: i32, c0: i32, c1: i32): void {
  if (M <= 0 || c1 <= c0) return;
  const G = groups(K);
  const ys = (<usize>N) << 2, panelBytes = (<usize>G) * BLOCK;
  const q0 = c0 >> 2, q1 = (c1 + 3) >> 2;
  // The rows after the quads, row by row (all of them when M < 4).
  const Q = M >> 2, R = M - 4 * Q;
  const xr = xq + (<usize>(Q * G)) * 272, xs = (<usize>G) * 64, sxs = (<usize>G) << 2;
  const sx = xr + (<usize>R) * xs;
  if (M == 1) {
    qrows(1, y, ys, xr, xs, sx, sxs, packed, panelBytes, G, N, q0, q1);
    return;
  }
  const nb = max<i32>(2, <i32>(W_BLOCK_BYTES / panelBytes) & ~1);
  const yr = y + <usize>(4 * Q) * ys;
  for (let b = q0; b < q1; b += nb) {
    const e = min<i32>(q1, b + nb);
    for (let t = 0; t < Q; t++) qquads(y + <usize>(4 * t) * ys, ys, xq + (<usize>(t * G)) * 272, packed, panelBytes, G, N, b, e);
    if (R == 3) qrows(3, yr, ys, xr, xs, sx, sxs, packed, panelBytes, G, N, b, e);
    else if (R == 2) qrows(2, yr, ys, xr, xs, sx, sxs, packed, panelBytes, G, N, b, e);
    else if (R == 1) qrows(1, yr, ys, xr, xs, sx, sxs, packed, panelBytes, G, N, b, e);
  }
}
