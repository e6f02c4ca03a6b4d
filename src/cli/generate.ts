import { WEIGHT_TYPES, type Backend } from "../backends/backend.js";
import { callCost } from "../ptp/decode/call-cost.js";
import { createBackend } from "../backends/registry.js";
import { backendFlags, budgetFlag, checkThreadsBackend, windowFlag } from "./flag-groups.js";
import { loadTokenizer, readModelConfig, tokenizerPathFor } from "../io/model-file.js";
import { quotePath } from "../io/errors.js";
import { printsPiece } from "../io/tokenizer.js";
import type { TextTokenizer } from "../io/hf-tokenizer.js";
import type { Transformer } from "../model/transformer.js";
import { loadStudent } from "../ptp/files/student-file.js";
import { decodeAR, decodeARSteps, type DecodeResult } from "../ptp/decode/decode-ar.js";
import { checkDraftMatchesTeacher, readDraft } from "../ptp/files/draft-file.js";
import { DraftModel, type Draft } from "../ptp/draft-model.js";
import { comparePtpArSteps, DECODER_DEFAULTS, decoderSettings, defaultDecoder, type DecoderSettings } from "../ptp/decode/compare.js";
import { decoderGoesWith, MAX_DRAFTS, studentKind } from "../ptp/decode/defaults.js";
import { decodeCacheRows, DECODERS, type DecodeOptions, type DecoderName, type PtpStats } from "../ptp/decode/run.js";
import { PtpModel } from "../ptp/ptp-model.js";
import type { Student } from "../ptp/student-weights.js";
import { teacherChecksum } from "../ptp/files/teacher-checksum.js";
import { ArrayAux, readAuxFile, XorShiftAux, type AuxSource } from "../sampling/aux.js";
import { needsU } from "../sampling/sampler.js";
import { describeFlags, givenFlags, parseFlags, UsageError, defineFlags, type Parsed } from "./args.js";
import type { Io } from "./io.js";
import { interrupted, loadModelOn, namingModel, plural, readPrompts, runPositions, seedFlag, draftStopFlag, temperatureFlag, textOf, warnFullPrompts, warnNonFinite, whySlowerLines } from "./ptp-common.js";
import { refuseBeyondMemory } from "./memory.js";
import { inferenceMemory } from "../train/memory.js";
import { Interruption, runInterruptibly, signalSoFar, type Interruptible } from "../train/interrupt.js";

const BUDGET_MODES = ["adaptive", "fixed"] as const;

