import { AK42_MAGIC, parseCheckpoint } from "../io/checkpoint.js";
import { FileFormatError, readFileBytes } from "../io/errors.js";
import { isDirectory, readHfCheckpoint } from "../io/hf-checkpoint.js";
import { parseSafetensors } from "../io/safetensors.js";
import { CONFIG_FIELDS, parameterCount, type ModelConfig } from "../model/config.js";
import { parseStudent } from "../ptp/files/adapter-file.js";
import { isPeftFolder, readPeftStudent } from "../ptp/files/peft.js";
import { DRAFT_FORMAT, parseDraft } from "../ptp/files/draft-file.js";
import type { DraftConfig } from "../ptp/draft-model.js";
import type { StudentConfig } from "../ptp/student-weights.js";
import { teacherChecksum } from "../ptp/files/teacher-checksum.js";
import { describeFlags, parseFlags, UsageError, defineFlags } from "./args.js";
import type { Io } from "./io.js";

export const inspectFlags = defineFlags({
  json: { kind: "bool", help: "print one JSON object instead of text" },
});

export const inspectUsage = `usage: ptp inspect FILE|DIR [--json]

Tell a llama2.c checkpoint (v0 or v1 "ak42"), a Hugging Face Llama folder,
a PTP student adapter and a
standalone PTP draft model (both safetensors) apart and print the
configuration: for a checkpoint the model config, parameter count, version
and teacher checksum; for an adapter the student config, for a draft model
the draft config, each with tensor count and parameter count.

${describeFlags(inspectFlags)}`;

export interface CheckpointInfo {
  file: string;
  kind: "checkpoint";
  version: 0 | 1;
  config: ModelConfig;
  parameters: number;
  teacherChecksum: string;
}

export interface HfCheckpointInfo {
  file: string;
  kind: "hf-checkpoint";
  config: ModelConfig;
  parameters: number;
  teacherChecksum: string;
}

export interface StudentInfo {
  file: string;
  kind: "student";
  config: StudentConfig;
  tensors: number;
  parameters: number;
}

export interface DraftInfo {
  file: string;
  kind: "draft";
  config: DraftConfig;
  tensors: number;
  parameters: number;
}

/** True when the bytes start like safetensors: a little-endian uint64 header length that fits, then '{'. */
function looksLikeSafetensors(bytes: Uint8Array): boolean {
  if (bytes.length < 10 || bytes[8] !== 0x7b) return false;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = dv.getBigUint64(0, true);
  return length >= 2n && length <= BigInt(bytes.length - 8);
}

/** What a file is, and its configuration. Throws a FileFormatError naming the file when it is none of these kinds. */
export function inspectFile(path: string): CheckpointInfo | HfCheckpointInfo | StudentInfo | DraftInfo {
  if (isDirectory(path) && isPeftFolder(path)) {
    const student = readPeftStudent(path);
    let parameters = 0,
      tensors = 0;
    for (const layer of student.weights.layers) for (const p of Object.values(layer)) (parameters += p.A.length + p.B.length), (tensors += 2);
    for (const a of [student.weights.aux.weight, student.weights.aux.bias, student.weights.aux.anchors, student.weights.start]) if (a) (parameters += a.length), tensors++;
    return { file: path, kind: "student", config: student.config, tensors, parameters };
  }
  if (isDirectory(path)) {
    const checkpoint = readHfCheckpoint(path);
    const c = checkpoint.config;
    return { file: path, kind: "hf-checkpoint", config: c, parameters: parameterCount(c), teacherChecksum: teacherChecksum(checkpoint) };
  }
  const bytes = readFileBytes(path, "a llama2.c checkpoint, a PTP student adapter or a PTP draft model");
  if (looksLikeSafetensors(bytes)) {
    const file = parseSafetensors(bytes, path);
    let parameters = 0;
    for (const t of file.tensors.values()) parameters += t.shape.reduce((a, b) => a * b, 1);
    if (file.metadata.format === DRAFT_FORMAT) {
      return { file: path, kind: "draft", config: parseDraft(bytes, path).config, tensors: file.tensors.size, parameters };
    }
    const student = parseStudent(bytes, path);
    return { file: path, kind: "student", config: student.config, tensors: file.tensors.size, parameters };
  }
  const ak42 = bytes.length >= 4 && new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0, true) === AK42_MAGIC;
  try {
    const checkpoint = parseCheckpoint(bytes, path);
    return {
      file: path,
      kind: "checkpoint",
      version: ak42 ? 1 : 0,
      config: checkpoint.config,
      parameters: parameterCount(checkpoint.config),
      teacherChecksum: teacherChecksum(checkpoint),
    };
  } catch (e) {
    if (e instanceof FileFormatError && !ak42) {
      throw new FileFormatError(path, `neither a PTP student adapter or draft model (safetensors) nor a llama2.c checkpoint (v0 or v1 "ak42"); read as a v0 checkpoint: ${e.problem}`);
    }
    throw e;
  }
}

