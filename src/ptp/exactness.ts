/**
 * PTP's exactness property (spec/ptp.md) as a suite a third party can run
 * on its own backend, without any test framework:
 *
 *   import { registerBackend, runPtpExactness } from "ptp-ts";
 *   registerBackend("mine", async () => new MyBackend()); // your class implementing Backend
 *   const report = await runPtpExactness("mine", { runs: 20 });
 *   if (!report.passed) console.error(report.checks.filter((c) => !c.passed));
 *
 * On random tiny teachers (GQA and MHA, shared or separate classifier),
 * random untrained students (O and C, every aux kind, windows 1..6, LoRA
 * scaled up so the slots really differ from the teacher) and random
 * sampling settings (greedy, temperatures, top-k, top-p), every verifying
 * decoder (verify, single-call, multi-draft) over a batch of prompts must
 * output exactly the autoregressive sample path for the same u's, on the
 * backend under test; once with uniform u's and once with u's on and next
 * to the edges of the teacher's bins, where a decoder whose logits differ
 * in the last bit, or that accepts one token too many, goes astray.
 */
import type { Backend } from "../backends/backend.js";
import { openSuite, type ConformanceCheck, type ConformanceReport } from "../backends/conformance.js";
import type { BackendOptions } from "../backends/registry.js";
import { randomCheckpoint } from "../model/init.js";
import type { Gen } from "../util/prng.js";
import type { ModelConfig } from "../model/config.js";
import { Transformer } from "../model/transformer.js";
import { ArrayAux } from "../sampling/aux.js";
import { binOf } from "../sampling/pick.js";
import { samplingDistribution, type SamplingSettings } from "../sampling/processors.js";
import { needsU } from "../sampling/sampler.js";
import { randomStudent } from "./init.js";
import { decodeAR } from "./decode/decode-ar.js";
import { decode, type DecoderName } from "./decode/run.js";
import { PtpModel } from "./ptp-model.js";
import type { AuxEmbeddingConfig, Variant } from "./student-weights.js";

export interface PtpExactnessOptions {
  /** Random cases per check, a positive integer, at most MAX_EXACTNESS_RUNS (default 8). */
  runs?: number;
  /** Seed of the case generator, an integer (default 1). */
  seed?: number;
  backendOptions?: BackendOptions;
}

const DECODERS: DecoderName[] = ["verify", "single-call", "multi-draft"];

/** The options of runPtpExactness; another (run, seeds) is a typo that would be ignored. */
const EXACTNESS_OPTIONS: readonly (keyof PtpExactnessOptions)[] = ["runs", "seed", "backendOptions"];

/** The most random cases per check: 10^4, as runBackendConformance (each case decodes several models; more would hold the thread for hours). */
export const MAX_EXACTNESS_RUNS = 10_000;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
const nextDownF32 = (x: number): number => {
  if (x === 0) return 0;
  f32[0] = x;
  u32[0] -= 1;
  return f32[0];
};
const nextUpF32 = (x: number): number => {
  f32[0] = x;
  u32[0] += 1;
  return f32[0];
};

interface Case {
  config: ModelConfig;
  modelSeed: number;
  variant: Variant;
  aux: AuxEmbeddingConfig;
  rank: number;
  window: number;
  studentSeed: number;
  sampling: SamplingSettings;
  steps: number;
  prompts: number[][];
  us: number[][];
}

function randomCase(g: Gen): Case {
  const nKvHeads = g.int(1, 3),
    group = g.int(1, 2),
    halfHead = g.int(1, 3);
  const nHeads = nKvHeads * group;
  const vocabSize = g.int(3, 30);
  const config: ModelConfig = { dim: nHeads * halfHead * 2, hiddenDim: g.int(1, 24), nLayers: g.int(1, 2), nHeads, nKvHeads, vocabSize, seqLen: 64, sharedClassifier: g.next() < 0.5, normEps: 1e-5, ropeTheta: 10000 };
  const temperature = g.pick([0, 0.5, 0.8, 1, 1.5]);
  const sampling: SamplingSettings = { temperature, topK: g.next() < 0.5 ? 0 : g.int(1, 12), topP: g.next() < 0.5 ? 1 : 0.3 + 0.69 * g.next() };
  const nPrompts = g.int(1, 3);
  const prompts = Array.from({ length: nPrompts }, () => [1, ...Array.from({ length: g.int(0, 5) }, () => g.int(0, vocabSize - 1))]);
  const us = prompts.map(() => Array.from({ length: 256 }, () => Math.fround(g.next()) % 1));
  const kind = g.pick(["bits", "digits", "anchors"] as const);
  return {
    config,
    modelSeed: g.int(1, 1 << 30),
    variant: g.pick(["O", "C"] as const),
    aux: kind === "digits" ? { kind, digits: 8 } : { kind },
    rank: g.int(1, 4),
    window: g.int(1, 6),
    studentSeed: g.int(1, 1 << 30),
    sampling,
    steps: g.int(1, 24),
    prompts,
    us,
  };
}

