/**
 * PTP students as PEFT LoRA folders (adapter_config.json +
 * adapter_model.safetensors), both ways; see spec/io.md "PEFT folders".
 *
 * Writing: LoRA pairs under PEFT's names for a LlamaForCausalLM,
 * `base_model.model.model.layers.{l}.self_attn.q_proj.lora_A.weight`
 * [r, in] and `.lora_B.weight` [out, r] (q_proj, k_proj, v_proj, o_proj,
 * mlp.gate_proj, mlp.up_proj, mlp.down_proj); the rows of q_proj's and
 * k_proj's B permuted into HF's half-split RoPE order, as the teacher's q/k
 * weights are in an HF checkpoint. The auxiliary embedding under the
 * reference code's module names (`u_embed.embedding.weight` [3, dim] for the
 * 3-anchor linear interpolation, `u_embed.u_adapter.weight` [dim, 32] and
 * `.bias` for the binary float embedding) or, for kinds the reference code
 * does not have, `ptp.u_embed.digits.weight` / `.bias`; C-PTP's start
 * vector as `ptp.start`. The PTP settings (variant, aux kind, window, gate,
 * teacher checksum and shape) go into adapter_config.json under "ptp" and,
 * as the same JSON, into the U8 tensor `ptp.config`.
 *
 * Reading accepts those folders and the ones the reference code produces:
 * LoRA keys with PEFT's adapter name (`.lora_A.default.weight`) and
 * Lightning prefixes (`model.model.base_model...`, `student.model...`),
 * u-embedding keys `[model.]u_embed.*` or the older `u_adapter.*`, and no
 * PTP settings (then variant O and window 16, the reference's
 * train_completion_len, unless the caller says otherwise, and the teacher
 * must be given to fill in its shape and checksum). Linear layers that
 * target_modules leaves out get zero LoRA weights (no change, exactly).
 * The LoRA scale is lora_alpha / r; rsLoRA, DoRA, LoRA biases, per-module
 * ranks or alphas, modules_to_save and fan_in_fan_out are refused by name.
 */
import { checkTeacherArgument, hasStartVector, type TeacherIdentity } from "./ptp-file-parts.js";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { makeFolders, writeBytesAtomically, writeFolderAtomically } from "../../io/atomic-write.js";
import { checkPath, FileFormatError, MAX_FILE_BYTES, quote, readJsonFile } from "../../io/errors.js";
import { checkInteger, describeValue } from "../../util/checks.js";
import { checkOptionKeys, isPlainObject } from "../../util/options.js";
import { HF_LINEAR_MODULES, permuteRowsFromHf, permuteRowsToHf } from "../../io/hf-checkpoint.js";
import { readSafetensors, serializeSafetensors, type SafeTensor } from "../../io/safetensors.js";
import { headSize, boundedConfigProblems, type ModelConfig } from "../../model/config.js";
import { LINEAR_NAMES, linearShape, type Checkpoint, type LinearName } from "../../model/weights.js";
import { parseStudent, serializeStudent, teacherShapeOf } from "./adapter-file.js";
import { checkStudent, DEFAULT_ALPHA, MAX_ALPHA, MIN_ALPHA, type AuxEmbeddingConfig, type LayerLora, type Student, type StudentConfig, type StudentWeights, type Variant } from "../student-weights.js";

export const PEFT_CONFIG = "adapter_config.json";
export const PEFT_WEIGHTS = "adapter_model.safetensors";
export const PEFT_PTP_FORMAT = "ptp-student-peft";
export const PEFT_PTP_VERSION = "1";
/** The gate of our students: LoRA applies to the auxiliary-slot rows only. */
export const PTP_GATE = "auxiliary-slots";
/** Window assumed for a reference-code folder without PTP settings (its train_completion_len). */
export const REFERENCE_DEFAULT_WINDOW = 16;

const PREFIX = "base_model.model.model.layers.";
const U_ANCHORS = "u_embed.embedding.weight";
const U_BITS_WEIGHT = "u_embed.u_adapter.weight";
const U_BITS_BIAS = "u_embed.u_adapter.bias";
const U_DIGITS_WEIGHT = "ptp.u_embed.digits.weight";
const U_DIGITS_BIAS = "ptp.u_embed.digits.bias";
const START = "ptp.start";
const CONFIG_TENSOR = "ptp.config";

