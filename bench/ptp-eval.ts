/**
 * Accepted tokens per call and wall-clock speed of PTP decoders against AR,
 * on held-out prompts, one prompt at a time (batch 1, the latency setting),
 * every decoder and AR measured in the same run on the same u's (prompt i:
 * the xorshift stream seeded seed + i). Also checks that every PTP output
 * equals AR's (self-verification follows the C-PTP model's own AR path, so
 * it is not compared).
 *
 *   node --experimental-wasm-relaxed-simd --import tsx bench/ptp-eval.ts \
 *     --model M.bin --tokenizer T.bin (--student S.safetensors | --draft D.safetensors) --prompts P.txt \
 *     [--decoders single-call,verify] [--temperatures 0.7,1,0] [--steps 128] [--count 0=all]
 *     [--threads 1] [--seed 1] [--budget B] [--window W] [--draft-temperature-scale R] [--runner-ups on|off|N] [--json]
 *
 * For verify and single-call it also prints the per-slot accuracy curve:
 * over every proposal window, how often slot j's draft equals the AR token
 * at its position, whatever the slots before it drafted; and the same given
 * that every earlier slot of the window was right (the only case in which a
 * draft counts, and the one a student with chained pick feedback is trained
 * for: after a wrong draft its later slots read that wrong token). Verify's windows
 * start right after the exact AR path so far; single-call's next drafts
 * come from the branch whose assumed drafts passed, which starts one
 * position earlier, at the token the call itself corrects. A student that
 * ignores u tops out near the teacher's greedy agreement; above it, the
 * drafts use u. With --draft, a standalone draft model proposes (decoder
 * verify only).
 */
import { readFileSync } from "node:fs";
import { createBackend } from "../src/backends/registry.js";
import { readCheckpoint } from "../src/io/checkpoint.js";
import { Tokenizer } from "../src/io/tokenizer.js";
import { Transformer } from "../src/model/transformer.js";
import { drafter, type Decoder } from "../src/ptp/decode/decoder.js";
import { comparePtpAr, defaultDecoders } from "../src/ptp/decode/compare.js";
import { DECODERS, makeDecoder, settingsOf, type DecoderName } from "../src/ptp/decode/run.js";
import { defaultDecoder, draftsBesideTeacher, MAX_BUDGET, MAX_WINDOW, proposerKind } from "../src/ptp/decode/defaults.js";
import { benchFlags, COUNT, listFlag, onOffCountFlag, readProposer, TEMPERATURE, THREADS, usageError } from "./common.js";
import { PtpModel } from "../src/ptp/ptp-model.js";
import { DraftModel } from "../src/ptp/draft-model.js";
import { proposerConfig } from "../src/ptp/proposer.js";
import { XorShiftAux } from "../src/sampling/aux.js";

const f = benchFlags({
  model: { kind: "string", value: "FILE", required: true },
  tokenizer: { kind: "string", value: "FILE", required: true },
  student: { kind: "string", value: "FILE" },
  draft: { kind: "string", value: "FILE" },
  prompts: { kind: "string", value: "FILE", required: true },
  // Default: the proposer's decoders (defaultDecoders; verify for a draft model or a draft-head student).
  decoders: { kind: "string", value: "LIST" },
  temperatures: { kind: "string", value: "LIST", default: "0.7,1,0" },
  steps: { ...COUNT, default: 128 },
  // 0: all the prompts.
  count: { kind: "int", value: "N", default: 0, min: 0 },
  threads: { ...THREADS, default: 1 },
  // Prompt i's u's: the xorshift stream seeded seed + i (a positive seed).
  seed: { kind: "int", value: "S", default: 1, min: 1 },
  budget: { ...COUNT, value: "B", max: MAX_BUDGET },
  window: { ...COUNT, value: "W", max: MAX_WINDOW },
  "draft-temperature-scale": { kind: "number", value: "R", above: 0, max: 1 },
  "runner-ups": { kind: "string", value: "on|off|N" },
  json: { kind: "bool" },
});
const draftPath = f.draft;
if (draftPath !== undefined && f.student !== undefined) usageError("--draft and --student: give one proposer");
const proposerPath = draftPath ?? f.student ?? usageError("--student (or --draft) is required");
const { steps, count, seed, threads, budget } = f;
const temperatures = listFlag("temperatures", f.temperatures, TEMPERATURE);
const ckpt = readCheckpoint(f.model);
const tokenizer = Tokenizer.load(f.tokenizer, ckpt.config.vocabSize);
const proposer = readProposer(proposerPath, ckpt, draftPath !== undefined);
const config = proposerConfig(proposer);
const texts = readFileSync(f.prompts, "utf8")
  .split(/\r?\n/)
  .filter((l) => l.trim() !== "");
