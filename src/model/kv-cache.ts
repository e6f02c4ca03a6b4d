import type { Backend, Buffer } from "../backends/backend.js";
import { describeValue } from "../util/checks.js";
import { kvDim, validateConfig, type ModelConfig } from "./config.js";

/**
 * The key/value cache of a decoder: per layer, the rotated keys and the
 * values of every row the model has seen, in the order it saw them.
 *
 * Entries are rows, not positions: a row carries whatever position id it was
 * given, so a cache may hold non-consecutive positions or several sequences
 * (masks decide who sees what). `crop` drops rows from the end, `keep`
 * compacts to a chosen subset; both are what verification needs to discard
 * rejected drafts and auxiliary slots.
 */
export class KVCache {
  readonly keys: Buffer[];
  readonly values: Buffer[];
  /** Position id of every cached row (host copy, for masks and inspection). */
  readonly positions: Int32Array;
  private rows = 0;
  /** Values per cached row and layer (kvDim). */
  readonly width: number;
  /** Maximum number of rows the cache can hold. */
  readonly capacity: number;
  /** The model whose keys and values the cache holds (an opaque token; see `belongsTo`). */
  private owner: object | undefined;

  constructor(
    readonly backend: Backend,
    readonly config: ModelConfig,
    /** Maximum number of rows the cache can hold (default: the config's seqLen). */
    capacity?: number,
    /** Layers to hold: the model's, or more for blocks run after them (a PTP student's extra blocks); default the config's nLayers. */
    layers?: number,
    /**
     * The model the cache belongs to (Transformer.newCache passes its own
     * token). Without one, the first model that runs on the cache claims it.
     */
    owner?: object,
  ) {
    this.owner = owner;
    if (backend === null || typeof backend !== "object" || typeof (backend as { alloc?: unknown }).alloc !== "function") {
      throw new TypeError(`KVCache: backend must be a Backend (the model's: model.backend), got ${describeValue(backend)}`);
    }
    if (backend.disposed) throw new Error("KVCache: the backend was disposed (backend.dispose()); make a new backend and model");
    validateConfig(config, "KVCache");
    if (capacity === undefined) capacity = config.seqLen;
    if (layers === undefined) layers = config.nLayers;
    this.capacity = capacity;
    if (!Number.isInteger(capacity) || capacity <= 0) throw new RangeError(`KVCache: capacity must be a positive integer, got ${describeValue(capacity)}`);
    if (!Number.isInteger(layers) || layers < config.nLayers) throw new RangeError(`KVCache: layers must be an integer of at least the model's ${config.nLayers}, got ${describeValue(layers)}`);
    this.width = kvDim(config);
    this.keys = [];
    this.values = [];
    try {
      for (let l = 0; l < layers; l++) {
        this.keys.push(backend.alloc(capacity * this.width));
        this.values.push(backend.alloc(capacity * this.width));
      }
      this.positions = new Int32Array(capacity);
    } catch (e) {
      // A cache too large for the backend leaves nothing behind: the layers already allocated go back.
      for (const b of [...this.keys, ...this.values]) backend.free(b);
      throw new RangeError(`KVCache: ${capacity} rows x ${layers} layers x ${this.width} values (keys and values) do not fit: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /**
   * Whether the cache holds the keys and values of the model `owner` stands
   * for: a cache made by another model (same shape, same backend) would give
   * wrong logits silently, so a model refuses it. A cache without an owner
   * becomes `owner`'s.
   */
  belongsTo(owner: object): boolean {
    this.owner ??= owner;
    return this.owner === owner;
  }

  /** Number of cached rows. */
  get length(): number {
    return this.rows;
  }

  /** Room for `n` more rows, or a clear error. */
  ensureRoom(n: number): void {
    if (this.rows + n > this.capacity) {
      throw new RangeError(`KV cache full: it holds ${this.rows} of ${this.capacity} rows and a block of ${n} rows does not fit (create the model's cache with a larger capacity)`);
    }
  }

  /**
   * Record that `positions.length` rows were appended (the model writes
   * their keys and values): `positions` are their position ids, each an
   * integer in [0, seqLen). Checked before anything changes (O(rows given)),
   * so a NaN or 99 in a cache of seqLen 16 is refused, not stored as 0 or
   * as a position no key was rotated for.
   */
  commit(positions: ArrayLike<number>): void {
    const n = positions !== null && typeof positions === "object" ? positions.length : undefined;
    if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) throw new TypeError(`KVCache.commit: positions must be an array of position ids (one per row appended), got ${describeValue(positions)}`);
    if (this.keys.length === 0) throw new Error("KVCache.commit: the cache was freed (KVCache.free)");
    this.ensureRoom(n);
    const seqLen = this.config.seqLen;
    for (let i = 0; i < n; i++) {
      const p = positions[i];
      if (!Number.isInteger(p) || p < 0 || p >= seqLen) throw new RangeError(`KVCache.commit: position ids must be integers in [0, ${seqLen}) (the model's seqLen); entry ${i} is ${describeValue(p)}`);
    }
    for (let i = 0; i < n; i++) this.positions[this.rows + i] = positions[i];
    this.rows += n;
  }

  /** Drop every row from `length` on. */
  crop(length: number): void {
    if (!Number.isInteger(length) || length < 0 || length > this.rows) {
      throw new RangeError(`KVCache.crop: length must be an integer in [0, ${this.rows}], got ${describeValue(length)}`);
    }
    this.rows = length;
  }

  /**
   * Keep only the given rows (strictly increasing indices), compacted to the
   * front in that order. Keys and values are moved, never recomputed, so the
   * kept entries stay bit-identical.
   */
  keep(indices: ArrayLike<number>): void {
    const n = indices !== null && typeof indices === "object" ? indices.length : undefined;
    if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) throw new TypeError(`KVCache.keep: indices must be an array of row indices (strictly increasing), got ${describeValue(indices)}`);
    if (this.keys.length === 0 && n > 0) throw new Error("KVCache.keep: the cache was freed (KVCache.free)");
    let prev = -1;
    for (let i = 0; i < n; i++) {
      const r = indices[i];
      if (!Number.isInteger(r) || r <= prev || r >= this.rows) {
        throw new RangeError(`KVCache.keep: indices must be strictly increasing integers below ${this.rows}; got ${describeValue(r)} at ${i}`);
      }
      prev = r;
    }
    for (let i = 0; i < indices.length; i++) {
      const r = indices[i];
      if (r === i) continue;
      for (let l = 0; l < this.keys.length; l++) {
        this.backend.copy(this.keys[l], i * this.width, this.keys[l], r * this.width, this.width);
        this.backend.copy(this.values[l], i * this.width, this.values[l], r * this.width, this.width);
      }
      this.positions[i] = this.positions[r];
    }
    this.rows = indices.length;
  }

  /** Host copies of layer l's cached keys and values (for tests and inspection). */
  snapshot(layer: number): { keys: Float32Array; values: Float32Array } {
    if (this.keys.length === 0) throw new Error("KVCache.snapshot: the cache was freed (KVCache.free)");
    if (!Number.isInteger(layer) || layer < 0 || layer >= this.keys.length) throw new RangeError(`KVCache.snapshot: layer must be an integer in [0, ${this.keys.length}), got ${describeValue(layer)}`);
    const n = this.rows * this.width;
    return { keys: this.backend.download(this.keys[layer], 0, n), values: this.backend.download(this.values[layer], 0, n) };
  }

  free(): void {
    for (const b of [...this.keys, ...this.values]) this.backend.free(b);
    this.keys.length = 0;
    this.values.length = 0;
    this.rows = 0;
  }
}
