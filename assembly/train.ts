// WASM SIMD kernels for training (src/train/autograd/wasm-kernels.ts):
// the three dense products of a linear layer's forward and backward pass,
// and masked GQA attention forward and backward.
//
// Unlike the inference module (assembly/index.ts) these need no batch
// invariance, only determinism (a fixed order of operations for given
// inputs and sizes). Every kernel takes byte pointers into this module's own
// memory (the TypeScript side copies operands in and results out), element
// counts, and where it needs one a scratch area the caller sized.
// Matrices are row-major float32; W is stored [N, K] (y = x W^T).

// @ts-ignore: decorator
@inline function fma(acc: v128, a: v128, b: v128): v128 {
  return f32x4.add(acc, f32x4.mul(a, b));
}

// @ts-ignore: decorator
@inline function hsum(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

// @ts-ignore: decorator
@inline function hmax(v: v128): f32 {
  return Mathf.max(Mathf.max(f32x4.extract_lane(v, 0), f32x4.extract_lane(v, 1)), Mathf.max(f32x4.extract_lane(v, 2), f32x4.extract_lane(v, 3)));
}

/** dst[C, R] = src[R, C]^T. */
function transpose(dst: usize, src: usize, R: i32, C: i32): void {
  const rowR = <usize>R << 2;
  for (let r = 0; r < R; r++) {
    const s = src + ((<usize>r * C) << 2);
    let d = dst + (<usize>r << 2);
    for (let c = 0; c < C; c++) {
      store<f32>(d, load<f32>(s + (<usize>c << 2)));
      d += rowR;
    }
  }
}

// ---------------------------------------------------------------------------
// Dense products. All three reduce to one kernel,
//   out[R, C] += A[R, J] B[J, C]   (A, B, out row-major, contiguous rows),
// after transposing the operand that is stored the other way (W for the
// forward product, dy for the weight gradient). Every output element adds
// its J terms in increasing j onto its old value, one f32 multiply and one
// f32 add per term, whichever tile computes it, so the result is the same
// for any blocking.

/** One row: o[0, C) += a[0, J) B[J, 0..C), B's rows rowC bytes apart. */
function gemmRow(o: usize, a: usize, b: usize, C: i32, J: i32, rowC: usize): void {
  let c = 0;
  for (; c + 8 <= C; c += 8) {
    const off = <usize>c << 2;
    let x0 = v128.load(o + off), x1 = v128.load(o + off, 16);
    let bp = b + off;
    for (let j = 0; j < J; j++) {
      const s = v128.load32_splat(a + (<usize>j << 2));
      x0 = fma(x0, s, v128.load(bp));
      x1 = fma(x1, s, v128.load(bp, 16));
      bp += rowC;
    }
    v128.store(o + off, x0);
    v128.store(o + off, x1, 16);
  }
  for (; c + 4 <= C; c += 4) {
    const off = <usize>c << 2;
    let x0 = v128.load(o + off);
    let bp = b + off;
    for (let j = 0; j < J; j++) {
      x0 = fma(x0, v128.load32_splat(a + (<usize>j << 2)), v128.load(bp));
      bp += rowC;
    }
    v128.store(o + off, x0);
  }
  for (; c < C; c++) {
    const oc = o + (<usize>c << 2);
    let s = load<f32>(oc);
    let bp = b + (<usize>c << 2);
    for (let j = 0; j < J; j++) {
      s += load<f32>(a + (<usize>j << 2)) * load<f32>(bp);
      bp += rowC;
    }
    store<f32>(oc, s);
  }
}

/** out[R, C] += A[R, J] B[J, C]: tiles of 4 rows by 8 columns in registers, broadcast loads of A. */
function gemmAcc(out: usize, a: usize, b: usize, R: i32, C: i32, J: i32): void {
  const rowC = <usize>C << 2, rowA = <usize>J << 2, C8 = C & ~7;
  let r = 0;
  for (; r + 4 <= R; r += 4) {
    const a0 = a + <usize>r * rowA, a1 = a0 + rowA, a2 = a1 + rowA, a3 = a2 + rowA;
    const o0 = out + <usize>r * rowC, o1 = o0 + rowC, o2 = o1 + rowC, o3 = o2 + rowC;
    for (let c = 0; c < C8; c += 8) {
      const off = <usize>c << 2;
      let x0 = v128.load(o0 + off), y0 = v128.load(o0 + off, 16);
      let x1 = v128.load(o1 + off), y1 = v128.load(o1 + off, 16);
      let x2 = v128.load(o2 + off), y2 = v128.load(o2 + off, 16);
      let x3 = v128.load(o3 + off), y3 = v128.load(o3 + off, 16);
      let bp = b + off;
      for (let j = 0; j < J; j++) {
        const jo = <usize>j << 2;
        const b0 = v128.load(bp), b1 = v128.load(bp, 16);
        let s = v128.load32_splat(a0 + jo);
        x0 = fma(x0, s, b0);
        y0 = fma(y0, s, b1);
        s = v128.load32_splat(a1 + jo);
        x1 = fma(x1, s, b0);
        y1 = fma(y1, s, b1);
        s = v128.load32_splat(a2 + jo);
        x2 = fma(x2, s, b0);
        y2 = fma(y2, s, b1);
        s = v128.load32_splat(a3 + jo);
        x3 = fma(x3, s, b0);
        y3 = fma(y3, s, b1);
        bp += rowC;
      }
      v128.store(o0 + off, x0);
      v128.store(o0 + off, y0, 16);
      v128.store(o1 + off, x1);
      v128.store(o1 + off, y1, 16);
      v128.store(o2 + off, x2);
      v128.store(o2 + off, y2, 16);
      v128.store(o3 + off, x3);
      v128.store(o3 + off, y3, 16);
    }
    if (C8 < C) {
      const off = <usize>C8 << 2;
      gemmRow(o0 + off, a0, b + off, C - C8, J, rowC);
      gemmRow(o1 + off, a1, b + off, C - C8, J, rowC);
      gemmRow(o2 + off, a2, b + off, C - C8, J, rowC);
      gemmRow(o3 + off, a3, b + off, C - C8, J, rowC);
    }
  }
  for (; r < R; r++) gemmRow(out + <usize>r * rowC, a + <usize>r * rowA, b, C, J, rowC);
}

/** y[M, N] = x[M, K] W[N, K]^T; scratch: N K floats (W^T). */
export function matmul(y: usize, x: usize, w: usize, M: i32, K: i32, N: i32, scratch: usize): void {
  transpose(scratch, w, N, K);
  memory.fill(y, 0, (<usize>M * N) << 2);
  gemmAcc(y, x, scratch, M, N, K);
}

/** dx[M, K] += dy[M, N] W[N, K]. */
export function matmulGradX(dx: usize, dy: usize, w: usize, M: i32, K: i32, N: i32): void {
  gemmAcc(dx, dy, w, M, K, N);
}

/** dW[N, K] += dy[M, N]^T x[M, K]; scratch: M N floats (dy^T). */
export function matmulGradW(dw: usize, dy: usize, x: usize, M: i32, K: i32, N: i32, scratch: usize): void {
  transpose(scratch, dy, M, N);
  gemmAcc(dw, scratch, x, N, K, M);
}

/** First byte free for the caller's buffers. */
export function heapBase(): usize {
  return __heap_base;
}

// ---------------------------------------------------------------------------
// Masked multi-head attention with GQA over key ranges (src/train/autograd/
// attention.ts). Row m sees keys [a0, b0) then [a1, b1) (ranges: i32 [M, 4]);
// probabilities are kept for the backward pass at probs + offsets[m] + h n_m.
//
// Scores are computed four and eight keys at a time against a transposed
// copy of the keys (kt [KVH hs, nKeys]: one row per head dimension), so a
// query's dot products come out as vectors of keys with no horizontal sums;
// the backward pass does the same for dout . v against v transposed.

/**
 * p[i] = c sum_d u[d] t[d, i] for i < n, t's rows rowT bytes apart (t
 * points at the first key's column); returns max_i p[i]. Each key's sum
 * runs over d in increasing order in every path.
 */
function rowDots(p: usize, u: usize, t: usize, rowT: usize, n: i32, hs: i32, c: f32): f32 {
  const cv = f32x4.splat(c);
  let vmax = f32x4.splat(-Infinity);
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    let acc0 = f32x4.splat(0), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    let tp = t + (<usize>i << 2);
    for (let d = 0; d < hs; d++) {
      const ud = v128.load32_splat(u + (<usize>d << 2));
      acc0 = fma(acc0, ud, v128.load(tp));
      acc1 = fma(acc1, ud, v128.load(tp, 16));
      acc2 = fma(acc2, ud, v128.load(tp, 32));
      acc3 = fma(acc3, ud, v128.load(tp, 48));
      tp += rowT;
    }
    acc0 = f32x4.mul(acc0, cv);
    acc1 = f32x4.mul(acc1, cv);
    acc2 = f32x4.mul(acc2, cv);
    acc3 = f32x4.mul(acc3, cv);
    const po = p + (<usize>i << 2);
    v128.store(po, acc0);
    v128.store(po, acc1, 16);
    v128.store(po, acc2, 32);
    v128.store(po, acc3, 48);
    vmax = f32x4.pmax(vmax, f32x4.pmax(f32x4.pmax(acc0, acc1), f32x4.pmax(acc2, acc3)));
  }
  if (i + 8 <= n) {
    let acc0 = f32x4.splat(0), acc1 = acc0;
    let tp = t + (<usize>i << 2);
    for (let d = 0; d < hs; d++) {
      const ud = v128.load32_splat(u + (<usize>d << 2));
      acc0 = fma(acc0, ud, v128.load(tp));
      acc1 = fma(acc1, ud, v128.load(tp, 16));
      tp += rowT;
    }
    acc0 = f32x4.mul(acc0, cv);
    acc1 = f32x4.mul(acc1, cv);
    v128.store(p + (<usize>i << 2), acc0);
    v128.store(p + (<usize>i << 2), acc1, 16);
    vmax = f32x4.pmax(vmax, f32x4.pmax(acc0, acc1));
    i += 8;
  }
  if (i + 4 <= n) {
    let acc0 = f32x4.splat(0);
    let tp = t + (<usize>i << 2);
    for (let d = 0; d < hs; d++) {
      acc0 = fma(acc0, v128.load32_splat(u + (<usize>d << 2)), v128.load(tp));
      tp += rowT;
    }
    acc0 = f32x4.mul(acc0, cv);
    v128.store(p + (<usize>i << 2), acc0);
    vmax = f32x4.pmax(vmax, acc0);
    i += 4;
  }
  let max = hmax(vmax);
  for (; i < n; i++) {
    let s: f32 = 0;
    let tp = t + (<usize>i << 2);
    for (let d = 0; d < hs; d++) {
      s += load<f32>(u + (<usize>d << 2)) * load<f32>(tp);
      tp += rowT;
    }
    s *= c;
    store<f32>(p + (<usize>i << 2), s);
    if (s > max) max = s;
  }
  return max;
}

