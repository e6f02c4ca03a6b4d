/**
 * What the PTP student adapter file (adapter-file.ts) and the standalone
 * draft model file (draft-file.ts) have in common: the metadata fields
 * `variant`, `aux_kind`, `aux_digits` and `teacher_checksum`, the tensors of
 * the auxiliary embedding and the start vector, and the checks of the
 * tensors a file has against those its config expects.
 */
import { writeBytesAtomically } from "../../io/atomic-write.js";
import { checkPath, FileFormatError, quote, readFileBytes } from "../../io/errors.js";
import { describeValue } from "../../util/checks.js";
import { parseSafetensors, type SafeTensor, type SafetensorsFile } from "../../io/safetensors.js";
import { configProblems, INT_SHAPE_FIELDS, validateConfig, type ModelConfig } from "../../model/config.js";
import { checkCheckpoint, type Checkpoint } from "../../model/weights.js";
import { checkObject, checkOptionKeys } from "../../util/options.js";
import type { AuxEmbeddingConfig, AuxEmbeddingWeights, AuxKind, Variant } from "../student-weights.js";

/** Inputs of the "bits" auxiliary embedding: the 32 bits of float32 u. */
export const AUX_BITS = 32;
export const MAX_AUX_DIGITS = 24;

const AUX_KINDS: readonly AuxKind[] = ["bits", "digits", "anchors"];

export type Fail = (problem: string) => never;

/** A Fail that throws a plain Error "<prefix>: <problem>" (for configs and weights given in code). */
export function plainFail(prefix: string): Fail {
  return (problem) => {
    throw new Error(`${prefix}: ${problem}`);
  };
}

/**
 * A Fail for a config given in code that the metadata checks validate (its
 * metadata strings parsed back): a RangeError "<prefix>: <problem>" whose
 * metadata keys ("rank", metadata "aux_kind") read as the fields the caller
 * set (`fields`: key -> name, e.g. aux_kind -> config.aux.kind), since the
 * caller wrote no file.
 */
export function fieldFail(prefix: string, fields: Readonly<Record<string, string>>): Fail {
  return (problem) => {
    throw new RangeError(`${prefix}: ${problem.replace(/(?:metadata )?"(\w+)"/g, (quoted, key: string) => (Object.hasOwn(fields, key) ? fields[key] : quoted))}`);
  };
}

/**
 * Every layer has tensors of its own, so a config claiming more layers than
 * the file has tensors is refused before the expected tensors are listed
 * (a claimed 2^31 layers would otherwise exhaust memory).
 */
export function checkLayerCount(nLayers: number, file: SafetensorsFile, key: string, fail: Fail): void {
  if (nLayers > file.tensors.size) fail(`${key} says ${nLayers} layers, but the file holds only ${file.tensors.size} tensors`);
}

/**
 * The safetensors file of `bytes` and its config read from its metadata by
 * `configOf`, which, like the later checks, fails with a FileFormatError
 * naming the file (`fail`).
 */
export function openFile<C>(bytes: Uint8Array, name: string, configOf: (meta: Record<string, string>, fail: Fail) => C): { file: SafetensorsFile; config: C; fail: Fail } {
  const fail: Fail = (problem) => {
    throw new FileFormatError(name, problem);
  };
  const file = parseSafetensors(bytes, name);
  return { file, config: configOf(file.metadata, fail), fail };
}

/**
 * Parses a PTP file of slot tensors: its config from the metadata (see
 * openFile), the layer count and start vector checked against the tensors
 * (`shape(config)`: the layers and width the tensors are for, and the
 * metadata key that says so), `check` if given, then the tensors of
 * `slots(config)` read into `weights`. `kind` names the file's kind in a
 * message about its tensors ("student", "draft model").
 */
export function parseSlotFile<C extends Pick<AuxFields, "variant" | "aux" | "query">, W>(
  bytes: Uint8Array,
  name: string,
  configOf: (meta: Record<string, string>, fail: Fail) => C,
  shape: (config: C) => { nLayers: number; dim: number; key: string },
  kind: string,
  slots: (config: C) => readonly Slot<W>[],
  weights: W,
  check?: (config: C, file: SafetensorsFile, fail: Fail) => void,
): { config: C; weights: W } {
  const { file, config, fail } = openFile(bytes, name, configOf);
  const { nLayers, dim, key } = shape(config);
  checkLayerCount(nLayers, file, key, fail);
  checkStartTensor(config, file, dim, fail);
  check?.(config, file, fail);
  readSlots(file, slots(config), weights, fail, `${config.variant}-PTP ${kind} with aux kind ${config.aux.kind}`);
  return { config, weights };
}

