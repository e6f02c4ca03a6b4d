import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parentPort, Worker, workerData } from "node:worker_threads";

/**
 * The worker threads of a data-parallel training step (under
 * ordered-parallel.ts, which every trainer's threads use): T workers
 * started from one compiled script, each told its jobs by a
 * message and saying it is done through its Int32 in a shared control
 * array. The main thread awaits them without blocking (Atomics.waitAsync),
 * so its event loop turns while a step runs and Ctrl-C is seen at once
 * (see interrupt.ts). A worker that fails, or dies, fails the step with its
 * message.
 */

/** Worker states in the control array (one Int32 per worker). */
const WorkerState = { Starting: 0, Ready: 1, Busy: 2, Failed: 3 } as const;
type WorkerState = (typeof WorkerState)[keyof typeof WorkerState];

/** What every worker is started with besides its own data (the buffers are shared). */
export interface GroupInit {
  index: number;
  control: SharedArrayBuffer;
  error: SharedArrayBuffer;
}

const ERROR_BYTES = 4096;

export class WorkerGroup {
  private readonly workers: Worker[] = [];
  private readonly control: Int32Array;
  private readonly error: Uint8Array;
  private closed = false;

  /**
   * Starts `size` workers of dist/train/`script` (also when this module
   * runs from source: tests, tsx); worker i gets `dataFor(i)` and the
   * group's buffers as its workerData. Await `ready()` before `run`.
   */
  constructor(
    private readonly label: string,
    script: string,
    readonly size: number,
    dataFor: (i: number) => object,
  ) {
    const control = new SharedArrayBuffer(4 * size),
      error = new SharedArrayBuffer(ERROR_BYTES);
    this.control = new Int32Array(control);
    this.error = new Uint8Array(error);
    const url = scriptUrl(script);
    for (let i = 0; i < size; i++) {
      const init: GroupInit = { ...dataFor(i), index: i, control, error };
      const w = new Worker(url, { workerData: init });
      // A worker that dies without saying why (an uncaught error, running out of memory) fails its jobs.
      w.on("error", (err) => this.failed(i, err.message));
      w.on("exit", (code) => this.failed(i, `exited with code ${code}`));
      w.unref();
      this.workers.push(w);
    }
  }

  /** Resolves once every worker has started (holds its model); rejects, closing the group, if one failed. */
  async ready(): Promise<void> {
    try {
      for (let i = 0; i < this.size; i++) await this.whileIn(i, WorkerState.Starting);
    } catch (err) {
      this.close();
      throw err;
    }
  }

  /** Posts messages[i] to worker i (none where it is undefined) and resolves once every worker told has finished. */
  async run(messages: readonly unknown[]): Promise<void> {
    if (this.closed) throw new Error(`${this.label}: the workers were closed`);
    const busy: number[] = [];
    messages.forEach((m, i) => {
      if (m === undefined) return;
      Atomics.store(this.control, i, WorkerState.Busy);
      this.workers[i].postMessage(m);
      busy.push(i);
    });
    for (const i of busy) await this.whileIn(i, WorkerState.Busy);
  }

  /** Resolves once worker i leaves state `from` (without blocking the event loop); rejects with its error if it failed. */
  private async whileIn(i: number, from: WorkerState): Promise<void> {
    // A pending waitAsync does not keep Node alive: the worker does, while it is awaited.
    const worker = this.workers[i];
    worker?.ref();
    try {
      while (Atomics.load(this.control, i) === from) {
        const w = waitAsync(this.control, i, from, 1000);
        if (w.async) await w.value;
      }
    } finally {
      worker?.unref();
    }
    if (Atomics.load(this.control, i) === WorkerState.Failed) {
      const end = this.error.indexOf(0);
      const message = new TextDecoder().decode(this.error.slice(0, end < 0 ? this.error.length : end));
      this.close();
      throw new Error(`${this.label} worker ${i}: ${message}`);
    }
  }

  /** Worker i died: its error message for whoever awaits it (the first failure's message is kept). */
  private failed(i: number, message: string): void {
    if (this.closed || Atomics.load(this.control, i) === WorkerState.Failed) return;
    if (this.error[0] === 0) this.error.set(new TextEncoder().encode(message).subarray(0, ERROR_BYTES - 1));
    Atomics.store(this.control, i, WorkerState.Failed);
    Atomics.notify(this.control, i);
  }

  close(): void {
    this.closed = true;
    for (const w of this.workers) void w.terminate();
    this.workers.length = 0;
  }
}

/**
 * The worker side: `setup` builds the worker's state from its workerData
 * and returns the handler of one message of jobs. The worker is Ready once
 * set up and again after each message; an error in either fails it with
 * its message.
 */
export async function serveJobs<D extends GroupInit, M>(setup: (init: D) => Promise<(message: M) => void> | ((message: M) => void)): Promise<void> {
  const init = workerData as D;
  const control = new Int32Array(init.control);
  const signal = (state: WorkerState) => {
    Atomics.store(control, init.index, state);
    Atomics.notify(control, init.index);
  };
  const fail = (err: unknown) => {
    const bytes = new Uint8Array(init.error);
    bytes.fill(0);
    bytes.set(new TextEncoder().encode(err instanceof Error ? err.message : String(err)).subarray(0, ERROR_BYTES - 1));
    signal(WorkerState.Failed);
  };
  try {
    const handle = await setup(init);
    parentPort!.on("message", (message: M) => {
      try {
        handle(message);
        signal(WorkerState.Ready);
      } catch (err) {
        fail(err);
      }
    });
    signal(WorkerState.Ready);
  } catch (err) {
    fail(err);
  }
}

/** Atomics.waitAsync (ES2024, in Node since 16), typed here: the project's TypeScript lib predates it. */
const waitAsync = (Atomics as unknown as { waitAsync(a: Int32Array, i: number, value: number, ms: number): { async: false; value: string } | { async: true; value: Promise<string> } }).waitAsync;

/** The compiled worker script dist/train/`script`, also when this module runs from source. */
function scriptUrl(script: string): URL {
  const here = import.meta.url;
  const url = here.endsWith(".ts") ? new URL(`../../dist/train/${script}`, here) : new URL(`./${script}`, here);
  if (!existsSync(fileURLToPath(url))) throw new Error(`training threads: the worker script ${fileURLToPath(url)} is missing (run 'npm run build')`);
  return url;
}
