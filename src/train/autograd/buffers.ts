/**
 * Float32 arrays kept from one tape to the next. A training step builds a
 * graph of the same shapes as the step before; without a pool every one of
 * its arrays is fresh memory, which the system hands out a page at a time
 * (a page fault per 4 KiB on first write) and the garbage collector takes
 * back. A tape on a pool (`new Tape(kernels, pool)`) takes its arrays from
 * here and `release()` returns them, so a step reuses the previous step's
 * memory instead. An array taken is zeroed, as a fresh one is: the results
 * are the same bits with or without a pool.
 */
export class BufferPool {
  /** Free arrays by length. */
  private readonly free = new Map<number, Float32Array[]>();
  private freeBytes = 0;
  /** The most bytes one tape took from the pool: free arrays beyond it are let go. */
  private peakTaken = 0;

  /** A zeroed array of n floats: a free one of that length, else a new one. */
  take(n: number): Float32Array {
    const list = this.free.get(n);
    const a = list?.pop();
    if (a === undefined) return new Float32Array(n);
    this.freeBytes -= a.byteLength;
    return a.fill(0);
  }

  /**
   * Returns the arrays one tape took (none may be used afterwards). Free
   * memory is kept up to what the largest tape so far took; beyond that the
   * smallest arrays are let go first (a step of other shapes, such as the
   * last, shorter part of a batch, does not make the pool grow without end).
   */
  give(arrays: readonly Float32Array[]): void {
    let bytes = 0;
    for (const a of arrays) {
      bytes += a.byteLength;
      let list = this.free.get(a.length);
      if (!list) this.free.set(a.length, (list = []));
      list.push(a);
    }
    this.freeBytes += bytes;
    this.peakTaken = Math.max(this.peakTaken, bytes);
    if (this.freeBytes <= this.peakTaken) return;
    for (const n of [...this.free.keys()].sort((a, b) => a - b)) {
      const list = this.free.get(n)!;
      while (list.length > 0 && this.freeBytes > this.peakTaken) this.freeBytes -= list.pop()!.byteLength;
      if (list.length === 0) this.free.delete(n);
      if (this.freeBytes <= this.peakTaken) break;
    }
  }

  /** Bytes of the free arrays the pool holds. */
  get heldBytes(): number {
    return this.freeBytes;
  }
}
