/**
 * A character-level tokenizer in llama2.c's tokenizer.bin format, built from
 * a corpus, for models trained from scratch on synthetic text.
 *
 * Layout (what src/io/tokenizer.ts reads): int32 max_token_length, then per
 * token float32 score, int32 byte length, the bytes. Ids: 0 <unk>, 1 BOS,
 * 2 EOS (llama2.c's pieces), 3..258 the byte-fallback tokens <0x00>..<0xFF>
 * (Tokenizer.encode needs them at exactly these ids), then one token per
 * distinct character (UTF-8 code point) of the corpus, a space always among
 * them, most frequent first.
 *
 * Encoding looks each code point up as a piece, then merges adjacent pairs
 * whose concatenation is a piece. Every character piece is a single code
 * point and the longer pieces (<unk>, <0xXX>, ...) are not made of two
 * character pieces, so no merge ever applies: text becomes the " "
 * dummy-prefix token followed by exactly one token per character, and
 * decoding after BOS drops that prefix again.
 */
import { writeBytesAtomically } from "./atomic-write.js";
import { checkBytesArgument, checkPath, FileFormatError } from "./errors.js";
import { describeValue } from "../util/checks.js";
import { BYTE_TOKEN_OFFSET, readTokenizerBytes, Tokenizer } from "./tokenizer.js";

const SPECIAL_PIECES = ["<unk>", "\n<s>\n", "\n</s>\n"];
const utf8 = new TextEncoder();

/**
 * The characters (code points) of the vocabulary built from `text`: most
 * frequent first, ties by code point; " " always included. `text` may be
 * given as lines, counted as if joined with "\n" (a corpus too large for one
 * string).
 */
export function charVocabulary(text: string | readonly string[]): string[] {
  const parts = textParts(text, "charVocabulary");
  const counts = new Map<string, number>([[" ", 0]]);
  if (parts.length > 1) counts.set("\n", parts.length - 1);
  for (const part of parts) {
    // Lone surrogates encode as U+FFFD (TextEncoder), so count them as that one character.
    const wellFormed = part.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, "\uFFFD");
    for (const ch of wellFormed) counts.set(ch, (counts.get(ch) ?? 0) + 1);
  }
  return [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0].codePointAt(0)! - b[0].codePointAt(0)!).map(([ch]) => ch);
}

/** `text` as its parts (lines), checked: a string or an array of strings (a number or a non-string line was "parts is not iterable" or "part.replace is not a function"). */
function textParts(text: unknown, where: string): readonly string[] {
  if (typeof text === "string") return [text];
  if (!Array.isArray(text)) throw new TypeError(`${where}: text must be a string or an array of strings (lines), got ${describeValue(text)}`);
  const bad = text.findIndex((line) => typeof line !== "string");
  if (bad >= 0) throw new TypeError(`${where}: text must be a string or an array of strings (lines), but line ${bad} is ${describeValue(text[bad])}`);
  return text;
}

/** The pieces of the char tokenizer for `text`, in id order. */
function charPieces(text: string | readonly string[]): Uint8Array[] {
  const pieces = SPECIAL_PIECES.map((p) => utf8.encode(p));
  for (let b = 0; b < 256; b++) pieces.push(utf8.encode(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`));
  for (const ch of charVocabulary(text)) pieces.push(utf8.encode(ch));
  return pieces;
}

/**
 * The bytes of a tokenizer.bin for a character-level vocabulary of `text`
 * (see the file comment). Scores: 0 for the special and byte tokens, minus
 * the frequency rank for characters (as sentencepiece scores its pieces);
 * they only matter for merges, and none ever applies.
 */
export function buildCharTokenizer(text: string | readonly string[]): Uint8Array {
  const pieces = charPieces(text);
  const size = 4 + pieces.reduce((n, p) => n + 8 + p.length, 0);
  const bytes = new Uint8Array(size);
  const dv = new DataView(bytes.buffer);
  // A loop, not Math.max(...): a corpus of some 120,000 distinct characters overflowed the call stack with its arguments.
  let maxLength = 0;
  for (const p of pieces) maxLength = Math.max(maxLength, p.length);
  dv.setInt32(0, maxLength, true);
  let off = 4;
  const firstChar = SPECIAL_PIECES.length + 256;
  pieces.forEach((piece, id) => {
    dv.setFloat32(off, id < firstChar ? 0 : -(id - firstChar), true);
    dv.setInt32(off + 4, piece.length, true);
    bytes.set(piece, off + 8);
    off += 8 + piece.length;
  });
  return bytes;
}

/** Builds the char tokenizer of `text` and writes it to `path` (atomically); returns its vocab size. */
export function writeCharTokenizer(path: string, text: string | readonly string[]): number {
  checkPath(path, "writeCharTokenizer");
  const bytes = buildCharTokenizer(text);
  writeBytesAtomically(path, bytes);
  return tokenizerVocabSize(bytes, path);
}

/** The ids below which every tokenizer.bin read without a model holds <unk>, BOS, EOS and the 256 byte-fallback tokens. */
const BYTE_TOKENS_END = BYTE_TOKEN_OFFSET + 256;

/**
 * How many tokens a tokenizer.bin holds, counted by walking its entries
 * (the format does not store the vocab size: models do). A from-scratch
 * model takes its vocab size from this. A file of fewer than 259 tokens
 * (<unk>, BOS, EOS and the byte-fallback tokens) is refused.
 */
export function tokenizerVocabSize(bytes: Uint8Array, name = "tokenizer"): number {
  checkBytesArgument(bytes, name, "tokenizerVocabSize");
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < 4) throw new FileFormatError(name, `file is ${bytes.byteLength} bytes, shorter than the 4-byte max_token_length header (truncated)`);
  let off = 4,
    count = 0;
  while (off < bytes.byteLength) {
    if (off + 8 > bytes.byteLength) throw new FileFormatError(name, `token ${count} is truncated (at byte offset ${off})`);
    const len = dv.getInt32(off + 4, true);
    if (len < 0 || off + 8 + len > bytes.byteLength) throw new FileFormatError(name, `token ${count} is truncated or has a bad length ${len} (at byte offset ${off + 4})`);
    off += 8 + len;
    count++;
  }
  // Encoding falls back to the byte tokens for any character without a piece: a file without all of them (cut short at an entry boundary, say) could not encode every text.
  if (count < BYTE_TOKENS_END) throw new FileFormatError(name, `holds ${count} tokens, fewer than the ${BYTE_TOKENS_END} of <unk>, BOS, EOS and the byte-fallback tokens <0x00>..<0xFF> (truncated?)`);
  return count;
}

/** The token count of a llama2.c tokenizer.bin's bytes (its first piece <unk>, as llama2.c's and ptp's are), or undefined when they are not one. */
export function llama2cTokenizerTokens(bytes: Uint8Array): number | undefined {
  try {
    const n = tokenizerVocabSize(bytes);
    return new TextDecoder().decode(Tokenizer.fromBytes(bytes, n).piece(0)) === "<unk>" ? n : undefined;
  } catch {
    return undefined;
  }
}

/** Loads a tokenizer.bin whose vocab size is not known in advance (e.g. a char tokenizer, before any model exists). */
export function loadTokenizerFile(path: string): Tokenizer {
  const bytes = readTokenizerBytes(path);
  return Tokenizer.fromBytes(bytes, tokenizerVocabSize(bytes, path), path);
}
