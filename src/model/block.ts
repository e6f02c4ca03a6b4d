import { checkInteger, describeValue } from "../util/checks.js";
import { nearestName } from "../util/options.js";
import type { ModelConfig } from "./config.js";

/**
 * One forward call's input: M rows, each a token id or an input embedding
 * vector, each with its own position id, plus who may attend to whom.
 */
export interface Block {
  /**
   * Token id per row. A negative id means "this row's input is the matching
   * row of `embeddings`" (PTP's auxiliary slots feed embeddings, not tokens).
   * When absent, every row is an embedding row.
   */
  tokens?: ArrayLike<number>;
  /** Input vectors [M, dim], read for the rows whose token id is negative. */
  embeddings?: Float32Array;
  /** Position id per row: any integers in [0, seqLen), not necessarily consecutive. */
  positions: ArrayLike<number>;
  /**
   * Attention mask [M, cached + M], row-major: mask[m * (cached + M) + j] = 1
   * when row m may see key j, where keys are the cached rows followed by this
   * block's rows. Absent: causal, row m sees every cached row and block rows
   * 0..m.
   */
  mask?: Uint8Array;
  /**
   * The mask in sparse form, instead of `mask`: row m sees exactly the keys
   * `visible.keys[visible.offsets[m] .. visible.offsets[m + 1] - 1]`
   * (strictly increasing; offsets has M + 1 entries from 0). Same logits as
   * the dense mask, but a row's attention costs only its own keys, not the
   * whole cache (sequences of a batch sharing one cache).
   */
  visible?: SparseMask;
}

/** Visible keys per row: offsets [M + 1] into `keys`. */
export interface SparseMask {
  offsets: Int32Array;
  keys: Int32Array;
}

/** The keys of Block. */
const BLOCK_KEYS: readonly (keyof Block)[] = ["tokens", "embeddings", "positions", "mask", "visible"];

/** Number of rows in a block, checked against its parts. */
export function blockRows(block: Block, config: ModelConfig, cached: number): number {
  if (typeof block !== "object" || block === null) throw new TypeError(`forward: the block must be an object { positions, tokens?, embeddings?, mask? | visible? }, got ${block === null ? "null" : typeof block}`);
  // Any other key is a typo (`masks`, `visibility`) that would run the causal default in silence.
  for (const key of Object.keys(block)) {
    if (!(BLOCK_KEYS as readonly string[]).includes(key)) {
      const meant = nearestName(key, BLOCK_KEYS);
      throw new RangeError(`forward: unknown block key ${JSON.stringify(key)}${meant !== undefined ? `; did you mean ${meant}?` : ""} (a block has ${BLOCK_KEYS.join(", ")})`);
    }
  }
  if (!isArrayLike(block.positions)) throw new TypeError("forward: block.positions must be an array of position ids, one per row");
  if (block.tokens !== undefined && !isArrayLike(block.tokens)) throw new TypeError("forward: block.tokens must be an array of token ids, one per row");
  const M = block.positions.length;
  if (M === 0) throw new RangeError("forward: the block has no rows (positions is empty)");
  if (block.tokens && block.tokens.length !== M) {
    throw new RangeError(`forward: tokens has ${block.tokens.length} entries but positions has ${M}`);
  }
  for (let m = 0; m < M; m++) {
    const p = block.positions[m];
    if (!Number.isInteger(p) || p < 0 || p >= config.seqLen) {
      throw new RangeError(`forward: position ids must be integers in [0, ${config.seqLen}) (the model's seqLen); row ${m} has ${describeValue(p)}`);
    }
  }
  // Typed arrays as documented: a plain array would fail deep inside (no subarray) or be read wrongly.
  if (block.embeddings !== undefined && !(block.embeddings instanceof Float32Array)) throw new TypeError(`forward: embeddings must be a Float32Array [M * dim], got ${Array.isArray(block.embeddings) ? "an array" : typeof block.embeddings}`);
  if (block.mask !== undefined && !(block.mask instanceof Uint8Array)) throw new TypeError(`forward: mask must be a Uint8Array [M * (cached + M)], got ${Array.isArray(block.mask) ? "an array" : typeof block.mask}`);
  let needsEmbedding = !block.tokens;
  if (block.tokens) {
    for (let m = 0; m < M; m++) {
      const t = block.tokens[m];
      if (!Number.isInteger(t) || t >= config.vocabSize) {
        throw new RangeError(`forward: token ids must be integers below the vocab size ${config.vocabSize}; row ${m} has ${describeValue(t)}`);
      }
      if (t < 0) needsEmbedding = true;
    }
  }
  if (needsEmbedding && (!block.embeddings || block.embeddings.length !== M * config.dim)) {
    throw new RangeError(`forward: rows without a token id need embeddings of length M * dim = ${M * config.dim}, got ${block.embeddings?.length ?? "none"}`);
  }
  if (block.visible !== undefined) checkSparseMask(block.visible, M, cached + M, block.mask !== undefined);
  if (block.mask) {
    const nKeys = cached + M;
    if (block.mask.length !== M * nKeys) {
      throw new RangeError(`forward: mask must have M * (cached + M) = ${M} * ${nKeys} = ${M * nKeys} entries, got ${block.mask.length}`);
    }
    for (let m = 0; m < M; m++) {
      if (!block.mask.subarray(m * nKeys, (m + 1) * nKeys).some((v) => v !== 0)) {
        throw new RangeError(`forward: mask row ${m} sees no key; every row must see at least one (usually itself)`);
      }
    }
  }
  return M;
}

