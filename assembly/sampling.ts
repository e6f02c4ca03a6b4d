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
  const row4 = (<usize>(N & ~3)) << 2;
  const tv = f32x4.splat(t);
  for (let m = 0; m < M; m++) {
    const xr = x + <usize>m * rowBytes;
    // mx = max s_i = (max x_i) / t: rounding is monotonic, so the largest quotient is the largest x's
    // (-0 and 0 give the same exponentials). A NaN x_i, or a quotient that reaches +Infinity
    // (then the largest does), makes the row one the host refuses.
    let mv = f32x4.splat(-Infinity);
    let nan = i32x4.splat(0);
    for (let i: usize = 0; i < row4; i += 16) {
      const v = v128.load(xr + i);
      nan = v128.or(nan, f32x4.ne(v, v));
      mv = f32x4.pmax(mv, v);
    }
    let xmax: f32 = max(max(f32x4.extract_lane(mv, 0), f32x4.extract_lane(mv, 1)), max(f32x4.extract_lane(mv, 2), f32x4.extract_lane(mv, 3)));
    let bad = N == 0 || v128.any_true(nan);
    for (let i = row4; i < rowBytes; i += 4) {
      const v = load<f32>(xr + i);
      if (v != v) bad = true;
      if (v > xmax) xmax = v;
    }
    const mx = xmax / t;
    if (bad || mx == Infinity || mx == -Infinity) { store<i32>(out + ((<usize>m) << 2), -1); continue; }
    // e_i = expf(s_i - mx), kept for the CDF, and their f32 sum in index order, four at a time.
    const mxv = f32x4.splat(mx);
    let sum: f32 = 0;
    for (let i: usize = 0; i < row4; i += 16) {
      const e = expf32x4(f32x4.sub(f32x4.div(v128.load(xr + i), tv), mxv));
      v128.store(scratch + i, e);
      sum += f32x4.extract_lane(e, 0);
      sum += f32x4.extract_lane(e, 1);
      sum += f32x4.extract_lane(e, 2);
      sum += f32x4.extract_lane(e, 3);
    }
    for (let i = row4; i < rowBytes; i += 4) {
      const e = expf32(load<f32>(xr + i) / t - mx);
      store<f32>(scratch + i, e);
      sum += e;
    }
    // The first i with u < cdf_i (p_i = e_i / sum, four quotients at a time), else the last i with p_i > 0.
    const u = load<f64>(us + ((<usize>m) << 3));
    const sv = f32x4.splat(sum);
    let cdf: f32 = 0;
    let pick: i32 = -1, lastNonZero: i32 = -1;
    let i = 0;
    for (; i + 4 <= N; i += 4) {
      const q = f32x4.div(v128.load(scratch + ((<usize>i) << 2)), sv);
      const q0 = f32x4.extract_lane(q, 0), q1 = f32x4.extract_lane(q, 1), q2 = f32x4.extract_lane(q, 2), q3 = f32x4.extract_lane(q, 3);
      if (q0 > 0) lastNonZero = i;
      cdf += q0;
      if (u < <f64>cdf) { pick = i; break; }
      if (q1 > 0) lastNonZero = i + 1;
      cdf += q1;
      if (u < <f64>cdf) { pick = i + 1; break; }
      if (q2 > 0) lastNonZero = i + 2;
      cdf += q2;
      if (u < <f64>cdf) { pick = i + 2; break; }
      if (q3 > 0) lastNonZero = i + 3;
      cdf += q3;
      if (u < <f64>cdf) { pick = i + 3; break; }
    }
    if (pick < 0) {
      for (; i < N; i++) {
        const q = load<f32>(scratch + ((<usize>i) << 2)) / sum;
        if (q > 0) lastNonZero = i;
        cdf += q;
        if (u < <f64>cdf) { pick = i; break; }
      }
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
