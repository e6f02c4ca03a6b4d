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
 * - `start` [dim] for variant C only;
 * - `extra.{e}.rms_att`, `extra.{e}.rms_ffn` [dim] and `extra.{e}.{name}`
 *   [out, in] for every extra block e < extra_blocks (students with extra
 *   blocks only);
 * - `feedback` [vocab, dim] for students with pick feedback.
 *
 * Metadata (strings): `format` = "ptp-student", `format_version` = "1",
 * `variant` ("O" | "C"), `rank`, `alpha`, `aux_kind`, `aux_digits` (digits
 * only), `window`, `slot_input` ("hybrid" for hybrid students; absent
 * otherwise), `teacher_checksum` (teacherChecksum of the teacher) and
 * `teacher_shape` (JSON of the teacher's shape, keys in ModelConfig order),
 * `extra_blocks` (students with extra blocks only), `pick_feedback`
 * ("first" | "chain", students with pick feedback only), `draft_head`
 * ("true", draft-head students only: their slot rows skip the teacher's
 * layers).
 *
 * Serialisation is deterministic, so parse then serialise reproduces a
 * file written here byte for byte.
 */
import { SHAPE_FIELDS, type ModelConfig } from "../../model/config.js";
import { LINEAR_NAMES, linearShape, type LayerWeights, type LinearName } from "../../model/weights.js";
import { quote } from "../../io/errors.js";
import { describeValue } from "../../util/checks.js";
import { serializeSafetensors } from "../../io/safetensors.js";
import { checkOptionKeys } from "../../util/options.js";
import { auxMetadata, auxSlots, checkAuxWeights, checkChecksumArgument, checkFormat, checkModelShape, checkSlots, checkTeacherChecksum, checkTeacherWithConfig, fieldFail, parseSlotFile, ptpFileAccess } from "./ptp-file-parts.js";
import { parseAux, parseShapeObject, parseSlotInput, slotInputFields, parseTeacherChecksum, parseVariant, plainFail, required, writeSlots, type Fail, type Slot } from "./ptp-file-parts.js";
import { checkStudent, MAX_ALPHA, MIN_ALPHA, PICK_FEEDBACK_KINDS, type LayerLora, type PickFeedbackKind, type Student, type StudentConfig, type StudentWeights } from "../student-weights.js";

export const STUDENT_FORMAT = "ptp-student";
export const STUDENT_FORMAT_VERSION = "1";
/** The most extra blocks a student may declare (a sanity bound: each is a whole teacher layer). */
export const MAX_EXTRA_BLOCKS = 64;
export { AUX_BITS, MAX_AUX_DIGITS } from "./ptp-file-parts.js";

type TeacherShape = StudentConfig["teacherShape"];

/** The teacher shape of a model config, with its keys in canonical order. */
export function teacherShapeOf(c: Pick<ModelConfig, (typeof SHAPE_FIELDS)[number]>): TeacherShape {
  if (c === null || typeof c !== "object") throw new TypeError(`teacherShapeOf: the config must be a ModelConfig object { ${SHAPE_FIELDS.join(", ")}, ... }, got ${describeValue(c)}`);
  // A shape of undefined fields was recorded as a student's teacher shape, which no teacher then matched.
  for (const key of SHAPE_FIELDS) {
    const v: unknown = c[key];
    const ok = key === "sharedClassifier" ? typeof v === "boolean" : typeof v === "number" && Number.isInteger(v) && v > 0;
    if (!ok) throw new TypeError(`teacherShapeOf: the config's ${key} must be ${key === "sharedClassifier" ? "a boolean" : "a positive integer"}, got ${describeValue(v)}`);
  }
  return Object.fromEntries(SHAPE_FIELDS.map((k) => [k, c[k]])) as TeacherShape;
}

/** The metadata strings of a student config (not validated; see configFromMetadata). */
export function studentMetadata(config: StudentConfig): Record<string, string> {
  return {
    format: STUDENT_FORMAT,
    format_version: STUDENT_FORMAT_VERSION,
    ...auxMetadata(config),
    rank: String(config.rank),
    alpha: String(config.alpha),
    teacher_checksum: String(config.teacherChecksum),
    teacher_shape: JSON.stringify(config.teacherShape ? teacherShapeOf(config.teacherShape) : null),
    // Written only for students that have them, so other files stay byte-identical to before.
    ...(config.extraBlocks ? { extra_blocks: String(config.extraBlocks) } : {}),
    ...(config.pickFeedback ? { pick_feedback: config.pickFeedback } : {}),
    ...(config.draftHead ? { draft_head: "true" } : {}),
  };
}

function positiveNumber(meta: Record<string, string>, key: string, integer: boolean, fail: Fail): number {
  const s = required(meta, key, fail);
  // Decimal only (Number() alone would take "0x10" or " 5").
  const v = integer ? (/^[0-9]+$/.test(s) ? Number(s) : NaN) : /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s) ? Number(s) : NaN;
  if (!Number.isFinite(v) || v <= 0 || (integer && !Number.isInteger(v))) {
    fail(`metadata "${key}" must be a positive ${integer ? "integer" : "number"}, found ${quote(s)}`);
  }
  return v;
}

