/** What the bench scripts share: reading `--name value` flags, taking medians, loading a PTP proposer. */
import { readFileSync } from "node:fs";
import type { Checkpoint } from "../src/model/weights.js";
import { checkStudentMatchesTeacher, readStudent } from "../src/ptp/files/adapter-file.js";
import { checkDraftMatchesTeacher, readDraft } from "../src/ptp/files/draft-file.js";
import { teacherChecksum } from "../src/ptp/files/teacher-checksum.js";
import type { Proposer } from "../src/ptp/proposer.js";

const argv = process.argv.slice(2);

/** The value after `name` (e.g. "--steps") on the command line, else `fallback`; a flag without a value is an error. */
export function option(name: string, fallback: string): string;
export function option(name: string, fallback?: string): string | undefined;
export function option(name: string, fallback?: string): string | undefined {
  const i = argv.indexOf(name);
  if (i < 0) return fallback;
  const v = argv[i + 1];
  if (v === undefined || v.startsWith("--")) throw new Error(`${name} needs a value`);
  return v;
}

/** The positive integer given as `name`, or undefined when the flag is absent (anything else is an error naming the flag). */
export function positiveIntOption(name: string): number | undefined {
  const raw = option(name);
  if (raw === undefined) return undefined;
  const v = Number(raw);
  if (!(Number.isInteger(v) && v >= 1)) throw new Error(`${name} must be a positive integer, got ${raw}`);
  return v;
}

/** An on|off flag that may also be a count: true, false, a whole number, or undefined when absent; anything else is an error naming the flag. */
export function onOffCountOption(name: string): boolean | number | undefined {
  const v = option(name);
  if (v === undefined) return undefined;
  if (/^[0-9]+$/.test(v)) return Number(v);
  if (v !== "on" && v !== "off") throw new Error(`${name} must be on, off or a whole number, got ${v}`);
  return v === "on";
}

/** Whether the bare flag `name` is on the command line. */
export function has(name: string): boolean {
  return argv.includes(name);
}

/** The median (the mean of the middle two for an even count). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b),
    m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * A Markdown table: "right" pads cells to the column width and right-aligns
 * the columns, "left" pads them left-aligned, "none" leaves them unpadded.
 */
export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[], align: "left" | "right" | "none" = "none"): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const cell = (c: string, i: number) => (align === "right" ? c.padStart(widths[i]) : align === "left" ? c.padEnd(widths[i]) : c);
  const line = (r: readonly string[]) => `| ${r.map(cell).join(" | ")} |`;
  const rule = align === "right" ? `|${widths.map((w) => `${"-".repeat(w + 1)}:`).join("|")}|` : align === "left" ? `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|` : line(header.map(() => "---"));
  return [line(header), rule, ...rows.map(line)].join("\n");
}

/** The student adapter (or, with `draft`, the standalone draft model) at `path`, checked against `teacher`. */
export function readProposer(path: string, teacher: Checkpoint, draft: boolean): Proposer {
  const checksum = teacherChecksum(teacher);
  if (draft) {
    const d = readDraft(path);
    checkDraftMatchesTeacher(d, teacher, checksum, path);
    return { kind: "draft", draft: d };
  }
  const student = readStudent(path);
  checkStudentMatchesTeacher(student, teacher, checksum, path);
  return { kind: "student", student };
}

/** A build of the WASM kernels (a .wasm file) instantiated on its own shared memory, for A/B scripts that call its exports directly. */
export function instantiateBuild<E>(path: string): { ex: E; memory: { buffer: ArrayBuffer; grow(pages: number): number } } {
  // biome-ignore lint/suspicious/noExplicitAny: the WebAssembly namespace is untyped under lib ES2022
  const WA = (globalThis as unknown as { WebAssembly: any }).WebAssembly;
  const memory = new WA.Memory({ initial: 16, maximum: 65536, shared: true });
  const abort = () => {
    throw new Error(`${path}: wasm kernel abort`);
  };
  const ex = new WA.Instance(new WA.Module(readFileSync(path)), { env: { memory, exp: Math.exp, abort } }).exports as E;
  return { ex, memory };
}