export const generateFlags = defineFlags({
  model: { kind: "string", value: "PATH", help: "llama2.c checkpoint (.bin) or Hugging Face Llama folder", required: true },
  tokenizer: { kind: "string", value: "FILE", help: "tokenizer.bin or tokenizer.json matching the model (default: the model folder's tokenizer.json)" },
  prompt: { kind: "string", value: "TEXT", help: "text to continue (default: empty)" },
  prompts: { kind: "string", value: "FILE", help: "prompts, one per line (blank lines skipped), decoded together; prompt i uses seed S + i" },
  steps: { kind: "int", value: "N", help: "positions to run, prompt included (0 = the model's seqLen)", default: 256, min: 0 },
  temperature: { kind: "number", value: "T", help: "sampling temperature; 0 = greedy", default: 1 },
  "top-k": { kind: "int", value: "K", help: "keep the K most probable tokens (0 = off)", default: 0, min: 0 },
  "top-p": { kind: "number", value: "P", help: "nucleus sampling threshold in [0, 1] (0 or 1 = off)", default: 1 },
  seed: { kind: "string", value: "S", help: "seed of the xorshift u-stream (integer >= 1; default: from the clock, printed)" },
  "aux-file": { kind: "string", value: "FILE", help: "u values, one per line, one per sampled token (instead of --seed)" },
  student: { kind: "string", value: "FILE", help: "PTP student made for the model: adapter (safetensors) or PEFT folder" },
  draft: { kind: "string", value: "FILE", help: "standalone PTP draft model (safetensors) made for the model, instead of --student (--decoder verify)" },
  decoder: { kind: "string", value: "NAME", help: `${DECODERS.join("|")} (default: ar; single-call with --student, verify with --draft or a draft-head --student)`, choices: DECODERS },
  window: windowFlag(`proposal slots per window (default: the student's or draft model's window; a draft head's, at most ${DECODER_DEFAULTS.headWindow})`),
  budget: budgetFlag,
  "budget-mode": { kind: "string", value: "MODE", help: "single-call: adaptive|fixed split of the budget (default adaptive)", choices: BUDGET_MODES },
  "runner-ups": {
    kind: "string",
    value: "on|off|R",
    help: `single-call, verify: also read R runner-ups of each draft (a call whose correction was one finalizes one token more; on = ${DECODER_DEFAULTS.runnerUps.C}; default on for single-call with a C-PTP student without chained pick feedback, else off)`,
    choices: ["on", "off", "0", "1", "2", "3", "4"],
  },
  drafts: { kind: "int", value: "M", help: `multi-draft: number of drafts (default ${DECODER_DEFAULTS.drafts}; at most ${MAX_DRAFTS})`, min: 1, max: MAX_DRAFTS },
  "draft-temperature-scale": {
    kind: "number",
    value: "R",
    help: `C-PTP drafts are picked at temperature R x T, R in (0, 1]; 1 = the method's plain Pick(u, Q) (default ${DECODER_DEFAULTS.draftTemperatureScale}, ${DECODER_DEFAULTS.chained.draftTemperatureScale} for a student with chained pick feedback; the output is AR's whatever R)`,
  },
  "draft-stop": {
    kind: "string",
    value: "Q|auto",
    help: `verify with a draft head: stop a window's drafts once the head's probabilities of them multiply to less than Q, in [0, 1); 0 = always the full window; auto = the drafts that make a call's expected tokens per unit of time largest, by the teacher's cost of a call of r rows measured here at the start (default ${DECODER_DEFAULTS.draftStop}; the output is AR's whatever Q)`,
  },
  ...backendFlags(),
  weights: { kind: "string", value: "TYPE", help: "wasm backend: matmul weights as f32 (the reference), rounded to bf16, or int8 per group of 32 with int8 activations (faster; the output is that bf16 or int8 model's)", default: "f32", choices: WEIGHT_TYPES },
  "draft-classifier": { kind: "string", value: "TYPE", help: "wasm backend: the draft head's or --draft model's classifier as f32, bf16 or int8 (default: --weights); its drafts only decide how many tokens a call keeps, so the output stays the teacher's", choices: WEIGHT_TYPES },
  "no-stop": { kind: "bool", help: "do not stop when the model emits BOS (for benchmarks on random weights)" },
  json: { kind: "bool", help: "print one JSON object {tokens, text, stats} (PTP: {outputs, stats}) instead of the text" },
});

export const generateUsage = `usage: ptp generate --model PATH [--tokenizer FILE] [options]

Continue a prompt with a model (llama2.c or Hugging Face), sampling each
token as Pick(u, P) from explicit auxiliary variables u. stdout: the prompt
and its continuation, as llama2.c's run prints them; stderr: tokens/s.

With --student (a PTP adapter), a --decoder other than ar, or --prompts,
the prompts are decoded with Parallel Token Prediction, then again
autoregressively in the same run: stderr gets model calls, accepted tokens
per step, tokens/s, the speedup over AR and whether the outputs equal AR's.
With --draft (a standalone PTP draft model, see 'ptp random-draft') the
verify decoder takes its drafts from that model instead of a student; its
calls count in the model calls.

${describeFlags(generateFlags)}`;

export async function generateCommand(argv: readonly string[], io: Io): Promise<number> {
  const f = parseFlags(argv, generateFlags);
  const stepsGiven = givenFlags(argv, generateFlags).has("steps");
  try {
    return await generate(f, io, stepsGiven);
  } catch (e) {
    throw namingModel(e, f.model);
  }
}

