import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { chain, range, ReusedLogits, runCall } from "../src/ptp/decode/call.js";
import { drafter, proposalWindow, verifyDrafts, type Decoder } from "../src/ptp/decode/decoder.js";
import { decode, decodeWith, type DecoderName } from "../src/ptp/decode/run.js";
import { Sequence } from "../src/ptp/decode/sequence.js";
import { UStream } from "../src/sampling/ustream.js";
import { PtpModel } from "../src/ptp/ptp-model.js";
import type { Block } from "../src/model/block.js";
import type { Transformer } from "../src/model/transformer.js";
import { randomStudent } from "../src/ptp/init.js";
import { ArrayAux } from "../src/sampling/aux.js";
import { backend, BACKENDS, firstBitDifference, STORIES_260K } from "./helpers.js";
import { createBackend } from "../src/backends/registry.js";
import { readCheckpoint } from "../src/io/checkpoint.js";
import { caseArb, makeStudent, selfAR, studentSpecArb, uniformUs, checkOnBackend, arOutputs, withCase, withExtraBlocks, withTeacher } from "./ptp-helpers.js";

/**
 * The central properties of PTP decoding (spec/ptp.md): every decoder's
 * output is the teacher's autoregressive sample path for the same u's,
 * whatever the student; the KV cache ends exactly as AR leaves it; batches
 * change nothing; self decoding is the C-PTP model's own AR path.
 */

// PTP_RUNS=N for more (or fewer) cases; PTP_NO_SHRINK=1 reports the first
// counterexample without shrinking it (decoding cases are slow to shrink).
const RUNS = Number(process.env.PTP_RUNS ?? 200);
if (process.env.PTP_NO_SHRINK) fc.configureGlobal({ endOnFailure: true });

const decoderArb = fc.record({
  decoder: fc.constantFrom<DecoderName>("ar", "verify", "single-call", "multi-draft"),
  window: fc.integer({ min: 1, max: 6 }),
  budget: fc.integer({ min: 1, max: 12 }),
  budgetMode: fc.constantFrom("adaptive" as const, "fixed" as const),
  drafts: fc.integer({ min: 1, max: 3 }),
  // The method's plain Pick (1) or sharpened C-PTP drafts: never the output, only how many drafts pass.
  draftTemperatureScale: fc.oneof(fc.constant(1), fc.double({ min: 0.05, max: 1, noNaN: true })),
  // Runner-up rows (on / off, or a count per draft): never the output, only how many tokens a call settles.
  runnerUps: fc.oneof(fc.boolean(), fc.integer({ min: 0, max: 3 })),
});

const fullCase = fc.record({ c: caseArb, d: decoderArb, s: studentSpecArb() });

