/**
 * Where a draft head's window should stop (DecodeOptions.draftStop), from
 * held-out prompts: decodes each prompt with the full window (draftStop 0)
 * at the teacher's own shape and logs, for every window, the probability
 * the head gave each draft (draftConfidence) and whether the drafts up to it
 * all equal the AR output there. Then, per shape, it measures in the same
 * run a k-row call of the widened teacher over a one-row call (c(k), k = 1
 * .. window) and the head's slot over a one-row call, and prints what each
 * rule would give: a window of W rows stopping once the drafts' chance is
 * below Q, tokens and rows per call, and the speedup over AR predicted by
 *   time of a call = c(rows) + slots x slot cost   (one-row calls; AR: 1 a token).
 * Every window starts from a state of the full-window decode, so the rules
 * are compared on the same windows. bench/ptp-speedup.ts --draft-stop Q
 * measures a rule for real.
 *
 *   node --experimental-wasm-relaxed-simd --import tsx bench/draft-stop.ts --prompts heldout.txt \
 *     [--student demo/stories260K-head.safetensors] [--model M.bin --tokenizer T.bin] [--count 64]
 *     [--window 8] [--steps 128] [--temperature 0.7] [--shapes 42M,110M] [--threads 1]
 *     [--stops 0.05,0.1,0.15,0.2,0.3]
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { createBackend } from "../src/backends/registry.js";
import { readCheckpoint } from "../src/io/checkpoint.js";
import { Tokenizer } from "../src/io/tokenizer.js";
import { Transformer } from "../src/model/transformer.js";
import { draftConfidence, drafter } from "../src/ptp/decode/decoder.js";
import { DECODER_DEFAULTS, MAX_WINDOW } from "../src/ptp/decode/defaults.js";
import { headVerifyDecoder } from "../src/ptp/decode/decoders/head-verify.js";
import { decodeWith } from "../src/ptp/decode/run.js";
import { DraftHead, draftHeadOf } from "../src/ptp/draft-head.js";
import { PtpModel } from "../src/ptp/ptp-model.js";
import { WIDEN_SHAPES, widenCheckpoint, widenDraftHead } from "../src/ptp/widen.js";
import { XorShiftAux } from "../src/sampling/aux.js";
import { benchFlags, COUNT, inputError, listFlag, markdownTable, median, readProposer, TEMPERATURE, THREADS } from "./common.js";

const root = resolve(import.meta.dirname, "..");
const f = benchFlags({
  prompts: { kind: "string", value: "FILE", required: true },
  student: { kind: "string", value: "FILE", default: resolve(root, "demo/stories260K-head.safetensors") },
  model: { kind: "string", value: "FILE", default: resolve(root, "../shared/models/stories260K.bin") },
  tokenizer: { kind: "string", value: "FILE", default: resolve(root, "../shared/models/tok512.bin") },
  // 0: all the prompts.
  count: { kind: "int", value: "N", default: 64, min: 0 },
  window: { ...COUNT, default: 8, max: MAX_WINDOW },
  steps: { ...COUNT, default: 128 },
  temperature: { ...TEMPERATURE, default: 0.7 },
  shapes: { kind: "string", value: "LIST", default: "42M,110M" },
  threads: { ...THREADS, default: 1 },
  stops: { kind: "string", value: "LIST", default: "0.05,0.1,0.15,0.2,0.3" },
});
const promptsPath = f.prompts;
const shapes = listFlag("shapes", f.shapes, { kind: "string", choices: Object.keys(WIDEN_SHAPES) });
const stops = [0, ...listFlag("stops", f.stops, { kind: "number", min: 0, max: 1 })];
const { count, window, steps, temperature, threads } = f;
const teacherCkpt = readCheckpoint(f.model);
const tokenizer = Tokenizer.load(f.tokenizer, teacherCkpt.config.vocabSize);
const proposer = readProposer(f.student, teacherCkpt, false);
if (proposer.kind !== "student" || !proposer.student.config.draftHead) throw new Error("bench/draft-stop.ts: --student must be a draft-head student");
const student = proposer.student;
const progress = (m: string) => process.stderr.write(`[draft-stop] ${m}\n`);

const backend = await createBackend("wasm", { threads });
const scale = DECODER_DEFAULTS.chained.draftTemperatureScale;

/** Per window: the head's probability of each draft, and whether the drafts up to it all equal AR's tokens. */
interface Window {
  chance: number[];
  through: boolean[];
}

