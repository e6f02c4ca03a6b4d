import { MAX_EXTRA_BLOCKS } from "../ptp/files/adapter-file.js";
import { DEFAULT_DRAFT_SHAPE } from "../ptp/init.js";
import { MAX_AUX_DIGITS } from "../ptp/files/ptp-file-parts.js";
import { DEFAULT_SLOT_INPUT, DEFAULT_STUDENT_WINDOW, MAX_ALPHA, MIN_ALPHA, PICK_FEEDBACK_KINDS, type AuxEmbeddingConfig, type AuxKind, type PickFeedbackKind } from "../ptp/student-weights.js";
import { DEFAULT_BACKEND, listBackends } from "../backends/registry.js";
import type { LrDecay } from "../train/schedule.js";
import { configProblems, INT_SHAPE_FIELDS, type ModelConfig } from "../model/config.js";
import { UsageError, defineFlags } from "./args.js";
import { forceFlag } from "./output-files.js";
import { MAX_BUDGET, MAX_WINDOW } from "../ptp/decode/defaults.js";
import { MAX_THREADS } from "../backends/wasm/index.js";

/**
 * The flag groups commands share: the compute backend (--backend, --threads),
 * the training loop, the PTP student's shape, and the auxiliary embedding.
 */

/**
 * Bounds shared by every command that takes these flags (one place each).
 * A window holds at most MAX_WINDOW slots, and at most the teacher's seqLen;
 * a LoRA rank is at most MAX_RANK, and at most the teacher's dim.
 */
export { MAX_BUDGET, MAX_WINDOW };
export const MAX_RANK = 4096;
/**
 * A standalone draft model's width, SwiGLU hidden width and depth are at
 * most those of Llama-2-70B's blocks (8192, 28672 rounded up to 32768, and
 * 128 layers, more than any Llama has); its heads must divide its width.
 */
export const MAX_DRAFT_SHAPE = { dim: 8192, hiddenDim: 32768, nLayers: 128 } as const;

/** --window N: proposal slots per window, in [1, MAX_WINDOW]. */
export function windowFlag<const D extends { default?: number }>(help: string, d: D = {} as D) {
  return { kind: "int", value: "N", help: `${help}; 1..${MAX_WINDOW}`, positive: true, max: MAX_WINDOW, ...d } as const;
}

/** --budget B (single-call: proposal rows per call), in [1, MAX_BUDGET]. */
export const budgetFlag = { kind: "int", value: "B", help: `single-call: proposal rows per call, slots and runner-up rows (default 2 N; at most ${MAX_BUDGET})`, min: 1, max: MAX_BUDGET } as const;

/** --digits B: binary digits of u for --aux digits, in [1, MAX_AUX_DIGITS]. */
export function digitsFlag<const D extends { default?: number }>(help: string, d: D = {} as D) {
  return { kind: "int", value: "B", help: `${help} (1..${MAX_AUX_DIGITS})`, min: 1, max: MAX_AUX_DIGITS, ...d } as const;
}

/** --rank R: LoRA rank, at most MAX_RANK (and at least 1: checkRank; at most the teacher's dim: checkAgainstTeacher). */
export function rankFlag<const D extends { default?: number; required?: boolean }>(help: string, d: D) {
  return { kind: "int", value: "R", help: `${help}; 1..${MAX_RANK}, at most the teacher's dim`, max: MAX_RANK, ...d } as const;
}

// --alpha's range (MIN_ALPHA, MAX_ALPHA) is the library's: src/ptp/student-weights.ts says why.

/** --alpha of a LoRA student, in [MIN_ALPHA, MAX_ALPHA]. */
export function alphaFlag(help: string, defaultAlpha: number) {
  return { kind: "number", value: "A", help: `${help}; the update is scaled by alpha / rank (${MIN_ALPHA}..${MAX_ALPHA})`, default: defaultAlpha, min: MIN_ALPHA, max: MAX_ALPHA } as const;
}

/** --rank must be a positive integer (checked before any file is read). */
export function checkRank(rank: number): void {
  if (rank < 1) throw new UsageError(`--rank must be a positive integer, got ${rank}`);
}