function parseTeacherShape(s: string, fail: Fail): TeacherShape {
  const shape = teacherShapeOf(parseShapeObject(s, "teacher_shape", fail) as unknown as TeacherShape);
  checkModelShape({ ...shape, normEps: 1e-5, ropeTheta: 10000 }, "teacher_shape", fail);
  return shape;
}

/** Reads and validates a student config from file metadata. */
export function studentConfigFromMetadata(meta: Record<string, string>, fail: Fail): StudentConfig {
  checkFormat(meta, STUDENT_FORMAT, STUDENT_FORMAT_VERSION, "a PTP student adapter", fail);
  const variant = parseVariant(meta, fail);
  const rank = positiveNumber(meta, "rank", true, fail);
  const alpha = positiveNumber(meta, "alpha", false, fail);
  if (alpha < MIN_ALPHA || alpha > MAX_ALPHA) fail(`metadata "alpha" is ${alpha}, outside [${MIN_ALPHA}, ${MAX_ALPHA}] (the LoRA scale alpha / rank would leave float32's range or vanish)`);
  const window = positiveNumber(meta, "window", true, fail);
  const aux = parseAux(meta, fail);
  const teacherChecksum = parseTeacherChecksum(meta, fail);
  const teacherShape = parseTeacherShape(required(meta, "teacher_shape", fail), fail);
  if (window > teacherShape.seqLen) fail(`metadata "window" is ${window}, more than the teacher's seqLen ${teacherShape.seqLen} (teacher_shape)`);
  const config: StudentConfig = { variant, rank, alpha, aux, window, teacherShape, teacherChecksum };
  Object.assign(config, slotInputFields(parseSlotInput(meta, fail)));
  if (meta.extra_blocks !== undefined) {
    const extraBlocks = positiveNumber(meta, "extra_blocks", true, fail);
    if (extraBlocks > MAX_EXTRA_BLOCKS) fail(`metadata "extra_blocks" is ${extraBlocks}; at most ${MAX_EXTRA_BLOCKS} are supported`);
    config.extraBlocks = extraBlocks;
  }
  if (meta.pick_feedback !== undefined) {
    // "true" is how the first files (eleventh session) wrote "first".
    const kind = meta.pick_feedback === "true" ? "first" : (PICK_FEEDBACK_KINDS as readonly string[]).includes(meta.pick_feedback) ? (meta.pick_feedback as PickFeedbackKind) : undefined;
    if (kind === undefined) fail(`metadata "pick_feedback" must be one of ${PICK_FEEDBACK_KINDS.map((k) => `"${k}"`).join(", ")} when present, found ${quote(meta.pick_feedback)}`);
    if (!config.query) fail(`metadata "pick_feedback" needs slot_input "query" (only a query student's first pick is known inside the call)`);
    if (!config.extraBlocks) fail(`metadata "pick_feedback" needs "extra_blocks" (the pick is read after the teacher's layers, by the extra blocks)`);
    config.pickFeedback = kind;
  }
  if (meta.draft_head !== undefined) {
    if (meta.draft_head !== "true") fail(`metadata "draft_head" must be "true" when present, found ${quote(meta.draft_head)}`);
    if (config.pickFeedback !== "chain") fail(`metadata "draft_head" needs pick_feedback "chain" (a draft head's slot row reads the token before it, as it skips the teacher's layers)`);
    config.draftHead = true;
  }
  return config;
}

