/**
 * Which of ptp's file kinds a file is, for the messages of a reader given
 * the wrong one: `--model student.safetensors` reads "is a safetensors
 * file (...), not a model", not a v0 header of 1,600,070,267 layers.
 */
import { isCheckpointHeader, V1_HEADER_BYTES } from "./checkpoint.js";
import { llama2cTokenizerTokens } from "./char-tokenizer.js";
import { readFileBytes, readFilePrefix } from "./errors.js";
import { looksLikeSafetensors } from "./safetensors.js";

/** The bytes a PTP distillation dataset starts with (src/data/dataset.ts writes and reads them). */
export const DATASET_MAGIC = "PTP-DATA";

/** The largest file read whole to see whether it is a tokenizer.bin (the Llama 2 one is 424 KiB). */
const TOKENIZER_PROBE_BYTES = 16 * 2 ** 20;

export type FileKind = "a llama2.c checkpoint" | "a PTP distillation dataset" | "a safetensors file (a PTP student adapter, draft model or training checkpoint)" | "a llama2.c tokenizer (tokenizer.bin)" | "a JSON file";

/** The kind of the file at `path` by its first bytes (a tokenizer.bin by all of them), or undefined when it is none of these or cannot be read. */
export function fileKindOf(path: string): FileKind | undefined {
  try {
    const { bytes: head, size } = readFilePrefix(path, "a file", V1_HEADER_BYTES);
    if (new TextDecoder().decode(head.subarray(0, DATASET_MAGIC.length)) === DATASET_MAGIC) return "a PTP distillation dataset";
    if (looksLikeSafetensors(head, size)) return "a safetensors file (a PTP student adapter, draft model or training checkpoint)";
    if (isCheckpointHeader(head, size)) return "a llama2.c checkpoint";
    // An object in text (a byte-order mark and white space before it allowed): config.json, tokenizer.json, an index.
    if (looksLikeText(head) && /^(\uFEFF)?\s*\{/.test(new TextDecoder().decode(head))) return "a JSON file";
    if (size <= TOKENIZER_PROBE_BYTES && llama2cTokenizerTokens(readFileBytes(path, "a file")) !== undefined) return "a llama2.c tokenizer (tokenizer.bin)";
  } catch {
    // unreadable: the reader's own error says why
  }
  return undefined;
}

/** How many of a file's first bytes looksLikeText reads. */
export const TEXT_PROBE_BYTES = 4096;

/**
 * Whether `head`, a file's first bytes, reads as text: not empty, valid
 * UTF-8 (a character cut at the end of `head` allowed) and no control bytes
 * but tab, newline and carriage return. None of ptp's binary files does:
 * their headers hold small little-endian integers, so NUL bytes.
 */
export function looksLikeText(head: Uint8Array): boolean {
  if (head.length === 0) return false;
  for (const b of head) if ((b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d) || b === 0x7f) return false;
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(head, { stream: true });
    return true;
  } catch {
    return false;
  }
}
