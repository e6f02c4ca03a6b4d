/**
 * Bit-exact emulation of glibc's `expf` (x86-64, the FMA code path that
 * glibc selects at run time on CPUs with FMA/AVX2), the exp used by the
 * llama2.c reference program's softmax.
 *
 * Why not fround(Math.exp(x))? That is the correctly rounded float32 exp in
 * nearly every case, but glibc's expf is not correctly rounded: its error
 * bound is about 0.502 ulp, and on roughly 1 input in 500 it returns the
 * other neighbour. To reproduce the reference program's float32 softmax bit
 * for bit we follow glibc's algorithm (from ARM's optimized-routines):
 *
 *   z  = x * (32 / ln 2);   k = round-to-nearest-even(z);   r = z - k
 *   s  = 2^(k / 32)          (table of 2^(j/32), j = k mod 32, times 2^floor(k/32))
 *   y  = (C0 r + C1) r^2 + (C2 r + 1)
 *   expf(x) = float32(y * s)
 *
 * with the exact double constants of glibc's `__exp2f_data`, and with the
 * fused multiply-adds of the FMA build: k and r come from the exact product
 * x * (32 / ln 2), and each `a * b + c` above is rounded once.
 *
 * JavaScript has no fma, so the fused steps are emulated: k and r exactly
 * (cheap: the product is split into two exact parts), the polynomial with
 * plain double arithmetic, whose result differs from the fused one by a few
 * double ulps at most; only when that result lies within a relative
 * 2^-40 of a float32 rounding boundary (about 1 input in 10^5) is the
 * polynomial recomputed with exact (BigInt) fused multiply-adds. Verified against glibc 2.36's expf on every float in
 * [-104, 89] (see spec/sampling.md).
 */

// glibc __exp2f_data (N = 32): invln2_scaled, poly_scaled, shift.
const INV_LN2_N = 46.16624130844683; // 0x1.71547652b82fep+5
const C0 = 1.6938359250920212e-6; // 0x1.c6af84b912394p-20
const C1 = 0.00023459809789509004; // 0x1.ebfce50fac4f3p-13
const C2 = 0.021660849396613134; // 0x1.62e42ff0c52d6p-6
const SHIFT = 6755399441055744; // 0x1.8p+52

// INV_LN2_N split into a 26-bit high part and the remainder (27 bits): the
// products x * HI and x * LO of a float32 x (24 bits) are exact doubles,
// and x * INV_LN2_N = x * HI + x * LO exactly.
const INV_HI = splitHigh(INV_LN2_N);
const INV_LO = INV_LN2_N - INV_HI;

function splitHigh(v: number): number {
  // Veltkamp split with 2^27 + 1: high part has at most 26 significant bits.
  const c = 134217729 * v;
  return c - (c - v);
}

// 2^(j/32), correctly rounded doubles (glibc's table, with the exponent
// adjustment removed), computed from their bit patterns.
const TABLE_BITS: readonly number[] = [
  0x3ff00000, 0x00000000, 0x3fefd9b0, 0xd3158574, 0x3fefb558, 0x6cf9890f, 0x3fef9301, 0xd0125b51,
  0x3fef72b8, 0x3c7d517b, 0x3fef5487, 0x3168b9aa, 0x3fef387a, 0x6e756238, 0x3fef1e9d, 0xf51fdee1,
  0x3fef06fe, 0x0a31b715, 0x3feef1a7, 0x373aa9cb, 0x3feedea6, 0x4c123422, 0x3feece08, 0x6061892d,
  0x3feebfda, 0xd5362a27, 0x3feeb42b, 0x569d4f82, 0x3feeab07, 0xdd485429, 0x3feea47e, 0xb03a5585,
  0x3feea09e, 0x667f3bcd, 0x3fee9f75, 0xe8ec5f74, 0x3feea114, 0x73eb0187, 0x3feea589, 0x994cce13,
  0x3feeace5, 0x422aa0db, 0x3feeb737, 0xb0cdc5e5, 0x3feec491, 0x82a3f090, 0x3feed503, 0xb23e255d,
  0x3feee89f, 0x995ad3ad, 0x3feeff76, 0xf2fb5e47, 0x3fef199b, 0xdd85529c, 0x3fef3720, 0xdcef9069,
  0x3fef5818, 0xdcfba487, 0x3fef7c97, 0x337b9b5f, 0x3fefa4af, 0xa2a490da, 0x3fefd076, 0x5b6e4540,
];

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer); // little-endian: u32[0] low word, u32[1] high word

/** 2^(j/32) for j = 0..31 (glibc table entry j with j << 47 added back). */
const EXP2_J = new Float64Array(32);
for (let j = 0; j < 32; j++) {
  const hi = TABLE_BITS[2 * j];
  const lo = TABLE_BITS[2 * j + 1];
  // glibc stores bits(2^(j/32)) - (j << 47); j << 47 only touches the high word.
  u32[1] = (hi + (j << 15)) >>> 0;
  u32[0] = lo;
  EXP2_J[j] = f64[0];
}

/** 2^m for integer m in [-160, 130] (exact). */
const POW2_OFFSET = 160;
const POW2 = new Float64Array(291);
for (let m = -POW2_OFFSET; m <= 130; m++) POW2[m + POW2_OFFSET] = 2 ** m;

