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
// g a 144-byte block: rows r = 0..3 at bytes 32 r (32 int8 values, zero past
// K), then the four rows' scales as f32x4 at byte 128. Quantised x
// (quantizeRowsInt8, per matmul): row m's values as i16 at xq + m * Kp * 2
// (Kp = 32 G, zero past K), its scales as f32 at sx + m * G * 4.

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
          for (; i < n; i++) store<i8>(d + <usize>(r * 32 + i), <i8>quant(load<f32>(src + ((<usize>i) << 2)), scale));
        }
        for (; i < GS; i++) store<i8>(d + <usize>(r * 32 + i), 0);
        store<f32>(d + 128 + <usize>(r << 2), scale);
      }
      d += BLOCK;
    }
  }
}

/** Bytes of the quantised rows quantizeRowsInt8 writes for [M, K] (values, then scales). */
export function quantizedRowsBytes(M: i32, K: i32): usize {
  return (<usize>M) * (<usize>groups(K)) * (64 + 4);
}

/** Quantises x [M, K] per row and group: i16 values at dst, f32 scales after them (M * G * 64 bytes in). */
export function quantizeRowsInt8(dst: usize, x: usize, M: i32, K: i32): void {
  const G = groups(K);
  const rowBytes = (<usize>K) << 2;
  const sx = dst + (<usize>M) * (<usize>G) * 64;
  for (let m = 0; m < M; m++) {
    const xr = x + <usize>m * rowBytes;
    const qr = dst + <usize>(m * G) * 64;
    for (let g = 0; g < G; g++) {
      const k0 = g * GS, n = min<i32>(GS, K - k0);
      const src = xr + ((<usize>k0) << 2);
      const scale = groupScale(src, n);
      const q = qr + <usize>g * 64;
      let i = 0;
      for (; i < n; i++) store<i16>(q + ((<usize>i) << 1), <i16>quant(load<f32>(src + ((<usize>i) << 2)), scale));
      for (; i < GS; i++) store<i16>(q + ((<usize>i) << 1), 0);
      store<f32>(sx + (<usize>(m * G + g) << 2), scale);
    }
  }
}

/** Lane partials of the exact dot product of 32 i16 x values (4 vectors) with 32 widened weights (4 vectors). */
// @ts-ignore: decorator
@inline function dot4(x0: v128, x1: v128, x2: v128, x3: v128, e0: v128, e1: v128, e2: v128, e3: v128): v128 {
  return i32x4.add(i32x4.add(i32x4.dot_i16x8_s(x0, e0), i32x4.dot_i16x8_s(x1, e1)), i32x4.add(i32x4.dot_i16x8_s(x2, e2), i32x4.dot_i16x8_s(x3, e3)));
}

/** Lane partials of one group's exact dot product: 32 i16 x values (4 vectors) with 32 int8 weights at w. */
// @ts-ignore: decorator
@inline function gdot(x0: v128, x1: v128, x2: v128, x3: v128, w: usize): v128 {
  return dot4(x0, x1, x2, x3, v128.load8x8_s(w), v128.load8x8_s(w, 8), v128.load8x8_s(w, 16), v128.load8x8_s(w, 24));
}

/**
 * One weight row's group (32 int8 at w, widened once) against two x rows
 * (x and z): [x 0+2, x 1+3, z 0+2, z 1+3] of the lane partials (exact).
 */
// @ts-ignore: decorator
@inline function gdot2(x0: v128, x1: v128, x2: v128, x3: v128, z0: v128, z1: v128, z2: v128, z3: v128, w: usize): v128 {
  const e0 = v128.load8x8_s(w), e1 = v128.load8x8_s(w, 8), e2 = v128.load8x8_s(w, 16), e3 = v128.load8x8_s(w, 24);
  const s = dot4(x0, x1, x2, x3, e0, e1, e2, e3), t = dot4(z0, z1, z2, z3, e0, e1, e2, e3);
  return i32x4.add(v128.shuffle<i32>(s, t, 0, 1, 4, 5), v128.shuffle<i32>(s, t, 2, 3, 6, 7));
}

