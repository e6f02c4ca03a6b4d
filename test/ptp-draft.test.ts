import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readCheckpoint } from "../src/io/checkpoint.js";
import { randomCheckpoint } from "../src/model/init.js";
import { parseSafetensors, serializeSafetensors, type SafeTensor } from "../src/io/safetensors.js";
import type { ModelConfig } from "../src/model/config.js";
import type { WeightType } from "../src/backends/backend.js";
import type { Transformer, TransformerOptions } from "../src/model/transformer.js";
import type { Checkpoint } from "../src/model/weights.js";
import { serializeStudent } from "../src/ptp/files/adapter-file.js";
import { randomStudent } from "../src/ptp/init.js";
import { decodeAR } from "../src/ptp/decode/decode-ar.js";
import { range } from "../src/ptp/decode/call.js";
import { drafter, type Decoder } from "../src/ptp/decode/decoder.js";
import { DECODER_DEFAULTS } from "../src/ptp/decode/defaults.js";
import type { Sequence } from "../src/ptp/decode/sequence.js";
import { draftVerifyDecoder } from "../src/ptp/decode/decoders/draft-verify.js";
import { decode, decodeWith } from "../src/ptp/decode/run.js";
import { checkDraftMatchesTeacher, parseDraft, readDraft, serializeDraft, writeDraft } from "../src/ptp/files/draft-file.js";
import { randomDraft, teacherDraft } from "../src/ptp/init.js";
import { DraftModel, type Draft } from "../src/ptp/draft-model.js";
import { PtpModel } from "../src/ptp/ptp-model.js";
import type { AuxKind, Variant } from "../src/ptp/student-weights.js";
import { teacherChecksum } from "../src/ptp/files/teacher-checksum.js";
import { ArrayAux } from "../src/sampling/aux.js";
import { backend, formatError, runCli, shapeArbs, STORIES_260K, TOK_512 } from "./helpers.js";
import { caseArb, disposing, uniformUs, usFor, checkOnBackend, arOutputs, withCase, withTeacher } from "./ptp-helpers.js";

/**
 * The standalone draft model (method section 2.3, "alternative"): a small
 * transformer of its own proposes drafts from u's, the teacher verifies
 * them (Algorithm 1). Whatever its weights, the output is the teacher's AR
 * sample path for the same u's.
 */

