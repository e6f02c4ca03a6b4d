// One decoder layer in one call: what src/model/transformer.ts does op by op
// for a layer without an adapter (the attention and feed-forward sublayers of
// src/model/attention.ts and feedforward.ts), the same kernels on the same
// arguments in the same order, so the same bits. It saves the ~17 calls
// from JavaScript a layer would otherwise make (Backend.decoderLayer).
//
// The arguments are an i32 block at `a` (the slots below; pointers are byte
// addresses in this memory, eps is f32 bits). For every row m of the block:
//   xb = rmsnorm(x) * rmsAtt
//   q, k, v = xb Wq^T, xb Wk^T, xb Wv^T;  RoPE(q), RoPE(k) from the table
//   keys[cached + m] = k,  values[cached + m] = v
//   att = attention(q, keys, values, mask);  x += att Wo^T
//   xb = rmsnorm(x) * rmsFfn
//   x += (silu(xb W1^T) * (xb W3^T)) W2^T

import { attend, product, products } from "./pool";
import { add, rmsnorm, rope, swiglu } from "./rows";

// Slots of the argument block (WasmBackend.decoderLayer in src/backends/wasm/index.ts
// writes it, naming the same slots L_*).
const X = 0; // activations: x, xb, xb2, q, k, v, att, hb, hb2 (run state)
const XB = 1;
const XB2 = 2;
const Q = 3;
const K = 4;
const V = 5;
const ATT = 6;
const HB = 7;
const HB2 = 8;
const RMS_ATT = 9; // weights, then each matmul weight's panels
const RMS_FFN = 10;
const WQ = 11; // 7 weights: wq, wk, wv, wo, w1, w2, w3
const PQ = 18; // their panels, same order
const KEYS = 25; // this layer's cache
const VALUES = 26;
const TABLE = 27; // RoPE (cos, sin) per row and pair
const MASK = 28;
const HAS_MASK = 29; // 0 causal, 1 dense u8, 2 sparse i32
const PAIRS = 30; // (row, key) pairs attention visits at most
const CACHED = 31;
const ROWS = 32;
const DIM = 33;
const HIDDEN = 34;
const HEADS = 35;
const KV_HEADS = 36;
const HEAD_SIZE = 37;
const EPS = 38; // f32
const WEIGHTS = 39; // WEIGHTS_F32, _BF16, _INT8 (pool.ts)
const SCRATCH = 40; // attention scores and int8 rows: enough for both
const ARG_SLOTS = 41;

/** i32 slots of decoderLayer's argument block. */
export function decoderLayerSlots(): i32 {
  return ARG_SLOTS;
}

// @ts-ignore: decorator
@inline function get(a: usize, i: i32): i32 {
  return load<i32>(a + ((<usize>i) << 2));
}

// @ts-ignore: decorator
@inline function ptr(a: usize, i: i32): usize {
  return <usize>get(a, i);
}

/** One decoder layer for the block's rows, in place on x (threads as product's: `ctrl` 0 for none). */
export function decoderLayer(ctrl: usize, threads: i32, a: usize): void {
  const M = get(a, ROWS), dim = get(a, DIM), hidden = get(a, HIDDEN);
  const nHeads = get(a, HEADS), nKvHeads = get(a, KV_HEADS), hs = get(a, HEAD_SIZE);
  const kv = nKvHeads * hs;
  const weights = get(a, WEIGHTS), scratch = ptr(a, SCRATCH);
  const eps = reinterpret<f32>(get(a, EPS));
  const x = ptr(a, X), xb = ptr(a, XB), xb2 = ptr(a, XB2);

  // Attention sublayer.
  rmsnorm(xb, x, ptr(a, RMS_ATT), M, dim, eps);
  // q, k and v share xb: one preparation of it, one job for the threads.
  products(
    ctrl, threads, weights, xb, scratch, M, dim,
    ptr(a, Q), ptr(a, WQ), ptr(a, PQ), dim, ptr(a, K), ptr(a, WQ + 1), ptr(a, PQ + 1), kv, ptr(a, V), ptr(a, WQ + 2), ptr(a, PQ + 2), kv,
  );
  rope(ptr(a, Q), ptr(a, TABLE), M, nHeads, hs);
  rope(ptr(a, K), ptr(a, TABLE), M, nKvHeads, hs);
  const rowBytes = (<usize>kv) << 2, at = <usize>get(a, CACHED) * rowBytes;
  memory.copy(ptr(a, KEYS) + at, ptr(a, K), <usize>M * rowBytes);
  memory.copy(ptr(a, VALUES) + at, ptr(a, V), <usize>M * rowBytes);
  attend(ctrl, threads, ptr(a, ATT), ptr(a, Q), ptr(a, KEYS), ptr(a, VALUES), ptr(a, MASK), get(a, HAS_MASK), M, get(a, CACHED) + M, nHeads, nKvHeads, hs, scratch, get(a, PAIRS));
  product(ctrl, threads, weights, xb2, ptr(a, ATT), ptr(a, WQ + 3), ptr(a, PQ + 3), scratch, M, dim, dim);
  add(x, xb2, M * dim);

  // Feed-forward sublayer.
  rmsnorm(xb, x, ptr(a, RMS_FFN), M, dim, eps);
  products(ctrl, threads, weights, xb, scratch, M, dim, ptr(a, HB), ptr(a, WQ + 4), ptr(a, PQ + 4), hidden, ptr(a, HB2), ptr(a, WQ + 6), ptr(a, PQ + 6), hidden, 0, 0, 0, 0);
  swiglu(ptr(a, HB), ptr(a, HB), ptr(a, HB2), M * hidden);
  product(ctrl, threads, weights, xb2, ptr(a, HB), ptr(a, WQ + 5), ptr(a, PQ + 5), scratch, M, hidden, dim);
  add(x, xb2, M * dim);
}