function logWindows(): Window[] {
  const teacher = new Transformer(backend, teacherCkpt);
  const model = new PtpModel(teacher, student);
  const head = model.head!;
  const toDraft = drafter(model, scale);
  const confidence = draftConfidence(model, scale, (l, t, T) => head.transformer.tokenProbability(l, t, T));
  const texts = readFileSync(promptsPath, "utf8")
    .split(/\r?\n/)
    .filter((l) => l.trim() !== "")
    .slice(0, count > 0 ? count : undefined);
  if (texts.length === 0) inputError(`--prompts ${promptsPath} has no non-empty line`);
  const windows: Window[] = [];
  texts.forEach((text, i) => {
    const logged: { k: number; draft: number; p: number }[][] = [];
    const draft: typeof toDraft = (seq, k, slot, logits, u, exclude) => {
      const d = toDraft(seq, k, slot, logits, u, exclude);
      if (slot === 1) logged.push([]);
      logged[logged.length - 1].push({ k, draft: d, p: confidence(seq, slot, logits, d) });
      return d;
    };
    const out = decodeWith(model, [tokenizer.encode(text, true, false)], headVerifyDecoder(teacher, head, window, draft), { steps, sampling: { temperature }, aux: [new XorShiftAux(BigInt(1 + i))] }).outputs[0];
    for (const w of logged) {
      let ok = true;
      windows.push({ chance: w.map((d) => d.p), through: w.map((d) => (ok = ok && out[d.k] === d.draft)) });
    }
  });
  model.dispose();
  teacher.dispose();
  if (windows.length === 0) inputError(`no call drafted a token (${texts.length} prompts, --steps ${steps}): every prompt fills --steps; pass a larger --steps`);
  progress(`${texts.length} prompts, ${windows.length} windows of up to ${window - 1} drafts`);
  return windows;
}

/** c(k) for k = 1 .. K of the widened teacher (after 64 cached rows), and the widened head's slot, both over a one-row call. */
function costs(shape: string, K: number): { c: number[]; slot: number; oneRowMs: number } {
  const ckpt = widenCheckpoint(teacherCkpt, WIDEN_SHAPES[shape]);
  const t = new Transformer(backend, ckpt);
  const prefix = 64;
  const cache = t.newCache(prefix + K);
  t.forward({ tokens: Array.from({ length: prefix }, (_, i) => 1 + (i % 200)), positions: Array.from({ length: prefix }, (_, i) => i) }, cache);
  const times: number[][] = Array.from({ length: K }, () => []);
  for (let r = 0; r < 8; r++) {
    const order = Array.from({ length: K }, (_, i) => (r % 2 ? K - i : i + 1));
    for (const k of order) {
      const s = performance.now();
      t.forward({ tokens: Array.from({ length: k }, (_, i) => 2 + i), positions: Array.from({ length: k }, (_, i) => prefix + i) }, cache);
      if (r > 0) times[k - 1].push(performance.now() - s);
      cache.crop(prefix);
    }
  }
  const hidden = t.lastHidden();
  const head = new DraftHead(backend, widenDraftHead(draftHeadOf(student, teacherCkpt.config, teacherCkpt.weights), ckpt));
  const hc = head.newCache(prefix + 1);
  head.ingest(hc, hidden.subarray(0, ckpt.config.dim), [prefix - 1]);
  const slotMs: number[] = [];
  for (let r = 0; r < 40; r++) {
    const s = performance.now();
    head.slot(hc, prefix, 0.5, 7);
    slotMs.push(performance.now() - s);
    hc.crop(1);
  }
  head.dispose();
  cache.free();
  t.dispose();
  const one = median(times[0]);
  return { c: times.map((x) => median(x) / one), slot: median(slotMs.slice(5)) / one, oneRowMs: one };
}

const windows = logWindows();
for (const shape of shapes) {
  const { c, slot, oneRowMs } = costs(shape, window);
  console.log(`\n${shape}, ${threads} thread(s): one-row call ${oneRowMs.toFixed(2)} ms; c(k), k = 1..${window}: ${c.map((x) => x.toFixed(2)).join(" ")}; a slot ${slot.toFixed(3)} one-row calls\n`);
  const rows: string[][] = [];
  for (let W = 2; W <= window; W++) {
    const cells = stops.map((q) => {
      let tokens = 0,
        time = 0,
        callRows = 0;
      for (const w of windows) {
        let chance = 1,
          n = 0,
          slots = 0;
        for (let j = 0; j < Math.min(W - 1, w.chance.length); j++) {
          slots++;
          chance *= w.chance[j];
          if (!(chance >= q)) break;
          n++;
        }
        tokens += 1 + w.through.slice(0, n).filter(Boolean).length;
        callRows += 1 + n;
        time += c[n] + slots * slot;
      }
      return `${(tokens / time).toFixed(2)}x (${(tokens / windows.length).toFixed(2)} tok, ${(callRows / windows.length).toFixed(2)} rows)`;
    });
    rows.push([String(W), ...cells]);
  }
  console.log(markdownTable(["window", ...stops.map((q) => `stop ${q}`)], rows));
}
backend.dispose?.();
