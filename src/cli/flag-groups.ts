import { MAX_AUX_DIGITS } from "../ptp/files/ptp-file-parts.js";
import type { AuxEmbeddingConfig, AuxKind } from "../ptp/student-weights.js";
import { DEFAULT_BACKEND, listBackends } from "../backends/registry.js";
import type { LrDecay } from "../train/schedule.js";
import { UsageError, defineFlags } from "./args.js";
import { forceFlag } from "./output-files.js";

/**
 * The flag groups commands share: the compute backend (--backend, --threads),
 * the training loop, the PTP student's shape, and the auxiliary embedding.
 */

/** --backend (any registered backend) and --threads, with per-command help where the meaning differs. */
export function backendFlags(help: { backend?: string; threads?: string } = {}) {
  return defineFlags({
    backend: { kind: "string", value: "NAME", help: help.backend ?? "compute backend", default: DEFAULT_BACKEND, choices: listBackends },
    threads: { kind: "int", value: "N", help: help.threads ?? "wasm backend: threads for large matmuls (default: the available cores)", min: 1, max: 256 },
  });
}

const SLOT_INPUT_HELP = "slot input: hybrid (slot 0 also embeds the last known token) | aux (u only) | query (C-PTP students: slot 0 is the teacher's own AR query)";
const SLOT_INPUTS = ["hybrid", "aux", "query"] as const;

/**
 * --slot-input: hybrid (a window's first slot also embeds the last known
 * token; the default for new models), aux (u only) or query (C-PTP: the first
 * slot is the teacher's own AR query on that token).
 */
export function slotInputFlag(helpPrefix = "") {
  return defineFlags({
    "slot-input": { kind: "string", value: "KIND", help: `${helpPrefix}${SLOT_INPUT_HELP}`, default: "hybrid", choices: SLOT_INPUTS },
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
  if (kind !== "query") return { hybrid: kind === "hybrid", query: false };
  if (variant !== "C") throw new UsageError(`--slot-input query needs --variant C (an O-PTP slot 0 must see its own u), got --variant ${variant}`);
  if (draft) throw new UsageError("--slot-input query is for LoRA students; a standalone draft model takes hybrid or aux");
  if (window < 2) throw new UsageError(`--slot-input query needs --window >= 2 (slot 0 is the teacher's own query; the student drafts slots 1..N-1), got ${window}`);
  return { hybrid: true, query: true };
}

/** The flags random-student and random-draft share: the auxiliary embedding, the slot input, the window and the seed. */
export const auxFlags = defineFlags({
  ...slotInputFlag(),
  aux: { kind: "string", value: "KIND", help: "auxiliary embedding: bits|digits|anchors", default: "bits", choices: ["bits", "digits", "anchors"] },
  digits: { kind: "int", value: "B", help: `binary digits of u, with --aux digits (required there; 1..${MAX_AUX_DIGITS})` },
  window: { kind: "int", value: "N", help: "window N: slots per proposal", default: 16 },
  seed: { kind: "int", value: "S", help: "seed of the weight generator", default: 1 },
});

/** The auxiliary embedding config of --aux and --digits (UsageError where --digits is missing, out of range or not wanted). */
export function auxFromFlags(f: { aux: AuxKind; digits?: number }): AuxEmbeddingConfig {
  if (f.aux === "digits") {
    if (f.digits === undefined) throw new UsageError("--aux digits needs --digits B");
    if (f.digits < 1 || f.digits > MAX_AUX_DIGITS) throw new UsageError(`--digits must be an integer in 1..${MAX_AUX_DIGITS}, got ${f.digits}`);
    return { kind: "digits", digits: f.digits };
  }
  if (f.digits !== undefined) throw new UsageError(`--digits applies to --aux digits only (aux is ${f.aux})`);
  return { kind: f.aux };
}

/** The optimizer, run-length and checkpoint flags every training command shares (distill, train). */
export function loopFlags(d: { lr: number; schedule: LrDecay; weightDecay: number; steps: number; seedHelp: string; evalHelp: string }) {
  return defineFlags({
    checkpoint: { kind: "string", value: "FILE", help: "training checkpoint (default: OUT.train.safetensors)" },
    log: { kind: "string", value: "FILE", help: "metrics log, JSON lines per evaluation (default: OUT.log.jsonl)" },
    resume: { kind: "bool", help: "continue from --checkpoint (same options)" },
    ...forceFlag,
    steps: { kind: "int", value: "N", help: "optimizer steps", default: d.steps },
    "stop-after": { kind: "int", value: "N", help: "stop as Ctrl-C does after N steps of this run, saving a checkpoint (for testing --resume)", default: 0 },
    minutes: { kind: "number", value: "M", help: "stop after M minutes of training (0 = no limit), counted across resumes", default: 0 },
    lr: { kind: "number", value: "LR", help: "peak learning rate", default: d.lr },
    warmup: { kind: "int", value: "N", help: "warmup steps", default: 100 },
    schedule: { kind: "string", value: "KIND", help: "constant|cosine after warmup", default: d.schedule, choices: ["constant", "cosine"] },
    "weight-decay": { kind: "number", value: "W", help: "AdamW decoupled weight decay", default: d.weightDecay },
    clip: { kind: "number", value: "C", help: "clip the gradient norm (0 = off)", default: 1 },
    seed: { kind: "int", value: "S", help: d.seedHelp, default: 1 },
    "eval-every": { kind: "int", value: "N", help: d.evalHelp, default: 200 },
  });
}

/** The PTP student's shape flags (distill; train --objective inverse-ar), with per-command defaults. */
export function studentFlags(d: { aux: "bits" | "digits" | "anchors"; digits: number; window: number; beta: number; helpPrefix: string }) {
  const h = d.helpPrefix;
  return defineFlags({
    rank: { kind: "int", value: "R", help: `${h}LoRA rank`, default: 32, max: 4096 },
    alpha: { kind: "number", value: "A", help: `${h}LoRA alpha (update scaled by alpha / rank)`, default: 32 },
    aux: { kind: "string", value: "KIND", help: `${h}auxiliary embedding of u: bits|digits|anchors`, default: d.aux, choices: ["bits", "digits", "anchors"] },
    digits: { kind: "int", value: "B", help: `${h}binary digits of u for --aux digits`, default: d.digits },
    window: { kind: "int", value: "L", help: `${h}slots per window`, default: d.window, max: 1024 },
    beta: { kind: "number", value: "B", help: `${h}u drawn in its bin at left + z (right - left), z ~ Beta(B, B)`, default: d.beta },
    ...slotInputFlag(h),
  });
}
