/**
 * A worker thread of data-parallel distillation (data-parallel.ts): holds
 * its own teacher and proposer; each job is one sequence
 * (`SequenceGradient`).
 */
import { createBackend } from "../backends/registry.js";
import { Transformer } from "../model/transformer.js";
import type { DistillWorkerInit } from "./data-parallel.js";
import { SequenceGradient, type SequenceJob } from "./distill-step.js";
import { serveOrdered } from "./ordered-parallel.js";

await serveOrdered(async (init: DistillWorkerInit, kernels) => {
  const backend = await createBackend(init.backend, { threads: 1 });
  const teacher = new Transformer(backend, init.teacher);
  const gradient = new SequenceGradient(init.teacher, teacher, init.proposer, init.settings, kernels);
  return {
    params: gradient.params,
    run(job: SequenceJob) {
      const f = gradient.run(job);
      return [f.loss, f.correct, f.windows, f.slots];
    },
  };
});
