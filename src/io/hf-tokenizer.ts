/**
 * Hugging Face tokenizer.json files, through @huggingface/tokenizers (the
 * tokenizer library transformers.js uses), behind the same TextTokenizer
 * interface as the llama2.c tokenizer; and the conversion of a llama2.c
 * tokenizer.bin into a Llama-style tokenizer.json.
 *
 * Encoding and whole-sequence decoding are the library's. Streaming needs
 * the raw bytes of one token at a time (a UTF-8 character may be split over
 * byte-fallback tokens), which the library's decode() cannot give, so
 * decodePiece maps a piece to bytes for the two families of Llama-style
 * tokenizers: SentencePiece-like pieces ("▁" for a space, "<0xXX>" byte
 * fallback; one leading space dropped after BOS, as the Strip decoder does)
 * and GPT-2 byte-level pieces. Other decoders fall back to the library's
 * decode of the single token.
 */
import { makeFolders, writeBytesAtomically } from "./atomic-write.js";
import { dirname, join } from "node:path";
import { Tokenizer as HfLibTokenizer } from "@huggingface/tokenizers";
import { checkPath, entryExists, FileFormatError, quote, readJsonFile } from "./errors.js";
import { describeValue } from "../util/checks.js";
import { regexCostProblem } from "./regex-cost.js";
import { MAX_VOCAB_SIZE } from "../model/config.js";
import { isPlainObject } from "../util/options.js";

export { readJsonFile };
import { BOS, BYTE_TOKEN_OFFSET, checkEncodeFlags, checkPrevTokenId, checkText, checkTokenId, checkTokenIds, EOS, rawBytePiece, tooFewTokens, Tokenizer } from "./tokenizer.js";

/** What the decoders and the CLI need of a tokenizer; both tokenizer.bin and tokenizer.json provide it. */
export interface TextTokenizer {
  /** The file or name it was loaded from. */
  readonly name: string;
  /** Number of token ids it knows. */
  readonly vocabSize: number;
  /** Token ids of `text`, with BOS (id 1) first and EOS (id 2) last when asked. */
  encode(text: string, bos: boolean, eos: boolean): number[];
  /** The bytes printed for `token` when it follows `prev` (a token id, or -1 for none). */
  decodePiece(prev: number, token: number): Uint8Array;
  /**
   * True: streamed text drops the pieces llama2.c's safe_printf drops (a lone
   * byte outside printable ASCII and whitespace), as run.c prints; false:
   * every byte is printed (printsPiece).
   */
  readonly safePrintf: boolean;
  /** The text of a token sequence. */
  decode(tokens: readonly number[]): string;
}

const METASPACE = "\u2581";
const utf8 = new TextEncoder();

/** GPT-2's byte <-> printable character table (bytes_to_unicode), inverted: char -> byte. */
function byteLevelTable(): Map<string, number> {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const table = new Map<string, number>();
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const code = printable.includes(b) ? b : 256 + extra++;
    table.set(String.fromCodePoint(code), b);
  }
  return table;
}

type PieceStyle = "metaspace" | "byte-level" | "library";

/** Which piece-to-bytes mapping a tokenizer.json's decoder implies. */
function pieceStyle(json: Record<string, unknown>): PieceStyle {
  const text = JSON.stringify(json.decoder ?? null);
  if (text.includes('"ByteLevel"')) return "byte-level";
  if (text.includes(METASPACE) || text.includes('"Metaspace"')) return "metaspace";
  return "library";
}

/**
 * The parts of a tokenizer.json this package reads, checked before the
 * library builds anything from them (a huge id would have it allocate for
 * minutes; a malformed merge fails deep inside it): a BPE model, its vocab
 * an object of distinct integer ids below `limit`, its merges pairs of
 * pieces of the vocab ("a b" or ["a", "b"]) whose merged piece is in the
 * vocab too, its added tokens { id, content } with ids below `limit`, its
 * unk_token (when set) a piece it holds, its string options strings and its
 * flags booleans. Returns the ids that have a piece (vocab or added tokens)
 * and the merges as pairs.
 */
