import fc from "fast-check";
import type { Backend } from "../src/backends/backend.js";
import { randomCheckpoint } from "../src/model/init.js";
import type { Checkpoint } from "../src/model/weights.js";
import { Transformer } from "../src/model/transformer.js";
import { randomStudent } from "../src/ptp/init.js";
import { decodeAR } from "../src/ptp/decode/decode-ar.js";
import type { PtpModel } from "../src/ptp/ptp-model.js";
import type { AuxKind, PickFeedbackKind, Student, Variant } from "../src/ptp/student-weights.js";
import { ArrayAux } from "../src/sampling/aux.js";
import { binOf } from "../src/sampling/pick.js";
import { samplingDistribution, type SamplingSettings } from "../src/sampling/processors.js";
import { needsU, sampleToken } from "../src/sampling/sampler.js";
import { backend, rng, tinyCheckpoint } from "./helpers.js";

/** Random sampling settings: greedy and several temperatures, with and without top-k / top-p. */
export const samplingArb: fc.Arbitrary<SamplingSettings> = fc.record({
  temperature: fc.constantFrom(0, 0.5, 0.8, 1, 1.5),
  topK: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 12 })),
  topP: fc.oneof(fc.constant(1), fc.double({ min: 0.3, max: 0.99, noNaN: true })),
});

export interface StudentSpec {
  variant: Variant;
  rank: number;
  aux: AuxKind;
  window: number;
  seed: number;
  /** Hybrid slot input (the first slot also embeds the last known token). */
  hybrid?: boolean;
  /** Query slot input (C-PTP; then also hybrid): the first slot is the teacher's own AR query. */
  query?: boolean;
  /** Extra blocks (spec/ptp.md 2.4), random and non-zero; default none. */
  extraBlocks?: number;
  /** Pick feedback (spec/ptp.md 2.5; query students with extra blocks), a random non-zero table; default none. */
  pickFeedback?: PickFeedbackKind;
}

/**
 * Student specs; with `query` (the default) C-PTP specs are drawn with the
 * query slot input too. Tests that build slot rows by hand from
 * `slotInput` pass false (a query slot 0 is a token row, see slotRowsBlock).
 */
export const studentSpecArb = (variant?: Variant, query = true): fc.Arbitrary<StudentSpec> =>
  fc
    .record({
      variant: variant ? fc.constant(variant) : fc.constantFrom<Variant>("O", "C"),
      rank: fc.integer({ min: 1, max: 4 }),
      aux: fc.constantFrom<AuxKind>("bits", "digits", "anchors"),
      window: fc.integer({ min: 1, max: 6 }),
      seed: fc.integer({ min: 1, max: 1 << 30 }),
      input: fc.constantFrom("aux", "hybrid", "query"),
      extraBlocks: fc.constantFrom(0, 0, 1, 2),
      feedback: fc.constantFrom<PickFeedbackKind | undefined>(undefined, "first", "chain"),
    })
    .map(({ input, feedback, ...s }) => {
      const q = query && input === "query" && s.variant === "C";
      return { ...s, hybrid: input !== "aux", ...(q ? { query: true } : {}), ...(q && feedback && s.extraBlocks > 0 ? { pickFeedback: feedback } : {}) };
    });

/** The slot-input kind of a spec, as windowRows takes it. */
export const slotKind = (spec: StudentSpec): "aux" | "hybrid" | "query" => (spec.query && spec.variant === "C" ? "query" : spec.hybrid ? "hybrid" : "aux");

/**
 * An untrained student. Its B's are large enough that the student's slots
 * really differ from the teacher's (untrained LoRA would start at B = 0).
 */
export function makeStudent(teacher: Checkpoint, spec: StudentSpec): Student {
  const s = randomStudent(teacher, "test-teacher", { variant: spec.variant, rank: spec.rank, aux: spec.aux === "digits" ? { kind: "digits", digits: 8 } : { kind: spec.aux }, window: spec.window, seed: spec.seed, hybrid: spec.hybrid, query: slotKind(spec) === "query" });
  const scale = 25;
  for (const layer of s.weights.layers) for (const pair of Object.values(layer)) pair.B.forEach((b, i) => (pair.B[i] = b * scale));
  const deep = spec.extraBlocks ? withExtraBlocks(s, teacher, spec.extraBlocks, spec.seed) : s;
  return spec.pickFeedback ? withPickFeedback(deep, teacher, spec.seed, spec.pickFeedback) : deep;
}

