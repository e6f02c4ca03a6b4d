/**
 * Worker threads for the wasm backend's matmul and attention.
 *
 * Every worker instantiates the same compiled module on the SAME shared
 * WebAssembly.Memory, so a job is just a kernel id, pointers and sizes. The
 * calling thread splits one op into chunks (output columns of a matmul, in
 * multiples of 4; query heads of attention) that all threads, the calling one
 * included, claim and compute; no reduction is ever split, so the result is
 * bit-identical to one thread.
 *
 * Lifecycle (the interface a caller sees):
 * - `new ThreadPool(threads, module, memory, spawn)` starts the workers at
 *   once; `spawn` is the one platform-specific piece (Node: node-worker.ts;
 *   a browser variant passes a Web Worker spawner running `WORKER_BODY`).
 * - `ready` is true (an atomic load, no event loop needed) as soon as every
 *   worker runs; `whenReady()` resolves then. Until then jobs run on the
 *   calling thread alone, with the same results.
 * - `close()` stops and terminates the workers.
 *
 * Signalling is a small Int32Array on a SharedArrayBuffer: the calling thread
 * writes the job, bumps GEN and notifies; an idle worker spins briefly on GEN,
 * then sleeps in Atomics.wait until GEN changes (close() bumps it too, so an
 * idle pool costs no CPU); COMPLETED counts the chunks written.
 * Nothing is allocated per call.
 */
import type { WasmMemory, WasmModule } from "../../util/wasm-api.js";

// Layout of the control block (Int32 slots).
const GEN = 0; // job generation, bumped per job
const CLAIM = 1; // (gen & 0xffff) << 16 | next chunk to claim
const COMPLETED = 2; // chunks written in this job
const QUIT = 3;
const READY = 4; // workers running
const WORKER_CHUNKS = 5; // chunks computed by workers, ever (diagnostics and tests)
const P = 8; // job: kind, nChunks, then the kernel's arguments
const ARGS = P + 2;
const MAX_ARGS = 12;
const BOUNDS = ARGS + MAX_ARGS; // chunk i is [bounds[i], bounds[i + 1])
/** Chunks a job is cut into at most. */
export const MAX_CHUNKS = 64;
const SLOTS = BOUNDS + MAX_CHUNKS + 1;
// Atomics.load rounds before an idle worker sleeps: about 7 ms (18 ns a round on the 2-core EPYC). At
// 40,000 (0.7 ms) the 15M CLI on 2 threads ran 0.91-0.95x as fast (a worker asleep misses the first
// products after a pause, and wakes late); at 110M, whose products are long, it made no difference.
const SPIN_WORKER = 400_000;

/** Job kinds: which export a chunk calls, with its arguments then (lo, hi) of the chunk. */
export const JOB_GEMM = 0; // gemm(y, x, w, packed, M, K, N, n0, n1)
export const JOB_ATTENTION = 1; // attentionHeads(out, q, keys, values, mask, hasMask, M, nKeys, nHeads, nKvHeads, hs, scratch, h0, h1)
export const JOB_GEMM_BF16 = 2; // gemmBf16(y, x, w, packed, M, K, N, n0, n1)
export const JOB_GEMM_INT8 = 3; // gemmInt8(y, xq, packed, M, K, N, n0, n1)
const ARG_COUNTS = [7, 12, 7, 6];

/**
 * The worker's program, platform-neutral: defines `ptpWorkerMain(module,
 * memory, ctrl)`, which never returns until the pool closes. A spawner adds
 * the few lines that hand it the three values (see node-worker.ts).
 */
export const WORKER_BODY = `
function ptpWorkerMain(module, memory, ctrl) {
  const c = new Int32Array(ctrl);
  const u = new Uint32Array(ctrl);
  const abort = () => { throw new Error("wasm kernel abort in worker"); };
  const ex = new WebAssembly.Instance(module, { env: { memory, abort, exp: Math.exp } }).exports;
  const gemm = ex.gemm, att = ex.attentionHeads, gemmBf16 = ex.gemmBf16, gemmInt8 = ex.gemmInt8;
  const a = ${ARGS};
  // One chunk [lo, hi) of the posted job (its arguments at u[a ..]).
  const chunk = (kind, lo, hi) => {
    if (kind === ${JOB_GEMM}) gemm(u[a], u[a + 1], u[a + 2], u[a + 3], u[a + 4], u[a + 5], u[a + 6], lo, hi);
    else if (kind === ${JOB_GEMM_BF16}) gemmBf16(u[a], u[a + 1], u[a + 2], u[a + 3], u[a + 4], u[a + 5], u[a + 6], lo, hi);
    else if (kind === ${JOB_GEMM_INT8}) gemmInt8(u[a], u[a + 1], u[a + 2], u[a + 3], u[a + 4], u[a + 5], lo, hi);
    else att(u[a], u[a + 1], u[a + 2], u[a + 3], u[a + 4], u[a + 5], u[a + 6], u[a + 7], u[a + 8], u[a + 9], u[a + 10], u[a + 11], lo, hi);
  };
  // The next job's generation after seen: spin on GEN, then sleep until it changes.
  const next = (seen) => {
    let g = Atomics.load(c, ${GEN});
    for (let i = 0; g === seen; i++) {
      if (i >= ${SPIN_WORKER}) { Atomics.wait(c, ${GEN}, seen); i = 0; }
      g = Atomics.load(c, ${GEN});
    }
    return g;
  };
  // Claims and runs chunks of job g until none is left.
  const work = (g) => {
    const kind = u[${P}], nChunks = u[${P} + 1], tag = (g & 0xffff) << 16;
    for (;;) {
      const cur = Atomics.load(c, ${CLAIM});
      if ((cur & 0xffff0000) !== tag || (cur & 0xffff) >= nChunks) break;
      if (Atomics.compareExchange(c, ${CLAIM}, cur, cur + 1) !== cur) continue;
      chunk(kind, u[${BOUNDS} + (cur & 0xffff)], u[${BOUNDS} + (cur & 0xffff) + 1]);
      Atomics.add(c, ${WORKER_CHUNKS}, 1);
      Atomics.add(c, ${COMPLETED}, 1);
    }
  };
  // Every kind on an empty range (each kernel returns at once), a few rounds (V8 records what a
  // function does only from its first few calls on): V8 optimises these functions while they run,
  // and a path first taken later (the first threaded attention, many tokens in) would undo that and
  // compile them again, on a core the kernels need.
  for (let round = 0; round < 32; round++) for (let kind = 0; kind < ${ARG_COUNTS.length}; kind++) chunk(kind, 0, 0);
  let seen = Atomics.load(c, ${GEN});
  Atomics.add(c, ${READY}, 1);
  Atomics.notify(c, ${READY});
  for (;;) {
    seen = next(seen);
    if (Atomics.load(c, ${QUIT}) !== 0) break;
    work(seen);
  }
}
`;

