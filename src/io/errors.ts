import { nodeBuiltin } from "../host/node-builtin.js";

/** node:fs, fetched at call time (a static import would keep this module out of browsers). */
const nodeFs = (path: string) => nodeBuiltin<typeof import("node:fs")>("node:fs", `reading ${path}`, "pass the file's bytes to the parse function instead");

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

/** The largest file the loaders read whole (Node reads at most 2 GiB - 1 at once). */
export const MAX_FILE_BYTES = 2 ** 31 - 1;

function openFailure(path: string, what: string, err: unknown): FileFormatError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return new FileFormatError(path, `file does not exist (expected ${what})`);
  if (code === "EISDIR") return new FileFormatError(path, `is a directory, expected ${what}`);
  const message = err instanceof Error ? err.message : String(err);
  return new FileFormatError(path, `cannot read file (expected ${what}): ${message}`);
}

/**
 * Opens a file for reading and returns its descriptor and size; only
 * regular files are accepted (a device such as /dev/zero, a FIFO or a
 * directory is refused before anything is read).
 */
function openRegular(path: string, what: string): { fd: number; size: number } {
  let fd: number;
  let fs: typeof import("node:fs");
  try {
    fs = nodeFs(path);
    fd = fs.openSync(path, "r");
  } catch (err) {
    throw openFailure(path, what, err);
  }
  try {
    const st = fs.fstatSync(fd);
    if (st.isDirectory()) throw new FileFormatError(path, `is a directory, expected ${what}`);
    if (!st.isFile()) throw new FileFormatError(path, `is not a regular file (a device, pipe or socket), expected ${what}`);
    return { fd, size: st.size };
  } catch (err) {
    fs.closeSync(fd);
    throw err instanceof FileFormatError ? err : openFailure(path, what, err);
  }
}

function readAt(fs: typeof import("node:fs"), fd: number, length: number, position: number): Uint8Array {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, out, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done === length ? out : out.subarray(0, done);
}

/**
 * Reads a whole regular file synchronously, turning the usual failures
 * (missing file, directory, device, unreadable, too large) into
 * FileFormatErrors naming the path. `what` describes the expected
 * content, e.g. "a llama2.c checkpoint".
 */
export function readFileBytes(path: string, what: string): Uint8Array {
  const { fd, size } = openRegular(path, what);
  const fs = nodeFs(path);
  try {
    if (size > MAX_FILE_BYTES) throw new FileFormatError(path, `file is ${size} bytes; files of 2 GiB or more are not supported (expected ${what})`);
    return readAt(fs, fd, size, 0);
  } catch (err) {
    throw err instanceof FileFormatError ? err : openFailure(path, what, err);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The first `length` bytes of a regular file (fewer if it is shorter) and
 * its size, so a loader can check a header against the size before it
 * reads the rest.
 */
export function readFilePrefix(path: string, what: string, length: number): { bytes: Uint8Array; size: number } {
  const { fd, size } = openRegular(path, what);
  const fs = nodeFs(path);
  try {
    return { bytes: readAt(fs, fd, Math.min(length, size), 0), size };
  } catch (err) {
    throw err instanceof FileFormatError ? err : openFailure(path, what, err);
  } finally {
    fs.closeSync(fd);
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