function checkBpeJson(j: Record<string, unknown>, name: string, limit: number, limitWhat: string): { ids: Set<number>; pairs: [string, string][] } {
  const fail = (problem: string): never => {
    throw new FileFormatError(name, problem);
  };
  const model = j.model as Record<string, unknown>;
  if (model.type !== "BPE") fail(`model.type ${quote(model.type)} is not supported (expected "BPE": Llama (SentencePiece BPE) and GPT-2 style tokenizers)`);
  // The options the library joins into pieces or tests as flags: of any other type they would change the tokens silently.
  for (const key of ["unk_token", "continuing_subword_prefix", "continuing_subword_suffix", "end_of_word_suffix"]) {
    if (model[key] != null && typeof model[key] !== "string") fail(`model.${key} must be a string or null, found ${quote(model[key])}`);
  }
  for (const key of ["fuse_unk", "byte_fallback", "ignore_merges"]) {
    if (model[key] != null && typeof model[key] !== "boolean") fail(`model.${key} must be true or false, found ${quote(model[key])}`);
  }
  const vocab = model.vocab;
  if (!isPlainObject(vocab)) return fail(`model.vocab must be an object mapping pieces to ids, found ${quote(vocab)}`);
  const seen = new Map<number, string>();
  let maxId = -1;
  for (const [piece, id] of Object.entries(vocab)) {
    if (!(typeof id === "number" && Number.isSafeInteger(id) && id >= 0)) fail(`model.vocab entry ${quote(piece)} has id ${quote(id)}, expected an integer >= 0`);
    const other = seen.get(id as number);
    if (other !== undefined) fail(`model.vocab gives id ${id} to both ${quote(other)} and ${quote(piece)}`);
    seen.set(id as number, piece);
    maxId = Math.max(maxId, id as number);
  }
  const merges = model.merges;
  if (!Array.isArray(merges)) return fail(`model.merges must be a list of merges, found ${quote(merges)}`);
  const pieces = new Set(Object.keys(vocab));
  // A merged piece drops the right piece's continuing_subword_prefix, as the reference (Rust) library builds it.
  const prefix = typeof model.continuing_subword_prefix === "string" ? model.continuing_subword_prefix : "";
  const pairs = merges.map((m, i): [string, string] => {
    const pair = typeof m === "string" ? m.split(" ") : m;
    if (!(Array.isArray(pair) && pair.length === 2 && pair.every((x) => typeof x === "string" && x !== ""))) fail(`model.merges entry ${i} is ${quote(m)}, expected two pieces ("a b" or ["a", "b"])`);
    const [a, b] = pair as [string, string];
    const merged = a + (prefix !== "" && b.startsWith(prefix) ? b.slice(prefix.length) : b);
    for (const piece of [a, b, merged]) if (!pieces.has(piece)) fail(`model.merges entry ${i} (${quote(m)}) needs the piece ${quote(piece)}, which model.vocab lacks`);
    return [a, b];
  });
  const added = j.added_tokens === undefined ? [] : j.added_tokens;
  if (!Array.isArray(added)) return fail(`added_tokens must be a list, found ${quote(added)}`);
  const addedContents = new Set<string>();
  added.forEach((t, i) => {
    const { id, content } = (typeof t === "object" && t !== null ? t : {}) as { id?: unknown; content?: unknown };
    if (!(typeof id === "number" && Number.isSafeInteger(id) && id >= 0 && typeof content === "string")) fail(`added_tokens entry ${i} is ${quote(t)}, expected { id: an integer >= 0, content: a string }`);
    if (!seen.has(id as number)) seen.set(id as number, content as string);
    addedContents.add(content as string);
    maxId = Math.max(maxId, id as number);
  });
  if (maxId >= limit) fail(`token id ${maxId} is outside ${limitWhat} of ${limit}`);
  // The library looks the unknown piece up at encode time and hands back an undefined id where it is missing.
  const unk = model.unk_token;
  if (typeof unk === "string" && !pieces.has(unk) && !addedContents.has(unk)) fail(`model.unk_token ${quote(unk)} is neither in model.vocab nor in added_tokens`);
  return { ids: new Set(seen.keys()), pairs };
}