/**
 * e^x on four lanes for x <= 88.7 (softmax after subtracting the max, or a clamped sigmoid): 2^n e^r
 * with n = round(x / ln 2), r = x - n ln 2 in two parts, e^r by a degree-6
 * polynomial (the Cephes expf coefficients). Below -87.3 it returns
 * 2^-126 e^r (about 1e-38) instead of flushing to 0.
 */
// @ts-ignore: decorator
@inline function vexp(x: v128): v128 {
  x = f32x4.pmax(x, f32x4.splat(-87.33654));
  const n = f32x4.nearest(f32x4.mul(x, f32x4.splat(1.44269504088896341)));
  let r = f32x4.sub(x, f32x4.mul(n, f32x4.splat(0.693359375)));
  r = f32x4.sub(r, f32x4.mul(n, f32x4.splat(-2.12194440e-4)));
  let p = f32x4.splat(1.9875691500e-4);
  p = fma(f32x4.splat(1.3981999507e-3), p, r);
  p = fma(f32x4.splat(8.3334519073e-3), p, r);
  p = fma(f32x4.splat(4.1665795894e-2), p, r);
  p = fma(f32x4.splat(1.6666665459e-1), p, r);
  p = fma(f32x4.splat(5.0000001201e-1), p, r);
  const y = f32x4.add(fma(r, f32x4.mul(p, r), r), f32x4.splat(1));
  const scale = i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(n), i32x4.splat(127)), 23);
  return f32x4.mul(y, scale);
}

