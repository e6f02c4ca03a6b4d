// A queued forward: the ops a backend recorded, run in order by every thread.
//
// Between two ops of a forward the threads would otherwise return to
// JavaScript: the calling thread to call the next op and hand its chunks
// out, a worker to wait for them. Here each thread walks the same op list.
// Op i is split into `chunks` chunks (output columns of a matmul, query
// heads of attention; 1 for the small row-wise ops), which the threads claim
// from op i's counter; then every thread waits until op i's chunks are all
// done before it reads op i + 1. Each chunk runs the same kernel on the
// same range as a call from the host would, so the results are bit for bit
// those of running the ops one by one, on any number of threads.
//
// Layout (host-written, see src/backends/wasm/index.ts): op i is OP_WORDS
// i32 at prog + i * OP_BYTES: kind, unit, total, chunks, then the kernel's
// arguments (pointers and sizes; rmsnorm's eps as f32 bits). Chunk c covers
// [c * unit, min(total, c * unit + unit)). `sync` holds two zeroed i32 per
// op: the next chunk to claim and the chunks done.

import { attentionHeads } from "./attention";
import { gemmBf16 } from "./bf16";
import { gemm } from "./gemm";
import { gemmInt8, quantizeRowsInt8 } from "./int8";
import { add, rmsnorm, rope, swiglu } from "./rows";

const OP_WORDS: usize = 16;
const OP_BYTES: usize = OP_WORDS << 2;
const ARG: usize = 16; // byte offset of the first argument in an op

// Op kinds (the host's OP_* in src/backends/wasm/index.ts).
const OP_GEMM = 0; // gemm(y, x, w, packed, M, K, N) over output columns
const OP_ATTENTION = 1; // attentionHeads(out, q, keys, values, mask, hasMask, M, nKeys, nHeads, nKvHeads, hs, scratch) over query heads
const OP_GEMM_BF16 = 2; // gemmBf16(y, x, w, packed, M, K, N) over output columns
const OP_GEMM_INT8 = 3; // gemmInt8(y, xq, packed, M, K, N) over output columns
const OP_RMSNORM = 4; // rmsnorm(y, x, weight, M, D, eps)
const OP_ROPE = 5; // rope(x, table, M, nHeads, headSize)
const OP_SWIGLU = 6; // swiglu(y, gate, up, n)
const OP_ADD = 7; // add(y, x, n)
const OP_COPY = 8; // memory.copy(dst, src, bytes)
const OP_QUANTIZE_INT8 = 9; // quantizeRowsInt8(dst, x, M, K)

// @ts-ignore: decorator
@inline function arg(op: usize, i: usize): i32 {
  return load<i32>(op + ARG + (i << 2));
}

// @ts-ignore: decorator
@inline function ptr(op: usize, i: usize): usize {
  return <usize>load<u32>(op + ARG + (i << 2));
}

/** Chunk [lo, hi) of one op. */
function runChunk(op: usize, lo: i32, hi: i32): void {
  const kind = load<i32>(op);
  if (kind == OP_GEMM) gemm(ptr(op, 0), ptr(op, 1), ptr(op, 2), ptr(op, 3), arg(op, 4), arg(op, 5), arg(op, 6), lo, hi);
  else if (kind == OP_GEMM_INT8) gemmInt8(ptr(op, 0), ptr(op, 1), ptr(op, 2), arg(op, 3), arg(op, 4), arg(op, 5), lo, hi);
  else if (kind == OP_GEMM_BF16) gemmBf16(ptr(op, 0), ptr(op, 1), ptr(op, 2), ptr(op, 3), arg(op, 4), arg(op, 5), arg(op, 6), lo, hi);
  else if (kind == OP_ATTENTION) {
    attentionHeads(ptr(op, 0), ptr(op, 1), ptr(op, 2), ptr(op, 3), ptr(op, 4), arg(op, 5), arg(op, 6), arg(op, 7), arg(op, 8), arg(op, 9), arg(op, 10), ptr(op, 11), lo, hi);
  } else if (kind == OP_RMSNORM) rmsnorm(ptr(op, 0), ptr(op, 1), ptr(op, 2), arg(op, 3), arg(op, 4), reinterpret<f32>(arg(op, 5)));
  else if (kind == OP_ROPE) rope(ptr(op, 0), ptr(op, 1), arg(op, 2), arg(op, 3), arg(op, 4));
  else if (kind == OP_SWIGLU) swiglu(ptr(op, 0), ptr(op, 1), ptr(op, 2), arg(op, 3));
  else if (kind == OP_ADD) add(ptr(op, 0), ptr(op, 1), arg(op, 2));
  else if (kind == OP_COPY) memory.copy(ptr(op, 0), ptr(op, 1), ptr(op, 2));
  else if (kind == OP_QUANTIZE_INT8) quantizeRowsInt8(ptr(op, 0), ptr(op, 1), arg(op, 2), arg(op, 3));
  else unreachable();
}

/**
 * Runs ops 0 .. nOps-1 of the list at `prog` with the counters at `sync`,
 * taking whatever chunks the other threads have not; returns when every
 * chunk of every op is done. A thread that arrives late finds the chunks
 * taken and the counters full, and returns at once.
 */
export function runProgram(prog: usize, nOps: i32, sync: usize): void {
  for (let i: usize = 0; i < <usize>nOps; i++) {
    const op = prog + i * OP_BYTES;
    const unit = load<i32>(op, 4), total = load<i32>(op, 8), chunks = load<i32>(op, 12);
    const claim = sync + (i << 3), done = claim + 4;
    for (;;) {
      const c = atomic.add<i32>(claim, 1);
      if (c >= chunks) break;
      const lo = c * unit;
      runChunk(op, lo, min<i32>(total, lo + unit));
      atomic.add<i32>(done, 1);
    }
    // Op i + 1 may read what any thread wrote for op i.
    while (atomic.load<i32>(done) < chunks) {
      // spin: the other threads' chunks are in progress
    }
  }
}
