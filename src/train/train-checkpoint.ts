/**
 * Training checkpoints: everything needed to resume a run exactly, in ONE
 * safetensors file written atomically (temp file + rename).
 *
 * Tensors (F32): `param.<name>`, `adam_m.<name>`, `adam_v.<name>` for every
 * param the optimizer trains. Metadata (strings): `format` =
 * "ptp-train-checkpoint", `version` = "1", and JSON texts `step` (updates
 * taken), `optimizer` (AdamW hyperparameters), `rng`, `data_cursor` and
 * `config` (opaque JSON values from the caller; absent ones are stored as null).
 */
import { FileFormatError, quote } from "../io/errors.js";
import { readSafetensors, writeSafetensors, type SafeTensor } from "../io/safetensors.js";
import { validateAdamW, type AdamW, type AdamWHyperparameters } from "./optim.js";

export const TRAIN_CHECKPOINT_FORMAT = "ptp-train-checkpoint";
export const TRAIN_CHECKPOINT_VERSION = 1;

/** Caller state saved alongside the weights, as JSON values. */
export interface TrainCheckpointExtras {
  rng?: unknown;
  dataCursor?: unknown;
  config?: unknown;
}

export interface TrainCheckpointInfo {
  version: number;
  /** Updates taken (the optimizer's t). */
  step: number;
  optimizer: AdamWHyperparameters;
  rng: unknown;
  dataCursor: unknown;
  config: unknown;
}

const shapeText = (shape: readonly number[]): string => `[${shape.join(", ")}]`;

function jsonText(key: string, value: unknown): string {
  try {
    return JSON.stringify(value ?? null);
  } catch (err) {
    throw new TypeError(`saveTrainCheckpoint: ${key} is not JSON-serializable (${err instanceof Error ? err.message : String(err)})`);
  }
}

/** Writes the optimizer's params, moments and step, plus the caller's extras, to `path`. */
export function saveTrainCheckpoint(path: string, optimizer: AdamW, extras: TrainCheckpointExtras = {}): void {
  const state = optimizer.exportState();
  const tensors: Record<string, SafeTensor> = {};
  for (const p of optimizer.params) {
    const shape = p.shape.slice();
    // Object.defineProperty keeps any name an ordinary key (e.g. one spelled "__proto__").
    const put = (key: string, data: Float32Array): void => {
      Object.defineProperty(tensors, key, { value: { dtype: "F32", shape, data }, enumerable: true });
    };
    put(`param.${p.name}`, p.data);
    put(`adam_m.${p.name}`, state.m.get(p.name)!);
    put(`adam_v.${p.name}`, state.v.get(p.name)!);
  }
  const metadata: Record<string, string> = {
    format: TRAIN_CHECKPOINT_FORMAT,
    version: String(TRAIN_CHECKPOINT_VERSION),
    step: String(state.step),
    optimizer: jsonText("optimizer", optimizer.hyperparameters()),
    rng: jsonText("rng", extras.rng),
    data_cursor: jsonText("dataCursor", extras.dataCursor),
    config: jsonText("config", extras.config),
  };
  writeSafetensors(path, tensors, metadata);
}

/**
 * Reads a training checkpoint into the optimizer's params and state
 * (including its hyperparameters) and returns the metadata. Everything is
 * validated before anything is written, so on error the caller's objects
 * are unchanged. Errors are FileFormatErrors naming the file and, for a
 * tensor, the tensor.
 */
export function loadTrainCheckpoint(path: string, optimizer: AdamW, checkConfig?: (config: unknown) => void): TrainCheckpointInfo {
  const fail = (problem: string): never => {
    throw new FileFormatError(path, problem);
  };
  const { tensors, metadata } = readSafetensors(path);

  const format = metadata.format;
  if (format !== TRAIN_CHECKPOINT_FORMAT) {
    fail(`metadata "format" is ${format === undefined ? "missing" : quote(format)}, expected ${quote(TRAIN_CHECKPOINT_FORMAT)} (not a training checkpoint)`);
  }
  const parse = (key: string): unknown => {
    const text = metadata[key];
    if (text === undefined) return fail(`metadata "${key}" is missing`);
    try {
      return JSON.parse(text);
    } catch {
      return fail(`metadata "${key}" is not valid JSON: ${quote(text.slice(0, 80))}`);
    }
  };
  const version = parse("version");
  if (version !== TRAIN_CHECKPOINT_VERSION) fail(`version ${quote(version)} is not supported (this reader knows version ${TRAIN_CHECKPOINT_VERSION})`);
  const step = parse("step");
  if (typeof step !== "number" || !Number.isSafeInteger(step) || step < 0) fail(`metadata "step" must be an integer >= 0, found ${quote(step)}`);
  const raw = parse("optimizer");
  if (typeof raw !== "object" || raw === null) return fail(`metadata "optimizer" must be an object, found ${quote(raw)}`);
  const { lr, beta1, beta2, eps, weightDecay } = raw as AdamWHyperparameters;
  const optim: AdamWHyperparameters = { lr, beta1, beta2, eps, weightDecay };
  try {
    validateAdamW(optim);
  } catch (err) {
    fail(`metadata "optimizer": ${err instanceof Error ? err.message : String(err)}`);
  }
  const info: TrainCheckpointInfo = {
    version: version as number,
    step: step as number,
    optimizer: optim,
    rng: parse("rng"),
    dataCursor: parse("data_cursor"),
    config: parse("config"),
  };
  // The run's configuration before its tensors: a resume with other options says so, not which tensor's shape differs.
  checkConfig?.(info.config);

  const expected = new Set<string>();
  const take = (key: string, shape: readonly number[]): Float32Array => {
    expected.add(key);
    const t = tensors.get(key);
    if (t === undefined) return fail(`tensor ${key} is missing`);
    if (t.dtype !== "F32") return fail(`tensor ${key} has dtype ${t.dtype}, expected F32`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      return fail(`tensor ${key} has shape ${shapeText(t.shape)}, expected ${shapeText(shape)}`);
    }
    const data = t.data as Float32Array;
    // NaN/Inf (or a negative second moment) would poison every later step: refuse it here, naming the tensor.
    const bad = key.startsWith("adam_v.") ? data.findIndex((x) => !(x >= 0 && x < Infinity)) : data.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0) return fail(`tensor ${key} holds ${data[bad]} at index ${bad}, expected ${key.startsWith("adam_v.") ? "finite values >= 0" : "finite values"} (a corrupt checkpoint)`);
    return data;
  };
  const values = new Map<string, Float32Array>();
  const m = new Map<string, Float32Array>();
  const v = new Map<string, Float32Array>();
  for (const p of optimizer.params) {
    values.set(p.name, take(`param.${p.name}`, p.shape));
    m.set(p.name, take(`adam_m.${p.name}`, p.shape));
    v.set(p.name, take(`adam_v.${p.name}`, p.shape));
  }
  for (const key of tensors.keys()) {
    if (!expected.has(key)) fail(`tensor ${key} matches no param being trained (a different model?)`);
  }

  for (const p of optimizer.params) p.data.set(values.get(p.name)!);
  optimizer.importState({ step: info.step, m, v });
  optimizer.setHyperparameters(optim);
  return info;
}
