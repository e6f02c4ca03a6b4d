import { WEIGHT_TYPES, type Backend, type Buffer, type LayerShape, type WeightType } from "../backends/backend.js";
import { argmax, assertValidU } from "../sampling/pick.js";
import { checkFloat32Row, describeValue } from "../util/checks.js";
import { plainSampling, validateSamplingSettings, type SamplingSettings } from "../sampling/processors.js";
import { sampleToken } from "../sampling/sampler.js";
import { NonFiniteLogitsError, tokenProbability } from "../sampling/softmax.js";
import { attention } from "./attention.js";
import { blockRows, type Block } from "./block.js";
import { headSize, kvDim, type ModelConfig } from "./config.js";
import { checkDeviceCheckpoint, freeWeights, isDeviceCheckpoint, uploadWeights, type DeviceCheckpoint, type DeviceWeights } from "./device-weights.js";
import { feedForward } from "./feedforward.js";
import { KVCache } from "./kv-cache.js";
import type { RowAdapter } from "./linear.js";
import { RunState } from "./run-state.js";
import { checkOptionKeys } from "../util/options.js";
import { checkCheckpoint, type Checkpoint, type LayerWeights } from "./weights.js";

/** How a Transformer runs on its backend. */
export interface TransformerOptions {
  /**
   * The type the classifier is read in (Backend.setWeightType), whatever the
   * backend's own: for a model whose logits only propose (a draft head, a
   * draft model), where the largest matrix costs speed and not exactness.
   * Default: the backend's.
   */
  classifierWeights?: WeightType;
}

/** A weight of the model: model-wide, or one of each block's (LayerWeights). */
export type WeightName = "tokenEmbedding" | "rmsFinal" | "wcls" | keyof LayerWeights;

/** The keys of TransformerOptions; another is a typo that would be ignored. */
export const TRANSFORMER_OPTIONS: readonly (keyof TransformerOptions)[] = ["classifierWeights"];

/**
 * A Llama-architecture decoder (RMSNorm, RoPE, GQA, SwiGLU) on a backend.
 *
 * `forward` takes a BLOCK of rows and returns the logits of every row. Each
 * row's logits are bit-identical to what a one-row call would give with the
 * same visible keys, because every backend op is batch-invariant; this is
 * what lets verification score many drafts in one call and still reproduce
 * token-by-token sampling exactly.
 */
export class Transformer {
  readonly config: ModelConfig;
  private readonly weights: DeviceWeights;
  private readonly state: RunState;
  private isDisposed = false;
  /** True once dispose() ran: every later call is refused, naming the model as disposed. */
  get disposed(): boolean {
    return this.isDisposed;
  }
  /** The host copies of the tables below: the checkpoint's arrays, or (weights given on the backend) downloaded on first use. */
  private readonly host: { tokenEmbedding?: Float32Array; rmsFinal?: Float32Array; wcls?: Float32Array } = {};
  /** The token embedding [vocab, dim] on the host (the checkpoint's array, not a copy): PTP's hybrid slot inputs read it. */
  get tokenEmbeddingTable(): Float32Array {
    return (this.host.tokenEmbedding ??= this.hostTable(this.weights.tokenEmbedding));
  }
  /**
   * One token's row of the embedding table [dim] (a hybrid slot input adds
   * it): a view of the host table where the model has one (built from a
   * Checkpoint, or tokenEmbeddingTable read before), else that row alone
   * downloaded, so that a model loadModel made never copies the whole table
   * for it.
   */
  tokenEmbeddingRow(token: number): Float32Array {
    this.alive("tokenEmbeddingRow");
    const { vocabSize, dim } = this.config;
    if (!(Number.isInteger(token) && token >= 0 && token < vocabSize)) throw new RangeError(`tokenEmbeddingRow: token ${describeValue(token)} is outside the vocabulary (0..${vocabSize - 1})`);
    const table = this.host.tokenEmbedding;
    return table ? table.subarray(token * dim, (token + 1) * dim) : this.backend.download(this.weights.tokenEmbedding, token * dim, dim);
  }

