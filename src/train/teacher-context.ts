import { kvDim } from "../model/config.js";
import type { Transformer } from "../model/transformer.js";
import type { ConstantContext } from "./graph.js";

/**
 * The teacher's view of a whole training sequence, from one block forward
 * on its backend: the rotated keys and values of every position (the
 * context PTP slots attend to; exactly the teacher's KV cache, since gated
 * LoRA leaves context rows alone) and, when asked, its logits at every
 * position (C-PTP distribution matching).
 */
export function teacherContext(teacher: Transformer, tokens: ArrayLike<number>, withLogits = false): { context: ConstantContext; logits?: Float32Array } {
  const n = tokens.length,
    kv = kvDim(teacher.config),
    b = teacher.backend;
  const cache = teacher.newCache(n);
  try {
    const logits = teacher.forward({ tokens, positions: Array.from({ length: n }, (_, i) => i) }, cache);
    return {
      context: { keys: cache.keys.map((k) => b.download(k, 0, n * kv)), values: cache.values.map((v) => b.download(v, 0, n * kv)), length: n },
      logits: withLogits ? logits : undefined,
    };
  } finally {
    cache.free();
  }
}
