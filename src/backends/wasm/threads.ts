/**
 * Worker threads for the wasm backend's matmul and attention: their start,
 * readiness and end. How they share an op is the module's own business
 * (assembly/pool.ts): every worker instantiates the same compiled module on
 * the SAME shared WebAssembly.Memory and calls its `workerLoop` on a control
 * block in that memory; the calling thread posts an op with one call into the
 * module (`product`, `attend`, `decoderLayer`), which splits it into chunks (output
 * columns of a matmul, query heads of attention) that every thread, the
 * calling one included, claims and computes. No reduction is ever split, so
 * the result is bit-identical to one thread.
 *
 * Lifecycle (the interface a caller sees):
 * - `new ThreadPool(threads, module, memory, ctrl, k, spawn)` starts the
 *   workers at once; `spawn` is the one platform-specific piece (Node:
 *   node-worker.ts; a browser passes a Web Worker spawner running
 *   `WORKER_BODY`). `ctrl` is a zeroed block of `k.poolBytes()` bytes of the
 *   shared memory that stays put while the workers live.
 * - `ready` is true (an atomic load, no event loop needed) as soon as every
 *   worker runs; `whenReady()` resolves then. Until then the backend runs
 *   every op on the calling thread, with the same results.
 * - `close()` stops and terminates the workers.
 */
import type { WasmMemory, WasmModule } from "../../util/wasm-api.js";

// Spin rounds (one atomic load each, a few ns) before an idle worker sleeps: 15-20 ms on the 2-core
// EPYC. A worker asleep misses the first products after a pause and wakes late (sleeping after 0.7 ms,
// the 15M CLI on 2 threads ran 0.91-0.95x as fast); asleep, an idle pool costs no CPU.
const SPIN_WORKER = 4_000_000;

/**
 * The worker's program, platform-neutral: defines `ptpWorkerMain(module,
 * memory, ctrl)`, which never returns until the pool closes. A spawner adds
 * the few lines that hand it the three values (see node-worker.ts).
 */
export const WORKER_BODY = `
function ptpWorkerMain(module, memory, ctrl) {
  const abort = () => { throw new Error("wasm kernel abort in worker"); };
  const ex = new WebAssembly.Instance(module, { env: { memory, abort, exp: Math.exp } }).exports;
  ex.workerLoop(ctrl, ${SPIN_WORKER});
}
`;

/** The module's exports the pool itself calls (assembly/pool.ts). */
export interface PoolKernels {
  poolWorkers(ctrl: number): number;
  poolWorkerChunks(ctrl: number): number;
  poolClose(ctrl: number): void;
}

/** What a pool needs of a started worker. */
export interface WorkerHandle {
  terminate(): void;
}

/**
 * Starts one worker running `WORKER_BODY`'s `ptpWorkerMain(module, memory,
 * ctrl)`. `onFail` is called if the worker dies or cannot start.
 */
export type WorkerSpawner = (data: { module: WasmModule; memory: WasmMemory; ctrl: number }, onFail: (e: Error) => void) => WorkerHandle;

export class ThreadPool {
  /** Threads in all, the calling thread included. */
  readonly threads: number;
  private readonly workers: WorkerHandle[] = [];
  private isReady = false;
  private failed: Error | undefined;
  private closed = false;

  constructor(
    threads: number,
    module: WasmModule,
    memory: WasmMemory,
    /** The control block (assembly/pool.ts) that every parallel op of this pool passes. */
    readonly ctrl: number,
    private readonly k: PoolKernels,
    spawn: WorkerSpawner,
  ) {
    this.threads = threads;
    for (let i = 0; i < threads - 1; i++) {
      const worker = spawn({ module, memory, ctrl }, (e) => (this.failed ??= e));
      // A custom spawner that returns no handle: the pool stays on the calling thread, and says why.
      if (worker === null || typeof worker !== "object" || typeof worker.terminate !== "function") {
        this.failed ??= new Error(`wasm backend: spawnWorker must return a worker handle with terminate(), got ${worker === null ? "null" : typeof worker}`);
        continue;
      }
      this.workers.push(worker);
    }
  }

  /** True once every worker runs (checked with an atomic load: usable from synchronous code). */
  get ready(): boolean {
    if (this.failed !== undefined) return false;
    if (!this.isReady && !this.closed) {
      this.isReady = this.k.poolWorkers(this.ctrl) >= this.threads - 1;
    }
    return this.isReady;
  }

  /** Chunks computed by worker threads so far (not the calling thread's). */
  get workerChunks(): number {
    return this.k.poolWorkerChunks(this.ctrl);
  }

  /** Resolves when every worker runs; rejects if one failed to start. */
  async whenReady(timeoutMs = 30_000): Promise<void> {
    const t0 = Date.now();
    while (!this.ready) {
      if (this.failed) throw this.failed;
      if (this.closed) return;
      if (Date.now() - t0 > timeoutMs) throw new Error(`wasm backend: worker threads did not start within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  /** Stops and terminates the workers. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.isReady = false;
    this.k.poolClose(this.ctrl);
    for (const w of this.workers) w.terminate();
  }
}