/** u's on, or one float32 inside, the edges of the teacher's bins along its own sample path. */
function edgeUs(teacher: Transformer, prompt: number[], steps: number, sampling: SamplingSettings, us: number[], g: Gen): number[] {
  if (!needsU(sampling)) return us;
  const out = us.slice();
  const path = decodeAR(teacher, prompt, { steps, sampling, aux: new ArrayAux(us), stopAtBos: false }).tokens;
  const cache = teacher.newCache();
  const logits = teacher.forward({ tokens: path.slice(0, -1), positions: path.slice(0, -1).map((_, i) => i) }, cache);
  cache.free();
  const V = teacher.config.vocabSize;
  const first = Math.min(prompt.length, steps + 1);
  for (let k = first; k < path.length; k++) {
    const [left, right] = binOf(samplingDistribution(logits.subarray((k - 1) * V, k * V), sampling), path[k]);
    const c = g.next();
    const u = c < 0.4 ? left : c < 0.8 ? nextDownF32(right) : nextUpF32(left);
    if (u >= left && u < right && u < 1) out[k - first] = u;
  }
  return out;
}

function describeCase(c: Case, decoder: DecoderName): string {
  return `decoder ${decoder}, ${c.variant}-PTP student (aux ${c.aux.kind}, rank ${c.rank}, window ${c.window}), teacher dim ${c.config.dim} heads ${c.config.nHeads}/${c.config.nKvHeads} vocab ${c.config.vocabSize}, sampling ${JSON.stringify(c.sampling)}, steps ${c.steps}`;
}

function runCase(b: Backend, c: Case, edges: boolean, g: Gen): void {
  const teacherCkpt = randomCheckpoint(c.config, c.modelSeed);
  const teacher = new Transformer(b, teacherCkpt);
  try {
    const us = edges ? c.prompts.map((p, i) => edgeUs(teacher, p, c.steps, c.sampling, c.us[i], g)) : c.us;
    const ar = c.prompts.map((p, i) => decodeAR(teacher, p, { steps: c.steps, sampling: c.sampling, aux: new ArrayAux(us[i]) }).tokens);
    // Plain (aux) students, as the suite has always drawn: its cases stay the same whatever the default slot input.
    const student = randomStudent(teacherCkpt, "exactness-suite", { variant: c.variant, rank: c.rank, aux: c.aux, window: c.window, hybrid: false, seed: c.studentSeed });
    for (const layer of student.weights.layers) for (const pair of Object.values(layer)) pair.B.forEach((v, i) => (pair.B[i] = v * 25));
    const model = new PtpModel(teacher, student);
    try {
      for (const decoder of DECODERS) {
        const out = decode(model, c.prompts, { decoder, window: c.window, budget: 8, drafts: 2, steps: c.steps, sampling: c.sampling, aux: us.map((u) => new ArrayAux(u)) });
        out.outputs.forEach((o, i) => {
          if (JSON.stringify(o) !== JSON.stringify(ar[i])) {
            throw new Error(`${describeCase(c, decoder)}: prompt ${i} gave ${JSON.stringify(o)}, AR gave ${JSON.stringify(ar[i])}`);
          }
        });
      }
    } finally {
      model.dispose();
    }
  } finally {
    teacher.dispose();
  }
}

/**
 * Runs PTP's exactness checks on a backend (a registered name or an
 * instance). Never throws for a failing check: the report lists each check
 * with its first failure.
 */
export async function runPtpExactness(backend: string | Backend, options: PtpExactnessOptions = {}): Promise<ConformanceReport> {
  const { b, runs, g } = await openSuite("runPtpExactness", backend, options, EXACTNESS_OPTIONS, { default: 8, max: MAX_EXACTNESS_RUNS, what: "random cases per check" });
  const specs = [
    { id: "decoders-equal-ar", description: "verify, single-call and multi-draft output the AR sample path for the same u's (uniform u's)", edges: false },
    { id: "decoders-equal-ar-edges", description: "the same with u's on and next to the teacher's bin edges", edges: true },
  ];
  const checks: ConformanceCheck[] = [];
  for (const spec of specs) {
    let failure: string | undefined;
    let cases = 0;
    for (let i = 0; i < runs && failure === undefined; i++) {
      cases++;
      try {
        runCase(b, randomCase(g), spec.edges, g);
      } catch (e) {
        failure = e instanceof Error ? e.message : String(e);
      }
    }
    checks.push({ id: spec.id, description: spec.description, passed: failure === undefined, cases, ...(failure ? { failure } : {}) });
  }
  return { backend: b.name, description: b.description, passed: checks.every((c) => c.passed), checks };
}
