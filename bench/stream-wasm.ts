/**
 * The host's streaming read rate as our wasm kernels can see it: how many
 * GB/s T threads read when each runs the relaxed build's `streamRead` (16-byte
 * loads, four far-apart streams per thread: the one-row matmul's pattern,
 * with adds instead of multiply-adds) over its own contiguous share of a
 * 512 MiB shared WebAssembly memory. The wasm counterpart of bench/stream.c;
 * bench/native-vs-ours.ts runs both in every repetition. Prints the best of
 * PASSES passes, as stream.c does:
 *
 *   node --experimental-wasm-relaxed-simd --import tsx bench/stream-wasm.ts [--threads 2]
 *
 *   wasm stream GB/s: 36.2
 */
import { resolve } from "node:path";
import { Worker } from "node:worker_threads";
import { benchFlags, COUNT, instantiateBuild } from "./common.js";

const f = benchFlags({ threads: { ...COUNT, default: 1, max: 256 } });
const threads = f.threads;
const BYTES = 512 * 1024 * 1024;
const PASSES = 6;
const build = resolve(import.meta.dirname, "../build/ptp-relaxed.wasm");

interface Stream {
  heapBase(): number;
  streamRead(ptr: number, bytes: number): number;
}
const { ex, memory } = instantiateBuild<Stream>(build);
const base = (ex.heapBase() + 63) & ~63;
const pages = Math.ceil((base + BYTES - memory.buffer.byteLength) / 65536);
if (pages > 0) memory.grow(pages);
// Written once by this thread (V8 maps the pages on the first write, as stream.c's first touch does).
const data = new Float32Array(memory.buffer, base, BYTES / 4);
for (let i = 0; i < data.length; i++) data[i] = (i & 1023) * 1e-3;

// Each thread's share: a multiple of 64 bytes (streamRead cuts it in four 16-byte-aligned parts).
const share = Math.floor(BYTES / threads / 64) * 64;
// Control words: [0] passes posted, [1] workers done with the current pass, [2] workers ready.
const ctl = new Int32Array(new SharedArrayBuffer(12));
const workerSource = `
const { parentPort, workerData } = require("node:worker_threads");
const { readFileSync } = require("node:fs");
const { build, memory, ctl, ptr, bytes } = workerData;
const ex = new WebAssembly.Instance(new WebAssembly.Module(readFileSync(build)), { env: { memory, exp: Math.exp, abort() {} } }).exports;
ex.streamRead(ptr, 65536);
Atomics.add(ctl, 2, 1);
for (let seen = 0; ; ) {
  Atomics.wait(ctl, 0, seen);
  seen = Atomics.load(ctl, 0);
  if (seen < 0) break;
  ex.streamRead(ptr, bytes);
  Atomics.add(ctl, 1, 1);
}
`;
const workers = Array.from({ length: threads - 1 }, (_, t) => new Worker(workerSource, { eval: true, workerData: { build, memory, ctl, ptr: base + (t + 1) * share, bytes: share } }));
while (Atomics.load(ctl, 2) < threads - 1) await new Promise((r) => setTimeout(r, 5));
ex.streamRead(base, 65536); // warm-up (tier-up)

let best = 0,
  sink = 0;
for (let pass = 0; pass < PASSES; pass++) {
  Atomics.store(ctl, 1, 0);
  const t0 = performance.now();
  Atomics.add(ctl, 0, 1);
  Atomics.notify(ctl, 0);
  sink += ex.streamRead(base, share);
  while (Atomics.load(ctl, 1) < threads - 1) {}
  const seconds = (performance.now() - t0) / 1000;
  best = Math.max(best, (share * threads) / seconds / 1e9);
}
Atomics.store(ctl, 0, -1);
Atomics.notify(ctl, 0);
await Promise.all(workers.map((w) => w.terminate()));
console.log(`wasm stream GB/s: ${best.toFixed(1)}`);
if (sink === 0.5) console.log(""); // the sums are used
