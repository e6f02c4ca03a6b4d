/**
 * The token budget of single-call decoding (method section 4.2): how many
 * proposal slots each branch gets.
 *
 * Branch m assumes the first m drafts will be accepted. Its weight is the
 * chance of exactly that, from the student's confidences c_k in its drafts:
 *   A_m = c_0 ... c_{m-1} (1 - c_m)   (A_D = c_0 ... c_{D-1} for the last branch).
 * A branch with b slots is worth H(b) = sum_{j<b} P(C >= j): the expected
 * number of its proposals the next call will use (slot 0 is always used: it
 * becomes the teacher's token; slot j only if j-1 drafts before it pass),
 * with P(C >= j) estimated from the #correct seen so far.
 */

/** Running estimate of P(#correct >= j), from the verification results seen so far. */
export class AcceptanceModel {
  // reached[j]: steps where at least j drafts were available and j-1 passed; passed[j]: of those, draft j-1 passed too.
  private readonly reached: number[] = [];
  private readonly passed: number[] = [];

  constructor(private readonly maxDrafts: number) {}

  observe(correct: number, available: number): void {
    for (let j = 1; j <= Math.min(available, correct + 1, this.maxDrafts); j++) {
      this.reached[j] = (this.reached[j] ?? 0) + 1;
      if (j <= correct) this.passed[j] = (this.passed[j] ?? 0) + 1;
    }
  }

  /** P(C >= j): a product of per-draft pass rates, each with a 1-in-2 prior. */
  tail(j: number): number {
    let p = 1;
    for (let i = 1; i <= j; i++) p *= ((this.passed[i] ?? 0) + 1) / ((this.reached[i] ?? 0) + 2);
    return p;
  }
}

export type BudgetMode = "adaptive" | "fixed";

/**
 * Slots per branch: at most caps[m] each, `budget` in all.
 * fixed: an even split (earlier branches get the remainder), so every call
 * has the same shape; adaptive: greedily the slot with the largest
 * A_m (H(b+1) - H(b)), optimal because H's increments shrink.
 */
export function allocateBudget(budget: number, caps: number[], weights: number[], model: AcceptanceModel, mode: BudgetMode): number[] {
  const B = caps.map(() => 0);
  if (mode === "fixed") {
    let left = budget;
    while (left > 0) {
      let placed = false;
      for (let m = 0; m < caps.length && left > 0; m++) {
        if (B[m] < caps[m]) B[m]++, left--, (placed = true);
      }
      if (!placed) break;
    }
    return B;
  }
  for (let left = budget; left > 0; left--) {
    let best = -1,
      gain = -1;
    for (let m = 0; m < caps.length; m++) {
      if (B[m] >= caps[m]) continue;
      const g = weights[m] * model.tail(B[m]);
      if (g > gain) (gain = g), (best = m);
    }
    if (best < 0) break;
    B[best]++;
  }
  return B;
}

/** Branch weights A_m from the confidences of the D drafts. */
export function branchWeights(confidence: readonly number[]): number[] {
  const A: number[] = [];
  let prefix = 1;
  for (let m = 0; m <= confidence.length; m++) {
    A.push(m < confidence.length ? prefix * (1 - confidence[m]) : prefix);
    if (m < confidence.length) prefix *= confidence[m];
  }
  return A;
}
