/**
 * npm run bench: the engine's speed, every figure measured side by side in
 * one run (these machines are noisy, so only same-run ratios mean much).
 *
 *   1. AR decode tokens/s: stories260K (real weights) and random models of
 *      the 15M, 42M and 110M shapes, wasm at 1 and 2 threads (js for 260K and 15M).
 *   2. matmul GFLOP/s for M = 1, 16, 64 rows on 768x768, 2048x768 and
 *      32000x288 (W [out, in]) at 1 and 2 threads, next to the f32x4 FMA
 *      peak of this core measured now and onnxruntime-web's WASM backend at
 *      the same thread counts (bench/ort-gemm.ts, one process per count).
 *   3. PTP's cost curve: one forward call of k rows after a cached prefix of
 *      64 tokens, relative to one row, k = 1 .. 64, per shape.
 *
 * Flags: --quick (shorter runs, for a smoke test), --json (machine-readable
 * results on stdout after the tables). Progress goes to stderr.
 */
import { execFileSync } from "node:child_process";
import { cpus } from "node:os";
import { resolve } from "node:path";
import type { Backend } from "../src/backends/backend.js";
import { createBackend } from "../src/backends/registry.js";
import { measureFmaPeak } from "./peak.js";
import { readCheckpoint } from "../src/io/checkpoint.js";
import { randomCheckpoint } from "../src/model/init.js";
import { shapeConfig } from "../src/model/config.js";
import { Transformer } from "../src/model/transformer.js";
import type { Checkpoint } from "../src/model/weights.js";
import { decodeAR } from "../src/ptp/decode/decode-ar.js";
import { XorShiftAux } from "../src/sampling/aux.js";
import { GEMM_ROWS, GEMM_SHAPES } from "./ort-gemm.js";
import { benchFlags, markdownTable } from "./common.js";

const f = benchFlags({ quick: { kind: "bool" }, json: { kind: "bool" } });
const quick = f.quick;
const asJson = f.json;
const root = resolve(import.meta.dirname, "..");
const progress = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);
const THREADS = [1, 2];

/** A wasm backend with its worker threads already running. */
async function wasmBackend(threads: number): Promise<Backend> {
  const b = await createBackend("wasm", { threads });
  await (b as Backend & { startThreads?: () => Promise<void> }).startThreads?.();
  return b;
}

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
  kind: "js" | "wasm";
  backend: string;
  threads: number;
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

// jsSteps: the plain-TypeScript reference is timed too where it finishes in seconds.
const MODELS: { name: string; load: () => Checkpoint; steps: number; jsSteps?: number }[] = [
  { name: "stories260K", load: () => readCheckpoint(resolve(root, "../shared/models/stories260K.bin")), steps: quick ? 64 : 256, jsSteps: quick ? 64 : 256 },
  { name: "15M shape (random)", load: () => randomCheckpoint(shapeConfig("15M"), 1), steps: quick ? 16 : 128, jsSteps: quick ? 3 : 8 },
  { name: "42M shape (random)", load: () => randomCheckpoint(shapeConfig("42M"), 1), steps: quick ? 8 : 64 },
  { name: "110M shape (random)", load: () => randomCheckpoint(shapeConfig("110M"), 1), steps: quick ? 4 : 32 },
];

async function decodeTable(): Promise<DecodeRow[]> {
  const rows: DecodeRow[] = [];
  for (const m of MODELS) {
    const ckpt = m.load();
    if (m.jsSteps) {
      progress(`AR decode: ${m.name} on js ...`);
      const b = await createBackend("js");
      rows.push({ model: m.name, kind: "js", backend: b.description, threads: 1, tokens: m.jsSteps, tokensPerSecond: decodeSpeed(b, ckpt, m.jsSteps) });
    }
    for (const threads of THREADS) {
      progress(`AR decode: ${m.name} on wasm, ${threads} thread(s) ...`);
      const b = await wasmBackend(threads);
      rows.push({ model: m.name, kind: "wasm", backend: b.description, threads, tokens: m.steps, tokensPerSecond: decodeSpeed(b, ckpt, m.steps) });
      b.dispose?.();
    }
  }
  return rows;
}

// ---- 2. matmul GFLOP/s ---------------------------------------------------

interface GemmRow {
  shape: string;
  M: number;
  threads: number;
  gflops: number;
}

async function gemmTable(threads: number): Promise<GemmRow[]> {
  const b = await wasmBackend(threads);
  const rows: GemmRow[] = [];
  for (const [N, K] of GEMM_SHAPES) {
    const w = b.alloc(N * K);
    b.upload(
      w,
      Float32Array.from({ length: N * K }, (_, i) => Math.sin(i) * 0.05),
    );
    for (const M of GEMM_ROWS) {
      progress(`matmul ${N}x${K}, M = ${M}, ${threads} thread(s) ...`);
      const x = b.alloc(M * K),
        y = b.alloc(M * N);
      b.upload(
        x,
        Float32Array.from({ length: M * K }, (_, i) => Math.cos(i)),
      );
      // Enough repetitions per timing that one sample takes ~20 ms.
      const flops = 2 * M * N * K;
      const inner = Math.max(1, Math.round(2e8 / flops) * (quick ? 1 : 2));
      const secs = medianSeconds(
        () => {
          for (let i = 0; i < inner; i++) b.matmul(y, x, w, M, K, N);
        },
        quick ? 5 : 11,
      );
      rows.push({ shape: `${N}x${K}`, M, threads, gflops: (flops * inner) / secs / 1e9 });
      b.free(x);
      b.free(y);
    }
    b.free(w);
  }
  b.dispose?.();
  return rows;
}

