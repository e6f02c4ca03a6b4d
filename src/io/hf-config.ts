/**
 * The config.json of a Hugging Face Llama checkpoint, mapped onto our
 * ModelConfig and back.
 *
 * Accepted: `model_type` "llama" (or absent) with `architectures`
 * ["LlamaForCausalLM"] (or absent). Mapped fields: hidden_size,
 * intermediate_size, num_hidden_layers, num_attention_heads,
 * num_key_value_heads (default: num_attention_heads), vocab_size,
 * max_position_embeddings (default 2048), rms_norm_eps (default 1e-6),
 * rope_theta (default 10000), tie_word_embeddings (default false). Anything
 * that changes the computation and has no counterpart here (rope_scaling,
 * attention or MLP biases, another activation, a head_dim other than
 * hidden_size / num_attention_heads, quantization, a BOS id other than 1)
 * is refused by name. Token ids (bos_token_id, eos_token_id: an id or, as
 * transformers allows for EOS, a list of ids) must lie in the vocabulary.
 */
import { boundedConfigProblems, type ModelConfig } from "../model/config.js";
import { FileFormatError, quote } from "./errors.js";
import { isPlainObject } from "../util/options.js";

/** The BOS id the decoders stop at (src/io/tokenizer.ts BOS); HF models must agree. */
const BOS_ID = 1;
const EOS_ID = 2;

/**
 * Maps a parsed config.json onto a ModelConfig. `name` (the config path)
 * starts every error message.
 */
