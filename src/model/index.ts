/** `ptp-ts/model`: the Llama-architecture engine and its config (see spec/model.md). */
export { Transformer, type TransformerOptions } from "./transformer.js";
export { KVCache } from "./kv-cache.js";
export { causalMask, type Block } from "./block.js";
export { SHAPES, MAX_VOCAB_SIZE, configProblems, headSize, kvDim, parameterCount, validateConfig, type ModelConfig } from "./config.js";
export { LINEAR_NAMES, linearShape, type Checkpoint, type LayerWeights, type LinearName, type ModelWeights } from "./weights.js";
export { INT_SHAPE_FIELDS, SHAPE_FIELDS, CONFIG_FIELDS, newModelConfig, type NewModelShape } from "./config.js";
export { randomCheckpoint, initModel } from "./init.js";
