/**
 * Speed of one `ptp train --objective inverse-ar` step (per text window:
 * the base model's context, L slot-by-slot u recoveries, one backward
 * pass; then AdamW) at the command's defaults, on 1 worker thread against
 * more (ordered-parallel.ts: the text windows shared by the threads, their
 * gradients summed in order), measured in the same run: rounds alternate
 * the variants, each figure the median over rounds of the median step
 * time. Every thread count gives the same bits (checked here on every
 * step's loss and the student's weights at the end).
 *
 *   npm run build:ts && node --import tsx bench/inverse-ar-step.ts [--model ../shared/models/stories260K.bin]
 *     [--tokenizer ../shared/models/tok512.bin] [--corpus ../shared/corpora/tinystories_excerpt.txt]
 *     [--threads 1,2] [--batch 8] [--rounds 3] [--steps 3] [--json]
 *
 * The workers run dist/ (build first).
 */
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { readCheckpoint } from "../src/io/checkpoint.js";
import { Tokenizer } from "../src/io/tokenizer.js";
import { randomStudent } from "../src/ptp/init.js";
import { teacherChecksum } from "../src/ptp/files/teacher-checksum.js";
import { wasmTrainKernels } from "../src/train/autograd/index.js";
import { drawTextWindows, inverseArThreads } from "../src/train/inverse-ar.js";
import { AdamW } from "../src/train/optim.js";
import { tokenStream } from "../src/train/pretrain.js";
import { trainableStudent } from "../src/train/student-params.js";
import { Mulberry32 } from "../src/util/prng.js";
import { alternatingRounds, benchFlags, COUNT, listFlag, markdownTable, THREADS } from "./common.js";

const flags = benchFlags({
  model: { kind: "string", value: "FILE", default: "../shared/models/stories260K.bin" },
  tokenizer: { kind: "string", value: "FILE", default: "../shared/models/tok512.bin" },
  corpus: { kind: "string", value: "FILE", default: "../shared/corpora/tinystories_excerpt.txt" },
  threads: { kind: "string", value: "T,T", default: "1,2" },
  batch: { ...COUNT, default: 8 },
  rounds: { ...COUNT, default: 3 },
  steps: { ...COUNT, default: 3 },
  json: { kind: "bool" },
});
const say = (s: string) => void (flags.json ? process.stderr : process.stdout).write(s + "\n");
const threadCounts = listFlag("threads", flags.threads, THREADS);

const base = readCheckpoint(flags.model);
const checksum = teacherChecksum(base);
const tokenizer = Tokenizer.load(flags.tokenizer, base.config.vocabSize);
const lines = readFileSync(flags.corpus, "utf8")
  .split("\n")
  .filter((l) => l.trim() !== "");
const stream = tokenStream(lines.map((l) => tokenizer.encode(l, true, false)));
// `ptp train --objective inverse-ar`'s defaults: rank 32, alpha 32, digits (20), window 8, hybrid slots, temperature 1, beta 1.
const L = 8,
  T = base.config.seqLen;
const settings = { sequences: flags.batch, window: L, sampling: { temperature: 1, topK: 0, topP: 1 }, betaB: 1, kernels: wasmTrainKernels() };

const runs = await Promise.all(
  threadCounts.map(async (threads) => {
    const student = randomStudent(base, checksum, { variant: "C", rank: 32, alpha: 32, aux: { kind: "digits", digits: 20 }, window: L, hybrid: true, seed: 1, zeroB: true });
    const st = trainableStudent(student, base.config);
    const parallel = await inverseArThreads(base, "wasm", student, st, { ...settings, threads });
    return { threads, st, parallel, opt: new AdamW(st.params, { lr: 1e-3 }), losses: [] as number[], slots: 0, ms: 0, timedSlots: 0 };
  }),
);

async function step(run: (typeof runs)[number], seed: number): Promise<number> {
  for (const p of run.st.params) p.grad.fill(0);
  const figures = await run.parallel.run(drawTextWindows(new Mulberry32(seed), stream, flags.batch, T, L));
  for (const p of run.st.params) for (let i = 0; i < p.grad.length; i++) p.grad[i] /= flags.batch;
  run.opt.step();
  run.slots = figures.reduce((a, f) => a + f[1], 0);
  return figures.reduce((a, f) => a + f[0] / flags.batch, 0);
}

say(`inverse-ar step: ${flags.model} (dim ${base.config.dim}, ${base.config.nLayers} layers), ${flags.batch} text windows of ${T} tokens, window ${L}; ${flags.rounds} rounds x ${flags.steps} steps; load ${loadavg()[0].toFixed(2)}`);
// One step each first: JIT, the kernels' memory growth, the pools' first fill.
for (const run of runs) run.losses.push(await step(run, 1));
let seed = 2;
const times = await alternatingRounds(
  runs,
  flags.rounds,
  () => Array.from({ length: flags.steps }, () => seed++),
  async (run, s) => {
    const t0 = performance.now();
    run.losses.push(await step(run, s));
    run.ms += performance.now() - t0;
    run.timedSlots += run.slots;
  },
);
for (const run of runs) run.parallel.close();
const ref = runs[0];
const same = runs.every((run) => run.losses.every((l, i) => Object.is(l, ref.losses[i])) && run.st.params.every((p, i) => p.data.every((x, k) => Object.is(x, ref.st.params[i].data[k]))));
const base0 = times[0];
const rows = runs.map((run, i) => {
  const t = times[i];
  return { threads: run.threads, msPerStep: t, slotsPerSecond: (run.timedSlots * 1000) / run.ms, speedup: base0 / t };
});
if (flags.json) process.stdout.write(JSON.stringify({ model: flags.model, batch: flags.batch, load: loadavg()[0], sameBits: same, rows }) + "\n");
else {
  say(
    markdownTable(
      ["threads", "ms/step", "slots/s", `speedup over ${ref.threads}`],
      rows.map((r) => [String(r.threads), r.msPerStep.toFixed(0), r.slotsPerSecond.toFixed(0), `${r.speedup.toFixed(2)}x`]),
    ),
  );
  say(`losses of every step and the final weights equal across thread counts: ${same ? "yes" : "NO"}; load after ${loadavg()[0].toFixed(2)}`);
}
if (!same) process.exitCode = 1;
