import { MAX_AUX_DIGITS } from "../ptp/files/ptp-file-parts.js";
import type { AuxEmbeddingConfig, AuxKind } from "../ptp/student-weights.js";
import { UsageError, defineFlags } from "./args.js";

/** --slot-input: hybrid (a window's first slot also embeds the last known token; the default for new models) or aux (u only). */
export function slotInputFlag(helpPrefix = "") {
  return defineFlags({
    "slot-input": { kind: "string", value: "KIND", help: `${helpPrefix}slot input: hybrid (slot 0 also embeds the last known token) | aux (u only)`, default: "hybrid", choices: ["hybrid", "aux"] },
  });
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