/** PEFT's target module name of each linear layer (the last part of its HF module path). */
const TARGET: Readonly<Record<LinearName, string>> = Object.fromEntries(LINEAR_NAMES.map((n) => [n, HF_LINEAR_MODULES[n].split(".").pop()!])) as Record<LinearName, string>;

/** The "ptp" object of adapter_config.json. */
export interface PeftPtpSettings {
  format: string;
  format_version: string;
  variant: Variant;
  aux_kind: AuxEmbeddingConfig["kind"];
  aux_digits?: number;
  window: number;
  /** "hybrid" when the first slot also embeds the last known token (StudentConfig.hybrid); absent otherwise. */
  slot_input?: "hybrid" | "query";
  gate: string;
  teacher_checksum: string;
  teacher_shape: StudentConfig["teacherShape"];
}

function ptpSettings(c: StudentConfig): PeftPtpSettings {
  return {
    format: PEFT_PTP_FORMAT,
    format_version: PEFT_PTP_VERSION,
    variant: c.variant,
    aux_kind: c.aux.kind,
    ...(c.aux.kind === "digits" ? { aux_digits: c.aux.digits } : {}),
    window: c.window,
    ...(c.query ? { slot_input: "query" as const } : c.hybrid ? { slot_input: "hybrid" as const } : {}),
    gate: PTP_GATE,
    teacher_checksum: c.teacherChecksum,
    teacher_shape: teacherShapeOf(c.teacherShape),
  };
}

/** B's rows in HF order for q_proj / k_proj (and unchanged otherwise); `toHf` false undoes it. */
function permuteB(B: Float32Array, name: LinearName, t: Pick<ModelConfig, "dim" | "nHeads" | "nKvHeads">, rank: number, toHf: boolean): Float32Array {
  if (name !== "wq" && name !== "wk") return B;
  const heads = name === "wq" ? t.nHeads : t.nKvHeads;
  const hs = t.dim / t.nHeads;
  return toHf ? permuteRowsToHf(B, heads, hs, rank) : permuteRowsFromHf(B, heads, hs, rank);
}

/** The tensors and adapter_config.json of a student as a PEFT folder. */
export function studentToPeft(student: Student, options: { baseModel?: string } = {}): { tensors: Record<string, SafeTensor>; config: Record<string, unknown> } {
  checkWriteOptions(student, options, "studentToPeft");
  serializeStudent(student); // validates config and arrays (throws a plain Error naming the problem)
  const c = student.config;
  if (c.extraBlocks) throw new Error(`studentToPeft: the student has ${c.extraBlocks} extra blocks, which a PEFT LoRA folder cannot hold (keep it as a ptp adapter file)`);
  const t = c.teacherShape;
  const w = student.weights;
  const tensors: Record<string, SafeTensor> = {};
  w.layers.forEach((layer, l) => {
    for (const name of LINEAR_NAMES) {
      const [out, inp] = linearShape(t, name);
      const base = `${PREFIX}${l}.${HF_LINEAR_MODULES[name]}`;
      tensors[`${base}.lora_A.weight`] = { dtype: "F32", shape: [c.rank, inp], data: layer[name].A };
      tensors[`${base}.lora_B.weight`] = { dtype: "F32", shape: [out, c.rank], data: permuteB(layer[name].B, name, t, c.rank, true) };
    }
  });
  if (c.aux.kind === "anchors") tensors[U_ANCHORS] = { dtype: "F32", shape: [3, t.dim], data: w.aux.anchors! };
  else if (c.aux.kind === "bits") {
    tensors[U_BITS_WEIGHT] = { dtype: "F32", shape: [t.dim, 32], data: w.aux.weight! };
    tensors[U_BITS_BIAS] = { dtype: "F32", shape: [t.dim], data: w.aux.bias! };
  } else {
    tensors[U_DIGITS_WEIGHT] = { dtype: "F32", shape: [t.dim, c.aux.digits!], data: w.aux.weight! };
    tensors[U_DIGITS_BIAS] = { dtype: "F32", shape: [t.dim], data: w.aux.bias! };
  }
  if (hasStartVector(c)) tensors[START] = { dtype: "F32", shape: [t.dim], data: w.start! };
  const ptp = ptpSettings(c);
  const json = new TextEncoder().encode(JSON.stringify(ptp));
  tensors[CONFIG_TENSOR] = { dtype: "U8", shape: [json.length], data: json };
  const config = {
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    base_model_name_or_path: options.baseModel ?? null,
    r: c.rank,
    lora_alpha: c.alpha,
    lora_dropout: 0,
    target_modules: LINEAR_NAMES.map((n) => TARGET[n]),
    bias: "none",
    fan_in_fan_out: false,
    use_rslora: false,
    use_dora: false,
    modules_to_save: null,
    layers_to_transform: null,
    rank_pattern: {},
    alpha_pattern: {},
    inference_mode: true,
    ptp,
  };
  return { tensors, config };
}

