/**
 * The PTP student adapter (gated LoRA + auxiliary embedding, see
 * student-weights.ts) stored as a safetensors file.
 *
 * Tensors (all F32):
 * - `layers.{l}.{name}.lora_A` [rank, in] and `layers.{l}.{name}.lora_B`
 *   [out, rank] for every layer l and every linear layer name of
 *   LINEAR_NAMES ([out, in] = linearShape of the teacher);
 * - `aux.weight` [dim, 32] and `aux.bias` [dim] for aux kind "bits",
 *   `aux.weight` [dim, B] and `aux.bias` [dim] for "digits" (B digits),
 *   `aux.anchors` [3, dim] for "anchors";
 * - `start` [dim] for variant C only.
 *
 * Metadata (strings): `format` = "ptp-student", `format_version` = "1",
 * `variant` ("O" | "C"), `rank`, `alpha`, `aux_kind`, `aux_digits` (digits
 * only), `window`, `teacher_checksum` (teacherChecksum of the teacher) and
 * `teacher_shape` (JSON of the teacher's shape, keys in ModelConfig order).
 *
 * Serialisation is deterministic, so parse then serialise reproduces a
 * file written here byte for byte.
 */
import { configProblems, type ModelConfig } from "../model/config.js";
import { LINEAR_NAMES, linearShape, type Checkpoint, type LinearName } from "../model/weights.js";
import { FileFormatError, readFileBytes } from "../io/errors.js";
import { Mulberry32 } from "../io/prng.js";
import { parseSafetensors, serializeSafetensors, writeBytesAtomically, type SafeTensor } from "../io/safetensors.js";
import type { AuxEmbeddingConfig, AuxKind, LayerLora, Student, StudentConfig, StudentWeights, Variant } from "./student-weights.js";

export const STUDENT_FORMAT = "ptp-student";
export const STUDENT_FORMAT_VERSION = "1";
/** Inputs of the "bits" auxiliary embedding: the 32 bits of float32 u. */
export const AUX_BITS = 32;
export const MAX_AUX_DIGITS = 24;

type TeacherShape = StudentConfig["teacherShape"];

/** The fields of a teacher shape, in the order they are stored and compared. */
const SHAPE_FIELDS = ["dim", "hiddenDim", "nLayers", "nHeads", "nKvHeads", "vocabSize", "seqLen", "sharedClassifier"] as const;
const INT_SHAPE_FIELDS = ["dim", "hiddenDim", "nLayers", "nHeads", "nKvHeads", "vocabSize", "seqLen"] as const;
const AUX_KINDS: readonly AuxKind[] = ["bits", "digits", "anchors"];

type Fail = (problem: string) => never;

/** The teacher shape of a model config, with its keys in canonical order. */
export function teacherShapeOf(c: Pick<ModelConfig, (typeof SHAPE_FIELDS)[number]>): TeacherShape {
  return {
    dim: c.dim,
    hiddenDim: c.hiddenDim,
    nLayers: c.nLayers,
    nHeads: c.nHeads,
    nKvHeads: c.nKvHeads,
    vocabSize: c.vocabSize,
    seqLen: c.seqLen,
    sharedClassifier: c.sharedClassifier,
  };
}

/** The metadata strings of a student config (not validated; see configFromMetadata). */
function studentMetadata(config: StudentConfig): Record<string, string> {
  const meta: Record<string, string> = {
    format: STUDENT_FORMAT,
    format_version: STUDENT_FORMAT_VERSION,
    variant: String(config.variant),
    rank: String(config.rank),
    alpha: String(config.alpha),
    aux_kind: String(config.aux?.kind),
    window: String(config.window),
    teacher_checksum: String(config.teacherChecksum),
    teacher_shape: JSON.stringify(config.teacherShape ? teacherShapeOf(config.teacherShape) : null),
  };
  if (config.aux?.kind === "digits") meta.aux_digits = String(config.aux.digits);
  return meta;
}

function required(meta: Record<string, string>, key: string, fail: Fail): string {
  const v = meta[key];
  if (v === undefined) fail(`metadata "${key}" is missing`);
  return v;
}

function positiveNumber(meta: Record<string, string>, key: string, integer: boolean, fail: Fail): number {
  const s = required(meta, key, fail);
  const v = integer ? (/^[0-9]+$/.test(s) ? Number(s) : NaN) : s.trim() === "" ? NaN : Number(s);
  if (!Number.isFinite(v) || v <= 0 || (integer && !Number.isInteger(v))) {
    fail(`metadata "${key}" must be a positive ${integer ? "integer" : "number"}, found ${JSON.stringify(s)}`);
  }
  return v;
}

