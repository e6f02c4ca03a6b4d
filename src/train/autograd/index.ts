/** Reverse-mode autodiff over float32 tensors: the tape and the ops the model uses. */
export { Tape, Tensor } from "./tensor.js";
export { BufferPool } from "./buffers.js";
export { jsKernels, trainKernels, useTrainKernels, type TrainKernels } from "./kernels.js";
export { trainKernelsFor, wasmTrainKernels } from "./wasm-kernels.js";
export { linear } from "./linear.js";
export { add, addBias, concatRows, replaceRows, scale, sliceRows, swiglu } from "./elementwise.js";
export { rmsnorm } from "./rmsnorm.js";
export { rope } from "./rope.js";
export { attention, type KeyRanges } from "./attention.js";
export { addEmbeddingRows, anchorEmbedding, embedding, featureEmbedding } from "./embedding.js";
export { crossEntropy, klDivergence } from "./losses.js";
export { linearLora } from "./linear.js";
