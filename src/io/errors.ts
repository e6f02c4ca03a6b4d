import { readFileSync } from "node:fs";

/**
 * A file that cannot be read as the format it should be in. The message
 * always starts with the file path (or the name the bytes were given), then
 * says what was expected and what was found, e.g.
 * `stories.bin: file is 1000 bytes but the header (dim 64, ...) requires 1056540 bytes`.
 */
/** The longest problem text a FileFormatError carries. */
const MAX_PROBLEM = 500;

export class FileFormatError extends Error {
  /** The path or name of the offending file. */
  readonly path: string;
  /** The problem, without the path prefix. */
  readonly problem: string;

  constructor(path: string, problem: string) {
    // One line, of bounded length, whatever the file held (a parser's message may quote it).
    problem = problem.replace(/\s*[\r\n]+\s*/g, " ");
    if (problem.length > MAX_PROBLEM) problem = `${problem.slice(0, MAX_PROBLEM - 3)}...`;
    super(`${path}: ${problem}`);
    this.name = "FileFormatError";
    this.path = path;
    this.problem = problem;
  }
}

/**
 * Reads a whole file synchronously, turning the usual failures (missing
 * file, directory, unreadable) into FileFormatErrors naming the path.
 * `what` describes the expected content, e.g. "a llama2.c checkpoint".
 */
export function readFileBytes(path: string, what: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new FileFormatError(path, `file does not exist (expected ${what})`);
    if (code === "EISDIR") throw new FileFormatError(path, `is a directory, expected ${what}`);
    const message = err instanceof Error ? err.message : String(err);
    throw new FileFormatError(path, `cannot read file (expected ${what}): ${message}`);
  }
}

/**
 * A value from a file, shown in an error message: JSON, cut to `max`
 * characters (a 4 MB header value is not echoed whole), and safe for
 * values too deeply nested to stringify.
 */
export function quote(value: unknown, max = 80): string {
  let s: string;
  try {
    s = JSON.stringify(value) ?? String(value);
  } catch {
    return "(a value too deeply nested to show)";
  }
  return s.length > max ? `${s.slice(0, max - 3)}... (${s.length} characters)` : s;
}
