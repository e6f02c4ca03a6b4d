import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Group, SlotRow } from "../src/ptp/decode/call.js";
import { drafter, type Decoder } from "../src/ptp/decode/decoder.js";
import { DECODER_DEFAULTS } from "../src/ptp/decode/defaults.js";
import type { Sequence } from "../src/ptp/decode/sequence.js";
import { decodeWith, makeDecoder, settingsOf } from "../src/ptp/decode/run.js";
import { parseStudent, serializeStudent } from "../src/ptp/files/adapter-file.js";
import { randomStudent } from "../src/ptp/init.js";
import { PtpModel } from "../src/ptp/ptp-model.js";
import type { PickFeedbackKind, Student } from "../src/ptp/student-weights.js";
import { ArrayAux, XorShiftAux } from "../src/sampling/aux.js";
import { decodeBatches } from "../src/ptp/decode/compare.js";
import { measureSpeedup } from "../src/ptp/speedup.js";
import { readCheckpoint } from "../src/io/checkpoint.js";
import { backend, BACKENDS, firstBitDifference, STORIES_260K } from "./helpers.js";
import { editHeader } from "./fuzz/mutate.js";
import { arOutputs, caseArb, makeStudent, studentSpecArb, withCase, withExtraBlocks, withPickFeedback, withTeacher } from "./ptp-helpers.js";

/**
 * Pick feedback (spec/ptp.md 2.5): a query student's slot 1 reads t_s, the
 * window's first pick, made inside the call from the teacher's own row;
 * with "chain" every slot j >= 1 reads slot j - 1's draft, the extra blocks
 * running slot after slot. Exactness never depends on it (PTP-EXACT draws
 * such students); these check what it promises beyond that: the token fed
 * is the teacher's (slot 1) or the decoder's own draft of the slot before
 * (every slot), a zero table changes nothing, and a table changes the slots
 * that read it.
 */

/** A random query student with extra blocks and pick feedback (a random table) of either kind. */
const feedbackSpec = fc.tuple(studentSpecArb("C"), fc.constantFrom<PickFeedbackKind>("first", "chain")).map(([s, kind]) => ({ ...s, hybrid: true, query: true, window: Math.max(2, s.window), extraBlocks: Math.max(1, s.extraBlocks ?? 0), pickFeedback: kind }));

/** What one slot read: the call (counted per decode), its group's slot rows and base row count, the source (group-local) and the token. */
interface Fed {
  call: number;
  slots: SlotRow[];
  base: number;
  position: number;
  from: number;
  token: number;
}

/** A decoder that records, for every slot reading a pick, what it read; every call's slot logits; and the sequence. */
function spying(inner: Decoder, fed: Fed[], logits: Float32Array[][] = [], seqs: Sequence[] = []): Decoder {
  let call = 0;
  return {
    name: "spy",
    plan(seq): Group {
      const group = inner.plan(seq);
      if (!seqs.includes(seq)) seqs.push(seq);
      const at = call,
        slots = group.slots,
        base = group.base.length;
      group.slots = slots.map((slot): SlotRow => {
        const f = slot.feedback;
        if (!f) return slot;
        return {
          ...slot,
          feedback: {
            from: f.from,
            pick: (l) => {
              const token = f.pick(l);
              fed.push({ call: at, slots, base, position: slot.position, from: f.from, token });
              return token;
            },
          },
        };
      });
      return group;
    },
    accept(seq, group, out) {
      call++;
      logits.push(out.slots.map((l) => l.slice()));
      return inner.accept(seq, group, out);
    },
  };
}

/** Slot i's index in its proposal window: a query student's window starts at a slot reading a token (its slot 0). */
function slotInWindow(slots: readonly SlotRow[], i: number): number {
  let k = i;
  while (k > 0 && typeof slots[k].input !== "number") k--;
  return i - k;
}