const prompts = (count > 0 ? texts.slice(0, count) : texts).map((t) => tokenizer.encode(t, true, false));
// A query student's own AR path is the teacher's, so self decoding says nothing about it.
// A draft model or a draft-head student drafts beside the teacher: its default decoder (verify) alone.
const kind = proposerKind(proposer);
const decoders = listFlag("decoders", f.decoders ?? (proposer.kind === "student" && !draftsBesideTeacher(kind) ? defaultDecoders(config.variant, proposer.student.config.query === true).join(",") : defaultDecoder(kind)), { kind: "string", choices: DECODERS });
// Slots per proposal window (default: the proposer's own), as `ptp generate --window` takes it.
const window = f.window;
// C-PTP drafts are picked at this fraction of T (1: the method's plain Pick(u, Q)), as `ptp generate --draft-temperature-scale` takes it.
// Default: the decoders' own for this proposer (DECODER_DEFAULTS; a chained student's is higher).
const draftTemperatureScale = f["draft-temperature-scale"];
// single-call and verify: with or without the drafts' runner-ups (as `ptp generate --runner-ups on|off|N`; default: the decoders').
const runnerUps = onOffCountFlag("runner-ups", f["runner-ups"]);

const backend = await createBackend("wasm", { threads });
const teacher = new Transformer(backend, ckpt);
const model = new PtpModel(teacher, proposer.kind === "student" ? proposer.student : undefined);
const draftModel = proposer.kind === "draft" ? new DraftModel(teacher, proposer.draft) : undefined;
// The draft rule verify's logged drafts are read with: the decoders' own.
const toDraft = drafter(model, settingsOf(model, { decoder: "verify", draftTemperatureScale, ...(draftModel ? { draft: draftModel } : {}) }).draftTemperatureScale);

interface Row {
  decoder: string;
  temperature: number;
  prompts: number;
  tokens: number;
  calls: number;
  meanAccepted: number;
  tokensPerSecond: number;
  arTokensPerSecond: number;
  speedup: number;
  equalsAR: boolean | null;
  /** verify and single-call: per-slot accuracy of the drafts against the AR path. */
  slotAccuracy?: number[];
  /** The same, over the windows whose earlier slots were all right. */
  slotAccuracyGiven?: number[];
}

/**
 * The decoder, wrapped to record each proposal's drafts by position: verify's
 * from its slot logits (a draft model's from its plan); single-call's from
 * its state after each call (draft i is slot i + 1 of the branch that passed).
 */
function withDraftLog(inner: Decoder, log: { position: number; slot: number; token: number }[]): Decoder {
  if (inner.name === "single-call") {
    return {
      ...inner,
      accept(seq, group, out) {
        const kept = inner.accept(seq, group, out);
        ((inner.state?.(seq) as { drafts?: number[] } | undefined)?.drafts ?? []).forEach((token, i) => log.push({ position: seq.next + i, slot: i + 1, token }));
        return kept;
      },
    };
  }
  return {
    ...inner,
    plan(seq) {
      const group = inner.plan(seq);
      // A proposer beside the teacher keeps its drafts in the decoder's state (a draft head's first is its slot 1: slot 0 is the teacher's pick).
      if (draftModel || model.head) (inner.state?.(seq) as { drafts?: number[] } | undefined)?.drafts?.forEach((token, j) => log.push({ position: seq.next + j, slot: model.head ? j + 1 : j, token }));
      return group;
    },
    accept(seq, group, out) {
      if (!draftModel && !model.head) out.slots.forEach((logits, j) => log.push({ position: seq.next + j, slot: j, token: toDraft(seq, seq.next + j, j, logits) }));
      return inner.accept(seq, group, out);
    },
  };
}

/** One decoder against AR at one temperature, prompt by prompt on the same u's; for verify, slot j's hits and trials against the AR path too. */
function run(decoder: DecoderName, temperature: number) {
  const slotHits: number[] = [],
    slotTrials: number[] = [],
    givenHits: number[] = [],
    givenTrials: number[] = [];
  let log: { position: number; slot: number; token: number }[] = [];
  const r = comparePtpAr(model, prompts, {
    decode: { decoder, steps, sampling: { temperature, topK: 0, topP: 1 }, budget, window, draftTemperatureScale, runnerUps, ...(draftModel ? { draft: draftModel } : {}) },
    aux: (i) => new XorShiftAux(BigInt(seed + i)),
    batch: 1,
    decoder: (m, options) => (decoder === "verify" || decoder === "single-call" ? withDraftLog(makeDecoder(m, options), (log = [])) : makeDecoder(m, options)),
    onBatch: ({ ptp }) => {
      // A window's drafts come in slot order; a slot no later than the one before starts the next window.
      let previous = Infinity,
        allRight = true;
      for (const d of log) {
        if (d.slot <= previous) allRight = true;
        previous = d.slot;
        if (d.position >= ptp.outputs[0].length) continue;
        const hit = ptp.outputs[0][d.position] === d.token ? 1 : 0;
        slotTrials[d.slot] = (slotTrials[d.slot] ?? 0) + 1;
        slotHits[d.slot] = (slotHits[d.slot] ?? 0) + hit;
        if (allRight) {
          givenTrials[d.slot] = (givenTrials[d.slot] ?? 0) + 1;
          givenHits[d.slot] = (givenHits[d.slot] ?? 0) + hit;
        }
        allRight &&= hit === 1;
      }
      log = [];
    },
  });
  return { ...r, slotAccuracy: slotTrials.map((n, j) => (slotHits[j] ?? 0) / n), slotAccuracyGiven: givenTrials.map((n, j) => (givenHits[j] ?? 0) / n) };
}

