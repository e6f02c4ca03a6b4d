import { nodeBuiltin } from "../host/node-builtin.js";
import { describeValue } from "../util/checks.js";

/** node:fs, fetched at call time (a static import would keep this module out of browsers). */
const nodeFs = (path: string) => nodeBuiltin<typeof import("node:fs")>("node:fs", `reading ${path}`, "pass the file's bytes to the parse function instead");

/**
 * A path as an error message names it: as it is, or JSON-quoted (escaped)
 * when it holds a control character (a newline, a tab, an escape) or a line
 * separator, so the message stays one line and the name is unambiguous.
 */
export function quotePath(path: string): string {
  return /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(path) ? JSON.stringify(path).replace(/[\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`) : path;
}

/** The longest problem text a FileFormatError carries. */
const MAX_PROBLEM = 500;

/**
 * A file that cannot be read as the format it should be in. The message
 * always starts with the file path (or the name the bytes were given; quoted
 * by quotePath when it holds a control character), then
 * says what was expected and what was found, e.g.
 * `stories.bin: file is 1000 bytes but the header (dim 64, ...) requires 1056540 bytes`.
 */
export class FileFormatError extends Error {
  /** The path or name of the offending file. */
  readonly path: string;
  /** The problem, without the path prefix. */
  readonly problem: string;

  constructor(path: string, problem: string) {
    // Strings only: a missing problem gave "Cannot read properties of undefined (reading 'replace')".
    if (typeof path !== "string" || typeof problem !== "string") {
      throw new TypeError(`FileFormatError: needs the file's path and the problem as strings, got ${describeValue(path)} and ${describeValue(problem)}`);
    }
    // One line, of bounded length, whatever the file held (a parser's message may quote it).
    problem = problem.replace(/\s*[\r\n]+\s*/g, " ");
    if (problem.length > MAX_PROBLEM) problem = `${problem.slice(0, MAX_PROBLEM - 3)}...`;
    super(`${quotePath(path)}: ${problem}`);
    this.name = "FileFormatError";
    this.path = path;
    this.problem = problem;
  }
}

/** The largest file the loaders read whole (Node reads at most 2 GiB - 1 at once). */
export const MAX_FILE_BYTES = 2 ** 31 - 1;

/**
 * Throws a TypeError naming `where` unless `path` is a non-empty string (a
 * path of undefined, a number or "" is a caller's mistake, not a file's).
 */
export function checkPath(path: unknown, where: string, name = "path"): asserts path is string {
  if (typeof path !== "string" || path === "") {
    throw new TypeError(`${where}: ${name} must be a file path (a non-empty string), got ${path === "" ? "an empty string" : describeValue(path)}`);
  }
}

/**
 * Throws a TypeError naming `where` unless `bytes` is a Uint8Array (a
 * Buffer is one) and `name`, which starts every message about the bytes, a
 * string: for the parse functions that take a file's bytes.
 */
export function checkBytesArgument(bytes: unknown, name: unknown, where: string, what = "the file's bytes"): asserts bytes is Uint8Array {
  if (!(bytes instanceof Uint8Array)) throw new TypeError(`${where}: needs ${what} as a Uint8Array (a Buffer works), got ${describeValue(bytes)}`);
  if (typeof name !== "string") throw new TypeError(`${where}: name (the path or name that starts its error messages) must be a string, got ${describeValue(name)}`);
}

function openFailure(path: string, what: string, err: unknown): FileFormatError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return new FileFormatError(path, `${isSymlink(path) ? "is a broken symbolic link: its target does not exist" : "file does not exist"} (expected ${what})`);
  if (code === "EISDIR") return new FileFormatError(path, `is a directory, expected ${what}`);
  // The usual causes in words (as writeFailure says them for writes); anything else with the system's message.
  const why = code === "ELOOP" ? "it is a loop of symbolic links" : code === "ENOTDIR" ? "a part of the path is a file, not a folder" : code === "EACCES" || code === "EPERM" ? "permission denied" : code === "ENAMETOOLONG" ? "a name in the path is too long" : err instanceof Error ? err.message : String(err);
  return new FileFormatError(path, `cannot read file (expected ${what}): ${why}`);
}

/**
 * Whether anything is at `path`: a file, a folder, or a symbolic link even
 * where its target is missing or it loops (existsSync says false for those,
 * and an optional file would be passed over in silence; opening it then
 * says what is wrong).
 */
