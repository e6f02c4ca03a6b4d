import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BYTE_TOKEN_OFFSET, Tokenizer } from "../src/io/tokenizer.js";
import { buildCharTokenizer, charVocabulary, loadTokenizerFile, tokenizerVocabSize } from "../src/io/char-tokenizer.js";
import { generateStories, heldOutSeed, MAX_STORY_LENGTH, MIN_STORY_LENGTH, storyPrompt } from "../src/data/synthetic.js";
import { runCli } from "./helpers.js";

const tmp = mkdtempSync(join(tmpdir(), "ptp-synth-"));
const STORIES = generateStories(500, 1);

/** The hero's name: the one the opening sentence introduces. */
function heroOf(story: string): string {
  const m = /^(?:Once upon a time, there was an? \w+ \w+ named (\w+)|One [\w ]+, an? \w+ \w+ named (\w+)|(\w+) was an? \w+ \w+ who|There once was an? \w+ \w+ called (\w+))/.exec(story);
  if (!m) throw new Error(`no opening recognised in ${JSON.stringify(story)}`);
  return m.slice(1).find((x) => x !== undefined)!;
}

describe("the synthetic story grammar", () => {
  it("SYN-DETERMINISTIC: the same seed gives the same stories, and a longer run extends a shorter one", () => {
    expect(generateStories(500, 1)).toEqual(STORIES);
    expect(generateStories(40, 1)).toEqual(STORIES.slice(0, 40));
    expect(generateStories(0, 1)).toEqual([]);
  });

  it("SYN-SEEDS-DIFFER: different seeds give different stories", () => {
    for (const seed of [2, 3, heldOutSeed(1)]) {
      const other = generateStories(100, seed);
      const shared = other.filter((s) => STORIES.includes(s)).length;
      expect(shared, `seed ${seed}`).toBeLessThan(5);
    }
    expect(heldOutSeed(1)).not.toBe(1);
    expect(heldOutSeed(0)).not.toBe(0);
  });

  it("SYN-LINES: one line per story, printable ASCII, within the length bounds, and varied", () => {
    for (const s of STORIES) {
      expect(s.length).toBeGreaterThanOrEqual(MIN_STORY_LENGTH);
      expect(s.length).toBeLessThanOrEqual(MAX_STORY_LENGTH);
      expect(s).toMatch(/^[\x20-\x7e]+$/);
      expect(s).toMatch(/^[A-Z]/);
      expect(s).toMatch(/[.!]$/);
    }
    expect(new Set(STORIES).size).toBe(STORIES.length);
  });

  it("SYN-STRUCTURE: the hero's name recurs, articles agree, every story has a problem and an ending", () => {
    for (const s of STORIES) {
      const hero = heroOf(s);
      expect(s.split(hero).length - 1, s).toBeGreaterThanOrEqual(3);
      expect(s, s).not.toMatch(/\ba [aeiou]/i);
      expect(s, s).not.toMatch(/\ban [^aeiou]/i);
      expect(s, s).toMatch(/\. But /);
      expect(s, s).toMatch(/(knew that|learned that|best friends)[^.]*\.$/);
    }
  });

  it("SYN-PROMPTS: a prompt is the first K words of a story", () => {
    expect(storyPrompt("Once upon a time, there was", 4)).toBe("Once upon a time,");
    expect(storyPrompt("Tom ran.", 5)).toBe("Tom ran.");
  });
});

