import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { WeightType } from "../src/backends/backend.js";
import { createBackend } from "../src/backends/registry.js";
import { readCheckpoint } from "../src/io/checkpoint.js";
import type { Checkpoint } from "../src/model/weights.js";
import { DECODERS, decode, decodeWith } from "../src/ptp/decode/run.js";
import { DECODER_DEFAULTS, decoderGoesWith, decoderSettings, defaultDecoder, studentKind } from "../src/ptp/decode/defaults.js";
import { draftConfidence, drafter, type DraftConfidence } from "../src/ptp/decode/decoder.js";
import { headVerifyDecoder } from "../src/ptp/decode/decoders/head-verify.js";
import { DraftHead, draftHeadOf } from "../src/ptp/draft-head.js";
import { parseStudent, serializeStudent, studentConfigFromMetadata, studentMetadata } from "../src/ptp/files/adapter-file.js";
import { randomStudent } from "../src/ptp/init.js";
import { PtpModel } from "../src/ptp/ptp-model.js";
import type { Student } from "../src/ptp/student-weights.js";
import { widenCheckpoint, widenDraftHead, WIDEN_SHAPES } from "../src/ptp/widen.js";
import { ArrayAux, XorShiftAux } from "../src/sampling/aux.js";
import { Tape } from "../src/train/autograd/index.js";
import { constantWeights } from "../src/train/graph.js";
import { studentLogits, windowRows } from "../src/train/ptp-windows.js";
import { trainableStudent } from "../src/train/student-params.js";
import { teacherContext } from "../src/train/teacher-context.js";
import { backend, maxRelativeError, pregenFixture, rng, runCli, STORIES_260K, tinyCheckpoint, TOK_512 } from "./helpers.js";
import { arOutputs, caseArb, disposing, makeStudent, studentSpecArb, usFor, withTeacher } from "./ptp-helpers.js";

/**
 * The draft head (spec/ptp.md 2.6): a chained query student whose slot rows
 * skip the teacher's layers drafts beside the teacher, one slot at a time
 * from the final hidden states of the verified rows; a teacher call then
 * verifies its drafts.
 */

/** A random draft-head student for `teacher`: 1 or 2 random, non-zero blocks and a random feedback table. */
function headStudent(teacher: Checkpoint, seed: number, window: number): Student {
  const spec = { ...fc.sample(studentSpecArb("C"), { seed, numRuns: 1 })[0], hybrid: true, query: true, window, extraBlocks: 1 + (seed % 2), pickFeedback: "chain" as const };
  const s = makeStudent(teacher, spec);
  return { config: { ...s.config, draftHead: true }, weights: s.weights };
}

const seedArb = fc.integer({ min: 1, max: 1 << 30 });

describe("PTP-HEAD-EXACT: decoding with a draft head is the teacher's AR sample path", () => {
  for (const name of ["js", "wasm"] as const) {
    it(`${name}: every prompt's output equals AR, for any head, window, sampling and u's (edges of the bins included), several prompts per call, windows that stop early or not (draftStop "auto" too: by the measured call cost)${name === "wasm" ? "; the head's classifier also in bf16 or int8" : ""}`, async () => {
      const b = await backend(name);
      const classifier = name === "js" ? fc.constant(undefined) : fc.constantFrom<WeightType | undefined>(undefined, "bf16", "int8");
      fc.assert(
        fc.property(caseArb, seedArb, fc.integer({ min: 1, max: 6 }), classifier, fc.constantFrom<number | "auto">(0, 0.05, 0.3, 0.9, "auto"), (c, seed, window, classifierWeights, draftStop) => {
          withTeacher(b, c.teacher, (teacher) => {
            const us = usFor(teacher, c);
            const expected = arOutputs(teacher, c, us);
            disposing(new PtpModel(teacher, headStudent(c.teacher, seed, window), undefined, { classifierWeights }), (model) => {
              const r = decode(model, c.prompts, { decoder: "verify", steps: c.steps, sampling: c.sampling, aux: us.map((u) => new ArrayAux(u)), window, draftStop });
              expect(r.outputs).toEqual(expected);
              // One teacher call per step, each finalizing 1 .. window tokens.
              expect(r.stats.acceptedHistogram.length).toBeLessThanOrEqual(window + 1);
            });
          });
        }),
        { numRuns: name === "js" ? 30 : 20 },
      );
    });
  }
});