  /** The final norm [dim] and classifier [vocab, dim] on the host (as tokenEmbeddingTable): a PTP draft head's own start from them. */
  get finalNormTable(): Float32Array {
    return (this.host.rmsFinal ??= this.hostTable(this.weights.rmsFinal));
  }
  get classifierTable(): Float32Array {
    return (this.host.wcls ??= this.weights.wcls === this.weights.tokenEmbedding ? this.tokenEmbeddingTable : this.hostTable(this.weights.wcls));
  }

  constructor(
    readonly backend: Backend,
    /** The weights on the host (uploaded here), or already in this backend's buffers (loadModel), which the model then owns. */
    checkpoint: Checkpoint | DeviceCheckpoint,
    options: TransformerOptions = {},
  ) {
    if (backend === null || typeof backend !== "object" || typeof (backend as { alloc?: unknown }).alloc !== "function") {
      throw new TypeError(`Transformer: backend must be a Backend (createBackend("wasm"), new JsBackend()), got ${describeValue(backend)}`);
    }
    if (backend.disposed) throw new Error("Transformer: the backend was disposed (backend.dispose()); create a new one with createBackend");
    const device = isDeviceCheckpoint(checkpoint) ? checkDeviceCheckpoint(checkpoint) : undefined;
    if (!device) checkCheckpoint(checkpoint, "Transformer");
    const { classifierWeights } = checkOptionKeys(options, "Transformer", TRANSFORMER_OPTIONS) as TransformerOptions;
    if (classifierWeights !== undefined && !WEIGHT_TYPES.includes(classifierWeights)) {
      throw new TypeError(`Transformer: options.classifierWeights must be one of ${WEIGHT_TYPES.join(", ")}, got ${describeValue(classifierWeights)}`);
    }
    if (classifierWeights !== undefined && classifierWeights !== "f32" && !backend.setWeightType) {
      throw new Error(`Transformer: classifier weights ${classifierWeights}: the ${backend.name} backend reads every matmul weight in f32 (use the wasm backend)`);
    }
    this.config = checkpoint.config;
    if (device) this.weights = device.device;
    else {
      const w = (checkpoint as Checkpoint).weights;
      this.weights = uploadWeights(backend, w);
      this.host.tokenEmbedding = w.tokenEmbedding;
      this.host.rmsFinal = w.rmsFinal;
      this.host.wcls = w.wcls;
    }
    if (classifierWeights !== undefined) backend.setWeightType?.(this.weights.wcls, classifierWeights);
    this.state = new RunState(backend, this.config);
    const c = this.config;
    this.layerShape = { dim: c.dim, hiddenDim: c.hiddenDim, nHeads: c.nHeads, nKvHeads: c.nKvHeads, headSize: headSize(c), ropeTheta: c.ropeTheta, normEps: c.normEps };
  }

  /**
   * Runs `use` on a weight's rows as floats on the host (`layer` for a
   * block's weight; the shared classifier is the embedding): a view of the
   * backend's memory where it has hostView (valid during the call only; do
   * not keep or write it), else a download. teacherChecksum reads a model's
   * weights this way.
   */
  withWeightRows<T>(name: WeightName, layer: number | undefined, use: (rows: Float32Array) => T): T {
    this.alive("withWeightRows");
    if (typeof use !== "function") throw new TypeError(`withWeightRows: use must be a function of the weight's rows, got ${describeValue(use)}`);
    const w = this.weights;
    let b: Buffer | undefined;
    if (name === "tokenEmbedding" || name === "rmsFinal" || name === "wcls") {
      if (layer === undefined) b = w[name];
    } else if (Number.isInteger(layer) && (layer as number) >= 0 && (layer as number) < this.config.nLayers && Object.hasOwn(w.layers[layer as number], name)) {
      b = w.layers[layer as number][name];
    }
    if (b === undefined) throw new RangeError(`withWeightRows: no weight ${describeValue(name)}${layer === undefined ? "" : ` in layer ${describeValue(layer)}`} (the model-wide tokenEmbedding, rmsFinal, wcls without a layer; rmsAtt, wq, wk, wv, wo, rmsFfn, w1, w2, w3 with one of 0..${this.config.nLayers - 1})`);
    return use(this.backend.hostView ? this.backend.hostView(b, "read") : this.backend.download(b));
  }

  /** A weight's rows downloaded to the host, once (weights given on the backend: loadModel). */
  private hostTable(b: Buffer): Float32Array {
    this.alive("host table");
    return this.backend.download(b);
  }