/** p[i] = e^(p[i] - max) for i < n; returns their sum. */
function expShift(p: usize, n: i32, max: f32): f32 {
  const mv = f32x4.splat(max);
  let acc = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const e = vexp(f32x4.sub(v128.load(p + (<usize>i << 2)), mv));
    v128.store(p + (<usize>i << 2), e);
    acc = f32x4.add(acc, e);
  }
  let sum = hsum(acc);
  for (; i < n; i++) {
    const e = f32x4.extract_lane(vexp(f32x4.splat(load<f32>(p + (<usize>i << 2)) - max)), 0);
    store<f32>(p + (<usize>i << 2), e);
    sum += e;
  }
  return sum;
}

/** p[i] *= c for i < n. */
function scaleRow(p: usize, n: i32, c: f32): void {
  const cv = f32x4.splat(c);
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(p + (<usize>i << 2), f32x4.mul(v128.load(p + (<usize>i << 2)), cv));
  for (; i < n; i++) store<f32>(p + (<usize>i << 2), load<f32>(p + (<usize>i << 2)) * c);
}

/**
 * o[0, 8) = sum_i p[i] x_i[0, 8) over the keys of [a0, b0) then [a1, b1),
 * x_i = base + key * rowX: two chains per half, keys taken in pairs.
 */