/**
 * Writes a student as a PEFT folder (it and its parents created if needed)
 * in one step (writeFolderAtomically): a failure leaves the folder as it
 * was. Other files in an existing folder are kept. Returns the paths
 * written.
 */
export function writePeftStudent(dir: string, student: Student, options: { baseModel?: string } = {}): string[] {
  checkPath(dir, "writePeftStudent", "dir");
  checkWriteOptions(student, options, "writePeftStudent");
  const { tensors, config } = studentToPeft(student, options);
  const weights = serializeSafetensors(tensors, { format: "pt" });
  makeFolders(dirname(resolve(dir)));
  // One folder write: a failure leaves neither new weights beside an old config nor the reverse.
  return writeFolderAtomically(dir, (tmp) => {
    writeBytesAtomically(join(tmp, PEFT_WEIGHTS), weights);
    writeBytesAtomically(join(tmp, PEFT_CONFIG), new TextEncoder().encode(JSON.stringify(config, null, 2) + "\n"));
    return [join(tmp, PEFT_WEIGHTS), join(tmp, PEFT_CONFIG)];
  });
}

/** The student and options of studentToPeft and writePeftStudent: a Student, and { baseModel?: string }. */
function checkWriteOptions(student: unknown, options: unknown, where: string): void {
  checkStudent(student, where);
  const { baseModel } = checkOptionKeys(options, where, ["baseModel"]);
  if (baseModel !== undefined && typeof baseModel !== "string") throw new TypeError(`${where}: baseModel must be a string (the base model's name or path, for adapter_config.json), got ${describeValue(baseModel)}`);
}

/** True when `dir` looks like a PEFT adapter folder. */
export function isPeftFolder(dir: string): boolean {
  checkPath(dir, "isPeftFolder", "dir");
  return existsSync(join(dir, PEFT_CONFIG));
}

export interface ReadPeftOptions {
  /** The teacher, needed when the folder has no PTP settings (a reference-code folder): its config and checksum (or { checkpoint, checksum }). */
  teacher?: TeacherIdentity | { checkpoint: Checkpoint; checksum: string };
  /** For folders without PTP settings: the variant (default O) and window (default 16). */
  variant?: Variant;
  window?: number;
}

/** The canonical name of a tensor key: Lightning prefixes and PEFT's adapter name removed, u_adapter renamed. */
function canonicalKey(key: string): string {
  let k = key;
  const base = k.indexOf("base_model.model.");
  if (base > 0) k = k.slice(base);
  k = k.replace(/\.lora_([AB])\.default\.weight$/, ".lora_$1.weight");
  const u = k.search(/(^|\.)u_(embed|adapter)\./);
  if (u >= 0 && !k.startsWith("ptp.")) {
    k = k.slice(u === 0 ? 0 : u + 1);
    if (k.startsWith("u_adapter.")) k = "u_embed." + k.slice("u_adapter.".length);
  }
  return k;
}

/**
 * Reads a PEFT folder as a student (see the module comment). Throws
 * FileFormatError naming the offending file for unsupported settings,
 * unknown, missing or mis-shaped tensors, and a student that does not
 * fit the teacher given.
 */
/** How readPeftStudent's error begins for a reference-code folder read without its teacher (`ptp inspect` adds the flag that gives one). */
export const NEEDS_TEACHER = 'has no "ptp" settings (a reference-code folder)';