const RUNS = Number(process.env.PTP_DRAFT_RUNS ?? 50); // per backend
const tmp = mkdtempSync(join(tmpdir(), "ptp-draft-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface DraftSpec {
  variant: Variant;
  aux: AuxKind;
  window: number;
  seed: number;
  halfHead: number;
  nKvHeads: number;
  group: number;
  nLayers: number;
  hiddenDim: number;
  sharedClassifier: boolean;
  /** Sometimes shorter than the teacher's 64: drafting stops where the draft's positions end. */
  seqLen: number;
  /** Hybrid slot input: slot 0 also reads the last finalized token and stands in for its row. */
  hybrid: boolean;
}

const draftSpecArb: fc.Arbitrary<DraftSpec> = fc.record({
  variant: fc.constantFrom<Variant>("O", "C"),
  aux: fc.constantFrom<AuxKind>("bits", "digits", "anchors"),
  window: fc.integer({ min: 1, max: 6 }),
  seed: fc.integer({ min: 1, max: 1 << 30 }),
  ...shapeArbs({ halfHead: 3, nKvHeads: 2, group: 2, nLayers: 2, hiddenDim: 24 }),
  sharedClassifier: fc.boolean(),
  seqLen: fc.constantFrom(64, 64, 64, 12),
  hybrid: fc.boolean(),
});

/** A random standalone draft model of its own random tiny shape, for `teacher`. */
function makeDraft(teacher: Checkpoint, s: DraftSpec): Draft {
  const nHeads = s.nKvHeads * s.group;
  return randomDraft(teacher, "test-teacher", {
    config: { dim: nHeads * s.halfHead * 2, hiddenDim: s.hiddenDim, nLayers: s.nLayers, nHeads, nKvHeads: s.nKvHeads, sharedClassifier: s.sharedClassifier, seqLen: s.seqLen },
    variant: s.variant,
    aux: s.aux === "digits" ? { kind: "digits", digits: 8 } : { kind: s.aux },
    window: s.window,
    hybrid: s.hybrid,
    seed: s.seed,
  });
}

const fullCase = fc.record({ c: caseArb, d: draftSpecArb, window: fc.option(fc.integer({ min: 1, max: 6 }), { nil: undefined }) });

function withDraft<T>(teacher: Transformer, d: Draft, f: (m: DraftModel) => T, options?: TransformerOptions): T {
  return disposing(new DraftModel(teacher, d, options), f);
}

/** The draft's classifier as read on `name`: the backend's own, or (wasm) bf16 or int8 beside it (TransformerOptions.classifierWeights). */
const classifierArb = (name: "js" | "wasm") => (name === "js" ? fc.constant(undefined) : fc.constantFrom<WeightType | undefined>(undefined, "bf16", "int8"));

describe.each(["js", "wasm"] as const)("draft-model decoding on %s", (name) => {
  it("PTP-DRAFT-EXACT: verify with a random standalone draft model equals AR sampling with the same u's, batches included (on wasm, its classifier also in bf16 or int8)", async () => {
    const b = await backend(name);
    let multiTokenSteps = 0;
    fc.assert(
      fc.property(fullCase, classifierArb(name), ({ c, d, window }, classifierWeights) =>
        withCase(b, c, (teacher, us) => {
          const ar = arOutputs(teacher, c, us);
          const model = new PtpModel(teacher);
          const out = withDraft(teacher, makeDraft(c.teacher, d), (draft) => decode(model, c.prompts, { decoder: "verify", draft, window, steps: c.steps, sampling: c.sampling, aux: us.map((u) => new ArrayAux(u)) }), { classifierWeights });
          out.outputs.forEach((o, i) => expect(o, `prompt ${i}`).toEqual(ar[i]));
          multiTokenSteps += out.stats.acceptedHistogram.slice(2).reduce((a, n) => a + n, 0);
          // Every step has one teacher call shared by the batch, plus one draft call per sequence that drafted.
          const steps = out.stats.acceptedHistogram.reduce((a, n) => a + n, 0);
          expect(out.stats.modelCalls).toBeLessThanOrEqual(2 * steps);
        }),
      ),
      { numRuns: RUNS },
    );
    // Not vacuous: some steps accepted drafts.
    expect(multiTokenSteps).toBeGreaterThan(RUNS / 10);
  });

  it("PTP-DRAFT-FREE: two different random draft models give the same output", () =>
    checkOnBackend(
      name,
      fc.tuple(fullCase, draftSpecArb),
      (b, [{ c, d }, d2]) =>
        withCase(b, c, (teacher, us) => {
          const model = new PtpModel(teacher);
          const run = (spec: DraftSpec) => withDraft(teacher, makeDraft(c.teacher, spec), (draft) => decode(model, c.prompts, { decoder: "verify", draft, steps: c.steps, sampling: c.sampling, aux: us.map((u) => new ArrayAux(u)) }).outputs);
          expect(run(d2)).toEqual(run(d));
        }),
      Math.ceil(RUNS / 3),
    ));

  it("PTP-DRAFT-CACHE: the draft model's cache mirrors the finalized tokens: every step's drafts equal drafts computed from scratch", async () => {
    const b = await backend(name);
    fc.assert(
      fc.property(fullCase, ({ c, d, window }) =>
        withTeacher(b, c.teacher, (teacher) =>
          withDraft(teacher, makeDraft(c.teacher, d), (draft) => {
            const us = usFor(teacher, c);
            const toDraft = drafter(draft, DECODER_DEFAULTS.draftTemperatureScale);
            const inner = draftVerifyDecoder(draft, window ?? d.window, toDraft);
            const { dim, vocabSize } = draft.config;
            let checked = 0;
            const stepsOf = new Map<Sequence, number>();
            const checking: Decoder = {
              ...inner,
              accept(seq, group, logits) {
                stepsOf.set(seq, (stepsOf.get(seq) ?? 0) + 1);
                return inner.accept(seq, group, logits);
              },
              plan(seq) {
                const g = inner.plan(seq);
                const drafts = g.base.slice(seq.pending.length).map((r) => r.token);
                if (drafts.length === 0) return g;
                // From scratch: every finalized token, then the window's slots, in a fresh cache.
                const n = seq.next,
                  count = drafts.length;
                const embeddings = new Float32Array((n + count) * dim);
                const u = (k: number) => seq.u.forStudent(k);
                for (let j = 0; j < count; j++) embeddings.set(draft.slotInput(u(n + j), j > 0 ? u(n + j - 1) : undefined, j === 0 ? seq.last : undefined), (n + j) * dim);
                // Causal, except that a hybrid window's slot 0 stands in for the last finalized row, which the window does not see.
                const M = n + count;
                const mask = new Uint8Array(M * M);
                for (let i = 0; i < M; i++) mask.fill(1, i * M, i * M + i + 1);
                if (draft.hybrid) for (let j = 0; j < count; j++) mask[(n + j) * M + n - 1] = 0;
                const cache = draft.newCache(M);
                const logits = draft.forward({ tokens: [...seq.tokens, ...Array(count).fill(-1)], positions: [...range(0, n), ...range(0, count).map((j) => n - 1 + j)], embeddings, mask }, cache);
                cache.free();
                const expected = range(0, count).map((j) => toDraft(seq, n + j, j, logits.subarray((n + j) * vocabSize, (n + j + 1) * vocabSize)));
                expect(drafts).toEqual(expected);
                checked++;
                return g;
              },
            };
            const out = decodeWith(new PtpModel(teacher), c.prompts, checking, { steps: c.steps, sampling: c.sampling, aux: us.map((u) => new ArrayAux(u)) });
            const ar = arOutputs(teacher, c, us);
            expect(out.outputs).toEqual(ar);
            // modelCalls = teacher calls (one per round, shared by the batch) + draft calls (one per drafting step).
            expect(out.stats.modelCalls).toBe(Math.max(0, ...stepsOf.values()) + checked);
          }),
        ),
      ),
      { numRuns: Math.ceil(RUNS / 3) },
    );
  });
});

describe("a draft model copied from the teacher", () => {
  it("PTP-DRAFT-COPY: an untrained C-PTP hybrid draft copied from stories260K (2 extra no-op layers) drafts the teacher's own token at slot 0: every step with room for a draft accepts at least 2 tokens, and the output equals AR", async () => {
    const b = await backend("wasm");
    const ckpt = readCheckpoint(STORIES_260K);
    const draft = teacherDraft(ckpt, teacherChecksum(ckpt), { variant: "C", aux: { kind: "anchors" }, window: 4, hybrid: true, nLayers: ckpt.config.nLayers + 2, seed: 5 });
    expect(draft.config.model).toMatchObject({ ...ckpt.config, nLayers: ckpt.config.nLayers + 2 });
    expect(() => teacherDraft(ckpt, "t", { variant: "C", nLayers: 3, seed: 1 })).toThrow(/at least its 5 layers/);
    const steps = 40;
    const prompts = [
      [1, 403, 261],
      [1, 88, 45, 300, 11],
    ];
    const us = prompts.map((_, i) => uniformUs(77 + i));
    withTeacher(b, ckpt, (teacher) =>
      withDraft(teacher, draft, (dm) => {
        const options = () => ({ steps, sampling: { temperature: 0.8 }, aux: us.map((u) => new ArrayAux(u)) });
        const out = decode(new PtpModel(teacher), prompts, { ...options(), decoder: "verify", draft: dm });
        const ar = decode(new PtpModel(teacher), prompts, { ...options(), decoder: "ar" });
        expect(out.outputs).toEqual(ar.outputs);
        // Each sequence's last step may have room for its final token only; every other step accepted >= 2.
        expect(out.stats.acceptedHistogram[1] ?? 0).toBeLessThanOrEqual(prompts.length);
        expect(out.stats.acceptedHistogram.slice(2).reduce((a, n) => a + n, 0)).toBeGreaterThan(10);
      }),
    );
  });
});

describe("draft model and decode options", () => {
  const config: ModelConfig = { dim: 8, hiddenDim: 12, nLayers: 2, nHeads: 2, nKvHeads: 1, vocabSize: 10, seqLen: 16, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };
  const teacherCkpt = randomCheckpoint(config, 7);

  it("PTP-DRAFT-VOCAB: a draft model whose vocabulary differs from the teacher's is refused with a clear error", async () => {
    const b = await backend("js");
    const other = randomCheckpoint({ ...config, vocabSize: 12 }, 3);
    const d = randomDraft(other, teacherChecksum(other), { variant: "O", seed: 1 });
    withTeacher(b, teacherCkpt, (teacher) => {
      expect(() => new DraftModel(teacher, d)).toThrow(/draft model has vocab size 12 .*teacher's is 10/);
    });
    expect(() => checkDraftMatchesTeacher(d, teacherCkpt, teacherChecksum(teacherCkpt), "d.safetensors")).toThrow(/^draft model d\.safetensors has vocab size 12 but the model's is 10/);
    const mine = randomDraft(teacherCkpt, teacherChecksum(other), { variant: "O", seed: 1 });
    expect(() => checkDraftMatchesTeacher(mine, teacherCkpt, teacherChecksum(teacherCkpt), "d.safetensors")).toThrow(/^draft model d\.safetensors belongs to teacher [0-9a-f]{12} but the model's checksum is [0-9a-f]{12}/);
    expect(() => checkDraftMatchesTeacher(randomDraft(teacherCkpt, teacherChecksum(teacherCkpt), { variant: "C", seed: 2 }), teacherCkpt, teacherChecksum(teacherCkpt), "d")).not.toThrow();
  });

  it("PTP-DRAFT-OPTIONS: a draft model goes with decoder verify only; its window is the default window", async () => {
    const b = await backend("js");
    withTeacher(b, teacherCkpt, (teacher) =>
      withDraft(teacher, randomDraft(teacherCkpt, "t", { variant: "O", seed: 4, window: 3 }), (draft) => {
        const model = new PtpModel(teacher);
        const base = { steps: 12, sampling: { temperature: 0 }, aux: [new ArrayAux(uniformUs(1))] };
        expect(() => decode(model, [[1]], { ...base, decoder: "single-call", draft })).toThrow(/draft model works with decoder "verify" only/);
        expect(draft.window).toBe(3);
        const out = decode(model, [[1, 2]], { ...base, decoder: "verify", draft, stopAtBos: false });
        expect(out.outputs[0]).toEqual(decodeAR(teacher, [1, 2], { steps: 12, sampling: { temperature: 0 }, stopAtBos: false }).tokens);
        // 11 generated tokens: at least 11 / 4 teacher calls, and a draft call before each but the last.
        expect(out.stats.generatedTokens).toBe(11);
        expect(out.stats.modelCalls).toBeGreaterThanOrEqual(2 * Math.ceil(11 / 4) - 1);
      }),
    );
  });
});

describe("draft files", () => {
  const config: ModelConfig = { dim: 8, hiddenDim: 12, nLayers: 2, nHeads: 2, nKvHeads: 1, vocabSize: 10, seqLen: 16, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };
  const teacher = randomCheckpoint(config, 7);
  const checksum = teacherChecksum(teacher);
  const FILE = "d.safetensors";
  const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b));

  const variants = [
    { variant: "O" as const, aux: { kind: "bits" as const }, config: {} },
    { variant: "C" as const, aux: { kind: "digits" as const, digits: 5 }, config: { sharedClassifier: false, nLayers: 3 } },
    { variant: "C" as const, aux: { kind: "anchors" as const }, config: { dim: 12, nHeads: 3, nKvHeads: 3, hiddenDim: 7, seqLen: 9 } },
  ];

  it.each(variants)("PTP-DRAFT-FILE: round trip ($variant, aux $aux.kind): same config, same arrays, same bytes", (v) => {
    const d = randomDraft(teacher, checksum, { ...v, window: 5, seed: 11 });
    expect(d.config.model).toMatchObject({ vocabSize: 10, dim: 32, hiddenDim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, seqLen: 16, ...v.config });
    const bytes = serializeDraft(d);
    const back = parseDraft(bytes, FILE);
    expect(back.config).toEqual(d.config);
    expect(back.weights.model.tokenEmbedding).toEqual(d.weights.model.tokenEmbedding);
    expect(back.weights.model.layers).toEqual(d.weights.model.layers);
    expect(back.weights.model.rmsFinal).toEqual(d.weights.model.rmsFinal);
    expect(back.weights.model.wcls).toEqual(d.weights.model.wcls);
    if (d.config.model.sharedClassifier) expect(back.weights.model.wcls).toBe(back.weights.model.tokenEmbedding);
    expect(back.weights.aux).toEqual(d.weights.aux);
    expect(back.weights.start).toEqual(d.weights.start);
    expect(v.variant === "C").toBe(back.weights.start !== undefined);
    expect(sameBytes(serializeDraft(back), bytes)).toBe(true);
    // Deterministic per seed, different across seeds.
    expect(sameBytes(serializeDraft(randomDraft(teacher, checksum, { ...v, window: 5, seed: 11 })), bytes)).toBe(true);
    expect(sameBytes(serializeDraft(randomDraft(teacher, checksum, { ...v, window: 5, seed: 12 })), bytes)).toBe(false);
    // Through a file, written atomically (no temporary file left).
    const path = join(tmp, `round-${v.variant}-${v.aux.kind}.safetensors`);
    writeDraft(path, d);
    expect(sameBytes(serializeDraft(readDraft(path)), bytes)).toBe(true);
    expect(readdirSync(tmp).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });

  /** A valid file's tensors and metadata, to break one piece at a time. */
  const base = (variant: Variant = "C") => {
    const file = parseSafetensors(serializeDraft(randomDraft(teacher, checksum, { variant, window: 4, seed: 3 })), FILE);
    return { tensors: Object.fromEntries(file.tensors) as Record<string, SafeTensor>, metadata: { ...file.metadata } };
  };
  const problem = (t: { tensors: Record<string, SafeTensor>; metadata: Record<string, string> }): string => formatError(() => parseDraft(serializeSafetensors(t.tensors, t.metadata), FILE), FILE).problem;
  const withMeta = (patch: Record<string, string | undefined>, variant: Variant = "C") => {
    const t = base(variant);
    for (const [k, v] of Object.entries(patch)) {
      if (v === undefined) delete t.metadata[k];
      else t.metadata[k] = v;
    }
    return problem(t);
  };
  const draftConfig = (patch: Record<string, unknown>) => JSON.stringify({ ...JSON.parse(base().metadata.draft_config), ...patch });

  it("PTP-DRAFT-FILE: every metadata problem is a FileFormatError naming the file", () => {
    expect(withMeta({ format: undefined })).toMatch(/not a PTP draft model: metadata "format" is missing/);
    expect(withMeta({ format: "ptp-student" })).toMatch(/not a PTP draft model: metadata "format" is "ptp-student", expected "ptp-draft"/);
    expect(withMeta({ format_version: "2" })).toMatch(/unsupported ptp-draft format_version "2"/);
    expect(withMeta({ format_version: undefined })).toMatch(/metadata "format_version" is missing/);
    expect(withMeta({ variant: "X" })).toMatch(/metadata "variant" must be "O" or "C", found "X"/);
    expect(withMeta({ window: "0" })).toMatch(/metadata "window" must be a positive integer, found "0"/);
    expect(withMeta({ window: "2.5" })).toMatch(/metadata "window" must be a positive integer/);
    expect(withMeta({ aux_kind: "fourier" })).toMatch(/metadata "aux_kind" must be one of bits, digits, anchors/);
    expect(withMeta({ aux_kind: "digits" })).toMatch(/metadata "aux_digits" is missing/);
    expect(withMeta({ aux_kind: "digits", aux_digits: "25" })).toMatch(/metadata "aux_digits" must be an integer in 1..24/);
    expect(withMeta({ aux_digits: "4" })).toMatch(/metadata "aux_digits" is only allowed with aux_kind "digits"/);
    expect(withMeta({ draft_config: undefined })).toMatch(/metadata "draft_config" is missing/);
    expect(withMeta({ draft_config: "{dim: 8" })).toMatch(/metadata "draft_config" is not valid JSON/);
    expect(withMeta({ draft_config: "[1, 2]" })).toMatch(/metadata "draft_config" must be a JSON object/);
    expect(withMeta({ draft_config: draftConfig({ nHeads: undefined }) })).toMatch(/"draft_config" needs nHeads as a positive integer/);
    expect(withMeta({ draft_config: draftConfig({ dim: 0 }) })).toMatch(/"draft_config" needs dim as a positive integer, found 0/);
    expect(withMeta({ draft_config: draftConfig({ sharedClassifier: 1 }) })).toMatch(/needs sharedClassifier as a boolean/);
    expect(withMeta({ draft_config: draftConfig({ normEps: -1 }) })).toMatch(/needs normEps as a positive number/);
    expect(withMeta({ draft_config: draftConfig({ nHeads: 3 }) })).toMatch(/"draft_config" is not a valid model shape: nHeads \(3\) must divide dim \(32\)/);
    expect(withMeta({ draft_config: draftConfig({ extra: 1 }) })).toMatch(/"draft_config" has unknown field "extra"/);
    expect(withMeta({ teacher_vocab_size: undefined })).toMatch(/metadata "teacher_vocab_size" is missing/);
    expect(withMeta({ teacher_vocab_size: "11" })).toMatch(/vocabSize 10 \(draft_config\) differs from teacher_vocab_size 11/);
    expect(withMeta({ teacher_checksum: "" })).toMatch(/metadata "teacher_checksum" is empty/);
    expect(withMeta({ teacher_checksum: undefined })).toMatch(/metadata "teacher_checksum" is missing/);
  });

  it("PTP-DRAFT-FILE: every tensor problem is a FileFormatError naming the file", () => {
    const broken = (f: (t: ReturnType<typeof base>) => void, variant: Variant = "C") => {
      const t = base(variant);
      f(t);
      return problem(t);
    };
    expect(broken((t) => delete t.tensors["layers.1.wk"])).toMatch(/tensor "layers.1.wk" is missing \(expected shape \[16, 32\]\)/);
    expect(broken((t) => delete t.tensors.token_embedding)).toMatch(/tensor "token_embedding" is missing \(expected shape \[10, 32\]\)/);
    expect(broken((t) => (t.tensors["layers.0.w2"] = { dtype: "F32", shape: [64, 32], data: new Float32Array(64 * 32) }))).toMatch(/tensor "layers.0.w2" has shape \[64, 32\], expected \[32, 64\]/);
    expect(broken((t) => (t.tensors.rms_final = { dtype: "I32", shape: [32], data: new Int32Array(32) }))).toMatch(/tensor "rms_final" has dtype I32, expected F32/);
    expect(broken((t) => (t.tensors["layers.2.wq"] = { dtype: "F32", shape: [1], data: new Float32Array(1) }))).toMatch(/unexpected tensor "layers.2.wq"/);
    expect(broken((t) => (t.tensors.wcls = { dtype: "F32", shape: [10, 32], data: new Float32Array(320) }))).toMatch(/classifier is shared .* has a tensor "wcls"/);
    expect(broken((t) => delete t.tensors.start)).toMatch(/variant C needs the start vector, but tensor "start" \[32\] is missing/);
    expect(broken((t) => (t.tensors.start = { dtype: "F32", shape: [32], data: new Float32Array(32) }), "O")).toMatch(/variant O has no start vector/);
    expect(broken((t) => delete t.tensors["aux.bias"])).toMatch(/tensor "aux.bias" is missing/);
    // Not safetensors at all; a student adapter; a missing file.
    expect(formatError(() => parseDraft(new TextEncoder().encode("hello"), FILE), FILE).problem).toMatch(/shorter than the 8-byte safetensors header/);
    const student = serializeStudent(randomStudent(teacher, checksum, { variant: "O", rank: 2, seed: 1 }));
    expect(formatError(() => parseDraft(student, FILE), FILE).problem).toMatch(/not a PTP draft model: metadata "format" is "ptp-student"/);
    const missing = join(tmp, "missing.safetensors");
    expect(formatError(() => readDraft(missing), missing).problem).toMatch(/file does not exist \(expected a PTP draft model/);
  });

  it("PTP-DRAFT-FILE: serializeDraft and randomDraft refuse inconsistent drafts with plain errors", () => {
    const d = randomDraft(teacher, checksum, { variant: "C", seed: 1 });
    expect(() => serializeDraft({ ...d, weights: { ...d.weights, start: undefined } })).toThrow(/^serializeDraft: start is missing/);
    expect(() => serializeDraft({ ...d, weights: { ...d.weights, start: new Float32Array(3) } })).toThrow(/^serializeDraft: start has 3 floats, expected 32/);
    expect(() => serializeDraft({ ...d, weights: { ...d.weights, model: { ...d.weights.model, layers: d.weights.model.layers.slice(1) } } })).toThrow(/draft_config has 2 layers but the weights have 1/);
    expect(() => serializeDraft({ ...d, config: { ...d.config, variant: "O" } })).toThrow(/variant O has no start vector/);
    expect(() => randomDraft(teacher, checksum, { variant: "O", seed: 1, config: { nHeads: 3 } })).toThrow(/^randomDraft: .*nHeads \(3\) must divide dim \(32\)/);
    expect(() => randomDraft(teacher, checksum, { variant: "O", seed: 1, config: { vocabSize: 9 } })).toThrow(/^randomDraft: .*vocabSize 9 .* differs from teacher_vocab_size 10/);
    expect(() => randomDraft(teacher, checksum, { variant: "O", seed: 1, window: 0 })).toThrow(/^randomDraft: metadata "window" must be a positive integer/);
  });
});

const ptp = runCli;

describe("ptp random-draft and generate --draft", () => {
  const MODEL = ["--model", STORIES_260K, "--tokenizer", TOK_512];
  const [DRAFT_O, DRAFT_C, OTHER_TEACHER, OTHER_DRAFT] = ["draft-o.safetensors", "draft-c.safetensors", "other-260k.bin", "other-draft.safetensors"].map((f) => join(tmp, f));

  beforeAll(async () => {
    for (const argv of [
      ["random-draft", "--model", STORIES_260K, "--variant", "O", "--window", "6", "--seed", "2", "--out", DRAFT_O],
      ["random-draft", "--model", STORIES_260K, "--variant", "C", "--dim", "16", "--hidden", "24", "--layers", "1", "--heads", "2", "--kv-heads", "1", "--aux", "digits", "--digits", "10", "--out", DRAFT_C],
      ["random-model", "--shape", "260K", "--seed", "9", "--out", OTHER_TEACHER],
      ["random-draft", "--model", OTHER_TEACHER, "--variant", "O", "--out", OTHER_DRAFT],
    ]) {
      const r = await ptp(...argv);
      expect(r.code, r.stderr).toBe(0);
    }
  });

  it("CLI-PTP-RANDOM-DRAFT: writes a loadable draft model for the checkpoint and says what it wrote", () => {
    const d = readDraft(DRAFT_C);
    expect(d.config).toMatchObject({ variant: "C", aux: { kind: "digits", digits: 10 }, window: 16, teacherVocabSize: 512 });
    expect(d.config.model).toMatchObject({ dim: 16, hiddenDim: 24, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 512, seqLen: 512 });
    const checkpoint = readCheckpoint(STORIES_260K);
    expect(d.config.teacherChecksum).toBe(teacherChecksum(checkpoint));
    expect(readDraft(DRAFT_O).config).toMatchObject({ variant: "O", window: 6, model: { dim: 32, hiddenDim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2 } });
  });

  it.each([
    ["O", "0.8"],
    ["C", "0"],
  ])("CLI-PTP-DRAFT: generate --draft (%s-PTP) --decoder verify at temperature %s prints the AR text and stats with equalsAR", async (variant, temperature) => {
    const file = variant === "O" ? DRAFT_O : DRAFT_C;
    const common = ["generate", ...MODEL, "--prompt", "Once upon a time", "--steps", "48", "--temperature", temperature, "--seed", "5"];
    const text = await ptp(...common, "--draft", file, "--decoder", "verify");
    expect(text.code, text.stderr).toBe(0);
    expect(text.stderr).toMatch(new RegExp(`decoder: +verify \\(window \\d+, ${variant}-PTP draft model: dim \\d+, \\d+ layers?\\)`));
    expect(text.stderr).toMatch(/model calls: +\d+ \(AR: \d+\)/);
    expect(text.stderr).toMatch(/equals AR: +yes/);
    const ar = await ptp(...common);
    expect(ar.code, ar.stderr).toBe(0);
    expect(text.stdout).toBe(ar.stdout);

    const json = await ptp(...common, "--draft", file, "--json"); // the decoder defaults to verify
    expect(json.code, json.stderr).toBe(0);
    const out = JSON.parse(json.stdout);
    expect(out.stats.decoder).toBe("verify");
    expect(out.stats.equalsAR).toBe(true);
    expect(out.stats.generatedTokens).toBeGreaterThan(0);
    expect(out.stats.meanAccepted).toBeGreaterThanOrEqual(1);
    // Draft calls count: more calls than teacher steps.
    const steps = out.stats.acceptedHistogram.reduce((a: number, b: number) => a + b, 0);
    expect(out.stats.modelCalls).toBeGreaterThan(steps);
    expect(out.text + "\n").toBe(text.stdout);
  });

  it("CLI-PTP-DRAFT: inspect shows a draft model's config", async () => {
    const j = await ptp("inspect", DRAFT_C, "--json");
    expect(j.code, j.stderr).toBe(0);
    const info = JSON.parse(j.stdout);
    const d = readDraft(DRAFT_C);
    expect(info.kind).toBe("draft");
    expect(info.config).toEqual(JSON.parse(JSON.stringify(d.config)));
    // token embedding, 9 per layer, rms_final; aux weight and bias; start.
    expect(info.tensors).toBe(1 + 9 + 1 + 2 + 1);
    const t = await ptp("inspect", DRAFT_C);
    expect(t.code).toBe(0);
    expect(t.stdout).toMatch(/PTP draft model \(safetensors\), C-PTP/);
    expect(t.stdout).toMatch(/draft shape +dim 16, hiddenDim 24, nLayers 1, nHeads 2, nKvHeads 1, vocabSize 512, seqLen 512, shared classifier/);
    expect(t.stdout).toMatch(/aux +digits \(10 digits\)/);
    expect(t.stdout).toContain(d.config.teacherChecksum);
  });

  it("CLI-PTP-DRAFT: a draft model made for another teacher exits 1 with the checksum message", async () => {
    const r = await ptp("generate", ...MODEL, "--steps", "16", "--seed", "1", "--draft", OTHER_DRAFT);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(OTHER_DRAFT);
    expect(r.stderr).toMatch(/belongs to teacher [0-9a-f]{12} but the model's checksum is [0-9a-f]{12}/);
    expect(r.stdout).toBe("");
  });

  const missing = join(tmp, "no-such-model.bin"); // never read: the flags are checked first
  it.each([
    ["--draft with --student", ["generate", "--model", missing, "--tokenizer", TOK_512, "--draft", "d", "--student", "s"]],
    ["--draft with --decoder single-call", ["generate", "--model", missing, "--tokenizer", TOK_512, "--draft", "d", "--decoder", "single-call"]],
    ["--draft with --decoder ar", ["generate", "--model", missing, "--tokenizer", TOK_512, "--draft", "d", "--decoder", "ar"]],
    ["random-draft without --variant", ["random-draft", "--model", missing, "--out", "x"]],
    ["random-draft --dim 0", ["random-draft", "--model", missing, "--variant", "O", "--dim", "0", "--out", "x"]],
    ["random-draft with heads not dividing dim", ["random-draft", "--model", missing, "--variant", "O", "--heads", "3", "--out", "x"]],
    ["random-draft --aux digits without --digits", ["random-draft", "--model", missing, "--variant", "O", "--aux", "digits", "--out", "x"]],
    ["random-draft --window 0", ["random-draft", "--model", missing, "--variant", "C", "--window", "0", "--out", "x"]],
  ])("CLI-PTP-DRAFT-USAGE: %s exits 2 with usage", async (_, argv) => {
    const r = await ptp(...argv);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/usage: ptp/);
    expect(existsSync("x")).toBe(false);
  });

  it("CLI-PTP-DRAFT-USAGE: --help lists --draft and the random-draft command", async () => {
    expect((await ptp("generate", "--help")).stdout).toContain("--draft FILE");
    expect((await ptp("help")).stdout).toMatch(/random-draft/);
  });
});