function parseTeacherShape(s: string, fail: Fail): TeacherShape {
  let raw: unknown;
  try {
    raw = JSON.parse(s);
  } catch {
    return fail(`metadata "teacher_shape" is not valid JSON: ${JSON.stringify(s)}`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) fail(`metadata "teacher_shape" must be a JSON object, found ${s}`);
  const o = raw as Record<string, unknown>;
  for (const key of INT_SHAPE_FIELDS) {
    const v = o[key];
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) {
      fail(`metadata "teacher_shape" needs ${key} as a positive integer, found ${JSON.stringify(v)}`);
    }
  }
  if (typeof o.sharedClassifier !== "boolean") {
    fail(`metadata "teacher_shape" needs sharedClassifier as a boolean, found ${JSON.stringify(o.sharedClassifier)}`);
  }
  const shape = teacherShapeOf(o as unknown as TeacherShape);
  const problems = configProblems({ ...shape, normEps: 1e-5, ropeTheta: 10000 });
  if (problems.length > 0) fail(`metadata "teacher_shape" is not a valid model shape: ${problems.join("; ")}`);
  return shape;
}

/** Reads and validates a student config from file metadata. */
function configFromMetadata(meta: Record<string, string>, fail: Fail): StudentConfig {
  const format = meta.format;
  if (format === undefined) fail(`not a PTP student adapter: metadata "format" is missing (expected "${STUDENT_FORMAT}")`);
  if (format !== STUDENT_FORMAT) fail(`not a PTP student adapter: metadata "format" is ${JSON.stringify(format)}, expected "${STUDENT_FORMAT}"`);
  const version = required(meta, "format_version", fail);
  if (version !== STUDENT_FORMAT_VERSION) {
    fail(`unsupported ${STUDENT_FORMAT} format_version ${JSON.stringify(version)} (this library reads version ${STUDENT_FORMAT_VERSION})`);
  }
  const variant = required(meta, "variant", fail);
  if (variant !== "O" && variant !== "C") fail(`metadata "variant" must be "O" or "C", found ${JSON.stringify(variant)}`);
  const rank = positiveNumber(meta, "rank", true, fail);
  const alpha = positiveNumber(meta, "alpha", false, fail);
  const window = positiveNumber(meta, "window", true, fail);
  const kind = required(meta, "aux_kind", fail);
  if (!(AUX_KINDS as readonly string[]).includes(kind)) {
    fail(`metadata "aux_kind" must be one of ${AUX_KINDS.join(", ")}, found ${JSON.stringify(kind)}`);
  }
  let aux: AuxEmbeddingConfig;
  if (kind === "digits") {
    const s = required(meta, "aux_digits", fail);
    const digits = /^[0-9]+$/.test(s) ? Number(s) : NaN;
    if (!(digits >= 1 && digits <= MAX_AUX_DIGITS)) fail(`metadata "aux_digits" must be an integer in 1..${MAX_AUX_DIGITS}, found ${JSON.stringify(s)}`);
    aux = { kind: "digits", digits };
  } else {
    if (meta.aux_digits !== undefined) fail(`metadata "aux_digits" is only allowed with aux_kind "digits" (aux_kind is "${kind}")`);
    aux = { kind: kind as AuxKind };
  }
  const teacherChecksum = required(meta, "teacher_checksum", fail);
  if (teacherChecksum === "") fail(`metadata "teacher_checksum" is empty`);
  const teacherShape = parseTeacherShape(required(meta, "teacher_shape", fail), fail);
  return { variant: variant as Variant, rank, alpha, aux, window, teacherShape, teacherChecksum };
}

/** One tensor of the file: its name, shape and where it lives in StudentWeights. */
interface Slot {
  name: string;
  shape: number[];
  get(w: StudentWeights): Float32Array | undefined;
  set(w: StudentWeights, a: Float32Array): void;
}

