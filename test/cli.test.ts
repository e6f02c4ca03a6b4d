import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { readCheckpoint } from "../src/io/checkpoint.js";
import { ROOT, runCli, STORIES_260K, TOK_512 } from "./helpers.js";

const ptp = runCli;

const MODEL = ["--model", STORIES_260K, "--tokenizer", TOK_512];
const tmp = mkdtempSync(join(tmpdir(), "ptp-cli-"));

describe("CLI usage errors exit 2 with a usage message", () => {
  it.each([
    ["no command", []],
    ["an unknown command", ["frobnicate"]],
    ["an unknown flag", ["generate", ...MODEL, "--tempreature", "1"]],
    ["a missing required flag", ["generate", "--tokenizer", TOK_512]],
    ["a malformed number", ["generate", ...MODEL, "--temperature", "hot"]],
    ["a non-integer where an integer is expected", ["generate", ...MODEL, "--steps", "2.5"]],
    ["a flag without its value", ["generate", ...MODEL, "--steps"]],
    ["an unknown backend", ["generate", ...MODEL, "--backend", "gpu"]],
    ["a negative temperature", ["generate", ...MODEL, "--temperature", "-1"]],
    ["top-p outside [0, 1]", ["generate", ...MODEL, "--top-p", "1.5"]],
    ["a non-numeric seed", ["generate", ...MODEL, "--seed", "abc"]],
    ["both --seed and --aux-file", ["generate", ...MODEL, "--seed", "1", "--aux-file", "u.txt"]],
    ["a stray positional argument", ["generate", ...MODEL, "hello"]],
    ["random-model with an unknown shape", ["random-model", "--shape", "7B", "--out", "x.bin"]],
  ])("CLI-USAGE: %s", async (_, argv) => {
    const r = await ptp(...argv);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/usage: ptp/);
  });

  it("CLI-USAGE: the installed bin exits 2 and prints usage on stderr", () => {
    const run = spawnSync(process.execPath, [resolve(ROOT, "bin/ptp.js"), "generate", "--steps", "x"], { encoding: "utf8" });
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/--steps must be a number/);
    expect(run.stderr).toMatch(/usage: ptp generate/);
  });

  it("CLI-HELP: --help prints the command's usage and exits 0", async () => {
    const r = await ptp("generate", "--help");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/--aux-file FILE/);
  });
});

describe("CLI failures name the file", () => {
  it("CLI-ERR-FILE: a missing checkpoint exits 1 naming the path", async () => {
    const r = await ptp("generate", "--model", join(tmp, "nope.bin"), "--tokenizer", TOK_512);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(join(tmp, "nope.bin"));
  });

  it("CLI-ERR-AUX: an aux file that runs out of u's exits 1 saying so; the text streamed so far ends its line", async () => {
    const file = join(tmp, "short.txt");
    writeFileSync(file, "0.5\n0.25\n");
    const r = await ptp("generate", ...MODEL, "--temperature", "1", "--steps", "20", "--aux-file", file);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/needed more than 2 auxiliary variables/);
    expect(r.stdout).not.toBe("");
    expect(r.stdout.endsWith("\n")).toBe(true);
    // More u's than the run reads: said, not ignored silently.
    const long = join(tmp, "long.txt");
    writeFileSync(long, `${Array.from({ length: 9 }, (_, i) => (i + 0.5) / 10).join("\n")}\n`);
    const more = await ptp("generate", ...MODEL, "--temperature", "1", "--steps", "6", "--no-stop", "--prompt", "", "--aux-file", long);
    expect(more.code, more.stderr).toBe(0);
    expect(more.stderr).toMatch(new RegExp(`note: --aux-file ${long} held 9 u's; the run used \\d+ \\(one per sampled token\\), the rest were not read`));
  });
});

describe("ptp generate", () => {
  it("CLI-JSON: --json prints {tokens, text, stats} with tokens/s and model calls", async () => {
    const r = await ptp("generate", ...MODEL, "--prompt", "Once upon a time", "--steps", "40", "--temperature", "0", "--json");
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.tokens[0]).toBe(1);
    expect(out.tokens.length).toBe(41);
    expect(out.text.startsWith("Once upon a time")).toBe(true);
    expect(out.stats.modelCalls).toBeGreaterThan(0);
    expect(out.stats.tokensPerSecond).toBeGreaterThan(0);
  });

  it("CLI-AUX-FILE: the u's of --aux-file drive sampling exactly like the same u's from the xorshift stream", async () => {
    // Write the first 64 u's of the seed-42 stream to a file: both runs must print the same text.
    const { XorShiftAux } = await import("../src/sampling/aux.js");
    const stream = new XorShiftAux(42n);
    const file = join(tmp, "u42.txt");
    writeFileSync(file, "# u's of xorshift seed 42\n" + Array.from({ length: 64 }, () => String(stream.next())).join("\n") + "\n");
    const common = ["generate", ...MODEL, "--temperature", "1", "--steps", "48"];
    const a = await ptp(...common, "--seed", "42");
    const b = await ptp(...common, "--aux-file", file);
    expect(a.code).toBe(0);
    expect(b.code).toBe(0);
    expect(b.stdout).toBe(a.stdout);
  });

  it("CLI-RANDOM-MODEL: random-model writes a loadable checkpoint of the shape; --no-stop runs all steps", async () => {
    const out = join(tmp, "r260k.bin");
    const w = await ptp("random-model", "--shape", "260K", "--seed", "3", "--out", out);
    expect(w.code).toBe(0);
    expect(readCheckpoint(out).config).toMatchObject({ dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 512 });
    const r = await ptp("generate", "--model", out, "--tokenizer", TOK_512, "--steps", "30", "--temperature", "0", "--no-stop", "--json");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).tokens.length).toBe(31);
  });
});
