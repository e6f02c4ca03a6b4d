// bf16 weights.
//
// The `weights: "bf16"` option of the backend: every matmul weight is used
// rounded to bfloat16 (round to nearest even; the model is then that bf16
// teacher), read from panels of half the bytes. Panel p (rows 4p .. 4p+3),
// chunk c (k = 4c .. 4c+3) is 32 bytes: lane j of the first f32x4 holds
// bf16(w[4p, 4c+j]) << 16 | bf16(w[4p+1, 4c+j]), of the second the same for
// rows 4p+2 and 4p+3, so one AND and one shift turn a vector into two rows'
// f32 values. The K tail and the N % 4 rows are read from w and rounded in
// the kernel. The per-element order is exactly the f32 one (gemm.ts) with w
// replaced by its bf16 rounding, so batch invariance holds, and the result
// equals the f32 kernels run on weights rounded beforehand, bit for bit.

import { madd } from "./madd";
import { W_BLOCK_BYTES } from "./gemm";
import { hsum } from "./reduce";

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

/** 1 row of x times one bf16 panel (4 rows of w): 4 accumulators. */
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

/** 1 row of x times two bf16 panels far apart: two streams, 8 accumulators. */
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

/** 2 rows of x times one bf16 panel (4 rows of w): 8 accumulators. */
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
  if (M == 1 && p1 - c0 >= 8) {
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
