import type { SparseMask } from "../../../model/block.js";
import type { KVCache } from "../../../model/kv-cache.js";
import type { DraftModel } from "../../draft-model.js";
import { range, ReusedLogits } from "../call.js";
import { besideTeacherDecoder, proposalWindow, usableDrafts, sequenceState, type Decoder, type Drafter } from "../decoder.js";
import type { Sequence } from "../sequence.js";

interface DraftVerifyState {
  /** The draft model's KV cache for this sequence: rows 0 .. length-1 hold tokens 0 .. length-1 at their positions. */
  draftCache?: KVCache;
  /** Drafts for positions next, next + 1, ... in the teacher call planned for this sequence. */
  drafts?: number[];
}

/**
 * Algorithm 1 (method section 4.1) with a standalone draft model as the
 * proposer: per step, a draft-model call proposes tokens for next,
 * next + 1, ... from u(next), u(next + 1), ...; then the teacher call
 * scores the pending tokens and the drafts and keeps the longest prefix of
 * drafts equal to its own picks, plus its pick at the first mismatch.
 *
 * Each sequence has a draft-side KV cache mirroring its finalized tokens:
 * the draft call feeds the finalized tokens not yet in it (base rows at
 * their positions), then the proposal window's slots (slot j at position
 * next - 1 + j, seeing every base row and slots 0..j: the causal mask of
 * this layout); afterwards the slots are cropped away. The draft's
 * weights only decide how many tokens each teacher call finalizes, never
 * which: the output is the teacher's AR sample path for the u's.
 *
 * Drafts per step: min(window, room - 1) (the teacher's pick after the
 * last draft fills the last position), fewer where the draft model's
 * seqLen ends; with none, the step is a plain AR step of the teacher.
 */
export function draftVerifyDecoder(draft: DraftModel, window: number, toDraft: Drafter): Decoder<DraftVerifyState> {
  const state = sequenceState<DraftVerifyState>(() => ({}));
  let calls = 0;
  const { seqLen, dim, vocabSize } = draft.config;
  // Each call's logits are read (toDraft) before the next call: one array serves them all.
  const reused = new ReusedLogits();

  const release = (seq: Sequence) => {
    const s = state(seq);
    s.draftCache?.free();
    s.draftCache = undefined;
  };

  /** One draft-model call for this sequence; returns its drafts for next, next + 1, ... */
  const propose = (seq: Sequence): number[] => {
    const next = seq.next;
    // Slot j sits at position next - 1 + j, which must be below the draft's seqLen.
    const count = Math.min(window, seq.room - 1, seqLen - next + 1);
    if (count <= 0) return [];
    const s = state(seq);
    s.draftCache ??= draft.newCache(seq.steps);
    const cache = s.draftCache;
    const done = cache.length;
    const baseTokens = seq.tokens.slice(done, next);
    const B = baseTokens.length;
    const slots = proposalWindow(draft, seq, next, seq.last, count, range(0, B), B, toDraft);
    const M = B + count;
    const tokens = new Int32Array(M).fill(-1);
    const positions = new Int32Array(M);
    const embeddings = new Float32Array(M * dim);
    baseTokens.forEach((t, i) => ((tokens[i] = t), (positions[i] = done + i)));
    slots.forEach((slot, j) => ((positions[B + j] = slot.position), embeddings.set(slot.input as Float32Array, (B + j) * dim))); // draft models have no query slots (draft-file.ts)
    let logits: Float32Array;
    try {
      logits = draft.forward({ tokens, positions, embeddings, visible: draftMask(done, B, count, draft.hybrid) }, cache, reused.take(M * vocabSize));
    } catch (e) {
      release(seq);
      throw e;
    }
    calls++;
    cache.crop(next); // keep the finalized tokens, drop the slots
    return usableDrafts(range(0, count).map((j) => toDraft(seq, next + j, j, logits.subarray((B + j) * vocabSize, (B + j + 1) * vocabSize))));
  };

  return {
    ...besideTeacherDecoder(state, propose, (seq) => seq.done && release(seq), release),
    extraCalls: () => calls,
  };
}

/**
 * Who sees whom in a draft call (keys: the draft's cached rows 0 .. done-1,
 * which hold tokens at their positions, then this call's rows): base row i
 * is causal; slot j sees the finalized rows and slots 0..j, except that a
 * hybrid draft's slot 0 stands in for the last finalized token's row, so
 * its window does not see that row (the layout it was trained with:
 * windowRows in src/train/ptp-windows.ts).
 */
export function draftMask(done: number, B: number, count: number, hybrid: boolean): SparseMask {
  const next = done + B; // keys 0 .. next-1 are the finalized rows
  const seen = hybrid ? next - 1 : next;
  const offsets = new Int32Array(B + count + 1);
  const keys: number[] = [];
  for (let i = 0; i < B; i++) {
    for (let k = 0; k <= done + i; k++) keys.push(k);
    offsets[i + 1] = keys.length;
  }
  for (let j = 0; j < count; j++) {
    for (let k = 0; k < seen; k++) keys.push(k);
    for (let k = 0; k <= j; k++) keys.push(next + k);
    offsets[B + j + 1] = keys.length;
  }
  return { offsets, keys: Int32Array.from(keys) };
}
