// Sampling inside the module: a row's softmax and Pick computed exactly as
// the host's src/sampling does them.

import { expf, expf32, expf32x4, vexpf } from "./exp";

/** y[i] = expf32(x[i]) for n float32 values (tests check it against fround(Math.exp) on millions of arguments). */
export function expRows(y: usize, x: usize, n: i32): void {
  const end = (<usize>n) << 2, end4 = (<usize>(n & ~3)) << 2;
  let i: usize = 0;
  for (; i < end4; i += 16) v128.store(y + i, expf32x4(v128.load(x + i)));
  for (; i < end; i += 4) store<f32>(y + i, expf32(load<f32>(x + i)));
}

/** The largest of the N f32 values at xr (-Infinity for none), or NaN where one of them is NaN: one SIMD pass. */
// @ts-ignore: decorator
@inline function rowMax(xr: usize, N: i32): f32 {
  const rowBytes = (<usize>N) << 2;
  const row4 = (<usize>(N & ~3)) << 2;
  let mv = f32x4.splat(-Infinity);
  let nan = i32x4.splat(0);
  for (let i: usize = 0; i < row4; i += 16) {
    const v = v128.load(xr + i);
    nan = v128.or(nan, f32x4.ne(v, v));
    mv = f32x4.pmax(mv, v);
  }
  let xmax: f32 = max(max(f32x4.extract_lane(mv, 0), f32x4.extract_lane(mv, 1)), max(f32x4.extract_lane(mv, 2), f32x4.extract_lane(mv, 3)));
  let bad = v128.any_true(nan);
  for (let i = row4; i < rowBytes; i += 4) {
    const v = load<f32>(xr + i);
    if (v != v) bad = true;
    if (v > xmax) xmax = v;
  }
  return bad ? NaN : xmax;
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
    const xmax = rowMax(xr, N);
    const bad = N == 0 || xmax != xmax;
    const mx = xmax / t;
    if (bad || mx == Infinity || mx == -Infinity) { store<i32>(out + ((<usize>m) << 2), -1); continue; }
    // sum = the f32 sum of e_i = expf(s_i - mx) in index order, four at a time. A group of four
    // whose every e_i is under a quarter of sum's ulp (told from s_i - mx alone, without the exp)
    // leaves sum as it is, so it is passed over: the same bits, most exps saved on a peaked row.
    // The e_i made go to scratch for the CDF; a passed-over group gets -1 there (not made).
    const mxv = f32x4.splat(mx);
    let sum: f32 = 0;
    let cut = f32x4.splat(negligibleBelow(sum));
    // A group whose every x_i is below `below` is passed over without dividing: such an x_i has
    // s_i - mx under the cut (see belowCut), so the test after the division would pass it over too.
    let below = f32x4.splat(belowCut(negligibleBelow(sum), mx, t));
    let sumExponent: u32 = 0,
      passed = 0;
    for (let i: usize = 0; i < row4; i += 16) {
      const xv = v128.load(xr + i);
      if (i32x4.all_true(f32x4.lt(xv, below))) {
        v128.store(scratch + i, f32x4.splat(-1.0));
        passed++;
        continue;
      }
      const d = f32x4.sub(f32x4.div(xv, tv), mxv);
      if (i32x4.all_true(f32x4.lt(d, cut))) {
        v128.store(scratch + i, f32x4.splat(-1.0));
        passed++;
        continue;
      }
      const e = expf32x4(d);
      v128.store(scratch + i, e);
      sum += f32x4.extract_lane(e, 0);
      sum += f32x4.extract_lane(e, 1);
      sum += f32x4.extract_lane(e, 2);
      sum += f32x4.extract_lane(e, 3);
      // The cut moves only when sum's exponent does.
      const ex = reinterpret<u32>(sum) >>> 23;
      if (ex != sumExponent) {
        sumExponent = ex;
        cut = f32x4.splat(negligibleBelow(sum));
        below = f32x4.splat(belowCut(negligibleBelow(sum), mx, t));
      }
    }
    for (let i = row4; i < rowBytes; i += 4) {
      const e = expf32(load<f32>(xr + i) / t - mx);
      store<f32>(scratch + i, e);
      sum += e;
    }
    // The first i with u < cdf_i, cdf the f32 sum of p_i = e_i / sum in index order (four quotients
    // at a time; groups whose every p_i is under a quarter of cdf's ulp leave it as it is, and
    // cannot be the pick), else the last i with p_i > 0.
    const u = load<f64>(us + ((<usize>m) << 3));
    const sv = f32x4.splat(sum);
    let cdf: f32 = 0;
    let pick: i32 = -1;
    let cutC = f32x4.splat(negligibleBelow(cdf));
    let belowC = f32x4.splat(belowCut(negligibleBelow(cdf), mx, t));
    let cdfExponent: u32 = 0;
    let i = 0;
    for (; i + 4 <= N; i += 4) {
      let e = v128.load(scratch + ((<usize>i) << 2));
      if (passed > 0) {
        // Only where the sum passed groups over (a flat row made every e_i: this costs nothing there).
        const xv = v128.load(xr + ((<usize>i) << 2));
        if (i32x4.all_true(f32x4.lt(xv, belowC))) continue;
        const d = f32x4.sub(f32x4.div(xv, tv), mxv);
        if (i32x4.all_true(f32x4.lt(d, cutC))) continue;
        if (f32x4.extract_lane(e, 0) < 0) e = expf32x4(d);
      }
      const q = f32x4.div(e, sv);
      cdf += f32x4.extract_lane(q, 0);
      if (u < <f64>cdf) { pick = i; break; }
      cdf += f32x4.extract_lane(q, 1);
      if (u < <f64>cdf) { pick = i + 1; break; }
      cdf += f32x4.extract_lane(q, 2);
      if (u < <f64>cdf) { pick = i + 2; break; }
      cdf += f32x4.extract_lane(q, 3);
      if (u < <f64>cdf) { pick = i + 3; break; }
      const ex = reinterpret<u32>(cdf) >>> 23;
      if (ex != cdfExponent) {
        cdfExponent = ex;
        cutC = f32x4.splat(negligibleBelow(cdf));
        belowC = f32x4.splat(belowCut(negligibleBelow(cdf), mx, t));
      }
    }
    if (pick < 0) {
      for (; i < N; i++) {
        cdf += load<f32>(scratch + ((<usize>i) << 2)) / sum;
        if (u < <f64>cdf) { pick = i; break; }
      }
    }
    if (pick < 0) {
      // u at or past the last cdf (rounding): the last token with p_i > 0, found from the end.
      for (let j = N - 1; j >= 0; j--) {
        if (expf32(load<f32>(xr + ((<usize>j) << 2)) / t - mx) / sum > 0) { pick = j; break; }
      }
    }
    store<i32>(out + ((<usize>m) << 2), pick);
  }
}

