import { kvDim } from "../model/config.js";
import type { Transformer } from "../model/transformer.js";
import type { ConstantContext } from "./graph.js";

/**
 * The teacher's view of a whole training sequence, from one block forward
 * on its backend: the rotated keys and values of every position (the
 * context PTP slots attend to; exactly the teacher's KV cache, since gated
 * LoRA leaves context rows alone), when asked its logits at every position
 * (C-PTP distribution matching) and, when asked, its final hidden state at
 * every position (what a student's extra blocks project the context's keys
 * and values from; spec/ptp.md 2.4).
 */
export function teacherContext(teacher: Transformer, tokens: ArrayLike<number>, withLogits = false, withHidden = false): { context: ConstantContext; logits?: Float32Array } {
  const n = tokens.length,
    kv = kvDim(teacher.config),
    b = teacher.backend;
  if (n === 0) throw new RangeError("teacherContext: tokens is empty (a context needs at least one token, e.g. BOS)");
  const cache = teacher.newCache(n);
  try {
    const logits = teacher.forward({ tokens, positions: Array.from({ length: n }, (_, i) => i) }, cache);
    const context: ConstantContext = { keys: cache.keys.map((k) => b.download(k, 0, n * kv)), values: cache.values.map((v) => b.download(v, 0, n * kv)), length: n };
    if (withHidden) context.hidden = teacher.lastHidden();
    return { context, logits: withLogits ? logits : undefined };
  } finally {
    cache.free();
  }
}
