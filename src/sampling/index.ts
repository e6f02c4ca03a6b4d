export { pick, binOf, argmax, isValidU, assertValidU } from "./pick.js";
export { NonFiniteLogitsError, softmaxF32, tokenProbability } from "./softmax.js";
export {
  samplingDistribution,
  applyTemperature,
  validateSamplingSettings,
  type SamplingSettings,
} from "./processors.js";
export { sampleToken, needsU } from "./sampler.js";
export { XorShiftAux, ArrayAux, readAuxFile, type AuxSource } from "./aux.js";
export { drawU, betaSample } from "./u-in-bin.js";
export { UStream } from "./ustream.js";
export { uFromU32 } from "./aux.js";
