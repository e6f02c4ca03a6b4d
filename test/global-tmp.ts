import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Every test file, and every CLI process a test starts, writes its scratch
 * files under ONE folder made for this run (TMPDIR points there, and
 * os.tmpdir() follows it); the folder is removed when the run ends, so
 * repeated runs leave nothing behind in the system's temp folder.
 */
export default function setup(): () => void {
  const outer = process.env.TMPDIR;
  const dir = mkdtempSync(join(tmpdir(), "ptp-test-run-"));
  process.env.TMPDIR = dir;
  return () => {
    if (outer === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = outer;
    rmSync(dir, { recursive: true, force: true });
  };
}
