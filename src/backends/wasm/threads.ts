/**
 * Worker threads for the wasm backend's matmul.
 *
 * Every worker instantiates the same compiled module on the SAME shared
 * WebAssembly.Memory, so a job is just pointers and sizes. The main thread
 * splits the output columns of one matmul into chunks (multiples of 4) that
 * all threads, the calling one included, claim and compute; no reduction is
 * ever split, so the result is bit-identical to one thread.
 *
 * Signalling is a small Int32Array on a SharedArrayBuffer: the main thread
 * writes the job, bumps GEN and notifies; an idle worker spins briefly on GEN,
 * then sleeps in Atomics.wait; COMPLETED counts the chunks written.
 * Nothing is allocated per call. Workers are unref'd (they never keep a
 * process alive) and terminated by dispose().
 *
 * Workers come from a WorkerSpawner: Node's worker_threads by default; the
 * browser entry installs Web Workers (web-workers.ts) with setWorkerSpawner.
 */
import { nodeBuiltin } from "../../host/node-builtin.js";
import type { WasmMemory, WasmModule } from "./wasm-api.js";

// Layout of the control block (Int32 slots).
const GEN = 0; // job generation, bumped per job
const CLAIM = 1; // (gen & 0xffff) << 16 | next chunk to claim
const COMPLETED = 2; // chunks written in this job
const QUIT = 3;
const READY = 4;
const P = 8; // job: y, x, w, packed, M, K, N, chunk, nChunks
const SLOTS = P + 9;
const SPIN_WORKER = 40_000; // Atomics.load rounds before an idle worker sleeps (tens of microseconds)

/**
 * The worker's loop, as source text (so it runs the same from src/, dist/ and
 * a bundle); it expects \`module\`, \`memory\` and \`ctrl\` (PoolWorkerData) in scope.
 */
export const WORKER_LOOP = `
const c = new Int32Array(ctrl);
const u = new Uint32Array(ctrl);
const abort = () => { throw new Error("wasm kernel abort in worker"); };
const gemm = new WebAssembly.Instance(module, { env: { memory, abort } }).exports.gemm;
let seen = Atomics.load(c, ${GEN});
Atomics.add(c, ${READY}, 1);
Atomics.notify(c, ${READY});
for (;;) {
  let g = Atomics.load(c, ${GEN});
  for (let i = 0; g === seen; i++) {
    if (i >= ${SPIN_WORKER}) { Atomics.wait(c, ${GEN}, seen, 200); i = 0; }
    g = Atomics.load(c, ${GEN});
  }
  seen = g;
  if (Atomics.load(c, ${QUIT}) !== 0) break;
  const y = u[${P}], x = u[${P} + 1], w = u[${P} + 2], packed = u[${P} + 3], M = u[${P} + 4], K = u[${P} + 5], N = u[${P} + 6];
  const chunk = u[${P} + 7], nChunks = u[${P} + 8], tag = (g & 0xffff) << 16;
  for (;;) {
    const cur = Atomics.load(c, ${CLAIM});
    if ((cur & 0xffff0000) !== tag || (cur & 0xffff) >= nChunks) break;
    if (Atomics.compareExchange(c, ${CLAIM}, cur, cur + 1) !== cur) continue;
    const n0 = (cur & 0xffff) * chunk;
    gemm(y, x, w, packed, M, K, N, n0, Math.min(N, n0 + chunk));
    Atomics.add(c, ${COMPLETED}, 1);
  }
}
`;

/** The worker's program on Node (CommonJS, evaluated from a string). */
const WORKER_SOURCE = `
const { workerData } = require("node:worker_threads");
const { module, memory, ctrl } = workerData;
${WORKER_LOOP}`;

/** What a worker gets: the compiled kernels, the shared memory and the control block. */
export interface PoolWorkerData {
  module: WasmModule;
  memory: WasmMemory;
  ctrl: SharedArrayBuffer;
}

/** A started worker, as the pool sees it. */
export interface PoolWorker {
  /** Calls `listener` if the worker fails or exits before it is terminated. */
  onFailure(listener: (err: Error) => void): void;
  terminate(): void;
}

/** Starts one worker running WORKER_LOOP on `data`. */
export type WorkerSpawner = (data: PoolWorkerData) => PoolWorker;

