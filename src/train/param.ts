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
  const n = shape.reduce((a, b) => a * b, 1);
  if (data.length !== n) throw new RangeError(`param ${name}: shape [${shape.join(", ")}] needs ${n} values, got ${data.length}`);
  return { name, shape, data, grad: new Float32Array(n), decay };
}

export function zeroGrads(params: readonly Param[]): void {
  for (const p of params) p.grad.fill(0);
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
