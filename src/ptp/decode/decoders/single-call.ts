import { softmaxF32 } from "../../../sampling/softmax.js";
import type { PtpModel } from "../../ptp-model.js";
import { AcceptanceModel, allocateBudget, branchWeights, type BudgetMode } from "../budget.js";
import { chain, range, type SlotRow } from "../call.js";
import { finiteLogits, proposalWindow, usableDrafts, verifyDrafts, sequenceState, type Decoder, type Drafter } from "../decoder.js";

interface SingleCallState {
  /** Drafts for positions next, next + 1, ... and the student's confidence in each. */
  drafts: number[];
  confidence: number[];
  /** Slots per branch in the current call. */
  branches: number[];
  acceptance: AcceptanceModel;
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
 */
export function singleCallDecoder(model: PtpModel, window: number, budget: number, mode: BudgetMode, toDraft: Drafter): Decoder<SingleCallState> {
  const state = sequenceState<SingleCallState>(() => ({ drafts: [], confidence: [], branches: [], acceptance: new AcceptanceModel(window) }));
  return {
    name: "single-call",
    state,
    plan(seq) {
      const s = state(seq);
      const pending = seq.pending,
        P = pending.length,
        D = s.drafts.length,
        next = seq.next;
      const base = [...chain(pending, seq.cached), ...chain(s.drafts, next)];
      // Branch m predicts positions next + m .. ; none beyond the step limit.
      const caps = range(0, D + 1).map((m) => Math.max(0, Math.min(window, seq.room - m)));
      s.branches = allocateBudget(budget, caps, branchWeights(s.confidence), s.acceptance, mode);
      const slots: SlotRow[] = [];
      s.branches.forEach((count, m) => {
        slots.push(...proposalWindow(model, seq, next + m, m === 0 ? seq.last : s.drafts[m - 1], count, range(0, P + m), base.length + slots.length));
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
      // Branch m*'s proposals for next + m + 1, ... become the drafts (its slot 0 is the teacher's token now).
      const first = s.branches.slice(0, m).reduce((a, b) => a + b, 0);
      const proposals = out.slots.slice(first, first + s.branches[m]);
      s.drafts = usableDrafts(proposals.slice(1).map((logits, j) => toDraft(seq, next + m + 1 + j, j + 1, logits)));
      s.confidence = proposals.slice(1).map((logits) => confidence(logits));
      seq.finalize(verified);
      seq.acceptedPerStep.push(verified.length);
      s.drafts = s.drafts.slice(0, Math.max(0, seq.room - 1));
      return range(0, P + m);
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
