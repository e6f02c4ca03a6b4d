import type { PtpModel } from "../../ptp-model.js";
import { AcceptanceModel, allocateBudget, branchWeights, type BudgetMode } from "../budget.js";
import { chain, range, type BaseRow, type SlotRow } from "../call.js";
import { finiteLogits, proposalWindow, runnerUps as runnerUpsOf, runnerUpRow, takeRunnerUp, usableDrafts, verifyDrafts, sequenceState, type Decoder, type Drafter } from "../decoder.js";

interface SingleCallState {
  /** Drafts for positions next, next + 1, ... and the student's confidence in each. */
  drafts: number[];
  confidence: number[];
  /** Each draft's runner-ups, best first, with runner-ups on. */
  runnerUps: number[][];
  /** Slots per branch in the current call: branches 0..D, then one per runner-up row. */
  branches: number[];
  /** Per draft position i and runner-up c: the base row reading it in the current call, and that row's branch (absent: no row). */
  runnerUpRow: number[][];
  runnerUpBranch: number[][];
  acceptance: AcceptanceModel;
  /** Per runner-up rank: corrections where a row of that rank stood, and how many it matched (its branches' weight). */
  runnerUpTried: number[];
  runnerUpHit: number[];
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
 * With `runnerUps` = R > 0, the call may also read up to R runner-ups of a
 * draft (runnerUps in decoder.ts), each as a base row at the draft's
 * position, seeing what the draft sees, with a branch of its own after it;
 * such a row takes one unit of the budget, weighed against the slots it
 * displaces by the chance that the draft is the first rejected and this
 * runner-up matches (the running match rate of its rank), so a call has as
 * many rows with runner-ups as without. When the teacher rejects draft m*
 * and its token is one of those runner-ups, that row is the teacher's own
 * row there: the call finalizes the token after it too, keeps that row,
 * and the next drafts come from its branch, which starts on the corrected
 * token as a known one. Otherwise nothing changes; the output is AR's
 * either way.
 */
export function singleCallDecoder(model: PtpModel, window: number, budget: number, mode: BudgetMode, toDraft: Drafter, runnerUps = 0): Decoder<SingleCallState> {
  const state = sequenceState<SingleCallState>(() => ({ drafts: [], confidence: [], runnerUps: [], branches: [], runnerUpRow: [], runnerUpBranch: [], acceptance: new AcceptanceModel(window), runnerUpTried: [], runnerUpHit: [] }));
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
      s.runnerUpRow = range(0, D).map(() => []);
      s.runnerUpBranch = range(0, D).map(() => []);
      // Rank c's match rate, with a prior of 1 in 5 (c + 1) (bench/correction-candidates.ts: 0.21, 0.10, 0.07 for the stories260K student).
      const hitRate = (c: number) => ((s.runnerUpHit[c] ?? 0) + 1) / ((s.runnerUpTried[c] ?? 0) + 5 * (c + 1));
      const candidates = range(0, D).flatMap((i) => (s.runnerUps[i] ?? []).map((_, c) => [i, c] as const));
      for (const [i, c] of candidates) {
        caps.push(seq.room - i - 1 > 0 ? 1 + Math.min(window, seq.room - i - 1) : 0);
        weights.push(weights[i] * hitRate(c));
      }
      const units = allocateBudget(budget, caps, weights, s.acceptance, mode);
      s.branches = units.slice(0, D + 1);
      // The draft position and rank of each runner-up branch, in branch order (branch D + 1 + r).
      const runnerUpBranches: (readonly [number, number])[] = [];
      candidates.forEach(([i, c], x) => {
        const u = units[D + 1 + x];
        if (u === 0) return;
        s.runnerUpRow[i][c] = base.length;
        s.runnerUpBranch[i][c] = s.branches.length;
        runnerUpBranches.push([i, c]);
        base.push(runnerUpRow(s.runnerUps[i][c], next, P, i, base.length));
        s.branches.push(u - 1);
      });
      const slots: SlotRow[] = [];
      s.branches.forEach((count, b) => {
        if (b <= D) slots.push(...proposalWindow(model, seq, next + b, b === 0 ? seq.last : s.drafts[b - 1], count, range(0, P + b), base.length + slots.length, toDraft));
        else {
          const [i, c] = runnerUpBranches[b - D - 1];
          slots.push(...proposalWindow(model, seq, next + i + 1, s.runnerUps[i][c], count, [...range(0, P + i), s.runnerUpRow[i][c]], base.length + slots.length, toDraft));
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
      const rows = m < D ? s.runnerUpRow[m] : [];
      rows.forEach((_, c) => (s.runnerUpTried[c] = (s.runnerUpTried[c] ?? 0) + 1));
      const c = takeRunnerUp(seq, verified, m < D ? s.runnerUps[m] : [], (c) => (rows[c] === undefined ? undefined : out.base[rows[c]]));
      if (c >= 0) {
        s.runnerUpHit[c] = (s.runnerUpHit[c] ?? 0) + 1;
        keep.push(rows[c]);
        branch = s.runnerUpBranch[m][c];
        start = next + m + 1;
      }
      // That branch's proposals for start + 1, ... become the drafts (its slot 0 is the teacher's token now).
      const first = s.branches.slice(0, branch).reduce((a, b) => a + b, 0);
      const proposals = out.slots.slice(first, first + s.branches[branch]).slice(1);
      const drafts = proposals.map((logits, j) => toDraft(seq, start + 1 + j, j + 1, logits));
      s.drafts = usableDrafts(drafts);
      s.runnerUps = s.drafts.map((d, j) => runnerUpsOf(toDraft, seq, start + 1 + j, j + 1, proposals[j], d, runnerUps));
      s.confidence = proposals.map((logits) => confidence(logits));
      seq.finalize(verified);
      seq.acceptedPerStep.push(verified.length);
      s.drafts = s.drafts.slice(0, Math.max(0, seq.room - 1));
      return keep;
    },
  };
}

/**
 * The student's confidence in a slot's draft: its largest probability,
 * 1 / sum_i exp(x_i - max x) in double (0 for non-finite logits). Terms
 * under exp(-40) of the largest are left out (32,000 of them change the
 * result by less than 1e-13): a budget weight, computed with one exp per
 * plausible token instead of a softmax over the vocabulary.
 */
function confidence(logits: Float32Array): number {
  if (!finiteLogits(logits)) return 0;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  if (max === Number.NEGATIVE_INFINITY) return 0;
  const floor = max - 40;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    const x = logits[i];
    if (x > floor) sum += Math.exp(x - max);
  }
  return 1 / sum;
}
