import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { WASM_PAGE_BYTES } from "../../backends/wasm/allocator.js";
import type { WasmMemory } from "../../util/wasm-api.js";
import { jsKernels, type TrainKernels } from "./kernels.js";

/**
 * The training products on WASM SIMD (assembly/train.ts, built to
 * build/ptp-train.wasm). The module owns one growable memory; each call
 * copies its operands in above the module's heap base, runs the kernel and
 * copies the result out. For training-sized matrices the copies are a
 * small fraction of the arithmetic (O(MK + NK + MN) against O(MKN)).
 */
interface TrainExports {
  memory: WasmMemory;
  heapBase(): number;
  matmul(y: number, x: number, w: number, M: number, K: number, N: number, scratch: number): void;
  matmulGradX(dx: number, dy: number, w: number, M: number, K: number, N: number): void;
  matmulGradW(dw: number, dy: number, x: number, M: number, K: number, N: number, scratch: number): void;
  attentionForward(out: number, probs: number, q: number, k: number, v: number, ranges: number, offsets: number, M: number, H: number, KVH: number, hs: number, scale: number, nKeys: number, scratch: number): void;
  attentionBackward(dq: number, dk: number, dv: number, dout: number, probs: number, q: number, k: number, v: number, ranges: number, offsets: number, M: number, H: number, KVH: number, hs: number, scale: number, nKeys: number, scratch: number, kvFrom: number): void;
  swiglu(y: number, sig: number, gate: number, up: number, n: number): void;
  swigluBackward(dgate: number, dup: number, dy: number, gate: number, up: number, sig: number, n: number): void;
  loraForward(y: number, t: number, x: number, w: number, a: number, b: number, M: number, K: number, N: number, r: number, s: number, scratch: number): void;
  loraBackward(dx: number, da: number, db: number, dw: number, dy: number, x: number, w: number, a: number, b: number, t: number, M: number, K: number, N: number, r: number, s: number, scratch: number): void;
}

const WASM_URL = new URL("../../../build/ptp-train.wasm", import.meta.url);

