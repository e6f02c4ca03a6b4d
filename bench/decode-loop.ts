/**
 * What the decode loop costs beside the model: one prompt decoded by
 * decodeAR (the plain AR loop), by `decode` with decoder "ar" (the loop
 * every PTP decoder runs: plan, one call, accept, the cache's bookkeeping)
 * and by a draft head's verify decoder (draftStop "auto" and 0.1), on the
 * same teacher, prompt and u's, in alternating rounds. Prints each one's
 * fastest decode (another tenant only adds time), its time per model call
 * and its ratio to decodeAR in the same run; every output must equal
 * decodeAR's (exit 1 if not). At stories260K's size a call takes about
 * 50 us, so the loop's own work shows.
 *
 *   node --experimental-wasm-relaxed-simd --import tsx bench/decode-loop.ts [--model PATH] [--student HEAD]
 *     [--steps 256] [--rounds 40] [--temperature 0.7] [--threads 1]
 *
 * Defaults: ../shared/models/stories260K.bin and demo/stories260K-head.safetensors.
 */
import { loadavg } from "node:os";
import { resolve } from "node:path";
import { createBackend } from "../src/backends/registry.js";
import { readCheckpoint } from "../src/io/checkpoint.js";
import { Transformer } from "../src/model/transformer.js";
import { decodeAR } from "../src/ptp/decode/decode-ar.js";
import { decode } from "../src/ptp/decode/run.js";
import { PtpModel } from "../src/ptp/ptp-model.js";
import { XorShiftAux } from "../src/sampling/aux.js";
import { benchFlags, COUNT, markdownTable, readProposer, TEMPERATURE, THREADS } from "./common.js";

const ROOT = resolve(import.meta.dirname, "..");
const f = benchFlags({
  model: { kind: "string", value: "PATH", default: resolve(ROOT, "../shared/models/stories260K.bin") },
  student: { kind: "string", value: "HEAD", default: resolve(ROOT, "demo/stories260K-head.safetensors") },
  steps: { ...COUNT, default: 256 },
  rounds: { ...COUNT, default: 40 },
  temperature: { ...TEMPERATURE, default: 0.7 },
  threads: { ...THREADS, default: 1 },
});

const ckpt = readCheckpoint(f.model);
const proposer = readProposer(f.student, ckpt, false);
if (proposer.kind !== "student" || !proposer.student.config.draftHead) throw new Error(`bench/decode-loop.ts: --student ${f.student} is not a draft head`);
const backend = await createBackend("wasm", { threads: f.threads });
const teacher = new Transformer(backend, ckpt);
const model = new PtpModel(teacher, proposer.student);
const prompt = [1];
const options = { steps: f.steps, sampling: { temperature: f.temperature }, stopAtBos: false };
const aux = () => new XorShiftAux(5n);

/** Each way to decode: its tokens and model calls. */
const ways: [string, () => { tokens: number[]; calls: number }][] = [
  ["decodeAR", () => ((r) => ({ tokens: r.tokens, calls: r.stats.modelCalls }))(decodeAR(teacher, prompt, { ...options, aux: aux() }))],
  ['decode, decoder "ar"', () => ((r) => ({ tokens: r.outputs[0], calls: r.stats.modelCalls }))(decode(model, [prompt], { ...options, aux: [aux()], decoder: "ar" }))],
  ["verify, head, draftStop auto", () => ((r) => ({ tokens: r.outputs[0], calls: r.stats.modelCalls }))(decode(model, [prompt], { ...options, aux: [aux()], decoder: "verify", draftStop: "auto" }))],
  ["verify, head, draftStop 0.1", () => ((r) => ({ tokens: r.outputs[0], calls: r.stats.modelCalls }))(decode(model, [prompt], { ...options, aux: [aux()], decoder: "verify", draftStop: 0.1 }))],
];

const load = loadavg()[0];
const fastest = ways.map(() => Number.POSITIVE_INFINITY);
const calls = ways.map(() => 0);
let reference: string | undefined;
for (let round = 0; round <= f.rounds; round++) {
  const order = ways.map((_, i) => i);
  if (round % 2) order.reverse();
  for (const i of order) {
    const t0 = performance.now();
    const r = ways[i][1]();
    const ms = performance.now() - t0;
    reference ??= r.tokens.join();
    if (r.tokens.join() !== reference) {
      console.error(`bench/decode-loop.ts: ${ways[i][0]} decoded other tokens than decodeAR`);
      process.exit(1);
    }
    // Round 0 warms up (compilation, the cost table of draftStop auto).
    if (round > 0) fastest[i] = Math.min(fastest[i], ms);
    calls[i] = r.calls;
  }
}
console.log(`${f.model}, one prompt, ${f.steps} positions, T = ${f.temperature}, ${f.threads} thread(s); fastest of ${f.rounds} alternating rounds; load ${load.toFixed(2)} -> ${loadavg()[0].toFixed(2)}\n`);
console.log(
  markdownTable(
    ["decode", "ms", "model calls", "us per call", "time / decodeAR"],
    ways.map(([name], i) => [name, fastest[i].toFixed(2), String(calls[i]), ((1000 * fastest[i]) / calls[i]).toFixed(1), `${(fastest[i] / fastest[0]).toFixed(2)}x`]),
  ),
);
teacher.dispose();
process.exit(0);
