// The fixed-order dot product of attention's scores: one f32x4 accumulator
// over the chunks of four in order, its lanes summed as (l0 + l1) +
// (l2 + l3), then the K % 4 tail one term at a time. (The f32 matmul has its
// own order: gemm.ts.)

import { madd } from "./madd";

/** Horizontal sum in the fixed order (l0 + l1) + (l2 + l3). */
// @ts-ignore: decorator
@inline export function hsum(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

/**
 * Finishes one dot product: horizontal sum of the lane partials, then the
 * scalar tail k = k4 .. kEnd-1 (byte offsets) in index order with a plain
 * f32 multiply followed by a plain f32 add.
 */
// @ts-ignore: decorator
@inline export function finish(acc: v128, xp: usize, wp: usize, k4: usize, kEnd: usize): f32 {
  let s = hsum(acc);
  for (let k = k4; k < kEnd; k += 4) {
    s += load<f32>(xp + k) * load<f32>(wp + k);
  }
  return s;
}

/** The dot product of two f32 vectors of n elements, in the order above (attention's scores). */
// @ts-ignore: decorator
@inline export function dot(a: usize, b: usize, n: i32): f32 {
  const k4 = (<usize>(n & ~3)) << 2;
  const kEnd = (<usize>n) << 2;
  let acc = f32x4.splat(0);
  for (let k: usize = 0; k < k4; k += 16) {
    acc = madd(v128.load(a + k), v128.load(b + k), acc);
  }
  return finish(acc, a, b, k4, kEnd);
}
