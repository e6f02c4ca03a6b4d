/**
 * How often a wrong draft's next-best candidates hold the teacher's token:
 * the ceiling of a single-call variant whose branches also read candidates
 * for the position a call corrects (docs/BENCHMARKS.md, "Sharpened drafts").
 *
 * Verify decodes the prompts one at a time; for every proposal window, slot
 * `--slot` drafts with the decoders' rule (drafter), and its candidates are
 * the same sharpened pick with the draft, then each earlier candidate,
 * removed. Where the draft differs from the AR token at its position (the
 * output equals AR's, so that is the decoded text), the script counts
 * whether candidate 1, 2 or 3 is that token.
 *
 *   node --experimental-wasm-relaxed-simd --import tsx bench/correction-candidates.ts \
 *     --model M.bin --tokenizer T.bin --student S.safetensors --prompts P.txt [--count 64]
 *     [--slot 1] [--temperature 0.7] [--draft-temperature-scale R] [--steps 128] [--seed 1] [--threads 2]
 */
import { readFileSync } from "node:fs";
import { createBackend } from "../src/backends/registry.js";
import { readCheckpoint } from "../src/io/checkpoint.js";
import { Tokenizer } from "../src/io/tokenizer.js";
import { Transformer } from "../src/model/transformer.js";
import { drafter, draftSampling } from "../src/ptp/decode/decoder.js";
import { comparePtpAr } from "../src/ptp/decode/compare.js";
import { DECODER_DEFAULTS } from "../src/ptp/decode/defaults.js";
import { makeDecoder } from "../src/ptp/decode/run.js";
import { readStudent } from "../src/ptp/files/adapter-file.js";
import { PtpModel } from "../src/ptp/ptp-model.js";
import { XorShiftAux } from "../src/sampling/aux.js";
import { sampleToken } from "../src/sampling/sampler.js";
import { benchFlags, COUNT, inputError, THREADS } from "./common.js";

const f = benchFlags({
  model: { kind: "string", value: "FILE", required: true },
  tokenizer: { kind: "string", value: "FILE", required: true },
  student: { kind: "string", value: "FILE", required: true },
  prompts: { kind: "string", value: "FILE", required: true },
  count: { ...COUNT, default: 64 },
  slot: { ...COUNT, default: 1 },
  // Candidates need a u: a positive temperature.
  temperature: { kind: "number", value: "T", default: 0.7, above: 0 },
  "draft-temperature-scale": { kind: "number", value: "R", default: DECODER_DEFAULTS.draftTemperatureScale, above: 0, max: 1 },
  steps: { ...COUNT, default: 128 },
  seed: { kind: "int", value: "S", default: 1, min: 1 },
  threads: { ...THREADS, default: 2 },
});
const ckpt = readCheckpoint(f.model);
const tokenizer = Tokenizer.load(f.tokenizer, ckpt.config.vocabSize);
const { count, slot, temperature, steps, seed, threads } = f;
const scale = f["draft-temperature-scale"];
const prompts = readFileSync(f.prompts, "utf8")
  .split(/\r?\n/)
  .filter((l) => l.trim() !== "")
  .slice(0, count)
  .map((t) => tokenizer.encode(t, true, false));
if (prompts.length === 0) inputError(`--prompts ${f.prompts} has no non-empty line`);

const backend = await createBackend("wasm", { threads });
const model = new PtpModel(new Transformer(backend, ckpt), readStudent(f.student));
const toDraft = drafter(model, scale);
const CANDIDATES = 3;
let log: { position: number; draft: number; candidates: number[] }[] = [];
const hits = new Array<number>(CANDIDATES).fill(0);
let wrong = 0;
comparePtpAr(model, prompts, {
  decode: { decoder: "verify", steps, sampling: { temperature }, draftTemperatureScale: scale },
  aux: (i) => new XorShiftAux(BigInt(seed + i)),
  batch: 1,
  decoder: (m, options) => {
    const inner = makeDecoder(m, options);
    return {
      ...inner,
      accept(seq, group, out) {
        const logits = out.slots[slot];
        if (logits !== undefined) {
          const k = seq.next + slot,
            u = seq.u.forStudent(k);
          const draft = toDraft(seq, k, slot, logits);
          const rest = Float32Array.from(logits);
          const candidates: number[] = [];
          for (let c = draft; candidates.length < CANDIDATES; ) {
            rest[c] = Number.NEGATIVE_INFINITY;
            c = sampleToken(rest, draftSampling(seq.sampling, slot, scale), u);
            candidates.push(c);
          }
          log.push({ position: k, draft, candidates });
        }
        return inner.accept(seq, group, out);
      },
    };
  },
  onBatch: ({ ptp }) => {
    const text = ptp.outputs[0];
    for (const d of log) {
      if (d.position >= text.length || text[d.position] === d.draft) continue;
      wrong++;
      const at = d.candidates.indexOf(text[d.position]);
      for (let c = Math.max(at, 0); at >= 0 && c < CANDIDATES; c++) hits[c]++;
    }
    log = [];
  },
});
if (wrong === 0) inputError(`slot ${slot}: no wrong draft in ${prompts.length} prompts, so nothing to count (more prompts or --steps, or an earlier --slot)`);
console.log(`slot ${slot}, T = ${temperature}, drafts at ${scale} T, ${prompts.length} prompts: ${wrong} wrong drafts; the AR token is among the first 1 / 2 / 3 candidates in ${hits.map((h) => (h / wrong).toFixed(3)).join(" / ")} of them`);