// @ts-ignore: decorator
@inline function weightedSum8(o: usize, p: usize, base: usize, rowX: usize, a0: i32, b0: i32, a1: i32, b1: i32): void {
  let x0 = f32x4.splat(0), y0 = x0, x1 = x0, y1 = x0;
  let pp = p;
  for (let range = 0; range < 2; range++) {
    const from = range == 0 ? a0 : a1, to = range == 0 ? b0 : b1;
    let xp = base + <usize>from * rowX;
    let j = from;
    for (; j + 2 <= to; j += 2) {
      const s0 = v128.load32_splat(pp), s1 = v128.load32_splat(pp, 4), xq = xp + rowX;
      x0 = fma(x0, s0, v128.load(xp));
      y0 = fma(y0, s0, v128.load(xp, 16));
      x1 = fma(x1, s1, v128.load(xq));
      y1 = fma(y1, s1, v128.load(xq, 16));
      pp += 8;
      xp += rowX << 1;
    }
    if (j < to) {
      const s0 = v128.load32_splat(pp);
      x0 = fma(x0, s0, v128.load(xp));
      y0 = fma(y0, s0, v128.load(xp, 16));
      pp += 4;
    }
  }
  v128.store(o, f32x4.add(x0, x1));
  v128.store(o, f32x4.add(y0, y1), 16);
}

/** The same sum for 4 lanes: two chains (alternate keys) so consecutive adds do not wait on each other. */
// @ts-ignore: decorator
@inline function weightedSum4(p: usize, base: usize, rowX: usize, a0: i32, b0: i32, a1: i32, b1: i32): v128 {
  let acc = f32x4.splat(0), acc2 = acc;
  let pp = p;
  for (let range = 0; range < 2; range++) {
    const from = range == 0 ? a0 : a1, to = range == 0 ? b0 : b1;
    let xp = base + <usize>from * rowX;
    let j = from;
    for (; j + 2 <= to; j += 2) {
      acc = fma(acc, v128.load32_splat(pp), v128.load(xp));
      acc2 = fma(acc2, v128.load32_splat(pp, 4), v128.load(xp + rowX));
      pp += 8;
      xp += rowX << 1;
    }
    if (j < to) {
      acc = fma(acc, v128.load32_splat(pp), v128.load(xp));
      pp += 4;
    }
  }
  return f32x4.add(acc, acc2);
}

