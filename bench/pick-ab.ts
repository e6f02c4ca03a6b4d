/**
 * Two builds of the WASM kernels, one process, ABBA order: the exported
 * `pickRows` (temperature, float32 softmax and Pick of one row, the
 * backend's `pick` op) of a baseline build against a candidate build
 * (default: this checkout's build/ptp-relaxed.wasm), on random logits rows
 * of --vocab entries at several scales and temperatures. Prints the median
 * microseconds per row of each and checks that both builds pick the same
 * tokens (exit 1 if not).
 *
 *   node --experimental-wasm-relaxed-simd --import tsx bench/pick-ab.ts \
 *     --baseline OLD.wasm [--candidate NEW.wasm] [--vocab 32000] [--rows 8] [--alternations 41] [--logits KIND]
 *
 * --logits: uniform (default: uniform in +-scale), peaked (a language
 * model's shape: Gaussian with sd 3 and one logit at 25, at temperatures
 * down to 0.28, a sharpened draft's), or widened (the first 512 logits
 * uniform, the rest -2^20 as in src/ptp/widen.ts, whose extra tokens have
 * probability 0: a pick there is cheaper than a real 32000-token model's).
 *
 * A baseline: build an older assembly/index.ts with
 * `asc --config asconfig.json --target relaxed --outFile OLD.wasm`.
 */
import { loadavg } from "node:os";
import { resolve } from "node:path";
import { benchFlags, COUNT, instantiateBuild } from "./common.js";

const f = benchFlags({
  baseline: { kind: "string", value: "PATH.wasm", required: true },
  candidate: { kind: "string", value: "PATH.wasm", default: resolve(import.meta.dirname, "../build/ptp-relaxed.wasm") },
  // At most 2^20 x 256 float32 logits (1 GiB) in the builds' memories.
  vocab: { ...COUNT, default: 32000, max: 1 << 20 },
  rows: { ...COUNT, default: 8, max: 256 },
  alternations: { ...COUNT, default: 41 },
  logits: { kind: "string", value: "KIND", default: "uniform", choices: ["uniform", "peaked", "widened"] },
});
const { baseline, candidate, alternations } = f;
const V = f.vocab,
  M = f.rows,
  kind = f.logits;

interface Exports {
  heapBase(): number;
  pickRows(out: number, x: number, M: number, N: number, t: number, us: number, scratch: number): void;
}
function load(path: string) {
  const { ex, memory } = instantiateBuild<Exports>(path);
  const base = (ex.heapBase() + 63) & ~63;
  const at = { x: base, us: base + 4 * M * V, out: base + 4 * M * V + 8 * M, scratch: base + 4 * M * V + 8 * M + 64 };
  const need = at.scratch + 4 * V - memory.buffer.byteLength;
  if (need > 0) memory.grow(Math.ceil(need / 65536));
  return { ex, memory, at };
}
const A = load(baseline),
  B = load(candidate);

let seed = 12345;
const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296;
const median = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1];
const ta: number[] = [],
  tb: number[] = [];
let differ = 0;
const load0 = loadavg()[0].toFixed(2);
for (let r = 0; r < alternations; r++) {
  const scale = [1, 5, 20, 0.1][r % 4],
    t = Math.fround((kind === "peaked" ? [0.28, 0.7, 1, 0.4] : [0.7, 1, 0.3, 1.5])[(r >> 2) % 4]);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const x = Float32Array.from({ length: M * V }, (_, i) => {
    if (kind === "peaked") return i % V === 123 ? 25 : 3 * gauss();
    if (kind === "widened" && i % V >= 512) return -(2 ** 20);
    return (rand() * 2 - 1) * scale;
  });
  const us = Float64Array.from({ length: M }, () => Math.fround(rand()));
  const picks: Int32Array[] = [];
  const time = (k: typeof A, into: number[]) => {
    new Float32Array(k.memory.buffer, k.at.x, M * V).set(x);
    new Float64Array(k.memory.buffer, k.at.us, M).set(us);
    const t0 = performance.now();
    k.ex.pickRows(k.at.out, k.at.x, M, V, t, k.at.us, k.at.scratch);
    into.push(((performance.now() - t0) * 1000) / M);
    picks.push(new Int32Array(k.memory.buffer, k.at.out, M).slice());
  };
  if (r % 2 === 0) time(A, ta), time(B, tb);
  else time(B, tb), time(A, ta);
  const [p, q] = r % 2 === 0 ? picks : [picks[1], picks[0]];
  for (let m = 0; m < M; m++) if (p[m] !== q[m]) differ++;
}
console.log(`baseline ${baseline}\ncandidate ${candidate}\n${alternations} alternations of ${M} rows x ${V} logits (${kind}); load ${load0} before, ${loadavg()[0].toFixed(2)} after\n`);
console.log("| build | us per row (median) |\n|---|---|");
console.log(`| baseline | ${median(ta).toFixed(1)} |\n| candidate | ${median(tb).toFixed(1)} |`);
console.log(`\ncandidate / baseline time: ${(median(tb) / median(ta)).toFixed(2)}; rows picked differently: ${differ}`);
if (differ > 0) process.exit(1);
