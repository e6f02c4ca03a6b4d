/**
 * Ctrl-C and kill for long runs. While an Interruption is armed, the first
 * SIGINT or SIGTERM only asks the run to stop (it saves a resumable
 * checkpoint and returns; the CLI then exits 130 or 143); a second one
 * exits the process at once with that code, saving nothing more, after one
 * line on stderr that says so (`onSecondSignal`).
 *
 * A signal handler only runs when the event loop turns, so a run must
 * yield between steps, and between the parts of a long step or evaluation
 * (see runLoop), for the first signal to be seen.
 */

export type StopSignal = "SIGINT" | "SIGTERM";

/** The shell's exit status for a run stopped by `signal`: 128 + its number. */
export const SIGNAL_EXIT_CODE: Readonly<Record<StopSignal, number>> = { SIGINT: 130, SIGTERM: 143 };

export const SIGNALS: readonly StopSignal[] = ["SIGINT", "SIGTERM"];

export class Interruption {
  /** The first signal received, once one has been. */
  signal: StopSignal | undefined;
  private readonly listeners = new Set<(s: StopSignal) => void>();
  private readonly handler = (s: NodeJS.Signals): void => this.onSignal(s as StopSignal);
  /** Says, just before a second signal exits the process, that nothing more is saved; a run replaces it to say what its last checkpoint is. */
  onSecondSignal: (s: StopSignal) => void = (s) => void process.stderr.write(`\nptp: second ${s}; exiting at once, without saving\n`);

  constructor(private readonly exit: (code: number) => void = (code) => process.exit(code)) {
    for (const s of SIGNALS) process.on(s, this.handler);
  }

  private onSignal(s: StopSignal): void {
    if (this.signal !== undefined) {
      // The second Ctrl-C: the user does not want to wait for the save.
      this.onSecondSignal(s);
      this.exit(SIGNAL_EXIT_CODE[s]);
      return;
    }
    this.signal = s;
    for (const f of [...this.listeners]) f(s);
  }

  /**
   * Settles with `work`'s result, or with `stopped` as soon as a signal
   * arrives (the work is then abandoned, still running).
   */
  race<T, S>(work: Promise<T>, stopped: S): Promise<T | S> {
    if (this.signal !== undefined) return Promise.resolve(stopped);
    return new Promise((resolve, reject) => {
      const listener = (): void => resolve(stopped);
      this.listeners.add(listener);
      work.then(
        (v) => (this.listeners.delete(listener), resolve(v)),
        (e: unknown) => (this.listeners.delete(listener), reject(e)),
      );
    });
  }

  /** Stops listening; signals get Node's default behaviour again. */
  dispose(): void {
    for (const s of SIGNALS) process.off(s, this.handler);
  }
}

/** Lets pending I/O and signal handlers run (a macrotask turn of the event loop). */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Runs `work` (synchronous, e.g. a few files written together) with SIGINT
 * and SIGTERM held off: a signal that comes meanwhile is acted on only
 * once the work is done, and returned (the first one) for the caller to
 * exit with, so a Ctrl-C never leaves the work half done.
 */
export async function holdSignals(work: () => void): Promise<StopSignal | undefined> {
  let signal: StopSignal | undefined;
  const hold = (s: NodeJS.Signals): void => void (signal ??= s as StopSignal);
  for (const s of SIGNALS) process.on(s, hold);
  try {
    work();
    // Signals that came during the work are handled at the event loop's next poll phase; two turns make sure one has passed.
    await yieldToEventLoop();
    await yieldToEventLoop();
  } finally {
    for (const s of SIGNALS) process.off(s, hold);
  }
  return signal;
}