export function readPeftStudent(dir: string, options: ReadPeftOptions = {}): Student {
  checkPath(dir, "readPeftStudent", "dir");
  const { teacher: given, variant: askedVariant, window: askedWindow } = checkOptionKeys(options, "readPeftStudent", ["teacher", "variant", "window"]);
  const teacher = checkTeacherArgument(given, "readPeftStudent");
  // Checked whether or not the folder's own settings make them moot: a bad one is the caller's mistake either way.
  if (askedVariant !== undefined && askedVariant !== "O" && askedVariant !== "C") throw new RangeError(`readPeftStudent: variant must be "O" or "C", got ${describeValue(askedVariant)}`);
  if (askedWindow !== undefined) checkInteger(askedWindow, "readPeftStudent", "window", 1);
  const cfgPath = join(dir, PEFT_CONFIG);
  const wPath = join(dir, PEFT_WEIGHTS);
  // A regular file of bounded size, read as UTF-8 JSON (a FIFO or /dev/zero is refused, never read).
  const raw: unknown = readJsonFile(cfgPath, "a PEFT adapter_config.json");

  const cfgFail = (problem: string): never => {
    throw new FileFormatError(cfgPath, problem);
  };
  if (!isPlainObject(raw)) return cfgFail(`expected a JSON object`);
  const j = raw;
  if (j.peft_type !== undefined && j.peft_type !== "LORA") cfgFail(`peft_type ${quote(j.peft_type)} is not supported (expected "LORA")`);
  const refuse = (key: string, ok: (v: unknown) => boolean, why: string): void => {
    if (key in j && !ok(j[key])) cfgFail(`"${key}": ${quote(j[key])} is not supported (${why})`);
  };
  const empty = (v: unknown) => v === null || (isPlainObject(v) && Object.keys(v).length === 0);
  refuse("use_rslora", (v) => v === false, "the LoRA scale is lora_alpha / r");
  refuse("use_dora", (v) => v === false, "DoRA is not implemented");
  refuse("bias", (v) => v === "none", 'LoRA biases are not implemented; expected "none"');
  refuse("fan_in_fan_out", (v) => v === false, "expected false for Llama's nn.Linear layers");
  refuse("rank_pattern", empty, "one rank for every module");
  refuse("alpha_pattern", empty, "one alpha for every module");
  refuse("modules_to_save", (v) => v === null || (Array.isArray(v) && v.length === 0), "the teacher's own weights must stay unchanged");
  refuse("task_type", (v) => v === null || v === "CAUSAL_LM", 'a PTP student adapts a causal language model; expected "CAUSAL_LM"');
  refuse("lora_dropout", (v) => v === null || (typeof v === "number" && v >= 0 && v < 1), "expected a number in [0, 1); dropout acts in training only");
  refuse("base_model_name_or_path", (v) => v === null || typeof v === "string", "expected the base model's name or path, a string, or null");
  refuse("inference_mode", (v) => v === null || typeof v === "boolean", "expected true or false");
  const r = j.r;
  if (typeof r !== "number" || !Number.isInteger(r) || r <= 0) return cfgFail(`"r" must be a positive integer, found ${quote(r)}`);
  const rank: number = r;
  const alpha = j.lora_alpha ?? DEFAULT_ALPHA;
  if (typeof alpha !== "number" || !(alpha >= MIN_ALPHA && alpha <= MAX_ALPHA)) cfgFail(`"lora_alpha" must be a number in [${MIN_ALPHA}, ${MAX_ALPHA}], found ${quote(alpha)} (the LoRA scale lora_alpha / r would leave float32's range or vanish)`);
  const targets = j.target_modules;
  let targeted: Set<LinearName>;
  if (targets === "all-linear") targeted = new Set(LINEAR_NAMES);
  else if (Array.isArray(targets) && targets.every((x) => typeof x === "string")) {
    const names = new Map(LINEAR_NAMES.map((n) => [TARGET[n], n]));
    const unknown = targets.filter((x) => !names.has(x));
    if (unknown.length > 0) cfgFail(`target_modules ${JSON.stringify(unknown)} are not linear layers of a Llama block (expected some of ${JSON.stringify(Object.values(TARGET))})`);
    if (targets.length === 0) cfgFail(`"target_modules" is empty: a LoRA adapter names at least one module (PEFT refuses an empty list too)`);
    targeted = new Set(targets.map((x) => names.get(x)!));
  } else return cfgFail(`"target_modules" must be a list of module names or "all-linear", found ${quote(targets)}`);

  // PTP settings: ours, or defaults for a reference-code folder.
  const settings = isPlainObject(j.ptp) ? (j.ptp as unknown as PeftPtpSettings) : undefined;
  if (settings && settings.format !== PEFT_PTP_FORMAT) cfgFail(`"ptp.format" must be "${PEFT_PTP_FORMAT}", found ${quote(settings.format)}`);
  if (settings && settings.gate !== PTP_GATE) cfgFail(`"ptp.gate" ${quote(settings.gate)} is not supported (expected "${PTP_GATE}")`);
  if (!settings && !teacher) cfgFail(`${NEEDS_TEACHER}: load it with its teacher model, which gives the teacher's shape`);
  if (settings && settings.format_version !== PEFT_PTP_VERSION) cfgFail(`"ptp.format_version" must be "${PEFT_PTP_VERSION}", found ${quote(settings.format_version)}`);
  if (settings && !(typeof settings.teacher_checksum === "string" && /^[0-9a-f]+$/.test(settings.teacher_checksum))) cfgFail(`"ptp.teacher_checksum" must be the teacher's checksum (a hex string), found ${quote(settings.teacher_checksum)}`);
  // The settings that name the student's tensors and messages, before they are used (the rest, ranges included, is checked with the student).
  if (settings && settings.variant !== "O" && settings.variant !== "C") cfgFail(`"ptp.variant" must be "O" or "C", found ${quote(settings.variant)}`);
  if (settings && !(["bits", "digits", "anchors"] as unknown[]).includes(settings.aux_kind)) cfgFail(`"ptp.aux_kind" must be "bits", "digits" or "anchors", found ${quote(settings.aux_kind)}`);
  if (settings && !(Number.isSafeInteger(settings.window) && settings.window > 0)) cfgFail(`"ptp.window" must be a positive integer, found ${quote(settings.window)}`);
  if (settings?.aux_kind === "digits" && !Number.isSafeInteger(settings.aux_digits)) cfgFail(`"ptp.aux_digits" must be an integer, found ${quote(settings.aux_digits)}`);

  const file = readSafetensors(wPath);
  const fail = (problem: string): never => {
    throw new FileFormatError(wPath, problem);
  };
  const tensors = new Map<string, SafeTensor>();
  for (const [key, t] of file.tensors) {
    const k = canonicalKey(key);
    if (tensors.has(k)) fail(`tensors ${JSON.stringify(key)} and another both mean ${JSON.stringify(k)}`);
    tensors.set(k, t);
  }

  const teacherShape = settings ? settings.teacher_shape : teacherShapeOf(teacher!.config);
  const t = teacherShape;
  if (!isPlainObject(t) || typeof t.dim !== "number" || typeof t.nHeads !== "number") cfgFail(`"ptp.teacher_shape" is not a model shape`);
  // The model config's own bounds (whole sizes, nLayers <= MAX_LAYERS, ...), before any loop over its layers.
  const shapeProblems = boundedConfigProblems({ ...t, normEps: 1e-5, ropeTheta: 10000, sharedClassifier: true });
  if (shapeProblems.length > 0) cfgFail(`"ptp.teacher_shape" is not a model shape: ${shapeProblems.join("; ")}`);
  const hs = headSize({ ...t, normEps: 1e-5, ropeTheta: 10000 });
  if (!Number.isInteger(hs)) cfgFail(`"ptp.teacher_shape" has nHeads not dividing dim`);
  const only = j.layers_to_transform;
  if (only != null && !(Array.isArray(only) && only.every((l) => Number.isInteger(l) && l >= 0 && l < t.nLayers) && new Set(only).size === only.length)) {
    cfgFail(`"layers_to_transform" must be null or a list of distinct layer indices in [0, ${t.nLayers}), found ${quote(only)}`);
  }

  // ptp writes its settings twice, in adapter_config.json and as the "ptp.config" tensor: the two must agree, and
  // a folder holding the tensor without the settings is one of ours whose settings were removed, not the reference code's.
  const copy = tensors.get(CONFIG_TENSOR);
  if (copy !== undefined) {
    if (!settings) cfgFail(`has no "ptp" settings, but the weights hold the "${CONFIG_TENSOR}" tensor that ptp writes beside them: the settings were removed (restore them; without the tensor the folder reads as the reference code's)`);
    let stored: Record<string, unknown> = {};
    try {
      const parsed: unknown = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(copy.data as Uint8Array));
      if (isPlainObject(parsed)) stored = parsed as Record<string, unknown>;
      else throw new Error("not an object");
    } catch {
      fail(`tensor "${CONFIG_TENSOR}" is not the JSON of the PTP settings`);
    }
    const mine = settings as unknown as Record<string, unknown>;
    const differing = [...new Set([...Object.keys(mine), ...Object.keys(stored)])].filter((k) => canonicalJson(mine[k]) !== canonicalJson(stored[k]));
    if (differing.length > 0) {
      cfgFail(
        `"ptp" settings differ from their copy in the weights' "${CONFIG_TENSOR}" tensor: ${differing
          .slice(0, 4)
          .map((k) => `${k} ${quote(mine[k])} here, ${quote(stored[k])} there`)
          .join("; ")}`,
      );
    }
  }

  // The auxiliary embedding: from the settings, else from the tensors present.
  let aux: AuxEmbeddingConfig;
  if (settings) aux = settings.aux_kind === "digits" ? { kind: "digits", digits: settings.aux_digits } : { kind: settings.aux_kind };
  else if (tensors.has(U_BITS_WEIGHT)) aux = { kind: "bits" };
  else if (tensors.has(U_ANCHORS)) {
    if (tensors.has("u_embed.embedding.bias")) fail(`the u-embedding "u_embed.embedding" has a bias: a linear feature embedding (sawtooth or quarter_cos), which is not implemented; supported: linear_interpolation (3 anchors) and binary`);
    const shape = tensors.get(U_ANCHORS)!.shape;
    if (shape[0] !== 3) fail(`the u-embedding "u_embed.embedding.weight" has shape [${shape.join(", ")}]: only the 3-anchor linear interpolation [3, ${t.dim}] is implemented`);
    aux = { kind: "anchors" };
  } else return fail(`no u-embedding found (expected "u_embed.embedding.weight" or "u_embed.u_adapter.weight"; PTP students need one)`);

  const used = new Set<string>();
  const take = (name: string, shape: number[], optional = false): Float32Array | undefined => {
    const x = tensors.get(name);
    if (!x) {
      if (optional) return undefined;
      return fail(`tensor ${JSON.stringify(name)} is missing (expected shape [${shape.join(", ")}])`);
    }
    if (x.dtype !== "F32" && x.dtype !== "F16" && x.dtype !== "BF16") fail(`tensor ${JSON.stringify(name)} has dtype ${x.dtype}, expected F32, F16 or BF16`);
    if (x.shape.length !== shape.length || x.shape.some((d, i) => d !== shape[i])) {
      fail(`tensor ${JSON.stringify(name)} has shape [${x.shape.join(", ")}], expected [${shape.join(", ")}]`);
    }
    used.add(name);
    return x.data as Float32Array;
  };

  // The LoRA pairs the file holds, their shapes checked, before the absent ones are made.
  const present: ({ A: Float32Array; B: Float32Array } | undefined)[][] = [];
  let zeroFloats = 0;
  for (let l = 0; l < t.nLayers; l++) {
    present.push([]);
    for (const name of LINEAR_NAMES) {
      const [out, inp] = linearShape(t, name);
      const base = `${PREFIX}${l}.${HF_LINEAR_MODULES[name]}`;
      const A = take(`${base}.lora_A.weight`, [rank, inp], true);
      const B = take(`${base}.lora_B.weight`, [out, rank], true);
      if ((A === undefined) !== (B === undefined)) fail(`${base}: lora_A and lora_B must both be present or both absent`);
      if (A === undefined && targeted.has(name) && j.layers_to_transform == null) {
        fail(`tensor ${JSON.stringify(`${base}.lora_A.weight`)} is missing (target_modules names ${TARGET[name]})`);
      }
      // PEFT loads only the pairs of the modules and layers the config targets: one outside them would not be this adapter's.
      if (A !== undefined && !targeted.has(name)) fail(`tensor ${JSON.stringify(`${base}.lora_A.weight`)} is for ${TARGET[name]}, which target_modules leaves out`);
      if (A !== undefined && Array.isArray(only) && !only.includes(l)) fail(`tensor ${JSON.stringify(`${base}.lora_A.weight`)} is for layer ${l}, which layers_to_transform leaves out`);
      present[l].push(A && B ? { A, B } : undefined);
      if (A === undefined) zeroFloats += rank * (inp + out);
    }
  }
  // A folder of no pair at all backs "r" with nothing (PEFT and export-peft write every pair they train): not a trained student.
  if (present.every((pairs) => pairs.every((p) => p === undefined))) {
    fail(`holds no LoRA weights (no lora_A / lora_B pair for any layer and module), so nothing backs "r" ${rank}; a PTP student's PEFT folder holds the pairs of the layers and modules it trains`);
  }
  // Absent pairs read as zeros, whose size only "r" and the teacher's shape give: as large as an adapter file may be (2 GiB), at most.
  if (zeroFloats * 4 > MAX_FILE_BYTES) {
    cfgFail(`"r" ${rank} and the teacher's shape (dim ${t.dim}, hiddenDim ${t.hiddenDim}, nLayers ${t.nLayers}) make the LoRA weights that the folder leaves out ${zeroFloats * 4} bytes of zeros, more than a student adapter may hold (${MAX_FILE_BYTES} bytes)`);
  }
  const layers: LayerLora[] = present.map((pairs) => {
    const layer = {} as LayerLora;
    LINEAR_NAMES.forEach((name, i) => {
      const [out, inp] = linearShape(t, name);
      const pair = pairs[i];
      layer[name] = pair ? { A: pair.A, B: permuteB(pair.B, name, t, rank, false) } : { A: new Float32Array(rank * inp), B: new Float32Array(out * rank) };
    });
    return layer;
  });
  const weights: StudentWeights = { layers, aux: {} };
  if (aux.kind === "anchors") weights.aux.anchors = take(U_ANCHORS, [3, t.dim]);
  else if (aux.kind === "bits") {
    weights.aux.weight = take(U_BITS_WEIGHT, [t.dim, 32]);
    weights.aux.bias = take(U_BITS_BIAS, [t.dim]);
  } else {
    weights.aux.weight = take(U_DIGITS_WEIGHT, [t.dim, aux.digits ?? 0]);
    weights.aux.bias = take(U_DIGITS_BIAS, [t.dim]);
  }
  const variant = settings ? settings.variant : (options.variant ?? "O");
  if (hasStartVector({ variant, query: settings?.slot_input === "query" })) weights.start = take(START, [t.dim]);
  if (tensors.has(CONFIG_TENSOR)) used.add(CONFIG_TENSOR);
  const extra = [...tensors.keys()].filter((k) => !used.has(k));
  if (extra.length > 0)
    fail(
      `unexpected tensor${extra.length > 1 ? "s" : ""} ${extra
        .slice(0, 5)
        .map((k) => JSON.stringify(k))
        .join(", ")} (not part of a ${variant}-PTP LoRA student with aux kind ${aux.kind})`,
    );

  const config: StudentConfig = {
    variant,
    rank,
    alpha: alpha as number,
    aux,
    window: settings ? settings.window : (options.window ?? REFERENCE_DEFAULT_WINDOW),
    teacherShape: teacherShapeOf(t),
    teacherChecksum: settings ? settings.teacher_checksum : teacher!.checksum,
  };
  if (settings?.slot_input !== undefined) {
    if (settings.slot_input !== "hybrid" && settings.slot_input !== "query") cfgFail(`"ptp.slot_input" must be "hybrid" or "query" when present, found ${quote(settings.slot_input)}`);
    config.hybrid = true;
    if (settings.slot_input === "query") config.query = true;
  }
  // One validation for every student, whatever its file: the adapter file's own checks.
  try {
    return parseStudent(serializeStudent({ config, weights }), dir);
  } catch (err) {
    if (err instanceof FileFormatError) throw err;
    throw new FileFormatError(dir, (err instanceof Error ? err.message : String(err)).replace(/^serializeStudent: /, ""));
  }
}

/** JSON with object keys sorted, to compare two parsed values whatever the order of their keys. */
function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  if (isPlainObject(v)) {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(v) ?? "undefined";
}
