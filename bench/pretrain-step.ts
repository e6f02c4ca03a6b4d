/**
 * Speed of one `ptp train` step (next-token pretraining: forward, backward
 * and AdamW over --batch windows of --context tokens), its graph's arrays
 * new every step (as before buffers.ts) against reused from a BufferPool (as
 * `ptp train` runs now), measured in the same run: rounds alternate the two,
 * and each figure is the median over rounds of the median step time. The
 * two give the same bits (checked here on the loss of every step).
 *
 *   node --import tsx bench/pretrain-step.ts [--dim 288] [--layers 6] [--heads 6]
 *     [--hidden 768] [--vocab 512] [--batch 8] [--context 256] [--rounds 5] [--steps 4] [--json]
 *
 * The defaults are the 15M shape of llama2.c (stories15M) at `ptp train`'s
 * default batch, with tok512's vocabulary. The token stream is random
 * (the work does not depend on the text). Page faults per step (the
 * process's minor faults, from process.resourceUsage) show where new
 * arrays' time goes: the system hands fresh memory out a page at a time.
 */
import { loadavg } from "node:os";
import { initModel } from "../src/model/init.js";
import { BufferPool, scale, Tape, wasmTrainKernels } from "../src/train/autograd/index.js";
import { trainableWeights } from "../src/train/graph.js";
import { AdamW } from "../src/train/optim.js";
import { nextTokenLoss } from "../src/train/pretrain.js";
import { Mulberry32 } from "../src/util/prng.js";
import { benchFlags, COUNT, markdownTable, median } from "./common.js";

const flags = benchFlags({
  dim: { ...COUNT, default: 288 },
  layers: { ...COUNT, default: 6 },
  heads: { ...COUNT, default: 6 },
  hidden: { ...COUNT, default: 768 },
  vocab: { ...COUNT, default: 512 },
  batch: { ...COUNT, default: 8 },
  context: { ...COUNT, default: 256 },
  rounds: { ...COUNT, default: 5 },
  steps: { ...COUNT, default: 4 },
  json: { kind: "bool" },
});
const { dim, layers, heads, hidden, vocab, batch, context, rounds, steps } = flags;
const say = (s: string) => void (flags.json ? process.stderr : process.stdout).write(s + "\n");

const config = { dim, hiddenDim: hidden, nLayers: layers, nHeads: heads, nKvHeads: heads, vocabSize: vocab, seqLen: context, normEps: 1e-5, ropeTheta: 10000, sharedClassifier: true };
const rng = new Mulberry32(7);
const stream = Int32Array.from({ length: 64 * context }, () => Math.floor(rng.nextFloat() * vocab));
const kernels = wasmTrainKernels();

interface Variant {
  name: string;
  pool: BufferPool | undefined;
}
const variants: Variant[] = [
  { name: "new arrays", pool: undefined },
  { name: "BufferPool", pool: new BufferPool() },
];

/** One model and optimizer per variant, stepped in lockstep: the same windows, so the losses must agree bit for bit. */
const runs = variants.map((v) => {
  const model = initModel(config, 1);
  const { params, weights } = trainableWeights(model);
  return { v, params, weights, opt: new AdamW(params, { lr: 1e-3 }), times: [] as number[], faults: [] as number[], losses: [] as number[] };
});

function step(run: (typeof runs)[number], starts: number[]): number {
  const tape = new Tape(kernels, run.v.pool);
  const loss = nextTokenLoss(tape, config, run.weights, stream, starts, context);
  tape.backward(scale(tape, loss, 1));
  const value = loss.data[0];
  tape.release();
  run.opt.step();
  for (const p of run.params) p.grad.fill(0);
  return value;
}

say(`pretrain step: dim ${dim}, ${layers} layers, ${heads} heads, hidden ${hidden}, vocab ${vocab}; batch ${batch} x context ${context} = ${batch * context} rows; ${rounds} rounds x ${steps} steps; load ${loadavg()[0].toFixed(2)}`);
// One step each first: JIT, the kernels' memory growth, the pool's first fill.
const warm = Array.from({ length: batch }, () => Math.floor(rng.nextFloat() * (stream.length - context - 1)));
for (const run of runs) run.losses.push(step(run, warm));
for (let r = 0; r < rounds; r++) {
  const order = r % 2 === 0 ? runs : [...runs].reverse();
  const batches = Array.from({ length: steps }, () => Array.from({ length: batch }, () => Math.floor(rng.nextFloat() * (stream.length - context - 1))));
  for (const run of order) {
    const ms: number[] = [];
    const f0 = process.resourceUsage().minorPageFault;
    for (const starts of batches) {
      const t0 = performance.now();
      run.losses.push(step(run, starts));
      ms.push(performance.now() - t0);
    }
    run.faults.push((process.resourceUsage().minorPageFault - f0) / steps);
    run.times.push(median(ms));
  }
}
const base = median(runs[0].times);
const same = runs.every((run) => run.losses.length === runs[0].losses.length && run.losses.every((l, i) => Object.is(l, runs[0].losses[i])));
const rows = runs.map((run) => {
  const t = median(run.times);
  return { variant: run.v.name, msPerStep: t, tokensPerSecond: (batch * context * 1000) / t, faultsPerStep: median(run.faults), speedup: base / t };
});
if (flags.json) process.stdout.write(JSON.stringify({ config, batch, context, load: loadavg()[0], sameLosses: same, rows }) + "\n");
else {
  say(
    markdownTable(
      ["variant", "ms/step", "tokens/s", "page faults/step", "speedup"],
      rows.map((r) => [r.variant, r.msPerStep.toFixed(0), r.tokensPerSecond.toFixed(0), r.faultsPerStep.toFixed(0), `${r.speedup.toFixed(2)}x`]),
    ),
  );
  say(`losses of every step equal across variants: ${same ? "yes" : "NO"}; load after ${loadavg()[0].toFixed(2)}`);
}
if (!same) process.exitCode = 1;