describe("PTP-HEAD-ROWS: each teacher call verifies window - 1 drafts", () => {
  it("after the prompt's call, with draftStop 0, every teacher call holds the pending token and min(window - 1, room - 1) drafts of the head", async () => {
    const b = await backend("wasm");
    const ckpt = readCheckpoint(STORIES_260K);
    for (const window of [2, 4, 7]) {
      withTeacher(b, ckpt, (teacher) =>
        disposing(new PtpModel(teacher, headStudent(ckpt, 21, window)), (model) => {
          const calls: { rows: number; next: number }[] = [];
          const forward = model.forward.bind(model);
          model.forward = (...args: Parameters<PtpModel["forward"]>) => {
            calls.push({ rows: args[0].positions.length, next: Number(args[0].positions[0]) + 1 });
            return forward(...args);
          };
          const steps = 40;
          decode(model, [[1, 403, 407]], { decoder: "verify", steps, sampling: { temperature: 0.7 }, aux: [new XorShiftAux(2n)], window, stopAtBos: false, draftStop: 0 });
          expect(calls[0].rows).toBe(3);
          for (const c of calls.slice(1)) expect(c.rows).toBe(1 + Math.min(window - 1, steps + 1 - c.next - 1));
        }),
      );
    }
  });
});

describe("PTP-HEAD-WINDOW: a draft head's default window is its own, at most DECODER_DEFAULTS.headWindow", () => {
  it("with no window given, a head of window 8 verifies at most headWindow rows a call (a head of window 2 its own 2, a plain student its own window), and --window overrides it", async () => {
    expect(DECODER_DEFAULTS.headWindow).toBe(4);
    expect(decoderSettings({ studentWindow: 8, studentDraftHead: true }).window).toBe(4);
    expect(decoderSettings({ studentWindow: 2, studentDraftHead: true }).window).toBe(2);
    expect(decoderSettings({ studentWindow: 8 }).window).toBe(8);
    expect(decoderSettings({ window: 6, studentWindow: 8, studentDraftHead: true }).window).toBe(6);
    const b = await backend("wasm");
    const ckpt = readCheckpoint(STORIES_260K);
    withTeacher(b, ckpt, (teacher) =>
      disposing(new PtpModel(teacher, headStudent(ckpt, 21, 8)), (model) => {
        const rows = (window?: number) => {
          const seen: number[] = [];
          const forward = model.forward.bind(model);
          model.forward = (...args: Parameters<PtpModel["forward"]>) => (seen.push(args[0].positions.length), forward(...args));
          decode(model, [[1, 403, 407]], { decoder: "verify", steps: 40, sampling: { temperature: 0.7 }, aux: [new XorShiftAux(2n)], stopAtBos: false, draftStop: 0, ...(window ? { window } : {}) });
          model.forward = forward;
          return Math.max(...seen.slice(1));
        };
        expect(rows()).toBe(DECODER_DEFAULTS.headWindow);
        expect(rows(8)).toBe(8);
      }),
    );
  });
});

