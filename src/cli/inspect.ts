import { DATASET_MAGIC, datasetRecords, totalRecords, type DatasetMeta } from "../data/dataset.js";
import { AK42_MAGIC, checkFiniteWeights, parseCheckpoint } from "../io/checkpoint.js";
import { FileFormatError, quotePath, readFileBytes, readFilePrefix } from "../io/errors.js";
import { looksLikeText, TEXT_PROBE_BYTES } from "../io/file-kind.js";
import { isDirectory, readHfCheckpoint } from "../io/hf-checkpoint.js";
import { looksLikeSafetensors, parseSafetensors } from "../io/safetensors.js";
import { CONFIG_FIELDS, parameterCount, type ModelConfig } from "../model/config.js";
import { parseStudent } from "../ptp/files/adapter-file.js";
import { slotInputOf } from "../ptp/files/ptp-file-parts.js";
import { isPeftFolder, NEEDS_TEACHER, PEFT_WEIGHTS, readPeftStudent } from "../ptp/files/peft.js";
import { readModel } from "../io/model-file.js";
import type { Checkpoint } from "../model/weights.js";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { DRAFT_FORMAT, parseDraft } from "../ptp/files/draft-file.js";
import { TRAIN_CHECKPOINT_FORMAT } from "../train/train-checkpoint.js";
import { llama2cTokenizerTokens } from "../io/char-tokenizer.js";
import type { DraftConfig } from "../ptp/draft-model.js";
import { weightCounts, type AuxEmbeddingConfig, type StudentConfig } from "../ptp/student-weights.js";
import { teacherChecksum } from "../ptp/files/teacher-checksum.js";
import { describeFlags, parseFlags, splitPositionals, UsageError, defineFlags } from "./args.js";
import type { Io } from "./io.js";

export const inspectFlags = defineFlags({
  json: { kind: "bool", help: "print one JSON object instead of text" },
  model: { kind: "string", value: "PATH", help: "the teacher of a PEFT folder without ptp settings (the reference code's), which gives its shape" },
});

/** The kinds inspect tells apart: its help, and the messages for a missing or a text file, list them from here. */
const INSPECT_KINDS = ["a llama2.c checkpoint", "a Hugging Face Llama folder", "a PTP student adapter", "a PEFT LoRA folder", "a PTP draft model", "a ptp training checkpoint", "a PTP distillation dataset", "a llama2.c tokenizer.bin"] as const;

/** INSPECT_KINDS as a list in a sentence: "a, b, ... or z". */
const KIND_LIST = `${INSPECT_KINDS.slice(0, -1).join(", ")} or ${INSPECT_KINDS[INSPECT_KINDS.length - 1]}`;

/** `text` broken into lines of at most `width` characters, at spaces. */
function wrap(text: string, width = 74): string {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line !== "" && line.length + 1 + word.length > width) lines.push(line), (line = word);
    else line = line === "" ? word : `${line} ${word}`;
  }
  return [...lines, line].join("\n");
}

