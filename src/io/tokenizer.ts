/**
 * The llama2.c tokenizer: reading tokenizer.bin and encoding/decoding text
 * exactly as the reference program (run.c) does.
 *
 * File format (little-endian): int32 max_token_length, then for each of the
 * model's vocab_size tokens: float32 score, int32 byte length, the bytes. The
 * vocab size is not stored: it comes from the model, so a file that ends
 * early or has bytes left over means the tokenizer and model disagree.
 *
 * Pieces are raw bytes (not necessarily valid UTF-8). Lookups compare raw
 * bytes, using latin1 strings (one char per byte) as Map keys. The reference
 * binary-searches the byte-sorted vocabulary; if a piece occurred twice it
 * could find either, we take the lowest id. Neither tok512.bin nor the Llama 2
 * tokenizer.bin contains duplicate pieces, so this never matters for them.
 */
import { MAX_VOCAB_SIZE } from "../model/config.js";
import { describeValue } from "../util/checks.js";
import { checkPath, FileFormatError, quotePath, readFileBytes, readFilePrefix } from "./errors.js";

export const UNK = 0;
/** The beginning-of-sequence token id of llama2.c's tokenizers (prepended by encode when asked). */
export const BOS = 1;
/** The end-of-sequence token id of llama2.c's tokenizers. */
export const EOS = 2;
/** Byte b is encoded, when no piece matches, as token b + BYTE_TOKEN_OFFSET ("<0xXX>"). */
export const BYTE_TOKEN_OFFSET = 3;

/** The reference's initial best score: pairs must score strictly above it to merge. */
const MIN_MERGE_SCORE = Math.fround(-1e10);

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8");

/**
 * encode's text is a string (undefined would encode as "", or fail inside
 * a library). This and the two checks below are the argument checks every
 * tokenizer makes (tokenizer.bin here, tokenizer.json in HfTokenizer), with
 * the same errors.
 */
export function checkText(where: string, text: unknown): asserts text is string {
  if (typeof text !== "string") throw new TypeError(`${where}: text must be a string, got ${text === null ? "null" : typeof text}`);
}

/** encode's bos and eos are booleans (a string such as "yes", or "no", would read as true). */
export function checkEncodeFlags(where: string, bos: unknown, eos: unknown): void {
  if (typeof bos !== "boolean") throw new TypeError(`${where}: bos must be a boolean (true: start with BOS), got ${describeValue(bos)}`);
  if (typeof eos !== "boolean") throw new TypeError(`${where}: eos must be a boolean (true: end with EOS), got ${describeValue(eos)}`);
}

/**
 * decodePiece's previous token: a token id, or -1 for none (the first
 * token of a sequence, as printedBytes passes it); -2, NaN or an id past
 * the vocabulary is a RangeError (it decoded silently as "not BOS").
 */
export function checkPrevTokenId(where: string, vocabSize: number, prev: unknown): void {
  if (!Number.isInteger(prev) || (prev as number) < -1 || (prev as number) >= vocabSize) {
    throw new RangeError(`${where}: prev must be a token id in [0, ${vocabSize}) or -1 (no previous token), got ${describeValue(prev)}`);
  }
}

/** A token id is an integer in [0, vocabSize) (`name`: the tokenizer's file). */
export function checkTokenId(name: string, vocabSize: number, id: unknown): asserts id is number {
  if (!Number.isInteger(id) || (id as number) < 0 || (id as number) >= vocabSize) {
    throw new RangeError(`${quotePath(name)}: token id ${describeValue(id)} is out of range [0, ${vocabSize})`);
  }
}

/** decode's tokens are an array (or typed array) of token ids (checkTokenId). */
export function checkTokenIds(where: string, name: string, vocabSize: number, tokens: unknown): asserts tokens is readonly number[] {
  if (!Array.isArray(tokens) && !(ArrayBuffer.isView(tokens) && !(tokens instanceof DataView))) {
    throw new TypeError(`${where}: tokens must be an array of token ids, got ${describeValue(tokens)}`);
  }
  for (const id of tokens as ArrayLike<number> & Iterable<number>) checkTokenId(name, vocabSize, id);
}

