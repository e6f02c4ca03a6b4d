/**
 * PTP's cost curve on this CPU: the time of ONE forward call of k rows
 * (causal, positions 64 .. 64+k-1, after 64 cached tokens) divided by the
 * time of a 1-row call, for every k = 1 .. 64, per model shape and thread
 * count. The curve says how many rows a verification call can carry before
 * it costs more than decoding one token.
 *
 *   node --experimental-wasm-relaxed-simd --import tsx bench/cost-curve.ts [flags]
 *
 * Flags:
 *   --threads 1,2        wasm thread counts to run (default 1)
 *   --shapes 260K,15M    shapes to run (default 260K,15M,42M,110M); 260K is
 *                        stories260K's real weights, the others random weights
 *   --quick              k in {1,2,3,4,8,16,32,64}, 5 repetitions,
 *                        shapes 260K,15M
 *   --weights f32|bf16|int8  the backend's weight type (default f32)
 *   --json               the raw numbers (medians and every sample) on stdout
 *                        after the tables
 *
 * The floor, same run: a k-row call does k times the one-row call's
 * multiply-adds (each row's own, batch invariance), so it cannot take less
 * than k x (multiply-adds a row) / (threads x one core's peak), measured now
 * (bench/peak.ts: the FMA peak for f32 and bf16, the int8 kernels' pair-dot
 * peak for int8). floor(k) = max(1, that / the measured one-row call) is the
 * least c(k) this CPU allows whatever the kernel; a one-row call that reads
 * its weights faster raises it.
 *
 * Progress goes to stderr.
 */
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import type { Backend, WeightType } from "../src/backends/backend.js";
import { createBackend } from "../src/backends/registry.js";
import { readCheckpoint } from "../src/io/checkpoint.js";
import { randomCheckpoint } from "../src/model/init.js";
import { kvDim, type ModelConfig, type SHAPES, shapeConfig } from "../src/model/config.js";
import { Transformer } from "../src/model/transformer.js";
import type { Checkpoint } from "../src/model/weights.js";
import { benchFlags, listFlag, markdownTable, SHAPE_NAMES, THREADS, WEIGHTS } from "./common.js";
import { measureDotPeak, measureFmaPeak } from "./peak.js";

const PREFIX = 64;
const MAX_K = 64;
const SUMMARY_KS = [8, 16, 25, 33, 64];
/** Per k, aim for about this much sampled time (from the 1-row time), within [MIN_REPS, MAX_REPS]. */
const TARGET_MS = 50;
const MIN_REPS = 3;
const MAX_REPS = 100;

const f = benchFlags({
  threads: { kind: "string", value: "LIST", default: "1" },
  shapes: { kind: "string", value: "LIST" },
  quick: { kind: "bool" },
  json: { kind: "bool" },
  weights: { ...WEIGHTS, default: "f32" },
});
const quick = f.quick;
const asJson = f.json;
const threadCounts = listFlag("threads", f.threads, THREADS);
const shapes = listFlag("shapes", f.shapes ?? (quick ? "260K,15M" : "260K,15M,42M,110M"), { kind: "string", choices: SHAPE_NAMES });
const KS = quick ? [1, 2, 3, 4, 8, 16, 32, 64] : Array.from({ length: MAX_K }, (_, i) => i + 1);

const progress = (msg: string) => process.stderr.write(`[cost-curve] ${msg}\n`);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
};

function loadShape(name: string): Checkpoint {
  if (name === "260K") return readCheckpoint(fileURLToPath(new URL("../../shared/models/stories260K.bin", import.meta.url)));
  return randomCheckpoint(shapeConfig(name as keyof typeof SHAPES), 1);
}

/** A wasm backend with its worker threads already running, so no k pays their start-up. */
async function wasmBackend(threads: number): Promise<Backend> {
  const b = await createBackend("wasm", { threads, weights: f.weights as WeightType });
  await (b as Backend & { startThreads?: () => Promise<void> }).startThreads?.();
  return b;
}

/**
 * The multiply-adds of one row at position `pos`: every weight matrix once
 * (wq, wk, wv, wo, w1, w3, w2 per layer; the classifier) and attention's
 * scores and weighted values over pos + 1 keys per layer.
 */
function macsPerRow(c: ModelConfig, pos: number): number {
  const kv = kvDim(c);
  const layer = c.dim * (2 * c.dim + 2 * kv) + 3 * c.dim * c.hiddenDim + 2 * (pos + 1) * c.dim;
  return c.nLayers * layer + c.dim * c.vocabSize;
}

interface Curve {
  shape: string;
  threads: number;
  reps: number;
  /** Median ms of a k-row call, by k (index into KS). */
  medianMs: number[];
  /** Every sample, ms, [KS index][repetition]. */
  samplesMs: number[][];
  ratio: number[];
  /** Multiply-adds of each k-row call, by k (index into KS). */
  macs: number[];
  /** The least c(k) the measured peak allows (see the header), by k. */
  floor: number[];
}

