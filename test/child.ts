import { spawn } from "node:child_process";
import { resolve } from "node:path";
import { ROOT } from "./helpers.js";

/** What a child process did: its exit code (or the signal that killed it) and its output. */
export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Milliseconds from the first signal sent to the exit (NaN if none was sent). */
  afterSignalMs: number;
}

/**
 * Runs `node args...` (args[0] a script: bin/ptp.js, or a .ts run through
 * tsx) and sends it `signals` (one after another, `gapMs` apart) once its
 * stderr matches `when` (its stdout, `whenStdout`), `delayMs` later. Real
 * signals to a real process: what a user's Ctrl-C or a kill does.
 */
export function runChild(args: readonly string[], o: { when?: RegExp; whenStdout?: RegExp; signals?: readonly NodeJS.Signals[]; delayMs?: number; gapMs?: number; timeoutMs?: number } = {}): Promise<ChildResult> {
  const script = args[0];
  const node = script.endsWith(".ts") ? ["--import", "tsx", resolve(ROOT, script)] : [resolve(ROOT, script)];
  const child = spawn(process.execPath, [...node, ...args.slice(1)], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "",
    stderr = "",
    sentAt = NaN,
    armed = false;
  const send = (): void => {
    sentAt = performance.now();
    (o.signals ?? []).forEach((s, i) => setTimeout(() => child.kill(s), i * (o.gapMs ?? 0)));
  };
  child.stdout.on("data", (d: Buffer) => {
    stdout += d.toString("utf8");
    if (!armed && o.whenStdout && o.whenStdout.test(stdout)) {
      armed = true;
      setTimeout(send, o.delayMs ?? 0);
    }
  });
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString("utf8");
    if (!armed && o.when && o.when.test(stderr)) {
      armed = true;
      setTimeout(send, o.delayMs ?? 0);
    }
  });
  return new Promise((resolvePromise, reject) => {
    // A child that ignores its signals would hang the test: kill it and say so.
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`child ${args.join(" ")} still running after ${o.timeoutMs ?? 60000} ms; stderr:\n${stderr}`));
    }, o.timeoutMs ?? 60000);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout, stderr, afterSignalMs: performance.now() - sentAt });
    });
  });
}