function latin1(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return s;
}

function isHexDigit(b: number): boolean {
  return (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66);
}

/** The byte a piece of the exact form "<0xXX>" (hex, either case) stands for, else -1. */
export function rawBytePiece(piece: Uint8Array): number {
  if (!(piece instanceof Uint8Array)) throw new TypeError(`rawBytePiece: piece must be a Uint8Array of the piece's bytes, got ${describeValue(piece)}`);
  if (piece.length !== 6 || piece[0] !== 0x3c /* < */ || piece[1] !== 0x30 /* 0 */ || piece[2] !== 0x78 /* x */ || !isHexDigit(piece[3]) || !isHexDigit(piece[4]) || piece[5] !== 0x3e /* > */) {
    return -1;
  }
  return parseInt(String.fromCharCode(piece[3], piece[4]), 16);
}

/**
 * Whether `tokenizer` prints `piece` when it streams text: a llama2.c
 * tokenizer (safePrintf true, and any tokenizer that does not say) follows
 * the safe_printf rule below; a Hugging Face tokenizer (safePrintf false)
 * prints every byte, as its own decode keeps the byte-fallback and
 * byte-level pieces that make up a UTF-8 character.
 */
export function printsPiece(tokenizer: { readonly safePrintf?: boolean }, piece: Uint8Array): boolean {
  if (tokenizer === null || typeof tokenizer !== "object") throw new TypeError(`printsPiece: tokenizer must be a tokenizer (a Tokenizer or HfTokenizer), got ${describeValue(tokenizer)}`);
  return tokenizer.safePrintf === false || isPrintablePiece(piece);
}

/**
 * The reference's safe_printf rule: a piece made of a single byte that is
 * neither printable ASCII (0x20..0x7e) nor whitespace (\t \n \v \f \r, space)
 * is not printed; every other piece is. (An empty piece prints nothing
 * either way; it counts as printable.)
 */
export function isPrintablePiece(bytes: Uint8Array): boolean {
  // A string "\x00" was a piece of one unprintable "byte" whose code is not a byte.
  if (!(bytes instanceof Uint8Array)) throw new TypeError(`isPrintablePiece: bytes must be a Uint8Array of the piece's bytes, got ${describeValue(bytes)}`);
  if (bytes.length !== 1) return true;
  const b = bytes[0];
  return (b >= 0x20 && b <= 0x7e) || (b >= 0x09 && b <= 0x0d);
}

/** A binary max-heap of merge candidates: higher score first, then leftmost. */
interface Candidate {
  score: number;
  left: number; // index of the left symbol in the initial token list
  right: number;
  leftVersion: number;
  rightVersion: number;
  id: number; // the merged token
}

function before(a: Candidate, b: Candidate): boolean {
  return a.score > b.score || (a.score === b.score && a.left < b.left);
}