function measure(b: Backend, shape: string, threads: number): Curve {
  const ckpt = loadShape(shape);
  const vocab = ckpt.config.vocabSize;
  const model = new Transformer(b, ckpt);
  const cache = model.newCache(PREFIX + MAX_K);
  model.forward({ tokens: Array.from({ length: PREFIX }, (_, i) => (i * 7 + 1) % vocab), positions: Array.from({ length: PREFIX }, (_, i) => i) }, cache);
  const blocks = KS.map((k) => ({ tokens: Array.from({ length: k }, (_, i) => (i * 13 + 5) % vocab), positions: Array.from({ length: k }, (_, i) => PREFIX + i) }));
  // Into one array, as the decoders call (a fresh logits array each call costs the host page faults).
  const logits = new Float32Array(MAX_K * vocab);
  const time = (i: number): number => {
    cache.crop(PREFIX);
    const t = performance.now();
    model.forwardInto(logits, blocks[i], cache);
    return performance.now() - t;
  };

  // Warm-up: largest block first so the activation buffers reach full size
  // before any timing, then every k so each size is JIT- and cache-warm.
  for (let i = KS.length - 1; i >= 0; i--) time(i);
  for (let i = 0; i < KS.length; i++) time(i);
  const oneRow = median(Array.from({ length: 5 }, () => time(0)));
  // Quick: 5, so one sample slowed by another tenant cannot set a median (with 2 it did: a 17 ms 1-row call at 110M on 2 threads, where 12.5-14 is usual).
  const reps = quick ? 5 : Math.min(MAX_REPS, Math.max(MIN_REPS, Math.ceil(TARGET_MS / oneRow)));
  progress(`${shape}, ${threads} thread(s): 1-row call ~${oneRow.toFixed(3)} ms, ${reps} repetitions of ${KS.length} k ...`);

  // Interleaved, so drift (other jobs, thermal) hits every k alike; the sweep
  // direction alternates so no k always runs right after the biggest call.
  const samplesMs: number[][] = KS.map(() => []);
  for (let r = 0; r < reps; r++) {
    for (let j = 0; j < KS.length; j++) {
      const i = r % 2 ? KS.length - 1 - j : j;
      samplesMs[i].push(time(i));
    }
  }
  model.dispose();
  const medianMs = samplesMs.map(median);
  const macs = KS.map((k) => Array.from({ length: k }, (_, i) => macsPerRow(ckpt.config, PREFIX + i)).reduce((a, b) => a + b, 0));
  // peak: G multiply-adds a second on one core, so a call's least time in ms is macs / (threads x peak x 1e6).
  const floor = macs.map((m) => Math.max(1, m / (threads * peakGmacs * 1e6) / medianMs[0]));
  return { shape, threads, reps, medianMs, samplesMs, ratio: medianMs.map((m) => m / medianMs[0]), macs, floor };
}

function table(header: string[], rows: string[][]): string {
  return markdownTable(header, rows, "right");
}

// One core's multiply-add peak for these weights, G/s: f32 and bf16 run f32x4 FMAs (2 flops each), int8 the pair dot.
progress("measuring this core's peak (bench/peak.ts) ...");
const fmaPeak = f.weights === "int8" ? null : await measureFmaPeak(1);
const peakGmacs = fmaPeak ? (fmaPeak.relaxed ?? fmaPeak.simd) / 2 : await measureDotPeak(1);
const curves: Curve[] = [];
let description = "";
for (const threads of threadCounts) {
  const b = await wasmBackend(threads);
  description = b.description;
  for (const shape of shapes) curves.push(measure(b, shape, threads));
  b.dispose?.();
}

const label = (c: Curve) => (threadCounts.length > 1 ? `${c.shape} ${c.threads}T` : c.shape);
console.log(`# PTP cost curve: one forward call of k rows after ${PREFIX} cached tokens, time / time(k = 1)${quick ? " (quick)" : ""}\n`);
console.log(`node ${process.version}, ${cpus()[0]?.model ?? "unknown CPU"} x ${cpus().length}, ${description}, threads ${threadCounts.join(",")}; 260K = stories260K, others random weights\n`);
console.log(`peak: ${peakGmacs.toFixed(1)} G multiply-adds a second on one core (${f.weights === "int8" ? "i32x4.dot_i16x8_s" : "f32x4 multiply-add"}); "floor" = the least c(k) it allows at the measured one-row call\n`);
console.log(table(["k", ...curves.flatMap((c) => [label(c), "floor"])], [...KS.map((k, i) => [String(k), ...curves.flatMap((c) => [c.ratio[i].toFixed(2), c.floor[i].toFixed(2)])]), ["1-row ms", ...curves.flatMap((c) => [c.medianMs[0].toFixed(3), ""])]]));

const at = (c: Curve, k: number) => {
  const i = KS.indexOf(k);
  return i < 0 ? "-" : c.ratio[i].toFixed(2);
};
const firstOver2 = (c: Curve) => {
  const i = c.ratio.findIndex((r) => r > 2);
  return i < 0 ? `>${KS[KS.length - 1]}` : String(KS[i]);
};
console.log(`\n## Summary${quick ? " (quick: only the k measured)" : ""}\n`);
console.log(
  table(
    ["shape", "first k with ratio > 2", ...SUMMARY_KS.map((k) => `k=${k}`)],
    curves.map((c) => [label(c), firstOver2(c), ...SUMMARY_KS.map((k) => at(c, k))]),
  ),
);
if (asJson) console.log("\n" + JSON.stringify({ prefix: PREFIX, ks: KS, weights: f.weights, peakGmacs, curves }));
// The wasm worker threads would otherwise keep the process alive.
process.exit(0);
