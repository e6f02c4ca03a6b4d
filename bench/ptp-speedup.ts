/**
 * Where PTP pays, measured: wall-clock tokens/s of AR and of each PTP decoder
 * in one run, with a PTP student, at the teacher's own shape and at
 * function-preserving widenings of it (src/ptp/widen.ts) to the compute of
 * the 15M, 42M and 110M shapes: the same tokens and acceptance, the cost per
 * call of the bigger model. Prints per shape and decoder the tokens and rows
 * per call, c(rows) (one call of that many rows over a one-row call), tok/s
 * of AR and of the decoder, the speedup and whether the outputs equal AR's.
 *
 *   node --experimental-wasm-relaxed-simd --import tsx bench/ptp-speedup.ts [flags]
 *
 * Flags:
 *   --student FILE     the PTP student (default demo/stories260K-student.safetensors
 *                      with ../shared/models/stories260K.bin where that file exists,
 *                      else demo/student.safetensors with demo/teacher.bin)
 *   --draft FILE       a standalone draft model instead of a student (decoder verify;
 *                      at widened shapes the draft keeps its size: widenDraft)
 *   --model FILE       its teacher; --tokenizer FILE its tokenizer
 *   --shapes LIST      own,15M,42M,110M (default)
 *   --prompts FILE     prompts, one per line (default: the demo's four); --count N takes
 *                      the first N of them (default: all)
 *   --decoders LIST    verify,single-call,multi-draft (default; verify for a draft
 *                      model or a draft-head student, whose head keeps its width at
 *                      widened shapes: widenDraftHead)
 *   --steps N (128)  --temperature T (0.7)  --reps N (3)
 *   --threads LIST     wasm thread counts, each measured in turn with its own AR
 *                      baseline (default 1; `ptp generate` and `ptp demo` use the
 *                      available cores)
 *   --weights f32|bf16|int8   the wasm backend's matmul weights (default f32): PTP
 *                      on that teacher (and student) against AR on the same weights
 *   --draft-classifier f32|bf16|int8   the draft head's (or draft model's) classifier in
 *                      that type (default: the teacher's --weights); drafts only
 *   --draft-stop Q|auto  verify with a draft head: stop a window's drafts once their
 *                      probabilities multiply to less than Q (default: the decoders');
 *                      auto: the drafts that pay for themselves by the measured call cost
 *   --window N         slots per proposal window (default: the proposer's; a draft head's,
 *                      at most DECODER_DEFAULTS.headWindow, 4)
 *   --draft-temperature-scale R   C-PTP drafts at R x T (default: the decoders' default)
 *   --runner-ups on|off|N   single-call and verify with or without the drafts' runner-up rows (default: the decoders')
 *   --budget N         single-call: proposal rows per call (default: the decoders', 2 x window)
 *   --json             one array of {threads, shape, decoder, acceptedPerCall, rowsPerCall,
 *                      cRows, arTokensPerSecond, tokensPerSecond, speedup, hostShare, equalsAR}
 */
import { draftStopFlag } from "../src/cli/ptp-common.js";
import { existsSync } from "node:fs";
import { loadavg } from "node:os";
import { resolve } from "node:path";
import { createBackend } from "../src/backends/registry.js";
import { DEMO_PROMPTS } from "../src/cli/demo.js";
import { readPrompts } from "../src/cli/ptp-common.js";
import { readCheckpoint } from "../src/io/checkpoint.js";
import { Tokenizer } from "../src/io/tokenizer.js";
import { DECODERS } from "../src/ptp/decode/run.js";
import { decoderSettings, defaultDecoder, draftsBesideTeacher, MAX_BUDGET, MAX_WINDOW, proposerKind } from "../src/ptp/decode/defaults.js";
import { WIDEN_SHAPES } from "../src/ptp/widen.js";
import { proposerConfig } from "../src/ptp/proposer.js";
import { measureSpeedup, speedupTable } from "../src/ptp/speedup.js";
import { benchFlags, COUNT, listFlag, onOffCountFlag, readProposer, TEMPERATURE, THREADS, usageError, WEIGHTS } from "./common.js";

