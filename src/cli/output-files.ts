import { accessSync, closeSync, constants, existsSync, lstatSync, openSync, readFileSync, readlinkSync, realpathSync, statSync, unlinkSync, type Stats } from "node:fs";
import { basename, dirname, join, resolve, sep } from "node:path";
import { temporaryPathFor } from "../io/atomic-write.js";
import { quotePath, readFilePrefix } from "../io/errors.js";
import { acquireOutputLock } from "../io/output-lock.js";
import { looksLikeSafetensors } from "../io/safetensors.js";
import { holdSignals, SIGNAL_EXIT_CODE, SignalLatch, signalSoFar, type StopSignal } from "../train/interrupt.js";
import { parseMetricsLog } from "../train/metrics-log.js";
import { UsageError, defineFlags } from "./args.js";
import type { Io } from "./io.js";

/**
 * Checks made on a command's output files before it does any work, so a
 * user's files are never lost and a run never fails at its first save:
 *
 * - an output path is not empty (exit 2);
 * - an output never names the same file as an input or another output, nor
 *   a file inside an input folder, and an output folder never holds an
 *   input among the files it writes (exit 2);
 * - an existing output is refused unless --force, or unless the command
 *   continues a run (--resume) and the file is one such a run writes,
 *   recognised by its format (`resumable`);
 * - an output's directory exists (its parents are never created) and a
 *   file can be created in it: a probe file is created and removed, so a
 *   read-only or pseudo file system (/proc) fails here, not at the first
 *   save; an existing output is a writable regular file (not a directory
 *   or a device), and an existing output folder is a folder;
 * - a file output does not end in a slash, and a symbolic link to nothing
 *   counts as an existing file (a link is replaced by the new file, its
 *   target left as it was).
 *
 * `writeOutputs` then writes them with Ctrl-C held off until every file is
 * in place.
 */

/** A file named on the command line, with the flag that named it. */
export interface PathFlag {
  flag: string;
  path: string;
}

/**
 * An output that is a folder the command writes files into (a Hugging Face
 * model, a PEFT adapter) rather than a file: `owns` tells the names of the
 * files it writes or replaces there; other files in it are kept.
 */
export interface FolderFlag extends PathFlag {
  owns: (name: string) => boolean;
}

export const forceFlag = defineFlags({
  force: { kind: "bool", help: "overwrite existing output files" },
});

export interface OutputCheckOptions {
  /** Files the command reads; none may be an output. */
  inputs?: readonly (PathFlag | { flag: string; path: string | undefined })[];
  /** --force: existing outputs may be replaced. */
  force?: boolean;
  /**
   * For a continued run: whether the existing output is one the run wrote
   * (then it may exist); returns a reason when it is not.
   */
  resumable?: (o: PathFlag) => true | string;
}

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

/** The target of a symbolic link at `path` that points at nothing, or undefined. */
function danglingLink(path: string): string | undefined {
  try {
    return lstatSync(path).isSymbolicLink() ? readlinkSync(path) : undefined;
  } catch {
    return undefined;
  }
}

function sameFile(a: string, b: string): boolean {
  if (resolve(a) === resolve(b) || realPath(a) === realPath(b)) return true;
  const x = statOrUndefined(a),
    y = statOrUndefined(b);
  return x !== undefined && y !== undefined && x.dev === y.dev && x.ino === y.ino;
}

/** The absolute path with symbolic links resolved as far as the path exists. */
function realPath(path: string): string {
  const abs = resolve(path);
  try {
    return realpathSync(abs);
  } catch {
    const parent = dirname(abs);
    return parent === abs ? abs : join(realPath(parent), basename(abs));
  }
}

/** Whether `path` lies inside the folder `dir` (at any depth). */
function inside(path: string, dir: string): boolean {
  if (statOrUndefined(dir)?.isDirectory() !== true) return false;
  const d = realPath(dir);
  return realPath(path).startsWith(d.endsWith(sep) ? d : d + sep);
}

const isFolder = (o: PathFlag | FolderFlag): o is FolderFlag => "owns" in o;

/** Creates and removes a file in `dir`: whether files can really be created there. */
function canCreateIn(dir: string): boolean {
  const probe = temporaryPathFor(join(dir, ".ptp-write-probe"));
  try {
    closeSync(openSync(probe, "wx"));
  } catch {
    return false;
  }
  try {
    unlinkSync(probe);
  } catch {
    // created but not removable: still a writable folder
  }
  return true;
}