/** The draft model's shape flags, DEFAULT_DRAFT_SHAPE by default, bounded by MAX_DRAFT_SHAPE (heads: by the width they must divide). */
export function draftShapeSpecs() {
  const d = DEFAULT_DRAFT_SHAPE;
  return {
    dim: { kind: "int", value: "D", help: `draft model width (1..${MAX_DRAFT_SHAPE.dim})`, default: d.dim, min: 1, max: MAX_DRAFT_SHAPE.dim },
    hidden: { kind: "int", value: "H", help: `draft model SwiGLU hidden width (1..${MAX_DRAFT_SHAPE.hiddenDim})`, default: d.hiddenDim, min: 1, max: MAX_DRAFT_SHAPE.hiddenDim },
    layers: { kind: "int", value: "L", help: `draft model layers (1..${MAX_DRAFT_SHAPE.nLayers})`, default: d.nLayers, min: 1, max: MAX_DRAFT_SHAPE.nLayers },
    heads: { kind: "int", value: "N", help: "draft model query heads (must divide the width)", default: d.nHeads, min: 1 },
    "kv-heads": { kind: "int", value: "K", help: "draft model key/value heads (must divide the heads)", default: d.nKvHeads, min: 1 },
  } as const;
}

/** The flags that set each field of a model's shape (ptp train's names; random-draft's, and distill's with "draft-"). */
export const SHAPE_FLAG_NAMES = { dim: "dim", hiddenDim: "hidden", nLayers: "layers", nHeads: "heads", nKvHeads: "kv-heads", vocabSize: "vocab", seqLen: "seq-len" } as const satisfies Record<(typeof INT_SHAPE_FIELDS)[number], string>;

/**
 * Refuses (UsageError, one line naming the flags) a model shape given by
 * flags that is not a valid Llama shape (heads dividing the width, an even
 * head size, ...). Fields not given (vocab, seqLen: the teacher's) are taken
 * as valid. `prefix` is put before the flag names (distill: "draft-").
 */
export function checkShapeFlags(shape: Partial<Pick<ModelConfig, (typeof INT_SHAPE_FIELDS)[number]>>, prefix = ""): void {
  const problems = configProblems({ vocabSize: 1, seqLen: 1, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000, dim: 1, hiddenDim: 1, nLayers: 1, nHeads: 1, nKvHeads: 1, ...shape });
  if (problems.length === 0) return;
  const fields = new RegExp(`\\b(${INT_SHAPE_FIELDS.join("|")})\\b`, "g");
  const named = problems.map((p) => p.replace(fields, (field) => `--${prefix}${SHAPE_FLAG_NAMES[field as keyof typeof SHAPE_FLAG_NAMES]}`));
  throw new UsageError(`invalid model shape: ${named.join("; ")}`);
}

/**
 * Flags bounded by the teacher (UsageError naming the flag): --rank by its
 * dim, --window by its seqLen.
 */
export function checkAgainstTeacher(f: { rank?: number; window?: number }, c: ModelConfig): void {
  if (f.rank !== undefined && f.rank > c.dim) throw new UsageError(`--rank must be <= the teacher's dim ${c.dim}, got ${f.rank}`);
  if (f.window !== undefined && f.window > c.seqLen) throw new UsageError(`--window must be <= the teacher's seqLen ${c.seqLen}, got ${f.window}`);
}

/** --backend (any registered backend) and --threads, with per-command help where the meaning differs. */
export function backendFlags(help: { backend?: string; threads?: string } = {}) {
  return defineFlags({
    backend: { kind: "string", value: "NAME", help: help.backend ?? "compute backend", default: DEFAULT_BACKEND, choices: listBackends },
    threads: { kind: "int", value: "N", help: help.threads ?? "wasm backend: threads for large matmuls (default: the available cores)", min: 1, max: MAX_THREADS },
  });
}

/** --threads splits the wasm backend's work; another backend would ignore it, so it is refused there. */
export function checkThreadsBackend(f: { backend: string; threads?: number }): void {
  if (f.threads !== undefined && f.backend !== "wasm") throw new UsageError(`--threads applies to the wasm backend (--backend ${f.backend} does not split its work over threads)`);
}

const SLOT_INPUT_HELP = "slot input: hybrid (slot 0 also embeds the last known token) | aux (u only) | query (C-PTP students: slot 0 is the teacher's own AR query)";
const SLOT_INPUTS = ["hybrid", "aux", "query"] as const;

/**
 * --slot-input: hybrid (a window's first slot also embeds the last known
 * token), aux (u only) or query (C-PTP: the first slot is the teacher's own
 * AR query on that token); default DEFAULT_SLOT_INPUT, the library's default
 * for new models.
 */
export function slotInputFlag(helpPrefix = "") {
  return defineFlags({
    "slot-input": { kind: "string", value: "KIND", help: `${helpPrefix}${SLOT_INPUT_HELP}`, default: DEFAULT_SLOT_INPUT, choices: SLOT_INPUTS },
  });
}