/** The deepest nesting accepted in a tokenizer.json's pipeline parts (real files nest 5 levels). */
const MAX_PIPELINE_DEPTH = 64;
const PIPELINE_PARTS = ["normalizer", "pre_tokenizer", "post_processor", "decoder"] as const;

const isString = { what: "a string", test: (v: unknown) => typeof v === "string" };
const isBoolean = { what: "true or false", test: (v: unknown) => typeof v === "boolean" };
const isCount = { what: "an integer >= 0", test: (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0 };
const isList = { what: "a list", test: (v: unknown) => Array.isArray(v) };

/**
 * The pipeline steps' parameters, by name, as the library reads them (null
 * reads as absent): a value of another type would be joined into the text
 * or tested as a flag, changing the tokens silently (a numeric "prepend" 5
 * put "5" before every prompt).
 */
const PIPELINE_PARAMS: Record<string, { what: string; test: (v: unknown) => boolean }> = {
  prepend: isString,
  content: isString,
  replacement: isString,
  str_rep: isString,
  prefix: isString,
  suffix: isString,
  pad_token: isString,
  word_delimiter_token: isString,
  behavior: isString,
  prepend_scheme: { what: '"always", "first" or "never"', test: (v) => v === "always" || v === "first" || v === "never" },
  type: isString,
  strip_left: isBoolean,
  strip_right: isBoolean,
  clean_text: isBoolean,
  handle_chinese_chars: isBoolean,
  lowercase: isBoolean,
  strip_accents: isBoolean,
  add_prefix_space: isBoolean,
  trim_offsets: isBoolean,
  use_regex: isBoolean,
  invert: isBoolean,
  individual_digits: isBoolean,
  cleanup: isBoolean,
  split: isBoolean,
  start: isCount,
  stop: isCount,
  length: { what: "an integer >= 1", test: (v) => Number.isSafeInteger(v) && (v as number) >= 1 },
  normalizers: isList,
  pretokenizers: isList,
  decoders: isList,
  processors: isList,
};

/**
 * The pipeline parts of a tokenizer.json (normalizer, pre_tokenizer,
 * post_processor, decoder), checked before the library builds them: nested
 * at most MAX_PIPELINE_DEPTH levels (they are walked recursively, here and
 * by the library), and every "pattern" (which each Replace and Split step
 * has) { "String": text } or { "Regex": text }, as the reference (Rust)
 * library requires (the JS library skips a step with any other pattern, or
 * none, with a console warning: a step of the file dropped silently); every
 * regex of a shape the engine may take forever on refused (regex-cost.ts);
 * the steps' parameters of the types PIPELINE_PARAMS gives.
 */
function checkPipeline(j: Record<string, unknown>, name: string): void {
  const isPattern = (p: unknown): boolean => {
    if (!isPlainObject(p)) return false;
    const keys = Object.keys(p);
    return keys.length === 1 && (keys[0] === "String" || keys[0] === "Regex") && typeof (p as Record<string, unknown>)[keys[0]] === "string";
  };
  for (const part of PIPELINE_PARTS) {
    // Iterative, so a value nested 100,000 deep is measured without overflowing the stack.
    const stack: { value: unknown; where: string; depth: number }[] = [{ value: j[part], where: part, depth: 0 }];
    while (stack.length > 0) {
      const { value, where, depth } = stack.pop()!;
      if (typeof value !== "object" || value === null) continue;
      if (depth > MAX_PIPELINE_DEPTH) throw new FileFormatError(name, `${part} is nested more than ${MAX_PIPELINE_DEPTH} levels deep (at ${where})`);
      const type = (value as Record<string, unknown>).type;
      if ((type === "Replace" || type === "Split") && !("pattern" in value)) throw new FileFormatError(name, `${where} (a ${type} step) has no "pattern"`);
      if (type === "Prepend" && typeof (value as Record<string, unknown>).prepend !== "string") throw new FileFormatError(name, `${where} (a Prepend step) needs "prepend", a string, found ${quote((value as Record<string, unknown>).prepend)}`);
      for (const [k, v] of Object.entries(value)) {
        const at = Array.isArray(value) ? `${where}[${k}]` : `${where}.${k}`;
        if (!Array.isArray(value)) {
          if (k === "pattern" && !isPattern(v)) throw new FileFormatError(name, `${at} is ${quote(v)}, expected {"String": text} or {"Regex": text}`);
          if (k === "pattern" && "Regex" in (v as object)) {
            const problem = regexCostProblem((v as { Regex: string }).Regex);
            if (problem !== undefined) throw new FileFormatError(name, `${at}.Regex ${quote((v as { Regex: string }).Regex)} is refused: ${problem}`);
          }
          const expected = PIPELINE_PARAMS[k];
          if (expected !== undefined && v !== null && !expected.test(v)) throw new FileFormatError(name, `${at} is ${quote(v)}, expected ${expected.what}`);
        }
        stack.push({ value: v, where: at, depth: depth + 1 });
      }
    }
  }
}

const POST_PROCESSORS = ["TemplateProcessing", "ByteLevel", "BertProcessing", "RobertaProcessing", "Sequence"];

/**
 * The post-processor is not run (HfTokenizer.encode adds BOS and EOS
 * itself, as for tokenizer.bin), but a file whose post-processor the
 * library does not know is refused, as it would refuse it, and a template
 * must keep the text ($A) and name only special tokens it defines, as the
 * reference (Rust) library requires.
 */
function checkPostProcessor(p: unknown, name: string, where = "post_processor"): void {
  if (p === null || p === undefined) return;
  const fail = (problem: string): never => {
    throw new FileFormatError(name, `${where}${problem}`);
  };
  if (typeof p !== "object" || Array.isArray(p)) return fail(` must be an object, found ${quote(p)}`);
  const o = p as Record<string, unknown>;
  if (!POST_PROCESSORS.includes(o.type as string)) fail(`.type ${quote(o.type)} is not one of ${POST_PROCESSORS.join(", ")}`);
  if (o.type === "Sequence") {
    if (!Array.isArray(o.processors)) return fail(` (a Sequence) needs "processors", a list`);
    o.processors.forEach((q, i) => checkPostProcessor(q, name, `${where}.processors[${i}]`));
  }
  if (o.type !== "TemplateProcessing") return;
  const special = o.special_tokens ?? {};
  if (!isPlainObject(special)) return fail(`.special_tokens must be an object, found ${quote(special)}`);
  for (const key of ["single", "pair"] as const) {
    const template = o[key];
    if (template === undefined || template === null) continue;
    if (!Array.isArray(template)) return fail(`.${key} must be a list, found ${quote(template)}`);
    const sequences = new Set<unknown>();
    for (const part of template) {
      const { Sequence: seq, SpecialToken: tok } = (typeof part === "object" && part !== null ? part : {}) as { Sequence?: { id?: unknown }; SpecialToken?: { id?: unknown } };
      if (seq !== undefined) sequences.add(seq?.id);
      else if (tok !== undefined) {
        if (typeof tok?.id !== "string" || !Object.hasOwn(special, tok.id)) fail(`.${key} names the special token ${quote(tok?.id)}, which special_tokens does not define`);
      } else fail(`.${key} holds ${quote(part)}, expected {"Sequence": ...} or {"SpecialToken": ...}`);
    }
    const needed = key === "single" ? ["A"] : ["A", "B"];
    for (const id of needed) if (!sequences.has(id)) fail(`.${key} has no {"Sequence": {"id": "${id}"}}: it would drop the text`);
  }
}

/** A tokenizer.json loaded through @huggingface/tokenizers. */
export class HfTokenizer implements TextTokenizer {
  readonly name: string;
  readonly vocabSize: number;
  /** Every piece's bytes are printed: a UTF-8 character split over byte pieces stays whole, as the library's decode keeps it. */
  readonly safePrintf = false;
  private readonly lib: HfLibTokenizer;
  private readonly style: PieceStyle;
  private readonly pieces: string[];
  private readonly byteLevel?: Map<string, number>;
  private readonly stripAfterBos: boolean;

  private constructor(name: string, lib: HfLibTokenizer, json: Record<string, unknown>, vocabSize: number) {
    // Private to TypeScript only: `new HfTokenizer()` from JavaScript read "Cannot read properties of undefined (reading 'decoder')".
    if (typeof name !== "string" || !(lib instanceof HfLibTokenizer) || !isPlainObject(json) || !Number.isInteger(vocabSize)) {
      throw new TypeError(`HfTokenizer: the constructor is internal (it takes a loaded tokenizer.json); make a tokenizer with HfTokenizer.load(path, modelVocabSize) or HfTokenizer.fromJson(json, config, name, modelVocabSize), got new HfTokenizer(${describeValue(name)}, ...)`);
    }
    this.name = name;
    this.lib = lib;
    this.vocabSize = vocabSize;
    this.style = pieceStyle(json);
    this.pieces = [];
    for (const [piece, id] of lib.get_vocab(true)) this.pieces[id] = piece;
    if (this.style === "byte-level") this.byteLevel = byteLevelTable();
    this.stripAfterBos = JSON.stringify(json.decoder ?? null).includes('"Strip"') || this.style === "metaspace";
  }

  /**
   * A tokenizer from parsed tokenizer.json (and tokenizer_config.json, or
   * {}) for a model with `modelVocabSize` tokens. BOS must be id 1 and EOS
   * id 2 (the ids the decoders use); every id must be below the model's
   * vocab size.
   */
  static fromJson(json: unknown, config: unknown, name: string, modelVocabSize: number): HfTokenizer {
    if (!isPlainObject(json)) throw new FileFormatError(name, `expected a tokenizer.json object`);
    const j = json as Record<string, unknown>;
    if (typeof j.model !== "object" || j.model === null) throw new FileFormatError(name, `missing "model" (expected a Hugging Face tokenizer.json)`);
    const { ids, pairs } = checkBpeJson(j, name, modelVocabSize, "the model's vocab");
    checkPipeline(j, name);
    checkPostProcessor(j.post_processor, name);
    if (ids.size < modelVocabSize) {
      let hole = 0;
      while (ids.has(hole)) hole++;
      throw tooFewTokens(name, modelVocabSize, `the tokenizer holds ${ids.size} (no piece has id ${hole})`);
    }
    let lib: HfLibTokenizer;
    try {
      // The library iterates added_tokens unconditionally: a file without any has none. It reads every merge in
      // the form of the first, so they go to it as pairs. The post-processor only adds special tokens, which
      // encode adds itself; the library would still apply its template and keep only what the template lists.
      const model = { ...(j.model as object), merges: pairs };
      lib = new HfLibTokenizer({ ...j, model, added_tokens: j.added_tokens ?? [], post_processor: null }, (config ?? {}) as object);
    } catch (err) {
      throw new FileFormatError(name, `@huggingface/tokenizers cannot load it: ${err instanceof Error ? err.message : String(err)}`);
    }
    const cfg = (config ?? {}) as Record<string, unknown>;
    const special = (key: string, fallback: string): string => {
      const v = cfg[key];
      if (typeof v === "string") return v;
      if (typeof v === "object" && v !== null && typeof (v as { content?: unknown }).content === "string") return (v as { content: string }).content;
      return fallback;
    };
    for (const [key, fallback, id] of [
      ["bos_token", "<s>", BOS],
      ["eos_token", "</s>", EOS],
    ] as const) {
      const token = special(key, fallback);
      const found = lib.token_to_id(token);
      if (found !== id) {
        throw new FileFormatError(name, `${key} ${JSON.stringify(token)} has id ${found ?? "none"}; the decoders need id ${id} (Llama-2-style vocabularies)`);
      }
    }
    return new HfTokenizer(name, lib, j, modelVocabSize);
  }

  /** Reads tokenizer.json (and tokenizer_config.json beside it, when present). */
  static load(path: string, modelVocabSize: number): HfTokenizer {
    const json = readJsonFile(path, "a Hugging Face tokenizer.json");
    const configPath = join(dirname(path), "tokenizer_config.json");
    const config = entryExists(configPath) ? readJsonFile(configPath, "a Hugging Face tokenizer_config.json") : {};
    return HfTokenizer.fromJson(json, config, path, modelVocabSize);
  }

  /** The ids of `text`, checked as Tokenizer.encode checks (checkText). */
  encode(text: string, bos: boolean, eos: boolean): number[] {
    checkText("HfTokenizer.encode", text);
    checkEncodeFlags("HfTokenizer.encode", bos, eos);
    const ids = this.lib.encode(text, { add_special_tokens: false }).ids;
    // Every piece the library can emit has an id (fromJson checks the vocab and unk_token); this keeps it so.
    const bad = ids.findIndex((id: unknown) => !(Number.isInteger(id) && (id as number) >= 0 && (id as number) < this.vocabSize));
    if (bad >= 0) throw new FileFormatError(this.name, `encoding gave token ${bad} the id ${quote(ids[bad])}, outside [0, ${this.vocabSize})`);
    return [...(bos ? [BOS] : []), ...ids, ...(eos ? [EOS] : [])];
  }

  decodePiece(prev: number, token: number): Uint8Array {
    checkTokenId(this.name, this.vocabSize, token);
    checkPrevTokenId("HfTokenizer.decodePiece", this.vocabSize, prev);
    const piece = this.pieces[token];
    if (piece === undefined) return new Uint8Array(0);
    if (this.style === "library") return utf8.encode(this.lib.decode([token], { skip_special_tokens: false }));
    if (this.style === "byte-level") {
      const out: number[] = [];
      for (const ch of piece) {
        const b = this.byteLevel!.get(ch);
        if (b === undefined) out.push(...utf8.encode(ch));
        else out.push(b);
      }
      return Uint8Array.from(out);
    }
    const raw = rawBytePiece(utf8.encode(piece));
    if (raw >= 0) return Uint8Array.of(raw);
    let text = piece.split(METASPACE).join(" ");
    if (prev === BOS && this.stripAfterBos && text.startsWith(" ")) text = text.slice(1);
    return utf8.encode(text);
  }

  /** The text of `tokens`, each checked as Tokenizer.decode checks it (checkTokenIds). */
  decode(tokens: readonly number[]): string {
    checkTokenIds("HfTokenizer.decode", this.name, this.vocabSize, tokens);
    // No tokens: no text, as Tokenizer.decode (the library refuses an empty list).
    if (tokens.length === 0) return "";
    return this.lib.decode([...tokens], { skip_special_tokens: true });
  }
}

/** Throws a TypeError naming `where` unless `tok` is a llama2.c Tokenizer (Tokenizer.load or Tokenizer.fromBytes). */
function checkLlama2cTokenizer(tok: unknown, where: string): asserts tok is Tokenizer {
  if (!(tok instanceof Tokenizer)) throw new TypeError(`${where}: tok must be a llama2.c Tokenizer (Tokenizer.load or Tokenizer.fromBytes), got ${tok instanceof HfTokenizer ? "an HfTokenizer" : describeValue(tok)}`);
}

/**
 * A Llama-style tokenizer.json (BPE with byte fallback, "▁" for spaces, a
 * prepended "▁") equivalent to a llama2.c tokenizer.bin: ids 0, 1, 2 are
 * <unk>, <s>, </s>; ids 3..258 the byte pieces <0x00>..<0xFF>; every other
 * piece keeps its id with spaces written as "▁". A merge "a b" is listed for
 * every split of a piece into two pieces, ordered by the merged piece's
 * score (highest first, then lower id), which is the order llama2.c's
 * encoder applies merges in.
 */
export function llama2cTokenizerToJson(tok: Tokenizer): Record<string, unknown> {
  checkLlama2cTokenizer(tok, "llama2cTokenizerToJson");
  const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }); // keep a U+FEFF piece
  const names: string[] = [];
  const special = ["<unk>", "<s>", "</s>"];
  for (let id = 0; id < tok.vocabSize; id++) {
    if (id < special.length) {
      names.push(special[id]);
      continue;
    }
    const bytes = tok.piece(id);
    const raw = rawBytePiece(bytes);
    if (raw >= 0) {
      if (raw + BYTE_TOKEN_OFFSET !== id) throw new FileFormatError(tok.name, `byte piece <0x${raw.toString(16)}> is at id ${id}, expected ${raw + BYTE_TOKEN_OFFSET}`);
      names.push(`<0x${raw.toString(16).toUpperCase().padStart(2, "0")}>`);
      continue;
    }
    let text: string;
    try {
      text = decoder.decode(bytes);
    } catch {
      throw new FileFormatError(tok.name, `piece ${id} is not valid UTF-8; it cannot be written to tokenizer.json`);
    }
    names.push(text.split(" ").join(METASPACE));
  }
  const vocab: Record<string, number> = {};
  const idOf = new Map<string, number>();
  names.forEach((n, id) => {
    if (idOf.has(n)) throw new FileFormatError(tok.name, `piece ${JSON.stringify(n)} occurs twice (ids ${idOf.get(n)} and ${id})`);
    idOf.set(n, id);
    Object.defineProperty(vocab, n, { value: id, enumerable: true, writable: true, configurable: true });
  });
  const merges: { left: string; right: string; score: number; id: number; split: number }[] = [];
  const firstRegular = BYTE_TOKEN_OFFSET + 256;
  for (let id = firstRegular; id < names.length; id++) {
    const chars = Array.from(names[id]);
    for (let k = 1; k < chars.length; k++) {
      const left = chars.slice(0, k).join("");
      const right = chars.slice(k).join("");
      const l = idOf.get(left);
      const r = idOf.get(right);
      if (l !== undefined && r !== undefined && l >= firstRegular && r >= firstRegular) merges.push({ left, right, score: tok.score(id), id, split: k });
    }
  }
  merges.sort((a, b) => b.score - a.score || a.id - b.id || a.split - b.split);
  const added = special.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: {
      type: "Sequence",
      normalizers: [
        { type: "Prepend", prepend: METASPACE },
        { type: "Replace", pattern: { String: " " }, content: METASPACE },
      ],
    },
    pre_tokenizer: null,
    post_processor: null,
    decoder: {
      type: "Sequence",
      decoders: [{ type: "Replace", pattern: { String: METASPACE }, content: " " }, { type: "ByteFallback" }, { type: "Fuse" }, { type: "Strip", content: " ", start: 1, stop: 0 }],
    },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: "<unk>",
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges: merges.map((m) => [m.left, m.right]),
    },
  };
}