async function generate(f: GenerateFlags, io: Io, stepsGiven: boolean): Promise<number> {
  if (f.seed !== undefined && f["aux-file"] !== undefined) throw new UsageError("give either --seed or --aux-file, not both");
  if (f.weights !== "f32" && f.backend !== "wasm") throw new UsageError(`--weights ${f.weights} needs the wasm backend`);
  checkThreadsBackend(f);
  const draftClassifier = f["draft-classifier"];
  if (draftClassifier !== undefined) {
    if (draftClassifier !== "f32" && f.backend !== "wasm") throw new UsageError(`--draft-classifier ${draftClassifier} needs the wasm backend`);
    if (f.student === undefined && f.draft === undefined) throw new UsageError("--draft-classifier applies to a draft-head student (--student) or a draft model (--draft)");
  }
  temperatureFlag(f.temperature);
  if (f["top-p"] < 0 || f["top-p"] > 1) throw new UsageError(`--top-p must be in [0, 1], got ${f["top-p"]}`);

  // xorshift's state must be non-zero (seed 0 would give u = 0 forever) and fit 64 bits (each prompt's seed + i: checked again once the prompts are read).
  if (f.seed !== undefined) seedFlag(f.seed);

  // PTP options, all checked before any file is read.
  if (f.prompts !== undefined && f.prompt !== undefined) throw new UsageError("give either --prompt or --prompts, not both");
  if (f.prompts !== undefined && f["aux-file"] !== undefined) throw new UsageError("--prompts takes its u's from --seed (prompt i: seed + i), not from --aux-file");
  const decoder: DecoderName = f.decoder ?? defaultDecoder(f.student !== undefined ? "student" : f.draft !== undefined ? "draft" : undefined);
  if (f.draft !== undefined) {
    if (f.student !== undefined) throw new UsageError("give either --student or --draft, not both (a draft model replaces the student)");
    if (!decoderGoesWith("draft", decoder)) throw new UsageError(`--draft works with --decoder ${defaultDecoder("draft")} only (decoder is ${decoder})`);
  }
  if (decoder !== "ar" && f.student === undefined && f.draft === undefined) throw new UsageError(`--decoder ${decoder} needs a student adapter (--student FILE)`);
  // A student's default decoder depends on the student (a draft head's is verify): those flags wait for its file.
  if (f.decoder !== undefined || f.student === undefined) checkDecoderFlags(f, decoder);
  else if (f.drafts !== undefined) throw new UsageError("--drafts applies to --decoder multi-draft only (decoder is single-call, or verify for a draft-head student)");
  if (f["runner-ups"] !== undefined && f.draft !== undefined) throw new UsageError("--runner-ups applies to a student's drafts, not to --draft");
  const stop = f["draft-stop"];
  if (stop !== undefined) {
    draftStopFlag(stop);
    if (f.student === undefined || (f.decoder !== undefined && f.decoder !== "verify")) throw new UsageError("--draft-stop applies to --decoder verify with a draft-head student");
  }
  const scale = f["draft-temperature-scale"];
  if (scale !== undefined && !(scale > 0 && scale <= 1)) throw new UsageError(`--draft-temperature-scale must be in (0, 1], got ${scale}`);

  // Ctrl-C (SIGTERM) stops the decode between model calls: the text printed so far ends its line, a note says so, exit 130 (143).
  const interruption = new Interruption();
  interruption.onSecondSignal = (s) => io.stderr(`\nptp generate: second ${s}; exiting at once\n`);
  try {
    if (decoder !== "ar" || f.student !== undefined || f.draft !== undefined || f.prompts !== undefined) return await generatePtp(f, decoder, io, stepsGiven, interruption);
    return await generateAr(f, io, stepsGiven, interruption);
  } finally {
    interruption.dispose();
  }
}