export function entryExists(path: string): boolean {
  try {
    return nodeFs(path).lstatSync(path, { throwIfNoEntry: false }) !== undefined;
  } catch {
    return false;
  }
}

/** Whether `path` itself is a symbolic link (whatever it points to). */
function isSymlink(path: string): boolean {
  try {
    return nodeFs(path).lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

/**
 * Opens a regular file for reading and returns its descriptor (openRegular
 * below: a missing file, a directory, a FIFO or a device is a
 * FileFormatError naming it, and a FIFO never blocks the open).
 */
export function openForReading(path: string, what: string): number {
  return openRegular(path, what).fd;
}

/**
 * Opens a file for reading and returns its descriptor and size; only
 * regular files are accepted (a device such as /dev/zero, a FIFO or a
 * directory is refused before anything is read).
 */
function openRegular(path: string, what: string): { fd: number; size: number } {
  checkPath(path, `reading ${what}`);
  let fd: number;
  let fs: typeof import("node:fs");
  try {
    fs = nodeFs(path);
    // Non-blocking, so that a FIFO without a writer is refused below instead of hanging the open.
    fd = fs.openSync(path, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
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
 * Reads a regular file piece by piece into memory the caller provides:
 * `fill(read, size)` gets the file's size and `read(dst, position)`, which
 * fills `dst` with the file's bytes from `position` (a FileFormatError naming
 * the path if the file ends first); the file is closed however `fill` ends.
 * The usual failures (missing, a directory or device, unreadable, 2 GiB or
 * more) are FileFormatErrors naming the path, as readFileBytes'.
 */
export function readFileInto<T>(path: string, what: string, fill: (read: (dst: Uint8Array, position: number) => void, size: number) => T): T {
  const { fd, size } = openRegular(path, what);
  const fs = nodeFs(path);
  const read = (dst: Uint8Array, position: number): void => {
    let done = 0;
    while (done < dst.length) {
      let n: number;
      try {
        n = fs.readSync(fd, dst, done, dst.length - done, position + done);
      } catch (err) {
        throw openFailure(path, what, err);
      }
      if (n === 0) throw new FileFormatError(path, `file ended at byte ${position + done}, expected ${dst.length - done} more bytes (${what})`);
      done += n;
    }
  };
  try {
    checkSize(path, what, size, MAX_FILE_BYTES);
    return fill(read, size);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Reads a whole regular file synchronously, turning the usual failures
 * (missing file, directory, device, unreadable, too large) into
 * FileFormatErrors naming the path. `what` describes the expected
 * content, e.g. "a llama2.c checkpoint".
 */
export function readFileBytes(path: string, what: string, maxBytes = MAX_FILE_BYTES): Uint8Array {
  const { fd, size } = openRegular(path, what);
  const fs = nodeFs(path);
  try {
    checkSize(path, what, size, maxBytes);
    return readAt(fs, fd, size, 0);
  } catch (err) {
    throw err instanceof FileFormatError ? err : openFailure(path, what, err);
  } finally {
    fs.closeSync(fd);
  }
}

/** Refuses a file of `size` bytes beyond `maxBytes` (the format's or the loader's stated bound; by default the 2 GiB every loader takes) before it is read. */
export function checkSize(path: string, what: string, size: number, maxBytes = MAX_FILE_BYTES): void {
  if (size <= maxBytes) return;
  if (maxBytes === MAX_FILE_BYTES) throw new FileFormatError(path, `file is ${size} bytes; files of 2 GiB or more are not supported (expected ${what})`);
  throw new FileFormatError(path, `file is ${size} bytes, more than the ${maxBytes}-byte limit for ${what}`);
}

export interface TextLimits {
  /** The largest file accepted (checked against its size before anything is read). */
  maxBytes: number;
  /** The longest line accepted, in bytes. */
  maxLine: number;
}

/**
 * Reads a regular text file line by line, in 64 KiB chunks: memory is one
 * chunk plus the current line, whatever the file's size. Refuses, naming
 * the file, a non-regular file or one beyond `limits.maxBytes` before
 * reading, and a line longer than `limits.maxLine` bytes (naming the line).
 * `onLine` gets each line without its "\n" or "\r\n", numbered from 1;
 * `onBytes` (e.g. a hash) every chunk of raw bytes.
 */
export function readLines(path: string, what: string, limits: TextLimits, onLine: (line: string, number: number) => void, onBytes?: (chunk: Uint8Array) => void): void {
  const { fd, size } = openRegular(path, what);
  const fs = nodeFs(path);
  try {
    checkSize(path, what, size, limits.maxBytes);
    const chunk = new Uint8Array(64 * 1024);
    let pending: Uint8Array[] = [],
      pendingBytes = 0,
      number = 0,
      position = 0;
    // Text as UTF-8, strictly: a byte that is no UTF-8 is an error, not a U+FFFD the model would read silently.
    const decoder = new TextDecoder("utf-8", { fatal: true });
    const emit = (tail: Uint8Array) => {
      number++;
      let bytes = pending.length === 0 ? tail : concat([...pending, tail], pendingBytes + tail.length);
      if (bytes.length > 0 && bytes[bytes.length - 1] === 13) bytes = bytes.subarray(0, bytes.length - 1);
      pending = [];
      pendingBytes = 0;
      let line: string;
      try {
        line = decoder.decode(bytes);
      } catch {
        throw new FileFormatError(path, `line ${number} is not valid UTF-8 (expected ${what} in UTF-8)`);
      }
      onLine(line, number);
    };
    for (;;) {
      const n = fs.readSync(fd, chunk, 0, chunk.length, position);
      if (n === 0) break;
      position += n;
      // A file that grows while it is read is held to the same bound.
      checkSize(path, what, position, limits.maxBytes);
      const got = chunk.subarray(0, n);
      onBytes?.(got);
      let start = 0;
      for (let i = got.indexOf(10); i >= 0; i = got.indexOf(10, start)) {
        if (pendingBytes + i - start > limits.maxLine) throw longLine(path, number + 1, limits.maxLine);
        emit(got.subarray(start, i));
        start = i + 1;
      }
      if (start < n) {
        pending.push(got.slice(start));
        pendingBytes += n - start;
        if (pendingBytes > limits.maxLine) throw longLine(path, number + 1, limits.maxLine);
      }
    }
    if (pendingBytes > 0) emit(new Uint8Array(0));
  } catch (err) {
    throw err instanceof FileFormatError || !(err instanceof Error && "code" in err) ? err : openFailure(path, what, err);
  } finally {
    fs.closeSync(fd);
  }
}

const longLine = (path: string, line: number, max: number) => new FileFormatError(path, `line ${line} is longer than ${max} bytes`);

function concat(parts: Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  let o = 0;
  for (const p of parts) out.set(p, o), (o += p.length);
  return out;
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

/** The largest JSON file (tokenizer.json, config.json) read: 512 MiB, over ten times the largest published tokenizer.json. */
export const MAX_JSON_BYTES = 512 * 2 ** 20;

/**
 * A JSON file (every one the library reads: config.json, tokenizer.json,
 * tokenizer_config.json, a safetensors index, adapter_config.json), with
 * FileFormatErrors naming it for a missing, non-regular or oversized file
 * (checked before reading), bytes that are not UTF-8 (never read as U+FFFD)
 * or bad JSON. A leading byte-order mark is read past, as in text files.
 */
export function readJsonFile(path: string, what: string): unknown {
  const bytes = readFileBytes(path, what, MAX_JSON_BYTES);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new FileFormatError(path, `not valid UTF-8 (expected ${what} in UTF-8)`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new FileFormatError(path, `not valid JSON (expected ${what}): ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** quote's stand-in for a non-finite number inside JSON, and the stand-in as JSON writes it. */
const NON_FINITE = "\u0000nonfinite:";
const NON_FINITE_QUOTED = /"\\u0000nonfinite:(-?Infinity|NaN)"/g;

/** Bytes shown as a quoted string: printable ASCII as is, every other byte as \xHH (a binary file's bytes never reach the terminal raw). */
export function quoteBytes(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += b >= 0x20 && b < 0x7f && b !== 0x22 && b !== 0x5c ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, "0")}`;
  return `"${s}"`;
}

/**
 * A value from a file, shown in an error message: JSON, cut to `max`
 * characters (a 4 MB header value is not echoed whole), and safe for
 * values too deeply nested to stringify.
 */
export function quote(value: unknown, max = 80): string {
  let s: string;
  try {
    // JSON writes Infinity and NaN (e.g. a 1e400 parsed from a file) as null: show them as they are.
    s = JSON.stringify(value, (_k, v) => (typeof v === "number" && !Number.isFinite(v) ? NON_FINITE + String(v) : v))?.replace(NON_FINITE_QUOTED, "$1") ?? String(value);
  } catch {
    return "(a value too deeply nested to show)";
  }
  return s.length > max ? `${s.slice(0, max - 3)}... (${s.length} characters)` : s;
}
