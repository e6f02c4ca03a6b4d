// bf16 weights.
//
// The `weights: "bf16"` option of the backend: every matmul weight is used
// rounded to bfloat16 (round to nearest even; the model is then that bf16
// teacher), read from panels of half the bytes. The panels are gemm.ts's
// (4 columns, k-major; the last one padded with zero columns) with 8 bytes
// per k: the four columns' bf16 bits, which the kernels widen to f32 exactly
// (the bits moved up 16). Everything else is gemm.ts's f32 kernels, so the
// per-element order is exactly the f32 one with w replaced by its bf16
// rounding: batch invariance holds, and the result equals the f32 kernels
// run on weights rounded beforehand, bit for bit.

import { gemmPanels } from "./gemm";

/** The bf16 bits of x, rounded to nearest even (NaN stays NaN). */
// @ts-ignore: decorator
@inline function bf16Bits(x: f32): u32 {
  const u = reinterpret<u32>(x);
  if ((u & 0x7fffffff) > 0x7f800000) return (u >> 16) | 0x40;
  return (u + 0x7fff + ((u >> 16) & 1)) >> 16;
}

/** Bytes `packPanelsBf16` writes for a [N, K] matrix. */
export function packedBytesBf16(K: i32, N: i32): usize {
  return (<usize>((N + 3) >> 2)) * (<usize>K) << 3;
}

/** Writes the bf16 panels of w [N, K] to dst (packedBytesBf16(K, N) bytes). */
export function packPanelsBf16(dst: usize, w: usize, K: i32, N: i32): void {
  const rowBytes = (<usize>K) << 2;
  let d = dst;
  for (let n = 0; n < N; n += 4) {
    const r0 = w + <usize>n * rowBytes;
    const r1 = n + 1 < N ? r0 + rowBytes : 0, r2 = n + 2 < N ? r0 + 2 * rowBytes : 0, r3 = n + 3 < N ? r0 + 3 * rowBytes : 0;
    for (let k: usize = 0; k < rowBytes; k += 4) {
      store<u16>(d, <u16>bf16Bits(load<f32>(r0 + k)));
      store<u16>(d, r1 ? <u16>bf16Bits(load<f32>(r1 + k)) : 0, 2);
      store<u16>(d, r2 ? <u16>bf16Bits(load<f32>(r2 + k)) : 0, 4);
      store<u16>(d, r3 ? <u16>bf16Bits(load<f32>(r3 + k)) : 0, 6);
      d += 8;
    }
  }
}

/** `gemm` with bf16 weights: `packed` is the panels packPanelsBf16 made of w (w itself is not read). */
export function gemmBf16(y: usize, x: usize, w: usize, packed: usize, M: i32, K: i32, N: i32, c0: i32, c1: i32): void {
  if (M <= 0 || c1 <= c0) return;
  gemmPanels(true, y, x, packed, M, K, N, c0, c1);
}
