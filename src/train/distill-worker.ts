/**
 * A worker thread of data-parallel distillation (data-parallel.ts): holds
 * its own teacher and proposer, and for each message of jobs sets the
 * proposer's parameters from the shared buffer, computes every job's
 * gradient from zero into the job's slot, and flags itself ready again.
 */
import { parentPort, workerData } from "node:worker_threads";
import { createBackend } from "../backends/registry.js";
import { Transformer } from "../model/transformer.js";
import { jsKernels, wasmTrainKernels } from "./autograd/index.js";
import { ERROR_BYTES, FIGURES_PER_JOB, WorkerState, type WorkerInit } from "./data-parallel.js";
import { packParams, paramCount, SequenceGradient, unpackParams, type SequenceJob } from "./distill-step.js";

const init = workerData as WorkerInit;
const control = new Int32Array(init.control);

function fail(err: unknown): void {
  const text = new TextEncoder().encode(err instanceof Error ? err.message : String(err)).subarray(0, ERROR_BYTES - 1);
  const bytes = new Uint8Array(init.error);
  bytes.fill(0);
  bytes.set(text);
  Atomics.store(control, init.index, WorkerState.Failed);
  Atomics.notify(control, init.index);
}

try {
  const backend = await createBackend(init.backend, { threads: 1 });

  const teacher = new Transformer(backend, init.teacher);
  const gradient = new SequenceGradient(init.teacher, teacher, init.proposer, init.settings, init.kernels === "wasm" ? wasmTrainKernels() : jsKernels);
  const params = gradient.params,
    P = paramCount(params);
  const shared = { params: new Float32Array(init.params), grads: new Float32Array(init.grads), figures: new Float64Array(init.figures) };
  parentPort!.on("message", (jobs: (SequenceJob & { slot: number })[]) => {
    try {
      unpackParams(params, "data", shared.params);
      for (const job of jobs) {
        for (const p of params) p.grad.fill(0);
        const f = gradient.run(job);
        packParams(params, "grad", shared.grads.subarray(job.slot * P, (job.slot + 1) * P));
        shared.figures.set([f.loss, f.correct, f.windows, f.slots], job.slot * FIGURES_PER_JOB);
      }
      Atomics.store(control, init.index, WorkerState.Ready);
      Atomics.notify(control, init.index);
    } catch (err) {
      fail(err);
    }
  });
  Atomics.store(control, init.index, WorkerState.Ready);
  Atomics.notify(control, init.index);
} catch (err) {
  fail(err);
}
