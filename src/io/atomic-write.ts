import { nodeBuiltin } from "../host/node-builtin.js";

/**
 * The temporary name a write to `path` goes through: hidden, in the same
 * directory (so the rename is atomic), unique to this process and call
 * (pid + random), so it never clobbers a user's file or another writer's.
 */
export function temporaryPathFor(path: string): string {
  const slash = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  const dir = path.slice(0, slash + 1),
    base = path.slice(slash + 1);
  const random = Array.from(globalThis.crypto.getRandomValues(new Uint8Array(6)), (b) => b.toString(16).padStart(2, "0")).join("");
  const pid = (globalThis as { process?: { pid?: number } }).process?.pid ?? 0;
  return `${dir}.${base}.${pid}.${random}.tmp`;
}

/**
 * Writes bytes to a temporary file next to `path` (temporaryPathFor), then
 * renames it over `path`, so an interrupted write never leaves a
 * half-written file under the real name. The temporary file is removed if
 * anything fails.
 */
export function writeBytesAtomically(path: string, bytes: Uint8Array): void {
  const { renameSync, unlinkSync, writeFileSync } = nodeBuiltin<typeof import("node:fs")>("node:fs", `writing ${path}`, "serialize to bytes instead");
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
    throw err;
  }
}
