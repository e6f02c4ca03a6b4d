/**
 * Two builds of the WASM kernels, one process, alternating: the exported
 * `gemm` of a baseline build against a candidate build (default: this
 * checkout's build/ptp-relaxed.wasm) on y = x W^T for given shapes and row
 * counts, medians of --alternations short batches. For A/B tests of kernel
 * changes on a noisy machine (run with --no-liftoff so both are optimised).
 *
 *   node --experimental-wasm-relaxed-simd --no-liftoff --import tsx bench/gemm-ab.ts \
 *     --baseline OLD.wasm [--candidate NEW.wasm] [--shapes 288x288,768x32000] [--rows 1,2,16] [--alternations 41] [--cold]
 *     [--weights f32|bf16|int8] [--control]
 *
 * --cold: each call reads the next of enough copies of the packed weights
 * to pass 96 MiB, so they come from memory as in a large model's decode
 * step (default: one copy, warm in the caches when it fits).
 *
 * --control: a second instance of the baseline build, created after the
 * candidate and timed in the same rotation: the candidate's ratio is then to
 * the mean of the two baseline instances' times (instances created later
 * measured up to 18 % faster in A/A/A runs of one build on this machine, so
 * one baseline created first favours the candidate), and the two
 * baselines' ratio (A/A) shows how far this run moves the same code.
 *
 * --weights: which kernel: f32 (default), bf16 or int8, each on its own
 * packed panels, called through the builds' `product` (assembly/pool.ts) on
 * the calling thread, as the backend calls it: what product does to x first
 * (int8 quantises it, f32 and bf16 interleave quads of rows) is inside the
 * timing. A build without `product` runs `gemm`, `gemmBf16` or
 * quantizeRowsInt8 and `gemmInt8`.
 *
 * Shapes are K x N (W is [N, K]). A baseline: build an older
 * assembly/index.ts with `asc --config asconfig.json --target relaxed` and
 * an outFile elsewhere. Both builds must export heapBase and the packing
 * and kernel functions of their weight type.
 */
import { resolve } from "node:path";
import { benchFlags, COUNT, instantiateBuild, listFlag, median, shapesFlag, WEIGHTS } from "./common.js";
import { WEIGHT_TYPES } from "../src/backends/backend.js";

const f = benchFlags({
  baseline: { kind: "string", value: "PATH.wasm", required: true },
  candidate: { kind: "string", value: "PATH.wasm", default: resolve(import.meta.dirname, "../build/ptp-relaxed.wasm") },
  shapes: { kind: "string", value: "LIST", default: "288x288,288x768,768x768,288x32000,768x2048,768x32000" },
  rows: { kind: "string", value: "LIST", default: "1,2,4,8,16" },
  alternations: { ...COUNT, default: 41 },
  cold: { kind: "bool" },
  control: { kind: "bool" },
  weights: { ...WEIGHTS, default: "f32" },
});
const { baseline, candidate, alternations, cold, control, weights } = f;
const shapes = shapesFlag("shapes", f.shapes);
const rows = listFlag("rows", f.rows, COUNT);

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
  /** The backend's entry (assembly/pool.ts); absent from builds before the seventeenth session. */
  product?(ctrl: number, threads: number, weights: number, y: number, x: number, w: number, packed: number, xq: number, M: number, K: number, N: number): void;
}
const load = (path: string) => instantiateBuild<Exports>(path);
// A throwaway first instance: in A/A/A runs of one build the first instance created ran 10-24 %
// slower than the later ones at M = 2 and 4 (--cold).
load(baseline);
/** The builds timed: baseline, candidate and (--control) a second instance of the baseline. */
const builds = [load(baseline), load(candidate), ...(control ? [load(baseline)] : [])];

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
  // Room for what product writes first: int8's quantised rows, or f32 and bf16 rows interleaved by quads.
  const qBytes = (weights === "int8" ? ex.quantizedRowsBytes(Mmax, K) : 0) + 4 * Mmax * K;
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
  const product = ex.product?.bind(ex);
  const call = product
    ? (M: number) => product(0, 1, WEIGHT_TYPES.indexOf(weights), y, x, w, panels(), q, M, K, N)
    : weights === "int8"
      ? (M: number) => {
          ex.quantizeRowsInt8(q, x, M, K);
          ex.gemmInt8(y, q, panels(), M, K, N, 0, N);
        }
      : weights === "bf16"
        ? (M: number) => ex.gemmBf16(y, x, w, panels(), M, K, N, 0, N)
        : (M: number) => ex.gemm(y, x, w, panels(), M, K, N, 0, N);
  return { call };
}

console.log(`baseline ${baseline}\ncandidate ${candidate}\nkernel ${weights}\nweights ${cold ? "cold (from memory: copies past 96 MiB)" : "one copy (warm where it fits)"}`);
if (control) console.log("control: a second instance of the baseline, created after the candidate; baseline = the mean of both");
console.log(`\n| K x N | M | baseline GFLOP/s | candidate GFLOP/s | candidate / baseline${control ? " (mean of both)" : ""} |${control ? " baseline 2 / baseline 1 (A/A) |" : ""}`);
console.log(`|---|---|---|---|---|${control ? "---|" : ""}`);
for (const [K, N] of shapes) {
  const Mmax = Math.max(...rows);
  const arms = builds.map((b) => ({ s: setup(b, K, N, Mmax), times: [] as number[] }));
  for (const M of rows) {
    const reps = Math.max(3, Math.round(3e7 / (M * N * K)));
    for (const arm of arms) arm.times = [];
    for (let i = 0; i < 3 * reps; i++) for (const arm of arms) arm.s.call(M);
    const time = (arm: (typeof arms)[number]) => {
      const t = performance.now();
      for (let i = 0; i < reps; i++) arm.s.call(M);
      arm.times.push((performance.now() - t) / reps);
    };
    // Each alternation runs every arm once, the order rotated and reversed in turn, so each runs
    // first and last equally often (whichever runs after another finds that one's effects).
    for (let r = 0; r < alternations; r++) {
      const order = arms.map((_, i) => arms[(i + r) % arms.length]);
      if (r % 2 === 1) order.reverse();
      for (const arm of order) time(arm);
    }
    const [a1, b, a2] = arms.map((arm) => median(arm.times)),
      a = control ? (a1 + a2) / 2 : a1,
      gf = (ms: number) => ((2 * M * N * K) / ms / 1e6).toFixed(1);
    console.log(`| ${K}x${N} | ${M} | ${gf(a)} | ${gf(b)} | ${(a / b).toFixed(2)}x |${control ? ` ${(a1 / a2).toFixed(2)}x |` : ""}`);
  }
}