/** What a pool needs of a started worker. */
export interface WorkerHandle {
  terminate(): void;
}

/**
 * Starts one worker running `WORKER_BODY`'s `ptpWorkerMain(module, memory,
 * ctrl)`. `onFail` is called if the worker dies or cannot start.
 */
export type WorkerSpawner = (data: { module: WasmModule; memory: WasmMemory; ctrl: SharedArrayBuffer }, onFail: (e: Error) => void) => WorkerHandle;

/** A kernel the calling thread runs on its own chunks: the job's arguments, then lo, hi. */
export type ChunkKernel = (...args: number[]) => void;

export class ThreadPool {
  /** Threads in all, the calling thread included. */
  readonly threads: number;
  private readonly workers: WorkerHandle[] = [];
  private readonly c: Int32Array;
  private readonly u: Uint32Array;
  /** Per job kind, the arguments of one chunk's kernel call (the job's, then lo, hi). */
  private readonly chunkArgs: number[][];
  private isReady = false;
  private failed: Error | undefined;
  private closed = false;

  constructor(threads: number, module: WasmModule, memory: WasmMemory, spawn: WorkerSpawner) {
    this.threads = threads;
    const ctrl = new SharedArrayBuffer(4 * SLOTS);
    this.c = new Int32Array(ctrl);
    this.u = new Uint32Array(ctrl);
    // Fixed lengths, and doubles from the start (a pointer past 1 GiB is no small integer): an array
    // whose length or element kind changed while decoding would make V8 compile run() again.
    this.chunkArgs = ARG_COUNTS.map((n) => new Array<number>(n + 2).fill(0.5));
    for (let i = 0; i < threads - 1; i++) {
      this.workers.push(spawn({ module, memory, ctrl }, (e) => (this.failed ??= e)));
    }
  }

  /** True once every worker runs (checked with an atomic load: usable from synchronous code). */
  get ready(): boolean {
    if (!this.isReady && !this.closed && this.failed === undefined) {
      this.isReady = Atomics.load(this.c, READY) >= this.threads - 1;
    }
    return this.isReady;
  }

  /** Chunks computed by worker threads so far (not the calling thread's). */
  get workerChunks(): number {
    return Atomics.load(this.c, WORKER_CHUNKS);
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

  /**
   * Runs one job over [0, total): `kernel(...args, lo, hi)` on the chunks
   * `guidedChunks` cuts (long first, short last, so a worker that starts late
   * takes fewer and the threads finish close together), claimed one at a
   * time by every thread. Returns false (and does nothing) while the workers
   * are not running.
   */
  run(kind: number, kernel: ChunkKernel, args: readonly number[], total: number, align: number, minChunk: number): boolean {
    if (!this.ready) return false;
    const c = this.c,
      u = this.u;
    const count = guidedChunks(total, this.threads, align, minChunk, u, BOUNDS);
    const n = ARG_COUNTS[kind];
    u[P] = kind;
    u[P + 1] = count;
    const a = this.chunkArgs[kind];
    for (let i = 0; i < n; i++) {
      u[ARGS + i] = args[i];
      a[i] = args[i];
    }
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
      a[n] = u[BOUNDS + (cur & 0xffff)];
      a[n + 1] = u[BOUNDS + (cur & 0xffff) + 1];
      kernel(...a);
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

/**
 * Writes the bounds of a job's guided chunks over [0, total) to
 * out[at .. at + count] (out[at] = 0, out[at + count] = total) and returns
 * count: each chunk is 1 / (2 * threads) of what is left, rounded up to a
 * multiple of `align`, at least `minChunk` (a multiple of `align`), and the
 * MAX_CHUNKS-th takes the rest.
 */
export function guidedChunks(total: number, threads: number, align: number, minChunk: number, out: { [i: number]: number }, at = 0): number {
  // A product with a fraction, not a division: V8 compiles a division of whole numbers for whole
  // results, and the first fraction would undo that (a deoptimisation, then a second compile).
  const perUnit = 1 / (2 * threads * align);
  let count = 0;
  out[at] = 0;
  for (let lo = 0; lo < total; ) {
    const size = count === MAX_CHUNKS - 1 ? total - lo : Math.max(minChunk, Math.ceil((total - lo) * perUnit) * align);
    lo = Math.min(total, lo + size);
    out[at + ++count] = lo;
  }
  return count;
}
