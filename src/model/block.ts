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
}

/** Number of rows in a block, checked against its parts. */
export function blockRows(block: Block, config: ModelConfig, cached: number): number {
  const M = block.positions.length;
  if (M === 0) throw new RangeError("forward: the block has no rows (positions is empty)");
  if (block.tokens && block.tokens.length !== M) {
    throw new RangeError(`forward: tokens has ${block.tokens.length} entries but positions has ${M}`);
  }
  for (let m = 0; m < M; m++) {
    const p = block.positions[m];
    if (!Number.isInteger(p) || p < 0 || p >= config.seqLen) {
      throw new RangeError(`forward: position ids must be integers in [0, ${config.seqLen}) (the model's seqLen); row ${m} has ${p}`);
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
        throw new RangeError(`forward: token ids must be integers below the vocab size ${config.vocabSize}; row ${m} has ${t}`);
      }
      if (t < 0) needsEmbedding = true;
    }
  }
  if (needsEmbedding && (!block.embeddings || block.embeddings.length !== M * config.dim)) {
    throw new RangeError(`forward: rows without a token id need embeddings of length M * dim = ${M * config.dim}, got ${block.embeddings?.length ?? "none"}`);
  }
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

/** The causal mask of a block of M rows after `cached` rows, as an explicit array. */
export function causalMask(cached: number, M: number): Uint8Array {
  const nKeys = cached + M;
  const mask = new Uint8Array(M * nKeys);
  for (let m = 0; m < M; m++) mask.fill(1, m * nKeys, m * nKeys + cached + m + 1);
  return mask;
}
