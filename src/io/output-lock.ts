import { closeSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from "node:fs";
import { SIGNAL_EXIT_CODE, SIGNALS, type StopSignal } from "../train/interrupt.js";
import { quotePath } from "./errors.js";
import { processAlive } from "../host/process-alive.js";

/**
 * One run per output: a long run (`ptp distill`, `ptp train`, `ptp
 * pregenerate`) holds `OUT.lock` while it writes OUT and the files next to
 * it, so a second run on the same OUT (another terminal, a second
 * --resume) is refused instead of mixing its checkpoints and logs with the
 * first's.
 *
 * The lock file is created with O_EXCL ("wx") and holds a JSON line: the
 * pid, the start time and the command line. A lock whose pid is not
 * running (kill -9, a power cut), or an empty one older than a few seconds
 * (cut between its creation and its line), is stale and replaced (`onStale`
 * says so). A file of that name holding anything else is not ours: it is
 * kept, and the run refused.
 *
 * It is released (removed, only if it is still this run's) when the
 * command ends (`releaseOutputLocks`, called by the CLI's main), at any
 * process exit (process.exit, a second Ctrl-C, an uncaught error), and on
 * SIGINT/SIGTERM that nothing else handles (before a run arms its own
 * Ctrl-C handling): then it exits 130/143 as a plain Ctrl-C would. Only
 * kill -9 leaves it behind, and the next run replaces it.
 */

/** Locks this process holds: path -> the content it wrote. */
const held = new Map<string, string>();

/** An empty lock younger than this may be one being written: it counts as held. */
const YOUNG_MS = 3000;

/** Whether onExit and onSignal are installed (once per process). */
let installed = false;

function onExit(): void {
  for (const path of [...held.keys()]) release(path);
}

/**
 * SIGINT/SIGTERM with no other listener (Node's default would kill the process silently and skip "exit"): say so
 * and exit as it would, lock released.
 */
function onSignal(s: NodeJS.Signals): void {
  if (process.listenerCount(s) !== 1) return;
  process.stderr.write(`ptp: ${s} received; stopped\n`);
  process.exit(SIGNAL_EXIT_CODE[s as StopSignal]);
}

function release(path: string): void {
  const mine = held.get(path);
  if (mine === undefined) return;
  held.delete(path);
  try {
    if (readFileSync(path, "utf8") === mine) unlinkSync(path);
  } catch {
    // already gone, or not readable: nothing of ours to remove
  }
}

interface LockInfo {
  pid: number;
  started: string;
  command: string;
}

function readLock(path: string): LockInfo | undefined {
  try {
    const v = JSON.parse(readFileSync(path, "utf8")) as Partial<LockInfo>;
    if (typeof v === "object" && v !== null && Number.isSafeInteger(v.pid) && (v.pid as number) > 0) return { pid: v.pid as number, started: String(v.started), command: String(v.command) };
  } catch {
    // unreadable or not JSON: undefined
  }
  return undefined;
}

/** The lock file of a run writing `out`. */
export function lockPathOf(out: string): string {
  return `${out}.lock`;
}

/**
 * Takes the lock `${out}.lock` for this run, or throws a one-line Error
 * (exit 1) naming the pid and start of the run that holds it. `command` is
 * the command line recorded in the lock. A stale lock is replaced, with
 * `onStale` told why. Returns the function that releases it (also done at
 * the end of the command and at process exit).
 */
export function acquireOutputLock(out: string, command: string, onStale: (note: string) => void = () => {}): () => void {
  const path = lockPathOf(out);
  const content = `${JSON.stringify({ pid: process.pid, started: new Date().toISOString(), command })}\n`;
  for (let attempt = 0; ; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, "wx");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST" || attempt >= 3) throw e;
      const info = readLock(path);
      const busy = `${quotePath(out)} is being written by another ptp process`;
      const how = `wait for it to finish or stop it (${quotePath(path)})`;
      if (info === undefined) {
        let stat: { mtimeMs: number; size: number };
        try {
          stat = statSync(path);
        } catch {
          continue; // removed meanwhile: try again
        }
        // Only an empty file can be a lock of ours (one cut between its creation and its line); anything else is somebody's file, kept.
        if (stat.size > 0) throw new Error(`${quotePath(path)} exists and is not a ptp lock (a JSON line with a "pid"); it was left as it is: remove or rename it to run on ${quotePath(out)}`);
        if (Date.now() - stat.mtimeMs < YOUNG_MS) throw new Error(`${busy} (its lock is being created); ${how}`);
        onStale(`replacing the stale lock ${quotePath(path)}, which is empty`);
      } else if (info.pid === process.pid ? held.has(path) : processAlive(info.pid)) {
        throw new Error(`${busy} (pid ${info.pid}, started ${info.started}); ${how}`);
      } else {
        onStale(`replacing the stale lock ${quotePath(path)} of pid ${info.pid} (started ${info.started}), which is no longer running`);
      }
      try {
        unlinkSync(path);
      } catch {
        // removed meanwhile: try again
      }
      continue;
    }
    try {
      writeSync(fd, content);
    } catch (e) {
      closeSync(fd);
      unlinkSync(path);
      throw e;
    }
    closeSync(fd);
    break;
  }
  // Installed once and kept: a signal that comes after the lock is released, as the command ends, still
  // exits with its code (removing the last listener would let Node's default kill the process mid-exit).
  if (!installed) {
    installed = true;
    process.on("exit", onExit);
    for (const s of SIGNALS) process.on(s, onSignal);
  }
  held.set(path, content);
  return () => release(path);
}

/** Releases every lock this process holds (the end of a CLI command). */
export function releaseOutputLocks(): void {
  onExit();
}
