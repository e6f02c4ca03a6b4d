import { accessSync, constants, existsSync, readFileSync, statSync, type Stats } from "node:fs";
import { dirname, resolve } from "node:path";
import { UsageError, defineFlags } from "./args.js";

/**
 * Checks made on a command's output files before it does any work, so a
 * user's files are never lost and a run never fails at its first save:
 *
 * - an output never names the same file as an input or another output;
 * - an existing output is refused unless --force, or unless the command
 *   continues a run (--resume) and the file is one such a run writes,
 *   recognised by its format (`resumable`);
 * - an output's directory exists and is writable, and an existing output
 *   is a writable regular file (not a directory or a device).
 */

/** A file named on the command line, with the flag that named it. */
export interface PathFlag {
  flag: string;
  path: string;
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

function sameFile(a: string, b: string): boolean {
  if (resolve(a) === resolve(b)) return true;
  const x = statOrUndefined(a),
    y = statOrUndefined(b);
  return x !== undefined && y !== undefined && x.dev === y.dev && x.ino === y.ino;
}

export function checkOutputs(outputs: readonly PathFlag[], o: OutputCheckOptions = {}): void {
  const inputs = (o.inputs ?? []).filter((i): i is PathFlag => i.path !== undefined);
  outputs.forEach((out, i) => {
    for (const input of inputs) if (sameFile(out.path, input.path)) throw new UsageError(`${out.flag} ${out.path} is the same file as ${input.flag}; choose another output path`);
    for (const other of outputs.slice(0, i)) if (sameFile(out.path, other.path)) throw new UsageError(`${out.flag} ${out.path} is the same file as ${other.flag}; give them different paths`);
  });
  for (const out of outputs) {
    const st = statOrUndefined(out.path);
    if (st !== undefined) {
      if (st.isDirectory()) throw new Error(`${out.flag} ${out.path} is a directory, expected a file path to write`);
      if (!st.isFile()) throw new Error(`${out.flag} ${out.path} is not a regular file; refusing to write to it`);
      if (!o.force) {
        const ok = o.resumable?.(out);
        if (ok === undefined) throw new Error(`${out.flag} ${out.path} exists; pass --force to overwrite it`);
        if (ok !== true) throw new Error(`${out.flag} ${out.path} exists and ${ok}; refusing to overwrite it (pass --force to replace it)`);
      }
    }
    const dir = dirname(resolve(out.path));
    const ds = statOrUndefined(dir);
    if (ds === undefined || !ds.isDirectory()) throw new Error(`${out.flag} ${out.path}: directory ${dir} does not exist`);
    try {
      accessSync(dir, constants.W_OK);
      if (st !== undefined) accessSync(out.path, constants.W_OK);
    } catch {
      throw new Error(`${out.flag} ${out.path}: ${st !== undefined ? "the file" : `directory ${dir}`} is not writable`);
    }
  }
}

/** Reasons an existing file is not one a ptp run writes, by kind; true when it is. */
export const recognise = {
  /** A safetensors file: 8-byte header length, then a JSON object. */
  safetensors(path: string): true | string {
    const b = readFileSync(path);
    if (b.length < 9) return "is not a safetensors file (too short)";
    const n = Number(b.readBigUInt64LE(0));
    if (!(n >= 2 && 8 + n <= b.length) || b[8] !== 0x7b) return "is not a safetensors file";
    return true;
  },
  /** A metrics log: JSON lines, each an object with a numeric step (a torn last line allowed). */
  metricsLog(path: string): true | string {
    const text = readFileSync(path, "utf8");
    const lines = text.split("\n");
    const torn = !text.endsWith("\n") ? lines.pop() : undefined;
    void torn;
    for (const [i, l] of lines.entries()) {
      if (l.trim() === "") continue;
      let v: unknown;
      try {
        v = JSON.parse(l);
      } catch {
        return `is not a metrics log written by ptp (line ${i + 1} is not JSON)`;
      }
      if (typeof v !== "object" || v === null || typeof (v as { step?: unknown }).step !== "number") return `is not a metrics log written by ptp (line ${i + 1} has no "step")`;
    }
    return true;
  },
};

/** Whether a path was given and exists. */
export const exists = (path: string | undefined): path is string => path !== undefined && existsSync(path);