  /** The layers' sizes as Backend.decoderLayer takes them. */
  private readonly layerShape: LayerShape;

  /**
   * Who a KV cache belongs to (KVCache.belongsTo): this instance, whose
   * uploaded weights wrote its keys and values. A PTP student runs in its
   * teacher's calls (gated LoRA, extra blocks: adapters of this model), so
   * its cache is the teacher's too (PtpModel.newCache).
   */
  private readonly cacheOwner: object = Object.freeze({});

  /**
   * A new, empty KV cache for this model (capacity in rows, default seqLen;
   * `layers`: more than the model's for blocks run after them, a PTP
   * student's extra blocks).
   */
  newCache(capacity: number = this.config.seqLen, layers: number = this.config.nLayers): KVCache {
    this.alive("newCache");
    return new KVCache(this.backend, this.config, capacity, layers, this.cacheOwner);
  }

  /**
   * Run a block of M rows after the rows already in `cache`; append the
   * block's keys and values to the cache and return the logits [M, vocab].
   * An adapter (PTP's gated LoRA) may adjust the linear layers' output for
   * the rows it chooses; every other row runs the base weights exactly.
   */
  forward(block: Block, cache: KVCache, adapter?: RowAdapter): Float32Array {
    const M = this.run(block, cache, adapter);
    const logits = this.backend.download(this.state.logits, 0, M * this.config.vocabSize);
    this.lastLogits = logits;
    return logits;
  }

  /**
   * `forward` into the caller's array: the logits [M, vocab] are written to
   * the start of `out` (at least that long) and a view of them is returned,
   * valid until `out` is written again. A loop of calls allocates nothing
   * (a fresh array of a large vocabulary costs the host page faults).
   */
  forwardInto(out: Float32Array, block: Block, cache: KVCache, adapter?: RowAdapter): Float32Array {
    const rows = block?.positions?.length ?? 0,
      n = rows * this.config.vocabSize;
    // Checked before the call runs (it would append to the cache).
    if (!(out instanceof Float32Array) || out.length < n) throw new RangeError(`forwardInto: out must be a Float32Array of at least ${n} values (${rows} rows x vocab ${this.config.vocabSize})`);
    const M = this.run(block, cache, adapter);
    const logits = out.subarray(0, M * this.config.vocabSize);
    if (this.backend.downloadInto) this.backend.downloadInto(this.state.logits, logits, 0);
    else logits.set(this.backend.download(this.state.logits, 0, n));
    this.lastLogits = logits;
    return logits;
  }

  /**
   * The final hidden state [M, dim] of every row of the latest forward call
   * (the residual stream after the last layer, before the final norm): what
   * a PTP student's extra blocks read from context rows (spec/ptp.md 2.4).
   */
  lastHidden(): Float32Array {
    this.alive("lastHidden");
    if (this.lastRows === 0) throw new Error("lastHidden: no forward call has run on this model yet");
    this.hidden ??= this.backend.download(this.state.x, 0, this.lastRows * this.config.dim);
    return this.hidden;
  }

  /** lastHidden's download, until the next call. */
  private hidden?: Float32Array;

  /** Rows of the latest forward call. */
  private lastRows = 0;

  /** What the latest `forward` returned, while its logits are still in the run state (see pickRow). */
  private lastLogits?: Float32Array;

  /**
   * Pick(u, P) of one row of the latest `forward`'s logits (`row`: a
   * row-long view into the array it returned), computed where the logits
   * are, exactly as sampleToken gives it: for a backend with a `pick` op and
   * plain sampling (T > 0, no top-k or top-p). Undefined (pick on the host)
   * otherwise, or when `row` is not from the latest forward. Tokens in
   * `exclude` are ruled out (their logits read as -Infinity).
   */
  pickRow(row: Float32Array, settings: SamplingSettings, u: number, exclude?: readonly number[]): number | undefined {
    this.alive("pickRow");
    const last = this.lastLogits,
      V = this.config.vocabSize;
    // The same checks as the host path, before the device path can skip them.
    checkFloat32Row(row, "pickRow", "row");
    validateSamplingSettings(settings);
    if (settings.temperature > 0) assertValidU(u, "pickRow");
    // Every backend's checks, whether or not this one picks on the device.
    if (exclude !== undefined && !(Array.isArray(exclude) && exclude.every((t) => Number.isInteger(t) && t >= 0 && t < V)))
      throw new RangeError(`pickRow: exclude must be an array of token ids in [0, ${V}), got ${describeValue(exclude)}${Array.isArray(exclude) ? ` holding ${describeValue(exclude.find((t) => !(Number.isInteger(t) && t >= 0 && t < V)))}` : ""}`);
    if (!this.backend.pick || last === undefined || row.buffer !== last.buffer || row.length !== V || !plainSampling(settings, V)) return undefined;
    const offset = row.byteOffset - last.byteOffset;
    if (offset < 0 || offset % (4 * V) !== 0 || offset + 4 * V > last.byteLength) return undefined;
    const [t] = this.backend.pick(this.state.logits, offset / (4 * V), 1, V, settings.temperature, [u], exclude);
    return t >= 0 ? t : undefined;
  }

