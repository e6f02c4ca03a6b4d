/**
 * The metrics log a training run appends to (--log): JSON lines, each an
 * object with a numeric "step". A last line without its newline was torn by
 * a kill and is no entry. One parser for every reader: the loop, which
 * drops the lines past a resumed checkpoint's step, and the CLI's output
 * checks, which recognise a log a run may continue.
 */

/** One entry of a metrics log: its 1-based line number, its text (no newline) and its step. */
export interface MetricsLogEntry {
  line: number;
  text: string;
  step: number;
}

/** A metrics log's entries, or the first line that is none (`notJson`: not JSON at all, else JSON without a numeric "step"). */
export type ParsedMetricsLog = { ok: true; entries: MetricsLogEntry[] } | { ok: false; line: number; notJson: boolean };

/** The step of one metrics log line; "not JSON", or "no step" for JSON without a numeric "step". */
export function logLineStep(text: string): number | "not JSON" | "no step" {
  let entry: unknown;
  try {
    entry = JSON.parse(text);
  } catch {
    return "not JSON";
  }
  const step = (entry as { step?: unknown } | null)?.step;
  return typeof step === "number" ? step : "no step";
}

/** How every entry a run appends starts (JSON.stringify of an object whose first key is step). */
const ENTRY_START = '{"step":';

/** Whether `torn` can be an entry cut short by a kill: a prefix of ENTRY_START, or ENTRY_START and more. */
function isEntryStart(torn: string): boolean {
  return ENTRY_START.startsWith(torn) || torn.startsWith(ENTRY_START);
}

/** The entries of a metrics log's text, blank lines and a torn last line (one without its newline) skipped. */
export function parseMetricsLog(text: string): ParsedMetricsLog {
  const lines = text.split("\n");
  if (!text.endsWith("\n")) {
    // A torn last line is the start of an entry as ptp writes one ({"step":...): any other text
    // without a newline (a dataset, a one-line note) was a log of no entries, and a resume replaced it.
    const torn = lines.pop()!;
    if (torn.trim() !== "" && !isEntryStart(torn)) return { ok: false, line: lines.length + 1, notJson: true };
  }
  const entries: MetricsLogEntry[] = [];
  for (const [i, l] of lines.entries()) {
    if (l.trim() === "") continue;
    const step = logLineStep(l);
    if (typeof step !== "number") return { ok: false, line: i + 1, notJson: step === "not JSON" };
    entries.push({ line: i + 1, text: l, step });
  }
  return { ok: true, entries };
}
