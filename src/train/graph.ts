import { headSize, kvDim, type ModelConfig } from "../model/config.js";
import { LINEAR_NAMES, type Checkpoint, type LayerWeights, type LinearName } from "../model/weights.js";
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
 * of every row (all rows of a training graph are slots). A student's extra
 * blocks (runExtraBlocks) run between the layers and the head.
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

/** Keys and values per layer [length, kvDim] that the rows see before their own (positions 0..length-1). */
export interface ConstantContext {
  keys: Float32Array[];
  values: Float32Array[];
  length: number;
  /**
   * The context rows' final hidden states [length, dim] (the residual stream
   * after the last layer, before the final norm): what a student's extra
   * blocks project their context keys and values from. Needed only then.
   */
  hidden?: Float32Array;
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
 * A block's weights as Params sharing its arrays, named `${prefix}.rms_att`,
 * `${prefix}.rms_ffn`, `${prefix}.wq`, ... (the norm weights without weight
 * decay), pushed onto `params`; returns their graph tensors.
 */
export function layerParams(params: Param[], c: ModelConfig, l: LayerWeights, prefix: string): LayerTensors {
  const p = (name: string, data: Float32Array, shape: number[], decay: boolean) => {
    const param = makeParam(`${prefix}.${name}`, shape, data, decay);
    params.push(param);
    return Tensor.param(param);
  };
  return {
    rmsAtt: p("rms_att", l.rmsAtt, [c.dim], false),
    rmsFfn: p("rms_ffn", l.rmsFfn, [c.dim], false),
    ...(Object.fromEntries(LINEAR_NAMES.map((n) => [n, p(n, l[n], shapeOf(c, n), true)])) as Record<LinearName, Tensor>),
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
  const layers = w.layers.map((l, i) => layerParams(params, c, l, `layers.${i}`));
  const rmsFinal = p("rms_final", w.rmsFinal, [c.dim], false);
  const wcls = c.sharedClassifier ? tokenEmbedding : p("classifier", w.wcls, [c.vocabSize, c.dim], true);
  return { params, weights: { tokenEmbedding, layers, rmsFinal, wcls } };
}

/** x W^T, plus s (x A^T) B^T with a LoRA adapter (one fused op, the same bits as the separate ones). */
function linearMaybeLora(tape: Tape, x: Tensor, w: Tensor, lora: { A: Tensor; B: Tensor } | undefined, s: number): Tensor {
  return lora ? linearLora(tape, x, w, lora.A, lora.B, s) : linear(tape, x, w);
}

/** Where the rows sit and which keys each sees. */
type RowLayout = Pick<RowsInput, "positions" | "visible">;

/** The keys and values [n, kvDim] a block's rows see before their own. */
interface BlockContext {
  keys: Tensor;
  values: Tensor;
}

/**
 * One Llama block over the rows x [R, dim]: RMSNorm, q/k/v, RoPE at each
 * row's position, masked GQA attention over [context keys | the rows' own
 * keys], wo, residual; RMSNorm, SwiGLU, residual. `lin` applies one of the
 * block's linear layers (with or without LoRA).
 */
function block(tape: Tape, c: ModelConfig, lw: LayerTensors, x: Tensor, rows: RowLayout, context: BlockContext | undefined, lin: (h: Tensor, n: LinearName) => Tensor): Tensor {
  const hs = headSize(c);
  const h = rmsnorm(tape, x, lw.rmsAtt, c.normEps);
  const q = rope(tape, lin(h, "wq"), rows.positions, c.nHeads, hs, c.ropeTheta);
  const k = rope(tape, lin(h, "wk"), rows.positions, c.nKvHeads, hs, c.ropeTheta);
  const v = lin(h, "wv");
  const keys = context ? concatRows(tape, context.keys, k) : k;
  const values = context ? concatRows(tape, context.values, v) : v;
  const att = attention(tape, q, keys, values, rows.visible, c.nHeads, c.nKvHeads, hs);
  const mid = add(tape, x, lin(att, "wo"));
  const h2 = rmsnorm(tape, mid, lw.rmsFfn, c.normEps);
  return add(tape, mid, lin(swiglu(tape, lin(h2, "w1"), lin(h2, "w3")), "w2"));
}

/** The rows' hidden states [R, dim] after the model's layers (the residual stream before the final norm). */
export function layerStack(tape: Tape, c: ModelConfig, w: GraphWeights, input: RowsInput, lora?: LoraTensors): Tensor {
  const kv = kvDim(c),
    R = input.positions.length,
    ctx = input.context;
  if (input.x.rows !== R || input.x.cols !== c.dim) throw new RangeError(`forwardRows: x is [${input.x.shape}], expected [${R}, ${c.dim}]`);
  let x = input.x;
  for (let l = 0; l < c.nLayers; l++) {
    const lw = w.layers[l],
      ll = lora?.layers[l],
      s = lora?.scale ?? 0;
    const constant = (a: Float32Array) => Tensor.constant(a.subarray(0, ctx!.length * kv), [ctx!.length, kv]);
    const context = ctx ? { keys: constant(ctx.keys[l]), values: constant(ctx.values[l]) } : undefined;
    x = block(tape, c, lw, x, input, context, (h, n) => linearMaybeLora(tape, h, lw[n], ll?.[n], s));
  }
  return x;
}

/** Logits [R, vocab] of hidden states [R, dim]: the final norm, then the classifier. */
export function head(tape: Tape, c: ModelConfig, w: GraphWeights, x: Tensor): Tensor {
  return linear(tape, rmsnorm(tape, x, w.rmsFinal, c.normEps), w.wcls);
}

/** Logits [R, vocab] of the rows. */
export function forwardRows(tape: Tape, c: ModelConfig, w: GraphWeights, input: RowsInput, lora?: LoraTensors): Tensor {
  return head(tape, c, w, layerStack(tape, c, w, input, lora));
}

/**
 * A student's extra blocks (spec/ptp.md 2.4) over the rows' hidden states
 * x [R, dim] after the teacher's layers; returns the new hidden states.
 * The context rows run none of the blocks: block e sees their keys and
 * values projected from their final hidden states `contextHidden` [C, dim]
 * (positions 0..C-1, constants) with its own weights,
 *   K = RoPE(rmsnorm(h, rmsAtt_e) Wk_e^T),  V = rmsnorm(h, rmsAtt_e) Wv_e^T,
 * computed in the graph, so rmsAtt_e, Wk_e and Wv_e learn from the context
 * side as well as the rows'. The rows see the same key ranges as in the
 * teacher's layers.
 */
export function runExtraBlocks(tape: Tape, c: ModelConfig, blocks: readonly LayerTensors[], x: Tensor, rows: RowLayout, contextHidden: Tensor): Tensor {
  const hs = headSize(c),
    positions = Int32Array.from({ length: contextHidden.rows }, (_, i) => i);
  for (const b of blocks) {
    const lin = (h: Tensor, n: LinearName) => linear(tape, h, b[n]);
    const h = rmsnorm(tape, contextHidden, b.rmsAtt, c.normEps);
    const context = { keys: rope(tape, lin(h, "wk"), positions, c.nKvHeads, hs, c.ropeTheta), values: lin(h, "wv") };
    x = block(tape, c, b, x, rows, context, lin);
  }
  return x;
}
