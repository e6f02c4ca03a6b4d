import { allocAll, type Backend, type Buffer } from "../backends/backend.js";
import type { ModelConfig } from "../model/config.js";
import type { RowAdapter } from "../model/linear.js";
import { LINEAR_NAMES, linearShape, type LinearName } from "../model/weights.js";
import type { StudentConfig, StudentWeights } from "./student-weights.js";

/**
 * Gated LoRA on a backend: for the rows of a call from `slotStart` on (the
 * auxiliary slots), every linear layer of every block adds
 *   (alpha / r) (x A^T) B^T
 * to the base output. Rows before `slotStart` (context and verification
 * rows) are never touched, so they run the teacher's exact weights and their
 * keys and values are exactly the teacher's.
 *
 * alpha / r is folded into B once, at upload.
 */
export class GatedLora implements RowAdapter {
  /** Rows [slotStart, M) of the current call are auxiliary slots. */
  slotStart = Infinity;
  /** Per slot row of the current call, 1 where the row reads a token (a query slot): no LoRA there. */
  teacherRows: Uint8Array | null = null;
  private readonly A: Record<LinearName, Buffer>[];
  private readonly B: Record<LinearName, Buffer>[];
  private readonly rank: number;
  private scratch: { rows: number; xs: Buffer; t: Buffer; d: Buffer; ys: Buffer } | null = null;

  constructor(
    private readonly backend: Backend,
    private readonly teacher: ModelConfig,
    config: StudentConfig,
    weights: StudentWeights,
  ) {
    this.rank = config.rank;
    const scale = config.alpha / config.rank;
    const upload = (data: Float32Array) => {
      const buf = backend.alloc(data.length);
      backend.upload(buf, data);
      return buf;
    };
    this.A = weights.layers.map((l) => Object.fromEntries(LINEAR_NAMES.map((n) => [n, upload(l[n].A)])) as Record<LinearName, Buffer>);
    this.B = weights.layers.map((l) => Object.fromEntries(LINEAR_NAMES.map((n) => [n, upload(l[n].B.map((b) => Math.fround(b * scale)))])) as Record<LinearName, Buffer>);
  }

  /** Per row of a call of M rows, 1 where the LoRA acts (a slot row that reads no token). */
  slotRows(M: number): Uint8Array {
    const out = new Uint8Array(M);
    for (let m = Math.max(0, this.slotStart); m < M; m++) out[m] = this.teacherRows?.[m - this.slotStart] ? 0 : 1;
    return out;
  }

  apply(layer: number, name: LinearName, y: Buffer, x: Buffer, M: number): void {
    const S = M - this.slotStart;
    if (S <= 0) return;
    const [out, inp] = linearShape(this.teacher, name);
    const s = this.reserve(S),
      b = this.backend,
      r = this.rank,
      from = this.slotStart;
    b.copy(s.xs, 0, x, from * inp, S * inp);
    b.matmul(s.t, s.xs, this.A[layer][name], S, inp, r);
    b.matmul(s.d, s.t, this.B[layer][name], S, r, out);
    b.copy(s.ys, 0, y, from * out, S * out);
    b.add(s.ys, s.d, S * out);
    const skip = this.teacherRows;
    if (!skip || !skip.includes(1)) {
      b.copy(y, from * out, s.ys, 0, S * out);
      return;
    }
    // Copy back the runs of LoRA rows only; the query rows keep the teacher's output.
    for (let j = 0; j < S; ) {
      if (skip[j]) {
        j++;
        continue;
      }
      let e = j;
      while (e < S && !skip[e]) e++;
      b.copy(y, (from + j) * out, s.ys, j * out, (e - j) * out);
      j = e;
    }
  }

  /**
   * Scratch for S slot rows. The new buffers are all allocated before the
   * old ones are freed (allocAll): should an allocation fail (out of
   * memory), the old scratch stays in place, so the model still runs
   * (freeing first left it pointing at freed buffers for good).
   */
  private reserve(S: number) {
    if (this.scratch && this.scratch.rows >= S) return this.scratch;
    const rows = Math.max(S, 2 * (this.scratch?.rows ?? 0));
    const width = Math.max(this.teacher.dim, this.teacher.hiddenDim);
    const b = this.backend;
    const [xs, t, d, ys] = allocAll(b, [rows * width, rows * this.rank, rows * width, rows * width]);
    this.releaseScratch();
    this.scratch = { rows, xs, t, d, ys };
    return this.scratch;
  }

  private releaseScratch(): void {
    if (!this.scratch) return;
    for (const buf of [this.scratch.xs, this.scratch.t, this.scratch.d, this.scratch.ys]) this.backend.free(buf);
    this.scratch = null;
  }

  dispose(): void {
    this.releaseScratch();
    for (const set of [...this.A, ...this.B]) for (const buf of Object.values(set)) this.backend.free(buf);
  }
}
