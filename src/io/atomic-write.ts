import { nodeBuiltin } from "../host/node-builtin.js";

/**
 * Writes bytes to `path + ".tmp"`, then renames it over `path`, so an
 * interrupted write never leaves a half-written file under the real name.
 * The temporary file is removed if anything fails.
 */
export function writeBytesAtomically(path: string, bytes: Uint8Array): void {
  const { renameSync, unlinkSync, writeFileSync } = nodeBuiltin<typeof import("node:fs")>("node:fs", `writing ${path}`, "serialize to bytes instead");
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
