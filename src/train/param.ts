import { describeValue } from "../util/checks.js";

/**
 * A trainable tensor: its values and the gradient the backward pass
 * accumulates into. Everything that trains (the autograd tape, the
 * optimizer, training checkpoints) speaks in Params, so a student, a draft
 * model and a from-scratch model train through the same code.
 */
export interface Param {
  /** Stable name, used as the tensor name in checkpoints (e.g. "layers.0.wq.lora_A"). */
  readonly name: string;
  /** Shape, outermost first; the product equals data.length. */
  readonly shape: readonly number[];
  readonly data: Float32Array;
  /** Accumulated gradient, same length as data; zeroed by the trainer each step. */
  readonly grad: Float32Array;
  /** Whether AdamW applies weight decay (matrices yes; norms, biases, embeddings of u usually no). */
  readonly decay: boolean;
}

export function makeParam(name: string, shape: readonly number[], data: Float32Array, decay: boolean): Param {
  if (typeof name !== "string" || name === "") throw new TypeError(`makeParam: name must be a non-empty string (the tensor's name in checkpoints), got ${describeValue(name)}`);
  // Integers only: a shape ["2", 3] multiplied to 6 and was written as a string into checkpoints.
  if (!Array.isArray(shape) || shape.some((d) => typeof d !== "number" || !Number.isSafeInteger(d) || d < 0)) throw new TypeError(`makeParam: param ${name}: shape must be an array of non-negative integers, got ${describeValue(shape)}`);
  if (!(data instanceof Float32Array)) throw new TypeError(`makeParam: param ${name}: data must be a Float32Array, got ${describeValue(data)}`);
  // A boolean: "no" read as true and decayed the param.
  if (typeof decay !== "boolean") throw new TypeError(`makeParam: param ${name}: decay must be a boolean (whether AdamW decays it), got ${describeValue(decay)}`);
  const n = shape.reduce((a, b) => a * b, 1);
  if (data.length !== n) throw new RangeError(`param ${name}: shape [${shape.join(", ")}] needs ${n} values, got ${data.length}`);
  return { name, shape, data, grad: new Float32Array(n), decay };
}

export function zeroGrads(params: readonly Param[]): void {
  checkParams(params, "zeroGrads");
  for (const p of params) p.grad.fill(0);
}

/**
 * Throws a TypeError naming `where` unless `params` is an array of Params
 * (makeParam's: Float32Array data and a grad of its length). One test per
 * param, not per value.
 */
export function checkParams(params: unknown, where: string): asserts params is readonly Param[] {
  if (!Array.isArray(params)) throw new TypeError(`${where}: params must be an array of Params (makeParam, trainableWeights, trainableStudent), got ${describeValue(params)}`);
  params.forEach((p: Partial<Param> | null, i) => {
    if (p === null || typeof p !== "object" || !(p.data instanceof Float32Array) || !(p.grad instanceof Float32Array) || p.grad.length !== p.data.length) {
      throw new TypeError(`${where}: params[${i}] must be a Param { name, shape, data, grad, decay } with Float32Array data and grad of one length (makeParam makes one), got ${describeValue(p)}`);
    }
  });
}

/** Total number of values of a list of params (the length of a flat gradient). */
export function paramCount(params: readonly Param[]): number {
  return params.reduce((n, p) => n + p.data.length, 0);
}

/** Copies every param's `which` array into `flat`, in order. */
export function packParams(params: readonly Param[], which: "data" | "grad", flat: Float32Array): void {
  let o = 0;
  for (const p of params) flat.set(p[which], o), (o += p.data.length);
}

/** Copies `flat` into every param's `which` array, in order. */
export function unpackParams(params: readonly Param[], which: "data" | "grad", flat: Float32Array): void {
  let o = 0;
  for (const p of params) p[which].set(flat.subarray(o, o + p.data.length)), (o += p.data.length);
}
