/**
 * A progress reporter for long jobs, e.g.
 *
 *   train [######--------------] 300/1000  30.0%  12.5 steps/s  ETA 56s  loss 2.31  #correct 1.8
 *
 * On a TTY it redraws one line in place ("\r", padded over the previous
 * line) at most every `ttyIntervalSeconds`; elsewhere (logs, pipes) it
 * prints a full line at most every `intervalSeconds`. finish() prints the
 * final line (unless that exact line was just printed). The clock and stream are injectable for tests.
 */
import { describeValue } from "./checks.js";

export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
}

/** Caller fields, printed as "name value" in insertion order. */
export type ProgressFields = Readonly<Record<string, string | number>>;

export interface ProgressOptions {
  /** Units in the whole job. */
  total: number;
  /** Unit name for the rate, e.g. "tok" gives "tok/s". Default "it". */
  unit?: string;
  /** Printed first on each line. */
  label?: string;
  /** Units already done when the reporter starts (a resumed job); not counted in the rate. Default 0. */
  initial?: number;
  /** Default process.stderr. */
  stream?: ProgressStream;
  /** Overrides stream.isTTY. */
  tty?: boolean;
  /** Milliseconds, monotonic. Default performance.now. */
  now?: () => number;
  /** Non-TTY: least seconds between lines. Default 10. */
  intervalSeconds?: number;
  /** TTY: least seconds between redraws. Default 0.1. */
  ttyIntervalSeconds?: number;
  /** Characters inside the bar's brackets. Default 20. */
  barWidth?: number;
}

/** "45s", "12m05s", "3h04m". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  const pad = (n: number): string => String(n).padStart(2, "0");
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  return `${Math.floor(s / 3600)}h${pad(Math.floor((s % 3600) / 60))}m`;
}

/** About three significant digits, no exponent. */
export function formatRate(rate: number): string {
  if (!Number.isFinite(rate)) return "?";
  return rate >= 100 ? rate.toFixed(0) : rate >= 10 ? rate.toFixed(1) : rate.toFixed(2);
}

const formatValue = (v: string | number): string => (typeof v === "string" || Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(4))));

export class Progress {
  private readonly total: number;
  private readonly unit: string;
  private readonly label: string;
  private readonly initial: number;
  private readonly stream: ProgressStream;
  private readonly tty: boolean;
  private readonly now: () => number;
  private readonly intervalMs: number;
  private readonly barWidth: number;
  private readonly start: number;
  private lastWrite: number;
  private lastText = "";
  private done: number;
  private fields: ProgressFields = {};
  private finished = false;

  constructor(options: ProgressOptions) {
    const { total } = options;
    if (!Number.isFinite(total) || total < 0) throw new RangeError(`Progress: total must be a finite number >= 0, got ${describeValue(total)}`);
    this.total = total;
    this.unit = options.unit ?? "it";
    this.label = options.label ?? "";
    this.initial = options.initial ?? 0;
    this.done = this.initial;
    this.stream = options.stream ?? process.stderr;
    this.tty = options.tty ?? this.stream.isTTY === true;
    this.now = options.now ?? (() => performance.now());
    this.intervalMs = 1000 * (this.tty ? (options.ttyIntervalSeconds ?? 0.1) : (options.intervalSeconds ?? 10));
    this.barWidth = options.barWidth ?? 20;
    this.start = this.now();
    this.lastWrite = this.start;
  }

  /** Sets the units done (absolute) and, when given, the caller fields; prints if it is time. */
  update(done: number, fields?: ProgressFields): void {
    if (this.finished) return;
    this.done = done;
    if (fields !== undefined) this.fields = fields;
    const t = this.now();
    if (t - this.lastWrite >= this.intervalMs) this.print(t);
  }

  /** Adds `n` units done. */
  tick(n = 1, fields?: ProgressFields): void {
    this.update(this.done + n, fields);
  }

  /** Prints the final line (ending with a newline); later calls do nothing. */
  finish(fields?: ProgressFields): void {
    if (this.finished) return;
    if (fields !== undefined) this.fields = fields;
    this.print(this.now(), true);
    if (this.tty) this.stream.write("\n");
    this.finished = true;
  }

  /** The status line at time `t` (ms), without "\r" or newline. */
  line(t: number = this.now()): string {
    const { done, total } = this;
    const fraction = total > 0 ? Math.min(Math.max(done / total, 0), 1) : 1;
    const filled = Math.round(fraction * this.barWidth);
    const seconds = (t - this.start) / 1000;
    const rate = seconds > 0 ? (done - this.initial) / seconds : NaN;
    const eta = rate > 0 ? Math.max(total - done, 0) / rate : NaN;
    const parts = [`[${"#".repeat(filled)}${"-".repeat(this.barWidth - filled)}] ${done}/${total}`, `${(100 * fraction).toFixed(1)}%`, `${formatRate(rate)} ${this.unit}/s`, `ETA ${done >= total ? "0s" : formatDuration(eta)}`, ...Object.entries(this.fields).map(([k, v]) => `${k} ${formatValue(v)}`)];
    return (this.label ? `${this.label} ` : "") + parts.join("  ");
  }

  private print(t: number, final = false): void {
    const text = this.line(t);
    if (this.tty) {
      // Pad over the previous line's leftovers instead of using terminal escapes.
      this.stream.write(`\r${text.padEnd(this.lastText.length)}`);
    } else if (!(final && text === this.lastText)) {
      this.stream.write(`${text}\n`);
    }
    this.lastText = text;
    this.lastWrite = t;
  }
}