// Warm-up: JIT tiers and allocations for both paths.
run(decoders[0], 0.7);
const rows: Row[] = [];
for (const temperature of temperatures) {
  for (const decoder of decoders) {
    process.stderr.write(`ptp-eval: ${decoder} at T = ${temperature} on ${prompts.length} prompts ...\n`);
    const r = run(decoder, temperature);
    rows.push({
      decoder,
      temperature,
      prompts: prompts.length,
      tokens: r.stats.generatedTokens,
      calls: r.stats.modelCalls,
      meanAccepted: r.stats.meanAccepted,
      tokensPerSecond: r.stats.tokensPerSecond,
      arTokensPerSecond: r.ar.tokensPerSecond,
      speedup: r.speedup,
      // Self-verification follows the C-PTP model's own AR path: not compared.
      equalsAR: decoder === "self" ? null : r.equalsAR,
      ...(decoder === "verify" || decoder === "single-call" ? { slotAccuracy: r.slotAccuracy, slotAccuracyGiven: r.slotAccuracyGiven } : {}),
    });
  }
}
model.dispose();
draftModel?.dispose();
teacher.dispose();

if (f.json) console.log(JSON.stringify(rows, null, 2));
else {
  const what = proposer.kind === "student" ? `student ${proposerPath} (${config.variant}-PTP, rank ${proposer.student.config.rank}` : `draft model ${proposerPath} (${config.variant}-PTP, dim ${proposer.draft.config.model.dim} x ${proposer.draft.config.model.nLayers} layers`;
  console.log(`\n${what}, ${config.aux.kind}, window ${config.window}${window !== undefined ? `, decoded with window ${window}` : ""}); ${prompts.length} held-out prompts, ${steps} positions each, batch 1, ${threads} thread(s)\n`);
  console.log("| decoder | T | accepted / call | model calls | tokens | PTP tok/s | AR tok/s | speedup | equals AR |");
  console.log("|---|---|---|---|---|---|---|---|---|");
  for (const r of rows) {
    console.log(`| ${r.decoder} | ${r.temperature} | ${r.meanAccepted.toFixed(2)} | ${r.calls} | ${r.tokens} | ${r.tokensPerSecond.toFixed(0)} | ${r.arTokensPerSecond.toFixed(0)} | ${r.speedup.toFixed(2)}x | ${r.equalsAR === null ? "n/a (own AR path)" : r.equalsAR ? "yes" : "NO"} |`);
  }
  const curves = rows.filter((r) => r.slotAccuracy);
  if (curves.length > 0) {
    const L = Math.max(...curves.map((r) => r.slotAccuracy!.length));
    console.log(`\nper-slot accuracy of the drafts against the AR path (slot j of a window drafts its position j; single-call's slot 0 is the teacher's own token):\n`);
    console.log(`| decoder | T | ${Array.from({ length: L }, (_, j) => `slot ${j}`).join(" | ")} |`);
    console.log(`|---|---|${"---|".repeat(L)}`);
    const cells = (a: number[], j: number) => (a[j] === undefined || Number.isNaN(a[j]) ? "" : a[j].toFixed(3));
    for (const r of curves) console.log(`| ${r.decoder} | ${r.temperature} | ${Array.from({ length: L }, (_, j) => cells(r.slotAccuracy!, j)).join(" | ")} |`);
    console.log(`\nthe same, each slot given that the earlier slots of its window were right:\n`);
    console.log(`| decoder | T | ${Array.from({ length: L }, (_, j) => `slot ${j}`).join(" | ")} |`);
    console.log(`|---|---|${"---|".repeat(L)}`);
    for (const r of curves) console.log(`| ${r.decoder} | ${r.temperature} | ${Array.from({ length: L }, (_, j) => cells(r.slotAccuracyGiven!, j)).join(" | ")} |`);
  }
}
if (rows.some((r) => r.equalsAR === false)) process.exit(1);