/** Plain autoregressive decoding of one prompt, its text streamed token by token. */
async function generateAr(f: GenerateFlags, io: Io, stepsGiven: boolean, interruption: Interruption): Promise<number> {
  const tokenizerPath = requireTokenizer(f);
  // The header now, the weights straight into the backend's buffers once it exists (loadModel).
  const config = readModelConfig(f.model);
  const tokenizer = loadTokenizer(tokenizerPath, config.vocabSize);
  const sampling = { temperature: f.temperature, topK: f["top-k"], topP: f["top-p"] };

  let aux: AuxSource | undefined;
  if (needsU(sampling)) {
    if (f["aux-file"] !== undefined) aux = readAuxFile(f["aux-file"]);
    else {
      const seed = f.seed !== undefined ? seedFlag(f.seed) : BigInt(Date.now());
      if (f.seed === undefined) io.stderr(`seed: ${seed}\n`);
      aux = new XorShiftAux(seed);
    }
  }

  const runSteps = runPositions(io, f.steps, config.seqLen, stepsGiven);
  const prompt = tokenizer.encode(f.prompt ?? "", true, false);
  // A cache of --steps rows after the prompt's prefill block: refused up front (exit 2) where it would not fit.
  refuseBeyondMemory(`${quotePath(f.model)} at --steps ${runSteps}`, inferenceMemory(config, runSteps, prompt.length), f.backend, "--steps", f.model);
  const backend = await createBackend(f.backend, { threads: f.threads, weights: f.weights });
  const model = loadModelOn(backend, f.model);
  warnFullPrompts(io, [prompt], runSteps, f.steps);
  const bytes: Uint8Array[] = [];
  // A greedy warm-up (a prefill and one 1-row call; no u's consumed) before the
  // clock starts, so that tokens/s does not count weight packing and JIT tiers.
  decodeAR(model, prompt, { steps: Math.min(prompt.length + 1, config.seqLen), sampling: { temperature: 0 }, stopAtBos: false });
  const workersBefore = threadInfo(backend).workerChunks;
  let streamed = false;
  let run: Interruptible<DecodeResult, number>;
  try {
    // A signal during the loading (synchronous) is seen here; one during the decode, between its model calls.
    const early = await signalSoFar(interruption);
    if (early !== undefined) return interrupted(io, "generate", early, "0 tokens");
    const steps = decodeARSteps(model, prompt, {
      steps: f.steps,
      sampling,
      aux,
      stopAtBos: !f["no-stop"],
      onToken: (prev, token) => {
        const piece = tokenizer.decodePiece(prev, token);
        // --json's text keeps every byte; the stream prints what the tokenizer prints (llama2.c's safe_printf for tokenizer.bin).
        if (f.json) bytes.push(piece);
        else if (printsPiece(tokenizer, piece)) {
          io.stdout(piece);
          streamed = true;
        }
      },
    });
    run = await runInterruptibly(steps, interruption);
  } catch (err) {
    // The text so far stays, on a line of its own, so the error (a --aux-file that runs out) starts its own line.
    if (streamed) io.stdout("\n");
    throw err;
  } finally {
    model.dispose();
  }
  if (!run.done) {
    // What was printed is the start of the uninterrupted run's text; its line is ended.
    if (streamed) io.stdout("\n");
    return interrupted(io, "generate", run.signal, plural(run.last ?? 0, "token"));
  }
  const result = run.value;
  if (aux instanceof ArrayAux && aux.remaining > 0) io.stderr(`note: --aux-file ${quotePath(String(f["aux-file"]))} held ${aux.length} u's; the run used ${aux.position} (one per sampled token), the rest were not read\n`);

  const threads = threadInfo(backend);
  const workerChunks = threads.workerChunks - workersBefore;
  if (f.json) {
    const text = new TextDecoder().decode(Buffer.concat(bytes));
    const stats = { ...result.stats, backend: backend.description, threads: threads.threads, workerChunks, warmUp: true };
    io.stdout(JSON.stringify({ tokens: result.tokens, text, stats }) + "\n");
  } else {
    io.stdout("\n");
  }
  const threadNote = threads.threads > 1 ? `, ${threads.threads} threads (${workerChunks} chunks on workers)` : "";
  io.stderr(`achieved tok/s: ${result.stats.generatedTokens > 0 ? result.stats.tokensPerSecond.toFixed(2) : "n/a"} (${result.stats.generatedTokens} tokens, ${result.stats.modelCalls} model calls, ` + `${backend.description}${threadNote}; clock started after a warm-up call)\n`);
  return 0;
}

type GenerateFlags = Parsed<typeof generateFlags>;

