import type { PtpModel } from "../../ptp-model.js";
import { chain, range, type SlotRow } from "../call.js";
import { finiteLogits, proposalWindow, usableDrafts, stateDecoder, verifyDrafts, type Decoder, type Drafter } from "../decoder.js";

interface SelfState {
  drafts: number[];
  proposed: number;
}

/** The self decoder samples from the student itself: a student without a distribution cannot decode. */
function checkStudentRow(logits: Float32Array): void {
  if (!finiteLogits(logits)) throw new Error("the student's logits are not finite (NaN/Inf); the self decoder samples from the student itself, so it cannot decode with this student");
}

/**
 * Self verification (method section 4.3): a C-PTP model with no teacher
 * checks its own drafts with its own AR conditional.
 *
 * The model's AR conditional at position k is a single slot at k - 1 whose
 * window holds no u yet (the learned start vector), seeing the context
 * t_<k: P_self(t_k | t_<k). Picking from it with u(k) is the model's own AR
 * sample path, never using more than one u at a time.
 *
 * Proposal call: a C-PTP window of N slots after the context. Its slot 0 IS
 * that AR query, so its pick is final. Verification call: the remaining
 * drafts as base rows, and after each prefix one single-slot AR query; keep
 * the drafts that equal the queries' picks, plus the pick at the first
 * mismatch (or after the last draft).
 */
export function selfDecoder(model: PtpModel, window: number, toDraft: Drafter): Decoder<SelfState> {
  // An option that does not go with the student: a RangeError, as makeDecoder's for a draft-head student.
  if (model.variant !== "C") throw new RangeError(`decode: the self decoder needs a C-PTP student (its own u withheld); this one is ${model.variant}-PTP, decoded with "verify", "single-call" or "multi-draft" (or "ar")`);
  return stateDecoder<SelfState>("self", () => ({ drafts: [], proposed: 0 }), {
    plan(seq, s, base) {
      if (!s.drafts?.length) {
        return { seq, base, slots: proposalWindow(model, seq, seq.next, seq.last, Math.min(window, seq.room), range(0, base.length), base.length, toDraft) };
      }
      const all = [...base, ...chain(s.drafts, seq.next)];
      // One AR query after each prefix: slot i predicts position next + i, seeing the pending rows and drafts 0..i-1.
      const slots: SlotRow[] = range(0, s.drafts.length + 1).map((i) => ({
        input: model.query ? (i === 0 ? seq.last : s.drafts[i - 1]) : model.slotInput(0, undefined, i === 0 ? seq.last : s.drafts[i - 1]),
        position: seq.next - 1 + i,
        sees: [...range(0, base.length + i - (model.hybrid ? 1 : 0)), all.length + i],
      }));
      return { seq, base: all, slots };
    },
    accept(seq, s, _group, out) {
      const P = seq.pending.length;
      if (!s.drafts?.length) {
        const drafts = out.slots.map((logits, j) => toDraft(seq, seq.next + j, j, logits));
        checkStudentRow(out.slots[0]);
        seq.finalize([seq.pickAt(seq.next, out.slots[0])]); // slot 0 is the AR query itself
        s.proposed = 1;
        s.drafts = usableDrafts(drafts.slice(1, Math.max(1, seq.room)));
        if (s.drafts.length === 0) seq.acceptedPerStep.push(1);
        return range(0, P);
      }
      // The queries' rows are the slots, query i's for position next + i: verified as a teacher's rows are.
      const verified = verifyDrafts(seq, out.slots, 1, s.drafts, checkStudentRow);
      seq.finalize(verified);
      seq.acceptedPerStep.push(s.proposed + verified.length);
      s.drafts = [];
      return range(0, P + verified.length - 1);
    },
  });
}
