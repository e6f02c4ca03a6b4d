/**
 * Argument checks shared by the public API (decoding, u sources, the
 * evaluation, the trainers and the self-checks): each throws a RangeError
 * or TypeError that names the option and what it must be, instead of the
 * engine's error (or a silent wrong result) further in.
 */

/** A rejected value, as an error message shows it: strings quoted, other non-numbers by type. */
export function describeValue(value: unknown): string {
  if (typeof value === "number") return Object.is(value, -0) ? "-0" : String(value);
  if (typeof value === "string") return `${JSON.stringify(value)} (string)`;
  if (typeof value === "bigint") return `${value}n (bigint)`;
  if (value === null) return "null";
  if (value === undefined) return "undefined";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : typeof value;
}

/**
 * `value` as an integer in [min, max] (a number: no strings, no NaN, no
 * fractions); otherwise a RangeError "`where`: `name` must be `what`, got ...".
 */
export function checkInteger(value: unknown, where: string, name: string, min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    const what = max < Number.MAX_SAFE_INTEGER ? `an integer in [${min}, ${max}]` : min === 1 ? "a positive integer" : min === 0 ? "a non-negative integer" : min <= Number.MIN_SAFE_INTEGER ? "an integer" : `an integer >= ${min}`;
    throw new RangeError(`${where}: ${name} must be ${what}, got ${describeValue(value)}`);
  }
  return value;
}

/** `value` as a Float32Array (a row of logits or probabilities); otherwise a TypeError naming it. */
export function checkFloat32Row(value: unknown, where: string, name: string): Float32Array {
  if (!(value instanceof Float32Array)) throw new TypeError(`${where}: ${name} must be a Float32Array, got ${describeValue(value)}`);
  return value;
}

/** checkInteger for a count of 1 or more (runs, batch, ...). */
export function checkPositiveInteger(value: unknown, where: string, name: string): number {
  return checkInteger(value, where, name, 1);
}

/**
 * The token ids of a prompt (any array-like of numbers: an array, an
 * Int32Array), copied into a fresh array; each must be an integer in
 * [0, vocabSize). `name` says which prompt in errors (e.g. "prompt 2").
 */
export function checkTokens(tokens: unknown, vocabSize: number, where: string, name = "prompt"): number[] {
  const length = tokens !== null && typeof tokens === "object" ? (tokens as { length?: unknown }).length : undefined;
  if (typeof length !== "number" || !Number.isSafeInteger(length) || length < 0) {
    throw new TypeError(`${where}: ${name} must be an array of token ids (an array or typed array of integers), got ${describeValue(tokens)}`);
  }
  const ids = tokens as ArrayLike<unknown>;
  const out = new Array<number>(length);
  for (let i = 0; i < length; i++) {
    const t = ids[i];
    if (typeof t !== "number" || !Number.isInteger(t) || t < 0 || t >= vocabSize) {
      throw new RangeError(`${where}: ${name}, position ${i}: token ids must be integers in [0, ${vocabSize}) (the model's vocabulary), got ${describeValue(t)}`);
    }
    out[i] = t;
  }
  return out;
}
