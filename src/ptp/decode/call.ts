import type { KVCache } from "../../model/kv-cache.js";
import type { PickFeedback } from "../extra-blocks.js";
import type { PtpModel } from "../ptp-model.js";
import type { Sequence } from "./sequence.js";

/**
 * One model call shared by several sequences.
 *
 * Each sequence contributes a group of rows: BASE rows (tokens, run with the
 * teacher's weights: its pending tokens, then drafts to verify) and SLOT rows
 * (auxiliary-variable inputs, run with the student's gated LoRA). Every row
 * sees all of its own sequence's cached rows plus the rows of its group
 * listed in `sees`; never another sequence's rows. The block is laid out
 * [all groups' base rows | all groups' slot rows], so the LoRA gate is simply
 * "the last S rows".
 *
 * Indices in `sees` are group-local: base rows 0 .. B-1, then slot rows
 * B .. B+S-1. A row must list itself.
 */
export interface BaseRow {
  token: number;
  position: number;
  /** Default: causal among the base rows (row i sees base rows 0..i). */
  sees?: number[];
}

export interface SlotRow {
  /**
   * The row's input vector, or a token id: a query student's first slot
   * reads the last known token itself and runs the teacher's weights (the
   * gate skips slot rows that read a token), i.e. it is the teacher's own AR
   * query at that position.
   */
  input: Float32Array | number;
  position: number;
  sees: number[];
  /**
   * Pick feedback (spec/ptp.md 2.5): the row also reads the token `pick`
   * makes of the teacher's logits at group-local row `from` (its window's
   * first slot), computed inside the call.
   */
  feedback?: { from: number; pick(logits: Float32Array): number };
}

export interface Group {
  seq: Sequence;
  base: BaseRow[];
  slots: SlotRow[];
}

/** Logits of every row of a group (views into the call's output). */
/**
 * A group's rows of one call's logits: views into the call's array. Under
 * `decode` (the built-in decoders) that array is the next call's too
 * (runCall's `into`), so a decoder reads them in `accept` and keeps tokens;
 * `decodeWith` gives every call a fresh one.
 */
export interface GroupLogits {
  base: Float32Array[];
  slots: Float32Array[];
  /** The call's block row of each base row (for what the model keeps of the call's rows, e.g. Transformer.lastHidden). */
  baseRows: number[];
}

/**
 * One array for a decode's call logits, grown as calls need (by half again):
 * a fresh array of M x vocab values per call costs the host its page faults
 * (169-331 us a 4-row call at the widened 42M shape, docs/BENCHMARKS.md).
 * A call above `maxValues` (a long prompt's prefill) gets a fresh array, so
 * the decode does not hold that much for its whole length.
 */
export class ReusedLogits {
  private array = new Float32Array(0);
  constructor(private readonly maxValues = 1 << 22) {}
  /** An array of at least n values (the same one while it is big enough), or undefined above maxValues. */
  take(n: number): Float32Array | undefined {
    if (n > this.maxValues) return undefined;
    if (this.array.length < n) this.array = new Float32Array(Math.min(this.maxValues, Math.max(n, Math.ceil(1.5 * this.array.length))));
    return this.array;
  }
}

/** Base rows for tokens at consecutive positions from `start`, causal among themselves. */
export function chain(tokens: readonly number[], start: number): BaseRow[] {
  return tokens.map((token, i) => ({ token, position: start + i }));
}

export function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
}

/** The distinct values of `xs` in increasing order (`xs` itself when it already is). */
function increasing(xs: readonly number[]): readonly number[] {
  for (let i = 1; i < xs.length; i++) if (!(xs[i] > xs[i - 1])) return [...new Set(xs)].sort((a, b) => a - b);
  return xs;
}

/**
 * The base row a query slot repeats, if any: a slot that reads a token (a
 * query student's first slot, standing in for the last known token's row)
 * computes exactly what base row i computes when i reads the same token at
 * the same position and sees the same rows (besides itself). Its keys and
 * values are then those of base row i, and in the key order of every slot
 * that sees it they sit where base row i would, provided those slots see no
 * base row after i; so the call can skip the slot and hand out base row i
 * in its place, bit for bit (PTP-QUERY-ALIAS).
 */
