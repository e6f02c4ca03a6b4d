import { writeCheckpoint } from "../io/checkpoint.js";
import { randomCheckpoint } from "../model/init.js";
import { parameterCount, SHAPES, shapeConfig } from "../model/config.js";
import { describeFlags, parseFlags, defineFlags } from "./args.js";
import { auxFlags } from "./flag-groups.js";
import type { Io } from "./io.js";
import { checkOutputs, forceFlag, withSignalsCaught, writeOutputs } from "./output-files.js";

export const randomModelFlags = defineFlags({
  shape: { kind: "string", value: "NAME", help: "TinyStories shape", required: true, choices: Object.keys(SHAPES) },
  seed: auxFlags.seed,
  out: { kind: "string", value: "FILE", help: "where to write the llama2.c (v0) checkpoint", required: true },
  ...forceFlag,
});

export const randomModelUsage = `usage: ptp random-model --shape ${Object.keys(SHAPES).join("|")} --out FILE [--seed S] [--force]

Write a llama2.c checkpoint of a published TinyStories shape with random
weights (speed depends only on the shape), for benchmarks.

${describeFlags(randomModelFlags)}`;

export async function randomModelCommand(argv: readonly string[], io: Io): Promise<number> {
  const f = parseFlags(argv, randomModelFlags);
  checkOutputs([{ flag: "--out", path: f.out }], { force: f.force });
  const config = shapeConfig(f.shape);
  // Ctrl-C while the weights are made stops the command (checked once they are) with nothing written.
  return withSignalsCaught(io, "ptp random-model", async ({ stopped }) => {
    const checkpoint = randomCheckpoint(config, f.seed);
    const made = await stopped();
    if (made !== undefined) return made;
    return await writeOutputs(
      io,
      "ptp random-model",
      f.out,
      () => writeCheckpoint(f.out, checkpoint),
      () => {
        io.stderr(`wrote ${f.out}: shape ${f.shape}, ${(parameterCount(config) / 1e6).toFixed(1)}M parameters\n`);
      },
    );
  });
}
