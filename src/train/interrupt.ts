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

export class Interruption implements SignalSource {
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

/** What runInterruptibly and signalSoFar read: the first signal received, once one has been (an Interruption, a SignalLatch). */
export interface SignalSource {
  readonly signal: StopSignal | undefined;
}

/**
 * Catches SIGINT and SIGTERM (every one, so none kills the process) and
 * records the first, until disposed: for a command that stops at points of
 * its own choosing, with nothing of its own to save (`ptp convert` before
 * its writes). Unlike an Interruption, a second signal changes nothing.
 */
export class SignalLatch implements SignalSource {
  signal: StopSignal | undefined;
  private readonly handler = (s: NodeJS.Signals): void => void (this.signal ??= s as StopSignal);

  constructor() {
    for (const s of SIGNALS) process.on(s, this.handler);
  }

  dispose(): void {
    for (const s of SIGNALS) process.off(s, this.handler);
  }
}

/** How often runInterruptibly turns the event loop: at most this many milliseconds of work between two turns. */
export const YIELD_EVERY_MS = 20;

/** What runInterruptibly ended with: the work's result, or the signal that stopped it and the last value the work yielded. */
export type Interruptible<T, Y> = { done: true; value: T } | { done: false; signal: StopSignal; last: Y | undefined };

/**
 * Runs `steps` (synchronous work cut into parts by a generator: a decode
 * yielding after each model call, decodeARSteps) to its end, turning the
 * event loop every `everyMs` milliseconds of work (never after a part that
 * took less), so that `interruption` sees a SIGINT or SIGTERM. Once one has
 * come, the work stops before its next part (return(): its finally blocks
 * run) and the signal is returned with the last value it yielded. An error
 * of the work is thrown.
 */
export async function runInterruptibly<T, Y>(steps: Generator<Y, T, void>, interruption: SignalSource, everyMs = YIELD_EVERY_MS): Promise<Interruptible<T, Y>> {
  let last: Y | undefined;
  let turned = performance.now();
  try {
    for (;;) {
      if (interruption.signal !== undefined) return { done: false, signal: interruption.signal, last };
      const r = steps.next();
      if (r.done) return { done: true, value: r.value };
      last = r.value;
      if (performance.now() - turned >= everyMs) {
        await yieldToEventLoop();
        turned = performance.now();
      }
    }
  } finally {
    steps.return(undefined as T);
  }
}

/**
 * The first SIGINT or SIGTERM that came, once `interruption` has had the
 * chance to see signals that came during synchronous work (two turns of the
 * event loop, as holdSignals); undefined if none.
 */
export async function signalSoFar(interruption: SignalSource): Promise<StopSignal | undefined> {
  await yieldToEventLoop();
  await yieldToEventLoop();
  return interruption.signal;
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