  /**
   * The probability of `token` under softmax(row / temperature), an
   * estimate for choices that cost only speed (Backend.tokenProbabilities;
   * tokenProbability on the host where the backend lacks it or `row` is not
   * a row of the latest `forward`). `row` must hold no NaN or +Infinity.
   */
  tokenProbability(row: Float32Array, token: number, temperature: number): number {
    this.alive("tokenProbability");
    checkFloat32Row(row, "tokenProbability", "row");
    const last = this.lastLogits,
      V = this.config.vocabSize;
    if (this.backend.tokenProbabilities && last !== undefined && row.buffer === last.buffer && row.length === V) {
      const offset = row.byteOffset - last.byteOffset;
      if (offset >= 0 && offset % (4 * V) === 0 && offset + 4 * V <= last.byteLength) return this.backend.tokenProbabilities(this.state.logits, offset / (4 * V), 1, V, temperature, [token])[0];
    }
    return tokenProbability(row, token, temperature);
  }

  /**
   * `forward`, but only the argmax of every row's logits (the greedy pick,
   * as `argmax` of sampling/pick.ts gives it): a backend with an argmax op
   * finds them where the logits are, without downloading them. A row whose
   * largest logit is not finite is a NonFiniteLogitsError (as sampleToken).
   */
  greedy(block: Block, cache: KVCache, adapter?: RowAdapter): Int32Array {
    const M = this.run(block, cache, adapter);
    const V = this.config.vocabSize;
    const picks = this.backend.argmax ? this.backend.argmax(this.state.logits, M, V) : undefined;
    const logits = picks ? undefined : this.backend.download(this.state.logits, 0, M * V);
    const out = picks ?? Int32Array.from({ length: M }, (_, m) => argmax(logits!.subarray(m * V, (m + 1) * V)));
    // A largest logit that is not finite (NaN rows, +Infinity, all -Infinity) is no pick: as sampleToken, an error.
    for (let m = 0; m < M; m++) {
      const v = logits ? logits[m * V + out[m]] : this.backend.download(this.state.logits, m * V + out[m], 1)[0];
      if (!Number.isFinite(v)) throw new NonFiniteLogitsError(out[m], v);
    }
    return out;
  }

  /**
   * `forward`, then the token sampled from the LAST row's logits with `u`:
   * Pick(u, P) under `settings` exactly as sampleToken (sampling/sampler.ts)
   * gives it. A backend with a `pick` op computes plain sampling (no top-k or
   * top-p) where the logits are; otherwise, or for a row it leaves to the
   * host (-1: the host path then throws its error), the row is downloaded.
   */
  sampleLast(block: Block, cache: KVCache, settings: SamplingSettings, u: number): number {
    validateSamplingSettings(settings);
    if (settings.temperature > 0) assertValidU(u, "sampleLast");
    const M = this.run(block, cache);
    const V = this.config.vocabSize;
    if (this.backend.pick && plainSampling(settings, V)) {
      const [t] = this.backend.pick(this.state.logits, M - 1, 1, V, settings.temperature, [u]);
      if (t >= 0) return t;
    }
    return sampleToken(this.backend.download(this.state.logits, (M - 1) * V, V), settings, u);
  }