describe.each(BACKENDS)("pick feedback on %s", (name) => {
  it("PTP-FEEDBACK: under verify and single-call, every token a slot reads is the draft the decoder makes of the slot before it, from the call's own logits for that slot; a verify window's slot 1 reads the AR token at its position", async () => {
    const b = await backend(name);
    let fedCount = 0,
      chained = 0;
    fc.assert(
      fc.property(caseArb, feedbackSpec, fc.constantFrom("verify" as const, "single-call" as const), (c, s, decoder) =>
        withCase(b, c, (teacher, us) => {
          const ar = arOutputs(teacher, c, us);
          const model = new PtpModel(teacher, makeStudent(c.teacher, s));
          // The decoders' own draft rule for this student (a chained one drafts at its own scale).
          const toDraft = drafter(model, settingsOf(model, { decoder }).draftTemperatureScale);
          // One prompt at a time, so each pick is known to be its prompt's.
          c.prompts.forEach((p, i) => {
            const fed: Fed[] = [],
              logits: Float32Array[][] = [],
              seqs: Sequence[] = [];
            const inner = makeDecoder(model, { decoder, window: s.window, steps: c.steps, sampling: c.sampling, aux: [] });
            const out = decodeWith(model, [p], spying(inner, fed, logits, seqs), { steps: c.steps, sampling: c.sampling, aux: [new ArrayAux(us[i])] });
            expect(out.outputs[0]).toEqual(ar[i]);
            for (const f of fed) {
              const src = f.from - f.base,
                j = slotInWindow(f.slots, src);
              expect(src, "the source is a slot of the same call").toBeGreaterThanOrEqual(0);
              if (s.pickFeedback === "first") expect(j).toBe(0);
              const draft = toDraft(seqs[0], f.slots[src].position + 1, j, logits[f.call][src]);
              expect(f.token, `prompt ${i}, call ${f.call}, slot ${src + 1}`).toBe(draft);
              // Slot 1 sits at the position of the token it reads (the last may lie past the step limit).
              if (decoder === "verify" && j === 0 && f.position < ar[i].length) expect(f.token, `prompt ${i}, position ${f.position}`).toBe(ar[i][f.position]);
              fedCount++;
              if (j > 0) chained++;
            }
          });
          model.dispose();
        }),
      ),
      { numRuns: 60 },
    );
    expect(fedCount).toBeGreaterThan(0);
    expect(chained).toBeGreaterThan(0);
  });

  it("PTP-FEEDBACK-TABLE: a zero table gives every slot the logits of the same student without feedback, bit for bit; a random one changes slot 1 and leaves each window's slot 0 alone", async () => {
    const b = await backend(name);
    let changed = 0;
    fc.assert(
      fc.property(caseArb, feedbackSpec, fc.constantFrom("verify" as const, "single-call" as const), (c, s, decoder) =>
        withCase(b, c, (teacher, us) => {
          const withTable = makeStudent(c.teacher, s);
          const zero: Student = { ...withTable, weights: { ...withTable.weights, feedback: new Float32Array(withTable.weights.feedback!.length) } };
          const none: Student = { config: { ...withTable.config, pickFeedback: undefined }, weights: { ...withTable.weights, feedback: undefined } };
          const run = (student: Student) => {
            const model = new PtpModel(teacher, student);
            const logits: Float32Array[][] = [];
            // The same draft settings for all three (a chained student's defaults are its own).
            const inner = makeDecoder(model, { decoder, window: s.window, steps: c.steps, sampling: c.sampling, aux: [], draftTemperatureScale: DECODER_DEFAULTS.draftTemperatureScale, runnerUps: 0 });
            const out = decodeWith(model, c.prompts, spying(inner, [], logits), { steps: c.steps, sampling: c.sampling, aux: us.map((u) => new ArrayAux(u)) });
            model.dispose();
            return { logits, outputs: out.outputs };
          };
          const a = run(zero),
            n = run(none);
          expect(a.logits.length).toBe(n.logits.length);
          a.logits.forEach((call, i) =>
            call.forEach((l, j) => {
              const d = firstBitDifference(l, n.logits[i][j]);
              if (d) throw new Error(`call ${i}, slot ${j}: ${d}`);
            }),
          );
          // A random table: the first call is the same in both (same prompt rows), so its slots compare directly.
          const t = run(withTable);
          expect(t.outputs).toEqual(n.outputs);
          const first = t.logits[0],
            base = n.logits[0];
          if (!first || first.length < 2) return;
          // verify's window: slot 0 is the teacher's row (it reads no pick), slot 1 reads one.
          if (decoder === "verify") {
            expect(firstBitDifference(first[0], base[0])).toBeNull();
            if (firstBitDifference(first[1], base[1]) !== null) changed++;
          }
        }),
      ),
      { numRuns: 40 },
    );
    expect(changed).toBeGreaterThan(0);
  });
});