/** The most bytes a file name may have (Linux, macOS and Windows alike). */
const NAME_MAX = 255;

export function checkOutputs(outputs: readonly (PathFlag | FolderFlag)[], o: OutputCheckOptions = {}): void {
  for (const out of outputs) {
    if (out.path === "") throw new UsageError(`${out.flag} must not be empty`);
    if (!isFolder(out) && /[/\\]$/.test(out.path)) throw new UsageError(`${out.flag} ${quotePath(out.path)} ends with a slash, expected a file path (this output is one file)`);
    // Checked now, not when the file is written at the end of the work.
    const nameBytes = Buffer.byteLength(basename(out.path));
    if (nameBytes > NAME_MAX) throw new UsageError(`${out.flag} ${quotePath(out.path)}: the file name is ${nameBytes} bytes, more than the ${NAME_MAX} a name may have; choose a shorter name`);
  }
  const inputs = (o.inputs ?? []).filter((i): i is PathFlag => i.path !== undefined && i.path !== "");
  outputs.forEach((out, i) => {
    for (const input of inputs) {
      if (sameFile(out.path, input.path)) throw new UsageError(`${out.flag} ${quotePath(out.path)} is the same file as ${input.flag}; choose another output path`);
      if (inside(out.path, input.path)) throw new UsageError(`${out.flag} ${quotePath(out.path)} is inside ${input.flag} ${quotePath(input.path)}, so writing it would change the same file as ${input.flag}; choose another output path`);
      if (isFolder(out) && out.owns(basename(input.path)) && sameFile(dirname(realPath(input.path)), out.path)) {
        throw new UsageError(`${out.flag} ${quotePath(out.path)} would overwrite ${quotePath(input.path)}, the same file as ${input.flag}; choose another output folder`);
      }
    }
    for (const other of outputs.slice(0, i)) {
      if (sameFile(out.path, other.path) || inside(out.path, other.path) || inside(other.path, out.path)) throw new UsageError(`${out.flag} ${quotePath(out.path)} is the same file as ${other.flag}; give them different paths`);
    }
  });
  for (const out of outputs) {
    const st = statOrUndefined(out.path);
    const link = st === undefined ? danglingLink(out.path) : undefined;
    if (link !== undefined && !o.force) throw new Error(`${out.flag} ${quotePath(out.path)} is a symbolic link to ${quotePath(link)}, which does not exist; pass --force to replace the link with the new file`);
    if (st !== undefined) {
      if (isFolder(out)) {
        if (!st.isDirectory()) throw new Error(`${out.flag} ${quotePath(out.path)} exists and is not a folder, expected a folder to write (or a new path)`);
      } else {
        if (st.isDirectory()) throw new Error(`${out.flag} ${quotePath(out.path)} is a directory, expected a file path to write`);
        if (!st.isFile()) throw new Error(`${out.flag} ${quotePath(out.path)} is not a regular file; refusing to write to it`);
      }
      if (!o.force) {
        const ok = o.resumable?.(out);
        if (ok === undefined) throw new Error(`${out.flag} ${quotePath(out.path)} already exists; pass --force to overwrite it`);
        if (ok !== true) throw new Error(`${out.flag} ${quotePath(out.path)} exists and ${ok}; refusing to overwrite it (pass --force to replace it)`);
      }
    }
    const dir = dirname(resolve(out.path));
    const ds = statOrUndefined(dir);
    if (ds === undefined) throw new Error(`${out.flag} ${quotePath(out.path)}: directory ${quotePath(dir)} does not exist`);
    if (!ds.isDirectory()) throw new Error(`${out.flag} ${quotePath(out.path)}: ${quotePath(dir)} is not a directory`);
    // Files are created next to an output file (its temporary file) or inside an existing output folder.
    const where = isFolder(out) && st !== undefined ? resolve(out.path) : dir;
    if (!canCreateIn(where)) throw new Error(`${out.flag} ${quotePath(out.path)}: directory ${quotePath(where)} is not writable (a file cannot be created there)`);
    if (st !== undefined && !isFolder(out)) {
      try {
        accessSync(out.path, constants.W_OK);
      } catch {
        throw new Error(`${out.flag} ${quotePath(out.path)}: the file is not writable`);
      }
    }
  }
}

