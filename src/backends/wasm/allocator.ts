/**
 * A first-fit free-list allocator over a WasmMemory.
 *
 * The WASM kernels never allocate: every buffer lives in a block handed out
 * here. Blocks are ALIGN-byte aligned (so v128 loads of a buffer's start are
 * aligned, and f32/i32 views index it exactly). Free blocks are kept sorted
 * by address and coalesced with their neighbours on release. When no free
 * block fits, the memory grows by just enough pages; the grown pages join
 * the free block at the end of memory, if there is one.
 *
 * Growing detaches the old `memory.buffer`: callers must re-create their
 * typed-array views afterwards (see `generation`).
 */

import type { WasmMemory } from "../../util/wasm-api.js";

export const ALIGN = 64;
/** A WebAssembly memory page: 64 KiB, the unit memory.grow counts in. */
export const WASM_PAGE_BYTES = 65536;
/** The most pages a 32-bit WebAssembly memory may have: 65536, so 4 GiB in all (WASM_MAX_BYTES). */
export const WASM_MAX_PAGES = 65536;
/** A 32-bit WebAssembly memory's limit, 4 GiB: weights, caches and scratch together. */
export const WASM_MAX_BYTES = WASM_MAX_PAGES * WASM_PAGE_BYTES;

interface Block {
  start: number;
  size: number;
}

export class OutOfMemoryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "OutOfMemoryError";
  }
}

export class FreeListAllocator {
  /** Free blocks, sorted by start, never adjacent (always coalesced). */
  private readonly free: Block[] = [];
  /** Size of every live block, by start address. */
  private readonly live = new Map<number, number>();
  /** End of the managed region (= memory size in bytes). */
  private end: number;
  /** Bumped on every memory growth, so views know to refresh. */
  generation = 0;

  constructor(
    private readonly memory: WasmMemory,
    heapBase: number,
  ) {
    const start = alignUp(heapBase, ALIGN);
    this.end = memory.buffer.byteLength;
    if (start < this.end) this.free.push({ start, size: this.end - start });
    else this.end = start; // grow() will extend from here
  }

  /** Bytes currently handed out. */
  get liveBytes(): number {
    let n = 0;
    for (const s of this.live.values()) n += s;
    return n;
  }

  /** Number of free blocks (for tests of coalescing). */
  get freeBlockCount(): number {
    return this.free.length;
  }

  /** Total memory size in bytes. */
  get memoryBytes(): number {
    return this.memory.buffer.byteLength;
  }

  /** Allocates at least `bytes` bytes (a block of at least ALIGN), ALIGN-aligned. Not zeroed. */
  alloc(bytes: number): number {
    const size = Math.max(ALIGN, alignUp(bytes, ALIGN));
    let i = this.free.findIndex((b) => b.size >= size);
    if (i < 0) {
      this.grow(size);
      i = this.free.findIndex((b) => b.size >= size);
      if (i < 0) throw new OutOfMemoryError(`allocator: no block of ${size} bytes after growing`);
    }
    const b = this.free[i];
    const ptr = b.start;
    if (b.size === size) this.free.splice(i, 1);
    else {
      b.start += size;
      b.size -= size;
    }
    this.live.set(ptr, size);
    return ptr;
  }

  /** Returns a block to the free list, merging it with free neighbours. */
  release(ptr: number): void {
    const size = this.live.get(ptr);
    if (size === undefined) throw new Error(`allocator: ${ptr} is not a live block`);
    this.live.delete(ptr);
    // Binary search for the first free block after ptr.
    let lo = 0,
      hi = this.free.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.free[mid].start < ptr) lo = mid + 1;
      else hi = mid;
    }
    const prev = lo > 0 ? this.free[lo - 1] : undefined;
    const next = lo < this.free.length ? this.free[lo] : undefined;
    const touchesPrev = prev !== undefined && prev.start + prev.size === ptr;
    const touchesNext = next !== undefined && ptr + size === next.start;
    if (touchesPrev && touchesNext) {
      prev.size += size + next.size;
      this.free.splice(lo, 1);
    } else if (touchesPrev) {
      prev.size += size;
    } else if (touchesNext) {
      next.start = ptr;
      next.size += size;
    } else {
      this.free.splice(lo, 0, { start: ptr, size });
    }
  }

  /** Grows the memory so that a free block of `size` bytes exists at its end. */
  private grow(size: number): void {
    const last = this.free[this.free.length - 1];
    const tail = last !== undefined && last.start + last.size === this.end ? last : undefined;
    const missing = size - (tail ? tail.size : 0);
    const pages = Math.ceil(missing / WASM_PAGE_BYTES);
    try {
      this.memory.grow(pages);
    } catch (e) {
      throw new OutOfMemoryError(`allocator: cannot grow WASM memory by ${pages} pages (${(e as Error).message})`);
    }
    this.generation++;
    const newEnd = this.memory.buffer.byteLength;
    if (tail) tail.size += newEnd - this.end;
    else this.free.push({ start: this.end, size: newEnd - this.end });
    this.end = newEnd;
  }
}

export function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}