describe("PTP-HEAD-STOP: a window stops drafting once its drafts' chance falls below draftStop", () => {
  it("with every draft's probability 1/2 and stop 0.2, a call carries at most two drafts (0.5, 0.25, then 0.125 < 0.2); stop 0 carries the window", async () => {
    const b = await backend("wasm");
    const ckpt = readCheckpoint(STORIES_260K);
    withTeacher(b, ckpt, (teacher) =>
      disposing(new PtpModel(teacher, headStudent(ckpt, 21, 6)), (model) => {
        const rowsPerCall = (stop: number, confidence: DraftConfidence | undefined) => {
          const rows: number[] = [];
          const forward = model.forward.bind(model);
          model.forward = (...args: Parameters<PtpModel["forward"]>) => (rows.push(args[0].positions.length), forward(...args));
          const sampling = { temperature: 0.7 };
          const decoder = headVerifyDecoder(teacher, model.head!, 6, drafter(model, 0.8), confidence, stop);
          const r = decodeWith(model, [[1, 403, 407]], decoder, { steps: 60, sampling, aux: [new XorShiftAux(2n)], stopAtBos: false });
          model.forward = forward;
          return { rows: rows.slice(1), outputs: r.outputs };
        };
        const half: DraftConfidence = () => 0.5;
        const full = rowsPerCall(0, half),
          stopped = rowsPerCall(0.2, half);
        expect(stopped.outputs).toEqual(full.outputs);
        expect(Math.max(...full.rows)).toBe(6);
        expect(Math.max(...stopped.rows)).toBe(3);
        // The head's own probabilities: stop 0.999 keeps only drafts it is all but sure of; outputs stay AR's.
        const own = draftConfidence(model, 0.8, (l, t, T) => model.head!.transformer.tokenProbability(l, t, T));
        const sure = rowsPerCall(0.999, own);
        expect(sure.outputs).toEqual(full.outputs);
        expect(sure.rows.reduce((a, x) => a + x, 0)).toBeLessThan(full.rows.reduce((a, x) => a + x, 0));
      }),
    );
  });

  it('PTP-HEAD-AUTO: with a cost table (draftStop "auto"), a call carries the drafts that make its expected tokens per unit of time largest: all of them where rows are free, none where each row costs two one-row calls (and after 8 such calls the head is given up, its ingest too), one where the second draft no longer pays; outputs stay AR\'s', async () => {
    const b = await backend("wasm");
    const ckpt = readCheckpoint(STORIES_260K);
    withTeacher(b, ckpt, (teacher) =>
      disposing(new PtpModel(teacher, headStudent(ckpt, 21, 6)), (model) => {
        const half: DraftConfidence = () => 0.5;
        const run = (cost: number[]) => {
          const rows: number[] = [];
          const forward = model.forward.bind(model);
          model.forward = (...args: Parameters<PtpModel["forward"]>) => (rows.push(args[0].positions.length), forward(...args));
          const head = model.head!;
          const ingest = head.ingest.bind(head);
          let ingested = 0;
          head.ingest = (...args: Parameters<DraftHead["ingest"]>) => (ingested++, ingest(...args));
          const decoder = headVerifyDecoder(teacher, head, 6, drafter(model, 0.8), half, cost);
          const r = decodeWith(model, [[1, 403, 407]], decoder, { steps: 60, sampling: { temperature: 0.7 }, aux: [new XorShiftAux(2n)], stopAtBos: false });
          model.forward = forward;
          head.ingest = ingest;
          return { rows: rows.slice(1), outputs: r.outputs, ingested };
        };
        // Costs in ms, a teacher call long beside the head's slots (timed by the decoder, under a millisecond here).
        const free = run([1000, 1000, 1000, 1000, 1000, 1000]);
        const steep = run([1000, 2000, 3000, 4000, 5000, 6000]);
        // chances 0.5, 0.25, ...: 1.5 / 1.2 = 1.25 beats 1 and 1.75 / 1.6 = 1.09.
        const middle = run([1000, 1200, 1600, 2000, 2400, 2800]);
        expect(steep.outputs).toEqual(free.outputs);
        expect(middle.outputs).toEqual(free.outputs);
        expect(Math.max(...free.rows)).toBe(6);
        expect(Math.max(...steep.rows)).toBe(1);
        // Where not even a sure draft pays, the head is given up after 8 such calls: its keys and values stop being made.
        expect(steep.ingested).toBeLessThanOrEqual(9);
        expect(free.ingested).toBeGreaterThan(9);
        expect(Math.max(...middle.rows)).toBe(2);
      }),
    );
  });

  it('draftStop must be in [0, 1) or "auto"', async () => {
    const b = await backend("wasm");
    const ckpt = readCheckpoint(STORIES_260K);
    withTeacher(b, ckpt, (teacher) =>
      disposing(new PtpModel(teacher, headStudent(ckpt, 21, 4)), (model) => {
        for (const bad of [1, -0.1, Number.NaN, "0.5", "Auto"]) {
          expect(() => decode(model, [[1, 5]], { decoder: "verify", steps: 8, sampling: { temperature: 0.7 }, aux: [new XorShiftAux(1n)], draftStop: bad as number })).toThrow(/decode: draftStop must be a number in \[0, 1\) \(0: the full window\) or "auto", got/);
        }
      }),
    );
  });
});

