import { Mulberry32 } from "../../../util/prng.js";
import type { PtpModel } from "../../ptp-model.js";
import { range, type BaseRow, type SlotRow } from "../call.js";
import { proposalWindow, usableDrafts, verifyDrafts, stateDecoder, type Decoder, type Drafter } from "../decoder.js";
import type { Sequence } from "../sequence.js";

interface MultiDraftState {
  /** Candidate draft sequences for positions next, next + 1, ... */
  candidates: number[][];
  proposed: number;
}

/**
 * Multiple drafts (method section 4.4): M proposal windows in one student
 * call, window 0 driven by the sequence's own u's and windows 1..M-1 by
 * independent u-vectors; then one teacher call verifies every distinct
 * draft, each as its own branch of base rows (a branch sees the context and
 * its own earlier tokens only), and the branch with the longest verified
 * prefix is kept.
 *
 * Exactness: verification always picks with the sequence's own u's, so the
 * output is the teacher's sample path for those u's, as for every decoder.
 * The paper instead keeps the draft whose u's sit most centrally in their
 * teacher bins and lets those u's drive the output; here the caller's u's
 * are fixed inputs, and verifying all M drafts at once keeps the best
 * prefix directly.
 */
export function multiDraftDecoder(model: PtpModel, window: number, drafts: number, toDraft: Drafter, seed = 1): Decoder<MultiDraftState> {
  if (!Number.isInteger(drafts) || drafts < 1) throw new RangeError(`multi-draft: drafts must be a positive integer, got ${drafts}`);
  // u-vector i (i >= 1) at position k: a fixed function of (seed, i, k), so runs are reproducible.
  const altU = (i: number, k: number) => new Mulberry32((seed * 0x9e3779b1) ^ (i * 0x85ebca77) ^ (k * 0xc2b2ae3d)).nextFloat();
  const uOf = (seq: Sequence, i: number) => (i === 0 ? (k: number) => seq.u.forStudent(k) : (k: number) => altU(i, k));
  return stateDecoder<MultiDraftState>("multi-draft", () => ({ candidates: [], proposed: 0 }), {
    plan(seq, s, base) {
      const P = base.length;
      if (!s.candidates?.length) {
        const count = Math.min(window, seq.room);
        const slots: SlotRow[] = [];
        for (let i = 0; i < drafts; i++) slots.push(...proposalWindow(model, seq, seq.next, seq.last, count, range(0, P), P + slots.length, toDraft, uOf(seq, i)));
        return { seq, base, slots };
      }
      const rows: BaseRow[] = [...base];
      for (const c of s.candidates) {
        const first = rows.length;
        c.forEach((token, j) => rows.push({ token, position: seq.next + j, sees: [...range(0, P), ...range(first, first + j + 1)] }));
      }
      return { seq, base: rows, slots: [] };
    },
    accept(seq, s, group, out) {
      const P = seq.pending.length;
      if (group.slots.length > 0) {
        const count = group.slots.length / drafts;
        const proposals = range(0, drafts).map((i) => range(0, count).map((j) => toDraft(seq, seq.next + j, j, out.slots[i * count + j], uOf(seq, i))));
        const [t] = verifyDrafts(seq, out.base, P, []);
        seq.finalize([t]);
        s.proposed = 1;
        // Candidates that agree with the teacher's first token, without duplicates.
        const seen = new Set<string>();
        s.candidates = [];
        for (const p of proposals) {
          const rest = usableDrafts(p.slice(1, Math.max(1, seq.room)));
          if (p[0] !== t || rest.length === 0 || seen.has(rest.join(","))) continue;
          seen.add(rest.join(","));
          s.candidates.push(rest);
        }
        if (s.candidates.length === 0) seq.acceptedPerStep.push(1);
        return range(0, P);
      }
      // Verify each branch: the last pending row predicts `next`, a branch's row j predicts next + j + 1.
      let best: number[] = [],
        bestFirst = 0,
        first = P;
      for (const c of s.candidates) {
        const logits = [out.base[P - 1], ...out.base.slice(first, first + c.length)];
        const verified = verifyDrafts(seq, logits, 1, c);
        if (verified.length > best.length) (best = verified), (bestFirst = first);
        first += c.length;
      }
      seq.finalize(best);
      seq.acceptedPerStep.push(s.proposed + best.length);
      s.candidates = [];
      return [...range(0, P), ...range(bestFirst, bestFirst + best.length - 1)];
    },
  });
}