/** The flags that apply to some decoders only, against the decoder that will run. */
function checkDecoderFlags(f: GenerateFlags, decoder: DecoderName): void {
  if (f.window !== undefined && decoder === "ar") throw new UsageError("--window applies to the PTP decoders, not to --decoder ar");
  if (decoder !== "single-call") {
    if (f.budget !== undefined) throw new UsageError(`--budget applies to --decoder single-call only (decoder is ${decoder})`);
    if (f["budget-mode"] !== undefined) throw new UsageError(`--budget-mode applies to --decoder single-call only (decoder is ${decoder})`);
  }
  if (f.drafts !== undefined && decoder !== "multi-draft") throw new UsageError(`--drafts applies to --decoder multi-draft only (decoder is ${decoder})`);
  if (f["runner-ups"] !== undefined && decoder !== "single-call" && decoder !== "verify") throw new UsageError(`--runner-ups applies to --decoder single-call and verify only (decoder is ${decoder})`);
  if (f["draft-temperature-scale"] !== undefined && decoder === "ar") throw new UsageError("--draft-temperature-scale applies to the PTP decoders, not to --decoder ar");
}

/** The stats of a PTP run as the JSON reports them. */
export interface GenerateStats extends PtpStats {
  decoder: DecoderName;
  arModelCalls: number;
  arTokensPerSecond: number;
  speedup: number;
  /** Every output equals the teacher's AR output; null for "self", whose outputs follow the student's own AR path. */
  equalsAR: boolean | null;
  note?: string;
  backend: string;
}

/** --tokenizer, or the model folder's tokenizer.json. */
function requireTokenizer(f: GenerateFlags): string {
  const path = tokenizerPathFor(f.model, f.tokenizer);
  if (path === undefined) throw new UsageError("--tokenizer is required (unless --model is a Hugging Face folder with tokenizer.json)");
  return path;
}

/** PTP decoding of one or more prompts, then AR decoding of the same prompts for the comparison. */
async function generatePtp(f: GenerateFlags, decoder: DecoderName, io: Io, stepsGiven: boolean, interruption: Interruption): Promise<number> {
  const tokenizerPath = requireTokenizer(f);
  const config = readModelConfig(f.model);
  const tokenizer = loadTokenizer(tokenizerPath, config.vocabSize);
  const texts = f.prompts !== undefined ? readPrompts(f.prompts) : [f.prompt ?? ""];
  const runSteps = runPositions(io, f.steps, config.seqLen, stepsGiven);
  const prompts = texts.map((t) => tokenizer.encode(t, true, false));
  const batch = Math.min(texts.length, PROMPT_BATCH);
  // The batch's prefill block (at most `batch` of the longest prompt).
  const prefill = batch * prompts.reduce((n, p) => Math.max(n, p.length), 1);
  // Refused (exit 2) where the cache would not fit, naming the flags that size it.
  const refuse = (rows: number): void => refuseBeyondMemory(`${quotePath(f.model)} at --steps ${runSteps}`, inferenceMemory(config, rows, prefill), f.backend, "--steps (or --window, --budget, --drafts)", f.model);
  // The AR comparison's cache is a floor on the run's: refused up front where even it would not fit, before the weights are read.
  refuse(batch * (runSteps + 1));
  // The weights go straight into the backend's buffers (loadModel); the student's and draft's teacher checksum is read from them.
  const backend = await createBackend(f.backend, { threads: f.threads, weights: f.weights });
  const teacher = loadModelOn(backend, f.model);
  try {
    return await decodePtp(f, decoder, io, interruption, { tokenizer, texts, prompts, runSteps, batch, refuse, backend, teacher });
  } finally {
    teacher.dispose();
  }
}

/** What generatePtp has read and loaded before the student: the prompts, their run length and batch, and the teacher on its backend. */
interface PtpInputs {
  tokenizer: TextTokenizer;
  texts: string[];
  prompts: number[][];
  runSteps: number;
  batch: number;
  /** refuseBeyondMemory for a decode cache of `rows` rows. */
  refuse: (rows: number) => void;
  backend: Backend;
  teacher: Transformer;
}

