import type { AuxSource } from "./aux.js";

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

  constructor(
    private readonly source: AuxSource,
    /** Position of the first sampled token (the prompt's length). */
    readonly first: number,
  ) {}

  at(k: number): number {
    if (!Number.isInteger(k) || k < this.first) throw new RangeError(`u(${k}): only positions from ${this.first} (the first sampled token) on have an auxiliary variable`);
    while (this.values.length <= k - this.first) this.values.push(this.source.next());
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
      if (e instanceof RangeError && k >= this.first) return 0.5;
      throw e;
    }
  }

  /** The u's drawn so far, for positions first, first + 1, ... */
  get drawn(): readonly number[] {
    return this.values;
  }
}