function ortTable(threads: number): GemmRow[] {
  progress(`onnxruntime-web WASM matmuls, ${threads} thread(s) ...`);
  try {
    const out = execFileSync(process.execPath, ["--import", "tsx", resolve(import.meta.dirname, "ort-gemm.ts"), String(threads), ...(quick ? ["--quick"] : [])], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
    return (JSON.parse(out.trim().split("\n").pop()!) as Omit<GemmRow, "threads">[]).map((r) => ({ ...r, threads }));
  } catch (e) {
    progress(`onnxruntime-web failed: ${(e as Error).message}`);
    return [];
  }
}

// ---- 3. cost of a k-row call ---------------------------------------------

interface CurveRow {
  model: string;
  k: number;
  ms: number;
  relative: number;
}

const KS = quick ? [1, 4, 16, 64] : [1, 2, 4, 8, 16, 32, 64];

async function curveTable(): Promise<CurveRow[]> {
  const rows: CurveRow[] = [];
  const b = await wasmBackend(THREADS[THREADS.length - 1]);
  for (const m of MODELS) {
    progress(`k-row call cost: ${m.name} ...`);
    const ckpt = m.load();
    const model = new Transformer(b, ckpt);
    const prefix = 64;
    const cache = model.newCache(prefix + 64);
    model.forward({ tokens: Array.from({ length: prefix }, (_, i) => (i * 7 + 1) % ckpt.config.vocabSize), positions: Array.from({ length: prefix }, (_, i) => i) }, cache);
    let base = 0;
    for (const k of KS) {
      const block = { tokens: Array.from({ length: k }, (_, i) => (i * 13 + 5) % ckpt.config.vocabSize), positions: Array.from({ length: k }, (_, i) => prefix + i) };
      const secs = medianSeconds(
        () => {
          model.forward(block, cache);
          cache.crop(prefix);
        },
        quick ? 3 : 7,
      );
      if (k === 1) base = secs;
      rows.push({ model: m.name, k, ms: secs * 1000, relative: secs / base });
    }
    model.dispose();
  }
  b.dispose?.();
  return rows;
}

// ---- report --------------------------------------------------------------

function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map((c) => (typeof c === "number" && !Number.isInteger(c) ? c.toFixed(c >= 100 ? 0 : 2) : c)))];
  return markdownTable(
    header,
    cells.slice(1).map((r) => r.map(String)),
    "left",
  );
}

const probe = await createBackend("wasm", { threads: 1 });
console.log(`# ptp-ts bench ${quick ? "(quick)" : ""}`);
console.log(`node ${process.version}, ${cpus()[0]?.model ?? "unknown CPU"} x ${cpus().length}, wasm build: ${probe.description}\n`);
probe.dispose?.();

progress("FMA peak ...");
const peak = await measureFmaPeak(quick ? 0.2 : 1);
const gemm: GemmRow[] = [];
for (const t of THREADS) gemm.push(...(await gemmTable(t)));
const ort: GemmRow[] = [];
for (const t of THREADS) ort.push(...ortTable(t));
console.log(`## matmul y = x W^T, GFLOP/s\n`);
console.log(`f32x4 peak of one core measured now: ${peak.relaxed !== null ? `${peak.relaxed.toFixed(1)} GFLOP/s with relaxed_madd (FMA)` : "relaxed SIMD unavailable"}, ${peak.simd.toFixed(1)} GFLOP/s with mul+add\n`);
const ref = peak.relaxed ?? peak.simd;
const find = (rows: GemmRow[], shape: string, M: number, t: number) => rows.find((r) => r.shape === shape && r.M === M && r.threads === t)?.gflops;
const gemmRows: (string | number)[][] = [];
for (const [N, K] of GEMM_SHAPES) {
  for (const M of GEMM_ROWS) {
    const shape = `${N}x${K}`;
    const row: (string | number)[] = [shape, M];
    for (const t of THREADS) {
      const w = find(gemm, shape, M, t)!,
        o = find(ort, shape, M, t);
      row.push(w, `${((100 * w) / (ref * t)).toFixed(0)}%`, o ?? "-", o ? `${(w / o).toFixed(2)}x` : "-");
    }
    gemmRows.push(row);
  }
}
console.log(table(["W (out x in)", "M", ...THREADS.flatMap((t) => [`wasm ${t}T`, `% of ${t}x peak`, `ort-web ${t}T`, `wasm/ort ${t}T`])], gemmRows));

const decode = await decodeTable();
console.log("\n## AR decode, tokens/s (temperature 1, no stop at BOS)\n");
const models = [...new Set(decode.map((r) => r.model))];
console.log(
  table(
    ["model", "js", ...THREADS.map((t) => `wasm ${t}T`), `wasm ${THREADS[1]}T / 1T`],
    models.map((m) => {
      const rs = decode.filter((r) => r.model === m);
      const js = rs.find((r) => r.kind === "js");
      const w = THREADS.map((t) => rs.find((r) => r.kind === "wasm" && r.threads === t)!.tokensPerSecond);
      return [m, js ? js.tokensPerSecond : "-", ...w, `${(w[1] / w[0]).toFixed(2)}x`];
    }),
  ),
);

const curve = await curveTable();
console.log(`\n## One forward call of k rows after 64 cached tokens, time relative to k = 1 (wasm, ${THREADS[THREADS.length - 1]} threads)\n`);
console.log(
  table(
    ["model", ...KS.map((k) => `k=${k}`), "k=1 ms"],
    models.map((m) => {
      const rs = curve.filter((r) => r.model === m);
      return [m, ...KS.map((k) => rs.find((r) => r.k === k)!.relative), rs[0].ms];
    }),
  ),
);
if (asJson) console.log("\n" + JSON.stringify({ decode, gemm, ort, curve, peak }));
process.exit(0);