/** generatePtp once the teacher is loaded: the student or draft (checked against the teacher's checksum), the decode, its check against AR and the report. */
async function decodePtp(f: GenerateFlags, decoder: DecoderName, io: Io, interruption: Interruption, { tokenizer, texts, prompts, runSteps, batch, refuse, backend, teacher }: PtpInputs): Promise<number> {
  const config = teacher.config;
  const checksum = f.student !== undefined || f.draft !== undefined ? teacherChecksum(teacher) : "";
  let student: Student | undefined;
  if (f.student !== undefined) {
    student = loadStudent(f.student, { config, checksum });
    warnNonFinite(io, "student", f.student, student.weights);
    // A draft head drafts beside the teacher: its decoders and its default are the library's (proposerDecoders, defaultDecoder).
    const kind = studentKind(student);
    if (f.decoder === undefined) decoder = defaultDecoder(kind);
    else if (!decoderGoesWith(kind, decoder)) throw new UsageError(`--decoder ${decoder} does not go with ${quotePath(f.student)}, a draft-head student, which drafts beside the teacher (--decoder ${defaultDecoder(kind)})`);
    // The student's own default decoder is known now (see generate).
    if (f.decoder === undefined) checkDecoderFlags(f, decoder);
    if (f["draft-stop"] !== undefined && !student.config.draftHead) throw new UsageError(`--draft-stop applies to a draft-head student; ${quotePath(f.student)} is a student whose slots run in the teacher's call`);
    if (f["draft-classifier"] !== undefined && !student.config.draftHead) throw new UsageError(`--draft-classifier applies to a draft-head student or a draft model; ${quotePath(f.student)} is a student whose slots run in the teacher's call`);
    if (decoder === "self" && student.config.variant !== "C") {
      // A bad combination of arguments, as a draft-head student with another decoder (above): a usage error.
      throw new UsageError(`--decoder self needs a C-PTP student (its own u withheld); ${quotePath(f.student)} is an ${student.config.variant}-PTP student, which decodes with --decoder verify, single-call or multi-draft (or ar)`);
    }
  }
  let draft: Draft | undefined;
  if (f.draft !== undefined) {
    draft = readDraft(f.draft);
    checkDraftMatchesTeacher(draft, teacher, checksum, f.draft);
    warnNonFinite(io, "draft model", f.draft, draft.weights);
  }
  const sampling = { temperature: f.temperature, topK: f["top-k"], topP: f["top-p"] };

  // The student's inputs need u's even at temperature 0, so a source is always built. Prompt i: seed + i.
  let auxFor: (i: number) => AuxSource;
  if (f["aux-file"] !== undefined) {
    const file = f["aux-file"];
    readAuxFile(file); // fail early on a bad file
    auxFor = () => readAuxFile(file);
  } else {
    const seed = f.seed !== undefined ? seedFlag(f.seed, texts.length) : BigInt(Date.now());
    if (f.seed === undefined) io.stderr(`seed: ${seed}${texts.length > 1 ? ` (prompt i uses seed + i)` : ""}\n`);
    auxFor = (i) => new XorShiftAux(seed + BigInt(i));
  }

  const r = f["runner-ups"];
  const runnerUps = r === undefined ? undefined : r === "on" || (r !== "off" && Number(r));
  // The decoder flags, as DecodeOptions names them (the settings below and the decode both read them).
  const decoding = { window: f.window, budget: f.budget, budgetMode: f["budget-mode"], drafts: f.drafts, draftTemperatureScale: f["draft-temperature-scale"], runnerUps, draftStop: f["draft-stop"] === undefined ? undefined : draftStopFlag(f["draft-stop"]) };
  const settings = decoderSettings({
    ...decoding,
    decoder,
    proposerVariant: (draft ?? student)?.config.variant,
    proposerFeedback: draft ? undefined : student?.config.pickFeedback,
    draftWindow: draft?.config.window,
    studentWindow: student?.config.window,
    studentDraftHead: student?.config.draftHead === true,
  });
  // The decoder's cache after a batch's prefill block: refused (exit 2) where it would not fit.
  refuse(decodeCacheRows(batch, runSteps, settings.window, decoding, config.vocabSize));
  let model: PtpModel | undefined;
  let draftModel: DraftModel | undefined;
  try {
    const drafts = { classifierWeights: f["draft-classifier"] };
    model = new PtpModel(teacher, student, undefined, drafts);
    if (draft) draftModel = new DraftModel(teacher, draft, drafts);
    // --draft-stop auto times the teacher's calls once (kept with it): here, before any decode's clock starts.
    if (decoding.draftStop === "auto" && model.head && decoder === "verify") callCost(teacher, settings.window);
    const common = { steps: f.steps, sampling, stopAtBos: !f["no-stop"] };
    const options: Omit<DecodeOptions, "aux"> = { ...common, ...decoding, decoder, draft: draftModel };
    // Bounded batches (memory and time linear in the number of prompts), each
    // written out as soon as it is decoded and checked against AR; an AR
    // warm-up on the first prompt first (JIT tiers, allocations).
    const self = decoder === "self";
    const jsonOutputs: { tokens: number[]; text: string }[] = [];
    const many = texts.length > 1;
    warnFullPrompts(io, prompts, runSteps, f.steps);
    let printed = 0;
    const early = await signalSoFar(interruption);
    if (early !== undefined) return interrupted(io, "generate", early, `0 of ${plural(texts.length, "prompt")}`);
    const steps = comparePtpArSteps(model, prompts, {
      decode: options,
      aux: auxFor,
      batch: PROMPT_BATCH,
      warmUp: "ar",
      onBatch: ({ from, ptp, mismatch }) => {
        if (!self && mismatch !== undefined) {
          throw new Error(`the ${decoder} outputs differ from AR's (prompt ${from + mismatch.prompt}, position ${mismatch.position}: ` + `${mismatch.ptp ?? "end"} vs AR ${mismatch.ar ?? "end"}); every PTP decoder must reproduce AR exactly, so this is a library bug`);
        }
        for (const tokens of ptp.outputs) {
          if (f.json) jsonOutputs.push({ tokens, text: new TextDecoder().decode(textOf(tokenizer, tokens, true)) });
          else if (many) io.stdout(escapeLine(textOf(tokenizer, tokens)) + "\n");
          else io.stdout(Buffer.concat([textOf(tokenizer, tokens), Buffer.from("\n")]));
        }
        printed += ptp.outputs.length;
        const to = Math.min(texts.length, from + PROMPT_BATCH);
        if (texts.length > PROMPT_BATCH) io.stderr(`generate: ${to}/${texts.length} prompts decoded\n`);
      },
    });
    const stopped = await runInterruptibly(steps, interruption);
    // A batch is printed once decoded and checked against AR: the prompts printed are the uninterrupted run's first ones.
    if (!stopped.done) return interrupted(io, "generate", stopped.signal, `${printed} of ${plural(texts.length, "prompt")}${f.json ? " (--json prints nothing until the end)" : ""}`);
    const run = stopped.value;

    const ptpStats = run.stats,
      arStats = run.ar;
    const stats: GenerateStats = {
      ...ptpStats,
      decoder,
      arModelCalls: arStats.modelCalls,
      arTokensPerSecond: arStats.tokensPerSecond,
      speedup: run.speedup,
      equalsAR: self ? null : true,
      ...(self ? { note: "self decoding follows the student's own AR path" } : {}),
      backend: backend.description,
    };
    const head = student?.config.draftHead && decoder === "verify" ? { stop: settings.draftStop, classifier: f["draft-classifier"] } : undefined;
    io.stderr(statsBlock(stats, describeDecoder(decoder, settings, (draft ?? student)?.config.variant === "C" && sampling.temperature > 0, draft, head), texts.length));
    if (f.json) {
      const single = jsonOutputs.length === 1 ? { tokens: jsonOutputs[0].tokens, text: jsonOutputs[0].text } : {};
      io.stdout(JSON.stringify({ ...single, outputs: jsonOutputs, stats }) + "\n");
    }
    return 0;
  } finally {
    draftModel?.dispose();
    model?.dispose();
  }
}

