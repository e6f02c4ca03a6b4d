import { nodeBuiltin } from "../host/node-builtin.js";
import { checkPath, quotePath } from "./errors.js";
import { processAlive } from "../host/process-alive.js";

/** The most bytes of the file's own name a temporary name keeps: with its dots, pid, random part and ".tmp" it stays within the 255 bytes a name may have. */
const TEMP_BASE_BYTES = 200;

/**
 * The temporary name a write to `path` goes through: hidden, in the same
 * directory (so the rename is atomic), unique to this process and call
 * (pid + random), so it never clobbers a user's file or another writer's.
 * A long name is shortened in it (a legal name of 255 bytes must still be
 * writable).
 */
export function temporaryPathFor(path: string): string {
  const { dir, prefix } = temporaryNames(path);
  const random = Array.from(globalThis.crypto.getRandomValues(new Uint8Array(6)), (b) => b.toString(16).padStart(2, "0")).join("");
  const pid = (globalThis as { process?: { pid?: number } }).process?.pid ?? 0;
  return `${dir}${prefix}${pid}.${random}.tmp`;
}

/** Where temporaryPathFor puts `path`'s temporaries, and how their names start (then the pid, 12 hex digits, ".tmp"). */
function temporaryNames(path: string): { dir: string; prefix: string } {
  const slash = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  return { dir: path.slice(0, slash + 1), prefix: `.${shortened(path.slice(slash + 1), TEMP_BASE_BYTES)}.` };
}

/**
 * Removes the temporaries of earlier writes to `path` that a kill -9
 * between their write and their rename left behind (a checkpoint's can be
 * gigabytes): names exactly as temporaryPathFor makes them for this path,
 * of a pid that is no longer running. Another live writer's are kept.
 */
function removeOrphanedTemporaries(fs: Pick<typeof import("node:fs"), "readdirSync" | "unlinkSync">, path: string): void {
  const { dir, prefix } = temporaryNames(path);
  let names: string[];
  try {
    names = fs.readdirSync(dir === "" ? "." : dir);
  } catch {
    return; // an unreadable folder: the write itself says what is wrong
  }
  for (const name of names) {
    const m = name.startsWith(prefix) ? /^([0-9]+)\.[0-9a-f]{12}\.tmp$/.exec(name.slice(prefix.length)) : null;
    if (m === null || Number(m[1]) === process.pid || processAlive(Number(m[1]))) continue;
    try {
      fs.unlinkSync(dir + name);
    } catch {
      // removed meanwhile, or not ours to remove
    }
  }
}

/** `name` cut to at most `max` UTF-8 bytes, never inside a character. */
function shortened(name: string, max: number): string {
  let bytes = 0,
    end = 0;
  for (const ch of name) {
    const n = new TextEncoder().encode(ch).length;
    if (bytes + n > max) break;
    bytes += n;
    end += ch.length;
  }
  return name.slice(0, end);
}

/**
 * Throws unless `path` is absent, a regular file or a link (what a rename
 * may replace): a rename over a device, a FIFO or a socket would put a
 * regular file in its place (as root, /dev/null itself), and over a folder
 * it fails only after the temporary file is written.
 */
export function checkReplaceable(fs: Pick<typeof import("node:fs"), "lstatSync">, path: string): void {
  let st: import("node:fs").Stats;
  try {
    st = fs.lstatSync(path);
  } catch {
    return; // absent (or unreadable: the write itself says why)
  }
  if (st.isFile() || st.isSymbolicLink()) return;
  if (st.isDirectory()) throw new Error(`${quotePath(path)}: cannot write: it is a directory`);
  const what = st.isFIFO() ? "a FIFO" : st.isSocket() ? "a socket" : "a device";
  throw new Error(`${quotePath(path)}: cannot write: it is ${what}, not a regular file; refusing to replace it`);
}

/**
 * Writes bytes to a temporary file next to `path` (temporaryPathFor), then
 * renames it over `path`, so an interrupted write never leaves a
 * half-written file under the real name. The temporary file is removed if
 * anything fails.
 */
export function writeBytesAtomically(path: string, bytes: Uint8Array): void {
  checkPath(path, "write");
  const fs = nodeBuiltin<typeof import("node:fs")>("node:fs", `writing ${path}`, "serialize to bytes instead");
  const { renameSync, unlinkSync, writeFileSync } = fs;
  checkReplaceable(fs, path);
  removeOrphanedTemporaries(fs, path);
  const tmp = temporaryPathFor(path);
  try {
    writeFileSync(tmp, bytes, { flag: "wx" });
    renameSync(tmp, path);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      // the temporary file may not exist
    }
    throw writeFailure(path, err);
  }
}

/**
 * The error of a failed write to `path`, naming it (not the temporary file
 * the write went through) and saying what is wrong in words for the usual
 * causes; the system error is its `cause`, its code kept as `code`.
 */
