/**
 * A worker thread of data-parallel pretraining (pretrain-parallel.ts):
 * holds its own copy of the model, and for each message of windows sets
 * the model's weights from the shared buffer, then computes each window's
 * gradient and adds it into the step's at the window's turn.
 */
import { BufferPool, jsKernels, wasmTrainKernels } from "./autograd/index.js";
import { trainableWeights } from "./graph.js";
import { unpackParams } from "./param.js";
import { runWindows, type PretrainJobs, type PretrainWorkerInit } from "./pretrain-parallel.js";
import { serveJobs } from "./worker-group.js";

await serveJobs((init: PretrainWorkerInit) => {
  const { params, weights } = trainableWeights(init.model);
  const values = new Float32Array(init.params);
  const shared = { grads: new Float32Array(init.grads), turn: new Int32Array(init.turn), losses: new Float64Array(init.losses) };
  const o = { c: init.model.config, params, weights, kernels: init.kernels === "wasm" ? wasmTrainKernels() : jsKernels, pool: new BufferPool(), stream: new Int32Array(init.stream), T: init.context, ...shared };
  return (jobs: PretrainJobs) => {
    unpackParams(params, "data", values);
    runWindows(jobs, o);
  };
});
