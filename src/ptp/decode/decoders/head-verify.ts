import type { KVCache } from "../../../model/kv-cache.js";
import type { Transformer } from "../../../model/transformer.js";
import type { DraftHead } from "../../draft-head.js";
import { besideTeacherDecoder, NO_DRAFT, sequenceState, type Decoder, type DraftConfidence, type Drafter } from "../decoder.js";
import type { Sequence } from "../sequence.js";
import { bestDraftCount, headCanPay, moreDraftsCanPay } from "../call-cost.js";

interface HeadVerifyState {
  /** The head's KV cache for this sequence: rows 0 .. length-1 hold tokens 0 .. length-1, from their final teacher hidden states. */
  headCache?: KVCache;
  /** Drafts for positions next, next + 1, ... in the teacher call planned for this sequence. */
  drafts?: number[];
}

/** With a cost table: after this many calls in a row at which not even a sure draft pays, the head is given up. */
const GIVE_UP_CALLS = 8;

/**
 * Algorithm 1 (method section 4.1) with a draft head (spec/ptp.md 2.6) as
 * the proposer. Per step:
 * 1. the head drafts the tokens after the pending one, one slot at a time:
 *    the slot for position k sits at k - 1, reads the token there (the
 *    pending token, then each draft before it) and u(k - 1), sees the
 *    head's keys and values of every verified row, and drafts Pick(u(k))
 *    of its logits;
 * 2. one teacher call runs the pending token and the drafts, keeps the
 *    longest prefix of drafts equal to its own picks plus its pick at the
 *    first mismatch (or after the last draft);
 * 3. the final hidden states of the rows the call kept give the head's
 *    keys and values for them (ingest).
 * Each teacher call has `window` rows (the pending token and window - 1
 * drafts) and finalizes 1 .. window tokens. The head only decides how
 * many: the output is the teacher's AR sample path for the u's.
 *
 * A step whose pending rows are more than one (the prompt) has no drafts:
 * the head has not yet seen the rows before the last one.
 *
 * With `stop` (DecodeOptions.draftStop > 0) the head stops drafting once
 * the probabilities it gives its drafts (`confidence`) multiply to less
 * than `stop`, that last draft left out: a draft unlikely to pass costs a
 * teacher row and a slot for little. With `cost` (draftStop "auto": the
 * teacher's measured time of a call of r rows, call-cost.ts) those
 * products are read as the drafts' chances of passing and a call carries
 * the drafts that make its expected tokens per unit of time largest, each
 * draft costing its teacher row and its slot (timed here); the head stops
 * drafting once no further draft could raise that; after GIVE_UP_CALLS
 * calls in a row at which not even drafts sure to pass would beat the
 * teacher alone, their slots and the head's keys and values of the kept
 * tokens (timed here too) counted, it gives the head up (no slots, no
 * ingest: the teacher decodes alone, as AR). Only the number of rows
 * changes.
 */
export function headVerifyDecoder(teacher: Transformer, head: DraftHead, window: number, toDraft: Drafter, confidence?: DraftConfidence, stop: number | readonly number[] = 0): Decoder<HeadVerifyState> {
  const state = sequenceState<HeadVerifyState>(() => ({}));
  const cost = typeof stop === "number" ? undefined : stop;
  const below = typeof stop === "number" ? stop : 0;
  /** With `cost`: what drafting a token costs, ms: the fastest slot timed so far (another tenant only adds time); 0 until one is. */
  let slotMs: number | undefined;
  /**
   * With `cost`: calls in a row at which not even a sure draft would pay,
   * and whether the decoder has given the head up for the rest of the
   * decode (no slots, no keys and values ingested: AR through the teacher).
   */
  let unpaid = 0,
    givenUp = false;
  /** With `cost`: what the head's keys and values of a kept token cost, ms (the fastest ingest timed so far, per token). */
  let ingestMs: number | undefined;
  const { seqLen, vocabSize } = head.config;
  // Every slot's logits land here: each is read (its draft, its chance) before the next slot runs.
  const slotLogits = new Float32Array(vocabSize);

  const release = (seq: Sequence) => {
    const s = state(seq);
    s.headCache?.free();
    s.headCache = undefined;
  };

  /** The head's drafts for next, next + 1, ... (none when its cache does not reach the pending token). */
  const propose = (seq: Sequence): number[] => {
    const s = state(seq),
      next = seq.next;
    if (seq.pending.length !== 1 || s.headCache?.length !== next - 1) return [];
    if (cost) {
      unpaid = headCanPay(cost, window - 1, slotMs ?? 0, ingestMs ?? 0) ? 0 : unpaid + 1;
      if (unpaid >= GIVE_UP_CALLS) givenUp = true;
      if (givenUp) return [];
    }
    // The slot drafting position k sits at k - 1, below the head's seqLen.
    const count = Math.min(window - 1, seq.room - 1, seqLen - next + 1);
    const cache = s.headCache;
    const drafts: number[] = [];
    const chances: number[] = [];
    let chance = 1;
    try {
      for (let j = 0; j < count; j++) {
        if (cost && !moreDraftsCanPay(chances, cost, count, slotMs ?? 0)) break;
        const started = cost ? performance.now() : 0;
        const k = next + j;
        const before = j === 0 ? seq.last : drafts[j - 1];
        const logits = head.slot(cache, k - 1, seq.u.forStudent(k - 1), before, slotLogits);
        const d = toDraft(seq, k, j + 1, logits);
        if (d === NO_DRAFT) break;
        if ((cost || below > 0) && confidence) {
          chance *= confidence(seq, j + 1, logits, d);
          if (!cost && !(chance >= below)) break;
          chances.push(chance);
        }
        if (cost) slotMs = Math.min(slotMs ?? Number.POSITIVE_INFINITY, performance.now() - started);
        drafts.push(d);
      }
    } finally {
      cache.crop(next - 1); // drop the slots, keep the verified rows
    }
    if (cost && confidence) drafts.length = bestDraftCount(chances, cost, slotMs ?? 0);
    return drafts;
  };

  return besideTeacherDecoder(
    state,
    propose,
    (seq, keep, group, out) => {
      if (seq.done || givenUp) release(seq);
      else {
        const started = cost ? performance.now() : 0;
        ingest(
          seq,
          state(seq),
          keep.map((i) => group.base[i].position),
          keep.map((i) => out.baseRows[i]),
        );
        if (cost && keep.length > 0) ingestMs = Math.min(ingestMs ?? Number.POSITIVE_INFINITY, (performance.now() - started) / keep.length);
      }
    },
    release,
  );

  /** The head's keys and values for the rows the call kept (call rows `rows`, at `positions`), from the teacher's final hidden states. */
  function ingest(seq: Sequence, s: HeadVerifyState, positions: number[], rows: number[]): void {
    const D = teacher.config.dim;
    s.headCache ??= head.newCache(seq.steps + 1);
    // The call's kept rows follow the verified rows the head has, by the sequence's invariant (sequence.ts).
    if (s.headCache.length !== positions[0]) throw new Error(`head-verify: the head holds ${s.headCache.length} rows but the call kept rows from position ${positions[0]}`);
    const all = teacher.lastHidden();
    const hidden = new Float32Array(rows.length * D);
    rows.forEach((r, i) => hidden.set(all.subarray(r * D, (r + 1) * D), i * D));
    head.ingest(s.headCache, hidden, positions);
  }
}