describe("pick feedback in the speedup bench", () => {
  it("PTP-FEEDBACK-SPEEDUP: measureSpeedup (bench/ptp-speedup.ts, ptp demo --scale) decodes a pick-feedback student as the decoders do: the same tokens per call", async () => {
    const b = await backend("js");
    const ckpt = readCheckpoint(STORIES_260K);
    const student = withPickFeedback(withExtraBlocks(randomStudent(ckpt, "t", { variant: "C", rank: 2, aux: { kind: "anchors" }, window: 4, query: true, seed: 3 }), ckpt, 1, 3), ckpt, 5);
    const prompts = [
      [1, 403, 407],
      [1, 76],
    ];
    const [row] = measureSpeedup({ backend: b, teacher: ckpt, proposer: { kind: "student", student }, prompts, shapes: ["own"], decoders: ["verify"], steps: 24, temperature: 0.8, reps: 1 }).filter((r) => r.decoder === "verify");
    const direct = withTeacher(b, ckpt, (teacher) => {
      const model = new PtpModel(teacher, student);
      const r = decodeBatches(model, prompts, { decode: { steps: 24, sampling: { temperature: 0.8 }, decoder: "verify" }, aux: (i) => new XorShiftAux(BigInt(1 + i)), batch: 1 });
      model.dispose();
      return r.stats.generatedTokens / r.stats.modelCalls;
    });
    expect(row.equalsAR).toBe(true);
    expect(row.acceptedPerCall).toBe(direct);
  });
});

