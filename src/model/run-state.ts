import { allocAll, type Backend, type Buffer, type DType } from "../backends/backend.js";
import type { AttentionMask } from "./attention.js";
import { denseMask, type Block } from "./block.js";
import { kvDim, type ModelConfig } from "./config.js";

/**
 * Activation buffers for blocks of up to `rows` rows, allocated once and
 * reused by every forward call (grown when a larger block arrives).
 */
export class RunState {
  x!: Buffer; // residual stream [rows, dim]
  xb!: Buffer; // normed input of a sublayer [rows, dim]
  xb2!: Buffer; // sublayer output before the residual add [rows, dim]
  q!: Buffer; // [rows, dim]
  k!: Buffer; // [rows, kvDim]
  v!: Buffer; // [rows, kvDim]
  att!: Buffer; // attention output [rows, dim]
  hb!: Buffer; // [rows, hidden]
  hb2!: Buffer; // [rows, hidden]
  logits!: Buffer; // [rows, vocab]
  ids!: Buffer; // i32 [rows]
  positions!: Buffer; // i32 [rows]
  mask: Buffer | null = null; // u8 [rows * keys], grown on demand
  sparse: Buffer | null = null; // i32 sparse mask [rows + 1 + visible keys], grown on demand
  rows = 0;

  constructor(
    private readonly backend: Backend,
    private readonly config: ModelConfig,
  ) {}

  /** Make room for a block of M rows attending over nKeys keys (with a mask if `masked`). */
  reserve(M: number, nKeys: number, masked: boolean): void {
    // New buffers before the old ones go (allocAll): a failed allocation leaves the old, usable state.
    if (M > this.rows) {
      const rows = Math.max(M, 2 * this.rows, 1);
      const c = this.config;
      const D = rows * c.dim,
        KV = rows * kvDim(c),
        H = rows * c.hiddenDim;
      const made = allocAll(this.backend, [D, D, D, D, KV, KV, D, H, H, rows * c.vocabSize, [rows, "i32"], [rows, "i32"]]);
      this.releaseRows();
      [this.x, this.xb, this.xb2, this.q, this.k, this.v, this.att, this.hb, this.hb2, this.logits, this.ids, this.positions] = made;
      this.rows = rows;
    }
    if (masked && (!this.mask || this.mask.length < M * nKeys)) this.mask = this.grow(this.mask, M * nKeys, "u8");
  }

  /** `old` replaced by a buffer of at least n elements (twice old's length when that is more), allocated before old is freed. */
  private grow(old: Buffer | null, n: number, dtype: DType): Buffer {
    const buf = this.backend.alloc(Math.max(n, 2 * (old?.length ?? 0)), dtype);
    if (old) this.backend.free(old);
    return buf;
  }

  /**
   * Room for a block of M rows after `cached` rows, its position ids and its
   * mask uploaded; returns the mask as attention takes it. A sparse mask
   * goes to the backend as is when it has sparse attention, else as the
   * dense mask.
   */
  prepare(block: Pick<Block, "positions" | "mask" | "visible">, cached: number, M: number): AttentionMask {
    const b = this.backend;
    const sparse = block.visible !== undefined && b.attentionSparse !== undefined;
    const dense = block.mask ?? (block.visible && !sparse ? denseMask(block.visible, M, cached + M) : undefined);
    this.reserve(M, cached + M, dense !== undefined);
    const mask: AttentionMask = dense ? { dense: this.mask! } : sparse ? { sparse: this.reserveSparse(M + 1 + block.visible!.offsets[M]) } : {};
    if (dense) b.upload(this.mask!, dense);
    if (sparse) {
      b.upload(mask.sparse!, block.visible!.offsets.subarray(0, M + 1));
      b.upload(mask.sparse!, block.visible!.keys.subarray(0, block.visible!.offsets[M]), M + 1);
    }
    b.upload(this.positions, Int32Array.from(block.positions));
    return mask;
  }

  /** Room for a sparse mask of `n` i32s. */
  reserveSparse(n: number): Buffer {
    if (!this.sparse || this.sparse.length < n) this.sparse = this.grow(this.sparse, n, "i32");
    return this.sparse;
  }

  /** Frees the row buffers (not the masks). */
  private releaseRows(): void {
    if (this.rows === 0) return;
    for (const buf of [this.x, this.xb, this.xb2, this.q, this.k, this.v, this.att, this.hb, this.hb2, this.logits, this.ids, this.positions]) this.backend.free(buf);
    this.rows = 0;
  }

  release(): void {
    if (this.rows === 0) return;
    this.releaseRows();
    if (this.mask) this.backend.free(this.mask);
    if (this.sparse) this.backend.free(this.sparse);
    this.mask = null;
    this.sparse = null;
  }
}