describe.each(BACKENDS)("PTP decoding on %s", (name) => {
  it("PTP-EXACT: every decoder's output equals AR sampling with the same u's, token for token, for any student", async () => {
    let multiTokenSteps = 0;
    await checkOnBackend(
      name,
      fullCase,
      (b, { c, d, s }) =>
        withCase(b, c, (teacher, us) => {
          const ar = arOutputs(teacher, c, us);
          const model = new PtpModel(teacher, makeStudent(c.teacher, s));
          const out = decode(model, c.prompts, { ...d, steps: c.steps, sampling: c.sampling, aux: us.map((u) => new ArrayAux(u)) });
          model.dispose();
          out.outputs.forEach((o, i) => expect(o, `prompt ${i}`).toEqual(ar[i]));
          multiTokenSteps += out.stats.acceptedHistogram.slice(2).reduce((a, n) => a + n, 0);
        }),
      RUNS,
    );
    // Not vacuous: drafts were accepted, several tokens per step, many times.
    expect(multiTokenSteps).toBeGreaterThan(RUNS / 4);
  });

  it("PTP-STUDENT-FREE: changing the student never changes the output", () =>
    checkOnBackend(
      name,
      fc.tuple(fullCase, studentSpecArb()),
      (b, [{ c, d, s }, s2]) =>
        withCase(b, c, (teacher, us) => {
          const run = (spec: typeof s) => {
            const model = new PtpModel(teacher, makeStudent(c.teacher, spec));
            const out = decode(model, c.prompts, { ...d, steps: c.steps, sampling: c.sampling, aux: us.map((u) => new ArrayAux(u)) });
            model.dispose();
            return out.outputs;
          };
          expect(run(s2)).toEqual(run(s));
        }),
      Math.ceil(RUNS / 2),
    ));

  it("PTP-KV-EXACT: the KV cache after decoding equals, bit for bit, the cache of AR decoding of the same text", () =>
    checkOnBackend(
      name,
      fullCase,
      (b, { c, d, s }) =>
        withCase(b, c, (teacher, us) => {
          const model = new PtpModel(teacher, makeStudent(c.teacher, s));
          const snapshots: { prompt: number; keys: Float32Array[]; values: Float32Array[]; rows: number }[] = [];
          const out = decode(model, c.prompts, {
            ...d,
            steps: c.steps,
            sampling: c.sampling,
            aux: us.map((u) => new ArrayAux(u)),
            onFinished: (prompt, cache, rows) => {
              // The teacher's layers, then a student's extra blocks (their keys and values come from the final hidden state).
              const layers = range(0, cache.keys.length).map((l) => cache.snapshot(l));
              const width = layers[0].keys.length / cache.length;
              const pickRows = (a: Float32Array) => Float32Array.from(rows.flatMap((r) => Array.from(a.subarray(r * width, (r + 1) * width))));
              snapshots.push({ prompt, keys: layers.map((x) => pickRows(x.keys)), values: layers.map((x) => pickRows(x.values)), rows: rows.length });
            },
          });
          expect(snapshots.length).toBe(c.prompts.length);
          for (const snap of snapshots) {
            const text = out.outputs[snap.prompt];
            // AR's cache for this text: every token but the last, one call per token (no slots: the teacher's rows).
            const cache = model.newCache();
            text.slice(0, snap.rows).forEach((t, i) => model.forward({ tokens: [t], positions: [i] }, cache, 0));
            // Every row holds a finalized token; a prompt that ran has at least its prompt cached.
            expect(snap.rows).toBeLessThanOrEqual(text.length);
            if (c.prompts[snap.prompt].length <= c.steps) expect(snap.rows).toBeGreaterThanOrEqual(c.prompts[snap.prompt].length - 1);
            expect(snap.keys.length).toBe(cache.keys.length);
            for (let l = 0; l < cache.keys.length; l++) {
              const ref = cache.snapshot(l);
              const dk = firstBitDifference(snap.keys[l], ref.keys),
                dv = firstBitDifference(snap.values[l], ref.values);
              if (dk || dv) throw new Error(`prompt ${snap.prompt}, layer ${l}: ${dk ?? dv}`);
            }
            cache.free();
          }
          model.dispose();
        }),
      Math.ceil(RUNS / 2),
    ));

  it("PTP-BATCH: decoding prompts together gives each the output it gets alone", async () => {
    const b = await backend(name);
    fc.assert(
      fc.property(fullCase, fc.constantFrom<DecoderName>("ar", "verify", "single-call", "multi-draft", "self"), ({ c, d, s }, decoder) =>
        withCase(b, c, (teacher, us) => {
          const model = new PtpModel(teacher, makeStudent(c.teacher, { ...s, variant: decoder === "self" ? "C" : s.variant }));
          const options = { ...d, decoder, steps: c.steps, sampling: c.sampling };
          const together = decode(model, c.prompts, { ...options, aux: us.map((u) => new ArrayAux(u)) }).outputs;
          const alone = c.prompts.map((p, i) => decode(model, [p], { ...options, aux: [new ArrayAux(us[i])] }).outputs[0]);
          model.dispose();
          expect(together).toEqual(alone);
        }),
      ),
      { numRuns: Math.ceil(RUNS / 2) },
    );
  });

  it("PTP-SELF-AR: self decoding equals the C-PTP model's own AR sample path", async () => {
    const b = await backend(name);
    fc.assert(
      fc.property(fullCase, studentSpecArb("C"), ({ c, d }, s) =>
        withTeacher(b, c.teacher, (teacher) => {
          const us = c.prompts.map((_, i) => uniformUs(c.uSeed + i));
          const model = new PtpModel(teacher, makeStudent(c.teacher, s));
          const out = decode(model, c.prompts, { decoder: "self", window: d.window, steps: c.steps, sampling: c.sampling, aux: us.map((u) => new ArrayAux(u)) });
          const oracle = c.prompts.map((p, i) => selfAR(model, p, c.steps, c.sampling, us[i]));
          model.dispose();
          expect(out.outputs).toEqual(oracle);
        }),
      ),
      { numRuns: Math.ceil(RUNS / 2) },
    );
  });
});

