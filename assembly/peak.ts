// What one core can do, for benchmarks. The f32x4 multiply-add peak: twelve independent
// dependency chains keep the FMA units busy whatever their latency, and no
// memory is touched. Built into both builds, so the relaxed build measures
// relaxed_madd (FMA) and the plain build mul + add.
import { madd } from "./madd";

/** Runs `iters` rounds of 12 lane-wise multiply-adds (96 flops each); returns a value that depends on all of them. */
export function fmaPeak(iters: i32): f32 {
  const m = f32x4.splat(0.999), c = f32x4.splat(0.001);
  let a0 = f32x4.splat(1.0), a1 = f32x4.splat(1.1), a2 = f32x4.splat(1.2), a3 = f32x4.splat(1.3);
  let a4 = f32x4.splat(1.4), a5 = f32x4.splat(1.5), a6 = f32x4.splat(1.6), a7 = f32x4.splat(1.7);
  let a8 = f32x4.splat(1.8), a9 = f32x4.splat(1.9), a10 = f32x4.splat(2.0), a11 = f32x4.splat(2.1);
  for (let i = 0; i < iters; i++) {
    a0 = madd(a0, m, c); a1 = madd(a1, m, c); a2 = madd(a2, m, c); a3 = madd(a3, m, c);
    a4 = madd(a4, m, c); a5 = madd(a5, m, c); a6 = madd(a6, m, c); a7 = madd(a7, m, c);
    a8 = madd(a8, m, c); a9 = madd(a9, m, c); a10 = madd(a10, m, c); a11 = madd(a11, m, c);
  }
  const s = f32x4.add(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)), f32x4.add(f32x4.add(a4, a5), f32x4.add(a6, a7)));
  return f32x4.extract_lane(f32x4.add(s, f32x4.add(f32x4.add(a8, a9), f32x4.add(a10, a11))), 0);
}

/**
 * The int8 kernels' instruction peak: `iters` rounds of 12 independent
 * i32x4.dot_i16x8_s + i32x4.add (8 multiply-adds each, int8.ts's pair dot),
 * no memory touched. Returns a value that depends on all of them.
 */
export function dotPeak(iters: i32): i32 {
  const m = i16x8.splat(3);
  let a0 = i32x4.splat(0), a1 = i32x4.splat(1), a2 = i32x4.splat(2), a3 = i32x4.splat(3);
  let a4 = i32x4.splat(4), a5 = i32x4.splat(5), a6 = i32x4.splat(6), a7 = i32x4.splat(7);
  let a8 = i32x4.splat(8), a9 = i32x4.splat(9), a10 = i32x4.splat(10), a11 = i32x4.splat(11);
  for (let i = 0; i < iters; i++) {
    // Each chain's own operand (its accumulator as i16 lanes) so no dot is loop-invariant.
    a0 = i32x4.add(a0, i32x4.dot_i16x8_s(a0, m)); a1 = i32x4.add(a1, i32x4.dot_i16x8_s(a1, m));
    a2 = i32x4.add(a2, i32x4.dot_i16x8_s(a2, m)); a3 = i32x4.add(a3, i32x4.dot_i16x8_s(a3, m));
    a4 = i32x4.add(a4, i32x4.dot_i16x8_s(a4, m)); a5 = i32x4.add(a5, i32x4.dot_i16x8_s(a5, m));
    a6 = i32x4.add(a6, i32x4.dot_i16x8_s(a6, m)); a7 = i32x4.add(a7, i32x4.dot_i16x8_s(a7, m));
    a8 = i32x4.add(a8, i32x4.dot_i16x8_s(a8, m)); a9 = i32x4.add(a9, i32x4.dot_i16x8_s(a9, m));
    a10 = i32x4.add(a10, i32x4.dot_i16x8_s(a10, m)); a11 = i32x4.add(a11, i32x4.dot_i16x8_s(a11, m));
  }
  const s = i32x4.add(i32x4.add(i32x4.add(a0, a1), i32x4.add(a2, a3)), i32x4.add(i32x4.add(a4, a5), i32x4.add(a6, a7)));
  return i32x4.extract_lane(i32x4.add(s, i32x4.add(i32x4.add(a8, a9), i32x4.add(a10, a11))), 0);
}

/**
 * The memory read rate of one thread as the one-row matmul reads panels
 * (tile1xC with four panels, gemm.ts): `bytes` at ptr (a multiple of 64) cut into four
 * parts walked side by side, 16-byte loads, summed with adds so that no
 * multiply-add latency is in the way. Returns a value that depends on every
 * load (bench/stream-wasm.ts times it on one and more threads).
 */
export function streamRead(ptr: usize, bytes: usize): f32 {
  const d = bytes >> 2,
    end = ptr + d;
  let a0 = f32x4.splat(0),
    a1 = a0,
    a2 = a0,
    a3 = a0;
  for (let p = ptr; p < end; p += 16) {
    a0 = f32x4.add(a0, v128.load(p));
    a1 = f32x4.add(a1, v128.load(p + d));
    a2 = f32x4.add(a2, v128.load(p + 2 * d));
    a3 = f32x4.add(a3, v128.load(p + 3 * d));
  }
  const s = f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3));
  return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1) + f32x4.extract_lane(s, 2) + f32x4.extract_lane(s, 3);
}