/** The tensors a student of this config has, layers first (the order randomStudent fills them). */
export function studentSlots(config: StudentConfig): Slot<StudentWeights>[] {
  const t = config.teacherShape;
  const r = config.rank;
  const out: Slot<StudentWeights>[] = [];
  for (let l = 0; l < t.nLayers; l++) {
    for (const lin of LINEAR_NAMES) {
      const [o, i] = linearShape(t, lin);
      const pair = (w: StudentWeights) => w.layers[l]?.[lin];
      out.push({
        name: `layers.${l}.${lin}.lora_A`,
        shape: [r, i],
        get: (w) => pair(w)?.A,
        set: (w, a) => (ensurePair(w, l, lin).A = a),
      });
      out.push({
        name: `layers.${l}.${lin}.lora_B`,
        shape: [o, r],
        get: (w) => pair(w)?.B,
        set: (w, a) => (ensurePair(w, l, lin).B = a),
      });
    }
  }
  out.push(...auxSlots<StudentWeights>(config, t.dim));
  for (let e = 0; e < (config.extraBlocks ?? 0); e++) {
    const block = (w: StudentWeights) => w.extra?.[e];
    const tensor = (name: string, key: keyof LayerWeights, shape: number[]): Slot<StudentWeights> => ({
      name: `extra.${e}.${name}`,
      shape,
      get: (w) => block(w)?.[key],
      set: (w, a) => (ensureExtra(w, e)[key] = a),
    });
    out.push(tensor("rms_att", "rmsAtt", [t.dim]), tensor("rms_ffn", "rmsFfn", [t.dim]));
    for (const lin of LINEAR_NAMES) out.push(tensor(lin, lin, linearShape(t, lin)));
  }
  if (config.pickFeedback) out.push({ name: "feedback", shape: [t.vocabSize, t.dim], get: (w) => w.feedback, set: (w, a) => (w.feedback = a) });
  return out;
}

function ensureExtra(w: StudentWeights, e: number): LayerWeights {
  w.extra ??= [];
  while (w.extra.length <= e) w.extra.push({} as LayerWeights);
  return w.extra[e];
}

function ensurePair(w: StudentWeights, l: number, lin: LinearName): { A: Float32Array; B: Float32Array } {
  while (w.layers.length <= l) w.layers.push({} as LayerLora);
  const layer = w.layers[l];
  if (!layer[lin]) layer[lin] = { A: new Float32Array(0), B: new Float32Array(0) };
  return layer[lin];
}

/**
 * The type of every StudentConfig field ("?": it may be absent). Checked
 * before the metadata checks, which read the fields' strings: String()
 * would pass a rank "2", a hybrid "yes" or a variant ["O"].
 */
const STUDENT_CONFIG_TYPES: Readonly<Record<keyof StudentConfig, string>> = {
  variant: "string",
  rank: "number",
  alpha: "number",
  aux: "object",
  window: "number",
  hybrid: "boolean?",
  query: "boolean?",
  extraBlocks: "number?",
  pickFeedback: "string?",
  draftHead: "boolean?",
  teacherShape: "object",
  teacherChecksum: "string",
};

/** The config field behind each metadata key of a student file, for problems with a student given in code (fieldFail). */
const STUDENT_CONFIG_FIELDS: Readonly<Record<string, string>> = {
  variant: "config.variant",
  rank: "config.rank",
  alpha: "config.alpha",
  window: "config.window",
  aux_kind: "config.aux.kind",
  aux_digits: "config.aux.digits",
  slot_input: "config.query",
  teacher_checksum: "config.teacherChecksum",
  teacher_shape: "config.teacherShape",
  extra_blocks: "config.extraBlocks",
  pick_feedback: "config.pickFeedback",
  draft_head: "config.draftHead",
};

/** Throws a TypeError "`prefix`: `path`.key must be ..." for the first field of `o` not of its type in `types` ("?": optional). */
function checkFieldTypes(o: Record<string, unknown>, types: Readonly<Record<string, string>>, prefix: string, path: string): void {
  for (const [key, type] of Object.entries(types)) {
    const optional = type.endsWith("?"),
      want = optional ? type.slice(0, -1) : type,
      v = o[key];
    if ((v === undefined && optional) || (typeof v === want && v !== null && !Array.isArray(v))) continue;
    throw new TypeError(`${prefix}: ${path}.${key} must be ${want === "object" ? "an object" : `a ${want}`}${optional ? " when given" : ""}, got ${describeValue(v)}`);
  }
}

/**
 * The one check of a student given in code (serializeStudent, PtpModel):
 * its config's field types and keys, then the checks a file's metadata
 * gets (studentConfigFromMetadata: ranges, the teacher shape, which fields
 * go together), then its weights against the tensors that config has, each
 * a Float32Array of its size. Shapes only, no pass over the values. Returns
 * the config as a file would give it. Problems start with `where`; with
 * `fields` they read "`where`: invalid student: config.rank ..." (RangeError
 * or TypeError), else as serializeStudent words them (metadata "rank", a
 * plain Error).
 */
