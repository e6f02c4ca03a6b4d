import { softmaxF32 } from "../../../sampling/softmax.js";
import type { PtpModel } from "../../ptp-model.js";
import { AcceptanceModel, allocateBudget, branchWeights, type BudgetMode } from "../budget.js";
import { chain, range, type BaseRow, type SlotRow } from "../call.js";
import { finiteLogits, NO_DRAFT, proposalWindow, runnerUp, runnerUpRow, takeRunnerUp, usableDrafts, verifyDrafts, sequenceState, type Decoder, type Drafter } from "../decoder.js";

interface SingleCallState {
  /** Drafts for positions next, next + 1, ... and the student's confidence in each. */
  drafts: number[];
  confidence: number[];
  /** Each draft's runner-up (NO_DRAFT: none), with runner-ups on. */
  runnerUps: number[];
  /** Slots per branch in the current call: branches 0..D, then one per runner-up row. */
  branches: number[];
  /** Per draft position i: the base row reading its runner-up in the current call, and that row's branch (-1: none). */
  runnerUpRow: number[];
  runnerUpBranch: number[];
  acceptance: AcceptanceModel;
  /** Corrections where a runner-up stood, and how many it matched (its branches' weight). */
  runnerUpTried: number;
  runnerUpHit: number;
}

/**
 * Single-call decoding (method section 4.2): one forward call both verifies
 * the previous drafts and proposes the next ones.
 *
 * The call holds the pending token and the D drafts as base rows (teacher
 * weights), then one proposal branch per hypothesis m = 0..D of how many
 * drafts will pass. Branch m's slots see the pending rows and drafts
 * 0..m-1, and predict positions next + m, next + m + 1, ... After the call
 * the teacher's picks settle m*, the KV cache keeps the verified rows, and
 * branch m*'s proposals (its first overwritten by the teacher's token)
 * become the next drafts.
 *
 * With `runnerUps`, the call may also read a draft's runner-up (runnerUp in
 * decoder.ts) as a base row at the draft's position, seeing what the draft
 * sees, with a branch of its own after it; the row takes one unit of the
 * budget, weighed against the slots it displaces by the chance that the
 * draft is the first rejected and the runner-up matches (the running match
 * rate), so a call has as many rows with runner-ups as without. When the
 * teacher rejects draft m* and its token is that runner-up, the runner-up's
 * row is the teacher's own row there: the call finalizes the token after it
 * too, keeps that row, and the next drafts come from its branch, which
 * starts on the corrected token as a known one. Otherwise nothing changes;
 * the output is AR's either way.
 */
export function singleCallDecoder(model: PtpModel, window: number, budget: number, mode: BudgetMode, toDraft: Drafter, runnerUps = false): Decoder<SingleCallState> {
  const state = sequenceState<SingleCallState>(() => ({ drafts: [], confidence: [], runnerUps: [], branches: [], runnerUpRow: [], runnerUpBranch: [], acceptance: new AcceptanceModel(window), runnerUpTried: 0, runnerUpHit: 0 }));
  return {
    name: "single-call",
    state,
    plan(seq) {
      const s = state(seq);
      const pending = seq.pending,
        P = pending.length,
        D = s.drafts.length,
        next = seq.next;
      const base: BaseRow[] = [...chain(pending, seq.cached), ...chain(s.drafts, next)];
      // Branch m predicts positions next + m .. ; none beyond the step limit.
      const caps = range(0, D + 1).map((m) => Math.max(0, Math.min(window, seq.room - m)));
      const weights = branchWeights(s.confidence);
      // Runner-up i, read at position next + i (seeing the pending rows and drafts 0..i-1), is one more
      // branch whose first unit of the budget is its row (worth a token when draft i is the first
      // rejected and the runner-up matches) and whose next units are its slots (predicting next + i + 1 ..).
      s.runnerUpRow = range(0, D).map(() => -1);
      s.runnerUpBranch = range(0, D).map(() => -1);
      const hitRate = (s.runnerUpHit + 1) / (s.runnerUpTried + 5); // a 1-in-5 prior (bench/correction-candidates.ts: 0.21 for the stories260K student)
      const candidates = runnerUps ? range(0, D).filter((i) => s.runnerUps[i] !== undefined && s.runnerUps[i] !== NO_DRAFT) : [];
      for (const i of candidates) {
        caps.push(seq.room - i - 1 > 0 ? 1 + Math.min(window, seq.room - i - 1) : 0);
        weights.push(weights[i] * hitRate);
      }
      const units = allocateBudget(budget, caps, weights, s.acceptance, mode);
      s.branches = units.slice(0, D + 1);
      candidates.forEach((i, c) => {
        const u = units[D + 1 + c];
        if (u === 0) return;
        s.runnerUpRow[i] = base.length;
        s.runnerUpBranch[i] = s.branches.length;
        base.push(runnerUpRow(s.runnerUps[i], next, P, i, base.length));
        s.branches.push(u - 1);
      });
      const slots: SlotRow[] = [];
      s.branches.forEach((count, b) => {
        if (b <= D) slots.push(...proposalWindow(model, seq, next + b, b === 0 ? seq.last : s.drafts[b - 1], count, range(0, P + b), base.length + slots.length));
        else {
          const i = s.runnerUpBranch.indexOf(b);
          slots.push(...proposalWindow(model, seq, next + i + 1, s.runnerUps[i], count, [...range(0, P + i), s.runnerUpRow[i]], base.length + slots.length));
        }
      });
      return { seq, base, slots };
    },
    accept(seq, _group, out) {
      const s = state(seq);
      const P = seq.pending.length,
        D = s.drafts.length,
        next = seq.next;
      const verified = verifyDrafts(seq, out.base, P, s.drafts);
      const m = verified.length - 1;
      s.acceptance.observe(m, D);
      const keep = range(0, P + m);
      // The branch whose window starts on the last finalized token (or, for branch m*, on the token this call settles).
      let branch = m,
        start = next + m;
      const row = m < D ? s.runnerUpRow[m] : -1;
      if (row >= 0) {
        s.runnerUpTried++;
        if (takeRunnerUp(seq, verified, s.runnerUps[m], out.base[row])) {
          s.runnerUpHit++;
          keep.push(row);
          branch = s.runnerUpBranch[m];
          start = next + m + 1;
        }
      }
      // That branch's proposals for start + 1, ... become the drafts (its slot 0 is the teacher's token now).
      const first = s.branches.slice(0, branch).reduce((a, b) => a + b, 0);
      const proposals = out.slots.slice(first, first + s.branches[branch]).slice(1);
      const drafts = proposals.map((logits, j) => toDraft(seq, start + 1 + j, j + 1, logits));
      s.drafts = usableDrafts(drafts);
      s.runnerUps = runnerUps ? s.drafts.map((d, j) => runnerUp(toDraft, seq, start + 1 + j, j + 1, proposals[j], d)) : [];
      s.confidence = proposals.map((logits) => confidence(logits));
      seq.finalize(verified);
      seq.acceptedPerStep.push(verified.length);
      s.drafts = s.drafts.slice(0, Math.max(0, seq.room - 1));
      return keep;
    },
  };
}

/** The student's confidence in a slot's draft: its largest probability (0 for non-finite logits). */
function confidence(logits: Float32Array): number {
  if (!finiteLogits(logits)) return 0;
  let max = 0;
  for (const p of softmaxF32(logits)) if (p > max) max = p;
  return max;
}