describe("PTP-HEAD-TRAIN: the head drafts from what training trains", () => {
  it("the head's slot logits after ingesting a sequence's verified rows are the training graph's (teacher-forced, the same windows) within 1e-4", async () => {
    const js = await createBackend("js");
    fc.assert(
      fc.property(tinyCheckpoint, seedArb, (ckpt, seed) => {
        const next = rng(seed),
          cfg = ckpt.config;
        const student = headStudent(ckpt, seed, 4);
        const n = 8 + Math.floor(next() * 6);
        const tokens = Array.from({ length: n }, () => Math.floor(next() * cfg.vocabSize));
        const us = Float32Array.from({ length: n }, () => next());
        const s = 1 + Math.floor(next() * (n - 4)),
          L = 4;
        withTeacher(js, ckpt, (teacher) => {
          const { context } = teacherContext(teacher, tokens, false, true);
          const rows = windowRows("C", tokens, us, [s], L, 0.9, "query");
          const trained = studentLogits(new Tape(), cfg, constantWeights(ckpt), trainableStudent(student, cfg), context, rows).data;
          disposing(new DraftHead(js, draftHeadOf(student, cfg, ckpt.weights)), (head) => {
            const cache = head.newCache(n + L);
            head.ingest(
              cache,
              context.hidden!.subarray(0, s * cfg.dim),
              Array.from({ length: s }, (_, i) => i),
            );
            for (let j = 1; j < L && s + j - 1 < n; j++) {
              const k = s + j; // slot j predicts t_k from position k - 1
              const logits = head.slot(cache, k - 1, us[k - 1], tokens[k - 1]);
              const want = trained.subarray((j - 1) * cfg.vocabSize, j * cfg.vocabSize);
              expect(maxRelativeError(logits, want), `slot ${j}`).toBeLessThan(1e-4);
            }
            cache.free();
          });
        });
      }),
      { numRuns: 25 },
    );
  });

  it("randomStudent's draft head starts with the teacher's token embedding as its feedback table, and its slots skip the teacher's layers in training (its LoRA changes nothing)", async () => {
    const js = await createBackend("js");
    const ckpt = readCheckpoint(STORIES_260K),
      cfg = ckpt.config;
    const student = randomStudent(ckpt, "t", { variant: "C", rank: 2, aux: { kind: "anchors" }, window: 4, query: true, seed: 3, extraBlocks: 1, pickFeedback: "chain", draftHead: true });
    expect(student.config.draftHead).toBe(true);
    expect(student.weights.feedback).toEqual(ckpt.weights.tokenEmbedding);
    expect(student.weights.feedback).not.toBe(ckpt.weights.tokenEmbedding);
    const tokens = [1, 5, 9, 40, 7, 300, 2, 11, 60, 61];
    const us = Float32Array.from(tokens, (_, i) => (i + 0.5) / tokens.length);
    const next = rng(9);
    const relora: Student = {
      config: student.config,
      weights: { ...student.weights, layers: student.weights.layers.map((l) => Object.fromEntries(Object.entries(l).map(([k, p]) => [k, { A: p.A, B: p.B.map(() => next() - 0.5) }])) as typeof l) },
    };
    withTeacher(js, ckpt, (teacher) => {
      const { context } = teacherContext(teacher, tokens, false, true);
      const rows = windowRows("C", tokens, us, [2, 5], 4, 0.9, "query");
      const logits = (st: Student) => studentLogits(new Tape(), cfg, constantWeights(ckpt), trainableStudent(st, cfg), context, rows).data;
      expect(Array.from(logits(relora))).toEqual(Array.from(logits(student)));
    });
  });
});

