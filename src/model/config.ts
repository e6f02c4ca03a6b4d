/**
 * The shape of a Llama-architecture decoder, as a llama2.c header gives it.
 */
export interface ModelConfig {
  /** Width of the residual stream. */
  dim: number;
  /** Width of the SwiGLU hidden layer. */
  hiddenDim: number;
  nLayers: number;
  /** Query heads. */
  nHeads: number;
  /** Key/value heads (GQA when fewer than nHeads). */
  nKvHeads: number;
  vocabSize: number;
  /** Maximum sequence length (positions are < seqLen). */
  seqLen: number;
  /** True when the classifier is the token embedding table. */
  sharedClassifier: boolean;
  /** RMSNorm epsilon (llama2.c: 1e-5). */
  normEps: number;
  /** RoPE base (llama2.c: 10000). */
  ropeTheta: number;
}

export const headSize = (c: ModelConfig): number => c.dim / c.nHeads;
export const kvDim = (c: ModelConfig): number => (c.dim * c.nKvHeads) / c.nHeads;

/**
 * Problems with a config, as readable sentences; empty when it is valid.
 * Loaders prefix these with the file name.
 */
/** The longest context a config may declare (2^20 positions). */
export const MAX_SEQ_LEN = 1 << 20;

export function configProblems(c: ModelConfig): string[] {
  const problems: string[] = [];
  const positive: (keyof ModelConfig)[] = ["dim", "hiddenDim", "nLayers", "nHeads", "nKvHeads", "vocabSize", "seqLen"];
  for (const key of positive) {
    const v = c[key] as number;
    if (!Number.isInteger(v) || v <= 0) problems.push(`${key} must be a positive integer, got ${v}`);
  }
  if (problems.length > 0) return problems;
  // seqLen sizes the KV cache and the RoPE positions, yet (in a v1 checkpoint) no array of the file: bound it here.
  if (c.seqLen > MAX_SEQ_LEN) problems.push(`seqLen must be <= ${MAX_SEQ_LEN}, got ${c.seqLen}`);
  if (c.dim % c.nHeads !== 0) problems.push(`nHeads (${c.nHeads}) must divide dim (${c.dim})`);
  else if ((c.dim / c.nHeads) % 2 !== 0) problems.push(`head size dim/nHeads (${c.dim / c.nHeads}) must be even for RoPE`);
  if (c.nHeads % c.nKvHeads !== 0) problems.push(`nKvHeads (${c.nKvHeads}) must divide nHeads (${c.nHeads})`);
  if (!(c.normEps > 0)) problems.push(`normEps must be > 0, got ${c.normEps}`);
  if (!(c.ropeTheta > 0)) problems.push(`ropeTheta must be > 0, got ${c.ropeTheta}`);
  return problems;
}

/** Throws with every problem listed when the config is invalid. */
export function validateConfig(c: ModelConfig, where = "model config"): void {
  const problems = configProblems(c);
  if (problems.length > 0) throw new Error(`${where}: ${problems.join("; ")}`);
}

/** Number of float32 parameters in the weights (without legacy RoPE tables). */
export function parameterCount(c: ModelConfig): number {
  const kv = kvDim(c);
  const perLayer = 2 * c.dim + c.dim * c.dim * 2 + 2 * kv * c.dim + 3 * c.hiddenDim * c.dim;
  return c.vocabSize * c.dim * (c.sharedClassifier ? 1 : 2) + c.nLayers * perLayer + c.dim;
}

/** The published TinyStories shapes, for random-weight benchmarks. */
export const SHAPES: Record<string, Omit<ModelConfig, "normEps" | "ropeTheta" | "sharedClassifier">> = {
  "260K": { dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 512 },
  "15M": { dim: 288, hiddenDim: 768, nLayers: 6, nHeads: 6, nKvHeads: 6, vocabSize: 32000, seqLen: 256 },
  "42M": { dim: 512, hiddenDim: 1376, nLayers: 8, nHeads: 8, nKvHeads: 8, vocabSize: 32000, seqLen: 1024 },
  "110M": { dim: 768, hiddenDim: 2048, nLayers: 12, nHeads: 12, nKvHeads: 12, vocabSize: 32000, seqLen: 1024 },
};