/**
 * Writes a llama2.c tokenizer as tokenizer.json (llama2cTokenizerToJson)
 * and a tokenizer_config.json naming its special tokens into `dir`
 * (atomically each). Returns the paths written.
 */
export function writeHfTokenizer(dir: string, tok: Tokenizer): string[] {
  // Both checked before the folder is made (a bad tokenizer left an empty folder behind).
  checkPath(dir, "writeHfTokenizer", "dir");
  checkLlama2cTokenizer(tok, "writeHfTokenizer");
  makeFolders(dir);
  const json = join(dir, "tokenizer.json");
  const config = join(dir, "tokenizer_config.json");
  writeBytesAtomically(json, utf8.encode(JSON.stringify(llama2cTokenizerToJson(tok)) + "\n"));
  const cfg = { tokenizer_class: "LlamaTokenizerFast", bos_token: "<s>", eos_token: "</s>", unk_token: "<unk>", add_bos_token: true, add_eos_token: false, legacy: true };
  writeBytesAtomically(config, utf8.encode(JSON.stringify(cfg, null, 2) + "\n"));
  return [json, config];
}

/**
 * The tokenizer.bin bytes of a Llama-style tokenizer.json (BPE with byte
 * fallback, "▁" for spaces, ids 0..2 <unk> <s> </s>, ids 3..258
 * <0x00>..<0xFF>): the inverse of llama2cTokenizerToJson. Pieces keep their
 * ids ("▁" back to spaces, <s> and </s> as llama2.c's "\n<s>\n" and
 * "\n</s>\n"); a piece that some merge produces scores minus the rank of the
 * first such merge, every other piece (special and byte pieces included)
 * -1e10 (never merged), so llama2.c's
 * highest-score-first merging follows the merge ranks. Exact for
 * SentencePiece-derived vocabularies, whose merges list every split of a
 * piece (as llama2.c merges any two pieces whose concatenation is a piece).
 */