/** The tensors a student of this config has, layers first (the order randomStudent fills them). */
function slots(config: StudentConfig): Slot[] {
  const t = config.teacherShape;
  const r = config.rank;
  const out: Slot[] = [];
  for (let l = 0; l < t.nLayers; l++) {
    for (const lin of LINEAR_NAMES) {
      const [o, i] = linearShape(t, lin);
      const pair = (w: StudentWeights) => w.layers[l]?.[lin];
      out.push({
        name: `layers.${l}.${lin}.lora_A`,
        shape: [r, i],
        get: (w) => pair(w)?.A,
        set: (w, a) => ensurePair(w, l, lin).A = a,
      });
      out.push({
        name: `layers.${l}.${lin}.lora_B`,
        shape: [o, r],
        get: (w) => pair(w)?.B,
        set: (w, a) => ensurePair(w, l, lin).B = a,
      });
    }
  }
  if (config.aux.kind === "anchors") {
    out.push({ name: "aux.anchors", shape: [3, t.dim], get: (w) => w.aux.anchors, set: (w, a) => (w.aux.anchors = a) });
  } else {
    const inputs = config.aux.kind === "bits" ? AUX_BITS : config.aux.digits!;
    out.push({ name: "aux.weight", shape: [t.dim, inputs], get: (w) => w.aux.weight, set: (w, a) => (w.aux.weight = a) });
    out.push({ name: "aux.bias", shape: [t.dim], get: (w) => w.aux.bias, set: (w, a) => (w.aux.bias = a) });
  }
  if (config.variant === "C") out.push({ name: "start", shape: [t.dim], get: (w) => w.start, set: (w, a) => (w.start = a) });
  return out;
}

function ensurePair(w: StudentWeights, l: number, lin: LinearName): { A: Float32Array; B: Float32Array } {
  while (w.layers.length <= l) w.layers.push({} as LayerLora);
  const layer = w.layers[l];
  if (!layer[lin]) layer[lin] = { A: new Float32Array(0), B: new Float32Array(0) };
  return layer[lin];
}

const product = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);
const describeShape = (shape: readonly number[]): string => `[${shape.join(", ")}]`;

/**
 * The safetensors bytes of a student. Throws a plain Error when the config
 * is invalid or an array is missing, superfluous or of the wrong length.
 */
export function serializeStudent(student: Student): Uint8Array {
  const fail: Fail = (problem) => {
    throw new Error(`serializeStudent: ${problem}`);
  };
  const metadata = studentMetadata(student.config);
  const config = configFromMetadata(metadata, fail);
  const w = student.weights;
  if (w.layers.length !== config.teacherShape.nLayers) {
    fail(`the teacher has ${config.teacherShape.nLayers} layers but the weights have ${w.layers.length}`);
  }
  if (config.variant === "O" && w.start !== undefined) fail(`variant O has no start vector, but weights.start is set`);
  if (config.aux.kind === "anchors" && (w.aux.weight !== undefined || w.aux.bias !== undefined)) {
    fail(`aux kind anchors has no weight or bias, but they are set`);
  }
  if (config.aux.kind !== "anchors" && w.aux.anchors !== undefined) fail(`aux kind ${config.aux.kind} has no anchors, but they are set`);
  const tensors: Record<string, SafeTensor> = {};
  for (const slot of slots(config)) {
    const a = slot.get(w);
    if (!(a instanceof Float32Array)) fail(`${slot.name} is missing (expected a Float32Array of shape ${describeShape(slot.shape)})`);
    if (a.length !== product(slot.shape)) {
      fail(`${slot.name} has ${a.length} floats, expected ${product(slot.shape)} for shape ${describeShape(slot.shape)}`);
    }
    tensors[slot.name] = { dtype: "F32", shape: slot.shape, data: a };
  }
  return serializeSafetensors(tensors, metadata);
}

/**
 * Parses a student adapter file. `name` (usually the path) starts every
 * error message. Throws FileFormatError when the file is not safetensors,
 * not a ptp-student file, has an unsupported version or invalid metadata,
 * or its tensors are not exactly the expected F32 tensors with the
 * expected shapes.
 */
export function parseStudent(bytes: Uint8Array, name: string): Student {
  const fail: Fail = (problem) => {
    throw new FileFormatError(name, problem);
  };
  const file = parseSafetensors(bytes, name);
  const config = configFromMetadata(file.metadata, fail);
  const dim = config.teacherShape.dim;
  if (config.variant === "O" && file.tensors.has("start")) fail(`variant O has no start vector, but the file has a tensor "start"`);
  if (config.variant === "C" && !file.tensors.has("start")) fail(`variant C needs the start vector, but tensor "start" [${dim}] is missing`);
  const weights: StudentWeights = { layers: [], aux: {} };
  const expected = slots(config);
  for (const slot of expected) {
    const t = file.tensors.get(slot.name);
    if (t === undefined) fail(`tensor "${slot.name}" is missing (expected shape ${describeShape(slot.shape)})`);
    if (t.dtype !== "F32") fail(`tensor "${slot.name}" has dtype ${t.dtype}, expected F32`);
    if (t.shape.length !== slot.shape.length || t.shape.some((d, i) => d !== slot.shape[i])) {
      fail(`tensor "${slot.name}" has shape ${describeShape(t.shape)}, expected ${describeShape(slot.shape)}`);
    }
    slot.set(weights, t.data as Float32Array);
  }
  const known = new Set(expected.map((s) => s.name));
  const extra = [...file.tensors.keys()].filter((k) => !known.has(k));
  if (extra.length > 0) {
    const shown = extra.slice(0, 5).map((k) => JSON.stringify(k));
    if (extra.length > 5) shown.push(`and ${extra.length - 5} more`);
    fail(`unexpected tensor${extra.length > 1 ? "s" : ""} ${shown.join(", ")} (not part of a ${config.variant}-PTP student with aux kind ${config.aux.kind})`);
  }
  return { config, weights };
}

