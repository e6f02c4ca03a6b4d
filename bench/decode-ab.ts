/**
 * Two builds of the WASM kernels in one process, each on its own backend
 * (its own memory and threads), decoding the same random checkpoint in
 * alternating rounds: the decode-level A/B for a kernel change on a noisy
 * machine (gemm-ab.ts measures the kernel alone). Both backends run this
 * checkout's TypeScript; only the .wasm files differ.
 *
 *   node --experimental-wasm-relaxed-simd --import tsx bench/decode-ab.ts --baseline DIR [--candidate DIR]
 *     [--shape 15M] [--threads 2] [--rounds 8] [--rows 1] [--weights f32|bf16|int8]
 *
 * DIR holds ptp-relaxed.wasm and ptp-simd.wasm (an older checkout's
 * build/, e.g. `git worktree add /tmp/old REV && (cd /tmp/old && npm ci &&
 * npm run build:wasm)`); --candidate defaults to this checkout's build/.
 * A round is, for each build in turn (the order alternating), 256 greedy
 * one-row calls from BOS (--rows 1: AR's decode) or, with --rows K, 40
 * causal K-row calls at positions 64 .. 64 + K - 1 after a 64-token prefix
 * (a PTP decoder's call), the cache cropped back in between. Prints each
 * build's median time and the candidate's speed over the baseline's per
 * round, and their median. The first round is a warm-up and not counted.
 * --weights: both backends on that weight type (default f32).
 */
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { createBackend } from "../src/backends/registry.js";
import { shapeConfig } from "../src/model/config.js";
import { randomCheckpoint } from "../src/model/init.js";
import { Transformer } from "../src/model/transformer.js";
import { benchFlags, COUNT, median, SHAPE_NAMES, THREADS, WEIGHTS } from "./common.js";

const f = benchFlags({
  baseline: { kind: "string", value: "DIR", required: true },
  candidate: { kind: "string", value: "DIR", default: resolve(import.meta.dirname, "../build") },
  shape: { kind: "string", value: "NAME", default: "15M", choices: SHAPE_NAMES },
  threads: { ...THREADS, default: 2 },
  rounds: { ...COUNT, default: 8 },
  rows: { ...COUNT, default: 1 },
  weights: { ...WEIGHTS, default: "f32" },
});
const { baseline, candidate, shape, threads, rounds, rows, weights } = f;
const PREFIX = 64;

const checkpoint = randomCheckpoint(shapeConfig(shape), 1);
const modelOn = async (dir: string) => new Transformer(await createBackend("wasm", { threads, weights, wasmBaseUrl: pathToFileURL(`${resolve(dir)}/`) }), checkpoint);
const models = { baseline: await modelOn(baseline), candidate: await modelOn(candidate) };

/** One round of one build, in ms. */
function round(model: Transformer): number {
  const cache = model.newCache(Math.max(256, PREFIX + rows));
  const t0 = performance.now();
  if (rows === 1) {
    let token = 1;
    for (let p = 0; p < 256; p++) token = model.greedy({ tokens: [token], positions: [p] }, cache)[0];
  } else {
    model.greedy({ tokens: Array.from({ length: PREFIX }, (_, i) => 1 + i), positions: Array.from({ length: PREFIX }, (_, i) => i) }, cache);
    for (let i = 0; i < 40; i++) {
      model.greedy({ tokens: Array.from({ length: rows }, (_, j) => 5 + j), positions: Array.from({ length: rows }, (_, j) => PREFIX + j) }, cache);
      cache.crop(PREFIX);
    }
  }
  const ms = performance.now() - t0;
  cache.free();
  return ms;
}

const times = { baseline: [] as number[], candidate: [] as number[] };
for (let r = 0; r <= rounds; r++) {
  const order = r % 2 === 0 ? (["baseline", "candidate"] as const) : (["candidate", "baseline"] as const);
  for (const name of order) {
    const ms = round(models[name]);
    if (r > 0) times[name].push(ms);
  }
}
const ratios = times.baseline.map((b, i) => b / times.candidate[i]).sort((a, b) => a - b);
console.log(`decode A/B: ${shape}, ${weights} weights, ${threads} thread(s), ${rows === 1 ? "256 one-row calls" : `40 calls of ${rows} rows`} per round, ${rounds} rounds`);
console.log(`baseline ${baseline}: median ${median(times.baseline).toFixed(0)} ms; candidate ${candidate}: median ${median(times.candidate).toFixed(0)} ms`);
console.log(`candidate speed / baseline per round: ${ratios.map((x) => x.toFixed(2)).join(" ")}; median ${median(ratios).toFixed(3)}x`);
process.exit(0);