/** The lane sums of four i32x4 vectors, as one i32x4 (exact: integers). */
// @ts-ignore: decorator
@inline function sum4(a0: v128, a1: v128, a2: v128, a3: v128): v128 {
  const t0 = i32x4.add(v128.shuffle<i32>(a0, a1, 0, 4, 1, 5), v128.shuffle<i32>(a0, a1, 2, 6, 3, 7));
  const t1 = i32x4.add(v128.shuffle<i32>(a2, a3, 0, 4, 1, 5), v128.shuffle<i32>(a2, a3, 2, 6, 3, 7));
  return i32x4.add(v128.shuffle<i32>(t0, t1, 0, 1, 4, 5), v128.shuffle<i32>(t0, t1, 2, 3, 6, 7));
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

/** 1 row of quantised x times one panel (4 columns). */
// @ts-ignore: decorator
@inline function qtile1x4(y: usize, xq: usize, sx: usize, pnl: usize, G: i32, n: i32, N: i32): void {
  let acc = f32x4.splat(0);
  let p = pnl, xr = xq;
  for (let g = 0; g < G; g++) {
    const x0 = v128.load(xr), x1 = v128.load(xr, 16), x2 = v128.load(xr, 32), x3 = v128.load(xr, 48);
    const s = sum4(gdot(x0, x1, x2, x3, p), gdot(x0, x1, x2, x3, p + 32), gdot(x0, x1, x2, x3, p + 64), gdot(x0, x1, x2, x3, p + 96));
    acc = step(acc, s, v128.load(p, 128), load<f32>(sx + ((<usize>g) << 2)));
    p += BLOCK;
    xr += 64;
  }
  store4(y, acc, n, N);
}

/** 2 rows of quantised x times one panel: the weights are extended once for both rows. */
// @ts-ignore: decorator
@inline function qtile2x4(y: usize, ys: usize, xq: usize, xs: usize, sx: usize, pnl: usize, G: i32, n: i32, N: i32): void {
  let acc0 = f32x4.splat(0), acc1 = f32x4.splat(0);
  let p = pnl, xr = xq;
  const sx1 = sx + ((<usize>G) << 2);
  for (let g = 0; g < G; g++) {
    const x0 = v128.load(xr), x1 = v128.load(xr, 16), x2 = v128.load(xr, 32), x3 = v128.load(xr, 48);
    const z = xr + xs;
    const z0 = v128.load(z), z1 = v128.load(z, 16), z2 = v128.load(z, 32), z3 = v128.load(z, 48);
    const P0 = gdot2(x0, x1, x2, x3, z0, z1, z2, z3, p), P1 = gdot2(x0, x1, x2, x3, z0, z1, z2, z3, p + 32);
    const P2 = gdot2(x0, x1, x2, x3, z0, z1, z2, z3, p + 64), P3 = gdot2(x0, x1, x2, x3, z0, z1, z2, z3, p + 96);
    // [x.w0, x.w1, z.w0, z.w1] and [x.w2, x.w3, z.w2, z.w3]
    const t01 = i32x4.add(v128.shuffle<i32>(P0, P1, 0, 4, 2, 6), v128.shuffle<i32>(P0, P1, 1, 5, 3, 7));
    const t23 = i32x4.add(v128.shuffle<i32>(P2, P3, 0, 4, 2, 6), v128.shuffle<i32>(P2, P3, 1, 5, 3, 7));
    const sw = v128.load(p, 128);
    acc0 = step(acc0, v128.shuffle<i32>(t01, t23, 0, 1, 4, 5), sw, load<f32>(sx + ((<usize>g) << 2)));
    acc1 = step(acc1, v128.shuffle<i32>(t01, t23, 2, 3, 6, 7), sw, load<f32>(sx1 + ((<usize>g) << 2)));
    p += BLOCK;
    xr += 64;
  }
  store4(y, acc0, n, N);
  store4(y + ys, acc1, n, N);
}

/**
 * Columns c0 .. c1-1 of y = x W^T with int8 weights: `xq` is what
 * quantizeRowsInt8 wrote for x [M, K], `packed` the panels packPanelsInt8
 * made of w; c0 is a multiple of 4. Threads call this on disjoint column
 * ranges: K is never split.
 */
export function gemmInt8(y: usize, xq: usize, packed: usize, M: i32, K: i32, N: i32, c0: i32, c1: i32): void {
  if (M <= 0 || c1 <= c0) return;
  const G = groups(K);
  const xs = (<usize>G) * 64, ys = (<usize>N) << 2;
  const sx = xq + (<usize>M) * xs;
  const panelBytes = (<usize>G) * BLOCK;
  // Panels per block kept hot in L2 while all row pairs pass over them.
  const nb = max<i32>(4, (<i32>(W_BLOCK_BYTES / panelBytes)) << 2);
  const M2 = M & ~1;
  for (let n0 = c0; n0 < c1; n0 += nb) {
    const n1 = min<i32>(c1, n0 + nb);
    for (let m = 0; m < M2; m += 2) {
      const xm = xq + <usize>m * xs, sm = sx + (<usize>(m * G) << 2), ym = y + <usize>m * ys;
      for (let n = n0; n < n1; n += 4) {
        qtile2x4(ym + ((<usize>n) << 2), ys, xm, xs, sm, packed + <usize>(n >> 2) * panelBytes, G, n, N);
      }
    }
    if (M2 < M) {
      const xm = xq + <usize>M2 * xs, sm = sx + (<usize>(M2 * G) << 2), ym = y + <usize>M2 * ys;
      for (let n = n0; n < n1; n += 4) {
        qtile1x4(ym + ((<usize>n) << 2), xm, sm, packed + <usize>(n >> 2) * panelBytes, G, n, N);
      }
    }
  }
}