/** How one kind of PTP file is read and written: `what` names the kind in a read error; `names` are the public functions, named in argument errors; `check` validates the value before it is written. */
export interface PtpFileKind<T> {
  what: string;
  names: { read: string; write: string };
  parse(bytes: Uint8Array, name: string): T;
  serialize(value: T): Uint8Array;
  check(value: unknown, where: string): void;
}

/** Synchronous reading (`parse` of the file's bytes) and atomic writing (`serialize`, to a unique temporary file next to the path, then renamed over it) of one kind of PTP file, each checking its arguments first. */
export function ptpFileAccess<T>(kind: PtpFileKind<T>): { read(path: string): T; write(path: string, value: T): void } {
  return {
    read: (path) => {
      checkPath(path, kind.names.read);
      return kind.parse(readFileBytes(path, kind.what), path);
    },
    write: (path, value) => {
      checkPath(path, kind.names.write);
      kind.check(value, kind.names.write);
      writeBytesAtomically(path, kind.serialize(value));
    },
  };
}

/** The config fields both files have. */
export interface AuxFields {
  variant: Variant;
  aux: AuxEmbeddingConfig;
  window: number;
  hybrid?: boolean;
  /** C-PTP with the first slot the model's own AR query (StudentConfig.query); implies hybrid. */
  query?: boolean;
}

/** The weights both files have: the auxiliary embedding and, for C, the start vector. */
export interface AuxWeightsOf {
  aux: AuxEmbeddingWeights;
  start?: Float32Array;
}

/** The metadata strings of `variant`, `aux_kind`, `aux_digits` (digits only), `window` and `slot_input` (hybrid only; not validated). */
export function auxMetadata(config: AuxFields): Record<string, string> {
  const meta: Record<string, string> = {
    variant: String(config.variant),
    aux_kind: String(config.aux?.kind),
    window: String(config.window),
  };
  if (config.aux?.kind === "digits") meta.aux_digits = String(config.aux.digits);
  // Written only for hybrid models, so files of plain students stay byte-identical to before.
  if (config.query) meta.slot_input = "query";
  else if (config.hybrid) meta.slot_input = "hybrid";
  return meta;
}

/** The slot inputs a PTP model file may declare (metadata "slot_input"). */
export type SlotInputKind = "aux" | "hybrid" | "query";

/**
 * Metadata "slot_input": "aux" (u only; the default when absent), "hybrid"
 * (the first slot also embeds the last known token) or "query" (C-PTP only:
 * the first slot is the model's own AR query on that token).
 */
export function parseSlotInput(meta: Record<string, string>, fail: Fail, kinds: readonly SlotInputKind[] = ["aux", "hybrid", "query"]): SlotInputKind {
  const s = meta.slot_input ?? "aux";
  if (!(kinds as readonly string[]).includes(s)) fail(`metadata "slot_input" must be ${kinds.map((k) => `"${k}"`).join(" or ")}, found ${JSON.stringify(s)}`);
  if (s === "query" && meta.variant !== "C") fail(`metadata "slot_input" "query" (the first slot is the model's own AR query) needs variant C, found ${JSON.stringify(meta.variant)}`);
  return s as SlotInputKind;
}

/** The config fields of a slot-input kind. */
export function slotInputFields(kind: SlotInputKind): Pick<AuxFields, "hybrid" | "query"> {
  return kind === "query" ? { hybrid: true, query: true } : kind === "hybrid" ? { hybrid: true } : {};
}

/** The slot-input kind of a config. */
export function slotInputOf(config: Pick<AuxFields, "hybrid" | "query">): SlotInputKind {
  return config.query ? "query" : config.hybrid ? "hybrid" : "aux";
}

/** Whether a model of this config has the learned start vector: C-PTP, unless its first slot is the AR query. */
export function hasStartVector(config: Pick<AuxFields, "variant" | "query">): boolean {
  return config.variant === "C" && config.query !== true;
}