export async function inspectCommand(argv: readonly string[], io: Io): Promise<number> {
  const files = argv.filter((a) => !a.startsWith("--"));
  const f = parseFlags(
    argv.filter((a) => a.startsWith("--")),
    inspectFlags,
  );
  if (files.length !== 1) throw new UsageError(files.length === 0 ? "name the file to inspect" : `inspect takes one file, got ${files.length}`);
  const info = inspectFile(files[0]);
  if (f.json) {
    io.stdout(JSON.stringify(info) + "\n");
    return 0;
  }
  const lines: string[] = [];
  if (info.kind === "checkpoint" || info.kind === "hf-checkpoint") {
    const c = info.config;
    if (info.kind === "hf-checkpoint") lines.push(`${info.file}: Hugging Face Llama checkpoint (folder)`);
    else lines.push(`${info.file}: llama2.c checkpoint, version ${info.version}${info.version === 1 ? ' ("ak42", float32)' : " (legacy)"}`);
    for (const k of CONFIG_FIELDS) {
      lines.push(`  ${k.padEnd(17)} ${c[k]}`);
    }
    lines.push(`  ${"parameters".padEnd(17)} ${info.parameters} (${formatCount(info.parameters)})`);
    lines.push(`  ${"teacher checksum".padEnd(17)} ${info.teacherChecksum}`);
  } else if (info.kind === "draft") {
    const c = info.config;
    const m = c.model;
    lines.push(`${info.file}: PTP draft model (safetensors), ${c.variant}-PTP`);
    lines.push(`  ${"variant".padEnd(17)} ${c.variant}`);
    lines.push(`  ${"aux".padEnd(17)} ${c.aux.kind}${c.aux.kind === "digits" ? ` (${c.aux.digits} digits)` : ""}`);
    lines.push(`  ${"window".padEnd(17)} ${c.window}`);
    lines.push(`  ${"draft shape".padEnd(17)} dim ${m.dim}, hiddenDim ${m.hiddenDim}, nLayers ${m.nLayers}, nHeads ${m.nHeads}, ` + `nKvHeads ${m.nKvHeads}, vocabSize ${m.vocabSize}, seqLen ${m.seqLen}, ${m.sharedClassifier ? "shared" : "separate"} classifier`);
    lines.push(`  ${"teacher vocab".padEnd(17)} ${c.teacherVocabSize}`);
    lines.push(`  ${"teacher checksum".padEnd(17)} ${c.teacherChecksum}`);
    lines.push(`  ${"tensors".padEnd(17)} ${info.tensors}`);
    lines.push(`  ${"parameters".padEnd(17)} ${info.parameters} (${formatCount(info.parameters)})`);
  } else {
    const c = info.config;
    const t = c.teacherShape;
    lines.push(`${info.file}: PTP student adapter (safetensors), ${c.variant}-PTP`);
    lines.push(`  ${"variant".padEnd(17)} ${c.variant}`);
    lines.push(`  ${"rank".padEnd(17)} ${c.rank}`);
    lines.push(`  ${"alpha".padEnd(17)} ${c.alpha}`);
    lines.push(`  ${"aux".padEnd(17)} ${c.aux.kind}${c.aux.kind === "digits" ? ` (${c.aux.digits} digits)` : ""}`);
    lines.push(`  ${"window".padEnd(17)} ${c.window}`);
    lines.push(`  ${"teacher shape".padEnd(17)} dim ${t.dim}, hiddenDim ${t.hiddenDim}, nLayers ${t.nLayers}, nHeads ${t.nHeads}, ` + `nKvHeads ${t.nKvHeads}, vocabSize ${t.vocabSize}, seqLen ${t.seqLen}, ${t.sharedClassifier ? "shared" : "separate"} classifier`);
    lines.push(`  ${"teacher checksum".padEnd(17)} ${c.teacherChecksum}`);
    lines.push(`  ${"tensors".padEnd(17)} ${info.tensors}`);
    lines.push(`  ${"parameters".padEnd(17)} ${info.parameters} (${formatCount(info.parameters)})`);
  }
  io.stdout(lines.join("\n") + "\n");
  return 0;
}

function formatCount(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}K` : String(n);
}