/**
 * For a running f32 sum v >= 0 of nonnegative terms: a d such that any term
 * expf(x) with x < d is under a quarter of v's ulp (the gap above v), so
 * that v + term rounds back to v. Terms below -104 are 0 whatever v is.
 * expf(x) <= exp(x) (1 + 2^-24), and a quotient of it by a sum >= 1 (the
 * pick's sum holds exp(0) = 1) adds one more such factor, both covered by
 * the 1e-4 taken off.
 */
// @ts-ignore: decorator
@inline function negligibleBelow(v: f32): f32 {
  const e = <i32>(reinterpret<u32>(v) >>> 23) - 127; // v's exponent; -127 for 0 and subnormal v
  if (e <= -126) return -104.0;
  return max<f32>(-104.0, <f32>(<f64>(e - 25) * 0.6931471805599453 - 1e-4));
}

/**
 * A logit bound for the cut of pickRows: every f32 x < the result has
 * fround(x / t) - mx < cut, computed with the kernel's own f32 operations.
 * x / t and the subtraction are monotonic in x, so one x checked at the bound
 * covers all below it; where (cut + mx) t, lowered by a margin, does not pass
 * that check (or is not finite), -Infinity: no x is passed over early.
 */
function belowCut(cut: f32, mx: f32, t: f32): f32 {
  const guess: f32 = (cut + mx) * t;
  const bound: f32 = guess - abs<f32>(guess) * 1e-5 - 1e-30;
  if (!isFinite<f32>(bound)) return -Infinity;
  return bound / t - mx < cut ? bound : -Infinity;
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

/**
 * out[m] = the probability of tokens[m] under softmax(row m of x [M, N] / t):
 * an estimate for choices that cost only speed (how many drafts a call
 * carries), not the sampler's distribution: four partial sums, and groups of
 * four whose every value lies more than 80 below the maximum (each under
 * e^-80) left out, x / t as x times 1 / t, and vexpf (within about an ulp)
 * for the exponentials. A row with a NaN or +Infinity, or whose every value
 * is -Infinity, gives NaN.
 */
export function tokenProbabilities(out: usize, x: usize, M: i32, N: i32, t: f32, tokens: usize): void {
  const rowBytes = (<usize>N) << 2;
  const row4 = (<usize>(N & ~3)) << 2;
  for (let m = 0; m < M; m++) {
    const xr = x + <usize>m * rowBytes;
    const xmax = rowMax(xr, N);
    const bad = xmax != xmax;
    const inv: f32 = 1 / t;
    const mx = xmax * inv;
    const o = out + ((<usize>m) << 2);
    if (bad || N == 0 || mx == Infinity || mx == -Infinity) {
      store<f32>(o, NaN);
      continue;
    }
    // An estimate: x / t as x times 1 / t; a group whose every x lies more than 80 t below the
    // maximum is left out before any arithmetic.
    const iv = f32x4.splat(inv),
      mxv = f32x4.splat(mx),
      low = f32x4.splat(xmax - 80 * t);
    let acc = f32x4.splat(0);
    for (let i: usize = 0; i < row4; i += 16) {
      const xv = v128.load(xr + i);
      if (i32x4.all_true(f32x4.lt(xv, low))) continue;
      acc = f32x4.add(acc, vexpf(f32x4.sub(f32x4.mul(xv, iv), mxv)));
    }
    let sum: f32 = f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1) + f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3);
    for (let i = row4; i < rowBytes; i += 4) sum += expf32(load<f32>(xr + i) * inv - mx);
    const token = load<i32>(tokens + ((<usize>m) << 2));
    store<f32>(o, expf32(load<f32>(xr + ((<usize>token) << 2)) * inv - mx) / sum);
  }
}