const OFLOW = Math.fround(88.72283172607422); // 0x1.62e42ep6f
const UFLOW = Math.fround(-103.97207641601562); // -0x1.9fe368p6f
const MAY_UFLOW = Math.fround(-103.27892303466797); // -0x1.9d1d9ep6f
const MIN_SUBNORMAL_F32 = 2 ** -149;
const LOWER = 1 - 2 ** -40;
const UPPER = 1 + 2 ** -40;

/**
 * glibc's expf(x) for a float32 `x`, bit for bit (FMA code path).
 * `x` should be a float32 value (e.g. Math.fround(...)); other doubles are
 * rounded to float32 first.
 */
export function expf(x: number): number {
  x = Math.fround(x);
  if (!(x <= OFLOW)) {
    // NaN, or overflow (+Infinity for x > 0x1.62e42ep6f, including +Infinity).
    return x !== x ? NaN : Infinity;
  }
  if (x < MAY_UFLOW) {
    if (x < UFLOW) return 0; // includes -Infinity
    return MIN_SUBNORMAL_F32; // glibc's __math_may_uflowf(0)
  }

  // Exact z = x * INV_LN2_N = a + b (both products exact).
  const a = x * INV_HI;
  const b = x * INV_LO;
  // k = RNE(a + b), as fma(INV_LN2_N, x, SHIFT) - SHIFT does.
  const h = a + b;
  const l = b - (h - a); // a + b = h + l exactly (|a| >= |b|)
  let kd = h + SHIFT - SHIFT;
  const d = h - kd; // exact
  if (d === 0.5 || d === -0.5) {
    // h lies exactly halfway between integers: the low part decides (if it
    // is zero, the ties-to-even choice made above is already right).
    if (l > 0 && d === 0.5) kd += 1;
    else if (l < 0 && d === -0.5) kd -= 1;
  }
  // r = RN(x * INV_LN2_N - kd) = RN((a - kd) + b), and a - kd is exact.
  const r = a - kd + b;

  const k = kd | 0;
  const s = EXP2_J[k & 31] * POW2[(k >> 5) + POW2_OFFSET];

  // Polynomial without fusing (fast path).
  const r2 = r * r;
  const z = C0 * r + C1;
  const y1 = C2 * r + 1;
  const y = z * r2 + y1;
  const res = y * s;
  // The fused result differs from `res` by a few double ulps at most; if
  // both ends of a window of +-2^-40 (relative) round to the same float32,
  // so does the fused result (rounding is monotone).
  const lo = Math.fround(res * LOWER);
  if (lo === Math.fround(res * UPPER)) return lo;
  // Near a float32 rounding boundary: redo the polynomial with exact fmas.
  const zf = fmaExact(C0, r, C1);
  const y1f = fmaExact(C2, r, 1);
  const yf = fmaExact(zf, r2, y1f);
  return Math.fround(yf * s);
}

// ---------------------------------------------------------------------------
// Exact fused multiply-add for normal doubles of moderate exponent (enough
// for the polynomial above), via BigInt.

function decompose(v: number): [mant: bigint, exp: number] {
  // v = mant * 2^exp, v a finite nonzero double.
  f64[0] = v;
  const hi = u32[1];
  const lo = u32[0];
  const sign = hi >>> 31 ? -1n : 1n;
  const bexp = (hi >>> 20) & 0x7ff;
  let mant = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  let exp: number;
  if (bexp === 0) {
    exp = -1074;
  } else {
    mant |= 1n << 52n;
    exp = bexp - 1075;
  }
  return [sign * mant, exp];
}

/** RN(a * b + c) with a single rounding (a, b, c finite; result normal). */
export function fmaExact(a: number, b: number, c: number): number {
  if (a === 0 || b === 0) return a * b + c;
  const [ma, ea] = decompose(a);
  const [mb, eb] = decompose(b);
  const mp = ma * mb;
  const ep = ea + eb;
  if (c === 0) return scaleRound(mp, ep);
  const [mc, ec] = decompose(c);
  const e = Math.min(ep, ec);
  const sum = (mp << BigInt(ep - e)) + (mc << BigInt(ec - e));
  if (sum === 0n) return 0;
  return scaleRound(sum, e);
}

/** RN(m * 2^e) for a BigInt m, assuming the result is a normal double. */
function scaleRound(m: bigint, e: number): number {
  // Number(bigint) rounds to nearest, ties to even; scaling by a power of two
  // afterwards is exact in the normal range, so the single rounding is kept.
  // Reduce m first so that Number(m) cannot overflow.
  const neg = m < 0n;
  let mag = neg ? -m : m;
  const bits = mag.toString(2).length;
  if (bits > 1000) {
    // Drop low bits but keep a sticky bit so the rounding is unchanged.
    const drop = bits - 200;
    const dropped = mag & ((1n << BigInt(drop)) - 1n);
    mag = (mag >> BigInt(drop)) << 1n;
    if (dropped !== 0n) mag |= 1n;
    e += drop - 1;
  }
  let v = Number(mag);
  // Apply 2^e in steps that stay within the exact range of powers of two.
  while (e > 0) {
    const step = Math.min(e, 1000);
    v *= 2 ** step;
    e -= step;
  }
  while (e < 0) {
    const step = Math.max(e, -1000);
    v *= 2 ** step;
    e -= step;
  }
  return neg ? -v : v;
}
