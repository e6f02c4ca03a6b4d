/**
 * npm run bench: the engine's speed, every figure measured side by side in
 * one run (these machines are noisy, so only same-run ratios mean much).
 *
 *   1. AR decode tokens/s: stories260K (real weights) and the 15M shape
 *      (random weights) on the js and wasm backends.
 *   2. wasm matmul GFLOP/s for M = 1, 16, 64 rows on 768x768 and 2048x768
 *      (W [out, in]), next to the f32x4 FMA peak of this core measured now.
 *
 * Flags: --quick (shorter runs, for a smoke test), --json (machine-readable
 * results on stdout after the tables).
 */
import { cpus } from "node:os";
import { resolve } from "node:path";
import type { Backend } from "../src/backends/backend.js";
import { createBackend } from "../src/backends/registry.js";
import { measureFmaPeak } from "../src/backends/wasm/peak.js";
import { randomCheckpoint, readCheckpoint } from "../src/io/checkpoint.js";
import { SHAPES, type ModelConfig } from "../src/model/config.js";
import { Transformer } from "../src/model/transformer.js";
import type { Checkpoint } from "../src/model/weights.js";
import { decodeAR } from "../src/ptp/decode/ar.js";
import { XorShiftAux } from "../src/sampling/aux.js";

const quick = process.argv.includes("--quick");
const asJson = process.argv.includes("--json");
const root = resolve(import.meta.dirname, "..");
const progress = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);

/** Median seconds of `reps` runs of f, after one warm-up run. */
function medianSeconds(f: () => void, reps: number): number {
  f();
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    f();
    times.push((performance.now() - t) / 1000);
  }
  times.sort((a, b) => a - b);
  return times[times.length >> 1];
}

// ---- 1. AR decode --------------------------------------------------------

interface DecodeRow {
  model: string;
  backend: string;
  tokens: number;
  tokensPerSecond: number;
}

function decodeSpeed(b: Backend, ckpt: Checkpoint, steps: number): number {
  const model = new Transformer(b, ckpt);
  const run = () => decodeAR(model, [1], { steps, sampling: { temperature: 1 }, aux: new XorShiftAux(7n), stopAtBos: false });
  run(); // warm-up: JIT and WASM tiering
  const rates: number[] = [];
  for (let i = 0; i < 3; i++) rates.push(run().stats.tokensPerSecond);
  model.dispose();
  return rates.sort((a, b) => a - b)[1];
}

async function decodeTable(): Promise<DecodeRow[]> {
  const models: { name: string; ckpt: Checkpoint; steps: Record<string, number> }[] = [
    { name: "stories260K", ckpt: readCheckpoint(resolve(root, "../shared/models/stories260K.bin")), steps: { js: quick ? 64 : 256, wasm: quick ? 64 : 256 } },
  ];
  const config15: ModelConfig = { ...SHAPES["15M"], sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };
  models.push({ name: "15M shape (random)", ckpt: randomCheckpoint(config15, 1), steps: { js: quick ? 4 : 12, wasm: quick ? 16 : 128 } });
  const rows: DecodeRow[] = [];
  for (const m of models) {
    for (const name of ["js", "wasm"]) {
      progress(`AR decode: ${m.name} on ${name} ...`);
      const b = await createBackend(name);
      const steps = m.steps[name];
      rows.push({ model: m.name, backend: b.description, tokens: steps, tokensPerSecond: decodeSpeed(b, m.ckpt, steps) });
    }
  }
  return rows;
}

// ---- 2. matmul GFLOP/s ---------------------------------------------------

interface GemmRow {
  shape: string;
  M: number;
  gflops: number;
}

async function gemmTable(b: Backend): Promise<GemmRow[]> {
  const rows: GemmRow[] = [];
  for (const [N, K] of [
    [768, 768],
    [2048, 768],
  ]) {
    const w = b.alloc(N * K);
    b.upload(w, Float32Array.from({ length: N * K }, (_, i) => Math.sin(i) * 0.05));
    for (const M of [1, 16, 64]) {
      progress(`matmul ${N}x${K}, M = ${M} ...`);
      const x = b.alloc(M * K), y = b.alloc(M * N);
      b.upload(x, Float32Array.from({ length: M * K }, (_, i) => Math.cos(i)));
      // Enough repetitions per timing that one sample takes ~20 ms.
      const flops = 2 * M * N * K;
      const inner = Math.max(1, Math.round(2e8 / flops) * (quick ? 1 : 4));
      const secs = medianSeconds(() => {
        for (let i = 0; i < inner; i++) b.matmul(y, x, w, M, K, N);
      }, quick ? 5 : 15);
      rows.push({ shape: `${N}x${K}`, M, gflops: (flops * inner) / secs / 1e9 });
      b.free(x);
      b.free(y);
    }
    b.free(w);
  }
  return rows;
}

// ---- report --------------------------------------------------------------

function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map((c) => (typeof c === "number" && !Number.isInteger(c) ? c.toFixed(c >= 100 ? 0 : 2) : c)))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => String(r[i]).length)));
  const line = (r: (string | number)[]) => "| " + r.map((c, i) => String(c).padEnd(widths[i])).join(" | ") + " |";
  return [line(cells[0]), "|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|", ...cells.slice(1).map(line)].join("\n");
}

const wasm = await createBackend("wasm");
console.log(`# ptp-ts bench ${quick ? "(quick)" : ""}`);
console.log(`node ${process.version}, ${cpus()[0]?.model ?? "unknown CPU"} x ${cpus().length}, wasm build: ${wasm.description}\n`);

const decode = await decodeTable();
console.log("## AR decode, tokens/s (temperature 1, no stop at BOS)\n");
const byModel = new Map<string, DecodeRow[]>();
for (const r of decode) byModel.set(r.model, [...(byModel.get(r.model) ?? []), r]);
console.log(
  table(
    ["model", "js tok/s", "wasm tok/s", "wasm / js"],
    [...byModel].map(([model, [js, w]]) => [model, js.tokensPerSecond, w.tokensPerSecond, `${(w.tokensPerSecond / js.tokensPerSecond).toFixed(1)}x`]),
  ),
);

progress("FMA peak ...");
const peak = await measureFmaPeak(quick ? 0.2 : 1);
const gemm = await gemmTable(wasm);
console.log(`\n## wasm matmul y = x W^T, GFLOP/s (1 thread)\n`);
console.log(`f32x4 peak of this core measured now: ${peak.relaxed !== null ? `${peak.relaxed.toFixed(1)} GFLOP/s with relaxed_madd (FMA)` : "relaxed SIMD unavailable"}, ${peak.simd.toFixed(1)} GFLOP/s with mul+add\n`);
const ref = peak.relaxed ?? peak.simd;
console.log(table(["W (out x in)", "M", "GFLOP/s", "% of peak"], gemm.map((r) => [r.shape, r.M, r.gflops, `${((100 * r.gflops) / ref).toFixed(0)}%`])));
if (asJson) console.log("\n" + JSON.stringify({ decode, gemm, peak, wasmBuild: wasm.description }));
