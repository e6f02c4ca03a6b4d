// The exponentials of the kernels, each a pure function of its argument (so
// the same for every row): expf, the reference's f64 exp rounded to f32;
// vexpf, four f32 lanes within about an ulp (attention and SwiGLU); and
// expf32 / expf32x4, fround(Math.exp) bit for bit (sampling).

/** expf as the reference computes it: the f64 exp of an f32, rounded to f32. */
// @ts-ignore: decorator
@inline export function expf(x: f32): f32 {
  return <f32>Math.exp(<f64>x);
}

/**
 * e^x on four lanes in f32 (Cody-Waite reduction x = n ln2 + r, a degree-7
 * polynomial in r, times 2^n), within about one ulp of the true value; +inf
 * above 88.72, 0 below -87.33 (where the true value is subnormal), NaN stays
 * NaN. A pure function of each lane, so it is the same for every row.
 *
 * Written for few instructions, each step the float operation it stands
 * for: the clamp is pmin / pmax (equal to min / max here: the limits are
 * neither NaN nor zero); n's round to nearest even is adding and
 * subtracting 1.5 * 2^23 (exact for |v| < 2^22; where nearest() gives -0
 * it gives +0, which changes no later bit: n ln2's parts are then zeros
 * and the polynomial of r = +-0 is exactly 1); and 2^n is built from the bits
 * of n + 1.5 * 2^23, whose low bits hold n as an integer, instead of a
 * saturating conversion (n is within [-126, 128] after the clamp). A NaN
 * lane's value is replaced at the end. Checked bit for bit against the
 * min / max / nearest / trunc_sat version on all 2^32 inputs, both builds.
 */
// @ts-ignore: decorator
@inline export function vexpf(x: v128): v128 {
  const hiLimit = f32x4.splat(88.3762626647949);
  const loLimit = f32x4.splat(-87.3365478515625);
  const magic = f32x4.splat(12582912); // 1.5 * 2^23
  const xc = f32x4.pmax(f32x4.pmin(x, hiLimit), loLimit);
  const shifted = f32x4.add(f32x4.mul(xc, f32x4.splat(1.44269504088896341)), magic);
  const n = f32x4.sub(shifted, magic);
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
  // (bits(n + magic) - bits(magic) + 127) << 23: the low 9 bits are n + 127, all the shift keeps.
  const scale = i32x4.shl(i32x4.add(shifted, i32x4.splat(127 - 0x4b400000)), 23);
  let e = f32x4.mul(p, scale);
  e = v128.bitselect(f32x4.splat(Infinity), e, f32x4.gt(x, hiLimit));
  e = v128.bitselect(f32x4.splat(0), e, f32x4.lt(x, loLimit));
  // NaN lanes: x != x.
  return v128.bitselect(x, e, f32x4.ne(x, x));
}

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
 * x > 0) calls the host's Math.exp itself, except x < -104, whose
 * exponential (below 2^-150, half the least float32) rounds to 0.
 */
// @ts-ignore: decorator
@inline export function expf32(x: f32): f32 {
  if (!(x > -87.0 && x <= 0.0)) return x < -104.0 ? 0 : <f32>hostExp(<f64>x);
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
 * [-104, 0]): x = n ln2 / 64 + r with |r| <= ln 2 / 128, exp(x) =
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

/**
 * expf32 of four float32 values: zero for lanes below -104 (their
 * exponential, under 2^-150, rounds to 0), two expf32x2 for the lanes in
 * [-104, 0] (down there the float32 results are subnormal, which the f64 to
 * float32 conversion and the verdict of expf32x2 handle alike), the scalar
 * expf32 for a lane expf32x2 leaves; a vector with any other lane (x > 0,
 * NaN) goes lane by lane.
 */
// @ts-ignore: decorator
@inline export function expf32x4(v: v128): v128 {
  const fast = v128.and(f32x4.ge(v, f32x4.splat(-104.0)), f32x4.le(v, f32x4.splat(0.0)));
  if (i32x4.all_true(fast)) return expf32x4In(v, v);
  const zero = f32x4.lt(v, f32x4.splat(-104.0));
  if (!i32x4.all_true(v128.or(zero, fast))) {
    return f32x4.replace_lane(f32x4.replace_lane(f32x4.replace_lane(f32x4.splat(expf32(f32x4.extract_lane(v, 0))), 1, expf32(f32x4.extract_lane(v, 1))), 2, expf32(f32x4.extract_lane(v, 2))), 3, expf32(f32x4.extract_lane(v, 3)));
  }
  if (i32x4.all_true(zero)) return f32x4.splat(0);
  // The zero lanes are computed at -104, then set to 0.
  return v128.andnot(expf32x4In(f32x4.pmax(v, f32x4.splat(-104.0)), v), zero);
}

/** expf32x4 of c, every lane in [-104, 0]: two expf32x2, the scalar expf32 of v's lane where one leaves it. */
// @ts-ignore: decorator
@inline function expf32x4In(c: v128, v: v128): v128 {
  const lo = expf32x2(f64x2.promote_low_f32x4(c));
  const hi = expf32x2(f64x2.promote_low_f32x4(i32x4.shuffle(c, c, 2, 3, 2, 3)));
  let out = i32x4.shuffle(lo, hi, 0, 1, 4, 5);
  if (i32x4.extract_lane(lo, 2) == 0) out = f32x4.replace_lane(out, 0, expf32(f32x4.extract_lane(v, 0)));
  if (i32x4.extract_lane(lo, 3) == 0) out = f32x4.replace_lane(out, 1, expf32(f32x4.extract_lane(v, 1)));
  if (i32x4.extract_lane(hi, 2) == 0) out = f32x4.replace_lane(out, 2, expf32(f32x4.extract_lane(v, 2)));
  if (i32x4.extract_lane(hi, 3) == 0) out = f32x4.replace_lane(out, 3, expf32(f32x4.extract_lane(v, 3)));
  return out;
}
