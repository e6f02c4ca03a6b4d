// Sampling inside the module: a row's softmax and Pick computed exactly as
// the host's src/sampling does them.

import { expf, expf32, expf32x4 } from "./exp";

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