class CandidateHeap {
  private items: Candidate[] = [];
  get size(): number {
    return this.items.length;
  }
  push(c: Candidate): void {
    const h = this.items;
    h.push(c);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }
  pop(): Candidate {
    const h = this.items;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l], h[m])) m = l;
        if (r < h.length && before(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}

/**
 * llama2.c's tokenizer.bin: a byte-fallback BPE over a scored vocabulary
 * (encode merges the highest-scoring pair first, as run.c does; decode maps
 * ids back to text, `<0xXX>` tokens to raw bytes).
 */
export class Tokenizer {
  /** Number of tokens (the model's vocab size). */
  readonly vocabSize: number;
  /** The max_token_length field of the file. */
  readonly maxTokenLength: number;
  /** The file path or name the tokenizer was read from. */
  readonly name: string;
  /**
   * Printing follows llama2.c's safe_printf (isPrintablePiece): a piece of
   * one byte that is not printable ASCII or whitespace is not printed, as
   * run.c does, so streamed text matches the reference's byte for byte.
   */
  readonly safePrintf = true;
  private readonly pieces: Uint8Array[];
  private readonly scores: Float32Array;
  private readonly keys: string[];
  private readonly ids: Map<string, number>;

  private constructor(name: string, maxTokenLength: number, pieces: Uint8Array[], scores: Float32Array) {
    // Private to TypeScript only: `new Tokenizer()` from JavaScript read "Cannot read properties of undefined (reading 'length')".
    if (typeof name !== "string" || !Number.isInteger(maxTokenLength) || !Array.isArray(pieces) || !(scores instanceof Float32Array) || scores.length !== pieces.length) {
      throw new TypeError(`Tokenizer: the constructor is internal (it takes a parsed vocabulary); make a tokenizer with Tokenizer.load(path, vocabSize) or Tokenizer.fromBytes(bytes, vocabSize, name), got new Tokenizer(${describeValue(name)}, ...)`);
    }
    this.name = name;
    this.vocabSize = pieces.length;
    this.maxTokenLength = maxTokenLength;
    this.pieces = pieces;
    this.scores = scores;
    this.keys = pieces.map(latin1);
    this.ids = new Map();
    // Lowest id wins for duplicate pieces (there are none in the shipped vocabularies).
    this.keys.forEach((k, id) => {
      if (!this.ids.has(k)) this.ids.set(k, id);
    });
  }

  /**
   * Parses tokenizer.bin bytes holding exactly `vocabSize` tokens. `name`
   * (usually the path) starts every error message.
   */
  static fromBytes(bytes: Uint8Array, vocabSize: number, name = "tokenizer"): Tokenizer {
    if (!Number.isInteger(vocabSize) || vocabSize <= 0) {
      throw new FileFormatError(name, `the model's vocab size must be a positive integer, got ${vocabSize}`);
    }
    if (!(bytes instanceof Uint8Array)) throw new TypeError(`${quotePath(name)}: Tokenizer.fromBytes needs the file's bytes as a Uint8Array (a Buffer works), got ${Array.isArray(bytes) ? "an array" : typeof bytes}`);
    const n = bytes.byteLength;
    const dv = new DataView(bytes.buffer, bytes.byteOffset, n);
    if (n < 4) throw new FileFormatError(name, `file is ${n} bytes, shorter than the 4-byte max_token_length header (truncated)`);
    const maxTokenLength = checkMaxTokenLength(dv.getInt32(0, true), name, bytes);
    const pieces: Uint8Array[] = [];
    const scores = new Float32Array(vocabSize);
    let off = 4;
    const endsEarly = (read: number): FileFormatError => tooFewTokens(name, vocabSize, `the file ends after ${read}` + (off < n ? ` (and ${n - off} bytes of an incomplete entry)` : ""));
    for (let i = 0; i < vocabSize; i++) {
      if (off + 8 > n) throw endsEarly(i);
      const score = dv.getFloat32(off, true);
      const len = dv.getInt32(off + 4, true);
      if (len < 0) throw new FileFormatError(name, `token ${i} has a negative length ${len} (at byte offset ${off + 4})`);
      if (len > maxTokenLength) throw new FileFormatError(name, `token ${i} is ${len} bytes, longer than the header's max_token_length ${maxTokenLength} (at byte offset ${off + 4})`);
      // BPE merges compare scores: a NaN would silently change how text is encoded.
      if (!Number.isFinite(score)) throw new FileFormatError(name, `token ${i} has a non-finite score ${score} (at byte offset ${off})`);
      if (off + 8 + len > n) throw endsEarly(i);
      scores[i] = score;
      pieces.push(new Uint8Array(bytes.subarray(off + 8, off + 8 + len))); // a plain copy (Buffer.slice would be a view)
      off += 8 + len;
    }
    if (off !== n) {
      // Count how many further whole entries the rest holds, for the message.
      let extra = 0;
      let o = off;
      while (o + 8 <= n) {
        const len = dv.getInt32(o + 4, true);
        if (len < 0 || o + 8 + len > n) break;
        o += 8 + len;
        extra++;
      }
      const detail = o === n ? `it holds ${vocabSize + extra} tokens` : `${n - off} bytes remain after token ${vocabSize - 1}`;
      throw new FileFormatError(name, `the tokenizer holds more tokens than the model's vocab size ${vocabSize} (${detail})`);
    }
    return new Tokenizer(name, maxTokenLength, pieces, scores);
  }

  /** Reads a tokenizer.bin file holding exactly `vocabSize` tokens (its header and size checked first, see readTokenizerBytes). */
  static load(path: string, vocabSize: number): Tokenizer {
    checkPath(path, "Tokenizer.load");
    // An argument, not the file's fault: named as such (it read as a FileFormatError about the file).
    if (!(typeof vocabSize === "number" && Number.isInteger(vocabSize) && vocabSize > 0)) throw new RangeError(`Tokenizer.load: vocabSize must be a positive integer (the model's vocab size), got ${describeValue(vocabSize)}`);
    return Tokenizer.fromBytes(readTokenizerBytes(path, vocabSize), vocabSize, path);
  }

  /** The safe_printf rule (see the exported function). */
  static isPrintablePiece(bytes: Uint8Array): boolean {
    return isPrintablePiece(bytes);
  }

  private checkId(id: number): void {
    checkTokenId(this.name, this.vocabSize, id);
  }

  /** The raw bytes of a token's piece (a copy). */
  piece(id: number): Uint8Array {
    this.checkId(id);
    return this.pieces[id].slice();
  }

  /** The merge score of a token. */
  score(id: number): number {
    this.checkId(id);
    return this.scores[id];
  }

  /** The id of the piece with these bytes (a string is UTF-8 encoded), or -1. */
  lookup(piece: Uint8Array | string): number {
    // A number or an object was "no such piece" (-1), undefined a raw TypeError.
    if (typeof piece !== "string" && !(piece instanceof Uint8Array)) throw new TypeError(`${quotePath(this.name)}: Tokenizer.lookup takes a piece as a string or a Uint8Array of its bytes, got ${describeValue(piece)}`);
    const bytes = typeof piece === "string" ? utf8Encoder.encode(piece) : piece;
    return this.ids.get(latin1(bytes)) ?? -1;
  }

  private byteToken(b: number): number {
    const id = b + BYTE_TOKEN_OFFSET;
    if (id >= this.vocabSize) {
      throw new RangeError(`${quotePath(this.name)}: cannot encode byte 0x${b.toString(16)}: no byte-fallback token ${id} in a vocab of ${this.vocabSize}`);
    }
    return id;
  }

  /**
   * Encodes text as run.c does: BOS if `bos`; for non-empty text the piece
   * " " (dummy prefix); each UTF-8 code point (a leading byte with up to
   * three following continuation bytes) looked up as a piece, else its bytes
   * as byte tokens (byte + 3); then repeatedly merge the adjacent pair whose
   * concatenated pieces form the vocab piece with the highest score (strictly
   * above -1e10; the leftmost pair wins ties), BOS included in the scan; EOS
   * if `eos`.
   *
   * The text is UTF-8 encoded with TextEncoder (lone surrogates become
   * U+FFFD). A NUL character, which would end a C string, is encoded like
   * any other byte. If the vocab had no " " piece the dummy prefix falls
   * back to the byte token of 0x20 (the reference would emit -1).
   *
   * The merge loop runs in O(n log n) with a heap instead of the reference's
   * O(n^2) rescans; the chosen merges are the same.
   */
  encode(text: string, bos: boolean, eos: boolean): number[] {
    checkText("Tokenizer.encode", text);
    checkEncodeFlags("Tokenizer.encode", bos, eos);
    const out: number[] = [];
    if (bos) out.push(BOS);
    const bytes = utf8Encoder.encode(text);
    if (bytes.length > 0) {
      const space = this.ids.get(" ");
      out.push(space ?? this.byteToken(0x20));
    }
    let start = 0;
    for (let i = 0; i < bytes.length; i++) {
      if ((bytes[i] & 0xc0) !== 0x80) start = i;
      const len = i + 1 - start;
      const next = i + 1 < bytes.length ? bytes[i + 1] : 0;
      if ((next & 0xc0) === 0x80 && len < 4) continue;
      const group = bytes.subarray(start, i + 1);
      const id = this.ids.get(latin1(group));
      if (id !== undefined) out.push(id);
      else for (const b of group) out.push(this.byteToken(b));
      start = i + 1;
    }
    const merged = this.mergePairs(out);
    if (eos) merged.push(EOS);
    return merged;
  }

  /** The id of the piece merging tokens a and b (if it scores above -1e10), or -1. */
  private mergeOf(a: number, b: number): number {
    const id = this.ids.get(this.keys[a] + this.keys[b]);
    return id !== undefined && this.scores[id] > MIN_MERGE_SCORE ? id : -1;
  }

  private mergePairs(tokens: number[]): number[] {
    const n = tokens.length;
    if (n < 2) return tokens;
    const tok = Int32Array.from(tokens);
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    const version = new Int32Array(n);
    const alive = new Uint8Array(n).fill(1);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    const heap = new CandidateHeap();
    const consider = (left: number, right: number): void => {
      if (left < 0 || right < 0) return;
      const id = this.mergeOf(tok[left], tok[right]);
      if (id < 0) return;
      heap.push({ score: this.scores[id], left, right, leftVersion: version[left], rightVersion: version[right], id });
    };
    for (let i = 0; i + 1 < n; i++) consider(i, i + 1);
    while (heap.size > 0) {
      const c = heap.pop();
      const { left, right } = c;
      if (!alive[left] || !alive[right] || next[left] !== right) continue;
      if (version[left] !== c.leftVersion || version[right] !== c.rightVersion) continue;
      tok[left] = c.id;
      version[left]++;
      alive[right] = 0;
      const after = next[right];
      next[left] = after;
      if (after >= 0) prev[after] = left;
      consider(prev[left], left);
      consider(left, after);
    }
    const result: number[] = [];
    for (let i = 0; i >= 0; i = next[i]) result.push(tok[i]);
    return result;
  }

  /**
   * The bytes the reference prints for `token` following `prev` (a token
   * id, or -1 for none): its piece, without one leading space when prev is
   * BOS; a piece of the exact form
   * "<0xXX>" stands for that single raw byte. Returns a fresh array.
   */
  decodePiece(prev: number, token: number): Uint8Array {
    this.checkId(token);
    checkPrevTokenId("Tokenizer.decodePiece", this.vocabSize, prev);
    let piece = this.pieces[token];
    if (prev === BOS && piece.length > 0 && piece[0] === 0x20) piece = piece.subarray(1);
    const raw = rawBytePiece(piece);
    return raw >= 0 ? Uint8Array.of(raw) : piece.slice();
  }

  /**
   * The bytes the reference would print for a token sequence: each token
   * decoded with the token before it as prev (a leading BOS prints nothing;
   * any other first token is decoded with no prev, so keeps its leading
   * space). With `printableOnly` (default), pieces failing the safe_printf
   * rule are dropped as the reference does, which loses the byte-fallback
   * tokens of non-ASCII characters; pass false to keep every byte.
   */
  decodeBytes(tokens: readonly number[], printableOnly = true): Uint8Array {
    checkTokenIds("Tokenizer.decode", this.name, this.vocabSize, tokens);
    return printedBytes(this, tokens, tokens.length > 0 && tokens[0] === BOS ? 1 : 0, tokens.length, printableOnly);
  }

  /**
   * What the reference prints for a token sequence (see decodeBytes, with
   * the safe_printf filter), UTF-8 decoded (invalid sequences become U+FFFD).
   */
  decode(tokens: readonly number[]): string {
    return utf8Decoder.decode(this.decodeBytes(tokens, true));
  }
}

/** The longest piece a tokenizer.bin may declare (llama2.c sizes its merge buffer from it; real files: 7 to 27 bytes). */
export const MAX_TOKEN_LENGTH = 1 << 16;

function checkMaxTokenLength(m: number, name: string, head: Uint8Array): number {
  // A tokenizer.json given where a tokenizer.bin belongs reads as a huge length: say what it is instead.
  if ((m < 0 || m > MAX_TOKEN_LENGTH) && /^\s*\{/.test(new TextDecoder().decode(head.subarray(0, 16)))) {
    throw new FileFormatError(name, "starts like a JSON file (a Hugging Face tokenizer.json?), but a llama2.c tokenizer.bin is expected here (ptp convert --to llama2c --tokenizer-out writes one from a tokenizer.json)");
  }
  if (m < 0) throw new FileFormatError(name, `header field max_token_length must not be negative, found ${m}`);
  if (m > MAX_TOKEN_LENGTH) throw new FileFormatError(name, `header field max_token_length must be at most ${MAX_TOKEN_LENGTH}, found ${m}`);
  return m;
}

/** Files up to this size are parsed even beyond the size bound, so that the error can say how many tokens they hold. */
const PARSE_ANYWAY = 64 * 2 ** 20;

/**
 * The rule every tokenizer file (tokenizer.bin, tokenizer.json) meets: it
 * holds a token for each of the model's `vocabSize` ids. One with fewer
 * would decode the model's other ids to nothing, silently. `holds` says
 * what the file has instead.
 */
export function tooFewTokens(name: string, vocabSize: number, holds: string): FileFormatError {
  return new FileFormatError(name, `expected ${vocabSize} tokens (the model's vocab size) but ${holds}`);
}

/**
 * The bytes of a tokenizer.bin, header first: the 4-byte max_token_length
 * is read and checked, then the file's size against the most `vocabSize`
 * tokens of at most that length can take (4 + vocabSize * (8 +
 * max_token_length) bytes; a file beyond that and beyond 64 MiB is refused
 * unread, a smaller one is parsed for a precise message), and only then the
 * rest. Without a model (loadTokenizerFile) `vocabSize` is the most any
 * model may declare, MAX_VOCAB_SIZE. A non-regular file
 * (/dev/zero, a FIFO) is refused before anything is read.
 */
export function readTokenizerBytes(path: string, vocabSize = MAX_VOCAB_SIZE): Uint8Array {
  const what = "a llama2.c tokenizer.bin";
  const { bytes, size } = readFilePrefix(path, what, 4);
  if (size < 4) throw new FileFormatError(path, `file is ${size} bytes, shorter than the 4-byte max_token_length header (truncated)`);
  const m = checkMaxTokenLength(new DataView(bytes.buffer, bytes.byteOffset, 4).getInt32(0, true), path, bytes);
  const most = 4 + vocabSize * (8 + m);
  if (size > most && size > PARSE_ANYWAY) throw new FileFormatError(path, `file is ${size} bytes, more than the ${most} bytes ${vocabSize} tokens of at most max_token_length ${m} bytes take`);
  return readFileBytes(path, what);
}

/**
 * The bytes printed for tokens[from .. to): each token's piece decoded with
 * the token before it as prev (no prev, -1, for the sequence's first token),
 * pieces failing the safe_printf rule dropped when `printableOnly` (by
 * default, where the tokenizer prints that way: see `printsPiece`).
 */
export function printedBytes(tokenizer: { decodePiece(prev: number, token: number): Uint8Array; readonly safePrintf?: boolean }, tokens: readonly number[], from: number, to: number, printableOnly = tokenizer.safePrintf !== false): Uint8Array {
  const parts: Uint8Array[] = [];
  let total = 0;
  for (let i = from; i < to; i++) {
    const bytes = tokenizer.decodePiece(i > 0 ? tokens[i - 1] : -1, tokens[i]);
    if (printableOnly && !isPrintablePiece(bytes)) continue;
    parts.push(bytes);
    total += bytes.length;
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
