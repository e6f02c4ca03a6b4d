/**
 * A small, strict parser for `--flag value` command lines. Unknown flags,
 * missing values and malformed numbers are UsageErrors, which the CLI turns
 * into a usage message and exit code 2.
 */
import { editDistance } from "../util/options.js";

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

export type FlagKind = "string" | "number" | "int" | "bool";

/** How a flag's value is read (a FlagSpec without its help text: what parseFlags needs). */
export interface FlagRule {
  kind: FlagKind;
  /** The flag's line in the usage text (required in a FlagSpec). */
  help?: string;
  /** Shown in the usage text and used when the flag is absent. */
  default?: string | number | boolean;
  /** Value name for the usage text, e.g. FILE. */
  value?: string;
  required?: boolean;
  /** For string flags: the allowed values (a function: read when parsing, e.g. the registered backends). */
  choices?: readonly string[] | (() => readonly string[]);
  /** For number and int flags: the least and greatest allowed values. */
  min?: number;
  max?: number;
  /** For number flags: a bound the value must exceed (e.g. 0 for "> 0"). */
  above?: number;
  /** For int flags: at least 1 ("must be a positive integer"; with max, the range reads "in [1, max]"). */
  positive?: boolean;
  /**
   * The flag may be given more than once, the last value counting. Without
   * it (every flag today: list-like flags take one comma-separated value), a
   * flag given twice is a UsageError, so `--seed 5 --seed 6` or
   * `--json --json=false` does not silently take the last one.
   */
  repeatable?: boolean;
}

/** A command's flag: how its value is read, and its line in the usage text. */
export interface FlagSpec extends FlagRule {
  help: string;
}

export type FlagSpecs = Record<string, FlagSpec>;
/** Flags without help texts (bench scripts declare theirs this way; their header comments document them). */
export type FlagRules = Record<string, FlagRule>;

/** A command's flag specs, checked, with their literal types kept (choices become the value's type). */
export function defineFlags<const T extends FlagSpecs>(specs: T): T {
  return specs;
}

/** A flag's value: boolean, number, or a string (one of its choices where it lists them). */
type Value<S extends FlagRule> = S["kind"] extends "bool" ? boolean : S["kind"] extends "string" ? (S extends { choices: readonly (infer C extends string)[] } ? C : string) : number;
/** Whether a flag always has a value after parsing: required, defaulted, or a bool (false when absent). */
type Always<S extends FlagRule> = S extends { required: true } ? true : S extends { default: string | number | boolean } ? true : S["kind"] extends "bool" ? true : false;
/** Parsed flags: required, defaulted and bool flags are never undefined; the rest are undefined when absent. */
export type Parsed<T extends FlagRules> = { [K in keyof T]: Always<T[K]> extends true ? Value<T[K]> : Value<T[K]> | undefined };

export function parseFlags<T extends FlagRules>(argv: readonly string[], specs: T): Parsed<T> {
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(specs)) {
    if (spec.default !== undefined) out[name] = spec.default;
    else if (spec.kind === "bool") out[name] = false;
  }
  /** What each flag given so far was given as (its raw value; a bare bool flag: "true"), for "given twice". */
  const seen = new Map<string, string>();
  for (const { arg, name, spec, raw } of flagsGiven(argv, specs)) {
    if (name === undefined) throw new UsageError(`unexpected argument ${JSON.stringify(arg)} (flags start with --)`);
    if (spec === undefined) {
      const guess = closest(name, Object.keys(specs));
      throw new UsageError(`unknown flag --${name}${guess ? ` (did you mean --${guess}?)` : ""}`);
    }
    if (spec.kind === "bool") {
      if (raw !== undefined && raw !== "true" && raw !== "false") throw new UsageError(`--${name} takes no value (or =true/=false), got ${JSON.stringify(raw)}`);
    } else if (raw === undefined) throw new UsageError(`--${name} needs a value (${spec.value ?? spec.kind}; one that starts with -- goes as --${name}=VALUE)`);
    const value = raw ?? "true";
    const before = seen.get(name);
    if (before !== undefined && !spec.repeatable) throw new UsageError(`--${name} given twice (${shown(before)} and ${shown(value)}); give it once`);
    seen.set(name, value);
    out[name] = spec.kind === "bool" ? value !== "false" : convertValue(name, spec, value);
  }
  for (const [name, spec] of Object.entries(specs)) {
    if (spec.required && out[name] === undefined) throw new UsageError(`--${name} is required`);
  }
  return out as Parsed<T>;
}

/** A flag's raw value in a message: as given where it is one plain word, else quoted (an empty, spaced or odd value); a long one cut to 40 characters. */
function shown(raw: string): string {
  const cut = raw.length > 40 ? `${raw.slice(0, 37)}...` : raw;
  return /^[\w.,:/+-]+$/.test(cut) ? cut : JSON.stringify(cut);
}

/** A decimal number as people write one: sign, digits, optional fraction and exponent. */
export const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** Value names of flags that take a file or folder path: an empty one names no file (it would be read as ""). */
const PATH_VALUES = new Set(["FILE", "PATH", "DIR"]);

/**
 * One value of non-bool flag `name` read by `spec`'s rules (number syntax,
 * integer, range, choices), else a UsageError naming the flag: what
 * parseFlags does to each value, exported for values it does not see itself
 * (the items of a comma-separated list).
 */
