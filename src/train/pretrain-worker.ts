/**
 * A worker thread of `ptp train` (pretrain-parallel.ts): holds its own copy
 * of the model; each job is one window of the shared token stream.
 */
import { BufferPool, Tape } from "./autograd/index.js";
import { trainableWeights } from "./graph.js";
import { windowGradient } from "./next-token.js";
import { serveOrdered } from "./ordered-parallel.js";
import type { PretrainWorkerInit } from "./pretrain-parallel.js";

await serveOrdered((init: PretrainWorkerInit, kernels) => {
  const { params, weights } = trainableWeights(init.model);
  const stream = new Int32Array(init.stream),
    pool = new BufferPool();
  return {
    params,
    run(start: number, batch) {
      const tape = new Tape(kernels, pool);
      const loss = windowGradient(tape, init.model.config, weights, stream, start, init.context, batch);
      tape.release();
      return [loss];
    },
  };
});