/** The most entries a dense mask holds (one typed array). */
const MAX_MASK_ENTRIES = 2 ** 31 - 1;

/** The causal mask of a block of M rows after `cached` rows, as an explicit array. */
export function causalMask(cached: number, M: number): Uint8Array {
  // Integers only: a string M concatenated ("2" + 3 keys = "23"), a negative one made a mask of the wrong size.
  checkInteger(cached, "causalMask", "cached", 0);
  checkInteger(M, "causalMask", "M", 0);
  const nKeys = cached + M;
  if (M * nKeys > MAX_MASK_ENTRIES) throw new RangeError(`causalMask: ${M} rows x ${nKeys} keys is more than the ${MAX_MASK_ENTRIES} entries one mask array holds`);
  const mask = new Uint8Array(M * nKeys);
  for (let m = 0; m < M; m++) mask.fill(1, m * nKeys, m * nKeys + cached + m + 1);
  return mask;
}

function checkSparseMask(v: SparseMask, M: number, nKeys: number, dense: boolean): void {
  if (dense) throw new RangeError("forward: give either mask or visible, not both");
  if (!(v?.offsets instanceof Int32Array) || !(v.keys instanceof Int32Array)) throw new TypeError("forward: visible must be {offsets: Int32Array [M + 1], keys: Int32Array}");
  if (v.offsets.length !== M + 1 || v.offsets[0] !== 0 || v.offsets[M] > v.keys.length) {
    throw new RangeError(`forward: visible.offsets must have M + 1 = ${M + 1} entries from 0 to at most keys.length ${v.keys.length}, got ${v.offsets.length} entries from ${v.offsets[0]} to ${v.offsets[v.offsets.length - 1]}`);
  }
  for (let m = 0; m < M; m++) {
    const from = v.offsets[m],
      to = v.offsets[m + 1];
    if (!(to > from)) throw new RangeError(`forward: visible row ${m} sees no key; every row must see at least one (usually itself)`);
    for (let t = from, prev = -1; t < to; t++) {
      const j = v.keys[t];
      if (!(j > prev && j < nKeys)) throw new RangeError(`forward: visible row ${m}'s keys must increase within [0, cached + M) = [0, ${nKeys}), got ${j} after ${prev}`);
      prev = j;
    }
  }
}

/**
 * Rows [from, M) of a checked block of M rows, as a block of their own after
 * the first `from` rows have joined the cache: the same keys are numbered
 * the same (cached + M in all), so each row sees exactly what it saw.
 * Positions and masks only.
 */
export function tailRows(block: Pick<Block, "positions" | "mask" | "visible">, cached: number, M: number, from: number): Pick<Block, "positions" | "mask" | "visible"> {
  const positions = Array.from(block.positions).slice(from, M);
  if (block.mask) return { positions, mask: block.mask.subarray(from * (cached + M), M * (cached + M)) };
  if (block.visible) {
    const { offsets, keys } = block.visible;
    return { positions, visible: { offsets: offsets.subarray(from, M + 1).map((o) => o - offsets[from]), keys: keys.subarray(offsets[from], offsets[M]) } };
  }
  return { positions };
}

/** The dense mask [M, nKeys] of a sparse one (for backends without sparse attention). */
export function denseMask(v: SparseMask, M: number, nKeys: number): Uint8Array {
  const mask = new Uint8Array(M * nKeys);
  for (let m = 0; m < M; m++) for (let t = v.offsets[m]; t < v.offsets[m + 1]; t++) mask[m * nKeys + v.keys[t]] = 1;
  return mask;
}

/** An array or typed array (what a block's per-row parts must be). */
function isArrayLike(x: unknown): x is ArrayLike<number> {
  return Array.isArray(x) || (ArrayBuffer.isView(x) && !(x instanceof DataView));
}
