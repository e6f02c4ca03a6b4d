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
 *   --steps N (128)  --temperature T (0.7)  --reps N (3)  --threads N (1)
 *   --weights f32|bf16|int8   the wasm backend's matmul weights (default f32): PTP
 *                      on that teacher (and student) against AR on the same weights
 *   --draft-classifier f32|bf16|int8   the draft head's (or draft model's) classifier in
 *                      that type (default: the teacher's --weights); drafts only
 *   --draft-stop Q     verify with a draft head: stop a window's drafts once their
 *                      probabilities multiply to less than Q (default: the decoders')
 *   --window N         slots per proposal window (default: the student's)
 *   --draft-temperature-scale R   C-PTP drafts at R x T (default: the decoders' default)
 *   --runner-ups on|off|N   single-call and verify with or without the drafts' runner-up rows (default: the decoders')
 *   --budget N         single-call: proposal rows per call (default: the decoders', 2 x window)
 *   --json             one array of {shape, decoder, acceptedPerCall, rowsPerCall,
 *                      cRows, arTokensPerSecond, tokensPerSecond, speedup, equalsAR}
 */
import { existsSync } from "node:fs";
import { loadavg } from "node:os";
import { resolve } from "node:path";
import { WEIGHT_TYPES, type WeightType } from "../src/backends/backend.js";
import { createBackend } from "../src/backends/registry.js";
import { DEMO_PROMPTS } from "../src/cli/demo.js";
import { readPrompts } from "../src/cli/ptp-common.js";
import { readCheckpoint } from "../src/io/checkpoint.js";
import { Tokenizer } from "../src/io/tokenizer.js";
import { DECODERS, type DecoderName } from "../src/ptp/decode/run.js";
import { proposerConfig } from "../src/ptp/proposer.js";
import { measureSpeedup, speedupTable } from "../src/ptp/speedup.js";
import { has, option, positiveIntOption, readProposer, onOffCountOption } from "./common.js";

const root = resolve(import.meta.dirname, "..");
const trained = resolve(root, "demo/stories260K-student.safetensors");
const draftPath = option("--draft");
if (draftPath !== undefined && option("--student") !== undefined) throw new Error("--draft and --student: give one proposer");
const useTrained = (existsSync(trained) || draftPath !== undefined) && option("--student") === undefined;
const studentPath = option("--student", useTrained ? trained : resolve(root, "demo/student.safetensors"))!;
const ownDemo = !useTrained && option("--student") === undefined;
const modelPath = option("--model", ownDemo ? resolve(root, "demo/teacher.bin") : resolve(root, "../shared/models/stories260K.bin"))!;
const tokPath = option("--tokenizer", ownDemo ? resolve(root, "demo/tok.bin") : resolve(root, "../shared/models/tok512.bin"))!;
const shapes = option("--shapes", "own,15M,42M,110M")!.split(",");
const steps = Number(option("--steps", "128"));
const temperature = Number(option("--temperature", "0.7"));
const reps = Number(option("--reps", "3"));
const threads = Number(option("--threads", "1"));
const weights = option("--weights", "f32") as WeightType;
if (!WEIGHT_TYPES.includes(weights)) throw new Error(`--weights: expected one of ${WEIGHT_TYPES.join(", ")}, got ${JSON.stringify(weights)}`);
const stopFlag = option("--draft-stop");
const draftStop = stopFlag === undefined ? undefined : Number(stopFlag);
const draftClassifier = option("--draft-classifier") as WeightType | undefined;
if (draftClassifier !== undefined && !WEIGHT_TYPES.includes(draftClassifier)) throw new Error(`--draft-classifier: expected one of ${WEIGHT_TYPES.join(", ")}, got ${JSON.stringify(draftClassifier)}`);
const window = positiveIntOption("--window");
const scaleFlag = option("--draft-temperature-scale");
const draftTemperatureScale = scaleFlag === undefined ? undefined : Number(scaleFlag);
const runnerUps = onOffCountOption("--runner-ups");
const budget = positiveIntOption("--budget");
const asJson = has("--json");
const progress = (m: string) => process.stderr.write(`[ptp-speedup] ${m}\n`);

const teacher = readCheckpoint(modelPath);
const proposerPath = draftPath ?? studentPath;
const proposer = readProposer(proposerPath, teacher, draftPath !== undefined);
const { variant, window: proposerWindow } = proposerConfig(proposer);
// A draft model or a draft-head student drafts beside the teacher: verify is its decoder.
const beside = proposer.kind === "draft" || proposer.student.config.draftHead === true;
const decoders = option("--decoders", beside ? "verify" : "verify,single-call,multi-draft")!.split(",") as DecoderName[];
for (const d of decoders) if (!(DECODERS as readonly string[]).includes(d)) throw new Error(`--decoders: unknown decoder ${d}`);
const tokenizer = Tokenizer.load(tokPath, teacher.config.vocabSize);
const promptsPath = option("--prompts");
const count = positiveIntOption("--count");
const texts = (promptsPath !== undefined ? readPrompts(promptsPath) : DEMO_PROMPTS).slice(0, count);
const prompts = texts.map((p) => tokenizer.encode(p, true, false));
const backend = await createBackend("wasm", { threads, weights });
const loadBefore = loadavg()
  .map((x) => x.toFixed(2))
  .join(" ");
progress(`teacher ${modelPath}, ${proposer.kind} ${proposerPath}; load ${loadBefore}`);
const rows = measureSpeedup({ backend, teacher, proposer, prompts, shapes, decoders, steps, temperature, reps, window, draftTemperatureScale, runnerUps, budget, draftStop, draftClassifier, onProgress: progress });
const loadAfter = loadavg()
  .map((x) => x.toFixed(2))
  .join(" ");
if (asJson) {
  console.log(JSON.stringify(rows));
} else {
  console.log(`PTP wall-clock speedup: teacher ${modelPath}, ${proposer.kind} ${proposerPath} (${variant}-PTP, window ${window ?? proposerWindow})`);
  console.log(
    `${prompts.length} prompts (${promptsPath ?? "the demo's"}), one decode each, ${steps} positions, temperature ${temperature}, wasm ${threads} thread(s), ${weights} weights${draftClassifier ? `, draft classifier ${draftClassifier}` : ""}${draftStop !== undefined ? `, draft stop ${draftStop}` : ""}, medians of ${reps} alternating runs`,
  );
  console.log(`load average before: ${loadBefore}; after: ${loadAfter}\n`);
  console.log(speedupTable(rows));
}
backend.dispose?.();
