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

/** The entries of a metrics log's text, blank lines and a torn last line (one without its newline) skipped. */
export function parseMetricsLog(text: string): ParsedMetricsLog {
  const lines = text.split("\n");
  if (!text.endsWith("\n")) lines.pop();
  const entries: MetricsLogEntry[] = [];
  for (const [i, l] of lines.entries()) {
    if (l.trim() === "") continue;
    const step = logLineStep(l);
    if (typeof step !== "number") return { ok: false, line: i + 1, notJson: step === "not JSON" };
    entries.push({ line: i + 1, text: l, step });
  }
  return { ok: true, entries };
}