export function checkStudentData(student: unknown, where: string, fields = false): StudentConfig {
  checkStudent(student, where);
  const prefix = fields ? `${where}: invalid student` : where;
  const fail = fields ? fieldFail(prefix, STUDENT_CONFIG_FIELDS) : plainFail(prefix);
  const c = checkOptionKeys(student.config, prefix, Object.keys(STUDENT_CONFIG_TYPES), "config");
  checkFieldTypes(c, STUDENT_CONFIG_TYPES, prefix, "config");
  checkFieldTypes(checkOptionKeys(c.aux, prefix, ["kind", "digits"], "config.aux"), { kind: "string", digits: "number?" }, prefix, "config.aux");
  const w = student.weights as Partial<StudentWeights>;
  checkFieldTypes(w, { aux: "object" }, prefix, "weights");
  if (!Array.isArray(w.layers)) throw new TypeError(`${prefix}: weights.layers must be an array (a LayerLora per teacher layer), got ${describeValue(w.layers)}`);
  if (w.extra !== undefined && !Array.isArray(w.extra)) throw new TypeError(`${prefix}: weights.extra must be an array of extra blocks when given, got ${describeValue(w.extra)}`);
  const config = studentConfigFromMetadata(studentMetadata(student.config), fail);
  if (w.layers.length !== config.teacherShape.nLayers) {
    fail(`the teacher has ${config.teacherShape.nLayers} layers but the weights have ${w.layers.length}`);
  }
  checkAuxWeights(config, w as StudentWeights, fail);
  if ((w.extra?.length ?? 0) !== (config.extraBlocks ?? 0)) fail(`the config has ${config.extraBlocks ?? 0} extra blocks but the weights have ${w.extra?.length ?? 0}`);
  if (w.feedback !== undefined && !config.pickFeedback) fail("the weights have a pick-feedback table but the config has no pick feedback");
  checkSlots(studentSlots(config), w as StudentWeights, fail);
  return config;
}

/**
 * The safetensors bytes of a student. Throws a plain Error when the config
 * is invalid or an array is missing, superfluous or of the wrong length, a
 * TypeError when a config field has the wrong type (checkStudentData).
 */
export function serializeStudent(student: Student): Uint8Array {
  const config = checkStudentData(student, "serializeStudent");
  return serializeSafetensors(writeSlots(studentSlots(config), student.weights, plainFail("serializeStudent")), studentMetadata(student.config));
}

/**
 * Parses a student adapter file. `name` (usually the path) starts every
 * error message. Throws FileFormatError when the file is not safetensors,
 * not a ptp-student file, has an unsupported version or invalid metadata,
 * or its tensors are not exactly the expected F32 tensors with the
 * expected shapes.
 */
export function parseStudent(bytes: Uint8Array, name: string): Student {
  const weights: StudentWeights = { layers: [], aux: {} };
  return parseSlotFile(bytes, name, studentConfigFromMetadata, (c) => ({ ...c.teacherShape, key: "teacher_shape" }), "student", studentSlots, weights);
}

const studentFile = ptpFileAccess({ what: "a PTP student adapter (safetensors)", names: { read: "readStudent", write: "writeStudent" }, parse: parseStudent, serialize: serializeStudent, check: checkStudent });

/** Reads a student adapter file synchronously (see parseStudent). */
export const readStudent: (path: string) => Student = studentFile.read;
/** Writes a student adapter atomically: to a unique temporary file next to `path`, then renamed over it. */
export const writeStudent: (path: string, student: Student) => void = studentFile.write;

/**
 * Throws an Error unless the student was made for this teacher: first the
 * shape (every differing field listed, e.g. "adapter x.safetensors was made
 * for a teacher with dim 288, nLayers 6 but the model has dim 64, nLayers
 * 5"), then the checksum (`checksum` = teacherChecksum(teacher)). `where`
 * names the adapter, usually its path; messages start "adapter <where>".
 * `teacher` is anything with the teacher's config: its Checkpoint, its
 * Transformer (loadModel) or a TeacherIdentity; only the config is read.
 */
export function checkStudentMatchesTeacher(student: Student, teacher: { config: ModelConfig }, checksum: string, where: string): void {
  checkStudent(student, "checkStudentMatchesTeacher");
  checkTeacherWithConfig(teacher, "checkStudentMatchesTeacher");
  checkChecksumArgument(checksum, "checkStudentMatchesTeacher");
  if (typeof where !== "string") throw new TypeError(`checkStudentMatchesTeacher: where must be a string naming the adapter (usually its path), got ${describeValue(where)}`);
  const want = student.config.teacherShape;
  const have = teacher.config;
  const differing = SHAPE_FIELDS.filter((k) => want[k] !== have[k]);
  if (differing.length > 0) {
    const list = (s: Pick<ModelConfig, (typeof SHAPE_FIELDS)[number]>): string => differing.map((k) => `${k} ${s[k]}`).join(", ");
    throw new Error(`adapter ${where} was made for a teacher with ${list(want)} but the model has ${list(have)}`);
  }
  checkTeacherChecksum(`adapter ${where}`, student.config.teacherChecksum, checksum, "trained for");
}
