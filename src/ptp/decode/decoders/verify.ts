import type { PtpModel } from "../../ptp-model.js";
import { chain, range } from "../call.js";
import { proposalWindow, usableDrafts, verifyDrafts, stateDecoder, type Decoder, type Drafter } from "../decoder.js";

interface VerifyState {
  /** Drafts for positions next, next + 1, ... awaiting the teacher's call. */
  drafts: number[];
  /** Tokens finalized by the proposal call of the current step. */
  proposed: number;
}

/**
 * The paper's Algorithm 1: a student call proposes N tokens from
 * u(next) .. u(next + N - 1), then a teacher call scores them and keeps the
 * longest prefix equal to its own picks, plus its pick at the first
 * mismatch.
 *
 * The student call also carries the pending context row, whose (teacher)
 * logits already give the teacher's token for `next`; when the first draft
 * disagrees with it the teacher call would verify nothing, so it is skipped.
 */
export function verifyDecoder(model: PtpModel, window: number, toDraft: Drafter): Decoder<VerifyState> {
  return stateDecoder<VerifyState>("verify", () => ({ drafts: [], proposed: 0 }), {
    plan(seq, s, base) {
      if (s.drafts?.length) return { seq, base: [...base, ...chain(s.drafts, seq.next)], slots: [] };
      const count = Math.min(window, seq.room);
      return { seq, base, slots: proposalWindow(model, seq, seq.next, seq.last, count, range(0, base.length), base.length) };
    },
    accept(seq, s, group, out) {
      const P = seq.pending.length;
      if (group.slots.length > 0) {
        // Proposal call: drafts for next, next + 1, ...; the teacher's token for `next` comes with it.
        const drafts = out.slots.map((logits, j) => toDraft(seq, seq.next + j, j, logits));
        const [t] = verifyDrafts(seq, out.base, P, []);
        seq.finalize([t]);
        s.proposed = 1;
        s.drafts = drafts[0] === t ? usableDrafts(drafts.slice(1, Math.max(1, seq.room))) : [];
        if (s.drafts.length === 0) seq.acceptedPerStep.push(1);
        return range(0, P);
      }
      // Teacher call: verify the remaining drafts.
      const verified = verifyDrafts(seq, out.base, P, s.drafts);
      seq.finalize(verified);
      seq.acceptedPerStep.push(s.proposed + verified.length);
      s.drafts = [];
      return range(0, P + verified.length - 1);
    },
  });
}
