import { readModel } from "../io/model-file.js";
import { writeStudent } from "../ptp/files/adapter-file.js";
import { randomStudent } from "../ptp/init.js";
import { teacherChecksum } from "../ptp/files/teacher-checksum.js";
import { describeFlags, parseFlags, defineFlags } from "./args.js";
import { DEFAULT_ALPHA, weightCounts } from "../ptp/student-weights.js";
import { alphaFlag, auxFlags, auxFromFlags, checkAgainstTeacher, checkRank, extraBlocksFlag, pickFeedbackFromFlags, rankFlag, slotInputFromFlags } from "./flag-groups.js";
import type { Io } from "./io.js";
import { checkOutputs, forceFlag, withSignalsCaught, writeOutputs } from "./output-files.js";

export const randomStudentFlags = defineFlags({
  model: { kind: "string", value: "FILE", help: "the teacher: a llama2.c checkpoint or Hugging Face folder", required: true },
  rank: rankFlag("LoRA rank", { required: true }),
  variant: { kind: "string", value: "O|C", help: "O-PTP (own u seen) or C-PTP (own u withheld)", required: true, choices: ["O", "C"] },
  out: { kind: "string", value: "FILE", help: "where to write the adapter (safetensors)", required: true },
  alpha: alphaFlag("LoRA alpha", DEFAULT_ALPHA),
  ...auxFlags,
  ...extraBlocksFlag,
  "zero-b": { kind: "bool", help: "B = 0 exactly (the student starts as the teacher)" },
  ...forceFlag,
});

export const randomStudentUsage = `usage: ptp random-student --model FILE --rank R --variant O|C --out FILE [options]

Write an untrained PTP student adapter (gated LoRA + auxiliary embedding,
random weights) for a teacher checkpoint, for tests and benchmarks.

${describeFlags(randomStudentFlags)}`;

export async function randomStudentCommand(argv: readonly string[], io: Io): Promise<number> {
  const f = parseFlags(argv, randomStudentFlags);
  checkRank(f.rank);
  const aux = auxFromFlags(f);
  checkOutputs([{ flag: "--out", path: f.out }], { inputs: [{ flag: "--model", path: f.model }], force: f.force });

  // Ctrl-C while the teacher is read and the weights are made stops the command (checked between those parts) with nothing written.
  return withSignalsCaught(io, "ptp random-student", async ({ stopped }) => {
    const checkpoint = readModel(f.model);
    const read = await stopped();
    if (read !== undefined) return read;
    checkAgainstTeacher(f, checkpoint.config);
    const checksum = teacherChecksum(checkpoint);
    const slotInput = slotInputFromFlags(f["slot-input"], f.variant, f.window);
    const student = randomStudent(checkpoint, checksum, {
      variant: f.variant,
      rank: f.rank,
      alpha: f.alpha,
      aux,
      window: f.window,
      ...slotInput,
      seed: f.seed,
      zeroB: f["zero-b"] ?? false,
      extraBlocks: f["extra-blocks"],
      ...pickFeedbackFromFlags(f, slotInput.query),
    });
    const made = await stopped();
    if (made !== undefined) return made;
    return await writeOutputs(
      io,
      "ptp random-student",
      f.out,
      () => writeStudent(f.out, student),
      () => {
        const { tensors, parameters } = weightCounts(student.weights);
        const c = student.config;
        io.stderr(
          `wrote ${f.out}: ${c.variant}-PTP student, rank ${c.rank}, alpha ${c.alpha}, aux ${c.aux.kind}` +
            `${c.aux.kind === "digits" ? ` (${c.aux.digits} digits)` : ""}, window ${c.window}${c.extraBlocks ? `, ${c.extraBlocks} extra blocks` : ""}${c.pickFeedback ? `, pick feedback ${c.pickFeedback}` : ""}${c.draftHead ? ", a draft head" : ""}, seed ${f.seed}${f["zero-b"] ? ", B = 0" : ""}; ` +
            `${tensors} tensors, ${parameters} parameters; teacher ${f.model} (checksum ${checksum.slice(0, 12)})\n`,
        );
      },
    );
  });
}