describe("PTP-HEAD-WIDEN: a draft head at a widened shape keeps its width and drafts what it drafted", () => {
  it("widenDraftHead's slot logits on the widened teacher's hidden states are the original head's within 1e-4 on the original vocabulary; the new tokens are never drafted", async () => {
    const b = await backend("wasm");
    const ckpt = readCheckpoint(STORIES_260K);
    const wide = widenCheckpoint(ckpt, WIDEN_SHAPES["15M"]);
    const student = headStudent(ckpt, 11, 4);
    const spec = draftHeadOf(student, ckpt.config, ckpt.weights);
    const wideSpec = widenDraftHead(spec, wide);
    // It keeps its own width (grown by one group of heads for the constant) and takes the teacher's vocabulary.
    expect(wideSpec.model.config.dim).toBe(ckpt.config.dim + 16);
    expect(wideSpec.model.config.vocabSize).toBe(32000);
    expect(wideSpec.teacherDim).toBe(288);
    const tokens = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315];
    const V = ckpt.config.vocabSize;
    const slotLogits = (c: Checkpoint, sp: typeof spec) =>
      withTeacher(b, c, (teacher) => {
        teacher.forward({ tokens, positions: tokens.map((_, i) => i) }, teacher.newCache(tokens.length));
        const hidden = teacher.lastHidden();
        return disposing(new DraftHead(b, sp), (head) => {
          const cache = head.newCache(32);
          head.ingest(cache, hidden.subarray(0, 8 * c.config.dim), [0, 1, 2, 3, 4, 5, 6, 7]);
          const out = [8, 9, 10].map((p) => head.slot(cache, p, 0.25 + p / 40, tokens[p]));
          cache.free();
          return out;
        });
      });
    const own = slotLogits(ckpt, spec),
      widened = slotLogits(wide, wideSpec);
    own.forEach((l, j) => {
      expect(maxRelativeError(widened[j].subarray(0, V), l), `slot ${j}`).toBeLessThan(1e-4);
      expect(Math.max(...widened[j].subarray(V))).toBeLessThan(-1e4);
    });
  });

  it("decoding at own and widened shapes finalizes the same tokens per call, each equal to AR", async () => {
    const b = await backend("wasm");
    const ckpt = readCheckpoint(STORIES_260K);
    const student = headStudent(ckpt, 12, 3);
    const prompts = [
      [1, 403, 407],
      [1, 500, 20, 30],
    ];
    const run = (c: Checkpoint, head?: ReturnType<typeof widenDraftHead>) =>
      withTeacher(b, c, (teacher) => disposing(new PtpModel(teacher, student, head), (model) => decode(model, prompts, { decoder: "verify", steps: 48, sampling: { temperature: 0.7 }, aux: prompts.map((_, i) => new XorShiftAux(BigInt(5 + i))), window: 3 })));
    const wide = widenCheckpoint(ckpt, WIDEN_SHAPES["15M"]);
    const own = run(ckpt),
      widened = run(wide, widenDraftHead(draftHeadOf(student, ckpt.config, ckpt.weights), wide));
    expect(widened.outputs).toEqual(own.outputs);
    expect(widened.chunks).toEqual(own.chunks);
  });
});

