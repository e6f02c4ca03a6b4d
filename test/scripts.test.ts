// The helper scripts (scripts/plot-accepted.mjs, scripts/stories-prompts.mjs)
// hold to the CLI's error standard, run as a user runs them: a bad
// argument is a one-line usage error and exit 2; a missing, non-regular,
// empty, binary or malformed file is a one-line error naming the file and
// what was expected, exit 1; never a stack trace, a hang or an overwritten
// input; what they write is unchanged for good input.
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT, SHARED } from "./helpers.js";

const tmp = mkdtempSync(join(tmpdir(), "ptp-scripts-"));
const PLOT = join(ROOT, "scripts/plot-accepted.mjs");
const PROMPTS = join(ROOT, "scripts/stories-prompts.mjs");
const STACK = /\n\s+at |\bat \S+ \(|node:internal|ERR_[A-Z_]+|SyntaxError|TypeError|RangeError/;

function run(script: string, ...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [script, ...args], { cwd: tmp, encoding: "utf8", timeout: 20_000 });
  expect(r.error, `${args.join(" ")} did not finish`).toBeUndefined();
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** One line on stderr, starting with the script's name, no stack. */
function oneLineError(r: { code: number | null; stderr: string }, code: number, name: string, what: string): void {
  expect(r.code, `${what}: ${r.stderr}`).toBe(code);
  expect(r.stderr.trim().split("\n"), what).toHaveLength(1);
  expect(r.stderr, what).toMatch(new RegExp(`^${name}: `));
  expect(r.stderr, what).not.toMatch(STACK);
}

const file = (name: string, content: string | Uint8Array): string => {
  const path = join(tmp, name);
  writeFileSync(path, content);
  return path;
};
const LOG = file("log.jsonl", '{"step":0,"minutes":0,"accepted":1.5}\n{"step":10,"minutes":0.5,"loss":3}\n{"step":20,"minutes":1,"accepted":2.25}\n');
const STORIES = file("stories.txt", Array.from({ length: 12 }, (_, i) => `Story number ${i} begins here. More text follows.\nA second line.\n`).join("\n"));
const EMPTY = file("empty.txt", "");
const BINARY = file(
  "binary.bin",
  Uint8Array.from({ length: 4096 }, (_, i) => (i * 131 + 7) % 256),
);
const ZEROS = file("zeros.bin", new Uint8Array(4096));
const DIR = join(tmp, "a-folder");
mkdirSync(DIR);
const FIFO = join(tmp, "fifo");
execFileSync("mkfifo", [FIFO]);

describe("SCRIPT-ERRORS: plot-accepted.mjs", () => {
  it("SCRIPT-ERRORS: bad arguments are a one-line usage error, exit 2, and nothing is written", () => {
    const cases: [string, string[]][] = [
      ["no arguments", []],
      ["no log", ["out.svg"]],
      ["unknown flag", ["--minute", "out.svg", `a=${LOG}`]],
      ["a value to a switch", ["--force=yes", "out.svg", `a=${LOG}`]],
      ["no =", ["out.svg", LOG]],
      ["empty label", ["out.svg", `=${LOG}`]],
      ["empty path", ["out.svg", "a="]],
      ["output forgotten (the first log taken as the output)", [`a=${LOG}`, `b=${LOG}`]],
      ["output is the log", ["--force", join(tmp, "same.svg"), `a=${file("same.svg", "")}`]],
    ];
    for (const [what, args] of cases) {
      const r = run(PLOT, ...args);
      oneLineError(r, 2, "plot-accepted", what);
      expect(r.stderr, what).toMatch(/usage: node scripts\/plot-accepted\.mjs/);
    }
    expect(existsSync(join(tmp, "out.svg"))).toBe(false);
    expect(readFileSync(join(tmp, "same.svg"), "utf8")).toBe("");
  });

  it("SCRIPT-ERRORS: a missing, folder, FIFO, empty, binary or malformed log is a one-line error naming it, exit 1", () => {
    const cases: [string, string, RegExp][] = [
      ["missing", join(tmp, "nope.jsonl"), /does not exist/],
      ["folder", DIR, /is a directory/],
      ["FIFO (no writer: must not hang)", FIFO, /not a regular file/],
      ["empty", EMPTY, /no lines with "accepted"/],
      ["binary", BINARY, /not valid UTF-8/],
      ["NUL bytes", ZEROS, /line 1 is not JSON/],
      ["not JSON", file("text.jsonl", '{"step":0,"accepted":1}\nhello\n{"step":1,"accepted":1}\n'), /line 2 is not JSON/],
      ["null line", file("null.jsonl", '{"step":0,"accepted":1}\nnull\n'), /line 2 is not a JSON object/],
      ["infinite value", file("inf.jsonl", '{"step":0,"accepted":1}\n{"step":1,"accepted":1e400}\n'), /line 2 has "accepted": Infinity/],
      ["string step", file("str.jsonl", '{"step":"5","accepted":1}\n'), /line 1 has "step": "5"/],
    ];
    for (const [what, path, problem] of cases) {
      const r = run(PLOT, "out.svg", `a=${path}`);
      oneLineError(r, 1, "plot-accepted", what);
      expect(r.stderr, what).toContain(`${path}: `);
      expect(r.stderr, what).toMatch(problem);
    }
    // --minutes on a log without minutes: nothing to plot, said so
    const steps = file("steps.jsonl", '{"step":0,"accepted":1}\n');
    expect(run(PLOT, "--minutes", "out.svg", `a=${steps}`).stderr).toMatch(/no lines with "accepted" and "minutes"/);
    expect(existsSync(join(tmp, "out.svg"))).toBe(false);
  });

  it("SCRIPT-ERRORS: an existing output is kept without --force (exit 1), replaced with it; a torn last line is left out with a note", () => {
    const out = file("kept.svg", "mine\n");
    const kept = run(PLOT, out, `a=${LOG}`);
    oneLineError(kept, 1, "plot-accepted", "existing output");
    // named as the usage and README name it
    expect(kept.stderr).toBe(`plot-accepted: OUT.svg ${out} already exists; pass --force to overwrite it\n`);
    expect(readFileSync(out, "utf8")).toBe("mine\n");
    const ok = run(PLOT, "--force", out, `a=${LOG}`);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).toMatch(/wrote .*kept\.svg: a \(2 points\)/);
    expect(readFileSync(out, "utf8")).toMatch(/^<svg [\s\S]*<\/svg>\n$/);
    const torn = file("torn.jsonl", '{"step":0,"accepted":1}\n{"step":5,"accepted":2}\n{"step":10,"acc');
    const t = run(PLOT, "--force", out, `a=${torn}`);
    expect(t.code, t.stderr).toBe(0);
    expect(t.stderr).toMatch(/leaving out line 3/);
    expect(t.stderr).toMatch(/a \(2 points\)/);
  });

  it("SCRIPT-ERRORS: a log longer than the call stack allows arguments to Math.max is plotted", () => {
    const long = file("long.jsonl", Array.from({ length: 200_000 }, (_, i) => `{"step":${i},"accepted":${1 + (i % 7) / 7}}`).join("\n") + "\n");
    const r = run(PLOT, "--force", join(tmp, "long.svg"), `a=${long}`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(STACK);
  });
});

describe("SCRIPT-ERRORS: stories-prompts.mjs", () => {
  it("SCRIPT-ERRORS: bad arguments are a one-line usage error, exit 2, and nothing is written", () => {
    const cases: [string, string[]][] = [
      ["no arguments", []],
      ["two arguments", [STORIES, "t.txt"]],
      ["too many", [STORIES, "t.txt", "h.txt", "5", "extra"]],
      ["unknown flag", ["--forse", STORIES, "t.txt", "h.txt"]],
      ["NaN split", [STORIES, "t.txt", "h.txt", "abc"]],
      ["hex split", [STORIES, "t.txt", "h.txt", "0x4"]],
      ["exponent split", [STORIES, "t.txt", "h.txt", "1e1"]],
      ["negative split", [STORIES, "t.txt", "h.txt", "-1"]],
      ["empty split", [STORIES, "t.txt", "h.txt", ""]],
      ["split 0: no training prompts", [STORIES, "t.txt", "h.txt", "0"]],
      ["output is the corpus", ["--force", STORIES, STORIES, "h.txt"]],
      ["both outputs the same", [STORIES, "t.txt", "t.txt"]],
      ["empty output path", [STORIES, "", "h.txt"]],
    ];
    for (const [what, args] of cases) {
      const r = run(PROMPTS, ...args);
      oneLineError(r, 2, "stories-prompts", what);
      expect(r.stderr, what).toMatch(/usage: node scripts\/stories-prompts\.mjs/);
    }
    expect(existsSync(join(tmp, "t.txt")) || existsSync(join(tmp, "h.txt"))).toBe(false);
    expect(readFileSync(STORIES, "utf8")).toMatch(/^Story number 0/);
    // the missing arguments and the usage use the README's names
    expect(run(PROMPTS, STORIES).stderr).toMatch(/^stories-prompts: missing TRAIN, HELDOUT \(usage: node scripts\/stories-prompts\.mjs \[--force\] CORPUS TRAIN HELDOUT \[SPLIT=1000\]\)\n$/);
  });

  it("SCRIPT-ERRORS: a missing, folder, FIFO, empty, binary or too-small corpus is a one-line error naming it, exit 1, and nothing is written", () => {
    const cases: [string, string, string[], RegExp][] = [
      ["missing", join(tmp, "nope.txt"), [], /does not exist/],
      ["folder", DIR, [], /is a directory/],
      ["FIFO (no writer: must not hang)", FIFO, [], /not a regular file/],
      ["empty", EMPTY, [], /no paragraph has a first sentence/],
      ["binary", BINARY, [], /not valid UTF-8/],
      ["NUL bytes", ZEROS, [], /NUL byte/],
      ["all paragraphs go to training", STORIES, ["12"], /SPLIT 12 leaves no held-out prompts/],
    ];
    for (const [what, path, split, problem] of cases) {
      const r = run(PROMPTS, path, "t.txt", "h.txt", ...split);
      oneLineError(r, 1, "stories-prompts", what);
      expect(r.stderr, what).toContain(`${path}: `);
      expect(r.stderr, what).toMatch(problem);
    }
    expect(existsSync(join(tmp, "t.txt")) || existsSync(join(tmp, "h.txt"))).toBe(false);
  });

  it("SCRIPT-ERRORS: existing outputs are kept without --force (exit 1); a good corpus splits as before", () => {
    const train = file("train.txt", "mine\n");
    const kept = run(PROMPTS, STORIES, train, "held.txt");
    oneLineError(kept, 1, "stories-prompts", "existing output");
    // named as the usage and README name them (CORPUS TRAIN HELDOUT)
    expect(kept.stderr).toBe(`stories-prompts: TRAIN ${train} already exists; pass --force to overwrite it\n`);
    expect(readFileSync(train, "utf8")).toBe("mine\n");
    const held = file("held-kept.txt", "theirs\n");
    const keptHeld = run(PROMPTS, STORIES, "fresh-train.txt", held);
    oneLineError(keptHeld, 1, "stories-prompts", "existing held-out output");
    expect(keptHeld.stderr).toBe(`stories-prompts: HELDOUT ${held} already exists; pass --force to overwrite it\n`);
    expect(readFileSync(held, "utf8")).toBe("theirs\n");
    expect(existsSync(join(tmp, "fresh-train.txt"))).toBe(false);
    const r = run(PROMPTS, "--force", STORIES, train, "held.txt", "10");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^10 training prompts -> .*, 2 held-out prompts -> held\.txt\n$/);
    expect(readFileSync(train, "utf8").split("\n").slice(0, 2)).toEqual(["Story number 0 begins here.", "Story number 1 begins here."]);
    expect(readFileSync(join(tmp, "held.txt"), "utf8")).toBe("Story number 10 begins here.\nStory number 11 begins here.\n");
  });

  it("SCRIPT-ERRORS: the README's TinyStories split gives the prompts it always gave", () => {
    const corpus = join(SHARED, "corpora/tinystories_excerpt.txt");
    if (!existsSync(corpus)) return;
    const dir = mkdtempSync(join(tmp, "readme-"));
    symlinkSync(corpus, join(dir, "corpus.txt"));
    const r = spawnSync(process.execPath, [PROMPTS, "corpus.txt", "train.txt", "held.txt"], { cwd: dir, encoding: "utf8", timeout: 20_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toBe("990 training prompts -> train.txt, 159 held-out prompts -> held.txt\n");
    // The files the script wrote before it read the corpus line by line (sha256).
    const sha = (name: string) =>
      createHash("sha256")
        .update(readFileSync(join(dir, name)))
        .digest("hex");
    expect(sha("train.txt")).toBe("bad0a9f8f5ea7c7e413e1a7cd0019df73103684095097ee6633e6c2e4bfec544");
    expect(sha("held.txt")).toBe("c0b2c457b6dd81ca14a366ff5b411bda32efc482f92e7e070690687a9528f2b3");
  });
});
