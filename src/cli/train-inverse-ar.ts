import type { EvalSettings } from "../train/evaluate.js";
import { createBackend } from "../backends/registry.js";
import { readModel } from "../io/model-file.js";
import { quotePath } from "../io/errors.js";
import type { Tokenizer } from "../io/tokenizer.js";
import { Transformer } from "../model/transformer.js";
import { randomStudent } from "../ptp/init.js";
import { teacherChecksum } from "../ptp/files/teacher-checksum.js";
import { inverseArTrain } from "../train/inverse-ar.js";
import type { LoopOptions, RunFiles } from "../train/loop.js";
import { MIN_TEMPERATURE } from "../sampling/processors.js";
import { UsageError, defineFlags, type Parsed } from "./args.js";
import { checkAgainstTeacher, checkRank, slotInputFromFlags, studentAux, studentFlags } from "./flag-groups.js";
import type { Io } from "./io.js";
import { refuseBeyondMemory } from "./memory.js";
import { encodeDocuments, EVAL_SEED, evalPromptTokens, finishRun, progressSink, trainThreads } from "./training-flags.js";
import { inverseArMemory } from "../train/memory.js";
import { weightCounts } from "../ptp/student-weights.js";

/** The flags only --objective inverse-ar reads (ptp train shows them with its own). */
export const inverseArFlags = defineFlags({
  ...studentFlags({ aux: "digits", digits: 20, window: 8, beta: 1, helpPrefix: "inverse-ar: " }),
  model: { kind: "string", value: "FILE", help: "inverse-ar: the base model (llama2.c .bin or Hugging Face folder) the C-PTP student adapts" },
  temperature: { kind: "number", value: "T", help: "inverse-ar: temperature of the student's own bins (and of decoding)", default: 1 },
  "eval-prompts": { kind: "string", value: "FILE", help: "inverse-ar: held-out prompts for accepted tokens per call (self decoder)" },
  "eval-count": { kind: "int", value: "N", help: "inverse-ar: prompts per evaluation", default: 16, positive: true },
  "eval-steps": { kind: "int", value: "N", help: "inverse-ar: positions per evaluation prompt", default: 96, positive: true },
});

/** What inverse-ar reads of ptp train's parsed flags. */
type Flags = Parsed<typeof inverseArFlags> & { seed: number; context: number | undefined; batch: number; threads: number | undefined; corpus: string };

/** The usage errors of inverse-ar's flags, found before ptp train reads or writes anything. */
export function checkInverseArFlags(f: Pick<Flags, "model" | "temperature" | "rank">): asserts f is typeof f & { model: string } {
  if (f.model === undefined) throw new UsageError("--objective inverse-ar needs --model (the base model the C-PTP student adapts)");
  if (!(f.temperature >= MIN_TEMPERATURE)) throw new UsageError(`--temperature must be at least ${MIN_TEMPERATURE} for inverse-ar (u's live in sampling bins; below it logits / T overflow), got ${f.temperature}`);
  checkRank(f.rank);
}

export async function inverseArCommand(f: Flags, loop: LoopOptions, lines: string[], tokenizer: Tokenizer, files: { out: string } & RunFiles, io: Io): Promise<number> {
  checkInverseArFlags(f);
  const ckpt = readModel(f.model);
  if (ckpt.config.vocabSize !== tokenizer.vocabSize) throw new Error(`${quotePath(f.model)} has a vocabulary of ${ckpt.config.vocabSize} tokens but the tokenizer has ${tokenizer.vocabSize}`);
  checkAgainstTeacher(f, ckpt.config);
  const checksum = teacherChecksum(ckpt);
  const aux = studentAux(f);
  const student = randomStudent(ckpt, checksum, { variant: "C", rank: f.rank, alpha: f.alpha, aux, window: f.window, ...slotInputFromFlags(f["slot-input"], "C", f.window), seed: f.seed, zeroB: true });
  // Inverse-AR recovers every slot's u from the student's own distribution; a query slot 0 is the teacher's own row (no slot to recover).
  if (f["slot-input"] === "query") throw new UsageError("--slot-input query is not supported by --objective inverse-ar (use hybrid or aux; query students are distilled: ptp distill)");
  if (f.context !== undefined && f.context > ckpt.config.seqLen) throw new UsageError(`--context must be <= the teacher's seqLen ${ckpt.config.seqLen}, got ${f.context}`);
  const context = f.context ?? ckpt.config.seqLen;
  // A text window holds the slot window at any of its L offsets (1..L) and then L slots: at least 2L tokens.
  if (context < 2 * f.window) throw new UsageError(`--context (${context}) must be at least twice --window (${f.window}): a text window holds the slots after an offset of up to --window tokens`);
  const threads = trainThreads(f);
  const memory = inverseArMemory(ckpt.config, { proposerParams: weightCounts(student.weights).parameters, rank: f.rank, context, window: f.window, threads });
  refuseBeyondMemory(`--objective inverse-ar on ${quotePath(f.model)}`, memory, "wasm", "--context, --window, --threads or --rank");
  const backend = await createBackend("wasm");
  const base = new Transformer(backend, ckpt);
  const sampling = { temperature: f.temperature, topK: 0, topP: 1 };
  const stream = await encodeDocuments(io, "train", lines, tokenizer);
  // A text window is --context tokens, drawn from a stream that must hold one more.
  if (stream.length < context + 1) throw new Error(`${quotePath(f.corpus)}: the --corpus is too short for --context ${context}${f.context === undefined ? " (default: the model's seqLen)" : ""}: it needs at least ${context + 1} tokens, found ${stream.length}; give a longer corpus or a smaller --context`);
  let evalSettings: EvalSettings | undefined;
  if (f["eval-prompts"] !== undefined) {
    const prompts = evalPromptTokens(f["eval-prompts"], f["eval-count"], tokenizer);
    evalSettings = { prompts, steps: f["eval-steps"], sampling, decoder: "self" as const, seed: EVAL_SEED };
  }
  io.stderr(`inverse-ar: C-PTP student rank ${f.rank} (${f.aux}), window ${f.window}; ${f.batch} text windows of ${context} tokens a step on ${threads} worker thread${threads === 1 ? "" : "s"}\n`);
  try {
    const r = await inverseArTrain(
      ckpt,
      base,
      student,
      stream,
      {
        sequences: f.batch,
        threads,
        context,
        window: f.window,
        sampling,
        betaB: f.beta,
        ...loop,
        eval: evalSettings,
      },
      files,
      progressSink(io),
    );
    return finishRun(io, "inverse-ar", r, `student: ${files.out}`);
  } finally {
    base.dispose();
  }
}