describe("PTP-HEAD-FILES and errors", () => {
  const ckpt = () => readCheckpoint(STORIES_260K);

  it("a draft-head student round-trips through its file (metadata draft_head), and a file whose draft_head is wrong or lacks chained feedback is refused by name", () => {
    const student = randomStudent(ckpt(), "t", { variant: "C", rank: 1, aux: { kind: "anchors" }, window: 4, query: true, seed: 3, extraBlocks: 2, pickFeedback: "chain", draftHead: true });
    const bytes = serializeStudent(student);
    const back = parseStudent(bytes, "head.safetensors");
    expect(back.config).toEqual(student.config);
    expect(Buffer.from(serializeStudent(back)).equals(Buffer.from(bytes))).toBe(true);
    expect(studentMetadata(student.config).draft_head).toBe("true");
    const { draft_head: _d, ...rest } = studentMetadata(student.config);
    const fail = (why: string): never => {
      throw new Error(why);
    };
    expect(() => studentConfigFromMetadata({ ...rest, draft_head: "yes" }, fail)).toThrow(/metadata "draft_head" must be "true" when present, found "yes"/);
    expect(() => studentConfigFromMetadata({ ...rest, pick_feedback: "first", draft_head: "true" }, fail)).toThrow(/metadata "draft_head" needs pick_feedback "chain"/);
  });

  it("a draft-head student decodes with verify and ar only, never puts slots into the teacher's call, and a head goes only with a draft-head student", async () => {
    const b = await backend("wasm");
    const c = ckpt();
    const student = headStudent(c, 13, 3);
    withTeacher(b, c, (teacher) => {
      disposing(new PtpModel(teacher, student), (model) => {
        const options = { steps: 12, sampling: { temperature: 0.7 }, aux: [new XorShiftAux(1n)] };
        // The rule, in one place (decode/defaults.ts): verify (the default) and ar go with a draft head, the rest are refused.
        expect(studentKind(student)).toBe("draft-head");
        expect(defaultDecoder(studentKind(student))).toBe("verify");
        expect(DECODERS.filter((d) => decoderGoesWith("draft-head", d))).toEqual(["ar", "verify"]);
        const refused = DECODERS.filter((d) => !decoderGoesWith("draft-head", d));
        expect(refused).toEqual(["single-call", "self", "multi-draft"]);
        for (const decoder of refused) {
          expect(() => decode(model, [[1, 5]], { ...options, decoder })).toThrow(`decode: a draft-head student drafts beside the teacher, with decoder "verify" (or "ar"), got "${decoder}"`);
        }
        expect(decode(model, [[1, 5]], { ...options, decoder: "ar" }).outputs).toEqual(decode(model, [[1, 5]], { ...options, aux: [new XorShiftAux(1n)], decoder: "verify" }).outputs);
        const cache = model.newCache(8);
        expect(() => model.forward({ tokens: [1, -1], positions: [0, 1], embeddings: new Float32Array(2 * c.config.dim) }, cache, 1)).toThrow(/a draft-head student's slots run in its head, not in the teacher's call/);
        cache.free();
      });
      const plain = randomStudent(c, "t", { variant: "C", rank: 1, window: 4, seed: 1 });
      expect(defaultDecoder(studentKind(plain))).toBe("single-call");
      expect(() => new PtpModel(teacher, plain, draftHeadOf(student, c.config, c.weights))).toThrow("a draft head goes with a draft-head student (StudentConfig.draftHead)");
    });
  });
});

