import { describeValue } from "../util/checks.js";
import type { Draft, DraftConfig } from "./draft-model.js";
import type { Student, StudentConfig } from "./student-weights.js";

/**
 * What proposes a PTP decoder's drafts, tagged: a gated-LoRA student of the
 * teacher, or a standalone draft model (its own small transformer).
 */
export type Proposer = { kind: "student"; student: Student } | { kind: "draft"; draft: Draft };

/** The proposer's config (the fields both kinds share: variant, aux, window, hybrid, teacher checksum). */
export function proposerConfig(p: Proposer): StudentConfig | DraftConfig {
  const config = p?.kind === "student" ? p.student?.config : p?.kind === "draft" ? p.draft?.config : undefined;
  if (config === null || typeof config !== "object") throw new TypeError(`proposerConfig: p must be a Proposer ({ kind: "student", student } or { kind: "draft", draft }), got ${describeValue(p)}`);
  return config;
}
