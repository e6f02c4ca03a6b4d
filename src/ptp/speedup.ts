import type { Backend, WeightType } from "../backends/backend.js";
import { timeCalls } from "./decode/call-cost.js";
import { Transformer } from "../model/transformer.js";
import type { Checkpoint } from "../model/weights.js";
import { XorShiftAux } from "../sampling/aux.js";
import { checkPositiveInteger, describeValue } from "../util/checks.js";
import { decodeBatches } from "./decode/compare.js";
import { runToEnd } from "./decode/decode-ar.js";
import type { DecoderName } from "./decode/run.js";
import { PtpModel } from "./ptp-model.js";
import { DraftModel } from "./draft-model.js";
import type { Proposer } from "./proposer.js";
import { draftHeadOf } from "./draft-head.js";
import { WIDEN_SHAPES, widenCheckpoint, widenDraft, widenDraftHead, widenStudent } from "./widen.js";

/**
 * Where PTP pays on this CPU, measured: the wall-clock tokens/s of AR and of
 * PTP decoders in one run, at the teacher's own shape and at widened copies
 * (src/ptp/widen.ts) with the compute of larger shapes but the same tokens
 * and acceptance. A gated-LoRA student is widened with its teacher (it runs
 * on the teacher's weights); a standalone draft model keeps its own size and
 * only takes the widened vocabulary (widenDraft), as a small draft of a
 * large teacher would. Shared by bench/ptp-speedup.ts and `ptp demo --scale`.
 */

export interface SpeedupRow {
  /** "own" (the teacher as it is) or a WIDEN_SHAPES name. */
  shape: string;
  decoder: DecoderName;
  /** Tokens generated per model call, a draft model's calls included (AR: 1). */
  acceptedPerCall: number;
  /** Rows per call of the teacher (and its student), the prefill included. */
  rowsPerCall: number;
  /** Time of one call of round(rowsPerCall) rows over a one-row call, after 64 cached tokens. */
  cRows: number;
  arTokensPerSecond: number;
  tokensPerSecond: number;
  speedup: number;
  /** The share of the decode's wall time spent outside the model's forward calls (picks, drafts, budget, bookkeeping). */
  hostShare: number;
  equalsAR: boolean;
}

export interface SpeedupOptions {
  backend: Backend;
  teacher: Checkpoint;
  /** The gated-LoRA student or the standalone draft model that proposes. */
  proposer: Proposer;
  prompts: readonly (readonly number[])[];
  /** "own" and/or WIDEN_SHAPES names. */
  shapes: readonly string[];
  decoders: readonly DecoderName[];
  steps: number;
  temperature: number;
  /** Timed repetitions (medians); AR and each decoder alternate. */
  reps: number;
  /** Slots per proposal window (default: the proposer's window). */
  window?: number;
  /** C-PTP drafts at this fraction of the temperature (default: the decoders' default; see drafter). */
  draftTemperatureScale?: number;
  /** single-call and verify: runner-ups read per draft, or on / off (default: the decoders' default). */
  runnerUps?: boolean | number;
  /** single-call: proposal rows per call (default: the decoders' default for the window). */
  budget?: number;
  /** verify with a draft head: the chance below which a window stops drafting (DecodeOptions.draftStop; default: the decoders'). */
  draftStop?: number | "auto";
  /** The type a draft head's or draft model's classifier is read in (TransformerOptions.classifierWeights; default: the backend's). */
  draftClassifier?: WeightType;
  seed?: number | bigint;
  onProgress?: (message: string) => void;
}