const root = resolve(import.meta.dirname, "..");
const trained = resolve(root, "demo/stories260K-student.safetensors");
const f = benchFlags({
  student: { kind: "string", value: "FILE" },
  draft: { kind: "string", value: "FILE" },
  model: { kind: "string", value: "FILE" },
  tokenizer: { kind: "string", value: "FILE" },
  shapes: { kind: "string", value: "LIST", default: "own,15M,42M,110M" },
  prompts: { kind: "string", value: "FILE" },
  count: { ...COUNT },
  decoders: { kind: "string", value: "LIST" },
  steps: { ...COUNT, default: 128 },
  temperature: { ...TEMPERATURE, default: 0.7 },
  reps: { ...COUNT, default: 3 },
  threads: { kind: "string", value: "LIST", default: "1" },
  weights: { ...WEIGHTS, default: "f32" },
  "draft-classifier": { ...WEIGHTS },
  "draft-stop": { kind: "string", value: "Q|auto" },
  window: { ...COUNT, max: MAX_WINDOW },
  "draft-temperature-scale": { kind: "number", value: "R", above: 0, max: 1 },
  "runner-ups": { kind: "string", value: "on|off|N" },
  budget: { ...COUNT, max: MAX_BUDGET },
  json: { kind: "bool" },
});
const draftPath = f.draft;
if (draftPath !== undefined && f.student !== undefined) usageError("--draft and --student: give one proposer");
const useTrained = (existsSync(trained) || draftPath !== undefined) && f.student === undefined;
const studentPath = f.student ?? (useTrained ? trained : resolve(root, "demo/student.safetensors"));
const ownDemo = !useTrained && f.student === undefined;
const modelPath = f.model ?? (ownDemo ? resolve(root, "demo/teacher.bin") : resolve(root, "../shared/models/stories260K.bin"));
const tokPath = f.tokenizer ?? (ownDemo ? resolve(root, "demo/tok.bin") : resolve(root, "../shared/models/tok512.bin"));
const shapes = listFlag("shapes", f.shapes, { kind: "string", choices: ["own", ...Object.keys(WIDEN_SHAPES)] });
const { steps, temperature, reps, weights, window, budget } = f;
const threadCounts = listFlag("threads", f.threads, THREADS);
const draftStop = f["draft-stop"] === undefined ? undefined : draftStopFlag(f["draft-stop"]);
const draftClassifier = f["draft-classifier"];
const draftTemperatureScale = f["draft-temperature-scale"];
const runnerUps = onOffCountFlag("runner-ups", f["runner-ups"]);
const asJson = f.json;
const progress = (m: string) => process.stderr.write(`[ptp-speedup] ${m}\n`);

const teacher = readCheckpoint(modelPath);
const proposerPath = draftPath ?? studentPath;
const proposer = readProposer(proposerPath, teacher, draftPath !== undefined);
const { variant, window: proposerWindow } = proposerConfig(proposer);
// The window the decoders run with: --window, else the proposer's default (a draft head's at most DECODER_DEFAULTS.headWindow).
const decodeWindow = window ?? decoderSettings(proposer.kind === "draft" ? { draftWindow: proposerWindow } : { studentWindow: proposerWindow, studentDraftHead: proposer.student.config.draftHead === true }).window;
// A draft model or a draft-head student drafts beside the teacher: its default decoder (verify) alone.
const kind = proposerKind(proposer);
const decoders = listFlag("decoders", f.decoders ?? (draftsBesideTeacher(kind) ? defaultDecoder(kind) : "verify,single-call,multi-draft"), { kind: "string", choices: DECODERS });
const tokenizer = Tokenizer.load(tokPath, teacher.config.vocabSize);
const promptsPath = f.prompts;
const count = f.count;
const texts = (promptsPath !== undefined ? readPrompts(promptsPath) : DEMO_PROMPTS).slice(0, count);
const prompts = texts.map((p) => tokenizer.encode(p, true, false));
const loadBefore = loadavg()
  .map((x) => x.toFixed(2))
  .join(" ");
progress(`teacher ${modelPath}, ${proposer.kind} ${proposerPath}; load ${loadBefore}`);
// Each thread count on its own backend, AR and the decoders alternating within it as measureSpeedup does.
const perThreads = [];
for (const threads of threadCounts) {
  const backend = await createBackend("wasm", { threads, weights });
  try {
    const rows = measureSpeedup({ backend, teacher, proposer, prompts, shapes, decoders, steps, temperature, reps, window, draftTemperatureScale, runnerUps, budget, draftStop, draftClassifier, onProgress: (m) => progress(`${threads}T ${m}`) });
    perThreads.push({ threads, rows });
  } finally {
    backend.dispose?.();
  }
}
const loadAfter = loadavg()
  .map((x) => x.toFixed(2))
  .join(" ");
if (asJson) {
  console.log(JSON.stringify(perThreads.flatMap(({ threads, rows }) => rows.map((r) => ({ threads, ...r })))));
} else {
  console.log(`PTP wall-clock speedup: teacher ${modelPath}, ${proposer.kind} ${proposerPath} (${variant}-PTP, window ${decodeWindow}${decodeWindow !== proposerWindow ? `; its own ${proposerWindow}` : ""})`);
  console.log(
    `${prompts.length} prompts (${promptsPath ?? "the demo's"}), one decode each, ${steps} positions, temperature ${temperature}, ${weights} weights${draftClassifier ? `, draft classifier ${draftClassifier}` : ""}${draftStop !== undefined ? `, draft stop ${draftStop}` : ""}, medians of ${reps} alternating runs`,
  );
  console.log(`load average before: ${loadBefore}; after: ${loadAfter}\n`);
  for (const { threads, rows } of perThreads) console.log(`wasm, ${threads} thread(s):\n\n${speedupTable(rows)}`);
}