describe("pick feedback: files and errors", () => {
  const ckpt = readCheckpoint(STORIES_260K);
  const query = () => withExtraBlocks(randomStudent(ckpt, "t", { variant: "C", rank: 2, aux: { kind: "anchors" }, window: 3, query: true, seed: 1 }), ckpt, 1, 1);

  it("PTP-FEEDBACK-FILE: the table round-trips through the adapter file; a file whose pick feedback lacks its table, a query slot or extra blocks is refused by name", () => {
    const student = withPickFeedback(query(), ckpt, 7);
    const back = parseStudent(serializeStudent(student), "fb.safetensors");
    expect(back.config.pickFeedback).toBe("first");
    expect(back.weights.feedback).toEqual(student.weights.feedback);
    const chain = withPickFeedback(query(), ckpt, 7, "chain");
    expect(parseStudent(serializeStudent(chain), "chain.safetensors").config.pickFeedback).toBe("chain");
    // The first files (eleventh session) wrote "true" for "first"; anything else is refused by name.
    const relabel = (value: string) =>
      editHeader(serializeStudent(student), (json) => {
        const header = JSON.parse(json);
        header.__metadata__.pick_feedback = value;
        return JSON.stringify(header);
      });
    expect(parseStudent(relabel("true"), "old.safetensors").config.pickFeedback).toBe("first");
    expect(() => parseStudent(relabel("yes"), "bad.safetensors")).toThrow(`bad.safetensors: metadata "pick_feedback" must be one of "first", "chain" when present, found "yes"`);
    expect(() => serializeStudent({ ...student, weights: { ...student.weights, feedback: undefined } })).toThrow(/feedback/);
    expect(() => serializeStudent({ config: { ...student.config, pickFeedback: undefined }, weights: student.weights })).toThrow("the weights have a pick-feedback table but the config has no pick feedback");
    expect(() => serializeStudent({ config: { ...student.config, extraBlocks: undefined }, weights: { ...student.weights, extra: undefined } })).toThrow(/"pick_feedback" needs "extra_blocks"/);
    const hybrid = randomStudent(ckpt, "t", { variant: "C", rank: 2, aux: { kind: "anchors" }, window: 3, hybrid: true, seed: 1 });
    expect(() => serializeStudent({ config: { ...hybrid.config, extraBlocks: 1, pickFeedback: "first" }, weights: { ...hybrid.weights, extra: query().weights.extra, feedback: student.weights.feedback } })).toThrow(/"pick_feedback" needs slot_input "query"/);
    expect(() => randomStudent(ckpt, "t", { variant: "C", rank: 2, window: 3, query: true, seed: 1, pickFeedback: "chain" })).toThrow(/"pick_feedback" needs "extra_blocks"/);
    // A fresh one starts at 0: an exact no-op.
    const fresh = randomStudent(ckpt, "t", { variant: "C", rank: 2, window: 3, query: true, extraBlocks: 1, seed: 1, pickFeedback: "chain" });
    expect(fresh.weights.feedback!.every((x) => x === 0)).toBe(true);
    expect(fresh.weights.feedback!.length).toBe(ckpt.config.vocabSize * ckpt.config.dim);
  });

  it("PTP-FEEDBACK-DEFAULTS: a chained student's decoders draft at DECODER_DEFAULTS.chained's scale and single-call reads no runner-ups unless asked; a first-pick student keeps the general defaults", async () => {
    const b = await backend("js");
    withTeacher(b, ckpt, (teacher) => {
      for (const kind of ["first", "chain"] as const) {
        const model = new PtpModel(teacher, withPickFeedback(query(), ckpt, 7, kind));
        const chained = kind === "chain";
        for (const decoder of ["verify", "single-call"] as const) {
          const s = settingsOf(model, { decoder });
          expect(s.draftTemperatureScale).toBe(chained ? DECODER_DEFAULTS.chained.draftTemperatureScale : DECODER_DEFAULTS.draftTemperatureScale);
          expect(s.runnerUps).toBe(decoder === "single-call" && !chained ? DECODER_DEFAULTS.runnerUps.C : 0);
          // What the options say wins.
          const given = settingsOf(model, { decoder, draftTemperatureScale: 0.3, runnerUps: 2 });
          expect([given.draftTemperatureScale, given.runnerUps]).toEqual([0.3, 2]);
        }
        model.dispose();
      }
    });
  });

  it("PTP-FEEDBACK-ERRORS: a model refuses a table of the wrong size or feedback without a query slot, a call that feeds picks to a student without feedback, a pick from a row that is not earlier, and a chained read past a row that sees a later one", async () => {
    const b = await backend("js");
    withTeacher(b, ckpt, (teacher) => {
      const student = withPickFeedback(query(), ckpt, 7);
      expect(() => new PtpModel(teacher, { ...student, weights: { ...student.weights, feedback: new Float32Array(5) } })).toThrow(`the student's pick-feedback table must hold 512 x 64 values (vocab x dim), got 5`);
      expect(() => new PtpModel(teacher, { ...student, config: { ...student.config, query: undefined } })).toThrow("pick feedback needs a query student");
      const plain = new PtpModel(teacher, query());
      const cache = plain.newCache();
      expect(() => plain.forward({ tokens: [1, -1], positions: [0, 0], embeddings: new Float32Array(2 * 64) }, cache, 1, [{ row: 1, from: 0, pick: () => 3 }])).toThrow("forward: the call feeds picks to slots, but the student has no pick feedback");
      cache.free();
      plain.dispose();
      const model = new PtpModel(teacher, student);
      const c2 = model.newCache();
      expect(() => model.forward({ tokens: [1, 5, -1], positions: [0, 1, 1], embeddings: new Float32Array(3 * 64) }, c2, 1, [{ row: 1, from: 0, pick: () => 3 }])).toThrow("pick feedback: row 1 is not a slot row of the call");
      expect(() => model.forward({ tokens: [1, -1, -1], positions: [0, 1, 2], embeddings: new Float32Array(3 * 64) }, c2, 2, [{ row: 1, from: 2, pick: () => 3 }])).toThrow("pick feedback: source row 2 of row 1 must be an earlier row of the call");
      // A chained read cuts the slots into segments; a slot row that sees a later row cannot run before it.
      const sees = Uint8Array.from([1, 0, 0, 1, 1, 1, 1, 1, 1]);
      expect(() => model.forward({ tokens: [1, -1, -1], positions: [0, 1, 2], embeddings: new Float32Array(3 * 64), mask: sees }, c2, 2, [{ row: 2, from: 1, pick: () => 3 }])).toThrow("extra blocks: a row in call rows [1, 2) sees a later row, which a segment of the chained pick feedback cannot give");
      c2.free();
      model.dispose();
    });
  });
});