export function writeFailure(path: string, err: unknown): Error {
  const code = (err as { code?: unknown } | null)?.code;
  const slash = Math.max(path.replace(/[/\\]+$/, "").lastIndexOf("/"), path.lastIndexOf("\\"));
  const folder = slash > 0 ? path.slice(0, slash) : slash === 0 ? "/" : ".";
  const why =
    code === "ENOENT"
      ? `its folder ${quotePath(folder)} does not exist`
      : code === "EISDIR"
        ? "it is a directory"
        : code === "ENOTDIR"
          ? "a part of the path is a file, not a folder (or the path is a file where a folder was expected)"
          : code === "EACCES" || code === "EPERM"
            ? "permission denied"
            : code === "ENOSPC"
              ? "no space left on the device"
              : code === "EEXIST"
                ? "a file is in the way of a folder it needs"
                : code === "ENAMETOOLONG"
                  ? "a name in the path is too long"
                  : code === "EBUSY"
                    ? "it is in use (a mount point or the current folder)"
                    : code === "ERR_INVALID_ARG_VALUE" || code === "ERR_INVALID_ARG_TYPE"
                      ? "the path holds a NUL byte"
                      : err instanceof Error
                        ? err.message
                        : String(err);
  const out = new Error(`${quotePath(path)}: cannot write: ${why}`, { cause: err });
  if (typeof code === "string") (out as Error & { code?: string }).code = code;
  return out;
}

/** Makes folder `dir` and its parents where missing; a failure names `dir` in words (writeFailure). */
export function makeFolders(dir: string): void {
  const { mkdirSync } = nodeBuiltin<typeof import("node:fs")>("node:fs", `making ${dir}`, "serialize to bytes instead");
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw writeFailure(dir, err);
  }
}

/**
 * Writes several files as one: each goes to its temporary file first
 * (temporaryPathFor), and only when every one is written are they renamed
 * over their real names, so a failure (a full disk, a missing folder)
 * leaves none of them half-written or replaced. The temporary files are
 * removed if anything fails.
 */
export function writeFilesAtomically(files: readonly { path: string; bytes: Uint8Array }[]): void {
  const fs = nodeBuiltin<typeof import("node:fs")>("node:fs", `writing ${files.map((f) => f.path).join(", ")}`, "serialize to bytes instead");
  const { renameSync, unlinkSync, writeFileSync } = fs;
  for (const f of files) checkPath(f.path, "write");
  for (const f of files) checkReplaceable(fs, f.path);
  const temps: string[] = [];
  let current = files[0]?.path ?? "";
  try {
    for (const f of files) {
      current = f.path;
      const tmp = temporaryPathFor(f.path);
      writeFileSync(tmp, f.bytes, { flag: "wx" });
      temps.push(tmp);
    }
    files.forEach((f, i) => {
      current = f.path;
      renameSync(temps[i], f.path);
    });
  } catch (err) {
    for (const tmp of temps) {
      try {
        unlinkSync(tmp);
      } catch {
        // already renamed, or never written
      }
    }
    throw writeFailure(current, err);
  }
}

/**
 * Writes a folder's files through a fresh hidden temporary folder, so a
 * failure leaves nothing behind: `write(tmp)` writes the files into `tmp`
 * and returns their paths; if it throws, `tmp` is removed and `dir` is as it
 * was. Then a missing `dir` is the temporary folder renamed (its parent must
 * exist); an existing `dir` (the temporary folder is made inside it) first
 * loses the files `stale` claims (those of an earlier write that this one
 * does not replace, e.g. the shards of a sharded model), then gets the new
 * files renamed in; other files in it are kept. Returns the paths in `dir`.
 */
export function writeFolderAtomically(dir: string, write: (tmp: string) => readonly string[], stale: (name: string) => boolean = () => false): string[] {
  checkPath(dir, "write", "the folder");
  const fs = nodeBuiltin<typeof import("node:fs")>("node:fs", `writing ${dir}`, "serialize to bytes instead");
  const folder = dir.length > 1 ? dir.replace(/[/\\]+$/, "") : dir;
  let exists = false;
  let other = false;
  try {
    const st = fs.statSync(folder);
    exists = st.isDirectory();
    other = !exists;
  } catch {
    // a new folder
  }
  if (other) throw new Error(`${quotePath(folder)}: cannot write a folder there: it exists and is not a folder`);
  const tmp = exists ? temporaryPathFor(`${folder}/new`) : temporaryPathFor(folder);
  try {
    fs.mkdirSync(tmp);
  } catch (err) {
    throw writeFailure(folder, err);
  }
  try {
    const names = write(tmp).map((p) => p.slice(Math.max(p.lastIndexOf("/"), p.lastIndexOf("\\")) + 1));
    // Every name the write replaces is checked before the folder changes at all, so a refusal leaves it as it was.
    if (exists) for (const n of names) checkReplaceable(fs, `${folder}/${n}`);
    if (!exists) {
      fs.renameSync(tmp, folder);
      return names.map((n) => `${folder}/${n}`);
    }
    for (const name of fs.readdirSync(folder)) {
      if (stale(name) && !names.includes(name) && fs.lstatSync(`${folder}/${name}`).isFile()) fs.unlinkSync(`${folder}/${name}`);
    }
    for (const n of names) fs.renameSync(`${tmp}/${n}`, `${folder}/${n}`);
    fs.rmdirSync(tmp);
    return names.map((n) => `${folder}/${n}`);
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    // The caller's own errors (a bad argument found while writing) pass as they are; a system error names the folder.
    throw typeof (err as { code?: unknown } | null)?.code === "string" && !(err instanceof Error && err.message.includes(": cannot write: ")) ? writeFailure(folder, err) : err;
  }
}
