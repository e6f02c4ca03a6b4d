/**
 * What the bench scripts share: their flags (declared once per script, read
 * strictly), taking medians, Markdown tables, loading a PTP proposer.
 */
import { readFileSync } from "node:fs";
import { basename, isAbsolute, relative, resolve, sep } from "node:path";
import type { Checkpoint } from "../src/model/weights.js";
import { checkStudentMatchesTeacher, readStudent } from "../src/ptp/files/adapter-file.js";
import { checkDraftMatchesTeacher, readDraft } from "../src/ptp/files/draft-file.js";
import { teacherChecksum } from "../src/ptp/files/teacher-checksum.js";
import type { Proposer } from "../src/ptp/proposer.js";
import { convertValue, parseFlags, UsageError, type FlagRule, type FlagRules, type Parsed } from "../src/cli/args.js";
import { MAX_THREADS } from "../src/backends/wasm/index.js";
import { WEIGHT_TYPES } from "../src/backends/backend.js";
import { SHAPES } from "../src/model/config.js";

/** The running script's name for its messages, from the repository's root: bench/ptp-eval.ts, packages/backend-cuda/bench.ts. */
const SCRIPT = (() => {
  const path = relative(resolve(import.meta.dirname, ".."), resolve(process.argv[1] ?? "bench"));
  return path.startsWith("..") || isAbsolute(path) ? basename(path) : path.split(sep).join("/");
})();

/** Ends the script on a usage error: one line naming the script, exit 2 (as the CLI's usage errors). */
export function usageError(message: string): never {
  process.stderr.write(`${SCRIPT}: ${message}\n`);
  process.exit(2);
}

/**
 * A bench script's flags, declared once (kind, default, bounds, choices; the
 * header comment documents them) and read from the command line by the
 * CLI's parser (src/cli/args.ts): an unknown flag (`--thread 2`), a
 * malformed number (`--steps abc`), a value out of its bounds, a missing
 * value or a flag given twice is a one-line usage error, exit 2, before the
 * script does any work. `--help` lists the flags and exits 0. List flags
 * (comma-separated) are strings here, read by listFlag.
 */
export function benchFlags<const T extends FlagRules>(specs: T, argv: readonly string[] = process.argv.slice(2)): Parsed<T> {
  if (argv.includes("--help") || argv.includes("-h")) {
    const rows = Object.entries(specs).map(([name, s]) => `  --${name}${s.kind === "bool" ? "" : ` ${s.value ?? s.kind.toUpperCase()}`}${s.required ? " (required)" : s.default !== undefined && s.kind !== "bool" ? ` (default ${s.default})` : ""}`);
    process.stdout.write(`${SCRIPT} flags (see its header comment):\n${rows.join("\n")}\n`);
    process.exit(0);
  }
  try {
    return parseFlags(argv, specs);
  } catch (e) {
    if (e instanceof UsageError) usageError(e.message);
    throw e;
  }
}

/** Ends the script when its inputs give it nothing to measure (an empty prompts file, no drafts to count): one line naming the script, exit 1. */
export function inputError(message: string): never {
  process.stderr.write(`${SCRIPT}: ${message}\n`);
  process.exit(1);
}

/** Rules the scripts' flags share (spread with a default: `steps: { ...COUNT, default: 128 }`). */
export const COUNT = { kind: "int", value: "N", positive: true } as const;
/** A wasm thread count, 1 .. MAX_THREADS (a list's items: listFlag(name, raw, THREADS)). */
export const THREADS = { kind: "int", value: "T", positive: true, max: MAX_THREADS } as const;
/** A sampling temperature (0 = greedy). */
export const TEMPERATURE = { kind: "number", value: "T", min: 0 } as const;
/** The TinyStories shapes' names (15M, ...), for list flags of shapes: listFlag(name, raw, { kind: "string", choices: SHAPE_NAMES }). */
export const SHAPE_NAMES = Object.keys(SHAPES) as (keyof typeof SHAPES)[];
/** A wasm backend's weight type. */
export const WEIGHTS = { kind: "string", value: "f32|bf16|int8", choices: WEIGHT_TYPES } as const;

/**
 * The items of list flag `name`'s comma-separated value, each read by
 * `item`'s rules (number syntax, integer, bounds, choices) as a flag's value
 * is; an empty item or a bad one ends the script as a usage error naming the
 * flag.
 */
export function listFlag(name: string, raw: string, item: FlagRule & { kind: "int" | "number" }): number[];
export function listFlag<const C extends string>(name: string, raw: string, item: { kind: "string"; choices?: readonly C[] }): C[];
export function listFlag(name: string, raw: string, item: FlagRule): (string | number)[] {
  return raw.split(",").map((v) => {
    if (v === "") usageError(`--${name} must be a comma-separated list without empty items, got ${JSON.stringify(raw)}`);
    try {
      return convertValue(name, item, v);
    } catch (e) {
      if (e instanceof UsageError) usageError(`${e.message} (in ${JSON.stringify(raw)})`);
      throw e;
    }
  });
}

/** Shapes K x N of list flag `name` (e.g. "288x288,768x32000"): positive integers, else a usage error naming the flag. */
export function shapesFlag(name: string, raw: string): [number, number][] {
  return raw.split(",").map((s) => {
    const m = /^([1-9][0-9]*)x([1-9][0-9]*)$/.exec(s);
    if (!m) usageError(`--${name}: each shape is K x N with positive integers (e.g. 288x768), got ${JSON.stringify(s)}`);
    return [Number(m[1]), Number(m[2])];
  });
}

/** An on|off flag that may also be a count (`--runner-ups on|off|N`): true, false, a whole number, or undefined when absent; anything else is a usage error naming the flag. */
export function onOffCountFlag(name: string, raw: string | undefined): boolean | number | undefined {
  if (raw === undefined) return undefined;
  if (/^[0-9]+$/.test(raw)) return Number(raw);
  if (raw !== "on" && raw !== "off") usageError(`--${name} must be on, off or a whole number, got ${JSON.stringify(raw)}`);
  return raw === "on";
}

/** The median (the mean of the middle two for an even count). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b),
    m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Paired measurement over alternating rounds: each round draws `inputs()`
 * once and runs every variant's `step` over all of them, the variants'
 * order reversed every other round (so a change in the machine's load
 * falls on all of them alike). Returns, per variant, the median over
 * rounds of its median step time in ms.
 */
export async function alternatingRounds<V, I>(variants: readonly V[], rounds: number, inputs: () => I[], step: (v: V, input: I) => Promise<unknown>): Promise<number[]> {
  const times = variants.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++) {
    const batch = inputs();
    const order = variants.map((_, i) => i);
    if (r % 2 === 1) order.reverse();
    for (const i of order) {
      const ms: number[] = [];
      for (const input of batch) {
        const t0 = performance.now();
        await step(variants[i], input);
        ms.push(performance.now() - t0);
      }
      times[i].push(median(ms));
    }
  }
  return times.map(median);
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
