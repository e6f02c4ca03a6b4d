import { slotInputFromFlags } from "./aux-flags.js";
import { createBackend } from "../backends/registry.js";
import { readModel } from "../io/model-file.js";
import type { Tokenizer } from "../io/tokenizer.js";
import { Transformer } from "../model/transformer.js";
import { randomStudent } from "../ptp/adapter-file.js";
import type { AuxKind } from "../ptp/student-weights.js";
import { teacherChecksum } from "../ptp/teacher-checksum.js";
import { inverseArTrain } from "../train/inverse-ar.js";
import { tokenStream } from "../train/pretrain.js";
import { loopExitCode, type LoopOptions, type RunFiles } from "../train/loop.js";
import { UsageError, type FlagSpecs } from "./args.js";
import { studentFlags } from "./training-flags.js";
import { processIo, type Io } from "./io.js";
import { refuseBeyondMemory } from "./memory.js";
import { floatsIn, inverseArMemory } from "../train/memory.js";

/** The flags only --objective inverse-ar reads (ptp train shows them with its own). */
export const inverseArFlags = {
  ...studentFlags({ aux: "digits", digits: 20, window: 8, beta: 1, helpPrefix: "inverse-ar: " }),
  model: { kind: "string", value: "FILE", help: "inverse-ar: the base model (llama2.c .bin or Hugging Face folder) the C-PTP student adapts" },
  temperature: { kind: "number", value: "T", help: "inverse-ar: temperature of the student's own bins (and of decoding)", default: 1 },
  "eval-prompts": { kind: "string", value: "FILE", help: "inverse-ar: held-out prompts for accepted tokens per call (self decoder)" },
  "eval-count": { kind: "int", value: "N", help: "inverse-ar: prompts per evaluation", default: 16 },
  "eval-steps": { kind: "int", value: "N", help: "inverse-ar: positions per evaluation prompt", default: 96 },
} satisfies FlagSpecs;

type Flags = Record<string, string | number | boolean | undefined>;

export async function inverseArCommand(f: Flags, loop: LoopOptions, lines: string[], tokenizer: Tokenizer, files: { out: string } & RunFiles, io: Io): Promise<number> {
  if (f.model === undefined) throw new UsageError("--objective inverse-ar needs --model (the base model the C-PTP student adapts)");
  const num = (k: string) => f[k] as number;
  if (!(num("temperature") > 0)) throw new UsageError(`--temperature must be > 0 for inverse-ar (u's live in sampling bins), got ${f.temperature}`);
  const ckpt = readModel(f.model as string);
  if (ckpt.config.vocabSize !== tokenizer.vocabSize) throw new Error(`${f.model} has a vocabulary of ${ckpt.config.vocabSize} tokens but the tokenizer has ${tokenizer.vocabSize}`);
  const checksum = teacherChecksum(ckpt);
  const aux = f.aux === "digits" ? { kind: "digits" as const, digits: num("digits") } : { kind: f.aux as AuxKind };
  const student = randomStudent(ckpt, checksum, { variant: "C", rank: num("rank"), alpha: num("alpha"), aux, window: num("window"), ...slotInputFromFlags(f["slot-input"] as string | undefined, "C", num("window")), seed: num("seed"), zeroB: true });
  const context = Math.min((f.context as number | undefined) ?? ckpt.config.seqLen, ckpt.config.seqLen);
  const memory = inverseArMemory(ckpt.config, { proposerParams: floatsIn(student.weights), rank: num("rank"), context, window: num("window") });
  refuseBeyondMemory(`train --objective inverse-ar: ${f.model}`, memory, "wasm", "--context, --window or --rank");
  const backend = await createBackend("wasm");
  const base = new Transformer(backend, ckpt);
  const sampling = { temperature: num("temperature"), topK: 0, topP: 1 };
  const stream = tokenStream(lines.map((l) => tokenizer.encode(l, true, false)));
  let evalSettings;
  if (f["eval-prompts"] !== undefined) {
    const { readPrompts } = await import("./ptp-common.js");
    const prompts = readPrompts(f["eval-prompts"] as string).slice(0, num("eval-count")).map((t) => tokenizer.encode(t, true, false));
    evalSettings = { prompts, steps: num("eval-steps"), sampling, decoder: "self" as const, seed: 1000 };
  }
  try {
    const r = await inverseArTrain(
      ckpt,
      base,
      student,
      stream,
      {
        sequences: num("batch"),
        context,
        window: num("window"),
        sampling,
        betaB: num("beta"),
        ...loop,
        eval: evalSettings,
      },
      files,
      { write: (text: string) => io.stderr(text), isTTY: io === processIo && process.stderr.isTTY },
    );
    io.stderr(`inverse-ar: ${r.interrupted ? "stopped" : "done"} after ${r.steps} steps, ${(r.seconds / 60).toFixed(1)} min; student: ${files.out}\n`);
    return loopExitCode(r);
  } finally {
    base.dispose();
  }
}
