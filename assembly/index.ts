// WASM SIMD kernels of the "wasm" backend.
//
// Built twice from this one source (see asconfig.json): target "simd" with
// plain SIMD and target "relaxed" with relaxed SIMD as well. The only
// difference is `madd` (assembly/madd.ts), selected by the compile-time constant
// ASC_FEATURE_RELAXED_SIMD.
//
// Rules of these modules (one file per concept: gemm.ts f32 matmul, bf16.ts
// and int8.ts the reduced-precision weights, reduce.ts the dot-product order
// of attention, attention.ts, rows.ts the row-wise ops, exp.ts, sampling.ts,
// pool.ts how threads share one op, layer.ts a whole decoder layer):
// - Compiled with `--runtime stub` and no managed allocation at all: every
//   kernel takes raw byte pointers (usize) into linear memory plus element
//   counts. The TypeScript side (src/backends/wasm/) owns the heap: it places
//   buffers above `heapBase()` and grows the memory itself.
// - BATCH INVARIANCE: the float operations that produce an output element
//   depend only on the sizes of the reduction (K, D, N, headSize, the set of
//   visible keys), never on M, on the row index, or on which tile kernel
//   handles the element. See the comment at the top of gemm.ts for the exact order.

export { attention, attentionHeads, touchSink } from "./attention";
export { gemmBf16, packedBytesBf16, packPanelsBf16 } from "./bf16";
export { matmul, gemm, inPlaceScratchBytes, packedBytes, packPanels, packPanelsInPlace, unpackPanelsInPlace } from "./gemm";
export { add, argmaxRows, embedding, embeddingPanels, rmsnorm, rope, swiglu } from "./rows";
export { expRows, pickRows, softmax, tokenProbabilities } from "./sampling";
export { decoderLayer, decoderLayerSlots } from "./layer";
export { attend, guidedChunks, poolBytes, poolClose, poolJobs, poolMaxChunks, poolWorkerChunks, poolWorkers, product, productScratchBytes, workerLoop } from "./pool";
export { gemmInt8, int8GroupSize, packedBytesInt8, packPanelsInt8, quantizedRowsBytes, quantizeRowsInt8 } from "./int8";

/** Start of the free linear memory: everything below is static data. */
export function heapBase(): usize {
  return __heap_base;
}

/** memmove of n bytes. */
export function copyBytes(dst: usize, src: usize, n: usize): void {
  memory.copy(dst, src, n);
}

/** memset of n bytes to zero. */
export function zeroBytes(dst: usize, n: usize): void {
  memory.fill(dst, 0, n);
}

export { dotPeak, fmaPeak, streamRead } from "./peak";
