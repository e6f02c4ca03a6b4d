import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { jsKernels, Tape, wasmTrainKernels } from "../src/train/autograd/index.js";
import { trainableWeights } from "../src/train/graph.js";
import { windowGradient } from "../src/train/next-token.js";
import { PretrainParallel } from "../src/train/pretrain-parallel.js";
import { firstBitDifference, rng, tinyCheckpoint } from "./helpers.js";

/**
 * PRETRAIN-PARALLEL: the gradient `ptp train`'s worker threads compute is
 * the reference one, 0 + g_0 + g_1 + ... with each window's g_j computed
 * from zero on this thread, bit for bit, whatever the number of threads.
 */
describe("PRETRAIN-PARALLEL: a step on worker threads", () => {
  const open: PretrainParallel[] = [];
  afterAll(() => {
    for (const p of open) p.close();
  });

  it("gives the reference gradient and loss (windows summed in order, each from zero) bit for bit on 1, 2 and 3 threads, js and wasm kernels, over steps with new weights", async () => {
    await fc.assert(
      fc.asyncProperty(tinyCheckpoint, fc.integer({ min: 1, max: 1 << 30 }), fc.integer({ min: 1, max: 5 }), fc.constantFrom("js", "wasm"), async (ckpt, seed, batch, kernelName) => {
        const next = rng(seed),
          c = ckpt.config;
        const kernels = kernelName === "js" ? jsKernels : wasmTrainKernels();
        const T = 1 + Math.floor(next() * Math.min(c.seqLen, 6));
        const stream = Int32Array.from({ length: 4 * T + 8 }, () => Math.floor(next() * c.vocabSize));
        const { params, weights } = trainableWeights(ckpt);
        const parallels = [];
        for (const threads of [1, 2, 3]) {
          const p = await PretrainParallel.start(ckpt, params, stream, { batch, context: T, threads, kernels });
          open.push(p);
          parallels.push(p);
        }
        for (let step = 0; step < 2; step++) {
          const starts = Array.from({ length: batch }, () => Math.floor(next() * (stream.length - T - 1)));
          // The reference, on this thread.
          const total = params.map((p) => new Float32Array(p.data.length));
          let loss = 0;
          for (const start of starts) {
            for (const p of params) p.grad.fill(0);
            const tape = new Tape(kernels);
            loss += windowGradient(tape, c, weights, stream, start, T, batch) / batch;
            params.forEach((p, i) => {
              for (let k = 0; k < p.grad.length; k++) total[i][k] += p.grad[k];
            });
          }
          for (const parallel of parallels) {
            for (const p of params) p.grad.fill(Number.NaN);
            expect(Object.is(await parallel.step(starts), loss)).toBe(true);
            params.forEach((p, i) => {
              const d = firstBitDifference(p.grad, total[i]);
              if (d !== null) expect.fail(`${parallel.threads} threads, ${kernelName}, step ${step}, ${p.name}: ${d}`);
            });
          }
          // New weights for the next step: the workers must read them.
          for (const p of params) for (let k = 0; k < p.data.length; k++) p.data[k] += 0.01 * (next() - 0.5);
        }
        for (const p of parallels) p.close();
      }),
      { numRuns: 8, endOnFailure: true },
    );
  });

  it("refuses a thread count that is not a positive integer and params that do not fit the workers' model, and closes cleanly", async () => {
    const ckpt = fc.sample(tinyCheckpoint, { numRuns: 1, seed: 5 })[0];
    const { params } = trainableWeights(ckpt);
    const stream = new Int32Array(64);
    for (const threads of [0, 1.5, Number.NaN]) await expect(PretrainParallel.start(ckpt, params, stream, { batch: 2, context: 4, threads })).rejects.toThrow(/threads must be a positive integer/);
    // Params of another shape than the workers' model: the workers refuse to start.
    const other = fc.sample(
      tinyCheckpoint.filter((c) => trainableWeights(c).params.reduce((n, q) => n + q.data.length, 0) !== params.reduce((n, q) => n + q.data.length, 0)),
      { numRuns: 1, seed: 6 },
    )[0];
    await expect(PretrainParallel.start(ckpt, trainableWeights(other).params, stream, { batch: 2, context: 4, threads: 1 })).rejects.toThrow(/pretrain worker 0: the worker's params hold \d+ values, the main thread's \d+/);
    const p = await PretrainParallel.start(ckpt, params, stream, { batch: 2, context: 4, threads: 2 });
    p.close();
    await expect(p.step([0, 1])).rejects.toThrow(/closed/);
  });
});