/** --slot-input with no fixed default: the command picks one from the other flags (`defaultHelp` says how). */
export function slotInputFlagWithoutDefault(defaultHelp: string) {
  return defineFlags({
    "slot-input": { kind: "string", value: "KIND", help: `${SLOT_INPUT_HELP} (default: ${defaultHelp})`, choices: SLOT_INPUTS },
  });
}

/**
 * The model options of --slot-input, checked against the variant, the window
 * and the kind of model (`draft`: standalone draft models have no query slot).
 */
export function slotInputFromFlags(kind: string | undefined, variant: string, window: number, draft = false): { hybrid: boolean; query: boolean } {
  if (kind !== "query") return { hybrid: (kind ?? DEFAULT_SLOT_INPUT) === "hybrid", query: false };
  if (variant !== "C") throw new UsageError(`--slot-input query needs --variant C (an O-PTP slot 0 must see its own u), got --variant ${variant}`);
  if (draft) throw new UsageError("--slot-input query is for LoRA students; a standalone draft model takes hybrid or aux");
  if (window < 2) throw new UsageError(`--slot-input query needs --window >= 2 (slot 0 is the teacher's own query; the student drafts slots 1..N-1), got ${window}`);
  return { hybrid: true, query: true };
}

/** The largest seed of the weight generators (Mulberry32 takes 32 bits). */
export const MAX_WEIGHT_SEED = 0xffffffff;
/** The most optimizer steps a run may ask for (a billion: beyond any run this package can make, and exact in every schedule). */
export const MAX_STEPS = 1_000_000_000;

/** The flags random-student and random-draft share: the auxiliary embedding, the slot input, the window and the seed. */
/** `--extra-blocks E` and `--pick-feedback` of a new student (spec/ptp.md 2.4, 2.5). */
export const extraBlocksFlag = defineFlags({
  "extra-blocks": {
    kind: "int",
    value: "E",
    help: `extra blocks of a new student (0..${MAX_EXTRA_BLOCKS}): blocks of its own that its slot rows run after the teacher's layers, starting as copies of teacher layers that add exactly 0 (an --init student of ptp distill brings its own)`,
    default: 0,
    min: 0,
    max: MAX_EXTRA_BLOCKS,
  },
  "pick-feedback": {
    kind: "string",
    value: "KIND",
    help: "pick feedback for a new query student with --extra-blocks, through a table that starts at 0: first (slot 1 reads the window's first pick, made inside the call after the teacher's layers) or chain (every slot reads the draft of the slot before it; the extra blocks then run slot after slot)",
    choices: [...PICK_FEEDBACK_KINDS],
  },
  "draft-head": {
    kind: "bool",
    help: "make the new student a draft head (needs --pick-feedback chain): its slot rows skip the teacher's layers and run only the extra blocks, so it drafts beside the teacher at the cost of those blocks (decoder verify)",
  },
});

/** Pick feedback (and draft head) of a new student (UsageError unless it is a query student with extra blocks; a draft head needs chained feedback). */
export function pickFeedbackFromFlags(f: { "pick-feedback"?: string; "extra-blocks": number; "draft-head"?: boolean }, query: boolean): { pickFeedback?: PickFeedbackKind; draftHead?: boolean } {
  const kind = f["pick-feedback"] as PickFeedbackKind | undefined;
  if (f["draft-head"] && kind !== "chain") throw new UsageError("--draft-head needs --pick-feedback chain (a draft head's slot row reads the token before it, as it skips the teacher's layers)");
  if (kind === undefined) return {};
  if (!query) throw new UsageError("--pick-feedback needs --slot-input query (only a query student's first pick is known inside the call)");
  if (f["extra-blocks"] < 1) throw new UsageError("--pick-feedback needs --extra-blocks E >= 1 (the pick is read after the teacher's layers, by the extra blocks)");
  return { pickFeedback: kind, ...(f["draft-head"] ? { draftHead: true } : {}) };
}

export const auxFlags = defineFlags({
  ...slotInputFlag(),
  aux: { kind: "string", value: "KIND", help: "auxiliary embedding: bits|digits|anchors", default: "bits", choices: ["bits", "digits", "anchors"] },
  digits: digitsFlag("binary digits of u, with --aux digits (required there)"),
  window: windowFlag("window N: slots per proposal (at most the teacher's seqLen)", { default: DEFAULT_STUDENT_WINDOW }),
  // The generator takes a 32-bit seed: anything outside is refused, not wrapped (2^32 would give seed 0's weights).
  seed: { kind: "int", value: "S", help: `seed of the weight generator (0..${MAX_WEIGHT_SEED})`, default: 1, min: 0, max: MAX_WEIGHT_SEED },
});

