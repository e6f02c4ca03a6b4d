// The one lane-wise multiply-add of the kernels, selected at compile time from
// this single source: f32x4.relaxed_madd in the relaxed build (fused on
// hardware with FMA), f32x4.add(f32x4.mul(a, b), c) in the plain SIMD build.

/** a * b + c lane-wise. */
// @ts-ignore: decorator
@inline export function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) {
    return f32x4.relaxed_madd(a, b, c);
  } else {
    return f32x4.add(f32x4.mul(a, b), c);
  }
}
