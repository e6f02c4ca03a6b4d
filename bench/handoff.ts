/**
 * What one threaded product costs beyond its arithmetic: small M = 1
 * products with the weights hot in the caches (so memory does not hide the
 * hand-off), timed on a 1-thread and a 2-thread wasm backend in one process,
 * rounds alternating. The 2-thread time over half the 1-thread time is what
 * the hand-off to the worker (job written, worker woken, chunks claimed,
 * completion awaited) adds to a product of that size.
 *
 *   node --experimental-wasm-relaxed-simd --import tsx bench/handoff.ts [--shapes 288x288,288x768,768x288] [--calls 5000] [--rounds 9]
 *
 * Shapes are K x N (W is [N, K]); the defaults are the 15M model's layer
 * products, the ones a decode token makes 42 of.
 */
import type { Backend } from "../src/backends/backend.js";
import { createBackend } from "../src/backends/registry.js";
import { benchFlags, COUNT, markdownTable, median, shapesFlag } from "./common.js";

const f = benchFlags({
  shapes: { kind: "string", value: "LIST", default: "288x288,288x768,768x288" },
  calls: { ...COUNT, default: 5000 },
  rounds: { ...COUNT, default: 9 },
});
const shapes = shapesFlag("shapes", f.shapes);
const { calls, rounds } = f;

const random = (n: number) => Float32Array.from({ length: n }, () => Math.random() - 0.5);

/** One backend's buffers for every shape. */
async function setUp(threads: number) {
  const b = (await createBackend("wasm", { threads })) as Backend & { startThreads?: () => Promise<void> };
  await b.startThreads?.();
  const products = shapes.map(([K, N]) => {
    const w = b.alloc(N * K),
      x = b.alloc(K),
      y = b.alloc(N);
    b.upload(w, random(N * K));
    b.upload(x, random(K));
    for (let i = 0; i < 200; i++) b.matmul(y, x, w, 1, K, N); // packed panels, JIT, caches
    return { K, N, w, x, y };
  });
  return { b, products };
}

const one = await setUp(1);
const two = await setUp(2);
const times = [one, two].map(() => shapes.map(() => [] as number[]));
for (let r = 0; r < rounds; r++) {
  [one, two].forEach(({ b, products }, t) => {
    products.forEach(({ K, N, w, x, y }, s) => {
      const t0 = performance.now();
      for (let i = 0; i < calls; i++) b.matmul(y, x, w, 1, K, N);
      times[t][s].push(((performance.now() - t0) / calls) * 1000);
    });
  });
}
const rows = shapes.map(([K, N], s) => {
  const t1 = median(times[0][s]),
    t2 = median(times[1][s]);
  return [`${K}x${N}`, t1.toFixed(2), t2.toFixed(2), `${(t1 / t2).toFixed(2)}x`, (t2 - t1 / 2).toFixed(2)];
});
console.log(`M = 1 products, weights hot in the caches; medians of ${rounds} rounds of ${calls} calls, 1 and 2 threads alternating\n`);
console.log(markdownTable(["K x N", "1 thread, us", "2 threads, us", "speedup", "2 threads - half of 1 thread, us"], rows));
for (const { b } of [one, two]) b.dispose?.();
process.exit(0);
