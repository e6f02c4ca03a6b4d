/**
 * Sources of auxiliary variables u ~ U[0, 1): the llama2.c xorshift64*
 * generator, explicit arrays, and text files.
 */

import { checkPath, FileFormatError, quotePath, readLines } from "../io/errors.js";
import { describeValue } from "../util/checks.js";
import { assertValidU } from "./pick.js";

/**
 * A stream of auxiliary variables, each in [0, 1). A finite source says it
 * has run out by throwing a RangeError (as ArrayAux and the aux file do):
 * a PTP decoder's student reads u's ahead of the output, past where AR
 * stops, and takes 0.5 for one that ran out; any other error, or a u
 * outside [0, 1), ends the decode with that error (API-USTREAM).
 */
export interface AuxSource {
  /** The next u, a number in [0, 1); a RangeError once a finite source has run out. */
  next(): number;
}

/**
 * Throws a TypeError unless `source` is an AuxSource (an object with a
 * next() method); `name` says which option it is (e.g. "decode: aux[2]").
 */
export function checkAuxSource(source: unknown, name: string): asserts source is AuxSource {
  if (source === null || typeof source !== "object" || typeof (source as { next?: unknown }).next !== "function") {
    throw new TypeError(`${name} must be a source of auxiliary variables (an AuxSource: an object with a next() method returning a number in [0, 1), e.g. new XorShiftAux(seed)), got ${describeValue(source)}`);
  }
}

/**
 * The next u of `source`, checked to be a number in [0, 1) before anyone
 * uses it (a backend's own pick need not check it again). `where` names the
 * draw in the error (e.g. "decode: prompt 0, u for position 7").
 */
export function drawU(source: AuxSource, where: string): number {
  const u = source.next();
  assertValidU(u, where);
  return u;
}

/** A u from 32 random bits, as llama2.c's random_f32: the top 24 bits over 2^24, a float32 in [0, 1). `bits` is an integer in [0, 2^32). */
export function uFromU32(bits: number): number {
  // typeof first: a symbol or a bigint threw the engine's "Cannot convert a Symbol value to a number" / "Cannot mix BigInt".
  if (typeof bits !== "number" || bits >>> 0 !== bits) throw new (typeof bits === "number" ? RangeError : TypeError)(`uFromU32: bits must be an integer in [0, 2^32), got ${describeValue(bits)}`);
  return (bits >>> 8) / 16777216;
}

const MASK64 = (1n << 64n) - 1n;
const XORSHIFT_MULTIPLIER = 0x2545f4914f6cdd1dn;

/**
 * llama2.c's random number generator (xorshift64*), producing the same
 * u-stream ("coins") as the reference program for the same seed:
 *
 *   state ^= state >> 12; state ^= state << 25 (mod 2^64); state ^= state >> 27;
 *   u32 = ((state * 0x2545F4914F6CDD1D) mod 2^64) >> 32;
 *   u   = (u32 >> 8) / 16777216            (exactly a float32, multiple of 2^-24)
 *
 * The initial state is the seed, an integer in [1, 2^64 - 1] (seed 0 is a
 * fixed point of xorshift and would yield u = 0 forever, so it is rejected).
 */
export class XorShiftAux implements AuxSource {
  private state: bigint;

  constructor(seed: bigint | number) {
    let s: bigint;
    if (typeof seed === "bigint") {
      s = seed;
    } else if (typeof seed === "number" && Number.isInteger(seed)) {
      s = BigInt(seed);
    } else {
      throw new RangeError(`XorShiftAux: seed must be an integer in [1, 2^64 - 1], got ${describeValue(seed)}`);
    }
    if (s < 1n || s > MASK64) {
      throw new RangeError(`XorShiftAux: seed must be an integer in [1, 2^64 - 1], got ${s}` + (s === 0n ? " (seed 0 would produce u = 0 forever)" : ""));
    }
    this.state = s;
  }

  /** The next 32-bit output of the generator (random_u32 in llama2.c). */
  nextU32(): number {
    let x = this.state;
    x ^= x >> 12n;
    x ^= (x << 25n) & MASK64;
    x ^= x >> 27n;
    this.state = x;
    return Number(((x * XORSHIFT_MULTIPLIER) & MASK64) >> 32n);
  }