/** The same sum for one lane (a head size's scalar tail): one chain. */
// @ts-ignore: decorator
@inline function weightedSum1(p: usize, base: usize, rowX: usize, a0: i32, b0: i32, a1: i32, b1: i32): f32 {
  let acc: f32 = 0;
  let pp = p;
  for (let range = 0; range < 2; range++) {
    const from = range == 0 ? a0 : a1, to = range == 0 ? b0 : b1;
    let xp = base + <usize>from * rowX;
    for (let j = from; j < to; j++) {
      acc += load<f32>(pp) * load<f32>(xp);
      pp += 4;
      xp += rowX;
    }
  }
  return acc;
}

/** scratch: nKeys KVH hs floats (k transposed). */
export function attentionForward(out: usize, probs: usize, q: usize, k: usize, v: usize, ranges: usize, offsets: usize, M: i32, H: i32, KVH: i32, hs: i32, scale: f32, nKeys: i32, scratch: usize): void {
  const W = H * hs, KW = KVH * hs, group = H / KVH, hs4 = hs & ~3;
  const rowT = <usize>nKeys << 2, rowV = <usize>KW << 2;
  transpose(scratch, k, nKeys, KW);
  for (let m = 0; m < M; m++) {
    const r = ranges + (<usize>m << 4);
    const a0 = load<i32>(r), b0 = load<i32>(r, 4), a1 = load<i32>(r, 8), b1 = load<i32>(r, 12);
    const n0 = b0 - a0, n = n0 + (b1 - a1);
    for (let h = 0; h < H; h++) {
      const g = h / group;
      const qo = q + ((<usize>(m * W + h * hs)) << 2);
      const kt = scratch + <usize>(g * hs) * rowT;
      const p = probs + ((<usize>(load<i32>(offsets + (<usize>m << 2)) + h * n)) << 2);
      const max = Mathf.max(rowDots(p, qo, kt + (<usize>a0 << 2), rowT, n0, hs, scale), rowDots(p + (<usize>n0 << 2), qo, kt + (<usize>a1 << 2), rowT, b1 - a1, hs, scale));
      scaleRow(p, n, 1 / expShift(p, n, max));
      const oo = out + ((<usize>(m * W + h * hs)) << 2), vb = v + ((<usize>(g * hs)) << 2);
      let d = 0;
      for (; d + 8 <= hs; d += 8) weightedSum8(oo + (<usize>d << 2), p, vb + (<usize>d << 2), rowV, a0, b0, a1, b1);
      for (; d < hs4; d += 4) v128.store(oo + (<usize>d << 2), weightedSum4(p, vb + (<usize>d << 2), rowV, a0, b0, a1, b1));
      for (; d < hs; d++) store<f32>(oo + (<usize>d << 2), weightedSum1(p, vb + (<usize>d << 2), rowV, a0, b0, a1, b1));
    }
  }
}

/**
 * One column block [d, d + 4) of a row-head's backward pass over its keys:
 * dv_i += p_i dout, dq += ds_i k_i, dk_i += ds_i q (ds in dp).
 */
/**
 * backwardBlock4 for eight columns [d, d + 8): dv_i += p_i dout, dq += ds_i k_i,
 * dk_i += ds_i q, with dq's sums in registers (dq points at the row's block).
 */
// @ts-ignore: decorator
@inline function backwardBlock8(p: usize, dp: usize, dqo: usize, qo: usize, doo: usize, kb: usize, dkb: usize, dvb: usize, rowX: usize, a: i32, b: i32, kvFrom: i32): void {
  const q0 = v128.load(qo), q1 = v128.load(qo, 16), o0 = v128.load(doo), o1 = v128.load(doo, 16);
  let g0 = v128.load(dqo), g1 = v128.load(dqo, 16);
  let pp = p, sp = dp, xo = <usize>a * rowX;
  const mid = min(max(a, kvFrom), b);
  for (let j = a; j < mid; j++) {
    const sj = v128.load32_splat(sp), kp = kb + xo;
    g0 = fma(g0, sj, v128.load(kp));
    g1 = fma(g1, sj, v128.load(kp, 16));
    pp += 4;
    sp += 4;
    xo += rowX;
  }
  for (let j = mid; j < b; j++) {
    const pj = v128.load32_splat(pp), sj = v128.load32_splat(sp);
    const dvp = dvb + xo, dkp = dkb + xo, kp = kb + xo;
    v128.store(dvp, fma(v128.load(dvp), pj, o0));
    v128.store(dvp, fma(v128.load(dvp, 16), pj, o1), 16);
    g0 = fma(g0, sj, v128.load(kp));
    g1 = fma(g1, sj, v128.load(kp, 16));
    v128.store(dkp, fma(v128.load(dkp), sj, q0));
    v128.store(dkp, fma(v128.load(dkp, 16), sj, q1), 16);
    pp += 4;
    sp += 4;
    xo += rowX;
  }
  v128.store(dqo, g0);
  v128.store(dqo, g1, 16);
}