/** Fails unless metadata "format" is `format` (else it is not `what`, e.g. "a PTP draft model") and "format_version" is `version`. */
export function checkFormat(meta: Record<string, string>, format: string, version: string, what: string, fail: Fail): void {
  const found = meta.format;
  if (found === undefined) fail(`not ${what}: metadata "format" is missing (expected "${format}")`);
  if (found !== format) fail(`not ${what}: metadata "format" is ${quote(found)}, expected "${format}"`);
  const v = required(meta, "format_version", fail);
  if (v !== version) fail(`unsupported ${format} format_version ${quote(v)} (this library reads version ${version})`);
}

export function required(meta: Record<string, string>, key: string, fail: Fail): string {
  const v = meta[key];
  if (v === undefined) fail(`metadata "${key}" is missing`);
  return v;
}

/** A positive safe integer of the metadata. */
export function positiveInteger(meta: Record<string, string>, key: string, fail: Fail): number {
  const s = required(meta, key, fail);
  const v = /^[0-9]+$/.test(s) ? Number(s) : NaN;
  if (!Number.isSafeInteger(v) || v <= 0) fail(`metadata "${key}" must be a positive integer, found ${quote(s)}`);
  return v;
}

/**
 * The JSON object of metadata `key` (a model shape), checked to have every
 * field of INT_SHAPE_FIELDS as a positive integer and sharedClassifier as a
 * boolean.
 */
export function parseShapeObject(s: string, key: string, fail: Fail): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = JSON.parse(s);
  } catch {
    return fail(`metadata "${key}" is not valid JSON: ${quote(s)}`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) fail(`metadata "${key}" must be a JSON object, found ${s}`);
  const o = raw as Record<string, unknown>;
  for (const field of INT_SHAPE_FIELDS) {
    const v = o[field];
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) fail(`metadata "${key}" needs ${field} as a positive integer, found ${quote(v)}`);
  }
  if (typeof o.sharedClassifier !== "boolean") fail(`metadata "${key}" needs sharedClassifier as a boolean, found ${quote(o.sharedClassifier)}`);
  return o;
}

/** Fails unless `config` (from metadata `key`) is a valid model shape. */
export function checkModelShape(config: ModelConfig, key: string, fail: Fail): void {
  const problems = configProblems(config);
  if (problems.length > 0) fail(`metadata "${key}" is not a valid model shape: ${problems.join("; ")}`);
}

export function parseVariant(meta: Record<string, string>, fail: Fail): Variant {
  const variant = required(meta, "variant", fail);
  if (variant !== "O" && variant !== "C") fail(`metadata "variant" must be "O" or "C", found ${quote(variant)}`);
  return variant;
}

/** The auxiliary embedding config of `aux_kind` and `aux_digits`. */
export function parseAux(meta: Record<string, string>, fail: Fail): AuxEmbeddingConfig {
  const kind = required(meta, "aux_kind", fail);
  if (!(AUX_KINDS as readonly string[]).includes(kind)) fail(`metadata "aux_kind" must be one of ${AUX_KINDS.join(", ")}, found ${quote(kind)}`);
  if (kind === "digits") {
    const s = required(meta, "aux_digits", fail);
    const digits = /^[0-9]+$/.test(s) ? Number(s) : NaN;
    if (!(digits >= 1 && digits <= MAX_AUX_DIGITS)) fail(`metadata "aux_digits" must be an integer in 1..${MAX_AUX_DIGITS}, found ${quote(s)}`);
    return { kind: "digits", digits };
  }
  if (meta.aux_digits !== undefined) fail(`metadata "aux_digits" is only allowed with aux_kind "digits" (aux_kind is "${kind}")`);
  return { kind: kind as AuxKind };
}

export function parseTeacherChecksum(meta: Record<string, string>, fail: Fail): string {
  const teacherChecksum = required(meta, "teacher_checksum", fail);
  if (teacherChecksum === "") fail(`metadata "teacher_checksum" is empty`);
  return teacherChecksum;
}

/** One tensor of a file: its name, shape and where it lives in the weights W. */
export interface Slot<W> {
  name: string;
  shape: number[];
  get(w: W): Float32Array | undefined;
  set(w: W, a: Float32Array): void;
}