/** Reads a student adapter file synchronously (see parseStudent). */
export function readStudent(path: string): Student {
  return parseStudent(readFileBytes(path, "a PTP student adapter (safetensors)"), path);
}

/** Writes a student adapter atomically: to `path + ".tmp"`, then renamed over `path`. */
export function writeStudent(path: string, student: Student): void {
  writeBytesAtomically(path, serializeStudent(student));
}

const CHECKSUM_PREFIX = 12;

/**
 * Throws an Error unless the student was made for this teacher: first the
 * shape (every differing field listed, e.g. "adapter x.safetensors was made
 * for a teacher with dim 288, nLayers 6 but the model has dim 64, nLayers
 * 5"), then the checksum (`checksum` = teacherChecksum(teacher)). `where`
 * names the adapter, usually its path; messages start "adapter <where>".
 */
export function checkStudentMatchesTeacher(student: Student, teacher: Checkpoint, checksum: string, where: string): void {
  const want = student.config.teacherShape;
  const have = teacher.config;
  const differing = SHAPE_FIELDS.filter((k) => want[k] !== have[k]);
  if (differing.length > 0) {
    const list = (s: Pick<ModelConfig, (typeof SHAPE_FIELDS)[number]>): string => differing.map((k) => `${k} ${s[k]}`).join(", ");
    throw new Error(`adapter ${where} was made for a teacher with ${list(want)} but the model has ${list(have)}`);
  }
  const theirs = student.config.teacherChecksum;
  if (theirs !== checksum) {
    throw new Error(
      `adapter ${where} belongs to teacher ${theirs.slice(0, CHECKSUM_PREFIX)} but the model's checksum is ` +
        `${checksum.slice(0, CHECKSUM_PREFIX)}: load the teacher it was trained for`,
    );
  }
}

export interface RandomStudentOptions {
  variant: Variant;
  rank: number;
  /** LoRA alpha (default 8, PEFT's default, which the reference code keeps). */
  alpha?: number;
  /** Default { kind: "bits" }. */
  aux?: AuxEmbeddingConfig;
  /** Default 16. */
  window?: number;
  seed: number;
  /** B = 0 exactly (the standard LoRA initialisation: the student starts as the teacher). */
  zeroB?: boolean;
}

/** Scale of the random B matrices, aux weights and biases, anchors and start vector. */
const SMALL = 0.02;

/**
 * An untrained student for `teacher`, deterministic per seed (Mulberry32).
 * Filled in file order: per layer and linear layer, A uniform in
 * ±1/sqrt(in) then B uniform in ±0.02 (or exactly 0 with zeroB); then the
 * aux weight and bias (or the anchors) uniform in ±0.02; then, for C, the
 * start vector uniform in ±0.02.
 */
export function randomStudent(teacher: Checkpoint, checksum: string, options: RandomStudentOptions): Student {
  const aux: AuxEmbeddingConfig = options.aux ? { ...options.aux } : { kind: "bits" };
  const draft: StudentConfig = {
    variant: options.variant,
    rank: options.rank,
    alpha: options.alpha ?? 8,
    aux,
    window: options.window ?? 16,
    teacherShape: teacherShapeOf(teacher.config),
    teacherChecksum: checksum,
  };
  const config = configFromMetadata(studentMetadata(draft), (problem) => {
    throw new Error(`randomStudent: ${problem}`);
  });
  const rng = new Mulberry32(options.seed);
  const uniform = (length: number, scale: number): Float32Array => {
    const out = new Float32Array(length);
    for (let i = 0; i < length; i++) out[i] = (2 * rng.nextFloat() - 1) * scale;
    return out;
  };
  const weights: StudentWeights = { layers: [], aux: {} };
  for (const slot of slots(config)) {
    const n = product(slot.shape);
    let a: Float32Array;
    if (slot.name.endsWith(".lora_A")) a = uniform(n, 1 / Math.sqrt(slot.shape[1]));
    else if (slot.name.endsWith(".lora_B")) a = options.zeroB ? new Float32Array(n) : uniform(n, SMALL);
    else a = uniform(n, SMALL);
    slot.set(weights, a);
  }
  return { config, weights };
}