describe("PTP-HEAD-CLI: ptp distill --draft-head", () => {
  const fx = pregenFixture("ptp-draft-head-");
  const dataset = fx.dataset;
  const distillArgs = (out: string, ...extra: string[]) => [
    "distill",
    "--model",
    fx.TEACHER,
    "--dataset",
    fx.DATA,
    "--out",
    out,
    "--rank",
    "1",
    "--window",
    "3",
    "--windows",
    "3",
    "--batch",
    "2",
    "--steps",
    "4",
    "--warmup",
    "1",
    "--eval-every",
    "2",
    "--backend",
    "wasm",
    "--threads",
    "1",
    "--slot-input",
    "query",
    ...extra,
  ];

  it("trains a draft head that ptp generate decodes with verify, equal to AR; --draft-head without --pick-feedback chain is a usage error", async () => {
    await dataset();
    const out = join(fx.tmp, "head.safetensors");
    const bad = await runCli(...distillArgs(out, "--extra-blocks", "1", "--draft-head"));
    expect(bad.code, bad.stderr).toBe(2);
    expect(bad.stderr.split("\n")[0]).toBe("ptp distill: --draft-head needs --pick-feedback chain (a draft head's slot row reads the token before it, as it skips the teacher's layers)");
    const r = await runCli(...distillArgs(out, "--extra-blocks", "1", "--pick-feedback", "chain", "--draft-head"));
    expect(r.code, r.stderr).toBe(0);
    const gen = (decoder: string) => runCli("generate", "--model", fx.TEACHER, "--student", out, "--decoder", decoder, "--steps", "40", "--temperature", "0.7", "--seed", "3", "--tokenizer", TOK_512, "--prompt", "Once upon a time");
    const [ar, verify] = [await gen("ar"), await gen("verify")];
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stdout).toBe(ar.stdout);
    // verify is a draft head's default decoder; the decoders that put slots into the teacher's call are a usage error.
    const byDefault = await runCli("generate", "--model", fx.TEACHER, "--student", out, "--steps", "40", "--temperature", "0.7", "--seed", "3", "--tokenizer", TOK_512, "--prompt", "Once upon a time");
    expect(byDefault.code, byDefault.stderr).toBe(0);
    expect(byDefault.stdout).toBe(ar.stdout);
    const single = await gen("single-call");
    expect(single.code).toBe(2);
    expect(single.stderr.split("\n")[0]).toBe(`ptp generate: --decoder single-call does not go with ${out}, a draft-head student, which drafts beside the teacher (--decoder verify)`);
  });

  it("--draft-classifier reads the head's classifier in bf16 or int8 on wasm and --draft-stop stops windows early, the output still AR's; misuse is a usage error naming the flag", async () => {
    await dataset();
    const out = join(fx.tmp, "head-dc.safetensors");
    const plain = join(fx.tmp, "plain-dc.safetensors");
    expect((await runCli(...distillArgs(out, "--extra-blocks", "1", "--pick-feedback", "chain", "--draft-head"))).code).toBe(0);
    expect((await runCli(...distillArgs(plain))).code).toBe(0);
    const gen = (...extra: string[]) => runCli("generate", "--model", fx.TEACHER, "--steps", "40", "--temperature", "0.7", "--seed", "3", "--tokenizer", TOK_512, "--prompt", "Once upon a time", "--json", ...extra);
    const ar = await gen("--decoder", "ar");
    for (const type of ["int8", "bf16"]) {
      const r = await gen("--student", out, "--backend", "wasm", "--draft-classifier", type);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(new RegExp(`verify \\(window \\d+, drafts at [\\d.]+ T, drafts stop below chance 0\\.1, ${type} head classifier\\)`));
      const json = JSON.parse(r.stdout) as { outputs: { tokens: number[] }[]; stats: { equalsAR: boolean } };
      expect(json.stats.equalsAR).toBe(true);
      expect(json.outputs[0].tokens).toEqual((JSON.parse(ar.stdout) as { tokens: number[] }).tokens);
    }
    const usage = async (why: string, ...extra: string[]) => {
      const r = await gen(...extra);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr.split("\n")[0]).toBe(`ptp generate: ${why}`);
    };
    await usage("--draft-classifier int8 needs the wasm backend", "--student", out, "--backend", "js", "--draft-classifier", "int8");
    await usage("--draft-classifier applies to a draft-head student (--student) or a draft model (--draft)", "--draft-classifier", "int8");
    await usage(`--draft-classifier applies to a draft-head student or a draft model; ${plain} is a student whose slots run in the teacher's call`, "--student", plain, "--backend", "wasm", "--draft-classifier", "int8");
    expect((await gen("--student", out, "--draft-classifier", "int4")).code).toBe(2);
    // --draft-stop: any Q keeps the output; misuse is a usage error.
    for (const q of ["0", "0.5", "auto"]) {
      const r = await gen("--student", out, "--draft-stop", q);
      expect(r.code, r.stderr).toBe(0);
      expect((JSON.parse(r.stdout) as { outputs: { tokens: number[] }[] }).outputs[0].tokens).toEqual((JSON.parse(ar.stdout) as { tokens: number[] }).tokens);
    }
    await usage('--draft-stop must be a number in [0, 1) or auto, got "1"', "--student", out, "--draft-stop", "1");
    await usage('--draft-stop must be a number in [0, 1) or auto, got "often"', "--student", out, "--draft-stop", "often");
    await usage("--draft-stop applies to --decoder verify with a draft-head student", "--draft-stop", "0.1");
    await usage(`--draft-stop applies to a draft-head student; ${plain} is a student whose slots run in the teacher's call`, "--student", plain, "--decoder", "verify", "--draft-stop", "0.1");
  });
});