/** The decoder and its settings, as the stats block names them; `sharpened`: C-PTP drafts picked at a fraction of T > 0; `head`: a draft head's stop rule and classifier type. */
function describeDecoder(decoder: DecoderName, { window, budget, budgetMode, drafts, draftTemperatureScale, runnerUps }: DecoderSettings, sharpened: boolean, draft?: Draft, head?: { stop: number | "auto"; classifier?: string }): string {
  const stop = head?.stop === "auto" ? ", drafts by measured call cost" : head && head.stop > 0 ? `, drafts stop below chance ${head.stop}` : "";
  const at = (sharpened && draftTemperatureScale !== 1 ? `, drafts at ${draftTemperatureScale} T` : "") + (head ? `${stop}${head.classifier ? `, ${head.classifier} head classifier` : ""}` : "");
  if (draft) {
    const m = draft.config.model;
    return `${decoder} (window ${window}, ${draft.config.variant}-PTP draft model: dim ${m.dim}, ${m.nLayers} layer${m.nLayers === 1 ? "" : "s"}${at})`;
  }
  const ups = runnerUps === 0 ? "" : runnerUps === 1 ? ", runner-ups" : `, ${runnerUps} runner-ups per draft`;
  switch (decoder) {
    case "ar":
      return "ar";
    case "single-call":
      return `single-call (window ${window}, budget ${budget}, ${budgetMode}${ups}${at})`;
    case "multi-draft":
      return `multi-draft (window ${window}, ${drafts} drafts${at})`;
    default:
      return `${decoder} (window ${window}${ups}${at})`;
  }
}