export const inspectUsage = `usage: ptp inspect FILE|DIR [--json] [--model PATH]

${wrap(
  `Tell ${KIND_LIST} apart and print the configuration. A checkpoint is a llama2.c ` +
    `v0 or v1 ("ak42") file; an adapter, a draft model and a training checkpoint are ` +
    `safetensors files; a dataset comes from ptp pregenerate. For a checkpoint it ` +
    `prints the model config, parameter count, version and teacher checksum; for an ` +
    `adapter the student config, for a draft model the draft config, each with tensor ` +
    `count and parameter count; for a dataset its generation settings and how many of ` +
    `its records are complete; for a training checkpoint its step; for a tokenizer its ` +
    `token count. A PEFT folder of the reference code (no ptp settings) needs its ` +
    `teacher (--model), which gives the shape its tensors are read with.`,
)}

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

export interface DatasetInfo {
  file: string;
  kind: "dataset";
  meta: DatasetMeta;
  /** Complete records in the file (the header's total when the run finished). */
  records: number;
  /** Records the header's settings call for (prompts x samples per prompt). */
  total: number;
  /** Sampled tokens in the complete records. */
  sampledTokens: number;
  /** Bytes of a torn last record (an interrupted run), 0 when none. */
  tornBytes: number;
}

export interface TrainCheckpointInfo {
  file: string;
  kind: "train-checkpoint";
  /** Updates taken. */
  step: number;
  /** Values of the trained params (each also has two Adam moments in the file). */
  parameters: number;
  tensors: number;
}

export interface TokenizerInfo {
  file: string;
  kind: "tokenizer";
  /** Tokens it holds: the vocab size of a model it goes with. */
  vocabSize: number;
}

export interface DraftInfo {
  file: string;
  kind: "draft";
  config: DraftConfig;
  tensors: number;
  parameters: number;
}

/** A distillation dataset's header and what its records hold (read one record at a time). */
function inspectDataset(path: string): DatasetInfo {
  let records = 0,
    sampledTokens = 0,
    tornBytes = 0;
  const it = datasetRecords(path, { allowTornTail: true, onTornTail: (t) => (tornBytes = t.bytes) });
  for (let r = it.next(); ; r = it.next()) {
    if (r.done) return { file: path, kind: "dataset", meta: r.value, records, total: totalRecords(r.value), sampledTokens, tornBytes };
    records++;
    sampledTokens += r.value.tokens.length - r.value.promptLength;
  }
}

/** What a file is, and its configuration. Throws a FileFormatError naming the file when it is none of these kinds. */
export function inspectFile(path: string, teacher?: Checkpoint): CheckpointInfo | HfCheckpointInfo | StudentInfo | DraftInfo | DatasetInfo | TrainCheckpointInfo | TokenizerInfo {
  // A PEFT folder: its config, or its weights alone (then readPeftStudent names the missing config).
  const peft = isDirectory(path) && (isPeftFolder(path) || existsSync(join(path, PEFT_WEIGHTS)));
  if (teacher !== undefined && !peft) throw new UsageError(`--model goes with a PEFT folder (the teacher of one without ptp settings); ${quotePath(path)} is not one`);
  if (peft) {
    const student = readPeftStudentNamingModel(path, teacher);
    return { file: path, kind: "student", config: student.config, ...weightCounts(student.weights) };
  }
  if (isDirectory(path)) {
    const checkpoint = readHfCheckpoint(path);
    const c = checkpoint.config;
    return { file: path, kind: "hf-checkpoint", config: c, parameters: parameterCount(c), teacherChecksum: teacherChecksum(checkpoint) };
  }
  const what = KIND_LIST;
  if (new TextDecoder().decode(readFilePrefix(path, what, DATASET_MAGIC.length).bytes) === DATASET_MAGIC) return inspectDataset(path);
  const bytes = readFileBytes(path, what);
  if (looksLikeSafetensors(bytes)) {
    const file = parseSafetensors(bytes, path);
    let parameters = 0;
    for (const t of file.tensors.values()) parameters += t.shape.reduce((a, b) => a * b, 1);
    if (file.metadata.format === DRAFT_FORMAT) {
      return { file: path, kind: "draft", config: parseDraft(bytes, path).config, tensors: file.tensors.size, parameters };
    }
    if (file.metadata.format === TRAIN_CHECKPOINT_FORMAT) return trainCheckpointInfo(path, file);
    const student = parseStudent(bytes, path);
    return { file: path, kind: "student", config: student.config, tensors: file.tensors.size, parameters };
  }
  const ak42 = bytes.length >= 4 && new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0, true) === AK42_MAGIC;
  let checkpoint: Checkpoint;
  try {
    checkpoint = parseCheckpoint(bytes, path);
  } catch (e) {
    // Text (a README, a prompts file): say so, not the garbage a v0 header of its letters reads as.
    if (e instanceof FileFormatError && !ak42 && looksLikeText(bytes.subarray(0, TEXT_PROBE_BYTES))) throw new FileFormatError(path, `a text file; inspect reads ${KIND_LIST}`);
    // '{' after eight bytes: a safetensors file whose header length does not fit (parseSafetensors says how).
    if (e instanceof FileFormatError && !ak42 && bytes.length >= 10 && bytes[8] === 0x7b) parseSafetensors(bytes, path);
    if (e instanceof FileFormatError && !ak42) {
      const tokens = llama2cTokenizerTokens(bytes);
      if (tokens !== undefined) return { file: path, kind: "tokenizer", vocabSize: tokens };
      throw new FileFormatError(path, `neither a PTP student adapter, draft model or training checkpoint (safetensors), a PTP dataset ("${DATASET_MAGIC}"), a llama2.c tokenizer nor a llama2.c checkpoint (v0 or v1 "ak42"); read as a v0 checkpoint: ${e.problem}`);
    }
    throw e;
  }
  // A NaN or Inf weight is refused as every command that loads the model refuses it (and as a folder's is, when read).
  checkFiniteWeights(checkpoint, path);
  return { file: path, kind: "checkpoint", version: ak42 ? 1 : 0, config: checkpoint.config, parameters: parameterCount(checkpoint.config), teacherChecksum: teacherChecksum(checkpoint) };
}

/**
 * A PEFT folder's student (with its teacher's shape where `teacher` is
 * given); a reference-code folder read without one names the flag that
 * gives it (readPeftStudent's own message serves every command).
 */
function readPeftStudentNamingModel(path: string, teacher: Checkpoint | undefined): ReturnType<typeof readPeftStudent> {
  try {
    return readPeftStudent(path, teacher ? { teacher: { checkpoint: teacher, checksum: teacherChecksum(teacher) } } : {});
  } catch (e) {
    if (teacher === undefined && e instanceof FileFormatError && e.problem.startsWith(NEEDS_TEACHER)) {
      throw new FileFormatError(e.path, `${NEEDS_TEACHER}: give its teacher model, which gives the teacher's shape: ptp inspect ${quotePath(path)} --model PATH`);
    }
    throw e;
  }
}