// @ts-ignore: decorator
@inline function backwardBlock4(p: usize, dp: usize, kvFrom: i32, qv: v128, dov: v128, kb: usize, dkb: usize, dvb: usize, rowX: usize, a: i32, b: i32, dq: v128): v128 {
  let pp = p, sp = dp, xo = <usize>a * rowX;
  const mid = min(max(a, kvFrom), b);
  for (let j = a; j < mid; j++) {
    dq = fma(dq, v128.load32_splat(sp), v128.load(kb + xo));
    pp += 4;
    sp += 4;
    xo += rowX;
  }
  for (let j = mid; j < b; j++) {
    const pj = v128.load32_splat(pp), sj = v128.load32_splat(sp);
    v128.store(dvb + xo, fma(v128.load(dvb + xo), pj, dov));
    dq = fma(dq, sj, v128.load(kb + xo));
    v128.store(dkb + xo, fma(v128.load(dkb + xo), sj, qv));
    pp += 4;
    sp += 4;
    xo += rowX;
  }
  return dq;
}

// @ts-ignore: decorator
@inline function backwardBlock1(p: usize, dp: usize, qs: f32, dos: f32, kb: usize, dkb: usize, dvb: usize, rowX: usize, a: i32, b: i32, dq: f32, kvFrom: i32): f32 {
  let pp = p, sp = dp, xo = <usize>a * rowX;
  const mid = min(max(a, kvFrom), b);
  for (let j = a; j < mid; j++) {
    dq += load<f32>(sp) * load<f32>(kb + xo);
    pp += 4;
    sp += 4;
    xo += rowX;
  }
  for (let j = mid; j < b; j++) {
    const pj = load<f32>(pp), sj = load<f32>(sp);
    store<f32>(dvb + xo, load<f32>(dvb + xo) + pj * dos);
    dq += sj * load<f32>(kb + xo);
    store<f32>(dkb + xo, load<f32>(dkb + xo) + sj * qs);
    pp += 4;
    sp += 4;
    xo += rowX;
  }
  return dq;
}

/**
 * dq, dk, dv += the gradients of attentionForward's output given dout;
 * keys below kvFrom get no dk, dv (their rows are constants). scratch: nKeys KVH hs floats (v transposed) then the longest row's n floats.
 */