export function wasmTrainKernels(): TrainKernels {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(fileURLToPath(WASM_URL));
  } catch (err) {
    throw new Error(`training kernels: cannot read ${fileURLToPath(WASM_URL)} (run 'npm run build:wasm'): ${err instanceof Error ? err.message : String(err)}`);
  }
  // Synchronous compile: the module is a few KB (the limit browsers put on
  // main-thread compiles is for large modules).
  const wa = (globalThis as unknown as { WebAssembly: { Module: new (b: Uint8Array) => object; Instance: new (m: object, i: object) => { exports: unknown } } }).WebAssembly;
  const ex = new wa.Instance(new wa.Module(bytes), {}).exports as TrainExports;
  const base = (ex.heapBase() + 15) & ~15;

  /** Room for operands of these sizes (in 4-byte elements), growing the memory when needed; returns their byte offsets. */
  const place = (...sizes: number[]): number[] => {
    const offsets: number[] = [];
    let end = base;
    for (const n of sizes) {
      offsets.push(end);
      end += (n * 4 + 15) & ~15;
    }
    const have = ex.memory.buffer.byteLength;
    if (end > have) ex.memory.grow(Math.ceil((end - have) / WASM_PAGE_BYTES));
    return offsets;
  };
  const f32 = () => new Float32Array(ex.memory.buffer);
  const put = (p: number, data: Float32Array | Int32Array, n = data.length) => (data instanceof Int32Array ? new Int32Array(ex.memory.buffer) : f32()).set(data.subarray(0, n), p / 4);
  const get = (p: number, into: Float32Array, n = into.length) => into.set(f32().subarray(p / 4, p / 4 + n));

  return {
    name: "wasm",
    matmul(y, x, w, M, K, N) {
      const [px, pw, py, ps] = place(M * K, N * K, M * N, N * K);
      put(px, x, M * K);
      put(pw, w, N * K);
      ex.matmul(py, px, pw, M, K, N, ps);
      get(py, y, M * N);
    },
    matmulGradX(dx, dy, w, M, K, N) {
      const [pdy, pw, pdx] = place(M * N, N * K, M * K);
      put(pdy, dy, M * N);
      put(pw, w, N * K);
      put(pdx, dx, M * K);
      ex.matmulGradX(pdx, pdy, pw, M, K, N);
      get(pdx, dx, M * K);
    },
    matmulGradW(dw, dy, x, M, K, N) {
      const [pdy, px, pdw, ps] = place(M * N, M * K, N * K, M * N);
      put(pdy, dy, M * N);
      put(px, x, M * K);
      put(pdw, dw, N * K);
      ex.matmulGradW(pdw, pdy, px, M, K, N, ps);
      get(pdw, dw, N * K);
    },
    attentionForward(out, probs, q, k, v, ranges, offsets, M, H, KVH, hs, scale) {
      const nKeys = k.length / (KVH * hs);
      const [po, pp, pq, pk, pv, pr, pf, ps] = place(out.length, probs.length, q.length, k.length, v.length, ranges.length, offsets.length, k.length);
      put(pq, q);
      put(pk, k);
      put(pv, v);
      put(pr, ranges);
      put(pf, offsets);
      ex.attentionForward(po, pp, pq, pk, pv, pr, pf, M, H, KVH, hs, scale, nKeys, ps);
      get(po, out);
      get(pp, probs);
    },
    attentionBackward(dq, dk, dv, dout, probs, q, k, v, ranges, offsets, M, H, KVH, hs, scale, kvFrom = 0) {
      const KW = KVH * hs,
        nKeys = k.length / KW;
      kvFrom = Math.max(0, Math.min(nKeys, kvFrom));
      let longest = 0;
      for (let m = 0; m < M; m++) longest = Math.max(longest, ranges[4 * m + 1] - ranges[4 * m] + ranges[4 * m + 3] - ranges[4 * m + 2]);
      const sizes = [dq.length, dk.length, dv.length, dout.length, probs.length, q.length, k.length, v.length, ranges.length, offsets.length, v.length + 4 + longest];
      const [pdq, pdk, pdv, pdo, pp, pq, pk, pv, pr, pf, ps] = place(...sizes);
      // The rows of dk, dv below kvFrom are neither read nor written: copy the rest only.
      const from = kvFrom * KW,
        tailK = dk.subarray(from),
        tailV = dv.subarray(from);
      const inputs: [number, Float32Array | Int32Array][] = [
        [pdq, dq],
        [pdk + 4 * from, tailK],
        [pdv + 4 * from, tailV],
        [pdo, dout],
        [pp, probs],
        [pq, q],
        [pk, k],
        [pv, v],
        [pr, ranges],
        [pf, offsets],
      ];
      for (const [p, a] of inputs) put(p, a);
      ex.attentionBackward(pdq, pdk, pdv, pdo, pp, pq, pk, pv, pr, pf, M, H, KVH, hs, scale, nKeys, ps, kvFrom);
      get(pdq, dq);
      get(pdk + 4 * from, tailK);
      get(pdv + 4 * from, tailV);
    },
    loraForward(y, t, x, w, a, b, M, K, N, r, s) {
      const [py, pt, px, pw, pa, pb, ps] = place(M * N, M * r, M * K, N * K, r * K, N * r, M * N + 4 + Math.max(N * K, r * K, N * r));
      put(px, x, M * K);
      put(pw, w, N * K);
      put(pa, a, r * K);
      put(pb, b, N * r);
      ex.loraForward(py, pt, px, pw, pa, pb, M, K, N, r, s, ps);
      get(py, y, M * N);
      get(pt, t, M * r);
    },
    loraBackward(dx, da, db, dw, dy, x, w, a, b, t, M, K, N, r, s) {
      const [pdx, pda, pdb, pdw, pdy, px, pw, pa, pb, pt, ps] = place(dx ? M * K : 0, da ? r * K : 0, db ? N * r : 0, dw ? N * K : 0, M * N, M * K, N * K, r * K, N * r, M * r, M * N + M * r + 8 + Math.max(M * N, M * r));
      const grads: [number, Float32Array | null, number][] = [
        [pdx, dx, M * K],
        [pda, da, r * K],
        [pdb, db, N * r],
        [pdw, dw, N * K],
      ];
      for (const [p, g, n] of grads) if (g) put(p, g, n);
      put(pdy, dy, M * N);
      put(px, x, M * K);
      put(pw, w, N * K);
      put(pa, a, r * K);
      put(pb, b, N * r);
      put(pt, t, M * r);
      ex.loraBackward(dx ? pdx : 0, da ? pda : 0, db ? pdb : 0, dw ? pdw : 0, pdy, px, pw, pa, pb, pt, M, K, N, r, s, ps);
      for (const [p, g, n] of grads) if (g) get(p, g, n);
    },
    swigluBackward(dgate, dup, dy, gate, up, sig, n) {
      const [pdg, pdu, pdy, pg, pu, ps] = place(dgate ? n : 0, dup ? n : 0, n, n, n, n);
      if (dgate) put(pdg, dgate, n);
      if (dup) put(pdu, dup, n);
      put(pdy, dy, n);
      put(pg, gate, n);
      put(pu, up, n);
      put(ps, sig, n);
      ex.swigluBackward(dgate ? pdg : 0, dup ? pdu : 0, pdy, pg, pu, ps, n);
      if (dgate) get(pdg, dgate, n);
      if (dup) get(pdu, dup, n);
    },
    swiglu(y, sig, gate, up, n) {
      const [py, ps, pg, pu] = place(n, n, n, n);
      put(pg, gate, n);
      put(pu, up, n);
      ex.swiglu(py, ps, pg, pu, n);
      get(py, y, n);
      get(ps, sig, n);
    },
  };
}

/** The training kernels that go with a compute backend: WASM SIMD with "wasm", plain TypeScript otherwise. */
export function trainKernelsFor(backend: string): TrainKernels {
  return backend === "wasm" ? wasmTrainKernels() : jsKernels;
}
