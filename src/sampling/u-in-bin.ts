/**
 * Drawing u inside a token's bin for training (spec/dataset.md): drawU places
 * u = left + z (right - left) inside [left, right), and betaSample gives the
 * z ~ Beta(b, b) that distillation uses.
 */
import type { Mulberry32 } from "../util/prng.js";
import { describeValue } from "../util/checks.js";

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);

/** The largest float32 below a positive float32 x. */
function float32Below(x: number): number {
  F32[0] = x;
  U32[0] -= 1;
  return F32[0];
}

/**
 * u = left + z * (right - left) as a float32, kept inside [left, right):
 * where rounding lands on `right` (z near 1, or z = 1) u becomes the
 * largest float32 below right. left and right are a token's bin edges
 * (float32, 0 <= left < right <= 1), z in [0, 1].
 */
export function drawU(left: number, right: number, z: number): number {
  // typeof first: Math.fround of a symbol or a bigint threw the engine's "Cannot convert a Symbol value to a number".
  const numbers = typeof left === "number" && typeof right === "number";
  if (!numbers || Math.fround(left) !== left || Math.fround(right) !== right) throw new (numbers ? RangeError : TypeError)(`drawU: bin edges must be float32 values, got [${describeValue(left)}, ${describeValue(right)})`);
  if (!(left >= 0 && right <= 1)) throw new RangeError(`drawU: the bin [${left}, ${right}) must lie in [0, 1]`);
  if (!(right > left)) throw new RangeError(`drawU: the bin [${left}, ${right}) is empty (a sampled token always has a non-empty bin)`);
  if (typeof z !== "number" || !(z >= 0 && z <= 1)) throw new (typeof z === "number" ? RangeError : TypeError)(`drawU: z must be in [0, 1], got ${describeValue(z)}`);
  // Rounding to nearest is monotone and left is a float32, so u >= left; only the right edge needs care.
  const u = Math.max(left, Math.fround(left + z * (right - left)));
  return u < right ? u : float32Below(right);
}

/** A uniform variate in (0, 1), never exactly 0 (logs are taken). */
function openUniform(rng: Mulberry32): number {
  return (rng.nextU32() + 0.5) / 4294967296;
}

/** log of a Gamma(shape, 1) variate: Marsaglia and Tsang's squeeze method, boosted by U^(1/shape) below shape 1. */
function logGamma(rng: Mulberry32, shape: number): number {
  if (shape < 1) return logGamma(rng, shape + 1) + Math.log(openUniform(rng)) / shape;
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number, v: number;
    do {
      // Box-Muller: one standard normal per two uniforms.
      x = Math.sqrt(-2 * Math.log(openUniform(rng))) * Math.cos(2 * Math.PI * openUniform(rng));
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = openUniform(rng);
    if (u < 1 - 0.0331 * x ** 4 || Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return Math.log(d) + Math.log(v);
  }
}

/**
 * z ~ Beta(b, b) in [0, 1], as X / (X + Y) with X, Y ~ Gamma(b). Computed
 * from log X - log Y so that small b (mass piled at 0 and 1) neither
 * underflows to 0 / 0 nor loses the tails. Deterministic given the rng.
 */
export function betaSample(rng: Mulberry32, b: number): number {
  if (rng === null || typeof rng !== "object" || typeof (rng as { nextU32?: unknown }).nextU32 !== "function") throw new TypeError(`betaSample: rng must be a Mulberry32 (an object with nextU32()), got ${describeValue(rng)}`);
  if (!(b > 0) || !Number.isFinite(b)) throw new RangeError(`betaSample: b must be a finite number > 0, got ${describeValue(b)}`);
  const lx = logGamma(rng, b);
  const ly = logGamma(rng, b);
  return 1 / (1 + Math.exp(ly - lx));
}