export function attentionBackward(dq: usize, dk: usize, dv: usize, dout: usize, probs: usize, q: usize, k: usize, v: usize, ranges: usize, offsets: usize, M: i32, H: i32, KVH: i32, hs: i32, scale: f32, nKeys: i32, scratch: usize, kvFrom: i32): void {
  const W = H * hs, KW = KVH * hs, group = H / KVH, hs4 = hs & ~3;
  const rowT = <usize>nKeys << 2, rowX = <usize>KW << 2;
  transpose(scratch, v, nKeys, KW);
  const dp = scratch + ((((<usize>nKeys * KW) << 2) + 15) & ~15);
  for (let m = 0; m < M; m++) {
    const r = ranges + (<usize>m << 4);
    const a0 = load<i32>(r), b0 = load<i32>(r, 4), a1 = load<i32>(r, 8), b1 = load<i32>(r, 12);
    const n0 = b0 - a0, n = n0 + (b1 - a1);
    for (let h = 0; h < H; h++) {
      const g = h / group, row = (<usize>(m * W + h * hs)) << 2;
      const vt = scratch + <usize>(g * hs) * rowT;
      const p = probs + ((<usize>(load<i32>(offsets + (<usize>m << 2)) + h * n)) << 2);
      // dp_i = dout . v_i, then ds_i = p_i (dp_i - sum_j p_j dp_j) scale in place.
      rowDots(dp, dout + row, vt + (<usize>a0 << 2), rowT, n0, hs, 1);
      rowDots(dp + (<usize>n0 << 2), dout + row, vt + (<usize>a1 << 2), rowT, b1 - a1, hs, 1);
      let acc = f32x4.splat(0);
      let i = 0;
      for (; i + 4 <= n; i += 4) acc = fma(acc, v128.load(p + (<usize>i << 2)), v128.load(dp + (<usize>i << 2)));
      let pdp = hsum(acc);
      for (; i < n; i++) pdp += load<f32>(p + (<usize>i << 2)) * load<f32>(dp + (<usize>i << 2));
      const pv = f32x4.splat(pdp), sv = f32x4.splat(scale);
      i = 0;
      for (; i + 4 <= n; i += 4) {
        const o = <usize>i << 2;
        v128.store(dp + o, f32x4.mul(f32x4.mul(v128.load(p + o), f32x4.sub(v128.load(dp + o), pv)), sv));
      }
      for (; i < n; i++) {
        const o = <usize>i << 2;
        store<f32>(dp + o, load<f32>(p + o) * (load<f32>(dp + o) - pdp) * scale);
      }
      const ko = (<usize>(g * hs)) << 2;
      let d = 0;
      for (; d + 8 <= hs; d += 8) {
        const c = <usize>d << 2, kb = k + ko + c, dkb = dk + ko + c, dvb = dv + ko + c;
        backwardBlock8(p, dp, dq + row + c, q + row + c, dout + row + c, kb, dkb, dvb, rowX, a0, b0, kvFrom);
        backwardBlock8(p + (<usize>n0 << 2), dp + (<usize>n0 << 2), dq + row + c, q + row + c, dout + row + c, kb, dkb, dvb, rowX, a1, b1, kvFrom);
      }
      for (; d < hs4; d += 4) {
        const c = <usize>d << 2, kb = k + ko + c, dkb = dk + ko + c, dvb = dv + ko + c;
        const qv = v128.load(q + row + c), dov = v128.load(dout + row + c);
        let g4 = backwardBlock4(p, dp, kvFrom, qv, dov, kb, dkb, dvb, rowX, a0, b0, v128.load(dq + row + c));
        g4 = backwardBlock4(p + (<usize>n0 << 2), dp + (<usize>n0 << 2), kvFrom, qv, dov, kb, dkb, dvb, rowX, a1, b1, g4);
        v128.store(dq + row + c, g4);
      }
      for (; d < hs; d++) {
        const c = <usize>d << 2, kb = k + ko + c, dkb = dk + ko + c, dvb = dv + ko + c;
        const qs = load<f32>(q + row + c), dos = load<f32>(dout + row + c);
        let g1 = backwardBlock1(p, dp, qs, dos, kb, dkb, dvb, rowX, a0, b0, load<f32>(dq + row + c), kvFrom);
        g1 = backwardBlock1(p + (<usize>n0 << 2), dp + (<usize>n0 << 2), qs, dos, kb, dkb, dvb, rowX, a1, b1, g1, kvFrom);
        store<f32>(dq + row + c, g1);
      }
    }
  }
}

// ---------------------------------------------------------------------------
// SwiGLU forward (src/train/autograd/elementwise.ts): s = sigmoid(gate),
// y = gate s up, elementwise; s is kept for the backward pass.

