/**
 * A small seeded pseudo-random generator for reproducible test and benchmark
 * weights: mulberry32 (a 32-bit state advanced by a Weyl increment
 * 0x6D2B79F5, then mixed by two multiply-xorshift rounds). It is fast, has a
 * period of 2^32 and is good enough for filling weight tensors; it is not
 * cryptographic. The seed is reduced to 32 bits (`seed >>> 0`), so the same
 * seed always gives the same sequence on every platform.
 */
import { describeValue } from "./checks.js";

/**
 * An integer seed reduced to 32 bits (`seed >>> 0`); anything but an
 * integer (NaN, 1.5, a string, undefined, a bigint) is a RangeError naming
 * `what`, instead of silently becoming seed 0 or losing its fraction.
 */
export function seed32(seed: unknown, what: string): number {
  if (typeof seed !== "number" || !Number.isInteger(seed)) {
    throw new RangeError(`${what} must be an integer (reduced to 32 bits), got ${describeValue(seed)}`);
  }
  return seed >>> 0;
}

/**
 * The salt xor'ed into a seed (or an index) to derive a stream apart from
 * the one the seed itself starts: 0x9e3779b9, 2^32 divided by the golden
 * ratio (the constant of Fibonacci hashing).
 */
export const SEED_SALT = 0x9e3779b9;

export class Mulberry32 {
  private state: number;

  constructor(seed: number) {
    this.state = seed32(seed, "Mulberry32: seed");
  }

  /** The next value as an unsigned 32-bit integer. */
  nextU32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    return (z ^ (z >>> 14)) >>> 0;
  }

  /** The generator's whole state, to save with a training checkpoint. */
  get stateWord(): number {
    return this.state;
  }

  /** A generator that continues exactly where one with this stateWord left off. */
  static resume(stateWord: number): Mulberry32 {
    const g = new Mulberry32(0);
    g.state = seed32(stateWord, "Mulberry32.resume: stateWord");
    return g;
  }

  /** The next value uniform in [0, 1). */
  nextFloat(): number {
    return this.nextU32() / 4294967296;
  }
}

/** A seeded source of random problems for property checks: floats, integer ranges, arrays and picks. */
export class Gen {
  private readonly g: Mulberry32;
  constructor(seed: number) {
    this.g = new Mulberry32(seed);
  }
  next(): number {
    return this.g.nextFloat();
  }
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  f32(n: number, scale = 1): Float32Array {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = (this.next() * 2 - 1) * scale;
    return a;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(0, xs.length - 1)];
  }
}