export function convertValue(name: string, spec: FlagRule, raw: string): string | number {
  if (spec.kind === "string") {
    if (raw === "" && PATH_VALUES.has(spec.value ?? "")) throw new UsageError(`--${name} must not be empty`);
    const choices = typeof spec.choices === "function" ? spec.choices() : spec.choices;
    if (choices && !choices.includes(raw)) throw new UsageError(`--${name} must be one of ${choices.join(", ")}; got ${JSON.stringify(raw)}`);
    return raw;
  }
  // Decimal only: no hex, octal or binary literals, no padding (Number() would take "0x10" and " 5 ").
  const v = DECIMAL.test(raw) ? Number(raw) : NaN;
  if (!Number.isFinite(v)) throw new UsageError(`--${name} must be a number, got ${JSON.stringify(raw)}`);
  if (spec.kind === "int" && !Number.isInteger(v)) throw new UsageError(`--${name} must be an integer, got ${JSON.stringify(raw)}`);
  if (spec.positive && v < 1) throw new UsageError(`--${name} must be a positive integer${spec.max !== undefined ? ` (at most ${spec.max})` : ""}, got ${raw}`);
  if (spec.above !== undefined && !(v > spec.above)) throw new UsageError(`--${name} must be > ${spec.above}, got ${raw}`);
  const min = spec.positive ? 1 : spec.min;
  if ((min !== undefined && v < min) || (spec.max !== undefined && v > spec.max)) {
    const range = spec.max === undefined ? `>= ${min}` : min === undefined ? `<= ${spec.max}` : `in [${min}, ${spec.max}]`;
    throw new UsageError(`--${name} must be ${range}, got ${raw}`);
  }
  return v;
}

/**
 * The arguments of `argv` as flags, in order: each one's name (undefined for
 * an argument that is not a flag), its spec (undefined for an unknown flag)
 * and raw value (the `=value` part, else the next argument for a known
 * non-bool flag; undefined when there is none).
 */
function* flagsGiven(argv: readonly string[], specs: FlagRules): Generator<{ arg: string; name?: string; spec?: FlagRule; raw?: string }> {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith("--")) {
      yield { arg };
      continue;
    }
    const eq = arg.indexOf("=");
    const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
    // Own keys only: `--constructor` or `--toString` names no flag (not an Object.prototype member).
    const spec = Object.hasOwn(specs, name) ? specs[name] : undefined;
    // A value flag takes the next argument, unless that is another flag: `--prompt --json` is a
    // missing value, not the prompt "--json" (which goes as --prompt=--json).
    const takesNext = eq < 0 && spec !== undefined && spec.kind !== "bool" && i + 1 < argv.length && !argv[i + 1].startsWith("--");
    const raw = eq >= 0 ? arg.slice(eq + 1) : takesNext ? argv[++i] : undefined;
    yield { arg, name, spec, raw };
  }
}

/**
 * Splits argv into positional arguments (files) and the flags with their
 * values, by position: a flag's value stays a value, even when it reads
 * like a file (for commands that take files beside their flags).
 */
export function splitPositionals(argv: readonly string[], specs: FlagRules): { files: string[]; flags: string[] } {
  const files: string[] = [],
    flags: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("--")) {
      files.push(a);
      continue;
    }
    flags.push(a);
    const name = a.slice(2);
    const spec = Object.hasOwn(specs, name) ? specs[name] : undefined;
    if (spec !== undefined && spec.kind !== "bool" && i + 1 < argv.length && !argv[i + 1].startsWith("--")) flags.push(argv[++i]);
  }
  return { files, flags };
}

/**
 * The names of the flags `argv` gives explicitly (as parseFlags reads it),
 * for "does not apply" checks that a default value cannot tell apart from
 * an absent flag.
 */
export function givenFlags(argv: readonly string[], specs: FlagRules): Set<string> {
  const given = new Set<string>();
  for (const { name } of flagsGiven(argv, specs)) if (name !== undefined) given.add(name);
  return given;
}

/** Where a flag's help text starts: its column in the usage text. */
const HELP_COLUMN = 27;

/**
 * The flags part of a usage message: the required flags first (in their
 * declared order), then the rest; each flag's help at HELP_COLUMN, or, when
 * its name and value leave less than two spaces before that column, on the
 * next line, indented to it (never run into the name).
 */
export function describeFlags(specs: FlagSpecs): string {
  const entries = Object.entries(specs);
  const ordered = [...entries.filter(([, s]) => s.required), ...entries.filter(([, s]) => !s.required)];
  const rows = ordered.map(([name, s]) => {
    const left = `  --${name}${s.kind === "bool" ? "" : " " + (s.value ?? s.kind.toUpperCase())}`;
    const extra = s.required ? " (required)" : s.default !== undefined && s.kind !== "bool" ? ` (default ${JSON.stringify(s.default)})` : "";
    const help = `${s.help}${extra}`;
    return left.length + 2 <= HELP_COLUMN ? `${left.padEnd(HELP_COLUMN)}${help}` : `${left}\n${" ".repeat(HELP_COLUMN)}${help}`;
  });
  return rows.join("\n");
}

/** The candidate closest to a misspelt name (at most 2 edits, or a third of its length), if any: for "did you mean". */
export function closest(name: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(name, c);
    if (d < bestDistance) (best = c), (bestDistance = d);
  }
  return bestDistance <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined;
}
