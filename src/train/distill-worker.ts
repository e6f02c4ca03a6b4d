/**
 * A worker thread of data-parallel distillation (data-parallel.ts): holds
 * its own teacher and proposer, and for each message of jobs sets the
 * proposer's parameters from the shared buffer and computes every job's
 * gradient from zero into the job's slot.
 */
import { createBackend } from "../backends/registry.js";
import { Transformer } from "../model/transformer.js";
import { jsKernels, wasmTrainKernels } from "./autograd/index.js";
import { FIGURES_PER_JOB, type DistillWorkerInit } from "./data-parallel.js";
import { SequenceGradient, type SequenceJob } from "./distill-step.js";
import { packParams, paramCount, unpackParams } from "./param.js";
import { serveJobs } from "./worker-group.js";

await serveJobs(async (init: DistillWorkerInit) => {
  const backend = await createBackend(init.backend, { threads: 1 });
  const teacher = new Transformer(backend, init.teacher);
  const gradient = new SequenceGradient(init.teacher, teacher, init.proposer, init.settings, init.kernels === "wasm" ? wasmTrainKernels() : jsKernels);
  const params = gradient.params,
    P = paramCount(params);
  const shared = { params: new Float32Array(init.params), grads: new Float32Array(init.grads), figures: new Float64Array(init.figures) };
  return (jobs: (SequenceJob & { slot: number })[]) => {
    unpackParams(params, "data", shared.params);
    for (const job of jobs) {
      for (const p of params) p.grad.fill(0);
      const f = gradient.run(job);
      packParams(params, "grad", shared.grads.subarray(job.slot * P, (job.slot + 1) * P));
      shared.figures.set([f.loss, f.correct, f.windows, f.slots], job.slot * FIGURES_PER_JOB);
    }
  };
});