/** The student (a query student with extra blocks) with pick feedback of this kind through a random table (trained ones start at 0). */
export function withPickFeedback(student: Student, teacher: Checkpoint, seed: number, kind: PickFeedbackKind = "first"): Student {
  const next = rng(seed ^ 0x5bd1e995),
    { vocabSize, dim } = teacher.config;
  const feedback = Float32Array.from({ length: vocabSize * dim }, () => 2 * next() - 1);
  return { config: { ...student.config, pickFeedback: kind }, weights: { ...student.weights, feedback } };
}

/**
 * The student with `count` random extra blocks (spec/ptp.md 2.4): the
 * layers of a random model of the teacher's shape, every weight non-zero,
 * so they change the slots' logits (trained ones would start as no-ops).
 */
export function withExtraBlocks(student: Student, teacher: Checkpoint, count: number, seed: number): Student {
  const extra = randomCheckpoint({ ...teacher.config, nLayers: count }, seed ^ 0x2545f491).weights.layers;
  return { config: { ...student.config, extraBlocks: count }, weights: { ...student.weights, extra } };
}

/** A whole decoding case: teacher, prompts, sampling, steps and a seed for the u's. */
export const caseArb = fc
  .record({
    teacher: tinyCheckpoint,
    sampling: samplingArb,
    steps: fc.integer({ min: 1, max: 24 }),
    nPrompts: fc.integer({ min: 1, max: 3 }),
    uSeed: fc.integer({ min: 1, max: 1 << 30 }),
    edges: fc.constantFrom("uniform", "edges"),
  })
  .chain((c) =>
    fc.record({
      ...Object.fromEntries(Object.entries(c).map(([k, v]) => [k, fc.constant(v)])),
      prompts: fc.array(
        fc.array(fc.nat(c.teacher.config.vocabSize - 1), { maxLength: 5 }).map((p) => [1, ...p]),
        { minLength: c.nPrompts, maxLength: c.nPrompts },
      ),
    }),
  ) as fc.Arbitrary<{ teacher: Checkpoint; sampling: SamplingSettings; steps: number; nPrompts: number; uSeed: number; edges: "uniform" | "edges"; prompts: number[][] }>;

/** Enough uniform u's for any decode of `steps` positions (lookahead included). */
export function uniformUs(seed: number, n = 256): number[] {
  const r = rng(seed);
  // float32 values in [0, 1), like every u source of the library
  return Array.from({ length: n }, () => Math.fround(r()) % 1);
}

/** The u's of each prompt: uniform, or on and next to the teacher's bin edges along its own path. */
export function usFor(teacher: Transformer, c: { prompts: number[][]; steps: number; sampling: SamplingSettings; uSeed: number; edges: string }): number[][] {
  return c.prompts.map((p, i) => (c.edges === "edges" ? edgeUs(teacher, p, c.steps, c.sampling, c.uSeed + i) : uniformUs(c.uSeed + i)));
}

/** f(x), then x.dispose(), even when f throws. */
export function disposing<T extends { dispose(): void }, R>(x: T, f: (x: T) => R): R {
  try {
    return f(x);
  } finally {
    x.dispose();
  }
}

/** f of a Transformer of `ckpt` on `b`, disposed afterwards. */
export function withTeacher<T>(b: Backend, ckpt: Checkpoint, f: (t: Transformer) => T): T {
  return disposing(new Transformer(b, ckpt), f);
}

/** Asserts `predicate` for `runs` draws of `arb` on the named backend: the frame of the decoding properties that differ in one input. */
export async function checkOnBackend<T>(name: Parameters<typeof backend>[0], arb: fc.Arbitrary<T>, predicate: (b: Backend, x: T) => void, runs: number): Promise<void> {
  const b = await backend(name);
  fc.assert(
    fc.property(arb, (x) => predicate(b, x)),
    { numRuns: runs },
  );
}

/** Each prompt's AR sample path under the case's sampling and its u's: what every PTP decoder must reproduce. */
export function arOutputs(teacher: Transformer, c: { prompts: number[][]; steps: number; sampling: SamplingSettings }, us: number[][]): number[][] {
  return c.prompts.map((p, i) => decodeAR(teacher, p, { steps: c.steps, sampling: c.sampling, aux: new ArrayAux(us[i]) }).tokens);
}