/** The block's logits with the student's last `slots` rows gated (LoRA on) and, for comparison, with the teacher alone. */
function forwardWithAndWithoutLora(model: PtpModel, teacher: Transformer, block: Block, slots: number): { withLora: Float32Array; plain: Float32Array } {
  const run = (lora: boolean) => {
    const cache = model.newCache();
    const logits = lora ? model.forward(block, cache, slots) : teacher.forward(block, cache);
    cache.free();
    return logits;
  };
  return { withLora: run(true), plain: run(false) };
}

describe("ReusedLogits", () => {
  it("PTP-CALL-LOGITS: one array while it is big enough, grown by half again, never past its cap; a call above the cap gets none (a fresh array)", () => {
    const r = new ReusedLogits(1000);
    const a = r.take(100)!;
    expect(a.length).toBe(100);
    expect(r.take(60)).toBe(a);
    const b = r.take(120)!;
    expect(b.length).toBe(150);
    expect(r.take(900)!.length).toBe(900);
    expect(r.take(950)!.length).toBe(1000);
    expect(r.take(1001)).toBeUndefined();
  });
});

describe("gated LoRA", () => {
  it.each(BACKENDS)("PTP-LORA-GATE on %s: with B = 0 (and extra blocks' wo, w2 = 0) every row equals the teacher's bit for bit; with B != 0 context rows still do", async (name) => {
    const b = await backend(name);
    fc.assert(
      fc.property(caseArb, studentSpecArb(undefined, false), fc.integer({ min: 1, max: 4 }), fc.boolean(), (c, s, nSlots, zeroB) =>
        withTeacher(b, c.teacher, (teacher) => {
          const student = makeStudent(c.teacher, s);
          if (zeroB) for (const layer of student.weights.layers) for (const pair of Object.values(layer)) pair.B.fill(0);
          // Extra blocks whose output projections are zero are exact no-ops (how training starts them).
          if (zeroB) for (const block of student.weights.extra ?? []) block.wo.fill(0), block.w2.fill(0);
          const model = new PtpModel(teacher, student);
          const ctx = c.prompts[0];
          const { dim, vocabSize } = c.teacher.config;
          const embeddings = new Float32Array((ctx.length + nSlots) * dim);
          for (let j = 0; j < nSlots; j++) embeddings.set(model.slotInput((j + 0.5) / nSlots, j > 0 ? (j - 0.5) / nSlots : undefined, j === 0 ? ctx[ctx.length - 1] : undefined), (ctx.length + j) * dim);
          const block = { tokens: [...ctx, ...Array(nSlots).fill(-1)], positions: [...ctx.map((_, i) => i), ...range(0, nSlots).map((j) => ctx.length - 1 + j)], embeddings };
          const { withLora, plain } = forwardWithAndWithoutLora(model, teacher, block, nSlots);
          model.dispose();
          const ctxRows = ctx.length * vocabSize;
          const dCtx = firstBitDifference(withLora.subarray(0, ctxRows), plain.subarray(0, ctxRows));
          if (dCtx) throw new Error(`context rows differ: ${dCtx}`);
          const dSlots = firstBitDifference(withLora.subarray(ctxRows), plain.subarray(ctxRows));
          if (zeroB && dSlots) throw new Error(`B = 0 but slot rows differ: ${dSlots}`);
          if (!zeroB) expect(dSlots).not.toBeNull(); // the adapter does act on slots
        }),
      ),
      { numRuns: RUNS },
    );
  });
});

/**
 * A deliberately wrong acceptance rule: Algorithm 1, except that at the
 * first mismatch it keeps the student's draft instead of the teacher's
 * token (it accepts one draft too many).
 */
function acceptsOneTooMany(model: PtpModel, window: number): Decoder {
  const drafts = new Map<Sequence, number[]>();
  const toDraft = drafter(model, 1);
  return {
    name: "mutant",
    plan(seq) {
      const base = chain(seq.pending, seq.cached);
      const d = drafts.get(seq) ?? [];
      if (d.length) return { seq, base: [...base, ...chain(d, seq.next)], slots: [] };
      return { seq, base, slots: proposalWindow(model, seq, seq.next, seq.last, Math.min(window, seq.room), range(0, base.length), base.length, toDraft) };
    },
    accept(seq, group, out) {
      const P = seq.pending.length;
      if (group.slots.length) {
        const d = out.slots.map((l, j) => toDraft(seq, seq.next + j, j, l));
        drafts.set(seq, d.slice(0, Math.max(0, seq.room - 1)));
        return range(0, P);
      }
      const d = drafts.get(seq)!;
      const verified = verifyDrafts(seq, out.base, P, d);
      const m = verified.length - 1;
      if (m < d.length) verified[m] = d[m]; // the bug
      seq.finalize(verified);
      drafts.set(seq, []);
      return range(0, P + m);
    },
  };
}

