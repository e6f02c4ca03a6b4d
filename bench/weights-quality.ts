/**
 * What reduced-precision weights cost in quality, against the f32 model
 * (the golden reference), on stories260K:
 *   1. held-out perplexity, teacher-forced, on the end of a TinyStories text
 *      (default ../shared/corpora/tinystories_excerpt.txt, its last --chars);
 *   2. how often a sampled token differs: every golden llama2.c case is
 *      decoded with the f32 model; then, along that same token path and with
 *      the same u's, each position's token is picked from the other model's
 *      logits, and the picks that differ are counted (argmax for T = 0).
 * Also the first position where a free-running decode differs.
 *
 *   node --experimental-wasm-relaxed-simd --import tsx bench/weights-quality.ts [--weights bf16|int8] [--chars 40000] [--json]
 *     [--text FILE] [--model M.bin --tokenizer T.bin]
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { createBackend } from "../src/backends/registry.js";
import { readCheckpoint } from "../src/io/checkpoint.js";
import { Tokenizer } from "../src/io/tokenizer.js";
import { Transformer } from "../src/model/transformer.js";
import { decodeAR } from "../src/ptp/decode/decode-ar.js";
import { XorShiftAux } from "../src/sampling/aux.js";
import { sampleToken } from "../src/sampling/sampler.js";
import { benchFlags, COUNT, WEIGHTS } from "./common.js";

const root = resolve(import.meta.dirname, "..");
const shared = resolve(root, "../shared");
const f = benchFlags({
  weights: { ...WEIGHTS, default: "bf16" },
  chars: { ...COUNT, default: 40000 },
  text: { kind: "string", value: "FILE", default: resolve(shared, "corpora/tinystories_excerpt.txt") },
  model: { kind: "string", value: "FILE", default: resolve(shared, "models/stories260K.bin") },
  tokenizer: { kind: "string", value: "FILE", default: resolve(shared, "models/tok512.bin") },
  json: { kind: "bool" },
});
const { weights, chars } = f;
const text = readFileSync(f.text, "utf8");
const ckpt = readCheckpoint(f.model);
const tok = Tokenizer.load(f.tokenizer, ckpt.config.vocabSize);
const golden: { cases: { prompt: string; temperature: number; topp: number; seed: number; steps: number }[] } = JSON.parse(readFileSync(resolve(shared, "golden/stories260K_llama2c.json"), "utf8"));

const ref = new Transformer(await createBackend("wasm", { threads: 1 }), ckpt);
const low = new Transformer(await createBackend("wasm", { threads: 1, weights }), ckpt);
const V = ckpt.config.vocabSize,
  S = ckpt.config.seqLen;

/** Teacher-forced mean negative log-likelihood over windows of seqLen tokens. */
function nll(model: Transformer, tokens: number[]): { nll: number; count: number } {
  let sum = 0,
    count = 0;
  for (let start = 0; start + 1 < tokens.length; start += S - 1) {
    const chunk = tokens.slice(start, start + S);
    if (chunk.length < 2) break;
    const cache = model.newCache(S);
    const logits = model.forward({ tokens: chunk, positions: chunk.map((_, i) => i) }, cache);
    cache.free();
    for (let i = 0; i + 1 < chunk.length; i++) {
      const row = logits.subarray(i * V, (i + 1) * V);
      let mx = -Infinity;
      for (const v of row) mx = Math.max(mx, v);
      let z = 0;
      for (const v of row) z += Math.exp(v - mx);
      sum += -(row[chunk[i + 1]] - mx - Math.log(z));
      count++;
    }
  }
  return { nll: sum / count, count };
}

const held = [1, ...tok.encode(text.slice(text.length - chars), false, false)];
const a = nll(ref, held),
  b = nll(low, held);

let picks = 0,
  differ = 0;
const firstDiverge: (number | null)[] = [];
for (const c of golden.cases) {
  const sampling = { temperature: c.temperature, topP: c.topp };
  const prompt = tok.encode(c.prompt, true, false);
  const path = decodeAR(ref, prompt, { steps: c.steps, sampling, aux: new XorShiftAux(BigInt(c.seed)) }).tokens;
  const free = decodeAR(low, prompt, { steps: c.steps, sampling, aux: new XorShiftAux(BigInt(c.seed)) }).tokens;
  let d: number | null = null;
  for (let i = 0; i < Math.max(path.length, free.length); i++)
    if (path[i] !== free[i]) {
      d = i;
      break;
    }
  firstDiverge.push(d);
  // Along the f32 path, with the same u's: the pick of the reduced-precision logits.
  const cache = low.newCache(S);
  const logits = low.forward({ tokens: path.slice(0, -1), positions: path.slice(0, -1).map((_, i) => i) }, cache);
  cache.free();
  const aux = new XorShiftAux(BigInt(c.seed));
  for (let i = prompt.length - 1; i + 1 < path.length; i++) {
    const u = c.temperature > 0 ? aux.next() : undefined;
    picks++;
    if (sampleToken(logits.subarray(i * V, (i + 1) * V), sampling, u) !== path[i + 1]) differ++;
  }
}
const result = {
  weights,
  heldOutTokens: a.count,
  perplexityF32: Math.exp(a.nll),
  perplexity: Math.exp(b.nll),
  sampledPicks: picks,
  differingPicks: differ,
  differRate: differ / picks,
  goldenCases: golden.cases.length,
  casesDiverging: firstDiverge.filter((d) => d !== null).length,
  firstDivergence: firstDiverge,
};
if (f.json) console.log(JSON.stringify(result));
else {
  console.log(`stories260K, ${weights} weights vs f32 (the golden reference)`);
  console.log(`held-out perplexity (${a.count} tokens, last ${chars} chars of the text): f32 ${result.perplexityF32.toFixed(4)}, ${weights} ${result.perplexity.toFixed(4)} (${((result.perplexity / result.perplexityF32 - 1) * 100).toFixed(3)} %)`);
  console.log(`picks that differ along the f32 path with the same u's: ${differ} of ${picks} (${(100 * result.differRate).toFixed(3)} %)`);
  console.log(`golden cases whose free-running decode diverges: ${result.casesDiverging} of ${golden.cases.length} (first differing position per case: ${firstDiverge.map((d) => d ?? "-").join(", ")})`);
}
