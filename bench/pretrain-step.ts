/**
 * Speed of one `ptp train` step (next-token pretraining: forward, backward
 * and AdamW over --batch windows of --context tokens) on worker threads
 * (pretrain-parallel.ts: the windows shared by the threads, their
 * gradients summed in window order), against the step as it ran before
 * threads: one graph over the whole batch on the main thread. Measured in
 * the same run: rounds alternate the variants, and each figure is the
 * median over rounds of the median step time. Every thread count gives
 * the same bits (checked here on the loss of every step and the weights
 * at the end); the one-graph step sums in another order, so its bits
 * differ in the last places.
 *
 *   node --import tsx bench/pretrain-step.ts [--threads 1,2] [--dim 288] [--layers 6] [--heads 6]
 *     [--hidden 768] [--vocab 512] [--batch 8] [--context 256] [--rounds 5] [--steps 3] [--json]
 *
 * The defaults are the 15M shape of llama2.c (stories15M) at `ptp train`'s
 * default batch, with tok512's vocabulary. The token stream is random
 * (the work does not depend on the text). Build first (`npm run build`):
 * the workers run dist/.
 */
import { loadavg } from "node:os";
import { initModel } from "../src/model/init.js";
import { BufferPool, Tape, wasmTrainKernels } from "../src/train/autograd/index.js";
import { trainableWeights } from "../src/train/graph.js";
import { AdamW } from "../src/train/optim.js";
import { nextTokenLoss } from "../src/train/next-token.js";
import { PretrainParallel } from "../src/train/pretrain-parallel.js";
import { Mulberry32 } from "../src/util/prng.js";
import { alternatingRounds, benchFlags, COUNT, listFlag, markdownTable, THREADS } from "./common.js";

const flags = benchFlags({
  threads: { kind: "string", value: "T,T", default: "1,2" },
  dim: { ...COUNT, default: 288 },
  layers: { ...COUNT, default: 6 },
  heads: { ...COUNT, default: 6 },
  hidden: { ...COUNT, default: 768 },
  vocab: { ...COUNT, default: 512 },
  batch: { ...COUNT, default: 8 },
  context: { ...COUNT, default: 256 },
  rounds: { ...COUNT, default: 5 },
  steps: { ...COUNT, default: 3 },
  json: { kind: "bool" },
});
const { dim, layers, heads, hidden, vocab, batch, context, rounds, steps } = flags;
const threadCounts = listFlag("threads", flags.threads, THREADS);
const say = (s: string) => void (flags.json ? process.stderr : process.stdout).write(s + "\n");

const config = { dim, hiddenDim: hidden, nLayers: layers, nHeads: heads, nKvHeads: heads, vocabSize: vocab, seqLen: context, normEps: 1e-5, ropeTheta: 10000, sharedClassifier: true };
const rng = new Mulberry32(7);
const stream = Int32Array.from({ length: 64 * context }, () => Math.floor(rng.nextFloat() * vocab));
const kernels = wasmTrainKernels();

/** A way to compute a step's gradient into the params' grads (they start at zero); resolves with the step's loss. */
type Stepper = (starts: number[]) => Promise<number>;

/** The step before threads: one graph over the batch on this thread (its arrays from a pool). */
function oneGraph(model: ReturnType<typeof initModel>): { params: ReturnType<typeof trainableWeights>["params"]; stepper: Stepper; close(): void } {
  const { params, weights } = trainableWeights(model);
  const pool = new BufferPool();
  const stepper: Stepper = async (starts) => {
    const tape = new Tape(kernels, pool);
    const loss = nextTokenLoss(tape, config, weights, stream, starts, context);
    tape.backward(loss);
    const value = loss.data[0];
    tape.release();
    return value;
  };
  return { params, stepper, close() {} };
}

/** One model and optimizer per variant, stepped in lockstep on the same windows. */
const runs = await Promise.all(
  [0, ...threadCounts].map(async (threads) => {
    const model = initModel(config, 1);
    let v: ReturnType<typeof oneGraph>;
    if (threads === 0) v = oneGraph(model);
    else {
      const { params } = trainableWeights(model);
      const parallel = await PretrainParallel.start(model, params, stream, { batch, context, threads, kernels });
      v = { params, stepper: (starts) => parallel.step(starts), close: () => parallel.close() };
    }
    const name = threads === 0 ? "before: one graph, main thread" : `${threads} worker thread${threads === 1 ? "" : "s"}`;
    return { threads, name, ...v, opt: new AdamW(v.params, { lr: 1e-3 }), losses: [] as number[] };
  }),
);

async function step(run: (typeof runs)[number], starts: number[]): Promise<number> {
  for (const p of run.params) p.grad.fill(0);
  const loss = await run.stepper(starts);
  run.opt.step();
  return loss;
}

say(`pretrain step: dim ${dim}, ${layers} layers, ${heads} heads, hidden ${hidden}, vocab ${vocab}; batch ${batch} x context ${context} = ${batch * context} rows; ${rounds} rounds x ${steps} steps; load ${loadavg()[0].toFixed(2)}`);
// One step each first: JIT, the kernels' memory growth, the pools' first fill.
const warm = Array.from({ length: batch }, () => Math.floor(rng.nextFloat() * (stream.length - context - 1)));
for (const run of runs) run.losses.push(await step(run, warm));
const times = await alternatingRounds(
  runs,
  rounds,
  () => Array.from({ length: steps }, () => Array.from({ length: batch }, () => Math.floor(rng.nextFloat() * (stream.length - context - 1)))),
  async (run, starts) => run.losses.push(await step(run, starts)),
);
for (const run of runs) run.close();
const base = times[0];
const threaded = runs.slice(1),
  ref = threaded[0];
const same = threaded.every((run) => run.losses.every((l, i) => Object.is(l, ref.losses[i])) && run.params.every((p, i) => p.data.every((x, k) => Object.is(x, ref.params[i].data[k]))));
const rows = runs.map((run, i) => {
  const t = times[i];
  return { variant: run.name, threads: run.threads, msPerStep: t, tokensPerSecond: (batch * context * 1000) / t, speedup: base / t };
});
if (flags.json) process.stdout.write(JSON.stringify({ config, batch, context, load: loadavg()[0], sameBits: same, rows }) + "\n");
else {
  say(
    markdownTable(
      ["variant", "ms/step", "tokens/s", "speedup"],
      rows.map((r) => [r.variant, r.msPerStep.toFixed(0), r.tokensPerSecond.toFixed(0), `${r.speedup.toFixed(2)}x`]),
    ),
  );
  say(`losses of every step and the final weights equal across thread counts: ${same ? "yes" : "NO"}; load after ${loadavg()[0].toFixed(2)}`);
}
if (!same) process.exitCode = 1;