function repeatedBaseRow(g: Group, j: number): number | undefined {
  const slot = g.slots[j];
  if (typeof slot.input !== "number") return undefined;
  const B = g.base.length,
    self = B + j;
  const others = (sees: readonly number[], me: number) => increasing(sees.filter((r) => r !== me));
  const slotSees = others(slot.sees, self);
  for (let i = B - 1; i >= 0; i--) {
    const b = g.base[i];
    if (b.token !== slot.input || b.position !== slot.position) continue;
    const baseSees = others(b.sees ?? range(0, i + 1), i);
    if (baseSees.length !== slotSees.length || baseSees.some((r, k) => r !== slotSees[k])) continue;
    // Every slot that sees this one must see no base row after i (nor i itself).
    const fits = g.slots.every((t) => !t.sees.includes(self) || t.sees.every((r) => r >= B || r < i));
    if (fits) return i;
  }
  return undefined;
}

/**
 * Whether a call's rows see exactly what a causal block sees: one sequence,
 * holding the cache's rows 0 .. C-1, whose rows are base rows that see the
 * rows before them (AR, a draft beside the teacher); slots and other masks
 * are not.
 */
function isCausal(groups: Group[], C: number): boolean {
  if (groups.length !== 1) return false;
  const { seq, base, slots } = groups[0];
  if (slots.length > 0 || base.some((b) => b.sees !== undefined) || seq.cacheRows.length !== C) return false;
  return seq.cacheRows.every((r, i) => r === i);
}

/** The rows' visible keys as a sparse mask (offsets, then each row's keys). */
function sparseMask(seen: readonly (readonly number[])[]): { offsets: Int32Array; keys: Int32Array } {
  const M = seen.length;
  const offsets = new Int32Array(M + 1);
  for (let m = 0; m < M; m++) offsets[m + 1] = offsets[m] + seen[m].length;
  const keys = new Int32Array(offsets[M]);
  for (let m = 0; m < M; m++) keys.set(seen[m], offsets[m]);
  return { offsets, keys };
}

/**
 * Runs the groups in one forward call; returns each group's logits. A query
 * slot that repeats a base row of its group is not run again: it gets that
 * row's logits, and the slots that see it see that row (repeatedBaseRow).
 * `aliasQueryRows: false` runs every slot (the tests compare the two).
 */
