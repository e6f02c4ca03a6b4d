import { randomBytes } from "node:crypto";
import { renameSync, unlinkSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";

/**
 * The temporary name a write to `path` goes through: hidden, in the same
 * directory (so the rename is atomic), unique to this process and call
 * (pid + random), so it never clobbers a user's file or another writer's.
 */
export function temporaryPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
}

/**
 * Writes bytes to a temporary file next to `path` (temporaryPathFor), then
 * renames it over `path`, so an interrupted write never leaves a
 * half-written file under the real name. The temporary file is removed if
 * anything fails.
 */
export function writeBytesAtomically(path: string, bytes: Uint8Array): void {
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
