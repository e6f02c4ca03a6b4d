import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { BOS, EOS, Tokenizer, isPrintablePiece, rawBytePiece } from "../src/io/index.js";
import { formatError, thrown } from "./helpers.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const TOK512 = resolve(ROOT, "../shared/models/tok512.bin");
const TOK32K = resolve(ROOT, "../shared/models/tokenizer.bin");
const SAMPLE = resolve(ROOT, "../shared/corpora/tinystories_sample.txt");

const tok512 = Tokenizer.load(TOK512, 512);
const tok32k = Tokenizer.load(TOK32K, 32000);
const tokenizers: [string, Tokenizer][] = [
  ["tok512", tok512],
  ["tokenizer.bin", tok32k],
];

const tmp = mkdtempSync(join(tmpdir(), "io-tokenizer-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const latin1 = (b: Uint8Array): string => String.fromCharCode(...b);

/**
 * An independent, literal transcription of run.c's encode: byte-sorted vocab
 * searched by binary search (strcmp order = code-unit order of latin1
 * strings), and the O(n^2) merge loop rescanning every pair each round.
 */
const sortedVocabs = new Map<Tokenizer, { s: string; id: number }[]>();
const pieceStrings = new Map<Tokenizer, string[]>();
function referenceEncode(t: Tokenizer, text: string, bos: boolean, eos: boolean): number[] {
  let sorted = sortedVocabs.get(t);
  if (!sorted) {
    sorted = Array.from({ length: t.vocabSize }, (_, id) => ({ s: latin1(t.piece(id)), id })).sort((a, b) => (a.s < b.s ? -1 : a.s > b.s ? 1 : 0));
    sortedVocabs.set(t, sorted);
  }
  const vocab = sorted;
  let strs = pieceStrings.get(t);
  if (!strs) {
    strs = Array.from({ length: t.vocabSize }, (_, id) => latin1(t.piece(id)));
    pieceStrings.set(t, strs);
  }
  const pieceStr = strs;
  const strLookup = (s: string): number => {
    let lo = 0;
    let hi = vocab.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (vocab[mid].s === s) return vocab[mid].id;
      if (vocab[mid].s < s) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  };
  const tokens: number[] = [];
  if (bos) tokens.push(1);
  const bytes = utf8(text);
  if (bytes.length > 0) tokens.push(strLookup(" "));
  let buf: number[] = [];
  for (let i = 0; i < bytes.length; i++) {
    if ((bytes[i] & 0xc0) !== 0x80) buf = [];
    buf.push(bytes[i]);
    const next = i + 1 < bytes.length ? bytes[i + 1] : 0;
    if ((next & 0xc0) === 0x80 && buf.length < 4) continue;
    const id = strLookup(String.fromCharCode(...buf));
    if (id !== -1) tokens.push(id);
    else for (const b of buf) tokens.push(b + 3);
    buf = [];
  }
  const bestStart = Math.fround(-1e10);
  for (;;) {
    let bestScore = bestStart;
    let bestId = -1;
    let bestIdx = -1;
    for (let i = 0; i < tokens.length - 1; i++) {
      const id = strLookup(pieceStr[tokens[i]] + pieceStr[tokens[i + 1]]);
      if (id !== -1 && t.score(id) > bestScore) {
        bestScore = t.score(id);
        bestId = id;
        bestIdx = i;
      }
    }
    if (bestIdx === -1) break;
    tokens.splice(bestIdx, 2, bestId);
  }
  if (eos) tokens.push(2);
  return tokens;
}

/** tokenizer.bin bytes from (score, piece) entries. */
function tokenizerBytes(maxLen: number, entries: [number, Uint8Array | string][]): Uint8Array {
  const parts: number[] = [];
  const push32 = (f: (dv: DataView) => void): void => {
    const b = new Uint8Array(4);
    f(new DataView(b.buffer));
    parts.push(...b);
  };
  push32((dv) => dv.setInt32(0, maxLen, true));
  for (const [score, piece] of entries) {
    const bytes = typeof piece === "string" ? utf8(piece) : piece;
    push32((dv) => dv.setFloat32(0, score, true));
    push32((dv) => dv.setInt32(0, bytes.length, true));
    parts.push(...bytes);
  }
  return Uint8Array.from(parts);
}

describe("IO-TOK-LOAD: loading", () => {
  it("tok512.bin holds 512 tokens, tokenizer.bin 32000", () => {
    expect(tok512.vocabSize).toBe(512);
    expect(tok512.maxTokenLength).toBe(7);
    expect(tok32k.vocabSize).toBe(32000);
    expect(tok32k.maxTokenLength).toBe(27);
    for (const [, t] of tokenizers) {
      expect(latin1(t.piece(0))).toBe("<unk>");
      expect(latin1(t.piece(1))).toBe("\n<s>\n");
      expect(latin1(t.piece(2))).toBe("\n</s>\n");
      expect(latin1(t.piece(3))).toBe("<0x00>");
      expect(latin1(t.piece(258))).toBe("<0xFF>");
    }
    expect(latin1(tok512.piece(259))).toBe(" t");
    expect(tok512.score(260)).toBe(-1);
    expect(latin1(tok32k.piece(29871))).toBe(" ");
  });

  it("the shipped vocabularies hold no duplicate pieces", () => {
    for (const [, t] of tokenizers) {
      const seen = new Set<string>();
      for (let id = 0; id < t.vocabSize; id++) seen.add(latin1(t.piece(id)));
      expect(seen.size).toBe(t.vocabSize);
    }
  });

  it("exactly ids 3..258 are <0xXX> byte pieces", () => {
    for (const [, t] of tokenizers) {
      const wrong: number[] = [];
      for (let id = 0; id < t.vocabSize; id++) {
        const isByte = id >= 3 && id <= 258;
        if (rawBytePiece(t.piece(id)) !== (isByte ? id - 3 : -1)) wrong.push(id);
        // and only those look like one, by the reference's looser sscanf test too
        if (!isByte && latin1(t.piece(id)).startsWith("<0x")) wrong.push(id);
      }
      expect(wrong).toEqual([]);
    }
  });

  it("piece() returns copies and rejects bad ids", () => {
    const p = tok512.piece(300);
    p[0] = 0;
    expect(tok512.piece(300)[0]).not.toBe(0);
    expect(() => tok512.piece(512)).toThrow(RangeError);
    expect(() => tok512.score(-1)).toThrow(RangeError);
  });

  it("lookup finds pieces by bytes or UTF-8 string", () => {
    expect(tok512.lookup(" ")).toBe(410);
    expect(tok512.lookup(utf8(" Once"))).toBe(403);
    expect(tok512.lookup("nonexistent piece")).toBe(-1);
  });
});

describe("IO-TOK-ERRORS: tokenizer errors name the file and the problem", () => {
  it("IO-TOK-LOAD-ARGS: a vocabSize that is not a positive integer is an argument error naming Tokenizer.load, not a problem of the file", () => {
    for (const [bad, shown] of [
      ["512", '"512" (string)'],
      [null, "null"],
      [0, "0"],
      [1.5, "1.5"],
    ] as const) {
      const e = thrown(() => Tokenizer.load(TOK512, bad as never));
      expect(e).toBeInstanceOf(RangeError);
      expect(e.message).toBe(`Tokenizer.load: vocabSize must be a positive integer (the model's vocab size), got ${shown}`);
    }
  });

  it("missing file", () => {
    const path = join(tmp, "missing.bin");
    expect(formatError(() => Tokenizer.load(path, 512), path).message).toMatch(/does not exist/);
  });

  it("model vocab larger than the tokenizer's: the file ends early", () => {
    const e = formatError(() => Tokenizer.load(TOK512, 1000), TOK512);
    expect(e.message).toBe(`${TOK512}: expected 1000 tokens (the model's vocab size) but the file ends after 512`);
  });

  it("model vocab smaller than the tokenizer's: bytes left over", () => {
    const e = formatError(() => Tokenizer.load(TOK32K, 512), TOK32K);
    expect(e.message).toContain("the tokenizer holds more tokens than the model's vocab size 512");
    expect(e.message).toContain("it holds 32000 tokens");
    const bytes = new Uint8Array(readFileSync(TOK512));
    const e2 = formatError(() => Tokenizer.fromBytes(Uint8Array.from([...bytes, 1, 2, 3]), 512, "extra.bin"), "extra.bin");
    expect(e2.message).toBe("extra.bin: the tokenizer holds more tokens than the model's vocab size 512 (3 bytes remain after token 511)");
  });

  it("truncated inside an entry and inside the header", () => {
    const bytes = new Uint8Array(readFileSync(TOK512));
    const path = join(tmp, "cut.bin");
    writeFileSync(path, bytes.subarray(0, bytes.length - 2));
    const e = formatError(() => Tokenizer.load(path, 512), path);
    expect(e.message).toMatch(/expected 512 tokens \(the model's vocab size\) but the file ends after 511 \(and \d+ bytes of an incomplete entry\)/);
    const e2 = formatError(() => Tokenizer.fromBytes(bytes.subarray(0, 2), 512, "tiny.bin"), "tiny.bin");
    expect(e2.message).toMatch(/file is 2 bytes, shorter than the 4-byte max_token_length header/);
    // Not bytes at all: a TypeError saying what fromBytes needs, not a DataView error.
    expect(() => Tokenizer.fromBytes([1, 2, 3] as unknown as Uint8Array, 512, "x")).toThrow(/x: Tokenizer.fromBytes needs the file's bytes as a Uint8Array \(a Buffer works\), got an array/);
  });

  it("negative lengths", () => {
    const bytes = tokenizerBytes(3, [
      [0, "a"],
      [0, "b"],
    ]);
    new DataView(bytes.buffer).setInt32(4 + 4 + 4 + 1 + 4, -5, true); // the second entry's length
    const e = formatError(() => Tokenizer.fromBytes(bytes, 2, "neg.bin"), "neg.bin");
    expect(e.message).toBe("neg.bin: token 1 has a negative length -5 (at byte offset 17)");
    const bad = tokenizerBytes(-1, [[0, "a"]]);
    expect(formatError(() => Tokenizer.fromBytes(bad, 1, "negmax.bin"), "negmax.bin").message).toMatch(/max_token_length must not be negative/);
  });
});

describe("IO-TOK-ENCODE: encode", () => {
  it("empty text", () => {
    expect(tok512.encode("", true, false)).toEqual([1]);
    expect(tok512.encode("", false, false)).toEqual([]);
    expect(tok512.encode("", true, true)).toEqual([1, 2]);
    expect(tok512.encode("", false, true)).toEqual([2]);
  });

  it("Once upon a time", () => {
    const ids = tok512.encode("Once upon a time", true, false);
    expect(ids[0]).toBe(BOS);
    expect(ids).toEqual([1, 403, 407, 261, 378]); // "\n<s>\n" " Once" " upon" " a" " time"
    expect(tok512.decode(ids)).toBe("Once upon a time");
    const ids32 = tok32k.encode("Once upon a time", true, false);
    expect(ids32[0]).toBe(BOS);
    expect(tok32k.decode(ids32)).toBe("Once upon a time");
  });

  it("hand-checked merges with tok512: 'The cat sat.'", () => {
    // Initial symbols: <s>(1) " "(410) T(434) h(415) e(411) " "(410) c(429)
    // a(412) t(413) " "(410) s(419) a(412) t(413) .(426). Mergeable pairs and
    // the scores of their pieces: " T" -15, "he" -1, " c" -21, "at" -35,
    // " s" -3, "at" -35 (and never "<s>" with anything).
    // 1. "he" (-1) is best -> " " T he " " c a t " " s a t .
    // 2. " s" (-3)        -> ... " s" a t .
    // 3. " T" (-15)       -> " T" he ...; now " The" (-32) becomes possible
    // 4. " c" (-21)       -> " The" " c" a t " s" a t .
    // 5. " The" (-32)
    // 6. "at" (-35) occurs twice (the score tie): the leftmost wins, the one
    //    after " c"; " c"+"at" is not a piece, so " cat" stays two tokens.
    // 7. remaining candidates " sa" (-37) from " s"+"a" and "at" (-35): "at"
    //    wins, and " s"+"at" = " sat" is not in this 512-piece vocab.
    // Result: <s> " The" " c" "at" " s" "at" "."
    const ids = tok512.encode("The cat sat.", true, false);
    expect(ids).toEqual([1, 291, 280, 294, 262, 294, 426]);
    expect(ids.map((i) => latin1(tok512.piece(i)))).toEqual(["\n<s>\n", " The", " c", "at", " s", "at", "."]);
    expect(tok512.score(294)).toBe(-35);
    expect(tok512.score(296)).toBe(-37); // " sa"
    expect(tok512.lookup(" sat")).toBe(-1);
    expect(tok512.lookup(" cat")).toBe(-1);
  });

  it("characters not in the vocabulary become byte tokens", () => {
    // tok512 has no emoji: U+1F600 is F0 9F 98 80 -> tokens byte + 3
    expect(tok512.encode("😀", true, false)).toEqual([1, 410, 0xf0 + 3, 0x9f + 3, 0x98 + 3, 0x80 + 3]);
    // "é" is a piece of tok512 (two bytes looked up as one code point)
    expect(tok512.encode("é", false, false)).toEqual([410, tok512.lookup("é")]);
    // a code point is looked up whole: U+00E9 missing would give two byte tokens
    const t = Tokenizer.fromBytes(tokenizerBytes(6, [[0, "<unk>"], [0, "<s>"], [0, "</s>"], ...Array.from({ length: 256 }, (_, b): [number, string] => [0, `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`]), [-1, " "]]), 260, "mini");
    expect(t.encode("é", false, false)).toEqual([259, 0xc3 + 3, 0xa9 + 3]);
    expect(t.decodeBytes(t.encode("é", true, false), false)).toEqual(utf8("é"));
  });

  it("eos appends 2", () => {
    const a = tok512.encode("Once upon a time", true, false);
    expect(tok512.encode("Once upon a time", true, true)).toEqual([...a, EOS]);
    expect(tok512.encode("Hi", false, true).at(-1)).toBe(2);
  });

  it("groups at most 4 bytes and restarts on stray continuation bytes, like the reference", () => {
    // lone surrogates are replaced by U+FFFD (EF BF BD) by the UTF-8 encoder
    expect(tok512.encode("\ud800", false, false)).toEqual(referenceEncode(tok512, "\ud800", false, false));
    expect(tok512.encode("\ud800", false, false)).toEqual([410, 0xef + 3, 0xbf + 3, 0xbd + 3]);
  });

  it("agrees with a literal transcription of the reference on the sample corpus", () => {
    const text = readFileSync(SAMPLE, "utf8");
    const lines = text.split("\n").filter((l) => l.length > 0);
    for (const [, t] of tokenizers) {
      for (const line of lines.slice(0, 8)) expect(t.encode(line, true, false)).toEqual(referenceEncode(t, line, true, false));
    }
    // the whole sample in one go (with newlines) for the small vocab
    expect(tok512.encode(text, true, true)).toEqual(referenceEncode(tok512, text, true, true));
  });

  it("agrees with the reference transcription on random strings (property)", () => {
    const unit = fc.oneof(fc.constantFrom("a", "b", "e", "t", "h", " ", "  ", "\n", "é", "’", "😀", "th", "he", "in"), fc.string({ unit: "binary", minLength: 1, maxLength: 1 }));
    for (const [, t] of tokenizers) {
      fc.assert(
        fc.property(fc.string({ unit, maxLength: 40 }), fc.boolean(), fc.boolean(), (s, bos, eos) => {
          expect(t.encode(s, bos, eos)).toEqual(referenceEncode(t, s, bos, eos));
        }),
        { numRuns: t === tok512 ? 300 : 60 },
      );
    }
  });
});

describe("IO-TOK-DECODE: decode", () => {
  it("decodePiece strips the leading space after BOS only", () => {
    expect(latin1(tok512.decodePiece(BOS, 403))).toBe("Once");
    expect(latin1(tok512.decodePiece(261, 403))).toBe(" Once");
    expect(latin1(tok512.decodePiece(0, 403))).toBe(" Once");
    expect(latin1(tok512.decodePiece(BOS, 412))).toBe("a"); // no space to strip
    // only one space is stripped (tokenizer.bin has the piece "  ")
    expect(latin1(tok32k.decodePiece(BOS, 259))).toBe(" ");
  });

  it("<0xXX> pieces decode to the raw byte", () => {
    expect(tok512.decodePiece(5, 3 + 0x0a)).toEqual(Uint8Array.of(0x0a));
    expect(latin1(tok512.decodePiece(BOS, 3 + 0x0a))).toBe("\n");
    expect(tok32k.decodePiece(5, 3 + 0xf0)).toEqual(Uint8Array.of(0xf0));
    expect(rawBytePiece(utf8("<0x0a>"))).toBe(10);
    expect(rawBytePiece(utf8("<0x0A"))).toBe(-1);
    expect(rawBytePiece(utf8("<0xZZ>"))).toBe(-1);
  });

  it("isPrintablePiece follows safe_printf", () => {
    expect(isPrintablePiece(utf8("a"))).toBe(true);
    expect(isPrintablePiece(utf8(" "))).toBe(true);
    expect(isPrintablePiece(utf8("~"))).toBe(true);
    for (const b of [9, 10, 11, 12, 13]) expect(isPrintablePiece(Uint8Array.of(b))).toBe(true);
    for (const b of [0, 1, 8, 14, 31, 127, 128, 0xc3, 0xf0, 0xff]) expect(isPrintablePiece(Uint8Array.of(b))).toBe(false);
    expect(isPrintablePiece(Uint8Array.of(0xc3, 0xa9))).toBe(true); // multi-byte pieces always print
    expect(isPrintablePiece(new Uint8Array(0))).toBe(true);
    expect(Tokenizer.isPrintablePiece(Uint8Array.of(1))).toBe(false);
  });

  it("decode drops a leading BOS, keeps other first tokens whole, filters unprintable bytes", () => {
    expect(tok512.decode([BOS])).toBe("");
    expect(tok512.decode([])).toBe("");
    expect(tok512.decode([403, 407])).toBe(" Once upon");
    // the emoji's byte tokens are single non-printable bytes: the reference prints nothing
    const emoji = tok512.encode("a😀b", true, false);
    expect(tok512.decode(emoji)).toBe("ab");
    expect(new TextDecoder().decode(tok512.decodeBytes(emoji, false))).toBe("a😀b");
    // control characters are dropped, whitespace kept
    expect(tok512.decode(tok512.encode("x\u0001y\tz\n", true, false))).toBe("xy\tz\n");
  });

  it("round-trips the sample corpus line by line", () => {
    const lines = readFileSync(SAMPLE, "utf8").split("\n");
    let ascii = 0;
    for (const [, t] of tokenizers) {
      for (const line of lines) {
        const ids = t.encode(line, true, false);
        expect(ids.every((id) => Number.isInteger(id) && id >= 0 && id < t.vocabSize)).toBe(true);
        expect(new TextDecoder().decode(t.decodeBytes(ids, false))).toBe(line);
        if (/^[\x20-\x7e\t]*$/.test(line)) {
          ascii++;
          expect(t.decode(ids)).toBe(line);
        }
      }
    }
    expect(ascii).toBeGreaterThan(30);
    // tokenizer.bin has pieces for the typographic quotes of the non-ASCII lines
    for (const line of lines) expect(tok32k.decode(tok32k.encode(line, true, false))).toBe(line);
  });

  it("round-trips the whole sample as one text", () => {
    const text = readFileSync(SAMPLE, "utf8");
    expect(new TextDecoder().decode(tok512.decodeBytes(tok512.encode(text, true, true).slice(0, -1), false))).toBe(text);
    expect(tok32k.decode(tok32k.encode(text, true, false))).toBe(text);
  });

  it("decode(encode(s)) === s for printable ASCII and whitespace (property)", () => {
    const unit = fc.oneof(fc.string({ unit: "grapheme-ascii", minLength: 1, maxLength: 1 }), fc.constantFrom(" ", "\n", "\t", "\r"));
    for (const [, t] of tokenizers) {
      fc.assert(
        fc.property(fc.string({ unit, maxLength: 80 }), (s) => {
          expect(t.decode(t.encode(s, true, false))).toBe(s);
        }),
        { numRuns: 300 },
      );
    }
  });

  it("arbitrary unicode (incl. emoji via byte fallback) round-trips byte-exactly (property)", () => {
    const unit = fc.oneof(fc.string({ unit: "binary", minLength: 1, maxLength: 1 }), fc.string({ unit: "grapheme", minLength: 1, maxLength: 1 }), fc.constantFrom("😀", "👍🏽", "🇫🇷", "👩‍👩‍👧", "é", "中文"));
    for (const [, t] of tokenizers) {
      fc.assert(
        fc.property(fc.string({ unit, maxLength: 30 }), (s) => {
          const ids = t.encode(s, true, false);
          expect(ids.every((id) => id >= 0 && id < t.vocabSize)).toBe(true);
          expect(new TextDecoder().decode(t.decodeBytes(ids, false))).toBe(s);
          // the printed text is s minus what safe_printf drops
          const printed = t.decode(ids);
          expect(printed.length).toBeLessThanOrEqual(s.length);
        }),
        { numRuns: 300 },
      );
    }
  });

  it("emoji fall back to byte tokens with tok512 (property)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0x1f300, max: 0x1faff }), (cp) => {
        const s = String.fromCodePoint(cp);
        expect(tok512.encode(s, false, false)).toEqual([410, ...Array.from(utf8(s), (b) => b + 3)]);
      }),
    );
  });
});