/** sig[i] = 1 / (1 + e^-gate[i]), y[i] = gate[i] sig[i] up[i] for i < n (e^x with x clamped to [-87.3, 88]). */
export function swiglu(y: usize, sig: usize, gate: usize, up: usize, n: i32): void {
  const one = f32x4.splat(1), hi = f32x4.splat(88);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const g = v128.load(gate + o);
    const s = f32x4.div(one, f32x4.add(one, vexp(f32x4.pmin(f32x4.neg(g), hi))));
    v128.store(sig + o, s);
    v128.store(y + o, f32x4.mul(f32x4.mul(g, s), v128.load(up + o)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const g = load<f32>(gate + o);
    const s = f32x4.extract_lane(f32x4.div(one, f32x4.add(one, vexp(f32x4.pmin(f32x4.splat(-g), hi)))), 0);
    store<f32>(sig + o, s);
    store<f32>(y + o, g * s * load<f32>(up + o));
  }
}

// ---------------------------------------------------------------------------
// A linear layer with its LoRA update (src/train/autograd/linear.ts,
// linearLora): y = x W^T + s (x A^T) B^T, x [M, K], W [N, K], A [r, K],
// B [N, r], in one call so each operand is copied in once. The float32
// products and roundings are those of the separate ops (matmul, scale in
// float64 rounded to f32, add), so the results are the same bits.

/** y = x W^T + s (t B^T) with t = x A^T (written out); scratch: M N + max(N K, r K, N r) floats. */
export function loraForward(y: usize, t: usize, x: usize, w: usize, a: usize, b: usize, M: i32, K: i32, N: i32, r: i32, s: f64, scratch: usize): void {
  const u = scratch, tr = scratch + ((((<usize>M * N) << 2) + 15) & ~15);
  matmul(y, x, w, M, K, N, tr);
  matmul(t, x, a, M, K, r, tr);
  matmul(u, t, b, M, r, N, tr);
  const n = M * N;
  for (let i = 0; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(y + o, load<f32>(y + o) + <f32>(s * <f64>load<f32>(u + o)));
  }
}

/**
 * The gradients of loraForward for dy: dx, dA, dB, dW += (a zero pointer
 * skips one), in the order the separate ops' backward steps run.
 * scratch: M N + M r + max(M N, M r) floats.
 */
export function loraBackward(dx: usize, da: usize, db: usize, dw: usize, dy: usize, x: usize, w: usize, a: usize, b: usize, t: usize, M: i32, K: i32, N: i32, r: i32, s: f64, scratch: usize): void {
  const du = scratch, dt = du + ((((<usize>M * N) << 2) + 15) & ~15), tr = dt + ((((<usize>M * r) << 2) + 15) & ~15);
  const n = M * N;
  for (let i = 0; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(du + o, <f32>(s * <f64>load<f32>(dy + o)));
  }
  memory.fill(dt, 0, (<usize>M * r) << 2);
  matmulGradX(dt, du, b, M, r, N);
  if (db) matmulGradW(db, du, t, M, r, N, tr);
  if (dx) matmulGradX(dx, dt, a, M, K, r);
  if (da) matmulGradW(da, dt, x, M, K, r, tr);
  if (dx) matmulGradX(dx, dy, w, M, K, N);
  if (dw) matmulGradW(dw, dy, x, M, K, N, tr);
}

/** dgate[i] += dy u s (1 + g (1 - s)), dup[i] += dy g s for i < n (s = sig[i]); a zero pointer skips one. */
export function swigluBackward(dgate: usize, dup: usize, dy: usize, gate: usize, up: usize, sig: usize, n: i32): void {
  const one = f32x4.splat(1);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const d = v128.load(dy + o), g = v128.load(gate + o), s = v128.load(sig + o);
    if (dgate) {
      const t = f32x4.mul(f32x4.mul(f32x4.mul(d, v128.load(up + o)), s), f32x4.add(one, f32x4.mul(g, f32x4.sub(one, s))));
      v128.store(dgate + o, f32x4.add(v128.load(dgate + o), t));
    }
    if (dup) v128.store(dup + o, f32x4.add(v128.load(dup + o), f32x4.mul(f32x4.mul(d, g), s)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const d = load<f32>(dy + o), g = load<f32>(gate + o), s = load<f32>(sig + o);
    if (dgate) store<f32>(dgate + o, load<f32>(dgate + o) + d * load<f32>(up + o) * s * (1 + g * (1 - s)));
    if (dup) store<f32>(dup + o, load<f32>(dup + o) + d * g * s);
  }
}
