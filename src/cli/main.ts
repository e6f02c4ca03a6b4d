import { readFileSync } from "node:fs";
import { releaseOutputLocks } from "../io/output-lock.js";
import { closest, UsageError } from "./args.js";
import { convertCommand, convertUsage } from "./convert.js";
import { distillCommand, distillUsage } from "./distill.js";
import { trainCommand, trainUsage } from "./train.js";
import { demoCommand, demoUsage } from "./demo.js";
import { exportPeftCommand, exportPeftUsage } from "./export-peft.js";
import { generateCommand, generateUsage } from "./generate.js";
import { processIo, type Io } from "./io.js";
import { pregenerateCommand, pregenerateUsage } from "./pregenerate.js";
import { inspectCommand, inspectUsage } from "./inspect.js";
import { randomDraftCommand, randomDraftUsage } from "./random-draft.js";
import { randomModelCommand, randomModelUsage } from "./random-model.js";
import { randomStudentCommand, randomStudentUsage } from "./random-student.js";
import { synthCommand, synthUsage } from "./synth.js";

interface Command {
  run(argv: readonly string[], io: Io): Promise<number>;
  usage: string;
  summary: string;
}

const COMMANDS: Record<string, Command> = {
  generate: { run: generateCommand, usage: generateUsage, summary: "continue prompts, sampling from explicit u's (AR or PTP decoding)" },
  "random-model": { run: randomModelCommand, usage: randomModelUsage, summary: "write a random-weight checkpoint of a TinyStories shape" },
  "random-student": { run: randomStudentCommand, usage: randomStudentUsage, summary: "write an untrained PTP student adapter for a checkpoint" },
  "random-draft": { run: randomDraftCommand, usage: randomDraftUsage, summary: "write an untrained standalone PTP draft model for a checkpoint" },
  pregenerate: { run: pregenerateCommand, usage: pregenerateUsage, summary: "sample teacher completions with their u-bins into a distillation dataset" },
  train: { run: trainCommand, usage: trainUsage, summary: "train a small model from scratch (next-token), or a C-PTP student by inverse-AR training" },
  distill: { run: distillCommand, usage: distillUsage, summary: "train a gated-LoRA PTP student on a pregenerated dataset (resumable)" },
  synth: { run: synthCommand, usage: synthUsage, summary: "write the synthetic story corpus, its char tokenizer and held-out prompts" },
  demo: { run: demoCommand, usage: demoUsage, summary: "PTP on the shipped demo models: accepted chunks, speedup over AR, exactness" },
  convert: { run: convertCommand, usage: convertUsage, summary: "convert a model between llama2.c checkpoints and Hugging Face Llama folders" },
  "export-peft": { run: exportPeftCommand, usage: exportPeftUsage, summary: "write a PTP student as a PEFT LoRA folder (adapter_config.json + adapter_model.safetensors)" },
  inspect: { run: inspectCommand, usage: inspectUsage, summary: "tell a model (llama2.c or Hugging Face), a student (adapter file or PEFT folder), a draft model, a dataset, a training checkpoint or a tokenizer.bin apart and print what it holds" },
};

export const usage = `usage: ptp <command> [options]

commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(14)} ${c.summary}`)
  .join("\n")}

Run 'ptp <command> --help' for a command's options.`;

/** The package's version (from its package.json). */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;
}

/** Runs the CLI; returns the exit code (2 for bad arguments, 1 for failures). */
export async function main(argv: readonly string[], io: Io = processIo): Promise<number> {
  const [name, ...rest] = argv;
  const topLevel = name === "--version" || name === "-V" || name === "version" || name === "--help" || name === "-h" || name === "help";
  if (topLevel && rest.length > 0) {
    io.stderr(`ptp: ${name} takes no arguments, got ${JSON.stringify(rest[0])}\n${usage.split("\n")[0]}\nRun 'ptp <command> --help' for a command's options.\n`);
    return 2;
  }
  if (name === "--version" || name === "-V" || name === "version") {
    io.stdout(`ptp-ts ${packageVersion()}\n`);
    return 0;
  }
  // Asked for, the usage is the output (stdout, so `ptp --help | less` shows it); without a command, it is the error.
  if (name === "--help" || name === "-h" || name === "help") {
    io.stdout(usage + "\n");
    return 0;
  }
  if (name === undefined) {
    io.stderr(usage + "\n");
    return 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    const guess = closest(name, Object.keys(COMMANDS));
    io.stderr(`ptp: unknown command ${JSON.stringify(name)}${guess ? ` (did you mean ${guess}?)` : ""}\n${usage.split("\n")[0]}\nRun 'ptp --help' for the list of commands.\n`);
    return 2;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    io.stdout(command.usage + "\n");
    return 0;
  }
  try {
    return await command.run(rest, io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr(`ptp ${name}: ${e.message}\n${command.usage.split("\n")[0]}\nRun 'ptp ${name} --help' for all options.\n`);
      return 2;
    }
    io.stderr(`ptp ${name}: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  } finally {
    // A run's OUT.lock (output-files.ts lockOutput) ends with its command.
    releaseOutputLocks();
  }
}
