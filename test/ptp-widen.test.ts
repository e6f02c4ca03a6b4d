import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Backend } from "../src/backends/backend.js";
import { createBackend } from "../src/backends/registry.js";
import { readCheckpoint } from "../src/io/checkpoint.js";
import { Tokenizer } from "../src/io/tokenizer.js";
import { Transformer } from "../src/model/transformer.js";
import type { Checkpoint } from "../src/model/weights.js";
import { randomDraft, randomStudent } from "../src/ptp/init.js";
import { withExtraBlocks, withPickFeedback } from "./ptp-helpers.js";
import { DraftModel } from "../src/ptp/draft-model.js";
import { decodeAR } from "../src/ptp/decode/decode-ar.js";
import { decode } from "../src/ptp/decode/run.js";
import { PtpModel } from "../src/ptp/ptp-model.js";
import { teacherChecksum } from "../src/ptp/files/teacher-checksum.js";
import { WIDEN_SHAPES, widenCheckpoint, widenDraft, widenStudent } from "../src/ptp/widen.js";
import { XorShiftAux } from "../src/sampling/aux.js";
import { GOLDEN, STORIES_260K, TOK_512, type GoldenCase } from "./helpers.js";

/*
 * PTP-WIDEN: a function-preserving widening of stories260K (extra width,
 * heads, hidden units, layers and vocabulary that contribute nothing) gives
 * logits within 1e-4 of the original on the original vocabulary, extra
 * tokens that are never picked, the same tokens on every golden prompt, and,
 * with the widened student, the same PTP outputs and acceptance.
 */

const original = readCheckpoint(STORIES_260K);
const golden: { cases: GoldenCase[] } = JSON.parse(readFileSync(GOLDEN, "utf8"));
const tokenizer = Tokenizer.load(TOK_512, original.config.vocabSize);
const SMALL = { dim: 96, hiddenDim: 200, nLayers: 7, vocabSize: 700 };

function maxAbsDiff(a: Float32Array, b: Float32Array, V: number, V2: number, rows: number): number {
  let d = 0;
  for (let m = 0; m < rows; m++) for (let v = 0; v < V; v++) d = Math.max(d, Math.abs(a[m * V + v] - b[m * V2 + v]));
  return d;
}

function maxExtraLogit(b: Float32Array, V: number, V2: number, rows: number): number {
  let mx = -Infinity;
  for (let m = 0; m < rows; m++) for (let v = V; v < V2; v++) mx = Math.max(mx, b[m * V2 + v]);
  return mx;
}