/** The tensors of the auxiliary embedding, then, for C, the start vector (all of width dim). */
export function auxSlots<W extends AuxWeightsOf>(config: Pick<AuxFields, "variant" | "aux" | "query">, dim: number): Slot<W>[] {
  const out: Slot<W>[] = [];
  if (config.aux.kind === "anchors") {
    out.push({ name: "aux.anchors", shape: [3, dim], get: (w) => w.aux?.anchors, set: (w, a) => (w.aux.anchors = a) });
  } else {
    const inputs = config.aux.kind === "bits" ? AUX_BITS : config.aux.digits!;
    out.push({ name: "aux.weight", shape: [dim, inputs], get: (w) => w.aux?.weight, set: (w, a) => (w.aux.weight = a) });
    out.push({ name: "aux.bias", shape: [dim], get: (w) => w.aux?.bias, set: (w, a) => (w.aux.bias = a) });
  }
  if (hasStartVector(config)) out.push({ name: "start", shape: [dim], get: (w) => w.start, set: (w, a) => (w.start = a) });
  return out;
}

export const product = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);
const describeShape = (shape: readonly number[]): string => `[${shape.join(", ")}]`;

/** Fails unless the weights have a start vector exactly for C and exactly the aux arrays of the aux kind (before serialising). */
export function checkAuxWeights(config: Pick<AuxFields, "variant" | "aux" | "query">, w: AuxWeightsOf, fail: Fail): void {
  if (!hasStartVector(config) && w.start !== undefined) fail(`${config.variant === "O" ? "variant O" : "a query-slot C-PTP model"} has no start vector, but weights.start is set`);
  if (config.aux.kind === "anchors" && (w.aux.weight !== undefined || w.aux.bias !== undefined)) fail(`aux kind anchors has no weight or bias, but they are set`);
  if (config.aux.kind !== "anchors" && w.aux.anchors !== undefined) fail(`aux kind ${config.aux.kind} has no anchors, but they are set`);
}

/** Fails unless every slot's array is a Float32Array of the slot's size (shapes only: no pass over the values). */
export function checkSlots<W>(slots: readonly Slot<W>[], w: W, fail: Fail): void {
  for (const slot of slots) {
    const a = slot.get(w);
    if (!(a instanceof Float32Array)) fail(`${slot.name} is missing (expected a Float32Array of shape ${describeShape(slot.shape)})`);
    if (a.length !== product(slot.shape)) fail(`${slot.name} has ${a.length} floats, expected ${product(slot.shape)} for shape ${describeShape(slot.shape)}`);
  }
}

/** The tensors to serialise: every slot's array, which must be a Float32Array of the slot's size (checkSlots). */
export function writeSlots<W>(slots: readonly Slot<W>[], w: W, fail: Fail): Record<string, SafeTensor> {
  checkSlots(slots, w, fail);
  return Object.fromEntries(slots.map((slot) => [slot.name, { dtype: "F32", shape: slot.shape, data: slot.get(w)! }]));
}

/** Fails unless the file has the start vector exactly for C (checked before the other tensors). */
export function checkStartTensor(config: Pick<AuxFields, "variant" | "query">, file: SafetensorsFile, dim: number, fail: Fail): void {
  const has = hasStartVector(config);
  if (!has && file.tensors.has("start")) fail(`${config.variant === "O" ? "variant O" : 'a query-slot C-PTP model (slot_input "query")'} has no start vector, but the file has a tensor "start"`);
  if (has && !file.tensors.has("start")) fail(`variant C needs the start vector, but tensor "start" [${dim}] is missing`);
}

/**
 * Sets every expected tensor of the file into `weights`, failing where one
 * is missing, not F32 or of another shape, then where the file has tensors
 * not expected (`what` completes "not part of a ...").
 */
export function readSlots<W>(file: SafetensorsFile, expected: readonly Slot<W>[], weights: W, fail: Fail, what: string): void {
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
    fail(`unexpected tensor${extra.length > 1 ? "s" : ""} ${shown.join(", ")} (not part of a ${what})`);
  }
}

const CHECKSUM_PREFIX = 12;

/**
 * The optional teacher argument of loadStudent and readPeftStudent:
 * undefined, or { checkpoint, checksum } (the teacher's Checkpoint and its
 * teacherChecksum), no other key (a misspelt one would leave the teacher
 * unused); else a TypeError or RangeError naming `where`.
 */