/**
 * Runs a command's writes (synchronous: a file, files or a folder written
 * through temporary names) with SIGINT and SIGTERM held off (holdSignals),
 * so a Ctrl-C never leaves a half-written or temporary file behind: one that
 * comes during the writes is acted on once every file is in place. It
 * says first that it writes `what` (a write can take seconds). Then
 * `report` says what was written (stderr), and the exit code is returned:
 * 0, or 130 / 143 after saying that the signal waited for the files.
 */
export async function writeOutputs<T>(io: Io, command: string, what: string, write: () => T, report: (written: T) => void): Promise<number> {
  let written: T | undefined;
  const signal = await holdSignals(() => {
    io.stderr(`${command}: writing ${what}\n`);
    written = write();
  });
  report(written as T);
  if (signal === undefined) return 0;
  io.stderr(`${command}: ${signal} received while writing; the files were completed first\n`);
  return SIGNAL_EXIT_CODE[signal];
}

/** What a command's preparation of its outputs sees of SIGINT/SIGTERM (withSignalsCaught). */
export interface PrepareSignals {
  /** The signals caught so far (runInterruptibly reads it). */
  readonly latch: SignalLatch;
  /** After a part of the work: 130 or 143 if a signal came (said on stderr: nothing was written), else undefined. */
  stopped(): Promise<number | undefined>;
}

/**
 * Runs `work`, a command's preparation of its outputs (reading a model,
 * converting it, making a corpus: synchronous parts) and its writeOutputs,
 * with SIGINT and SIGTERM caught: a signal is seen where the work lets the
 * event loop turn (`stopped()` between its parts, runInterruptibly), then
 * the command stops with nothing written, says so in one line and exits
 * 130 or 143, instead of vanishing silently. A signal during a part is
 * acted on once that part is done; one during the writes, once they are
 * (writeOutputs).
 */
export async function withSignalsCaught(io: Io, command: string, work: (signals: PrepareSignals) => Promise<number>): Promise<number> {
  const latch = new SignalLatch();
  try {
    return await work({
      latch,
      stopped: async () => {
        const signal = await signalSoFar(latch);
        return signal === undefined ? undefined : interruptedBeforeWriting(io, command, signal);
      },
    });
  } finally {
    latch.dispose();
  }
}

/** Says that `command` stopped on `signal` before writing anything, and returns its exit code (130 or 143). */
export function interruptedBeforeWriting(io: Io, command: string, signal: StopSignal): number {
  io.stderr(`${command}: interrupted (${signal}); nothing was written\n`);
  return SIGNAL_EXIT_CODE[signal];
}

/** Reasons an existing file is not one a ptp run writes, by kind; true when it is. */
export const recognise = {
  /** A safetensors file: 8-byte header length, then a JSON object (its first 10 bytes read). */
  safetensors(path: string): true | string {
    const { bytes, size } = readFilePrefix(path, "a safetensors file", 10);
    if (size < 9) return "is not a safetensors file (too short)";
    return looksLikeSafetensors(bytes, size) ? true : "is not a safetensors file";
  },
  /** A metrics log: JSON lines, each an object with a numeric step (a torn last line allowed). */
  metricsLog(path: string): true | string {
    const log = parseMetricsLog(readFileSync(path, "utf8"));
    if (log.ok) return true;
    return `is not a metrics log written by ptp (line ${log.line} ${log.notJson ? "is not JSON" : 'has no "step"'})`;
  },
};

/** Whether a path was given and exists. */
export const exists = (path: string | undefined): path is string => path !== undefined && existsSync(path);

/**
 * Takes OUT.lock for a long run that writes OUT and files next to it
 * (src/io/output-lock.ts), and PATH.lock beside each other output it
 * writes (its checkpoint and log, a --char-vocab: runLocks), so two runs
 * with different --out cannot share one either: refused
 * (exit 1) while another ptp process writes any of them; a stale lock is
 * replaced, with a line on stderr. Called after the output checks, before
 * any output is touched; main releases them.
 */
export function lockOutput(io: Io, command: string, outputs: readonly string[], argv: readonly string[]): void {
  const seen = new Set<string>();
  for (const out of outputs) {
    if (seen.has(resolve(out))) continue;
    seen.add(resolve(out));
    acquireOutputLock(out, ["ptp", command, ...argv].join(" "), (note) => io.stderr(`ptp ${command}: ${note}\n`));
  }
}
