import { MAX_AUX_DIGITS } from "../ptp/ptp-file-parts.js";
import type { AuxEmbeddingConfig, AuxKind } from "../ptp/student-weights.js";
import { UsageError, type FlagSpecs } from "./args.js";

/**
 * --slot-input: hybrid (a window's first slot also embeds the last known
 * token; the default for new models), aux (u only) or query (C-PTP: the first
 * slot is the teacher's own AR query on that token).
 */
export function slotInputFlag(helpPrefix = "") {
  return {
    "slot-input": { kind: "string", value: "KIND", help: `${helpPrefix}slot input: hybrid (slot 0 also embeds the last known token) | aux (u only) | query (C-PTP students: slot 0 is the teacher's own AR query)`, default: "hybrid", choices: ["hybrid", "aux", "query"] },
  } satisfies FlagSpecs;
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
export const auxFlags = {
  ...slotInputFlag(),
  aux: { kind: "string", value: "KIND", help: "auxiliary embedding: bits|digits|anchors", default: "bits", choices: ["bits", "digits", "anchors"] },
  digits: { kind: "int", value: "B", help: `binary digits of u, with --aux digits (required there; 1..${MAX_AUX_DIGITS})` },
  window: { kind: "int", value: "N", help: "window N: slots per proposal", default: 16 },
  seed: { kind: "int", value: "S", help: "seed of the weight generator", default: 1 },
} satisfies FlagSpecs;

/** The auxiliary embedding config of --aux and --digits (UsageError where --digits is missing, out of range or not wanted). */
export function auxFromFlags(f: { aux?: string; digits?: number }): AuxEmbeddingConfig {
  if (f.aux === "digits") {
    if (f.digits === undefined) throw new UsageError("--aux digits needs --digits B");
    if (f.digits < 1 || f.digits > MAX_AUX_DIGITS) throw new UsageError(`--digits must be an integer in 1..${MAX_AUX_DIGITS}, got ${f.digits}`);
    return { kind: "digits", digits: f.digits };
  }
  if (f.digits !== undefined) throw new UsageError(`--digits applies to --aux digits only (aux is ${f.aux})`);
  return { kind: f.aux as AuxKind };
}