  /** The next u (random_f32 in llama2.c): a float32 in [0, 1), a multiple of 2^-24. */
  next(): number {
    return uFromU32(this.nextU32());
  }
}

/** The most u's an ArrayAux holds: 2^27 (1 GiB of doubles), far more than any run draws. */
export const MAX_ARRAY_AUX = 2 ** 27;

/**
 * Auxiliary variables from an explicit list. Every value is checked to lie
 * in [0, 1) up front. Values are returned as given (double precision; no
 * rounding to float32).
 */
export class ArrayAux implements AuxSource {
  private readonly values: Float64Array;
  private index = 0;
  readonly name: string;

  constructor(values: ArrayLike<number>, name = "u array") {
    this.name = name;
    const n = values !== null && typeof values === "object" ? values.length : undefined;
    if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) {
      throw new TypeError(`${name}: ArrayAux takes an array of u's (an array or typed array of numbers in [0, 1)), got ${describeValue(values)}${typeof values === "object" && values !== null ? ` with length ${describeValue(n)}` : ""}`);
    }
    if (n > MAX_ARRAY_AUX) throw new RangeError(`${name}: ArrayAux takes at most ${MAX_ARRAY_AUX} u's (2^27; a run needs at most seqLen per sequence), got an array-like of length ${n}`);
    const copy = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const v = values[i];
      assertValidU(v, `${name}: value at index ${i}`);
      copy[i] = v;
    }
    this.values = copy;
  }

  /** Total number of values. */
  get length(): number {
    return this.values.length;
  }

  /** Number of values consumed so far. */
  get position(): number {
    return this.index;
  }

  /** Number of values not yet consumed. */
  get remaining(): number {
    return this.values.length - this.index;
  }

  next(): number {
    if (this.index >= this.values.length) {
      throw new RangeError(`${this.name}: needed more than ${this.values.length} auxiliary variables`);
    }
    return this.values[this.index++];
  }
}

/** A u file is at most 256 MiB (millions of values, more than any run's seqLen of 2^20 needs), lines at most 64 KiB. */
export const U_FILE_LIMITS = { maxBytes: 256 * 2 ** 20, maxLine: 64 * 2 ** 10 };

const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const SPECIAL = /^[+-]?(?:Infinity|inf|NaN)$/i;

/**
 * Reads auxiliary variables from a text file: one u per line, decimal
 * notation (e.g. `0.25`, `2.5e-1`); blank lines and lines whose first
 * non-blank character is `#` are ignored; surrounding whitespace is
 * ignored. Errors name the file and the 1-based line number.
 *
 * The file is read line by line; a non-regular file (a FIFO, /dev/zero) or
 * one beyond U_FILE_LIMITS is refused before it is read.
 *
 * @throws Error when the file cannot be read (naming the path);
 *   SyntaxError for an unparsable line; RangeError for a value outside [0, 1).
 */
export function readAuxFile(path: string): ArrayAux {
  checkPath(path, "readAuxFile");
  const values: number[] = [];
  try {
    readLines(path, "a u file, one value per line", U_FILE_LIMITS, (text, number) => {
      const line = text.trim();
      if (line === "" || line.startsWith("#")) return;
      const where = `${quotePath(path)}, line ${number}`;
      let v: number;
      if (DECIMAL.test(line)) {
        v = Number(line);
      } else if (SPECIAL.test(line)) {
        const neg = line.startsWith("-");
        v = /nan/i.test(line) ? NaN : neg ? -Infinity : Infinity;
      } else {
        throw new SyntaxError(`${where}: cannot parse "${line}" as a number`);
      }
      assertValidU(v, where);
      values.push(v);
    });
  } catch (err) {
    if (err instanceof FileFormatError && err.problem.startsWith("file does not exist")) throw new Error(`u file not found: ${quotePath(path)}`);
    throw err;
  }
  return new ArrayAux(values, `u file ${path}`);
}