/** Prompts decoded together in one batch of --prompts: bounded memory (each row attends only to its own sequence, so the cost per token does not grow with the batch); batches are invariant, so outputs are the same. */
const PROMPT_BATCH = 16;

/** One line of stdout per prompt: a backslash and a newline inside a text are escaped (\\ and \\n). */
function escapeLine(text: Uint8Array): Buffer {
  return Buffer.from(Buffer.from(text).toString("latin1").replace(/\\/g, "\\\\").replace(/\n/g, "\\n"), "latin1");
}

/** The stats lines `generate` prints on stderr after a PTP decode, with a "why slower" note when PTP took longer than AR. */
export function statsBlock(s: GenerateStats, decoder: string, prompts: number): string {
  const histogram = s.acceptedHistogram
    .map((n, a) => (n > 0 ? `${a}:${n}` : ""))
    .filter((x) => x !== "")
    .join(" ");
  const equal = s.equalsAR === null ? `n/a (${s.note})` : s.equalsAR ? "yes" : "NO";
  const lines = [
    `decoder:            ${decoder}`,
    `prompts:            ${prompts}`,
    `generated tokens:   ${s.generatedTokens}`,
    `model calls:        ${s.modelCalls} (AR: ${s.arModelCalls})`,
    `accepted per step:  ${s.meanAccepted.toFixed(3)} mean; histogram ${histogram || "(empty)"}`,
    // No token generated (every prompt fills --steps): no ratio to print.
    `tokens/s:           ${s.tokensPerSecond.toFixed(2)} (AR: ${s.arTokensPerSecond.toFixed(2)}; speedup ${Number.isFinite(s.speedup) && s.generatedTokens > 0 ? `${s.speedup.toFixed(2)}x` : "n/a (no tokens generated)"})`,
    `equals AR:          ${equal}`,
    `backend:            ${s.backend}`,
  ];
  // A PTP decode slower than AR is the rule for small models on a CPU: say why, as the demo does.
  const slower = s.decoder !== "ar" && s.generatedTokens > 0 && s.speedup < 1 ? "why slower: " + whySlowerLines("`ptp demo --scale` and bench/ptp-speedup.ts measure PTP at the compute of larger models.") : "";
  return lines.join("\n") + "\n" + slower;
}

/** Threads a backend splits work over and the chunks its workers ran (1 and 0 where it has no threads). */
function threadInfo(backend: object): { threads: number; workerChunks: number } {
  const b = backend as { threads?: unknown; workerChunks?: unknown };
  return {
    threads: typeof b.threads === "number" ? b.threads : 1,
    workerChunks: typeof b.workerChunks === "number" ? b.workerChunks : 0,
  };
}