export function runCall(model: PtpModel, cache: KVCache, groups: Group[], aliasQueryRows = true, into?: ReusedLogits): GroupLogits[] {
  const { dim, vocabSize } = model.teacher.config;
  const C = cache.length;
  // Block row of each group-local index: base rows first (all groups), then the slots that run.
  const rowOf: number[][] = groups.map(() => []);
  let rows = 0;
  groups.forEach((g, gi) => {
    for (let i = 0; i < g.base.length; i++) rowOf[gi].push(rows++);
  });
  const aliases = groups.map((g) => g.slots.map((_, j) => (aliasQueryRows ? repeatedBaseRow(g, j) : undefined)));
  let S = 0;
  groups.forEach((g, gi) =>
    g.slots.forEach((_, j) => {
      const a = aliases[gi][j];
      rowOf[gi].push(a === undefined ? rows + S++ : rowOf[gi][a]);
    }),
  );
  const M = rows + S;

  const tokens = new Int32Array(M).fill(-1),
    positions = new Int32Array(M);
  const embeddings = S > 0 ? new Float32Array(M * dim) : undefined;
  // A sparse mask: each row lists only its own sequence's keys, so a row costs its sequence, not the batch.
  // None where the call is plainly causal (the same logits, spec/model.md; nothing to build or check per call).
  const seen: (readonly number[])[] = new Array(M);
  const causal = isCausal(groups, C);
  groups.forEach((g, gi) => {
    const local = (i: number) => rowOf[gi][i];
    // Keys in index order, each once: the sequence's cache rows (all below C), then its block rows.
    const own = causal ? [] : increasing(g.seq.cacheRows);
    const place = (row: number, sees: readonly number[]) => {
      if (!causal) seen[row] = [...own, ...increasing(sees.map(local)).map((r) => C + r)];
    };
    g.base.forEach((b, i) => {
      tokens[local(i)] = b.token;
      positions[local(i)] = b.position;
      place(local(i), b.sees ?? range(0, i + 1));
    });
    g.slots.forEach((s, j) => {
      if (aliases[gi][j] !== undefined) return;
      const row = local(g.base.length + j);
      positions[row] = s.position;
      if (typeof s.input === "number") tokens[row] = s.input;
      else embeddings!.set(s.input, row * dim);
      place(row, s.sees);
    });
  });

  const feedback: PickFeedback[] = [];
  groups.forEach((g, gi) =>
    g.slots.forEach((s, j) => {
      if (s.feedback) feedback.push({ row: rowOf[gi][g.base.length + j], from: rowOf[gi][s.feedback.from], pick: s.feedback.pick });
    }),
  );
  const logits = model.forward({ tokens, positions, embeddings, visible: causal ? undefined : sparseMask(seen) }, cache, S, feedback, into?.take(M * vocabSize));
  const rowLogits = (row: number) => logits.subarray(row * vocabSize, (row + 1) * vocabSize);
  return groups.map((g, gi) => ({
    base: g.base.map((_, i) => rowLogits(rowOf[gi][i])),
    slots: g.slots.map((_, j) => rowLogits(rowOf[gi][g.base.length + j])),
    baseRows: rowOf[gi].slice(0, g.base.length),
  }));
}

/**
 * After a call whose block started at cache row `firstRow`: the cache rows
 * of each sequence of the call, i.e. its rows from before plus the base rows
 * of its group it keeps (the verified tokens,
 * in position order). Every other row of the call is to be dropped; see
 * `survivors`, which then compacts the cache.
 */
export function commit(firstRow: number, sequences: Sequence[], groups: Group[], keep: Map<Sequence, number[]>): Map<Sequence, number[]> {
  let row = firstRow; // the call's base rows come first, group after group
  const rows = new Map<Sequence, number[]>();
  for (const g of groups) {
    // Row i holds token i; a sequence that stopped early (BOS, step limit) keeps no rows past its last token.
    rows.set(g.seq, [...g.seq.cacheRows, ...(keep.get(g.seq) ?? []).map((i) => row + i)].slice(0, g.seq.tokens.length));
    row += g.base.length;
  }
  for (const seq of sequences) if (!rows.has(seq) && !seq.done) rows.set(seq, seq.cacheRows);
  return rows;
}

/**
 * The rows to keep in the cache (those of unfinished sequences), after
 * which each such sequence's row indices are renumbered to the compacted
 * cache. Kept entries are moved, never recomputed.
 */
export function survivors(sequences: Sequence[], rows: Map<Sequence, number[]>): number[] {
  const live = sequences.filter((s) => !s.done && rows.has(s));
  // One sequence whose rows already lead the cache in order (decoding alone): nothing moves.
  const alone = live.length === 1 ? rows.get(live[0])! : undefined;
  if (alone?.every((r, i) => r === i)) {
    live[0].cacheRows = alone;
    live[0].cached = alone.length;
    return alone;
  }
  // Mark the kept rows in cache order and number them (linear: no sort, no map).
  let end = 0;
  for (const seq of live) for (const r of rows.get(seq)!) end = Math.max(end, r + 1);
  const kept = new Uint8Array(end);
  for (const seq of live) for (const r of rows.get(seq)!) kept[r] = 1;
  const newIndex = new Int32Array(end);
  const all: number[] = [];
  for (let r = 0; r < end; r++) {
    if (!kept[r]) continue;
    newIndex[r] = all.length;
    all.push(r);
  }
  for (const seq of live) {
    seq.cacheRows = rows.get(seq)!.map((r) => newIndex[r]);
    seq.cached = seq.cacheRows.length; // one cache row per finalized token, in position order
  }
  return all;
}