describe("extra blocks", () => {
  it.each(BACKENDS)("PTP-EXTRA-SPLIT on %s: slots after their context in one call or two (the context's extra keys from the keys-only path) give the same logits bit for bit", async (name) => {
    const b = await backend(name);
    fc.assert(
      fc.property(caseArb, studentSpecArb(undefined, false), fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 4 }), (c, s, extraBlocks, nSlots) =>
        withTeacher(b, c.teacher, (teacher) => {
          const model = new PtpModel(teacher, makeStudent(c.teacher, { ...s, extraBlocks }));
          const ctx = c.prompts[0],
            n = ctx.length;
          const { dim, vocabSize } = c.teacher.config;
          const slotEmbeddings = new Float32Array(nSlots * dim);
          for (let j = 0; j < nSlots; j++) slotEmbeddings.set(model.slotInput((j + 0.5) / nSlots, j > 0 ? (j - 0.5) / nSlots : undefined, j === 0 ? ctx[n - 1] : undefined), j * dim);
          const slotPositions = range(0, nSlots).map((j) => n + j);
          const oneCall = model.newCache(),
            twoCalls = model.newCache();
          const embeddings = new Float32Array((n + nSlots) * dim);
          embeddings.set(slotEmbeddings, n * dim);
          const together = model.forward({ tokens: [...ctx, ...Array(nSlots).fill(-1)], positions: [...range(0, n), ...slotPositions], embeddings }, oneCall, nSlots).subarray(n * vocabSize);
          model.forward({ tokens: ctx, positions: range(0, n) }, twoCalls, 0);
          const after = model.forward({ tokens: Array(nSlots).fill(-1), positions: slotPositions, embeddings: slotEmbeddings }, twoCalls, nSlots);
          // The context's extra keys and values too: the full path of the first call against the keys-only path.
          for (let l = 0; l < oneCall.keys.length; l++) {
            const x = oneCall.snapshot(l),
              y = twoCalls.snapshot(l);
            const d = firstBitDifference(x.keys, y.keys) ?? firstBitDifference(x.values, y.values);
            if (d) throw new Error(`cache layer ${l}: ${d}`);
          }
          oneCall.free();
          twoCalls.free();
          model.dispose();
          const d = firstBitDifference(together, after);
          if (d) throw new Error(`slot logits differ: ${d}`);
        }),
      ),
      { numRuns: RUNS },
    );
  });
});

describe("extra blocks: errors", () => {
  it("PTP-EXTRA-ERRORS: extra blocks missing from the weights or of the wrong shape, and a cache without their layers, are refused naming what was expected", async () => {
    const b = await backend("js");
    const ckpt = readCheckpoint(STORIES_260K);
    withTeacher(b, ckpt, (teacher) => {
      const student = withExtraBlocks(randomStudent(ckpt, "t", { variant: "C", rank: 2, aux: { kind: "anchors" }, window: 3, query: true, seed: 1 }), ckpt, 2, 1);
      expect(() => new PtpModel(teacher, { ...student, weights: { ...student.weights, extra: student.weights.extra!.slice(0, 1) } })).toThrow("the student's config has 2 extra blocks but its weights have 1");
      const bad = student.weights.extra!.map((w) => ({ ...w }));
      bad[1].wk = new Float32Array(3);
      expect(() => new PtpModel(teacher, { ...student, weights: { ...student.weights, extra: bad } })).toThrow(/extra block 1: wk must be a Float32Array of 2048 values \(the teacher's layer shape\), got 3 values/);
      const model = new PtpModel(teacher, student);
      expect(() => model.forward({ tokens: [1, 2], positions: [0, 1] }, teacher.newCache(), 0)).toThrow("the student has 2 extra blocks but the KV cache holds 0 extra layers: make the cache with PtpModel.newCache");
      model.dispose();
    });
  });
});

describe("hybrid slot input", () => {
  it.each(BACKENDS)("PTP-HYBRID-C0 on %s: a fresh hybrid C-PTP student (B = 0, start 0) gives at slot 0 exactly the teacher's logits for the next token", async (name) => {
    const b = await backend(name);
    fc.assert(
      fc.property(caseArb, fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 1 << 30 }), (c, rank, seed) =>
        withTeacher(b, c.teacher, (teacher) => {
          const student = randomStudent(c.teacher, "t", { variant: "C", rank, aux: { kind: "anchors" }, window: 3, hybrid: true, zeroB: true, seed });
          const model = new PtpModel(teacher, student);
          const ctx = c.prompts[0],
            n = ctx.length,
            { dim, vocabSize } = c.teacher.config;
          const embeddings = new Float32Array((n + 1) * dim);
          embeddings.set(model.slotInput(0.3, undefined, ctx[n - 1]), n * dim);
          // Context rows causal; the slot stands in for the last context row: it sees rows 0..n-2 and itself.
          const mask = new Uint8Array((n + 1) * (n + 1));
          for (let r = 0; r < n; r++) mask.fill(1, r * (n + 1), r * (n + 1) + r + 1);
          mask.fill(1, n * (n + 1), n * (n + 1) + n - 1);
          mask[n * (n + 1) + n] = 1;
          const cache = teacher.newCache();
          const logits = model.forward({ tokens: [...ctx, -1], positions: [...range(0, n), n - 1], embeddings, mask }, cache, 1);
          cache.free();
          model.dispose();
          const d = firstBitDifference(logits.subarray(n * vocabSize), logits.subarray((n - 1) * vocabSize, n * vocabSize));
          if (d) throw new Error(`slot 0 differs from the teacher's row: ${d}`);
        }),
      ),
      { numRuns: 50 },
    );
  });
});