  /** The forward pass of a block: leaves its logits [M, vocab] in the run state and returns M. */
  private run(block: Block, cache: KVCache, adapter?: RowAdapter): number {
    this.alive("forward");
    this.lastLogits = undefined; // the run state's logits are about to change
    this.hidden = undefined;
    const { backend, config, weights: w, state: s } = this;
    if (cache instanceof KVCache && cache.keys.length === 0) throw new TypeError("forward: the cache was freed (KVCache.free); make a new one with the model's newCache");
    if (!(cache instanceof KVCache) || cache.backend !== backend || cache.config.nLayers !== config.nLayers || cache.keys.length < config.nLayers || cache.width !== kvDim(config)) {
      throw new TypeError("forward: the cache must be a KVCache of this model (made by its newCache, on the same backend)");
    }
    if (!cache.belongsTo(this.cacheOwner)) {
      throw new TypeError("forward: the cache must be a KVCache of this model, but another model (same shape and backend) made it or ran on it: its keys and values would give wrong logits (make the cache with this model's newCache)");
    }
    const cached = cache.length;
    const M = blockRows(block, config, cached);
    cache.ensureRoom(M);
    const mask = s.prepare(block, cached, M);

    // Input rows: token embeddings, or the caller's vectors where the id is negative.
    const ids = block.tokens ? Int32Array.from(block.tokens) : new Int32Array(M).fill(-1);
    backend.upload(s.ids, ids);
    backend.embedding(s.x, w.tokenEmbedding, s.ids, M, config.dim);
    if (block.embeddings) {
      for (let m = 0; m < M; m++) {
        if (ids[m] < 0) backend.upload(s.x, block.embeddings.subarray(m * config.dim, (m + 1) * config.dim), m * config.dim);
      }
    }

    for (let l = 0; l < config.nLayers; l++) {
      const lw = w.layers[l];
      if (backend.decoderLayer && !adapter) {
        // The ops below, fused in one backend call (the same bits).
        backend.decoderLayer(s, lw, cache.keys[l], cache.values[l], cached, M, mask, this.layerShape);
        continue;
      }
      backend.rmsnorm(s.xb, s.x, lw.rmsAtt, M, config.dim, config.normEps);
      attention(backend, config, lw, l, s, cache, cached, mask, M, adapter);
      backend.add(s.x, s.xb2, M * config.dim);
      backend.rmsnorm(s.xb, s.x, lw.rmsFfn, M, config.dim, config.normEps);
      feedForward(backend, config, lw, l, s, M, adapter);
      backend.add(s.x, s.xb2, M * config.dim);
    }
    adapter?.afterLayers?.({ state: s, cache, cached, mask, M, block, logitsOf: (rows) => this.logitsOf(rows) });
    cache.commit(block.positions);

    this.lastRows = M;
    backend.rmsnorm(s.xb, s.x, w.rmsFinal, M, config.dim, config.normEps);
    backend.matmul(s.logits, s.xb, w.wcls, M, config.dim, config.vocabSize);
    return M;
  }

  /** The logits of some rows of the run state's residual stream, mid-call (LayerRun.logitsOf). */
  private logitsOf(rows: readonly number[]): Float32Array {
    const { backend, config, weights: w, state: s } = this,
      F = rows.length,
      dim = config.dim;
    if (F === 0) return new Float32Array(0);
    rows.forEach((m, i) => backend.copy(s.xb2, i * dim, s.x, m * dim, dim));
    backend.rmsnorm(s.xb, s.xb2, w.rmsFinal, F, dim, config.normEps);
    backend.matmul(s.logits, s.xb, w.wcls, F, dim, config.vocabSize);
    return backend.download(s.logits, 0, F * config.vocabSize);
  }

  /** Throws, naming `op`, once the model or its backend is disposed (its buffers freed: the backend would say only "buffer used after free"). */
  private alive(op: string): void {
    if (this.isDisposed) throw new Error(`Transformer.${op}: the model was disposed (dispose() freed its weights); make a new Transformer`);
    if (this.backend.disposed) throw new Error(`Transformer.${op}: the model's backend was disposed (backend.dispose()); make a new backend and model`);
  }

  /** Free the weights and activations held by the backend; later calls are refused, naming the model as disposed. */
  dispose(): void {
    if (this.isDisposed) return;
    this.isDisposed = true;
    this.state.release();
    freeWeights(this.backend, this.weights);
  }
}