/** The auxiliary embedding config of --aux and --digits (UsageError where --digits is missing, out of range or not wanted). */
/** The auxiliary embedding of studentFlags (whose --digits has a default; checkDigitsGiven refuses it given beside another --aux). */
export function studentAux(f: { aux: AuxKind; digits: number }): AuxEmbeddingConfig {
  return f.aux === "digits" ? { kind: "digits", digits: f.digits } : { kind: f.aux };
}

export function auxFromFlags(f: { aux: AuxKind; digits?: number }): AuxEmbeddingConfig {
  if (f.aux === "digits") {
    if (f.digits === undefined) throw new UsageError("--aux digits needs --digits B");
    return { kind: "digits", digits: f.digits };
  }
  if (f.digits !== undefined) throw new UsageError(`--digits applies to --aux digits only (aux is ${f.aux})`);
  return { kind: f.aux };
}

/** studentFlags' --digits has a default, so a --digits given beside another --aux would be ignored: refused instead. */
export function checkDigitsGiven(f: { aux: AuxKind }, given: ReadonlySet<string>): void {
  if (given.has("digits") && f.aux !== "digits") throw new UsageError(`--digits applies to --aux digits only (aux is ${f.aux})`);
}

/** The optimizer, run-length and checkpoint flags every training command shares (distill, train). */
export function loopFlags(d: { lr: number; schedule: LrDecay; weightDecay: number; steps: number; seedHelp: string; evalHelp: string }) {
  return defineFlags({
    checkpoint: { kind: "string", value: "FILE", help: "training checkpoint (default: OUT.train.safetensors)" },
    log: { kind: "string", value: "FILE", help: "metrics log, JSON lines per evaluation (default: OUT.log.jsonl)" },
    resume: { kind: "bool", help: "continue from --checkpoint (same options)" },
    ...forceFlag,
    steps: { kind: "int", value: "N", help: "optimizer steps", default: d.steps, positive: true, max: MAX_STEPS },
    "stop-after": { kind: "int", value: "N", help: "stop as Ctrl-C does after N steps of this run, saving a checkpoint (for testing --resume)", default: 0, min: 0 },
    minutes: { kind: "number", value: "M", help: "stop after M minutes of training (0 = no limit), counted across resumes", default: 0, min: 0 },
    lr: { kind: "number", value: "LR", help: "peak learning rate", default: d.lr, above: 0 },
    warmup: { kind: "int", value: "N", help: "warmup steps", default: 100, min: 0 },
    schedule: { kind: "string", value: "KIND", help: "constant|cosine after warmup", default: d.schedule, choices: ["constant", "cosine"] },
    "weight-decay": { kind: "number", value: "W", help: "AdamW decoupled weight decay", default: d.weightDecay, min: 0 },
    clip: { kind: "number", value: "C", help: "clip the gradient norm (0 = off)", default: 1, min: 0 },
    seed: { kind: "int", value: "S", help: `${d.seedHelp} (0..${MAX_WEIGHT_SEED})`, default: 1, min: 0, max: MAX_WEIGHT_SEED },
    "eval-every": { kind: "int", value: "N", help: d.evalHelp, default: 200, min: 0 },
  });
}

/** The PTP student's shape flags (distill; train --objective inverse-ar), with per-command defaults. */
export function studentFlags(d: { aux: "bits" | "digits" | "anchors"; digits: number; window: number; beta: number; helpPrefix: string }) {
  const h = d.helpPrefix;
  return defineFlags({
    rank: rankFlag(`${h}LoRA rank`, { default: 32 }),
    alpha: alphaFlag(`${h}LoRA alpha`, 32),
    aux: { kind: "string", value: "KIND", help: `${h}auxiliary embedding of u: bits|digits|anchors`, default: d.aux, choices: ["bits", "digits", "anchors"] },
    digits: digitsFlag(`${h}binary digits of u for --aux digits`, { default: d.digits }),
    window: { ...windowFlag(`${h}slots per window (at most the teacher's seqLen)`, { default: d.window }), value: "L" },
    beta: { kind: "number", value: "B", help: `${h}u drawn in its bin at left + z (right - left), z ~ Beta(B, B); B > 0`, default: d.beta, above: 0 },
    ...slotInputFlag(h),
  });
}