/** withTeacher for a decoding case: the case's teacher on `b`, and the u's of each of its prompts (usFor). */
export function withCase<T>(b: Backend, c: { teacher: Checkpoint; prompts: number[][]; steps: number; sampling: SamplingSettings; uSeed: number; edges: string }, f: (t: Transformer, us: number[][]) => T): T {
  return withTeacher(b, c.teacher, (t) => f(t, usFor(t, c)));
}

/**
 * u's that sit exactly on, or next to, the edges of the teacher's bins along
 * its own sample path: run AR once with uniform u's; at each sampled
 * position put u at the left edge of the chosen token's bin, or at the
 * largest float32 below its right edge, or one float32 above its left edge.
 * AR with these u's picks the same tokens, but any decoder whose logits
 * differ in the last bit, or that accepts one token too many, goes astray.
 */
export function edgeUs(teacher: Transformer, prompt: number[], steps: number, sampling: SamplingSettings, seed: number): number[] {
  const us = uniformUs(seed);
  if (!needsU(sampling)) return us;
  const path = decodeAR(teacher, prompt, { steps, sampling, aux: new ArrayAux(us), stopAtBos: false }).tokens;
  const cache = teacher.newCache();
  const logits = teacher.forward({ tokens: path.slice(0, -1), positions: path.slice(0, -1).map((_, i) => i) }, cache);
  cache.free();
  const V = teacher.config.vocabSize,
    r = rng(seed ^ 0x5bd1e995);
  const first = Math.min(prompt.length, steps + 1);
  for (let k = first; k < path.length; k++) {
    const P = samplingDistribution(logits.subarray((k - 1) * V, k * V), sampling);
    const [left, right] = binOf(P, path[k]);
    const choice = r();
    // Bin edges are float32 cumulative sums, so the float32 neighbours are the closest u's.
    const u = choice < 0.4 ? left : choice < 0.8 ? nextDownF32(right) : nextUpF32(left);
    if (u >= left && u < right && u < 1) us[k - first] = u;
  }
  return us;
}

const f32 = new Float32Array(1),
  u32 = new Uint32Array(f32.buffer);
function nextDownF32(x: number): number {
  f32[0] = x;
  if (x === 0) return 0;
  u32[0] -= 1;
  return f32[0];
}
function nextUpF32(x: number): number {
  f32[0] = x;
  u32[0] += 1;
  return f32[0];
}

/**
 * The C-PTP model's own AR sample path (the oracle of self decoding): at
 * each position k, the whole context t_<k as base rows plus one slot at
 * position k - 1 whose window holds no u (the start vector), in a fresh
 * cache; t_k = Pick(u(k), the slot's output).
 */
export function selfAR(model: PtpModel, prompt: number[], steps: number, sampling: SamplingSettings, us: number[], stopAtBos = true): number[] {
  const { teacher } = model;
  const { dim, vocabSize } = teacher.config;
  const tokens = prompt.slice(0, steps + 1);
  const first = tokens.length;
  while (tokens.length <= steps) {
    const n = tokens.length;
    const embeddings = new Float32Array((n + 1) * dim);
    // A query student's AR query is a row reading the last token (the teacher's own row there).
    if (!model.query) embeddings.set(model.slotInput(0, undefined, tokens[n - 1]), n * dim);
    // Causal; a hybrid slot stands in for the last token's row, so it does not see that row.
    const mask = new Uint8Array((n + 1) * (n + 1));
    for (let r = 0; r <= n; r++) mask.fill(1, r * (n + 1), r * (n + 1) + r + 1);
    if (model.hybrid) mask[n * (n + 1) + n - 1] = 0;
    const cache = model.newCache();
    const logits = model.forward({ tokens: [...tokens, model.query ? tokens[n - 1] : -1], positions: [...tokens.map((_, i) => i), n - 1], embeddings, mask }, cache, 1);
    cache.free();
    const t = sampleToken(logits.subarray(n * vocabSize), sampling, needsU(sampling) ? us[n - first] : undefined);
    if (stopAtBos && t === 1) break;
    tokens.push(t);
  }
  return tokens;
}
