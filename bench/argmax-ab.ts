/**
 * Two builds of the WASM kernels, one process, alternating: the exported
 * `argmaxRows` (the greedy pick where the logits are) of a baseline build
 * against a candidate build (default: this checkout's
 * build/ptp-relaxed.wasm) on M rows of N logits, warm in the caches;
 * medians of --alternations batches of 2000 calls.
 *
 *   node --experimental-wasm-relaxed-simd --no-liftoff --import tsx bench/argmax-ab.ts \
 *     --baseline OLD.wasm [--candidate NEW.wasm] [--rows 1,4,16] [--n 32000] [--alternations 41]
 *
 * Both builds get the same logits (a sine of the index: no ties, no order).
 */
import { resolve } from "node:path";
import { benchFlags, COUNT, instantiateBuild, listFlag, median } from "./common.js";

const f = benchFlags({
  baseline: { kind: "string", value: "PATH.wasm", required: true },
  candidate: { kind: "string", value: "PATH.wasm", default: resolve(import.meta.dirname, "../build/ptp-relaxed.wasm") },
  rows: { kind: "string", value: "LIST", default: "1,4,16" },
  n: { ...COUNT, default: 32000 },
  alternations: { ...COUNT, default: 41 },
});
const rowCounts = listFlag("rows", f.rows, COUNT);
const CALLS = 2000;

interface Argmax {
  heapBase(): number;
  argmaxRows(out: number, x: number, M: number, N: number): void;
}
const builds = [f.baseline, f.candidate].map((path) => {
  const { ex, memory } = instantiateBuild<Argmax>(path);
  const out = (ex.heapBase() + 63) & ~63,
    x = out + 64 * 4 * 16;
  const end = x + 4 * f.n * Math.max(...rowCounts);
  if (end > memory.buffer.byteLength) memory.grow(Math.ceil((end - memory.buffer.byteLength) / 65536));
  const logits = new Float32Array(memory.buffer, x, f.n * Math.max(...rowCounts));
  for (let i = 0; i < logits.length; i++) logits[i] = Math.sin(i * 12.9898) * 10;
  return { ex, out, x };
});

console.log(`argmaxRows, ${f.n} logits per row, ${f.alternations} alternations of ${CALLS} calls (us per call, medians)\n`);
console.log("| rows | baseline | candidate | candidate speed |");
console.log("|---|---|---|---|");
for (const M of rowCounts) {
  const times: number[][] = [[], []];
  for (let a = 0; a < f.alternations; a++) {
    for (const k of a % 2 === 0 ? [0, 1] : [1, 0]) {
      const { ex, out, x } = builds[k];
      const t0 = performance.now();
      for (let i = 0; i < CALLS; i++) ex.argmaxRows(out, x, M, f.n);
      times[k].push(((performance.now() - t0) / CALLS) * 1000);
    }
  }
  const [b, c] = times.map(median);
  console.log(`| ${M} | ${b.toFixed(2)} | ${c.toFixed(2)} | ${(b / c).toFixed(2)}x |`);
}
