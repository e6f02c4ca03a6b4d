/**
 * Two builds of the WASM kernels, one process, alternating: the exported
 * `gemm` of a baseline build against a candidate build (default: this
 * checkout's build/ptp-relaxed.wasm) on y = x W^T for given shapes and row
 * counts, medians of --alternations short batches. For A/B tests of kernel
 * changes on a noisy machine (run with --no-liftoff so both are optimised).
 *
 *   node --experimental-wasm-relaxed-simd --no-liftoff --import tsx bench/gemm-ab.ts \
 *     --baseline OLD.wasm [--candidate NEW.wasm] [--shapes 288x288,768x32000] [--rows 1,2,16] [--alternations 41] [--cold]
 *     [--weights f32|bf16|int8]
 *
 * --cold: each call reads the next of enough copies of the packed weights
 * to pass 96 MiB, so they come from memory as in a large model's decode
 * step (default: one copy, warm in the caches when it fits).
 *
 * --weights: which kernel: f32 `gemm` (default), `gemmBf16` or `gemmInt8`
 * (x quantised once per call with quantizeRowsInt8, inside the timing, as
 * the backend does), each on its own packed panels.
 *
 * Shapes are K x N (W is [N, K]). A baseline: build an older
 * assembly/index.ts with `asc --config asconfig.json --target relaxed` and
 * an outFile elsewhere. Both builds must export heapBase, packedBytes,
 * packPanels and gemm(y, x, w, packed, M, K, N, n0, n1).
 */
import { resolve } from "node:path";
import { instantiateBuild, option } from "./common.js";

const baseline = option("--baseline");
if (!baseline) throw new Error("--baseline PATH.wasm is required");
const candidate = option("--candidate", resolve(import.meta.dirname, "../build/ptp-relaxed.wasm"))!;
const shapes = option("--shapes", "288x288,288x768,768x768,288x32000,768x2048,768x32000")!
  .split(",")
  .map((s) => s.split("x").map(Number));
const rows = option("--rows", "1,2,4,8,16")!.split(",").map(Number);
const alternations = Number(option("--alternations", "41"));
const cold = process.argv.includes("--cold");
const weights = option("--weights", "f32")!;
if (!["f32", "bf16", "int8"].includes(weights)) throw new Error(`--weights must be f32, bf16 or int8, got ${weights}`);

type Gemm = (y: number, x: number, w: number, p: number, M: number, K: number, N: number, n0: number, n1: number) => void;
type Pack = (dst: number, w: number, K: number, N: number) => void;
interface Exports {
  heapBase(): number;
  packedBytes(K: number, N: number): number;
  packPanels: Pack;
  gemm: Gemm;
  packedBytesBf16(K: number, N: number): number;
  packPanelsBf16: Pack;
  gemmBf16: Gemm;
  packedBytesInt8(K: number, N: number): number;
  packPanelsInt8: Pack;
  gemmInt8(y: number, xq: number, p: number, M: number, K: number, N: number, n0: number, n1: number): void;
  quantizedRowsBytes(M: number, K: number): number;
  quantizeRowsInt8(dst: number, x: number, M: number, K: number): void;
}
const load = (path: string) => instantiateBuild<Exports>(path);
const A = load(baseline),
  B = load(candidate);
const median = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1];

/**
 * A build's chosen kernel on one shape: packed copies of W (several with
 * --cold), x and y, and `call(M)`, which computes y = x W^T for M rows
 * from the next copy (int8: quantising x first, as the backend does).
 */
function setup(m: ReturnType<typeof load>, K: number, N: number, Mmax: number) {
  const ex = m.ex;
  const [bytes, pack] = weights === "bf16" ? [ex.packedBytesBf16, ex.packPanelsBf16] : weights === "int8" ? [ex.packedBytesInt8, ex.packPanelsInt8] : [ex.packedBytes, ex.packPanels];
  const packed = (bytes(K, N) + 63) & ~63;
  const copies = cold ? Math.ceil((96 << 20) / packed) : 1;
  const qBytes = weights === "int8" ? ex.quantizedRowsBytes(Mmax, K) : 0;
  const base = ex.heapBase();
  const need = base + 4 * (N * K + Mmax * K + Mmax * N) + qBytes + copies * packed + 1024;
  const have = m.memory.buffer.byteLength;
  if (need > have) m.memory.grow(Math.ceil((need - have) / 65536));
  const f = new Float32Array(m.memory.buffer);
  const al = (x: number) => (x + 63) & ~63;
  const w = al(base),
    x = al(w + 4 * N * K),
    y = al(x + 4 * Mmax * K),
    q = al(y + 4 * Mmax * N),
    p = al(q + qBytes);
  for (let i = 0; i < N * K; i++) f[w / 4 + i] = Math.sin(i);
  for (let i = 0; i < Mmax * K; i++) f[x / 4 + i] = Math.cos(i);
  for (let c = 0; c < copies; c++) pack(p + c * packed, w, K, N);
  let next = 0;
  // The packed copy the next call reads.
  const panels = () => p + (next++ % copies) * packed;
  const call =
    weights === "int8"
      ? (M: number) => {
          ex.quantizeRowsInt8(q, x, M, K);
          ex.gemmInt8(y, q, panels(), M, K, N, 0, N);
        }
      : weights === "bf16"
        ? (M: number) => ex.gemmBf16(y, x, w, panels(), M, K, N, 0, N)
        : (M: number) => ex.gemm(y, x, w, panels(), M, K, N, 0, N);
  return { call };
}

console.log(`baseline ${baseline}\ncandidate ${candidate}\nkernel ${weights}\nweights ${cold ? "cold (from memory: copies past 96 MiB)" : "one copy (warm where it fits)"}\n`);
console.log("| K x N | M | baseline GFLOP/s | candidate GFLOP/s | candidate / baseline |");
console.log("|---|---|---|---|---|");
for (const [K, N] of shapes) {
  const Mmax = Math.max(...rows);
  const sa = setup(A, K, N, Mmax),
    sb = setup(B, K, N, Mmax);
  for (const M of rows) {
    const reps = Math.max(3, Math.round(3e7 / (M * N * K)));
    const ta: number[] = [],
      tb: number[] = [];
    for (let i = 0; i < 3 * reps; i++) {
      sa.call(M);
      sb.call(M);
    }
    const timeA = () => {
      const t = performance.now();
      for (let i = 0; i < reps; i++) sa.call(M);
      ta.push((performance.now() - t) / reps);
    };
    const timeB = () => {
      const t = performance.now();
      for (let i = 0; i < reps; i++) sb.call(M);
      tb.push((performance.now() - t) / reps);
    };
    // ABBA: each build runs first in half the alternations (whichever runs second finds the other's effects).
    for (let r = 0; r < alternations; r++) {
      if (r % 2 === 0) timeA(), timeB();
      else timeB(), timeA();
    }
    const a = median(ta),
      b = median(tb),
      gf = (ms: number) => ((2 * M * N * K) / ms / 1e6).toFixed(1);
    console.log(`| ${K}x${N} | ${M} | ${gf(a)} | ${gf(b)} | ${(a / b).toFixed(2)}x |`);
  }
}
