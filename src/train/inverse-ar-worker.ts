/**
 * A worker thread of inverse-AR training (inverse-ar.ts): holds its own
 * base model (on a one-thread backend) and copy of the student; each job is
 * one text window (`textWindowGradient`).
 */
import { createBackend } from "../backends/registry.js";
import { Transformer } from "../model/transformer.js";
import { BufferPool } from "./autograd/index.js";
import { constantWeights } from "./graph.js";
import { textWindowGradient, type InverseArWorkerInit, type TextWindowJob } from "./inverse-ar.js";
import { serveOrdered } from "./ordered-parallel.js";
import { trainableStudent } from "./student-params.js";

await serveOrdered(async (init: InverseArWorkerInit, kernels) => {
  const base = new Transformer(await createBackend(init.backend, { threads: 1 }), init.base);
  const st = trainableStudent(init.student, init.base.config),
    weights = constantWeights(init.base),
    pool = new BufferPool();
  return {
    params: st.params,
    run: (job: TextWindowJob) => textWindowGradient(base, weights, st, job, init.settings, kernels, pool),
  };
});
