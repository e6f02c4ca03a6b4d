import { printedBytes } from "../io/tokenizer.js";
import { checkInteger, describeValue } from "../util/checks.js";

/** What chunking needs of a tokenizer (llama2.c or tokenizer.json): each token's printed bytes, and which pieces print (printsPiece; safe_printf's where not said). */
export interface PieceDecoder {
  decodePiece(prev: number, token: number): Uint8Array;
  readonly safePrintf?: boolean;
}

/**
 * The bytes the AR path prints for tokens[from .. to): each token's piece
 * decoded after the token before it, the pieces the tokenizer does not print
 * skipped (printsPiece; the first token, BOS, prints nothing).
 */
export function tokenBytes(tokenizer: PieceDecoder, tokens: readonly number[], from: number, to: number): Uint8Array {
  checkPieceArguments("tokenBytes", tokenizer, tokens);
  checkInteger(from, "tokenBytes", "from", 0);
  checkInteger(to, "tokenBytes", "to", 0);
  if (from > to || to > tokens.length) throw new RangeError(`tokenBytes: from ${from} and to ${to} must satisfy 0 <= from <= to <= tokens.length (${tokens.length})`);
  return printedBytes(tokenizer, tokens, Math.max(from, 1), to);
}

/** chunkBytes' and tokenBytes' tokenizer and tokens, checked. */
function checkPieceArguments(where: string, tokenizer: unknown, tokens: unknown): void {
  if (tokenizer === null || typeof tokenizer !== "object" || typeof (tokenizer as PieceDecoder).decodePiece !== "function") throw new TypeError(`${where}: tokenizer must have decodePiece(prev, token) (a Tokenizer or HfTokenizer), got ${describeValue(tokenizer)}`);
  if (!Array.isArray(tokens)) throw new TypeError(`${where}: tokens must be an array of token ids (PtpResult.outputs[i]), got ${describeValue(tokens)}`);
}

/**
 * A decoded sequence's printed bytes cut into the prompt and each
 * verification step's accepted chunk (`chunks` as in PtpResult.chunks: the
 * generated part is the last sum(chunks) tokens). Concatenated, they are the
 * AR text exactly.
 */
export function chunkBytes(tokenizer: PieceDecoder, tokens: readonly number[], chunks: readonly number[]): { prompt: Uint8Array; chunks: Uint8Array[] } {
  checkPieceArguments("chunkBytes", tokenizer, tokens);
  if (!Array.isArray(chunks)) throw new TypeError(`chunkBytes: chunks must be an array of chunk lengths (PtpResult.chunks[i]), got ${describeValue(chunks)}`);
  // Counts only: a string length concatenated in the sum, a negative one cut a chunk backwards.
  chunks.forEach((n, i) => checkInteger(n, "chunkBytes", `chunks[${i}]`, 0));
  const promptLength = tokens.length - chunks.reduce((a, b) => a + b, 0);
  if (promptLength < 0) throw new RangeError(`chunkBytes: the chunks hold ${tokens.length - promptLength} tokens but the sequence has ${tokens.length}`);
  let at = promptLength;
  return {
    prompt: tokenBytes(tokenizer, tokens, 1, promptLength),
    chunks: chunks.map((n) => tokenBytes(tokenizer, tokens, at, (at += n))),
  };
}
