import { describeValue } from "../util/checks.js";
import type { AuxEmbeddingConfig, AuxEmbeddingWeights } from "./student-weights.js";

/**
 * The auxiliary embedding: how a slot's u becomes its input vector
 * (method section 2.1). Slots take this vector in place of a token
 * embedding; RoPE supplies the position as for any row.
 *
 * Computed on the host in float32, one term at a time in a fixed order, so
 * a given u always yields the same bits whichever decoder asks.
 */

const f = Math.fround;
const bitsView = new DataView(new ArrayBuffer(4));

/** Number of input features of the linear kinds ("bits": 32, "digits": B); 0 for "anchors". */
export function auxFeatureCount(cfg: AuxEmbeddingConfig): number {
  if (cfg.kind === "bits") return 32;
  if (cfg.kind === "digits") return digitCount(cfg);
  return 0;
}

function digitCount(cfg: AuxEmbeddingConfig): number {
  const B = cfg.digits ?? 0;
  if (!Number.isInteger(B) || B < 1 || B > 24) throw new RangeError(`aux embedding "digits": digits must be an integer in [1, 24], got ${cfg.digits}`);
  return B;
}

/**
 * Throws naming `where` unless `u` is a number (NaN gave the features of a
 * NaN float, a string was read as its number) and `cfg` an aux config
 * object: one test each, cheap enough for every slot.
 */
function checkAuxArguments(u: unknown, cfg: unknown, where: string): void {
  if (typeof u !== "number" || Number.isNaN(u)) throw new TypeError(`${where}: u must be a number in [0, 1), got ${describeValue(u)}`);
  const kind = cfg !== null && typeof cfg === "object" ? (cfg as { kind?: unknown }).kind : undefined;
  if (kind !== "bits" && kind !== "digits" && kind !== "anchors") {
    throw new TypeError(`${where}: cfg must be an aux embedding config { kind: "bits" | "digits" | "anchors", digits? }, got ${cfg !== null && typeof cfg === "object" ? `kind ${describeValue(kind)}` : describeValue(cfg)}`);
  }
}

/**
 * The 0/1 features of u: its 32 IEEE-754 float32 bits, most significant
 * first (sign, exponent, mantissa), or its first B binary digits
 * (digit i = floor(u 2^i) mod 2, i = 1..B).
 */
export function auxFeatures(u: number, cfg: AuxEmbeddingConfig): Uint8Array {
  checkAuxArguments(u, cfg, "auxFeatures");
  if (cfg.kind === "bits") {
    bitsView.setFloat32(0, u);
    const word = bitsView.getUint32(0);
    return Uint8Array.from({ length: 32 }, (_, i) => (word >>> (31 - i)) & 1);
  }
  if (cfg.kind === "digits") {
    // u is a float32 in [0, 1): u * 2^i is exact, so floor gives the exact digit.
    return Uint8Array.from({ length: digitCount(cfg) }, (_, i) => Math.floor(u * 2 ** (i + 1)) % 2);
  }
  throw new RangeError(`auxFeatures: aux embedding "${cfg.kind}" has no binary features`);
}

/**
 * embed(u) into `out` (length dim):
 * - bits / digits: bias + sum of the weight columns whose feature is 1,
 *   weight stored [dim, features];
 * - anchors: piecewise-linear between the anchor vectors at u = 0, 0.5, 1.
 */
export function embedAux(u: number, cfg: AuxEmbeddingConfig, w: AuxEmbeddingWeights, dim: number, out = new Float32Array(dim)): Float32Array {
  checkAuxArguments(u, cfg, "embedAux");
  if (w === null || typeof w !== "object") throw new TypeError(`embedAux: w must be the aux embedding's weights ({ weight, bias } or { anchors }), got ${describeValue(w)}`);
  if (typeof dim !== "number" || !Number.isInteger(dim) || dim < 1) throw new RangeError(`embedAux: dim must be a positive integer, got ${describeValue(dim)}`);
  const arrays: [string, unknown, number][] =
    cfg.kind === "anchors"
      ? [["anchors", w.anchors, 3 * dim]]
      : [
          ["weight", w.weight, dim * auxFeatureCount(cfg)],
          ["bias", w.bias, dim],
        ];
  for (const [name, a, length] of arrays) {
    if (!(a instanceof Float32Array) || a.length !== length) throw new TypeError(`embedAux: w.${name} must be a Float32Array of ${length} values for aux "${cfg.kind}" at dim ${dim}, got ${a instanceof Float32Array ? `${a.length} values` : describeValue(a)}`);
  }
  if (cfg.kind === "anchors") {
    const a = w.anchors!;
    const hi = u < 0.5 ? 1 : 2;
    const t = f((u - (hi - 1) * 0.5) * 2); // position between anchor hi-1 and anchor hi
    for (let d = 0; d < dim; d++) {
      const lo = a[(hi - 1) * dim + d];
      out[d] = f(lo + f(t * f(a[hi * dim + d] - lo)));
    }
    return out;
  }
  const feats = auxFeatures(u, cfg);
  const F = feats.length,
    W = w.weight!,
    b = w.bias!;
  for (let d = 0; d < dim; d++) {
    let s = b[d];
    for (let i = 0; i < F; i++) if (feats[i]) s = f(s + W[d * F + i]);
    out[d] = s;
  }
  return out;
}
