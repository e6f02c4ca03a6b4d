import { headSize, kvDim, type ModelConfig } from "../model/config.js";
import { LINEAR_NAMES, type Checkpoint, type LinearName } from "../model/weights.js";
import { makeParam, type Param } from "./param.js";
import { add, attention, concatRows, linear, linearLora, rmsnorm, rope, swiglu, Tensor, type KeyRanges, type Tape } from "./autograd/index.js";

/**
 * The Llama forward pass (src/model/transformer.ts) as a differentiable
 * graph over a set of rows, for training. The same math as inference:
 * RMSNorm, q/k/v, RoPE at each row's position, masked GQA attention,
 * SwiGLU, residuals, final norm, classifier.
 *
 * Rows may attend to a constant context (keys and values computed earlier,
 * e.g. the teacher's KV cache of the sequence) as well as to each other, and
 * an optional LoRA adapter adds (alpha / r) (x A^T) B^T to every linear layer
 * of every row (all rows of a training graph are slots).
 */

export interface LayerTensors {
  rmsAtt: Tensor;
  wq: Tensor;
  wk: Tensor;
  wv: Tensor;
  wo: Tensor;
  rmsFfn: Tensor;
  w1: Tensor;
  w2: Tensor;
  w3: Tensor;
}

export interface GraphWeights {
  tokenEmbedding: Tensor;
  layers: LayerTensors[];
  rmsFinal: Tensor;
  wcls: Tensor;
}

export interface LoraTensors {
  /** Per layer and linear layer: A [r, in], B [out, r]. */
  layers: Record<LinearName, { A: Tensor; B: Tensor }>[];
  /** alpha / r. */
  scale: number;
}

/** Keys and values per layer [length, kvDim] that the rows see before their own. */
export interface ConstantContext {
  keys: Float32Array[];
  values: Float32Array[];
  length: number;
}

export interface RowsInput {
  /** Input vectors [R, dim]. */
  x: Tensor;
  positions: Int32Array;
  /** Per row, ranges into [context keys | the rows' own keys]. */
  visible: KeyRanges;
  context?: ConstantContext;
}

const shapeOf = (c: ModelConfig, name: LinearName): [number, number] => {
  const kv = kvDim(c);
  return name === "wk" || name === "wv" ? [kv, c.dim] : name === "w1" || name === "w3" ? [c.hiddenDim, c.dim] : name === "w2" ? [c.dim, c.hiddenDim] : [c.dim, c.dim];
};

/** Frozen weights: every tensor a constant over the checkpoint's arrays. */
export function constantWeights(ckpt: Checkpoint): GraphWeights {
  const c = ckpt.config,
    w = ckpt.weights;
  const k = (data: Float32Array, shape: number[]) => Tensor.constant(data, shape);
  return {
    tokenEmbedding: k(w.tokenEmbedding, [c.vocabSize, c.dim]),
    layers: w.layers.map((l) => ({
      rmsAtt: k(l.rmsAtt, [c.dim]),
      rmsFfn: k(l.rmsFfn, [c.dim]),
      ...(Object.fromEntries(LINEAR_NAMES.map((n) => [n, k(l[n], shapeOf(c, n))])) as Record<LinearName, Tensor>),
    })),
    rmsFinal: k(w.rmsFinal, [c.dim]),
    wcls: k(w.wcls, [c.vocabSize, c.dim]),
  };
}

/**
 * Every weight of a checkpoint as a trainable Param sharing its arrays (for
 * training from scratch), with the graph tensors over them. A shared
 * classifier is one Param used twice.
 */
export function trainableWeights(ckpt: Checkpoint): { params: Param[]; weights: GraphWeights } {
  const c = ckpt.config,
    w = ckpt.weights,
    params: Param[] = [];
  const p = (name: string, data: Float32Array, shape: number[], decay: boolean) => {
    const param = makeParam(name, shape, data, decay);
    params.push(param);
    return Tensor.param(param);
  };
  const tokenEmbedding = p("token_embedding", w.tokenEmbedding, [c.vocabSize, c.dim], true);
  const layers = w.layers.map((l, i) => ({
    rmsAtt: p(`layers.${i}.rms_att`, l.rmsAtt, [c.dim], false),
    rmsFfn: p(`layers.${i}.rms_ffn`, l.rmsFfn, [c.dim], false),
    ...(Object.fromEntries(LINEAR_NAMES.map((n) => [n, p(`layers.${i}.${n}`, l[n], shapeOf(c, n), true)])) as Record<LinearName, Tensor>),
  }));
  const rmsFinal = p("rms_final", w.rmsFinal, [c.dim], false);
  const wcls = c.sharedClassifier ? tokenEmbedding : p("classifier", w.wcls, [c.vocabSize, c.dim], true);
  return { params, weights: { tokenEmbedding, layers, rmsFinal, wcls } };
}

/** x W^T, plus s (x A^T) B^T with a LoRA adapter (one fused op, the same bits as the separate ones). */
function linearMaybeLora(tape: Tape, x: Tensor, w: Tensor, lora: { A: Tensor; B: Tensor } | undefined, s: number): Tensor {
  return lora ? linearLora(tape, x, w, lora.A, lora.B, s) : linear(tape, x, w);
}

/** Logits [R, vocab] of the rows. */
export function forwardRows(tape: Tape, c: ModelConfig, w: GraphWeights, input: RowsInput, lora?: LoraTensors): Tensor {
  const hs = headSize(c),
    kv = kvDim(c),
    R = input.positions.length;
  if (input.x.rows !== R || input.x.cols !== c.dim) throw new RangeError(`forwardRows: x is [${input.x.shape}], expected [${R}, ${c.dim}]`);
  let x = input.x;
  for (let l = 0; l < c.nLayers; l++) {
    const lw = w.layers[l],
      ll = lora?.layers[l],
      s = lora?.scale ?? 0;
    const lin = (h: Tensor, n: LinearName) => linearMaybeLora(tape, h, lw[n], ll?.[n], s);
    const h = rmsnorm(tape, x, lw.rmsAtt, c.normEps);
    const q = rope(tape, lin(h, "wq"), input.positions, c.nHeads, hs, c.ropeTheta);
    const k = rope(tape, lin(h, "wk"), input.positions, c.nKvHeads, hs, c.ropeTheta);
    const v = lin(h, "wv");
    const ctx = input.context;
    const keys = ctx ? concatRows(tape, Tensor.constant(ctx.keys[l].subarray(0, ctx.length * kv), [ctx.length, kv]), k) : k;
    const values = ctx ? concatRows(tape, Tensor.constant(ctx.values[l].subarray(0, ctx.length * kv), [ctx.length, kv]), v) : v;
    const att = attention(tape, q, keys, values, input.visible, c.nHeads, c.nKvHeads, hs);
    x = add(tape, x, lin(att, "wo"));
    const h2 = rmsnorm(tape, x, lw.rmsFfn, c.normEps);
    x = add(tape, x, lin(swiglu(tape, lin(h2, "w1"), lin(h2, "w3")), "w2"));
  }
  return linear(tape, rmsnorm(tape, x, w.rmsFinal, c.normEps), w.wcls);
}