describe("query slot input", () => {
  it.each(BACKENDS)("PTP-QUERY-C0 on %s: a query C-PTP student with any LoRA gives at slot 0 (a row reading the last token) exactly the teacher's logits, and its other slots run the LoRA", async (name) => {
    const b = await backend(name);
    fc.assert(
      fc.property(caseArb, studentSpecArb("C"), fc.integer({ min: 2, max: 4 }), (c, s, nSlots) =>
        withTeacher(b, c.teacher, (teacher) => {
          const student = makeStudent(c.teacher, { ...s, hybrid: true, query: true });
          const model = new PtpModel(teacher, student);
          const ctx = c.prompts[0],
            n = ctx.length,
            { dim, vocabSize } = c.teacher.config;
          const M = n + nSlots,
            embeddings = new Float32Array(M * dim);
          for (let j = 1; j < nSlots; j++) embeddings.set(model.slotInput(j / (nSlots + 1), (j - 0.5) / (nSlots + 1)), (n + j) * dim);
          // Context rows causal; the window stands in for the last context row: it sees rows 0..n-2 and its slots 0..j.
          const mask = new Uint8Array(M * M);
          for (let r = 0; r < n; r++) mask.fill(1, r * M, r * M + r + 1);
          for (let j = 0; j < nSlots; j++) mask.fill(1, (n + j) * M, (n + j) * M + n - 1), mask.fill(1, (n + j) * M + n, (n + j) * M + n + j + 1);
          const block = { tokens: [...ctx, ctx[n - 1], ...Array(nSlots - 1).fill(-1)], positions: [...range(0, n), ...range(0, nSlots).map((j) => n - 1 + j)], embeddings, mask };
          const { withLora, plain } = forwardWithAndWithoutLora(model, teacher, block, nSlots);
          model.dispose();
          const d = firstBitDifference(withLora.subarray(n * vocabSize, (n + 1) * vocabSize), withLora.subarray((n - 1) * vocabSize, n * vocabSize));
          if (d) throw new Error(`slot 0 differs from the teacher's row: ${d}`);
          expect(firstBitDifference(withLora.subarray((n + 1) * vocabSize), plain.subarray((n + 1) * vocabSize))).not.toBeNull();
        }),
      ),
      { numRuns: 40 },
    );
  });
});