/** Node's worker_threads, unref'd so they never keep a process alive. */
export const nodeWorkerSpawner: WorkerSpawner = (data) => {
  const { Worker } = nodeBuiltin<typeof import("node:worker_threads")>("node:worker_threads", "wasm backend threads", "use setWorkerSpawner (see web-workers.ts)");
  const w = new Worker(WORKER_SOURCE, { eval: true, workerData: data });
  w.unref();
  return {
    onFailure(listener) {
      w.once("error", listener);
      w.once("exit", () => listener(new Error("wasm backend: a worker thread exited during start-up")));
    },
    terminate: () => void w.terminate(),
  };
};

let spawner: WorkerSpawner = nodeWorkerSpawner;

/** Sets how new thread pools start their workers (the browser entry installs Web Workers). */
export function setWorkerSpawner(s: WorkerSpawner): void {
  spawner = s;
}

export type GemmKernel = (y: number, x: number, w: number, packed: number, M: number, K: number, N: number, n0: number, n1: number) => void;

export class ThreadPool {
  /** Threads in all, the calling thread included. */
  readonly threads: number;
  private readonly workers: PoolWorker[] = [];
  private readonly c: Int32Array;
  private readonly u: Uint32Array;
  private readonly ready: Promise<void>;
  private isReady = false;
  private closed = false;

  constructor(threads: number, module: WasmModule, memory: WasmMemory) {
    this.threads = threads;
    const ctrl = new SharedArrayBuffer(4 * SLOTS);
    this.c = new Int32Array(ctrl);
    this.u = new Uint32Array(ctrl);
    const starts: Promise<void>[] = [];
    for (let i = 0; i < threads - 1; i++) {
      const w = spawner({ module, memory, ctrl });
      this.workers.push(w);
      starts.push(
        new Promise<void>((resolve, reject) => {
          w.onFailure(reject);
          const poll = () => {
            if (Atomics.load(this.c, READY) >= threads - 1) resolve();
            else setTimeout(poll, 1);
          };
          poll();
        }),
      );
    }
    this.ready = Promise.all(starts).then(() => {
      this.isReady = !this.closed;
    });
    this.ready.catch(() => undefined);
  }

  /** Resolves when every worker is running (jobs run single-threaded until then). */
  whenReady(): Promise<void> {
    return this.ready;
  }

  /**
   * Columns [0, N) of one matmul, in chunks of columns (multiples of 4) that
   * the threads claim one at a time, so a worker that is slow to wake (a busy
   * machine) costs nothing: the calling thread takes the chunks left over.
   * Returns false (and does nothing) while the workers are still starting.
   */
  gemm(kernel: GemmKernel, y: number, x: number, w: number, packed: number, M: number, K: number, N: number): boolean {
    if (!this.isReady) return false;
    const c = this.c, u = this.u;
    const nChunks = Math.min(4 * this.threads, N >> 2);
    const chunk = Math.ceil(N / nChunks / 4) * 4;
    const count = Math.ceil(N / chunk);
    u[P] = y; u[P + 1] = x; u[P + 2] = w; u[P + 3] = packed;
    u[P + 4] = M; u[P + 5] = K; u[P + 6] = N; u[P + 7] = chunk; u[P + 8] = count;
    const gen = (Atomics.load(c, GEN) + 1) | 0;
    const tag = (gen & 0xffff) << 16;
    Atomics.store(c, COMPLETED, 0);
    Atomics.store(c, CLAIM, tag);
    Atomics.store(c, GEN, gen);
    Atomics.notify(c, GEN);
    let mine = 0;
    for (;;) {
      const cur = Atomics.load(c, CLAIM);
      if ((cur & 0xffff) >= count) break;
      if (Atomics.compareExchange(c, CLAIM, cur, cur + 1) !== cur) continue;
      const n0 = (cur & 0xffff) * chunk;
      kernel(y, x, w, packed, M, K, N, n0, Math.min(N, n0 + chunk));
      mine++;
    }
    // Wait for the chunks the workers claimed (short: each is in progress).
    while (Atomics.load(c, COMPLETED) + mine < count) {
      /* spin */
    }
    return true;
  }

  /** Stops and terminates the workers. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.isReady = false;
    Atomics.store(this.c, QUIT, 1);
    Atomics.add(this.c, GEN, 1);
    Atomics.notify(this.c, GEN);
    for (const w of this.workers) w.terminate();
  }
}
