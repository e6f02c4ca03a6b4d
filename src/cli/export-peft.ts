import { existsSync } from "node:fs";
import { readModel } from "../io/model-file.js";
import type { Checkpoint } from "../model/weights.js";
import { checkStudentMatchesTeacher } from "../ptp/files/adapter-file.js";
import { loadStudent } from "../ptp/files/student-file.js";
import { teacherChecksum } from "../ptp/files/teacher-checksum.js";
import { writePeftStudent } from "../ptp/files/peft.js";
import { describeFlags, parseFlags, UsageError, defineFlags } from "./args.js";
import type { Io } from "./io.js";

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
  const files = argv.filter((a, i) => !a.startsWith("--") && (i === 0 || !["--out", "--base-model", "--model"].includes(argv[i - 1])));
  const f = parseFlags(
    argv.filter((a) => !files.includes(a)),
    exportPeftFlags,
  );
  if (files.length !== 1) throw new UsageError(files.length === 0 ? "name the student to export" : `export-peft takes one student, got ${files.length}`);
  const out = f.out;
  if (existsSync(out) && !f.force) throw new Error(`${out}: already exists (pass --force to overwrite)`);
  let teacher: { checkpoint: Checkpoint; checksum: string } | undefined;
  if (f.model !== undefined) {
    const checkpoint = readModel(f.model);
    teacher = { checkpoint, checksum: teacherChecksum(checkpoint) };
  }
  const student = loadStudent(files[0], teacher);
  if (teacher) checkStudentMatchesTeacher(student, teacher.checkpoint, teacher.checksum, files[0]);
  const written = writePeftStudent(out, student, { baseModel: f["base-model"] });
  const c = student.config;
  io.stderr(`wrote ${out}: PEFT LoRA folder (${written.length} files), ${c.variant}-PTP, rank ${c.rank}, alpha ${c.alpha}, aux ${c.aux.kind}, window ${c.window}\n`);
  return 0;
}