/** A training checkpoint (distill's or train's --checkpoint): its step and size; its run config is the command's own. */
function trainCheckpointInfo(path: string, file: ReturnType<typeof parseSafetensors>): TrainCheckpointInfo {
  const step = Number(file.metadata.step);
  if (!Number.isSafeInteger(step) || step < 0) throw new FileFormatError(path, `a training checkpoint whose metadata "step" is not an integer >= 0`);
  let parameters = 0;
  for (const [name, t] of file.tensors) if (name.startsWith("param.")) parameters += t.shape.reduce((a, b) => a * b, 1);
  return { file: path, kind: "train-checkpoint", step, parameters, tensors: file.tensors.size };
}

export async function inspectCommand(argv: readonly string[], io: Io): Promise<number> {
  const { files, flags } = splitPositionals(argv, inspectFlags);
  const f = parseFlags(flags, inspectFlags);
  if (files.length !== 1) throw new UsageError(files.length === 0 ? "name the file to inspect" : `inspect takes one file, got ${files.length}`);
  if (files[0] === "") throw new UsageError("the file to inspect must not be an empty path");
  if (f.model === "") throw new UsageError("--model must not be an empty path");
  const info = inspectFile(files[0], f.model === undefined ? undefined : readModel(f.model));
  if (f.json) {
    io.stdout(JSON.stringify(info) + "\n");
    return 0;
  }
  const lines: string[] = [];
  const row = (label: string, value: string | number | boolean): void => {
    lines.push(`  ${label.padEnd(17)} ${value}`);
  };
  const countRows = (p: { tensors?: number; parameters: number }): void => {
    if (p.tensors !== undefined) row("tensors", p.tensors);
    row("parameters", `${p.parameters} (${formatCount(p.parameters)})`);
  };
  const shapeText = (m: Omit<ModelConfig, "normEps" | "ropeTheta">): string => `dim ${m.dim}, hiddenDim ${m.hiddenDim}, nLayers ${m.nLayers}, nHeads ${m.nHeads}, ` + `nKvHeads ${m.nKvHeads}, vocabSize ${m.vocabSize}, seqLen ${m.seqLen}, ${m.sharedClassifier ? "shared" : "separate"} classifier`;
  const auxText = (a: AuxEmbeddingConfig): string => `${a.kind}${a.kind === "digits" ? ` (${a.digits} digits)` : ""}`;
  if (info.kind === "train-checkpoint") {
    lines.push(`${info.file}: ptp training checkpoint (the state --resume continues from: params, Adam moments, data position)`);
    row("step", info.step);
    row("trained params", `${info.parameters} (${formatCount(info.parameters)})`);
    row("tensors", info.tensors);
  } else if (info.kind === "tokenizer") {
    lines.push(`${info.file}: llama2.c tokenizer (tokenizer.bin)`);
    row("tokens", `${info.vocabSize} (the vocab size of the models it goes with)`);
  } else if (info.kind === "dataset") {
    const m = info.meta;
    lines.push(`${info.file}: PTP distillation dataset`);
    row("records", `${info.records} of ${info.total}${info.records < info.total ? " (unfinished: resume the pregenerate run)" : ""}`);
    if (info.tornBytes > 0) row("torn last record", `${info.tornBytes} bytes (resuming truncates it)`);
    row("sampled tokens", info.sampledTokens);
    row("prompts", `${m.prompts.count} from ${m.prompts.source}, ${m.samplesPerPrompt} sample(s) each`);
    row("sampling", `temperature ${m.sampling.temperature}, top-k ${m.sampling.topK || "off"}, top-p ${m.sampling.topP === 1 ? "off" : m.sampling.topP}`);
    row("max steps", m.maxSteps);
    row("seed", m.seed);
    row("teacher", `vocabSize ${m.vocabSize}, seqLen ${m.seqLen}`);
    row("teacher checksum", m.teacher);
    row("sampled on", m.backend ?? "not recorded (a version 1 dataset)");
  } else if (info.kind === "checkpoint" || info.kind === "hf-checkpoint") {
    const c = info.config;
    if (info.kind === "hf-checkpoint") lines.push(`${info.file}: Hugging Face Llama checkpoint (folder)`);
    else lines.push(`${info.file}: llama2.c checkpoint, version ${info.version}${info.version === 1 ? ' ("ak42", float32)' : " (legacy)"}`);
    for (const k of CONFIG_FIELDS) row(k, c[k]);
    countRows({ parameters: info.parameters });
    row("teacher checksum", info.teacherChecksum);
  } else if (info.kind === "draft") {
    const c = info.config;
    lines.push(`${info.file}: PTP draft model (safetensors), ${c.variant}-PTP`);
    row("variant", c.variant);
    row("aux", auxText(c.aux));
    row("window", c.window);
    row("slot input", slotInputOf(c));
    row("draft shape", shapeText(c.model));
    row("teacher vocab", c.teacherVocabSize);
    row("teacher checksum", c.teacherChecksum);
    countRows(info);
  } else {
    const c = info.config;
    lines.push(`${info.file}: ${isDirectory(info.file) ? "PTP student, PEFT LoRA folder" : "PTP student adapter (safetensors)"}, ${c.variant}-PTP`);
    row("variant", c.variant);
    row("rank", c.rank);
    row("alpha", c.alpha);
    row("aux", auxText(c.aux));
    row("window", c.window);
    row("slot input", slotInputOf(c));
    if (c.extraBlocks) row("extra blocks", c.extraBlocks);
    if (c.pickFeedback) row("pick feedback", c.pickFeedback === "chain" ? "chain: every slot reads the draft of the slot before it" : "first: slot 1 reads the window's first pick");
    if (c.draftHead) row("draft head", "yes: the slots skip the teacher's layers and draft beside it (decoder verify)");
    row("teacher shape", shapeText(c.teacherShape));
    row("teacher checksum", c.teacherChecksum);
    countRows(info);
  }
  io.stdout(lines.join("\n") + "\n");
  return 0;
}

function formatCount(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}K` : String(n);
}