describe("function-preserving widening", () => {
  let backend: Backend;
  let small: Checkpoint;
  beforeAll(async () => {
    backend = await createBackend("wasm", { threads: 1 });
    small = widenCheckpoint(original, SMALL);
  });
  afterAll(() => backend.dispose?.());

  it("PTP-WIDEN: the widened config has the target sizes, the head size and the GQA group", () => {
    expect(small.config).toMatchObject({ dim: 96, hiddenDim: 200, nLayers: 7, vocabSize: 700, nHeads: 12, nKvHeads: 6, seqLen: 512 });
    expect(() => widenCheckpoint(original, { ...SMALL, dim: 64 })).toThrow(/exceed/);
    expect(() => widenCheckpoint(original, { ...SMALL, dim: 100 })).toThrow(/multiple of the head size/);
  });

  for (const [label, target] of [
    ["small", SMALL],
    ["15M", WIDEN_SHAPES["15M"]],
  ] as const) {
    it(`PTP-WIDEN: logits of a prefill and of a decode step match within 1e-4 (${label})`, () => {
      const wide = label === "small" ? small : widenCheckpoint(original, target);
      const a = new Transformer(backend, original),
        b = new Transformer(backend, wide);
      const V = original.config.vocabSize,
        V2 = wide.config.vocabSize;
      const ca = a.newCache(),
        cb = b.newCache();
      const tokens = [1, 403, 261, 378, 11, 45];
      const positions = tokens.map((_, i) => i);
      const la = a.forward({ tokens, positions }, ca),
        lb = b.forward({ tokens, positions }, cb);
      expect(maxAbsDiff(la, lb, V, V2, tokens.length)).toBeLessThan(1e-4);
      expect(maxExtraLogit(lb, V, V2, tokens.length)).toBeLessThan(-1000);
      const sa = a.forward({ tokens: [88], positions: [6] }, ca),
        sb = b.forward({ tokens: [88], positions: [6] }, cb);
      expect(maxAbsDiff(sa, sb, V, V2, 1)).toBeLessThan(1e-4);
      a.dispose();
      b.dispose();
    });
  }

  it("PTP-WIDEN: every golden prompt gives the same tokens (greedy and sampled)", () => {
    const a = new Transformer(backend, original),
      b = new Transformer(backend, small);
    for (const c of golden.cases) {
      const run = (m: Transformer) => decodeAR(m, tokenizer.encode(c.prompt, true, false), { steps: c.steps, sampling: { temperature: c.temperature, topP: c.topp }, aux: new XorShiftAux(BigInt(c.seed)) }).tokens;
      expect(run(b), `${JSON.stringify(c.prompt)} T=${c.temperature} seed=${c.seed}`).toEqual(run(a));
    }
    a.dispose();
    b.dispose();
  });

  for (const hybrid of [false, true]) {
    it(`PTP-WIDEN: a standalone C-PTP draft model (${hybrid ? "hybrid" : "aux"} slot input) for the widened teacher keeps its size and gives the same outputs, calls and acceptance, equal to AR`, () => {
      const draft = randomDraft(original, teacherChecksum(original), { variant: "C", aux: { kind: "anchors" }, window: 4, hybrid, seed: 9, config: { dim: 32, hiddenDim: 48, nLayers: 2, nHeads: 4, nKvHeads: 2 } });
      const wide = widenDraft(draft, small);
      expect(wide.config.model).toMatchObject({ dim: 48, hiddenDim: 48, nLayers: 2, nHeads: 6, nKvHeads: 3, vocabSize: SMALL.vocabSize });
      expect(wide.config.teacherChecksum).toBe(teacherChecksum(small));
      const ta = new Transformer(backend, original),
        tb = new Transformer(backend, small);
      const da = new DraftModel(ta, draft),
        db = new DraftModel(tb, wide);
      const prompts = [tokenizer.encode("Once upon a time", true, false), tokenizer.encode("Tom had a big", true, false)];
      const opts = (decoder: "verify" | "ar", d?: DraftModel) => ({ steps: 80, sampling: { temperature: 0.8 }, decoder, draft: d, aux: prompts.map((_, i) => new XorShiftAux(BigInt(5 + i))) });
      const ra = decode(new PtpModel(ta), prompts, opts("verify", da)),
        rb = decode(new PtpModel(tb), prompts, opts("verify", db));
      const ar = decode(new PtpModel(tb), prompts, opts("ar"));
      expect(rb.outputs).toEqual(ra.outputs);
      expect(rb.outputs).toEqual(ar.outputs);
      expect(rb.stats.modelCalls).toBe(ra.stats.modelCalls);
      expect(rb.stats.acceptedHistogram).toEqual(ra.stats.acceptedHistogram);
      for (const x of [da, db, ta, tb]) x.dispose();
    });
  }

  for (const [variant, extra, feedback] of [
    ["O", 0, false],
    ["C", 0, false],
    ["C", 2, false],
    ["C", 2, true],
  ] as const) {
    it(`PTP-WIDEN: the widened ${variant}-PTP student${extra ? ` with ${extra} random extra blocks` : ""}${feedback ? " and pick feedback (a query student)" : ""} gives the same outputs, calls and acceptance, equal to AR`, () => {
      const plain = randomStudent(original, teacherChecksum(original), { variant, rank: 4, window: 8, seed: 3, aux: { kind: variant === "O" ? "anchors" : "bits" }, query: feedback });
      const deep = extra ? withExtraBlocks(plain, original, extra, 7) : plain;
      const student = feedback ? withPickFeedback(deep, original, 11) : deep;
      const wideStudent = widenStudent(student, original, small);
      const ta = new Transformer(backend, original),
        tb = new Transformer(backend, small);
      const pa = new PtpModel(ta, student),
        pb = new PtpModel(tb, wideStudent);
      const prompts = [tokenizer.encode("Once upon a time", true, false), tokenizer.encode("Tom had a big", true, false)];
      const opts = (decoder: "single-call" | "ar") => ({ steps: 80, sampling: { temperature: 0.8 }, decoder, aux: prompts.map((_, i) => new XorShiftAux(BigInt(5 + i))) });
      const ra = decode(pa, prompts, opts("single-call")),
        rb = decode(pb, prompts, opts("single-call"));
      const ar = decode(pb, prompts, opts("ar"));
      expect(rb.outputs).toEqual(ra.outputs);
      expect(rb.outputs).toEqual(ar.outputs);
      expect(rb.stats.modelCalls).toBe(ra.stats.modelCalls);
      expect(rb.stats.acceptedHistogram).toEqual(ra.stats.acceptedHistogram);
      ta.dispose();
      tb.dispose();
    });
  }
});
