import { writeFolderAtomically } from "../io/atomic-write.js";
import { quotePath } from "../io/errors.js";
import { readModel } from "../io/model-file.js";
import type { Checkpoint } from "../model/weights.js";
import { loadStudent } from "../ptp/files/student-file.js";
import { warnNonFinite } from "./ptp-common.js";
import { teacherChecksum } from "../ptp/files/teacher-checksum.js";
import { PEFT_CONFIG, PEFT_WEIGHTS, writePeftStudent } from "../ptp/files/peft.js";
import { describeFlags, parseFlags, splitPositionals, UsageError, defineFlags } from "./args.js";
import type { Io } from "./io.js";
import { checkOutputs, withSignalsCaught, writeOutputs } from "./output-files.js";

export const exportPeftFlags = defineFlags({
  out: { kind: "string", value: "DIR", help: "the PEFT folder to write (adapter_config.json + adapter_model.safetensors)", required: true },
  model: { kind: "string", value: "PATH", help: "the teacher (file or HF folder): needed for a reference-code PEFT folder without PTP settings, and checked against the student" },
  "base-model": { kind: "string", value: "NAME", help: "base_model_name_or_path to record (e.g. the teacher's Hugging Face id or folder)" },
  force: { kind: "bool", help: "overwrite an existing output folder's files" },
});

export const exportPeftUsage = `usage: ptp export-peft STUDENT --out DIR [--model PATH] [--base-model NAME] [--force]

Write a PTP student (an adapter file, or a PEFT folder) as a PEFT LoRA
folder: PEFT's tensor names for LlamaForCausalLM (q/k rows in Hugging
Face's RoPE order), the auxiliary embedding under the reference code's
module names, and the PTP settings under "ptp" in adapter_config.json
(spec/io.md, "PEFT folders").

${describeFlags(exportPeftFlags)}`;

export async function exportPeftCommand(argv: readonly string[], io: Io): Promise<number> {
  const { files, flags } = splitPositionals(argv, exportPeftFlags);
  const f = parseFlags(flags, exportPeftFlags);
  if (files.length !== 1) throw new UsageError(files.length === 0 ? "name the student to export" : `export-peft takes one student, got ${files.length}`);
  if (files[0] === "") throw new UsageError("the student to export must not be an empty path");
  if (f["base-model"] !== undefined && f["base-model"].trim() === "") throw new UsageError("--base-model must not be empty (leave it out to record none)");
  const out = f.out;
  checkOutputs([{ flag: "--out", path: out, owns: (name) => name === PEFT_CONFIG || name === PEFT_WEIGHTS }], {
    inputs: [
      { flag: "STUDENT", path: files[0] },
      { flag: "--model", path: f.model },
    ],
    force: f.force,
  });
  // Ctrl-C while the teacher and student are read stops the command (checked between those parts) with nothing written.
  return withSignalsCaught(io, "ptp export-peft", async ({ stopped }) => {
    let teacher: { checkpoint: Checkpoint; checksum: string } | undefined;
    if (f.model !== undefined) {
      const checkpoint = readModel(f.model);
      const read = await stopped();
      if (read !== undefined) return read;
      teacher = { checkpoint, checksum: teacherChecksum(checkpoint) };
    }
    const student = loadStudent(files[0], teacher);
    const loaded = await stopped();
    if (loaded !== undefined) return loaded;
    warnNonFinite(io, "student", files[0], student.weights);
    const E = student.config.extraBlocks;
    if (E) throw new Error(`${quotePath(files[0])}: the student has ${E} extra blocks, which a PEFT LoRA folder cannot hold (PEFT knows only the LoRA adapters); keep the ptp adapter file`);
    // Through a temporary folder: a failure leaves nothing behind.
    const c = student.config;
    return await writeOutputs(
      io,
      "ptp export-peft",
      `${out} (a PEFT folder)`,
      () => writeFolderAtomically(out, (tmp) => writePeftStudent(tmp, student, { baseModel: f["base-model"] })),
      (written) => io.stderr(`wrote ${out}: PEFT LoRA folder (${written.length} files), ${c.variant}-PTP, rank ${c.rank}, alpha ${c.alpha}, aux ${c.aux.kind}, window ${c.window}\n`),
    );
  });
}
