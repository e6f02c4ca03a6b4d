import { checkAuxSource, type AuxSource } from "./aux.js";
import { describeValue } from "../util/checks.js";
import { isValidU } from "./pick.js";

/**
 * The auxiliary variables of one sequence, indexed by OUTPUT POSITION: u(k)
 * is the u that picks token k, whichever draft, branch or call asks for it.
 * Values are drawn from the source in position order as far as anyone has
 * looked ahead, so the sampled text is the AR sample path for the same
 * source: AR draws one u per sampled token, starting at the first position
 * after the prompt.
 */
export class UStream {
  private readonly values: number[] = [];
  /** The error of a value the source gave outside [0, 1): the stream is broken from there on. */
  private invalid?: RangeError;

  constructor(
    private readonly source: AuxSource,
    /** Position of the first sampled token (the prompt's length). */
    readonly first: number,
    /** Names the source in errors (e.g. "decode: aux[1]"). */
    private readonly name = "u source",
  ) {
    checkAuxSource(source, name);
    if (!Number.isSafeInteger(first) || first < 0) throw new RangeError(`${name}: the first sampled position must be a non-negative integer (the prompt's length), got ${describeValue(first)}`);
  }

  at(k: number): number {
    if (!Number.isInteger(k) || k < this.first) throw new RangeError(`u(${describeValue(k)}): only positions from ${this.first} (the first sampled token) on have an auxiliary variable`);
    while (this.values.length <= k - this.first) {
      if (this.invalid) throw this.invalid;
      // A source that has run out throws here (forStudent may stand in for it).
      const u = this.source.next();
      if (!isValidU(u)) {
        // Checked before any pick (a device's pick included); the value is gone, so no later u may take its place.
        this.invalid = new RangeError(`${this.name}, u for position ${this.first + this.values.length}: auxiliary variable u must be in [0, 1), got ${describeValue(u)}`);
        throw this.invalid;
      }
      this.values.push(u);
    }
    return this.values[k - this.first];
  }

  /**
   * u(k) for a student's input, where the value only steers a guess: past
   * the end of a finite source (an aux file sized for the output) it is 0.5
   * instead of an error, since a draft never changes the output.
   */
  forStudent(k: number): number {
    try {
      return this.at(k);
    } catch (e) {
      if (e instanceof RangeError && e !== this.invalid && k >= this.first) return 0.5;
      throw e;
    }
  }

  /** The u's drawn so far, for positions first, first + 1, ... */
  get drawn(): readonly number[] {
    return this.values;
  }
}
