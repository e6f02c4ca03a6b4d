/**
 * Checks of the public API's options objects and their plain-typed fields,
 * shared so every function words them alike: an options object that is not
 * an object, a key the function does not read (a typo such as `stopAtBOS`
 * or `widnow`, which would otherwise be ignored silently, named with the
 * key meant), a flag that is not a boolean, a callback that is not a
 * function. Each error starts with the function's name.
 */
import { describeValue } from "./checks.js";

/** Whether `v` is a non-null object that is not an array (a JSON object, an options bag): what every check of an object argument or parsed JSON object tests. */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Levenshtein distance between two strings. */
export function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length];
}

/**
 * The candidate nearest a misspelt name, for "did you mean": one spelled the
 * same but for case, else the closest within 2 edits (or a third of the
 * name's length), else one the name begins with or that begins with it
 * (batchSize: batch; base: baseModel; 3 letters at least); undefined when
 * none is that close.
 */
export function nearestName(name: string, candidates: readonly string[]): string | undefined {
  const lower = name.toLowerCase();
  const sameButCase = candidates.find((c) => c.toLowerCase() === lower);
  if (sameButCase !== undefined) return sameButCase;
  const prefix = (a: string, b: string) => a.length >= 3 && b.startsWith(a);
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(lower, c.toLowerCase());
    if (d < bestDistance) (best = c), (bestDistance = d);
  }
  if (bestDistance <= Math.max(2, Math.floor(name.length / 3))) return best;
  return candidates.find((c) => prefix(c.toLowerCase(), lower) || prefix(lower, c.toLowerCase()));
}

/**
 * `options` as an object whose every own key is one of `known`: a
 * TypeError "`where`: options must be an object ({ a, b }), got ..." for a
 * non-object (null, an array, a number), a RangeError "`where`: unknown
 * option "widnow"; did you mean window? (the options are ...)" for a key
 * the function does not read. `name` says which argument it is (default
 * "options"). Costs one pass over the object's keys: call it once per call,
 * never per token.
 */
export function checkOptionKeys(options: unknown, where: string, known: readonly string[], name = "options"): Record<string, unknown> {
  if (!isPlainObject(options)) {
    throw new TypeError(`${where}: ${name} must be an object ({ ${known.join(", ")} }), got ${describeValue(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue;
    const meant = nearestName(key, known);
    throw new RangeError(`${where}: unknown option ${JSON.stringify(key)}${name === "options" ? "" : ` in ${name}`}${meant !== undefined ? `; did you mean ${meant}?` : ""} (the options are ${known.join(", ")})`);
  }
  return options;
}

/** An optional flag: undefined, or a boolean (a string such as "no" would read as true); else a TypeError naming it. */
export function checkOptionalBoolean(value: unknown, where: string, name: string): boolean | undefined {
  if (value !== undefined && typeof value !== "boolean") throw new TypeError(`${where}: ${name} must be a boolean (true or false), got ${describeValue(value)}`);
  return value;
}

/** An optional callback: undefined, or a function; else a TypeError naming it (instead of "x is not a function" when it is first called). */
export function checkOptionalFunction(value: unknown, where: string, name: string): void {
  if (value !== undefined && typeof value !== "function") throw new TypeError(`${where}: ${name} must be a function, got ${describeValue(value)}`);
}

/** A required object argument (a checkpoint, a student, a settings object): a TypeError "`where`: `name` must be `what`, got ..." otherwise. */
export function checkObject(value: unknown, where: string, name: string, what: string): Record<string, unknown> {
  if (!isPlainObject(value)) throw new TypeError(`${where}: ${name} must be ${what}, got ${describeValue(value)}`);
  return value;
}
