/**
 * GPU benchmarks of the CUDA backend plug-in (run on a CUDA machine):
 *
 *   npm run build:cuda
 *   node --import tsx packages/backend-cuda/bench.ts [--quick] [--shapes 15M,110M,1B]
 *
 * Reports, per model shape (15M and 110M of llama2.c, and a 1B-class random
 * shape: dim 2048, 22 layers, hidden 5632, 32 heads, 4 KV heads, vocab 32000):
 * - GEMM TFLOP/s of the shape's projections (matmul M x K x N, 2MKN flops)
 *   at M = 1, 16, 64, 256;
 * - AR decode tokens/s (decodeAR, greedy, one token per forward call);
 * - forward calls per second with a block of k rows after a 64-token context;
 * - PTP single-call decoding with a random student: model calls per second
 *   and tokens per second at budgets of k slots per call.
 * Weights are random (randomCheckpoint): speed does not depend on the values.
 * Without a CUDA device it prints why and exits with status 2.
 */
import * as core from "../../src/index.js";
import type { Backend } from "../../src/backends/backend.js";
import type { ModelConfig } from "../../src/model/config.js";
import { benchFlags, listFlag } from "../../bench/common.js";
import { createCudaBackend, cudaStatus } from "./index.js";

const f = benchFlags({
  quick: { kind: "bool" },
  shapes: { kind: "string", value: "LIST", default: "15M,110M,1B" },
});
const quick = f.quick === true;
const shapeNames = listFlag("shapes", f.shapes, { kind: "string", choices: ["15M", "110M", "1B"] });

const status = cudaStatus();
if (!status.built || status.deviceCount === 0) {
  console.error(`cuda bench: cannot run here: ${status.reason}`);
  console.error("cuda bench: build the addon with `npm run build:cuda` and run this on a machine with a CUDA GPU and driver.");
  process.exit(2);
}

const base = { normEps: 1e-5, ropeTheta: 10000, sharedClassifier: true };
const SHAPES: Record<string, ModelConfig> = {
  "15M": { ...core.SHAPES["15M"], ...base },
  "110M": { ...core.SHAPES["110M"], ...base },
  "1B": { dim: 2048, hiddenDim: 5632, nLayers: 22, nHeads: 32, nKvHeads: 4, vocabSize: 32000, seqLen: 2048, ...base, sharedClassifier: false },
};

const now = () => performance.now() / 1000;

/** Median seconds of `reps` runs of fn, after one warm-up run. */
function time(b: { synchronize(): void }, reps: number, fn: () => void): number {
  fn();
  b.synchronize();
  const ts: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = now();
    fn();
    b.synchronize();
    ts.push(now() - t0);
  }
  ts.sort((a, c) => a - c);
  return ts[Math.floor(ts.length / 2)];
}

function rand(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2 ** 32 - 0.5;
  }
  return a;
}

function gemmBench(b: Backend & { synchronize(): void }, config: ModelConfig) {
  const { dim, hiddenDim, vocabSize } = config;
  const kv = (dim / config.nHeads) * config.nKvHeads;
  const shapes: [string, number, number][] = [
    ["wq", dim, dim],
    ["wk", dim, kv],
    ["w1", dim, hiddenDim],
    ["w2", hiddenDim, dim],
    ["wcls", dim, vocabSize],
  ];
  for (const [name, K, N] of shapes) {
    const w = b.alloc(N * K);
    b.upload(w, rand(N * K, 1));
    const row: string[] = [];
    for (const M of quick ? [1, 64] : [1, 16, 64, 256]) {
      const x = b.alloc(M * K),
        y = b.alloc(M * N);
      b.upload(x, rand(M * K, 2));
      const s = time(b, quick ? 3 : 10, () => b.matmul(y, x, w, M, K, N));
      row.push(`M=${M}: ${((2 * M * K * N) / s / 1e12).toFixed(3)} TFLOP/s (${(s * 1e6).toFixed(0)} us)`);
      b.free(x);
      b.free(y);
    }
    b.free(w);
    console.log(`  gemm ${name} K=${K} N=${N}: ${row.join(", ")}`);
  }
}

async function main() {
  const backend = await createCudaBackend(core);
  console.log(`cuda bench on ${backend.description}`);
  for (const name of shapeNames) {
    const config = SHAPES[name];
    console.log(`\n== ${name}: dim ${config.dim}, ${config.nLayers} layers, hidden ${config.hiddenDim}, ${config.nHeads}/${config.nKvHeads} heads, vocab ${config.vocabSize}`);
    gemmBench(backend, config);

    const t0 = now();
    const ckpt = core.randomCheckpoint(config, 1234);
    const teacher = new core.Transformer(backend, ckpt);
    console.log(`  random checkpoint and upload: ${(now() - t0).toFixed(1)} s`);

    // AR decode.
    const steps = quick ? 32 : 128;
    const ar = core.decodeAR(teacher, [1], { steps, sampling: { temperature: 0 }, stopAtBos: false });
    console.log(`  AR decode: ${ar.stats.tokensPerSecond.toFixed(1)} tok/s (${steps} steps)`);

    // Forward calls with k rows after a 64-token context.
    const ctx = 64;
    for (const k of quick ? [1, 16] : [1, 4, 16, 64]) {
      const cache = teacher.newCache(ctx + k);
      teacher.forward({ tokens: Array.from({ length: ctx }, (_, i) => (i * 7) % config.vocabSize), positions: Array.from({ length: ctx }, (_, i) => i) }, cache);
      const reps = quick ? 3 : 10;
      const block = { tokens: Array.from({ length: k }, (_, i) => (i * 13) % config.vocabSize), positions: Array.from({ length: k }, (_, i) => ctx + i) };
      const ts: number[] = [];
      for (let r = 0; r < reps; r++) {
        const t1 = now();
        teacher.forward(block, cache);
        ts.push(now() - t1);
        cache.crop(ctx);
      }
      cache.free();
      ts.sort((a, c) => a - c);
      console.log(`  forward k=${k} rows: ${(1 / ts[Math.floor(reps / 2)]).toFixed(1)} calls/s`);
    }

    // PTP single-call decoding with a random student.
    const student = core.randomStudent(ckpt, "bench", { variant: "O", rank: 16, window: 16, seed: 7 });
    const model = new core.PtpModel(teacher, student);
    for (const k of quick ? [8] : [4, 16, 64]) {
      const us = Array.from({ length: 1024 }, (_, i) => ((i * 0.6180339887) % 1) as number);
      const out = core.decode(model, [[1]], { decoder: "single-call", budget: k, steps: quick ? 32 : 128, sampling: { temperature: 0.8 }, aux: [new core.ArrayAux(us)] });
      const s = out.stats;
      console.log(`  PTP single-call, budget k=${k}: ${(s.modelCalls / s.seconds).toFixed(1)} calls/s, ${s.tokensPerSecond.toFixed(1)} tok/s, ${s.meanAccepted.toFixed(2)} accepted/call`);
    }
    model.dispose();
    teacher.dispose();
  }
  backend.dispose?.();
}

main().catch((err) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exit(1);
});