export function llama2cTokenizerBytes(json: unknown, name: string): Uint8Array {
  const fail = (problem: string): never => {
    throw new FileFormatError(name, problem);
  };
  const j = json as { model?: { type?: string; byte_fallback?: boolean; vocab?: Record<string, number>; merges?: (string | string[])[] } };
  const model = j?.model;
  if (!model || model.type !== "BPE" || model.byte_fallback !== true || typeof model.vocab !== "object" || !Array.isArray(model.merges)) {
    return fail(`only Llama-style tokenizer.json files (a BPE model with byte_fallback) can be written as tokenizer.bin`);
  }
  // No model bounds the ids here: the most any model may declare bounds them.
  checkBpeJson(j as Record<string, unknown>, name, MAX_VOCAB_SIZE, "the ids a tokenizer.bin may hold");
  const pieces: string[] = [];
  for (const [piece, id] of Object.entries(model.vocab)) {
    if (!Number.isInteger(id) || id < 0) fail(`vocab entry ${JSON.stringify(piece)} has id ${id}`);
    if (pieces[id] !== undefined) fail(`ids ${id} is used twice`);
    pieces[id] = piece;
  }
  for (let id = 0; id < pieces.length; id++) if (pieces[id] === undefined) fail(`vocab ids are not dense: no piece has id ${id}`);
  const special = ["<unk>", "<s>", "</s>"];
  special.forEach((s, id) => {
    if (pieces[id] !== s) fail(`id ${id} must be ${JSON.stringify(s)} (llama2.c's fixed ids), found ${JSON.stringify(pieces[id])}`);
  });
  for (let b = 0; b < 256; b++) {
    const want = `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`;
    if (pieces[BYTE_TOKEN_OFFSET + b] !== want) fail(`id ${BYTE_TOKEN_OFFSET + b} must be the byte piece ${want}, found ${JSON.stringify(pieces[BYTE_TOKEN_OFFSET + b])}`);
  }
  const rankOf = new Map<string, number>();
  model.merges.forEach((m, rank) => {
    const [a, b] = Array.isArray(m) ? m : m.split(" ");
    const merged = a + b;
    if (!rankOf.has(merged)) rankOf.set(merged, rank);
  });
  const NEVER = Math.fround(-1e10);
  const entries = pieces.map((p, id) => {
    const bytes = id === 1 ? utf8.encode("\n<s>\n") : id === 2 ? utf8.encode("\n</s>\n") : utf8.encode(id < 3 + 256 ? p : p.split(METASPACE).join(" "));
    const rank = rankOf.get(p);
    return { bytes, score: rank === undefined ? NEVER : -rank };
  });
  const maxLen = entries.reduce((m, e) => Math.max(m, e.bytes.length), 0);
  const out = new Uint8Array(4 + entries.reduce((n, e) => n + 8 + e.bytes.length, 0));
  const dv = new DataView(out.buffer);
  dv.setInt32(0, maxLen, true);
  let off = 4;
  for (const e of entries) {
    dv.setFloat32(off, e.score, true);
    dv.setInt32(off + 4, e.bytes.length, true);
    out.set(e.bytes, off + 8);
    off += 8 + e.bytes.length;
  }
  return out;
}
