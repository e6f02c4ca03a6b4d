import { renameSync, unlinkSync, writeFileSync } from "node:fs";

/**
 * Writes bytes to `path + ".tmp"`, then renames it over `path`, so an
 * interrupted write never leaves a half-written file under the real name.
 * The temporary file is removed if anything fails.
 */
export function writeBytesAtomically(path: string, bytes: Uint8Array): void {
  const tmp = `${path}.tmp`;
  try {
    writeFileSync(tmp, bytes);
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