describe("query rows", () => {
  it.each(BACKENDS)("PTP-QUERY-ALIAS on %s: a call that hands a query slot the base row it repeats gives every base and slot row the same logits, bit for bit, with one row fewer per query window", async (name) => {
    const b = await backend(name);
    fc.assert(
      fc.property(caseArb, studentSpecArb("C"), fc.integer({ min: 2, max: 4 }), fc.nat(2), (c, spec, count, drafts) =>
        withTeacher(b, c.teacher, (teacher) => {
          const model = new PtpModel(teacher, makeStudent(c.teacher, spec));
          const V = c.teacher.config.vocabSize;
          // Per prompt: its tokens and `drafts` guessed tokens as base rows, a window after the prompt and one after each draft (single-call's branches).
          const groups = c.prompts.map((p, i) => {
            const seq = new Sequence(p, new UStream(new ArrayAux(uniformUs(c.uSeed + i)), p.length), 64, { temperature: 0.8 }, false);
            const guessed = Array.from({ length: drafts }, (_, d) => (p[p.length - 1] + 3 * d + 1) % V);
            const base = chain([...p, ...guessed], 0);
            const slots = range(0, drafts + 1).flatMap((m) => {
              const k0 = p.length + m;
              return proposalWindow(model, seq, k0, base[k0 - 1].token, count, range(0, k0), base.length + m * count, drafter(model, 0.4));
            });
            return { seq, base, slots };
          });
          const run = (alias: boolean) => {
            const cache = model.newCache(64);
            const out = runCall(model, cache, groups, alias).map((g) => [...g.base, ...g.slots].map((l) => l.slice()));
            const rows = cache.length;
            cache.free();
            return { out, rows };
          };
          const aliased = run(true),
            full = run(false);
          model.dispose();
          aliased.out.forEach((g, gi) =>
            g.forEach((row, r) => {
              const d = firstBitDifference(row, full.out[gi][r]);
              if (d) throw new Error(`prompt ${gi}, row ${r}: ${d}`);
            }),
          );
          const windows = c.prompts.length * (drafts + 1);
          expect(full.rows - aliased.rows).toBe(spec.query ? windows : 0);
        }),
      ),
      { numRuns: 30 },
    );
  });
});

describe("picks where the logits are", () => {
  it("PTP-DEVICE-PICK: on wasm the decoders pick teacher tokens and C-PTP drafts with the backend's pick op, and every output equals AR decoded on js (host sampling only)", async () => {
    const wasm = await createBackend("wasm", { threads: 1 });
    const js = await backend("js");
    const pick = wasm.pick!.bind(wasm);
    let calls = 0;
    wasm.pick = (...args) => (calls++, pick(...args));
    const ckpt = readCheckpoint(STORIES_260K);
    const student = randomStudent(ckpt, "t", { variant: "C", rank: 4, window: 4, seed: 7, aux: { kind: "anchors" }, hybrid: true });
    const prompts = [
      [1, 403, 261],
      [1, 88, 45],
    ];
    const us = prompts.map((_, i) => uniformUs(31 + i));
    const opts = { steps: 48, sampling: { temperature: 0.8 }, aux: () => us.map((u) => new ArrayAux(u)) };
    const ar = withTeacher(js, ckpt, (t) => decode(new PtpModel(t), prompts, { ...opts, aux: opts.aux(), decoder: "ar" }).outputs);
    withTeacher(wasm, ckpt, (t) => {
      const model = new PtpModel(t, student);
      for (const decoder of ["verify", "single-call"] as const) {
        calls = 0;
        const out = decode(model, prompts, { ...opts, aux: opts.aux(), decoder });
        expect(out.outputs, decoder).toEqual(ar);
        expect(calls, `${decoder}: pick op calls`).toBeGreaterThan(out.stats.modelCalls);
      }
      // A hybrid first slot's last token outside the vocabulary is named as the slot input's, not the teacher's.
      for (const bad of [512, -1, 1.5]) expect(() => model.slotInput(0.5, undefined, bad)).toThrow(`slot input: token ${bad} is outside the vocabulary`);
      model.dispose();
    });
    wasm.dispose?.();
  });
});

describe("mutation sanity", () => {
  it("PTP-MUTANT: accepting one extra draft makes PTP-EXACT fail", async () => {
    const b = await backend("js");
    const result = fc.check(
      fc.property(fullCase, ({ c, d, s }) =>
        withCase(b, c, (teacher, us) => {
          const ar = arOutputs(teacher, c, us);
          const model = new PtpModel(teacher, makeStudent(c.teacher, s));
          const out = decodeWith(model, c.prompts, acceptsOneTooMany(model, d.window), { steps: c.steps, sampling: c.sampling, aux: us.map((u) => new ArrayAux(u)) });
          model.dispose();
          out.outputs.forEach((o, i) => expect(o).toEqual(ar[i]));
        }),
      ),
      { numRuns: RUNS, seed: 7, endOnFailure: true },
    );
    expect(result.failed).toBe(true);
  });
});
