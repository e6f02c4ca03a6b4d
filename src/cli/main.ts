import { UsageError } from "./args.js";
import { generateCommand, generateUsage } from "./generate.js";
import { processIo, type Io } from "./io.js";
import { inspectCommand, inspectUsage } from "./inspect.js";
import { randomDraftCommand, randomDraftUsage } from "./random-draft.js";
import { randomModelCommand, randomModelUsage } from "./random-model.js";
import { randomStudentCommand, randomStudentUsage } from "./random-student.js";

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
  inspect: { run: inspectCommand, usage: inspectUsage, summary: "tell a checkpoint, a student adapter or a draft model apart and print its config" },
};

export const usage = `usage: ptp <command> [options]

commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(14)} ${c.summary}`)
  .join("\n")}

Run 'ptp <command> --help' for a command's options.`;

/** Runs the CLI; returns the exit code (2 for bad arguments, 1 for failures). */
export async function main(argv: readonly string[], io: Io = processIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    io.stderr(usage + "\n");
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    io.stderr(`ptp: unknown command ${JSON.stringify(name)}\n\n${usage}\n`);
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
      io.stderr(`ptp ${name}: ${e.message}\n\n${command.usage}\n`);
      return 2;
    }
    io.stderr(`ptp ${name}: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}