describe("the character-level tokenizer", () => {
  const text = STORIES.join("\n");
  const bytes = buildCharTokenizer(text);
  const vocabSize = tokenizerVocabSize(bytes);
  const tokenizer = Tokenizer.fromBytes(bytes, vocabSize, "char-tok");
  const chars = charVocabulary(text);

  it("SYN-CHAR-TOK-LAYOUT: <unk>, BOS, EOS, the 256 byte tokens at 3..258, then one token per character", () => {
    expect(vocabSize).toBe(3 + 256 + chars.length);
    expect(new TextDecoder().decode(tokenizer.piece(1))).toBe("\n<s>\n");
    expect(new TextDecoder().decode(tokenizer.piece(2))).toBe("\n</s>\n");
    for (let b = 0; b < 256; b++) expect(new TextDecoder().decode(tokenizer.piece(b + BYTE_TOKEN_OFFSET))).toBe(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
    expect(new Set(chars).size).toBe(chars.length);
    for (const ch of [...new Set(text)]) expect(tokenizer.lookup(ch), JSON.stringify(ch)).toBeGreaterThanOrEqual(259);
    expect(tokenizer.lookup(" ")).toBe(259); // the most frequent character
  });

  it("SYN-CHAR-TOK: every story encodes to BOS, the dummy-prefix space, then one token per character, and decodes back", () => {
    const space = tokenizer.lookup(" ");
    for (const s of STORIES) {
      const tokens = tokenizer.encode(s, true, false);
      expect(tokens).toEqual([1, space, ...[...s].map((ch) => tokenizer.lookup(ch))]);
      expect(tokenizer.decode(tokens)).toBe(s);
    }
  });

  it("SYN-CHAR-TOK-FALLBACK: characters outside the corpus fall back to byte tokens and still round-trip as bytes", () => {
    const s = "Tom saw \u00e9t\u00e9 and \u2603!";
    const tokens = tokenizer.encode(s, true, false);
    expect(new TextDecoder().decode(tokenizer.decodeBytes(tokens, false))).toBe(s);
  });

  it("SYN-CHAR-TOK-ANY-TEXT: a tokenizer built from any text has one token per code point of it", () => {
    const odd = "caf\u00e9 \u2603\n\u{1F600}<0x41>[]\u00e9";
    const tok = Tokenizer.fromBytes(buildCharTokenizer(odd), tokenizerVocabSize(buildCharTokenizer(odd)));
    const tokens = tok.encode(odd, false, false);
    expect(tokens.length).toBe(1 + [...odd].length);
    expect(tokens.slice(1).every((t) => t >= 259)).toBe(true);
    expect(new TextDecoder().decode(tok.decodeBytes([1, ...tokens], false))).toBe(odd);
  });
});

describe("ptp synth", () => {
  const corpus = join(tmp, "corpus.txt"),
    tok = join(tmp, "tok.bin"),
    prompts = join(tmp, "prompts.txt");

  it("SYN-CLI: writes the corpus, its char tokenizer and held-out prompts, deterministically", async () => {
    const argv = ["synth", "--out", corpus, "--stories", "300", "--seed", "1", "--tokenizer-out", tok, "--prompts-out", prompts, "--prompt-count", "20", "--prompt-words", "5"];
    const r = await runCli(...argv);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`wrote ${corpus}: 300 stories`);
    expect(r.stderr).toMatch(/character-level tokenizer, vocab size \d+/);
    const lines = readFileSync(corpus, "utf8");
    expect(lines).toBe(STORIES.slice(0, 300).join("\n") + "\n");
    const heldOut = generateStories(20, heldOutSeed(1)).map((s) => storyPrompt(s, 5));
    expect(readFileSync(prompts, "utf8")).toBe(heldOut.join("\n") + "\n");
    const tokenizer = loadTokenizerFile(tok);
    for (const line of lines.trimEnd().split("\n")) expect(tokenizer.encode(line, false, false).length).toBe(1 + line.length);

    // Existing outputs are not replaced without --force (issue 11); with it, the rerun writes the same bytes.
    const refused = await runCli(...argv);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/exists; pass --force to overwrite it/);
    const again = await runCli(...argv, "--force");
    expect(again.code).toBe(0);
    expect(readFileSync(corpus, "utf8")).toBe(lines);
  });

  it("SYN-CLI-PROGRESS: says what it generates, shows a progress line over every story (the corpus's and the held-out prompts'), then writes the files", async () => {
    const dir = mkdtempSync(join(tmp, "progress-"));
    const r = await runCli("synth", "--out", join(dir, "c.txt"), "--stories", "300", "--tokenizer-out", join(dir, "t.bin"), "--prompts-out", join(dir, "p.txt"), "--prompt-count", "20");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^synth: generating 300 stories \(seed 1\) and 20 held-out prompts \(seed \d+\)\n/);
    expect(r.stderr).toMatch(/\nsynth \[#{20}\] 320\/320 {2}100\.0% {2}[\d.]+ story\/s/);
    expect(r.stderr.indexOf("320/320")).toBeLessThan(r.stderr.indexOf("wrote "));
    expect(readdirSync(dir).sort()).toEqual(["c.txt", "p.txt", "t.bin"]);
  });

  it("SYN-CLI-PROMPTS-ONLY: --prompt-seed picks the held-out stream; no corpus needed", async () => {
    const only = join(tmp, "eval.txt");
    const r = await runCli("synth", "--prompts-out", only, "--prompt-count", "3", "--prompt-seed", "99");
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(only, "utf8")).toBe(
      generateStories(3, 99)
        .map((s) => storyPrompt(s, 4))
        .join("\n") + "\n",
    );
  });

  it.each([
    [["--stories", "10"], "nothing to write"],
    [["--out", "x.txt", "--stories", "0"], "--stories must be a positive integer"],
    [["--out", "x.txt", "--seed", "-1"], "--seed must be in"],
    [["--out", "x.txt", "--prompt-words", "3"], "go with --prompts-out"],
    [["--prompts-out", "p.txt", "--seed", "5", "--prompt-seed", "5"], "--prompt-seed must differ from --seed"],
    [["--prompts-out", "p.txt", "--prompt-count", "0"], "--prompt-count must be a positive integer"],
    [["--prompts-out", "p.txt", "--prompt-words", "99999999"], "--prompt-words 99999999 is not shorter than every held-out story"],
    [["--out", "x.txt", "--bogus"], "unknown flag --bogus"],
  ])("SYN-CLI-USAGE: %j exits 2 with a usage message", async (args, message) => {
    const r = await runCli("synth", ...args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
    expect(r.stderr).toContain("usage: ptp synth");
  });
});