export function checkTeacherArgument(teacher: unknown, where: string): TeacherIdentity | undefined {
  if (teacher === undefined) return undefined;
  const t = checkObject(teacher, where, "teacher", "{ config, checksum } (the teacher's config and teacherChecksum) or { checkpoint, checksum }");
  checkOptionKeys(t, where, ["config", "checkpoint", "checksum"], "teacher");
  if ((t.checkpoint === undefined) === (t.config === undefined)) throw new TypeError(`${where}: teacher has ${t.config === undefined ? "neither" : "both"} config ${t.config === undefined ? "nor" : "and"} checkpoint; give one ({ config, checksum } or { checkpoint, checksum })`);
  if (t.checkpoint !== undefined) checkCheckpoint(t.checkpoint, where, "teacher.checkpoint");
  else checkTeacherConfig(t.config, where, "teacher.config");
  checkChecksumArgument(t.checksum, `${where}: teacher`);
  return { config: t.checkpoint !== undefined ? (t.checkpoint as Checkpoint).config : (t.config as ModelConfig), checksum: t.checksum };
}

/**
 * The teacher a student or draft file is checked against: its config and
 * teacherChecksum (of its Checkpoint, or of the Transformer loadModel made).
 * `{ checkpoint, checksum }` is accepted wherever this is and means
 * `{ config: checkpoint.config, checksum }`.
 */
export interface TeacherIdentity {
  config: ModelConfig;
  checksum: string;
}

/** A config given as teacher.config: a model config (a Checkpoint's or a Transformer's), else a TypeError/RangeError naming `where`. */
function checkTeacherConfig(config: unknown, where: string, name: string): asserts config is ModelConfig {
  if (config === null || typeof config !== "object") throw new TypeError(`${where}: ${name} must be a model config (a Checkpoint's or a Transformer's .config), got ${describeValue(config)}`);
  validateConfig(config as ModelConfig, where);
}

/** The teacher a match check reads the config of: its Checkpoint, its Transformer or a TeacherIdentity (anything with a valid `config`). */
export function checkTeacherWithConfig(teacher: unknown, where: string): asserts teacher is { config: ModelConfig } {
  if (teacher === null || typeof teacher !== "object") throw new TypeError(`${where}: teacher must be a Checkpoint, a Transformer or { config } (the teacher's config is read), got ${describeValue(teacher)}`);
  checkTeacherConfig((teacher as { config?: unknown }).config, where, "teacher.config");
}

/** A teacher checksum argument (teacherChecksum(teacher)): a non-empty string, else a TypeError naming `where`. */
export function checkChecksumArgument(checksum: unknown, where: string): asserts checksum is string {
  if (typeof checksum !== "string" || checksum === "") throw new TypeError(`${where}: checksum must be the teacher's checksum (teacherChecksum(teacher), a non-empty string), got ${checksum === "" ? "an empty string" : describeValue(checksum)}`);
}

/**
 * Throws an Error unless the file's teacher checksum `theirs` is the
 * model's `checksum`: "<subject> belongs to teacher <theirs> but the model's
 * checksum is <checksum>: load the teacher it was <madeHow>" (checksums
 * shortened to 12 characters, or in full where those 12 are the same, so
 * that the two never read alike).
 */
export function checkTeacherChecksum(subject: string, theirs: string, checksum: string, madeHow: string): void {
  if (theirs !== checksum) {
    const n = theirs.slice(0, CHECKSUM_PREFIX) === checksum.slice(0, CHECKSUM_PREFIX) ? Number.POSITIVE_INFINITY : CHECKSUM_PREFIX;
    // A file's value is anyone's string: quoted unless it is plain letters and digits.
    const shown = (c: string): string => (/^[0-9A-Za-z]*$/.test(c) ? c : JSON.stringify(c));
    throw new Error(`${subject} belongs to teacher ${shown(theirs.slice(0, n))} but the model's checksum is ${shown(checksum.slice(0, n))}: load the teacher it was ${madeHow}`);
  }
}

/**
 * The first weight array of a student or draft (walked in key order) that
 * holds NaN or +-Infinity, as "path[index] = value", or undefined when all
 * are finite. Such a proposer still decodes exactly as AR (its drafts are
 * rejected), but gives no speedup: the commands warn, naming the file.
 */
export function firstNonFiniteWeight(weights: unknown, path = "weights"): string | undefined {
  if (weights instanceof Float32Array) {
    const i = weights.findIndex((x) => !Number.isFinite(x));
    return i < 0 ? undefined : `${path}[${i}] = ${weights[i]}`;
  }
  if (typeof weights !== "object" || weights === null || ArrayBuffer.isView(weights)) return undefined;
  for (const [k, v] of Object.entries(weights)) {
    const found = firstNonFiniteWeight(v, `${path}.${k}`);
    if (found !== undefined) return found;
  }
  return undefined;
}