export function modelConfigFromHf(json: unknown, name: string): ModelConfig {
  const fail = (problem: string): never => {
    throw new FileFormatError(name, problem);
  };
  if (!isPlainObject(json)) return fail(`expected a JSON object (a Hugging Face config.json), found ${json === null ? "null" : Array.isArray(json) ? "an array" : typeof json}`);
  const j = json;
  const modelType = j.model_type;
  if (modelType !== undefined && modelType !== "llama") {
    fail(`model_type ${quote(modelType)} is not supported (expected "llama": a LlamaForCausalLM checkpoint)`);
  }
  const arch = j.architectures;
  if (arch !== undefined && arch !== null) {
    if (!Array.isArray(arch) || !arch.every((a) => a === "LlamaForCausalLM")) {
      fail(`architectures ${quote(arch)} is not supported (expected ["LlamaForCausalLM"])`);
    }
  }
  const int = (key: string, fallback?: number): number => {
    const v = j[key] ?? fallback;
    if (v === undefined) return fail(`missing "${key}" (a positive integer)`);
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) return fail(`"${key}" must be a positive integer, found ${quote(v)}`);
    return v;
  };
  const positive = (key: string, fallback: unknown): number => {
    const v = j[key] ?? fallback;
    if (typeof v !== "number" || !(v > 0) || !Number.isFinite(v)) return fail(`"${key}" must be a positive number, found ${quote(v)}`);
    return v;
  };
  const refuseUnless = (key: string, ok: (v: unknown) => boolean, why: string): void => {
    if (key in j && !ok(j[key])) fail(`"${key}": ${quote(j[key])} is not supported (${why})`);
  };
  const plainRope = (v: unknown): boolean => v === null || (isPlainObject(v) && (v.rope_type ?? v.type) === "default" && Object.keys(v).every((k) => k === "rope_type" || k === "type"));
  refuseUnless("rope_scaling", plainRope, 'only plain RoPE is implemented; expected null or {"rope_type": "default"}');
  refuseUnless("attention_bias", (v) => v === false, "the engine has no attention biases; expected false");
  refuseUnless("mlp_bias", (v) => v === false, "the engine has no MLP biases; expected false");
  refuseUnless("hidden_act", (v) => v === "silu", 'the engine uses SwiGLU; expected "silu"');
  refuseUnless("quantization_config", (v) => v === null, "quantized weights are not supported; expected F32, F16 or BF16 tensors");
  refuseUnless("sliding_window", (v) => v === null, "sliding-window attention is not implemented");
  refuseUnless("partial_rotary_factor", (v) => v === 1 || v === null, "RoPE turns every dimension of a head; expected 1");
  refuseUnless("pretraining_tp", (v) => v === 1 || v === null, "the engine computes each linear layer whole, as HF does with 1; expected 1");
  refuseUnless("bos_token_id", (v) => v === BOS_ID || v === null, `the decoders use BOS id ${BOS_ID}`);
  // transformers >= 5 writes the RoPE settings as "rope_parameters" ({rope_type, rope_theta, ...}) and no top-level
  // rope_theta / rope_scaling: read its theta, refuse anything but plain RoPE, as for rope_scaling.
  const rp = j.rope_parameters;
  let thetaDefault: unknown = 10000;
  if (rp !== undefined && rp !== null) {
    const plain = isPlainObject(rp) && (rp.rope_type ?? rp.type ?? "default") === "default" && Object.keys(rp).every((k) => k === "rope_type" || k === "type" || k === "rope_theta" || (k === "partial_rotary_factor" && rp[k] === 1));
    if (!plain) fail(`"rope_parameters": ${quote(rp)} is not supported (only plain RoPE is implemented; expected {"rope_type": "default", "rope_theta": THETA})`);
    const inner = (rp as Record<string, unknown>).rope_theta;
    if (inner !== undefined && inner !== null) {
      if (j.rope_theta !== undefined && j.rope_theta !== null && j.rope_theta !== inner) fail(`"rope_theta" ${quote(j.rope_theta)} and "rope_parameters.rope_theta" ${quote(inner)} disagree`);
      thetaDefault = inner;
    }
  }
  const tie = j.tie_word_embeddings ?? false;
  if (typeof tie !== "boolean") fail(`"tie_word_embeddings" must be true or false, found ${quote(tie)}`);

  const dim = int("hidden_size");
  const nHeads = int("num_attention_heads");
  const config: ModelConfig = {
    dim,
    hiddenDim: int("intermediate_size"),
    nLayers: int("num_hidden_layers"),
    nHeads,
    nKvHeads: int("num_key_value_heads", nHeads),
    vocabSize: int("vocab_size"),
    seqLen: int("max_position_embeddings", 2048),
    sharedClassifier: tie as boolean,
    normEps: positive("rms_norm_eps", 1e-6),
    ropeTheta: positive("rope_theta", thetaDefault),
  };
  if ("head_dim" in j && j.head_dim !== null && j.head_dim !== dim / nHeads) {
    fail(`"head_dim": ${quote(j.head_dim)} is not supported (the engine needs hidden_size / num_attention_heads = ${dim / nHeads})`);
  }
  const problems = boundedConfigProblems(config);
  if (problems.length > 0) fail(`invalid Llama config: ${problems.join("; ")}`);
  // The decoders stop at BOS and use no EOS id, but an id outside the model's own vocabulary means a config
  // that is corrupt or another model's. transformers takes an id, a list of ids (EOS) or null.
  const isId = (v: unknown): boolean => typeof v === "number" && Number.isSafeInteger(v) && v >= 0 && v < config.vocabSize;
  for (const [key, list] of [
    ["bos_token_id", false],
    ["eos_token_id", true],
  ] as const) {
    const v = j[key];
    if (v === undefined || v === null || isId(v) || (list && Array.isArray(v) && v.every(isId))) continue;
    fail(`"${key}" must be null or a token id${list ? " or a list of token ids" : ""} in [0, vocab_size = ${config.vocabSize}), found ${quote(v)}`);
  }
  return config;
}

/** The config.json we write for a ModelConfig (every mapped field explicit). */
export function modelConfigToHf(c: ModelConfig): Record<string, unknown> {
  // A config.json of NaN or undefined fields (JSON: null or none) was written from a bad config.
  const problems = boundedConfigProblems(c);
  if (problems.length > 0) throw new (isPlainObject(c) ? RangeError : TypeError)(`modelConfigToHf: ${problems.join("; ")}`);
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: c.dim,
    intermediate_size: c.hiddenDim,
    num_hidden_layers: c.nLayers,
    num_attention_heads: c.nHeads,
    num_key_value_heads: c.nKvHeads,
    head_dim: c.dim / c.nHeads,
    vocab_size: c.vocabSize,
    max_position_embeddings: c.seqLen,
    rms_norm_eps: c.normEps,
    rope_theta: c.ropeTheta,
    rope_scaling: null,
    tie_word_embeddings: c.sharedClassifier,
    hidden_act: "silu",
    attention_bias: false,
    mlp_bias: false,
    // A vocabulary too small to hold them (what modelConfigFromHf would refuse): none.
    bos_token_id: BOS_ID < c.vocabSize ? BOS_ID : null,
    eos_token_id: EOS_ID < c.vocabSize ? EOS_ID : null,
    torch_dtype: "float32",
  };
}
