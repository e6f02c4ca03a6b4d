import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { HfTokenizer, llama2cTokenizerBytes, llama2cTokenizerToJson } from "../src/io/hf-tokenizer.js";
import { loadTokenizer } from "../src/io/model-file.js";
import { Tokenizer } from "../src/io/tokenizer.js";
import { formatError, GOLDEN, runCli, SHARED, STORIES_260K, TOK_512, type GoldenCase } from "./helpers.js";

/**
 * tokenizer.json through @huggingface/tokenizers. The expected ids come
 * from the llama2.c encoder (itself checked against a transcription of the
 * reference loop, IO-TOK-ENCODE) on the same vocabulary, converted to a
 * Llama-style tokenizer.json by the project's own converter; for the
 * Llama 2 vocabulary (tokenizer.bin) a few are also written out literally.
 */

const tmp = mkdtempSync(join(tmpdir(), "ptp-hftok-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const STRINGS = [
  "Once upon a time",
  "Hello, world! What's up?",
  "  two  spaces\tand\ttabs\n\nnewlines   ",
  " leading and trailing ",
  "Grüße, café, naïve, Ünïcödé ∑ ∞ ≠",
  "日本語のテキスト",
  "emoji 🎉🐱 and a ZWJ sequence 🐱‍👤 ok",
  "digits 0123456789 3.14159 1,000,000 2026",
  "",
  " ",
  "a",
  "<s> literal angle brackets </s>",
  "zero width\u200bjoin and a BOM \ufeff inside",
];

const corpusLines = readFileSync(join(SHARED, "corpora/tinystories_excerpt.txt"), "utf8")
  .split("\n")
  .filter((l) => l.trim() !== "")
  .slice(0, 150);

function bytesOf(tok: { decodePiece(prev: number, t: number): Uint8Array }, ids: number[]): string {
  return ids
    .slice(1)
    .map((t, i) => Buffer.from(tok.decodePiece(ids[i], t)).toString("latin1"))
    .join("");
}

describe.each([
  ["tok512.bin", TOK_512, 512],
  ["tokenizer.bin (Llama 2)", join(SHARED, "models/tokenizer.bin"), 32000],
] as const)("tokenizer.json converted from %s", (_, path, vocab) => {
  const ref = Tokenizer.load(path, vocab);
  const hf = HfTokenizer.fromJson(llama2cTokenizerToJson(ref), {}, "tokenizer.json", vocab);

  it("HF-TOK-GOLDEN: ids of ASCII, Unicode, emoji, whitespace runs and digits equal the llama2.c encoder's, with and without BOS/EOS", () => {
    for (const s of [...STRINGS, ...corpusLines]) {
      if (s.startsWith("<s>")) continue; // a known gap, below
      expect(hf.encode(s, true, false), JSON.stringify(s)).toEqual(ref.encode(s, true, false));
      expect(hf.encode(s, false, true), JSON.stringify(s)).toEqual(ref.encode(s, false, true));
    }
  });

  it("HF-TOK-PIECES: decodePiece gives the llama2.c tokenizer's bytes token by token (byte fallback, space after BOS)", () => {
    for (const s of [...STRINGS, ...corpusLines]) {
      const ids = ref.encode(s, true, false);
      expect(bytesOf(hf, ids), JSON.stringify(s)).toBe(bytesOf(ref, ids));
    }
    expect(hf.decode(ref.encode("Grüße 🎉 ok", true, true))).toBe("Grüße 🎉 ok");
  });

  it("HF-TOK-ARGS: encode and decode check their arguments as the llama2.c tokenizer does (same checks, same errors): non-string text, out-of-range or non-integer ids, a non-array", () => {
    const errorOf = (f: () => unknown): Error => {
      try {
        f();
      } catch (e) {
        return e as Error;
      }
      throw new Error("no error");
    };
    // The same error class and message, but for the method and file named.
    const same = (f: () => unknown, g: () => unknown, re: RegExp) => {
      const [a, b] = [errorOf(f), errorOf(g)];
      expect(a.constructor, a.message).toBe(b.constructor);
      expect(a.message).toMatch(re);
      expect(a.message.replace("HfTokenizer.", "Tokenizer.").replace("tokenizer.json:", `${path}:`)).toBe(b.message);
    };
    for (const text of [undefined, null, 42, ["a"]]) {
      same(
        () => hf.encode(text as never, true, false),
        () => ref.encode(text as never, true, false),
        /^HfTokenizer\.encode: text must be a string, got /,
      );
    }
    expect(errorOf(() => hf.encode(undefined as never, true, false))).toBeInstanceOf(TypeError);
    for (const id of [vocab, -1, 1.5, Number.NaN, "5"]) {
      same(
        () => hf.decode([1, 300, id as number]),
        () => ref.decode([1, 300, id as number]),
        /^tokenizer\.json: token id .* is out of range \[0, \d+\)$/,
      );
      same(
        () => hf.decodePiece(1, id as number),
        () => ref.decodePiece(1, id as number),
        /out of range/,
      );
    }
    expect(errorOf(() => hf.decode([vocab]))).toBeInstanceOf(RangeError);
    expect(errorOf(() => hf.decode([1, "5" as never])).message).toBe(`tokenizer.json: token id "5" (string) is out of range [0, ${vocab})`);
    for (const tokens of [undefined, null, 7, "abc"]) {
      same(
        () => hf.decode(tokens as never),
        () => ref.decode(tokens as never),
        /^HfTokenizer\.decode: tokens must be an array of token ids, got /,
      );
    }
    // Valid calls are unchanged (typed arrays of ids decode too).
    expect(hf.decode(Int32Array.from(ref.encode("Once upon", true, false)) as never)).toBe(hf.decode(ref.encode("Once upon", true, false)));
    expect(hf.encode("", false, false)).toEqual([]);
  });

  it("HF-TOK-GAP: a literal '<s>' in the text is the special token for tokenizer.json, bytes for llama2.c (documented)", () => {
    const s = "<s> x";
    expect(hf.encode(s, false, false)).toContain(1);
    expect(ref.encode(s, false, false)).not.toContain(1);
  });
});

describe("Llama 2 golden ids", () => {
  it("HF-TOK-LLAMA2: recorded ids of the Llama 2 vocabulary", () => {
    const hf = HfTokenizer.fromJson(llama2cTokenizerToJson(Tokenizer.load(join(SHARED, "models/tokenizer.bin"), 32000)), {}, "t", 32000);
    expect(hf.encode("Once upon a time", true, false)).toEqual([1, 9038, 2501, 263, 931]);
    expect(hf.encode("  two  spaces\tand\ttabs\n\nnewlines", true, false)).toEqual([1, 259, 1023, 29871, 8162, 12, 392, 12, 21175, 13, 13, 1482, 9012]);
    expect(hf.encode("Grüße, café", true, false)).toEqual([1, 1632, 29993, 5831, 29892, 274, 28059]);
    expect(hf.encode("日本語", true, false)).toEqual([1, 29871, 30325, 30346, 30968]);
    expect(hf.encode("emoji 🎉🐱", true, false)).toEqual([1, 953, 29877, 2397, 29871, 243, 162, 145, 140, 243, 162, 147, 180]);
    expect(hf.encode("digits 0123456789 3.14", true, false)).toEqual([1, 13340, 29871, 29900, 29896, 29906, 29941, 29946, 29945, 29953, 29955, 29947, 29929, 29871, 29941, 29889, 29896, 29946]);
  });
});

describe("byte-level (GPT-2 style) tokenizer.json", () => {
  it("HF-TOK-BYTELEVEL: pieces map back to the text's UTF-8 bytes, emoji included", () => {
    // bytes_to_unicode, built independently of the module: printable bytes map to themselves, the rest to 256 + k
    const chars: string[] = [];
    let k = 0;
    for (let b = 0; b < 256; b++) {
      const keep = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
      chars.push(String.fromCodePoint(keep ? b : 256 + k++));
    }
    const vocab: Record<string, number> = { "<unk>": 0, "<s>": 1, "</s>": 2 };
    chars.forEach((c, b) => (vocab[c] = 3 + b));
    const sp = chars[0x20];
    vocab[`${sp}t`] = 259;
    vocab["he"] = 260;
    vocab[`${sp}the`] = 261;
    const json = {
      version: "1.0",
      added_tokens: [0, 1, 2].map((id) => ({ id, content: ["<unk>", "<s>", "</s>"][id], single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
      normalizer: null,
      pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
      post_processor: null,
      decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: {
        type: "BPE",
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: "",
        end_of_word_suffix: "",
        fuse_unk: false,
        byte_fallback: false,
        vocab,
        merges: [
          [sp, "t"],
          ["h", "e"],
          [`${sp}t`, "he"],
        ],
      },
    };
    const tok = HfTokenizer.fromJson(json, {}, "bl.json", 262);
    for (const s of ["in the house", "Grüße 🎉🐱", "  spaces\n"]) {
      const ids = tok.encode(s, true, false);
      expect(Buffer.from(bytesOf(tok, ids), "latin1").toString("utf8")).toBe(s);
    }
    expect(tok.encode("in the", false, false)).toEqual([3 + 0x69, 3 + 0x6e, 261]);
  });
});

describe("tokenizer.json files", () => {
  it("HF-TOK-ERRORS: a BOS at another id, a vocab larger than the model's, bad JSON, a missing file: refused naming the file", () => {
    const json = llama2cTokenizerToJson(Tokenizer.load(TOK_512, 512));
    const dir = join(tmp, "bad");
    mkdirSync(dir);
    const file = join(dir, "tokenizer.json");
    writeFileSync(file, JSON.stringify(json));
    expect(formatError(() => loadTokenizer(file, 100), file).message).toMatch(/token id 511 is outside the model's vocab of 100/);
    writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify({ bos_token: "</s>" }));
    expect(formatError(() => loadTokenizer(file, 512), file).message).toMatch(/bos_token "<\/s>" has id 2; the decoders need id 1/);
    rmSync(join(dir, "tokenizer_config.json"));
    writeFileSync(file, "{");
    expect(formatError(() => loadTokenizer(file, 512), file).message).toMatch(/not valid JSON/);
    writeFileSync(file, JSON.stringify({ version: "1.0" }));
    expect(formatError(() => loadTokenizer(file, 512), file).message).toMatch(/missing "model"/);
    formatError(() => loadTokenizer(join(dir, "none.json"), 512), join(dir, "none.json"));
  });

  it("HF-TOK-JSON-CHECKS: the parts read (model type, vocab ids, merges, added tokens) are checked before the library builds anything: no hang on a huge id, no silent duplicate or negative id, no raw library error", () => {
    const good = llama2cTokenizerToJson(Tokenizer.load(TOK_512, 512)) as { model: Record<string, unknown>; added_tokens?: unknown };
    const file = join(tmp, "checks.json");
    const refuse = (edit: (j: typeof good) => void, message: RegExp) => {
      const j = structuredClone(good);
      edit(j);
      writeFileSync(file, JSON.stringify(j));
      const started = performance.now();
      expect(formatError(() => loadTokenizer(file, 512), file).message).toMatch(message);
      expect(performance.now() - started).toBeLessThan(5000);
    };
    const vocab = (j: typeof good) => j.model.vocab as Record<string, number>;
    refuse((j) => (vocab(j).zzzz = 2147483647), /token id 2147483647 is outside the model's vocab of 512/);
    refuse((j) => (j.added_tokens = [...((j.added_tokens as unknown[]) ?? []), { id: 2147483647, content: "<big>" }]), /token id 2147483647 is outside the model's vocab of 512/);
    refuse((j) => (vocab(j).zzzz = -1), /model.vocab entry "zzzz" has id -1, expected an integer >= 0/);
    refuse((j) => (vocab(j).zzzz = 510.5), /model.vocab entry "zzzz" has id 510.5/);
    refuse((j) => (vocab(j).zzzz = 300), /model.vocab gives id 300 to both/);
    for (const type of ["WordPiece", "Unigram", "XYZ", undefined]) refuse((j) => (j.model.type = type), /model.type .* is not supported \(expected "BPE"/);
    for (const merges of [undefined, null, "a b", [1], [null], [["a"]], ["a b c"], [{ a: 1 }]]) refuse((j) => (j.model.merges = merges), /model.merges (must be a list|entry 0 is .*, expected two pieces)/);
    refuse((j) => (j.added_tokens = null), /added_tokens must be a list, found null/);
    refuse((j) => (j.added_tokens = [{ id: -5, content: "x" }]), /added_tokens entry 0 is .*, expected \{ id: an integer >= 0, content: a string \}/);
    // A file without added_tokens loads (the library would iterate them anyway).
    const j = structuredClone(good);
    delete j.added_tokens;
    writeFileSync(file, JSON.stringify(j));
    expect(loadTokenizer(file, 512).encode("Once upon", true, false)).toEqual(Tokenizer.load(TOK_512, 512).encode("Once upon", true, false));
  });

  it("HF-TOK-HOSTILE: a regex that backtracks without bound, a template that drops the text, a vocab with a hole, an unknown unk_token, a mistyped step parameter, a merge of missing pieces: refused at load, naming the file and the part", () => {
    const good = llama2cTokenizerToJson(Tokenizer.load(TOK_512, 512)) as Record<string, unknown> & { model: Record<string, unknown>; normalizer: { normalizers: Record<string, unknown>[] } };
    const file = join(tmp, "hostile.json");
    const load = (edit: (j: typeof good) => void) => {
      const j = structuredClone(good);
      edit(j);
      writeFileSync(file, JSON.stringify(j));
      return loadTokenizer(file, 512);
    };
    const refuse = (edit: (j: typeof good) => void, message: RegExp) => expect(formatError(() => load(edit), file).message).toMatch(message);
    const split = (regex: string) => (j: typeof good) => (j.pre_tokenizer = { type: "Split", pattern: { Regex: regex }, behavior: "Isolated", invert: false });
    // (a+)+$ took minutes on a 36-byte prompt; a*a*a*b takes 50 s on 1000 a's.
    refuse(split("(a+)+$"), /pre_tokenizer\.pattern\.Regex "\(a\+\)\+\$" is refused: it repeats a group that itself repeats/);
    refuse(split("(a|aa)*$"), /is refused: it repeats a group that holds alternatives/);
    refuse(split("a*a*a*b"), /is refused: one branch chains more than 2 unbounded repetitions/);
    // \s*\s*! ran for minutes on 10,000 spaces: two repetitions, then a part that must match.
    refuse(split("\\s*\\s*!"), /is refused: after 2 chained unbounded repetitions, ! must still match/);
    refuse(split("a{0,99999}a{0,99999}b"), /is refused: after 2 chained unbounded repetitions, b must still match/);
    refuse(split("(a)\\1"), /is refused: it uses a backreference/);
    refuse((j) => (j.normalizer.normalizers[1].pattern = { Regex: "(\\s+)+x" }), /normalizer\.normalizers\[1\]\.pattern\.Regex .* is refused/);
    // The published pre-tokenizer patterns load: GPT-2's, Llama 3's (GPT-4's), and a regex-free BLOOM-like class.
    for (const regex of ["'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+", "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"]) {
      expect(load(split(regex)).vocabSize).toBe(512);
    }
    // A template without $A kept only BOS: every prompt was dropped.
    const template =
      (single: unknown[], special: Record<string, unknown> = {}) =>
      (j: typeof good) =>
        (j.post_processor = { type: "TemplateProcessing", single, pair: [...single, { Sequence: { id: "B", type_id: 1 } }], special_tokens: special });
    const bos = { "<s>": { id: "<s>", ids: [1], tokens: ["<s>"] } };
    refuse(template([{ SpecialToken: { id: "<s>", type_id: 0 } }], bos), /post_processor\.single has no \{"Sequence": \{"id": "A"\}\}: it would drop the text/);
    refuse(template([{ SpecialToken: { id: "<nothere>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }]), /post_processor\.single names the special token "<nothere>", which special_tokens does not define/);
    refuse((j) => (j.post_processor = { type: "Nope" }), /post_processor\.type "Nope" is not one of/);
    // Llama 2's own template loads, and encode adds BOS once (the post-processor is not run; encode adds BOS).
    const llama = load(template([{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }], bos));
    expect(llama.encode("Once upon", true, false)).toEqual(Tokenizer.load(TOK_512, 512).encode("Once upon", true, false));
    // A hole: id 68 (<0x41>) had no piece, and decoded to nothing.
    refuse((j) => delete (j.model.vocab as Record<string, number>)["<0x41>"], /expected 512 tokens \(the model's vocab size\) but the tokenizer holds 511 \(no piece has id 68\)/);
    // An unk_token the vocab lacks gave undefined ids from encode.
    refuse((j) => Object.assign(j.model, { byte_fallback: false, unk_token: "<nothere>" }), /model\.unk_token "<nothere>" is neither in model\.vocab nor in added_tokens/);
    // A numeric "prepend" put "5" before every prompt; a non-list of normalizers was the library's TypeError.
    refuse((j) => (j.normalizer.normalizers[0].prepend = 5), /normalizer\.normalizers\[0\] \(a Prepend step\) needs "prepend", a string, found 5/);
    refuse((j) => (j.normalizer.normalizers[1].content = 7), /normalizer\.normalizers\[1\]\.content is 7, expected a string/);
    refuse((j) => ((j as Record<string, unknown>).normalizer = { type: "Sequence", normalizers: 5 }), /normalizer\.normalizers is 5, expected a list/);
    refuse((j) => (j.decoder = { type: "Strip", content: " ", start: -1, stop: 0 }), /decoder\.start is -1, expected an integer >= 0/);
    // A merge of pieces the vocab lacks was "x.split is not a function"; merges as strings and pairs mixed load.
    refuse((j) => (j.model.merges as unknown[]).unshift("zzq qqz"), /model\.merges entry 0 \("zzq qqz"\) needs the piece "zzq", which model\.vocab lacks/);
    const mixed = load((j) => {
      const merges = j.model.merges as string[][];
      j.model.merges = merges.map((m, i) => (i % 2 === 0 ? m.join(" ") : m));
    });
    expect(mixed.encode("Once upon a time", true, false)).toEqual(Tokenizer.load(TOK_512, 512).encode("Once upon a time", true, false));
  });

  it("HF-GENERATE: `ptp convert --to hf --tokenizer` then `ptp generate --model DIR` (its tokenizer.json) prints llama2.c's golden outputs", async () => {
    const dir = join(tmp, "stories-hf");
    const r = await runCli("convert", "--model", STORIES_260K, "--to", "hf", "--tokenizer", TOK_512, "--out", dir);
    expect(r.code).toBe(0);
    const golden: { cases: GoldenCase[] } = JSON.parse(readFileSync(GOLDEN, "utf8"));
    for (const c of golden.cases) {
      const g = await runCli("generate", "--model", dir, "--prompt", c.prompt, "--steps", String(c.steps), "--temperature", String(c.temperature), "--top-p", String(c.topp), "--seed", String(c.seed), "--backend", "wasm");
      expect(g.code, g.stderr).toBe(0);
      expect(g.stdout).toBe(c.output);
    }
    const noTok = await runCli("generate", "--model", STORIES_260K, "--prompt", "x");
    expect(noTok.code).toBe(2);
    expect(noTok.stderr).toMatch(/--tokenizer is required/);
  });
});

describe("HF folders in the other commands", () => {
  it("HF-PREGENERATE: `ptp pregenerate` on the HF folder with its tokenizer.json writes the same dataset bytes as on the .bin with tok512.bin", async () => {
    const dir = join(tmp, "stories-hf-pregen");
    expect((await runCli("convert", "--model", STORIES_260K, "--to", "hf", "--tokenizer", TOK_512, "--out", dir)).code).toBe(0);
    const prompts = join(tmp, "prompts.txt");
    writeFileSync(prompts, "Once upon a time\nThe cat sat\n");
    const common = ["--prompts", prompts, "--samples", "2", "--steps", "24", "--seed", "5", "--backend", "wasm"];
    const a = join(tmp, "a.ptpd"),
      b = join(tmp, "b.ptpd");
    const ra = await runCli("pregenerate", "--model", STORIES_260K, "--tokenizer", TOK_512, "--out", a, ...common);
    expect(ra.code, ra.stderr).toBe(0);
    const rb = await runCli("pregenerate", "--model", dir, "--tokenizer", join(dir, "tokenizer.json"), "--out", b, ...common);
    expect(rb.code, rb.stderr).toBe(0);
    expect(Buffer.compare(readFileSync(a), readFileSync(b))).toBe(0);
  });
});

describe("tokenizer.json back to tokenizer.bin", () => {
  it.each([
    ["tok512.bin", TOK_512, 512],
    ["tokenizer.bin (Llama 2)", join(SHARED, "models/tokenizer.bin"), 32000],
  ] as const)("HF-TOK-BACK: %s -> tokenizer.json -> tokenizer.bin has the same pieces and encodes every string to the same ids", (_, path, vocab) => {
    const ref = Tokenizer.load(path, vocab);
    const back = Tokenizer.fromBytes(llama2cTokenizerBytes(llama2cTokenizerToJson(ref), "t.json"), vocab, "back");
    for (let id = 0; id < vocab; id++) expect(Buffer.from(back.piece(id)).equals(Buffer.from(ref.piece(id))), `piece ${id}`).toBe(true);
    for (const s of [...STRINGS, ...corpusLines]) expect(back.encode(s, true, true), JSON.stringify(s)).toEqual(ref.encode(s, true, true));
  });

  it("HF-TOK-BACK-CLI: `ptp convert --to llama2c --tokenizer-out` of an HF folder writes a tokenizer.bin giving the golden outputs", async () => {
    const dir = join(tmp, "stories-hf-back");
    expect((await runCli("convert", "--model", STORIES_260K, "--to", "hf", "--tokenizer", TOK_512, "--out", dir)).code).toBe(0);
    const bin = join(tmp, "back.bin"),
      tok = join(tmp, "back-tok.bin");
    const r = await runCli("convert", "--model", dir, "--to", "llama2c", "--out", bin, "--tokenizer-out", tok);
    expect(r.code, r.stderr).toBe(0);
    const golden: { cases: GoldenCase[] } = JSON.parse(readFileSync(GOLDEN, "utf8"));
    const c = golden.cases[0];
    const g = await runCli("generate", "--model", bin, "--tokenizer", tok, "--prompt", c.prompt, "--steps", String(c.steps), "--temperature", String(c.temperature), "--top-p", String(c.topp), "--seed", String(c.seed), "--backend", "wasm");
    expect(g.code, g.stderr).toBe(0);
    expect(g.stdout).toBe(c.output);
    const bad = join(dir, "bad.json");
    writeFileSync(bad, JSON.stringify({ model: { type: "WordPiece", vocab: {} } }));
    const e = await runCli("convert", "--model", dir, "--to", "llama2c", "--out", join(tmp, "x.bin"), "--tokenizer", bad, "--tokenizer-out", join(tmp, "x-tok.bin"));
    expect(e.code).toBe(1);
    expect(e.stderr).toMatch(/only Llama-style tokenizer.json files/);
    expect(existsSync(join(tmp, "x.bin"))).toBe(false);
  });
});
