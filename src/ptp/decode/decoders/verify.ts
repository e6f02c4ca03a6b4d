import type { PtpModel } from "../../ptp-model.js";
import { chain, range } from "../call.js";
import { proposalWindow, runnerUps as runnerUpsOf, runnerUpRow, takeRunnerUp, usableDrafts, verifyDrafts, stateDecoder, type Decoder, type Drafter } from "../decoder.js";

interface VerifyState {
  /** Drafts for positions next, next + 1, ... awaiting the teacher's call. */
  drafts: number[];
  /** Each draft's runner-ups, with runner-ups on; and the teacher call's rows reading them. */
  runnerUps: number[][];
  runnerUpRows: number[][];
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
 *
 * With `runnerUps` = R > 0 (0 by default: the paper's Algorithm 1 verifies
 * one chain), the teacher call also reads each draft's first R runner-ups
 * (runnerUps in decoder.ts), each as a row at the draft's position seeing
 * what the draft sees; when the teacher rejects draft m and its token is
 * one of those runner-ups, that row is the teacher's own row there, so the
 * step also finalizes the teacher's pick after it and keeps that row.
 */
export function verifyDecoder(model: PtpModel, window: number, toDraft: Drafter, runnerUps = 0): Decoder<VerifyState> {
  return stateDecoder<VerifyState>("verify", () => ({ drafts: [], runnerUps: [], runnerUpRows: [], proposed: 0 }), {
    plan(seq, s, base) {
      if (s.drafts?.length) {
        const P = base.length,
          rows = [...base, ...chain(s.drafts, seq.next)];
        s.runnerUpRows = s.drafts.map((_, i) =>
          (s.runnerUps[i] ?? []).map((token) => {
            rows.push(runnerUpRow(token, seq.next, P, i, rows.length));
            return rows.length - 1;
          }),
        );
        return { seq, base: rows, slots: [] };
      }
      const count = Math.min(window, seq.room);
      return { seq, base, slots: proposalWindow(model, seq, seq.next, seq.last, count, range(0, base.length), base.length, toDraft) };
    },
    accept(seq, s, group, out) {
      const P = seq.pending.length;
      if (group.slots.length > 0) {
        // Proposal call: drafts for next, next + 1, ...; the teacher's token for `next` comes with it.
        const drafts = out.slots.map((logits, j) => toDraft(seq, seq.next + j, j, logits));
        // Runner-ups for the drafts the teacher call will check (slot 0's token is settled here).
        const seconds = drafts.map((d, j) => (j === 0 ? [] : runnerUpsOf(toDraft, seq, seq.next + j, j, out.slots[j], d, runnerUps)));
        const [t] = verifyDrafts(seq, out.base, P, []);
        seq.finalize([t]);
        s.proposed = 1;
        s.drafts = drafts[0] === t ? usableDrafts(drafts.slice(1, Math.max(1, seq.room))) : [];
        s.runnerUps = seconds.slice(1, 1 + s.drafts.length);
        if (s.drafts.length === 0) seq.acceptedPerStep.push(1);
        return range(0, P);
      }
      // Teacher call: verify the remaining drafts (and read the runner-up of the first rejected one).
      const verified = verifyDrafts(seq, out.base, P, s.drafts);
      const m = verified.length - 1,
        keep = range(0, P + m);
      if (m < s.drafts.length) {
        const rows = s.runnerUpRows[m] ?? [];
        const c = takeRunnerUp(seq, verified, s.runnerUps[m] ?? [], (c) => out.base[rows[c]]);
        if (c >= 0) keep.push(rows[c]);
      }
      seq.finalize(verified);
      seq.acceptedPerStep.push(s.proposed + verified.length);
      s.drafts = [];
      return keep;
    },
  });
}
