import { describe, expect, it } from "vitest";
import { readCheckpoint } from "../src/io/checkpoint.js";
import { bestDraftCount, callCost, headCanPay, moreDraftsCanPay } from "../src/ptp/decode/call-cost.js";
import { backend, firstBitDifference, STORIES_260K } from "./helpers.js";
import { withTeacher } from "./ptp-helpers.js";

/** The rate bestDraftCount maximizes, computed here from its definition. */
const rate = (chances: number[], cost: number[], j: number, perDraft = 0) => (1 + chances.slice(0, j).reduce((a, b) => a + b, 0)) / (cost[j] + j * perDraft);

describe("PTP-CALL-COST: how many drafts a call carries, by the measured cost of a call of r rows", () => {
  it("bestDraftCount is the j with the most expected tokens per unit of cost (ties to fewer rows); moreDraftsCanPay says whether a further draft could beat it, headCanPay whether keeping the head can beat the teacher alone", () => {
    expect(bestDraftCount([0.9, 0.5, 0.2], [1, 1, 1, 1])).toBe(3);
    expect(bestDraftCount([0.9, 0.8, 0.7], [1, 2, 3, 4])).toBe(0);
    expect(bestDraftCount([0.9, 0.6, 0.2], [1, 1.1, 1.5, 2])).toBe(1);
    expect(bestDraftCount([0.1], [1, 1.1])).toBe(0); // 1.1 / 1.1 ties 1 / 1
    expect(bestDraftCount([], [1, 1, 1])).toBe(0);
    expect(bestDraftCount([0.9, 0.9, 0.9], [1, 1])).toBe(1); // no cost known past two rows
    // Each draft's own slot counts too: at 0.5 a draft, 1.9 / 1.5 beats 2.4 / 2.
    expect(bestDraftCount([0.9, 0.5, 0.2], [1, 1, 1, 1], 0.5)).toBe(1);
    expect(moreDraftsCanPay([], [1, 1, 1], 2, 2)).toBe(false); // a slot that costs two calls never pays
    // Against the definition, on random chances (falling) and costs (rising).
    let seed = 7;
    const next = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed / 2 ** 31);
    for (let t = 0; t < 500; t++) {
      const n = 1 + Math.floor(next() * 6);
      const chances: number[] = [];
      let c = 1;
      for (let i = 0; i < n; i++) chances.push((c *= next()));
      const cost = [1];
      for (let i = 1; i <= n; i++) cost.push(cost[i - 1] + next() * 0.8);
      const perDraft = next() < 0.5 ? 0 : next() * 0.3;
      const j = bestDraftCount(chances, cost, perDraft);
      for (let k = 0; k <= n; k++) expect(rate(chances, cost, k, perDraft)).toBeLessThanOrEqual(rate(chances, cost, j, perDraft));
      for (let k = 0; k < j; k++) expect(rate(chances, cost, k, perDraft)).toBeLessThan(rate(chances, cost, j, perDraft));
    }
    // Rows that cost two one-row calls each never pay, even for sure drafts; free rows always do.
    expect(moreDraftsCanPay([], [1, 2, 3, 4], 3)).toBe(false);
    expect(moreDraftsCanPay([], [1, 1, 1, 1], 3)).toBe(true);
    // After a draft of chance 0.5 at cost 1.2 (rate 1.25), a second one at 1.6 could at best make 2 / 1.6 = 1.25: no better.
    expect(moreDraftsCanPay([0.5], [1, 1.2, 1.6], 2)).toBe(false);
    expect(moreDraftsCanPay([0.5], [1, 1.2, 1.5], 2)).toBe(true);
    // Never past `most` drafts or the costs known.
    expect(moreDraftsCanPay([0.9], [1, 1, 1], 1)).toBe(false);
    expect(moreDraftsCanPay([0.9, 0.9], [1, 1, 1], 5)).toBe(false);
    // Keeping the head pays where sure drafts, their slots and the head's keys and values of every token kept beat the teacher alone.
    expect(headCanPay([1, 1.2, 1.5], 2)).toBe(true);
    expect(headCanPay([1, 2, 3], 2)).toBe(false);
    expect(headCanPay([1, 1.2, 1.5], 2, 0.4)).toBe(true); // 3 / (1.5 + 0.8) > 1
    expect(headCanPay([1, 1.2, 1.5], 2, 0.4, 0.3)).toBe(false); // 2 / 2.2 and 3 / 3.2 < 1
    expect(headCanPay([1, 1.2, 1.5], 0)).toBe(false); // no room for a draft
  });

  it("callCost measures the time of a teacher call of 1 .. maxRows rows once (ms; none below one row's), keeps it with the teacher, and leaves the teacher's logits as they were", async () => {
    const b = await backend("wasm");
    withTeacher(b, readCheckpoint(STORIES_260K), (teacher) => {
      const block = { tokens: [1, 403, 407], positions: [0, 1, 2] };
      const before = Float32Array.from(teacher.forward(block, teacher.newCache(8)));
      const cost = callCost(teacher, 5);
      expect(cost).toHaveLength(5);
      expect(cost[0]).toBeGreaterThan(0);
      for (const c of cost) expect(Number.isFinite(c) && c >= cost[0]).toBe(true);
      expect(callCost(teacher, 5)).toBe(cost);
      expect(callCost(teacher, 3)).toHaveLength(3);
      expect(firstBitDifference(Float32Array.from(teacher.forward(block, teacher.newCache(8))), before)).toBeNull();
    });
  });
});