interface Run {
  outputs: number[][];
  calls: number;
  tokens: number;
  seconds: number;
  /** Seconds inside the model's forward calls. */
  forwardSeconds: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

/** c(rows): the median time of a rows-row causal call after 64 cached tokens over that of a 1-row one, the two alternating, seven rounds (timeCalls). */
function callCostRatio(model: Transformer, rows: number): number {
  if (rows <= 1) return 1;
  const [one, k] = timeCalls(model, [1, rows], { prefix: 64, rounds: 7, statistic: "median" });
  return k / one;
}

export function measureSpeedup(o: SpeedupOptions): SpeedupRow[] {
  return runToEnd(measureSpeedupSteps(o));
}

/**
 * measureSpeedup a decode at a time: a generator that yields after each
 * part (a widening, a decode, a call-cost measurement), never inside a timed
 * decode, and returns the rows; return() stops it early and frees what it
 * made (`ptp demo --scale` runs it with runInterruptibly, so Ctrl-C stops it
 * between two decodes).
 */
export function* measureSpeedupSteps(o: SpeedupOptions): Generator<void, SpeedupRow[], void> {
  if (typeof o.backend?.alloc !== "function") throw new TypeError(`measureSpeedup: backend must be a Backend (createBackend), got ${describeValue(o.backend)}`);
  if (o.proposer?.kind !== "student" && o.proposer?.kind !== "draft") throw new TypeError(`measureSpeedup: proposer must be { kind: "student", student } or { kind: "draft", draft }, got ${describeValue(o.proposer)}`);
  if (!Array.isArray(o.prompts)) throw new TypeError(`measureSpeedup: prompts must be an array of prompts (arrays of token ids), got ${describeValue(o.prompts)}`);
  checkPositiveInteger(o.steps, "measureSpeedup", "steps (positions per prompt, prompt included)");
  checkPositiveInteger(o.reps, "measureSpeedup", "reps");
  if (o.seed !== undefined && !((typeof o.seed === "bigint" && o.seed >= 1n) || (typeof o.seed === "number" && Number.isSafeInteger(o.seed) && o.seed >= 1))) throw new RangeError(`measureSpeedup: seed must be an integer >= 1 (a number or a bigint), got ${describeValue(o.seed)}`);
  if (o.prompts.length === 0) throw new RangeError("measureSpeedup: no prompts");
  // Tokens and rows per call need a call: a prompt of more than `steps` tokens leaves none to make
  // (one of exactly `steps` still samples the token after it, as llama2.c's run does).
  if (!o.prompts.some((p) => p.length <= o.steps)) {
    throw new RangeError(`measureSpeedup: nothing to decode: every prompt has more than steps (${o.steps}) tokens, the shortest ${o.prompts.reduce((m, p) => Math.min(m, p.length), Infinity)}`);
  }
  const out: SpeedupRow[] = [];
  for (const shape of o.shapes) {
    if (shape !== "own" && !(shape in WIDEN_SHAPES)) throw new Error(`unknown shape ${JSON.stringify(shape)}; known: own, ${Object.keys(WIDEN_SHAPES).join(", ")}`);
    o.onProgress?.(`${shape}: ${shape === "own" ? "the teacher as it is" : "widening the teacher"}, then a warm-up and ${o.reps} timed run${o.reps === 1 ? "" : "s"} of ${["ar", ...o.decoders.filter((d) => d !== "ar")].join(", ")} on ${o.prompts.length} prompt${o.prompts.length === 1 ? "" : "s"}`);
    const ckpt = shape === "own" ? o.teacher : widenCheckpoint(o.teacher, WIDEN_SHAPES[shape]);
    const p = o.proposer;
    // A draft head keeps its own width at a widened shape (widenDraftHead); the student's other parts stay the original's.
    const head = p.kind === "student" && p.student.config.draftHead && shape !== "own" ? widenDraftHead(draftHeadOf(p.student, o.teacher.config, o.teacher.weights), ckpt) : undefined;
    const student = p.kind === "student" ? (shape === "own" || head ? p.student : widenStudent(p.student, o.teacher, ckpt)) : undefined;
    const teacher = new Transformer(o.backend, ckpt);
    const drafts = { classifierWeights: o.draftClassifier };
    const model = new PtpModel(teacher, student, head, drafts);
    const draft = p.kind === "draft" ? new DraftModel(teacher, shape === "own" ? p.draft : widenDraft(p.draft, ckpt), drafts) : undefined;
    let rows = 0,
      teacherCalls = 0,
      forwardMs = 0;
    const forward = model.forward.bind(model);
    // Every argument passes through (a wrapper that dropped the pick feedback would measure another student).
    model.forward = (...args: Parameters<PtpModel["forward"]>) => {
      rows += args[0].positions.length;
      teacherCalls++;
      const t = performance.now();
      try {
        return forward(...args);
      } finally {
        forwardMs += performance.now() - t;
      }
    };
    try {
      yield; // after the widening (seconds at 110M); a return() here still frees the models (finally)
      // One prompt per decode (as the demo does), so rows and tokens per call are one sequence's.
      const run = (decoder: DecoderName): Run => {
        forwardMs = 0;
        const r = decodeBatches(model, o.prompts, {
          decode: { steps: o.steps, sampling: { temperature: o.temperature }, decoder, window: o.window, draftTemperatureScale: o.draftTemperatureScale, runnerUps: o.runnerUps, budget: o.budget, draftStop: o.draftStop, ...(draft && decoder !== "ar" ? { draft } : {}) },
          aux: (i) => new XorShiftAux(BigInt(o.seed ?? 1) + BigInt(i)),
          batch: 1,
        });
        return { outputs: r.outputs, calls: r.stats.modelCalls, tokens: r.stats.generatedTokens, seconds: r.stats.seconds, forwardSeconds: forwardMs / 1000 };
      };
      const all: DecoderName[] = ["ar", ...o.decoders.filter((d) => d !== "ar")];
      // warm-up: packing, JIT tiers
      for (const d of all) {
        run(d);
        yield;
      }
      const speed = new Map<DecoderName, number[]>(all.map((d) => [d, []]));
      const last = new Map<DecoderName, { result: Run; rows: number; teacherCalls: number }>();
      for (let r = 0; r < o.reps; r++) {
        if (o.reps > 1) o.onProgress?.(`${shape}: timed run ${r + 1} of ${o.reps}`);
        for (const d of all) {
          rows = teacherCalls = 0;
          const result = run(d);
          speed.get(d)!.push(result.tokens / result.seconds);
          last.set(d, { result, rows, teacherCalls });
          yield;
        }
      }
      const ar = last.get("ar")!.result;
      const arSpeed = median(speed.get("ar")!);
      for (const d of all) {
        const { result, rows: n, teacherCalls: calls } = last.get(d)!;
        const rowsPerCall = n / calls;
        const tps = median(speed.get(d)!);
        const cRows = d === "ar" ? 1 : callCostRatio(teacher, Math.round(rowsPerCall));
        yield;
        const row: SpeedupRow = {
          shape,
          decoder: d,
          acceptedPerCall: result.tokens / result.calls,
          rowsPerCall,
          cRows,
          arTokensPerSecond: arSpeed,
          tokensPerSecond: tps,
          speedup: tps / arSpeed,
          hostShare: Math.max(0, 1 - result.forwardSeconds / result.seconds),
          equalsAR: JSON.stringify(result.outputs) === JSON.stringify(ar.outputs),
        };
        out.push(row);
        o.onProgress?.(`${shape} ${d}: ${tps.toFixed(1)} tok/s (AR ${arSpeed.toFixed(1)}), speedup ${row.speedup.toFixed(2)}x, ${row.acceptedPerCall.toFixed(2)} tokens and ${rowsPerCall.toFixed(1)} rows per call`);
      }
    } finally {
      draft?.dispose();
      model.dispose();
      teacher.dispose();
    }
  }
  return out;
}

/** The rows as a Markdown table. */
export function speedupTable(rows: readonly SpeedupRow[]): string {
  const lines = ["| shape | decoder | tokens/call | rows/call | c(rows) | AR tok/s | tok/s | speedup | host share | equals AR |", "|---|---|---|---|---|---|---|---|---|---|"];
  for (const r of rows) {
    lines.push(`| ${r.shape} | ${r.decoder} | ${r.acceptedPerCall.toFixed(2)} | ${r.rowsPerCall.toFixed(1)} | ${r.cRows.toFixed(2)} | ${r.arTokensPerSecond.toFixed(1)} | ${r.tokensPerSecond.toFixed(1)} | ${r.speedup.toFixed(2)}x | ${(100 * r.hostShare).toFixed(0)} % | ${r.equalsAR ? "yes" : "NO"} |`);
  }
  return lines.join("\n") + "\n";
}
