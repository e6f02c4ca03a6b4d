import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { drafter, finiteLogits, NO_DRAFT, type SlotProposer } from "../src/ptp/decode/decoder.js";
import { Sequence } from "../src/ptp/decode/sequence.js";
import { ArrayAux } from "../src/sampling/aux.js";
import { argmax } from "../src/sampling/pick.js";
import type { SamplingSettings } from "../src/sampling/processors.js";
import { sampleToken } from "../src/sampling/sampler.js";
import { UStream } from "../src/sampling/ustream.js";

const proposer = (variant: "O" | "C", query = false): SlotProposer => ({ variant, hybrid: query, query, slotInput: () => new Float32Array(0) });
const sequence = (sampling: SamplingSettings, us: number[]) => new Sequence([1, 5], new UStream(new ArrayAux(us), 2), 16, sampling, false);
const logitsArb = fc.array(fc.float({ min: -8, max: 8, noNaN: true }), { minLength: 2, maxLength: 24 }).map((a) => Float32Array.from(a));
const uArb = fc.integer({ min: 0, max: 2 ** 24 - 1 }).map((i) => i / 2 ** 24); // float32 values in [0, 1), as llama2.c draws them

describe("C-PTP drafts at a fraction of the sampling temperature (drafter)", () => {
  it("PTP-DRAFT-SHARPEN: slot j >= 1 of a C-PTP window drafts Pick(u, Q at R x T); slot 0 (no u in view) the plain Pick at T; O-PTP and T = 0 the argmax", () =>
    fc.assert(
      fc.property(logitsArb, uArb, fc.double({ min: 0.05, max: 1, noNaN: true }), fc.constantFrom(0.5, 0.7, 1, 1.3), fc.integer({ min: 1, max: 6 }), fc.boolean(), (logits, u, scale, temperature, slot, query) => {
        const sampling = { temperature };
        const seq = sequence(sampling, Array(32).fill(u));
        const k = seq.next + slot;
        const c = drafter(proposer("C", query), scale);
        expect(c(seq, k, slot, logits)).toBe(sampleToken(logits, { temperature: temperature * scale }, u));
        expect(c(seq, seq.next, 0, logits)).toBe(sampleToken(logits, sampling, u));
        expect(drafter(proposer("C", query), 1)(seq, k, slot, logits)).toBe(sampleToken(logits, sampling, u));
        expect(drafter(proposer("O"), scale)(seq, k, slot, logits)).toBe(argmax(logits));
        expect(drafter(proposer("C"), scale)(sequence({ temperature: 0 }, []), k, slot, logits)).toBe(argmax(logits));
      }),
      { numRuns: 300 },
    ));

  it("PTP-DRAFT-SHARPEN: not vacuous: a blurred distribution's plain pick and its sharpened pick differ", () => {
    // P at T = 1 is about (0.3, 0.4, 0.3): u = 0.25 falls in token 0's bin; at 0.1 T nearly all mass is on token 1.
    const logits = Float32Array.from([Math.log(0.3), Math.log(0.4), Math.log(0.3)]);
    const seq = sequence({ temperature: 1 }, Array(8).fill(0.25));
    expect(drafter(proposer("C"), 1)(seq, seq.next + 1, 1, logits)).toBe(0);
    expect(drafter(proposer("C"), 0.1)(seq, seq.next + 1, 1, logits)).toBe(1);
  });

  it("PTP-DRAFT-SHARPEN: a scale outside (0, 1] is refused; non-finite logits give no draft", () => {
    for (const bad of [0, -0.5, 1.5, Number.NaN]) expect(() => drafter(proposer("C"), bad)).toThrow(/draft temperature scale must be in \(0, 1\]/);
    const seq = sequence({ temperature: 0.7 }, Array(8).fill(0.5));
    expect(drafter(proposer("C"), 0.4)(seq, seq.next + 1, 1, Float32Array.from([0, Number.NaN]))).toBe(NO_DRAFT);
  });

  it("PTP-DRAFT-FINITE: logits give a draft exactly when no value is NaN or +Infinity (-Infinity and signed zeros allowed), wherever they sit and whatever the length", () => {
    const value = fc.oneof(fc.float({ noNaN: true, noDefaultInfinity: true }), fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 0, -0, 3.4e38, -3.4e38));
    fc.assert(
      fc.property(fc.array(value, { maxLength: 41 }), fc.boolean(), (xs, f64) => {
        const logits = f64 ? Float64Array.from(xs) : Float32Array.from(xs);
        expect(finiteLogits(logits)).toBe(Array.from(logits).every((x) => !Number.isNaN(x) && x !== Number.POSITIVE_INFINITY));
      }),
      { numRuns: 2000 },
    );
    const row = new Float32Array(32000).fill(-1e30);
    expect(finiteLogits(row)).toBe(true);
    for (const at of [0, 1, 2, 3, 31996, 31999]) {
      for (const [bad, ok] of [
        [Number.NaN, false],
        [Number.POSITIVE_INFINITY, false],
        [Number.NEGATIVE_INFINITY, true],
      ] as const) {
        const r = row.slice();
        r[at] = bad;
        expect(finiteLogits(r), `${bad} at ${at}`).toBe(ok);
      }
    }
  });
});

describe("a sequence that has ended", () => {
  it("PTP-SEQUENCE-ENDED: a BOS that ends a sequence (stopAtBos) or the step limit leaves it no room: a decoder then keeps no drafts for it and counts its last step", () => {
    const bos = new Sequence([1, 5], new UStream(new ArrayAux([0.5]), 2), 16, { temperature: 0 }, true);
    expect(bos.room).toBe(15);
    expect(bos.endsWith(1)).toBe(true);
    bos.finalize([1, 7]);
    expect(bos.done).toBe(true);
    expect(bos.room).toBe(0);
    expect(bos.tokens).toEqual([1, 5]);
    const full = new Sequence([1, 5], new UStream(new ArrayAux([0.5]), 2), 2, { temperature: 0 }, false);
    expect(full.endsWith(1)).toBe(false);
    full.finalize([7, 8]);
    expect(full.done).toBe(true);
    expect(full.room).toBe(0);
    expect(full.tokens).toEqual([1, 5, 7]);
  });
});
