import { readModel } from "../io/model-file.js";
import { parameterCount } from "../model/config.js";
import { refuseDraftBeyondLimits } from "./memory.js";
import { writeDraft } from "../ptp/files/draft-file.js";
import { randomDraft } from "../ptp/init.js";
import { teacherChecksum } from "../ptp/files/teacher-checksum.js";
import { describeFlags, parseFlags, defineFlags } from "./args.js";
import { auxFlags, auxFromFlags, checkAgainstTeacher, checkShapeFlags, draftShapeSpecs, slotInputFromFlags } from "./flag-groups.js";
import type { Io } from "./io.js";
import { checkOutputs, forceFlag, withSignalsCaught, writeOutputs } from "./output-files.js";

export const randomDraftFlags = defineFlags({
  model: { kind: "string", value: "FILE", help: "the teacher: a llama2.c checkpoint or Hugging Face folder (its vocabulary and seqLen are used)", required: true },
  variant: { kind: "string", value: "O|C", help: "O-PTP (own u seen) or C-PTP (own u withheld)", required: true, choices: ["O", "C"] },
  out: { kind: "string", value: "FILE", help: "where to write the draft model (safetensors)", required: true },
  ...draftShapeSpecs(),
  ...auxFlags,
  ...forceFlag,
});

export const randomDraftUsage = `usage: ptp random-draft --model FILE --variant O|C --out FILE [options]

Write an untrained standalone PTP draft model (a small transformer of its
own with the teacher's vocabulary, an auxiliary embedding and, for C, a
start vector; random weights) for a teacher checkpoint, for tests and
benchmarks. Use it with 'ptp generate --draft FILE --decoder verify'.

${describeFlags(randomDraftFlags)}`;

export async function randomDraftCommand(argv: readonly string[], io: Io): Promise<number> {
  const f = parseFlags(argv, randomDraftFlags);
  const shape = { dim: f.dim, hiddenDim: f.hidden, nLayers: f.layers, nHeads: f.heads, nKvHeads: f["kv-heads"] };
  // The shape is checked before any file is read (vocab and seqLen come from the teacher).
  checkShapeFlags(shape);
  const aux = auxFromFlags(f);
  checkOutputs([{ flag: "--out", path: f.out }], { inputs: [{ flag: "--model", path: f.model }], force: f.force });

  // Ctrl-C while the teacher is read and the weights are made stops the command (checked between those parts) with nothing written.
  return withSignalsCaught(io, "ptp random-draft", async ({ stopped }) => {
    const checkpoint = readModel(f.model);
    const read = await stopped();
    if (read !== undefined) return read;
    checkAgainstTeacher(f, checkpoint.config);
    // The weights are made once and written once: refuse a shape beyond the machine (or a file) before allocating it.
    refuseDraftBeyondLimits(checkpoint.config, shape);
    const checksum = teacherChecksum(checkpoint);
    const draft = randomDraft(checkpoint, checksum, { config: shape, variant: f.variant, aux, window: f.window, ...slotInputFromFlags(f["slot-input"], f.variant, f.window, true), seed: f.seed });
    const made = await stopped();
    if (made !== undefined) return made;
    return await writeOutputs(
      io,
      "ptp random-draft",
      f.out,
      () => writeDraft(f.out, draft),
      () => {
        const c = draft.config,
          m = c.model;
        const auxParameters = [draft.weights.aux.weight, draft.weights.aux.bias, draft.weights.aux.anchors, draft.weights.start].reduce((n, a) => n + (a?.length ?? 0), 0);
        io.stderr(
          `wrote ${f.out}: ${c.variant}-PTP draft model, dim ${m.dim}, hidden ${m.hiddenDim}, ${m.nLayers} layers, ${m.nHeads} heads, ${m.nKvHeads} kv heads, ` +
            `vocab ${m.vocabSize}, seqLen ${m.seqLen}; aux ${c.aux.kind}${c.aux.kind === "digits" ? ` (${c.aux.digits} digits)` : ""}, window ${c.window}, seed ${f.seed}; ` +
            `${parameterCount(m) + auxParameters} parameters; teacher ${f.model} (checksum ${checksum.slice(0, 12)})\n`,
        );
      },
    );
  });
}
