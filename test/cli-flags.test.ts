import { copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, writeFileSync, writeSync, closeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { givenFlags } from "../src/cli/args.js";
import { MAX_DRAFT_SHAPE, MAX_RANK, MAX_WINDOW } from "../src/cli/flag-groups.js";
import { HfTokenizer, llama2cTokenizerToJson } from "../src/io/hf-tokenizer.js";
import { Tokenizer } from "../src/io/tokenizer.js";
import { readCheckpoint, writeCheckpoint } from "../src/io/checkpoint.js";
import { createBackend } from "../src/backends/registry.js";
import { randomStudent } from "../src/ptp/init.js";
import { measureSpeedup } from "../src/ptp/speedup.js";
import { runChild } from "./child.js";
import { ROOT, runCli, SHARED, STORIES_260K as M, TOK_512 as T } from "./helpers.js";

// Bad flags exit 2 at once with one line naming the flag; bad files exit 1 naming the file.
const tmp = mkdtempSync(join(tmpdir(), "ptp-flags-"));
const CORPUS = join(SHARED, "corpora/tinystories_excerpt.txt");
const DEMO_TOK = join(ROOT, "demo/tok.bin");

/** A usage error: exit 2, the first line names the flag (matched by `message`), no doubled "ptp cmd: " prefix, no internal function name. */
async function usageError(message: RegExp, ...argv: string[]): Promise<void> {
  const r = await runCli(...argv);
  const first = r.stderr.split("\n")[0];
  expect(r.code, r.stderr).toBe(2);
  expect(first).toMatch(message);
  expect(first).not.toMatch(/^ptp \S+: ptp /);
  expect(first).not.toMatch(/randomStudent|randomDraft|betaSample|Invalid typed array|RangeError/);
}

const inverseAr = (...extra: string[]) => ["train", "--objective", "inverse-ar", "--model", M, "--corpus", CORPUS, "--tokenizer", T, "--out", join(tmp, "ia.st"), "--steps", "1", "--eval-every", "0", ...extra];
const trainAr = (...extra: string[]) => ["train", "--corpus", CORPUS, "--tokenizer", T, "--out", join(tmp, "ar.bin"), "--steps", "1", ...extra];
const distill = (...extra: string[]) => ["distill", "--model", M, "--dataset", join(tmp, "none.bin"), "--out", join(tmp, "d.st"), ...extra];
const rs = (...extra: string[]) => ["random-student", "--model", M, "--variant", "O", "--out", join(tmp, "rs.st"), "--force", ...extra];
const rd = (...extra: string[]) => ["random-draft", "--model", M, "--variant", "O", "--out", join(tmp, "rd.st"), "--force", ...extra];

describe("flag bounds: exit 2 naming the flag, before any work", () => {
  it("CLI-FLAGS-WINDOW: --window above the teacher's seqLen, or 0 (random-student, random-draft, train --objective inverse-ar)", async () => {
    await usageError(/--window must be <= the teacher's seqLen 512, got 513/, ...rs("--rank", "4", "--window", "513"));
    await usageError(/--window must be <= the teacher's seqLen 512, got 513/, ...rd("--window", "513"));
    await usageError(/--window must be <= the teacher's seqLen 512, got 513/, ...inverseAr("--window", "513"));
    await usageError(new RegExp(`--window must be a positive integer \\(at most ${MAX_WINDOW}\\), got 0`), ...inverseAr("--window", "0"));
    await usageError(new RegExp(`--window must be in \\[1, ${MAX_WINDOW}\\], got 1025`), ...inverseAr("--window", "1025"));
  });

  it("CLI-FLAGS-DIGITS: --digits outside 1..24 (distill, train --objective inverse-ar)", async () => {
    for (const d of ["0", "30"]) await usageError(/--digits must be in \[1, 24\]/, ...distill("--aux", "digits", "--digits", d));
    for (const d of ["0", "99"]) await usageError(/--digits must be in \[1, 24\]/, ...inverseAr("--digits", d));
  });

  it("CLI-FLAGS-BETA: train --objective inverse-ar refuses --beta <= 0 as distill does", async () => {
    for (const b of ["0", "-1"]) {
      await usageError(/--beta must be > 0/, ...inverseAr("--beta", b));
      await usageError(/--beta must be > 0/, ...distill("--beta", b));
    }
  });

  it("CLI-FLAGS-SHAPE: an invalid train shape or distill draft shape names the flags, one line, exit 2", async () => {
    await usageError(/--heads \(4\) must divide --dim \(15\)/, ...trainAr("--dim", "15"));
    await usageError(/--heads \(3\) must divide --dim \(64\)/, ...trainAr("--heads", "3"));
    await usageError(/--kv-heads \(3\) must divide --heads \(4\)/, ...trainAr("--kv-heads", "3"));
    for (const n of ["2000000", "1e12"]) await usageError(/--seq-len must be in \[1, 1048576\]/, ...trainAr("--seq-len", n));
    await usageError(/--draft-dim must be in \[1, 8192\], got 0/, ...distill("--draft", "--draft-dim", "0"));
    await usageError(/--draft-heads \(4\) must divide --draft-dim \(15\)/, ...distill("--draft", "--draft-dim", "15"));
    await usageError(/--heads \(3\) must divide --dim \(32\)/, ...rd("--heads", "3"));
  });

  it("CLI-FLAGS-SIZES: ranks and draft shapes beyond the documented bounds exit 2 at once", async () => {
    for (const r of ["1e12", "100000", "5000"]) await usageError(new RegExp(`--rank must be <= ${MAX_RANK}`), ...rs("--rank", r));
    await usageError(/--rank must be a positive integer, got 0/, ...inverseAr("--rank", "0"));
    // The teacher's dim caps the rank, as in distill.
    await usageError(/--rank must be <= the teacher's dim 64, got 65/, ...rs("--rank", "65"));
    await usageError(/--rank must be <= the teacher's dim 64, got 65/, ...inverseAr("--rank", "65"));
    for (const d of ["100000", "1e12"]) await usageError(new RegExp(`--dim must be in \\[1, ${MAX_DRAFT_SHAPE.dim}\\]`), ...rd("--dim", d));
    await usageError(new RegExp(`--hidden must be in \\[1, ${MAX_DRAFT_SHAPE.hiddenDim}\\]`), ...rd("--hidden", "1e12"));
    for (const l of ["1e9", "100000"]) await usageError(new RegExp(`--layers must be in \\[1, ${MAX_DRAFT_SHAPE.nLayers}\\]`), ...rd("--layers", l));
    await usageError(/--draft-dim must be in \[1, 8192\]/, ...distill("--draft", "--draft-dim", "1e12"));
    await usageError(/--draft-layers must be in \[1, 128\]/, ...distill("--draft", "--draft-layers", "1e9"));
    // Within each bound but too big together: refused before allocating, naming the flags to lower.
    await usageError(/a draft model of dim 8192.*lower --dim, --hidden or --layers/, ...rd("--dim", "8192", "--hidden", "32768", "--layers", "128", "--heads", "8", "--kv-heads", "8"));
  });

  it("CLI-FLAGS-DEMO: demo bounds --window and --budget as generate does, and checks --scale-shapes up front", async () => {
    await usageError(/--window must be in \[1, 1024\], got 1e12/, "demo", "--window", "1e12", "--steps", "30");
    await usageError(/--window must be in \[1, 1024\], got 1025/, "demo", "--window", "1025", "--steps", "30");
    await usageError(/--budget must be in \[1, 8192\], got 1e12/, "demo", "--budget", "1e12", "--steps", "30");
    for (const s of ["foo", ",", "15M,"]) await usageError(/--scale-shapes must list known shapes \(15M, 42M, 110M\)/, "demo", "--steps", "10", "--scale", "--scale-shapes", s);
    await usageError(/--scale-shapes goes with --scale/, "demo", "--steps", "10", "--scale-shapes=15M");
  });

  it("CLI-FLAGS-OBJECTIVE: a flag of the other --objective is refused, not ignored", async () => {
    await usageError(/--rank applies to --objective inverse-ar only/, ...trainAr("--rank", "4"));
    await usageError(/--rank applies to --objective inverse-ar only/, ...trainAr("--rank=4"));
    await usageError(/--dim applies to --objective ar only/, ...inverseAr("--dim", "32"));
    await usageError(/--valid-fraction applies to --objective ar only/, ...inverseAr("--valid-fraction", "0.1"));
    expect([...givenFlags(["--prompt", "hi", "--rank", "--x=1", "--force"], { prompt: { kind: "string", help: "" }, force: { kind: "bool", help: "" } })]).toEqual(["prompt", "rank", "x", "force"]);
    // A value flag followed by another flag has no value (it does not swallow the flag).
    expect([...givenFlags(["--prompt", "--rank", "--x=1"], { prompt: { kind: "string", help: "" } })]).toEqual(["prompt", "rank", "x"]);
  });
});

describe("generate's summary when nothing is generated", () => {
  it("CLI-FLAGS-SPEEDUP: a prompt that fills --steps prints speedup n/a, not NaN", async () => {
    const student = join(tmp, "c.st");
    expect((await runCli("random-student", "--model", M, "--rank", "4", "--variant", "C", "--out", student)).code).toBe(0);
    const prompts = join(tmp, "long.txt");
    writeFileSync(prompts, "Once upon a time there was a little girl\n");
    const r = await runCli("generate", "--model", M, "--tokenizer", T, "--student", student, "--prompts", prompts, "--steps", "3", "--seed", "1");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("speedup n/a");
    expect(r.stderr).not.toMatch(/NaN/);
    expect(r.stderr).toContain("warning: the prompt has more than --steps (3) tokens: nothing is generated for it (give more --steps)");
    const ar = await runCli("generate", "--model", M, "--tokenizer", T, "--prompt", "Once upon a time there was a little girl", "--steps", "3", "--seed", "1");
    expect(ar.code).toBe(0);
    expect(ar.stderr).toMatch(/warning: the prompt has more than --steps \(3\) tokens[\s\S]*achieved tok\/s: n\/a \(0 tokens/);
    // demo --scale has nothing to measure either: it says so and exits 0, where it once failed on a NaN cache size.
    const d = await runCli("demo", "--model", M, "--tokenizer", T, "--student", student, "--prompts", prompts, "--steps", "3", "--scale", "--scale-shapes", "15M");
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout).toContain("at larger shapes: nothing to measure: every prompt fills the 3 positions (--steps)");
    // Its own summary: no ratios of nothing, no "why slower" about a run that made no PTP call.
    expect(d.stdout).toContain("(AR: 0; fewer: n/a)");
    expect(d.stdout).toMatch(/speedup n\/a\)/);
    expect(d.stdout).not.toMatch(/n\/ax|why slower|speedup \d/);
    expect(d.stdout + d.stderr).not.toMatch(/NaN/);
    // The library's measureSpeedup refuses such prompts by name (bench/ptp-speedup.ts --prompts).
    const ckpt = readCheckpoint(M);
    const b = await createBackend("js");
    const options = { backend: b, teacher: ckpt, proposer: { kind: "student" as const, student: randomStudent(ckpt, "t", { variant: "C", rank: 2, aux: { kind: "anchors" }, window: 2, seed: 1 }) }, shapes: ["own"], decoders: ["verify" as const], steps: 4, temperature: 0.8, reps: 1 };
    expect(() =>
      measureSpeedup({
        ...options,
        prompts: [
          [1, 2, 3, 4, 5, 6],
          [1, 2, 3, 4, 5],
        ],
      }),
    ).toThrow(/measureSpeedup: nothing to decode: every prompt has more than steps \(4\) tokens, the shortest 5/);
    // Very many prompts: the shortest is found by a loop (Math.min(...lengths) overflowed the call stack).
    expect(() => measureSpeedup({ ...options, prompts: new Array(500_000).fill([1, 2, 3, 4, 5]) })).toThrow(/measureSpeedup: nothing to decode: every prompt has more than steps \(4\) tokens, the shortest 5/);
    // A prompt of exactly `steps` tokens still makes one token (the one after it).
    const [full] = measureSpeedup({ ...options, prompts: [[1, 2, 3, 4]] });
    expect(full.equalsAR).toBe(true);
    expect(full.acceptedPerCall).toBeGreaterThan(0);
    expect(() => measureSpeedup({ ...options, prompts: [] })).toThrow(/measureSpeedup: no prompts/);
    expect(
      measureSpeedup({
        ...options,
        prompts: [
          [1, 2, 3, 4],
          [1, 2],
        ],
      }).every((row) => Number.isFinite(row.rowsPerCall) && row.equalsAR),
    ).toBe(true);
  });
});

describe("the second hostile-input sweep (twenty-second session)", () => {
  const HEAD = join(ROOT, "demo/stories260K-head.safetensors");
  const gen = (...extra: string[]) => ["generate", "--model", M, "--tokenizer", T, "--steps", "12", ...extra];

  it("CLI-FLAGS-VALUE-FLAG: a value flag followed by another flag has no value (it no longer swallows the flag); a value starting with -- goes with =", async () => {
    await usageError(/--prompt needs a value \(TEXT; one that starts with -- goes as --prompt=VALUE\)/, ...gen("--seed", "1", "--prompt", "--json"));
    await usageError(/--model needs a value/, "generate", "--model", "--tokenizer", T);
    const r = await runCli(...gen("--seed", "1", "--prompt=--json"));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.startsWith("--json")).toBe(true);
  });

  it("CLI-FLAGS-SEED-EXACT: --seed is an exact integer in [1, 2^64 - 1] for generate and demo, and so is the last prompt's seed + i", async () => {
    const top = "18446744073709551615";
    expect((await runCli(...gen("--seed", top, "--prompt", "Once", "--temperature", "1"))).code).toBe(0);
    await usageError(/--seed must be an integer in \[1, 2\^64 - 1\], got "18446744073709551616"/, ...gen("--seed", "18446744073709551616"));
    await usageError(/--seed must be an integer in \[1, 2\^64 - 1\]/, "demo", "--seed", "18446744073709551616");
    await usageError(/--seed must be an integer in \[1, 2\^64 - 1\]/, "demo", "--seed", "1e30");
    const two = join(tmp, "two.txt");
    writeFileSync(two, "Once upon\nTom was\n");
    await usageError(/--seed 18446744073709551615: the last of 2 prompts would use seed \+ 1, past 2\^64 - 1/, ...gen("--seed", top, "--prompts", two));
    // Past 2^53 the seed stays itself (a number would round 2^53 + 1 to 2^53): demo prints and uses it exactly.
    const a = await runCli("demo", "--seed", "9007199254740993", "--steps", "40", "--no-color", "--temperature", "1");
    const b = await runCli("demo", "--seed", "9007199254740992", "--steps", "40", "--no-color", "--temperature", "1");
    expect(a.code, a.stderr).toBe(0);
    expect(a.stdout).toContain("seed 9007199254740993 (prompt i: seed + i)");
    expect(a.stdout).not.toBe(b.stdout);
  });

  it("CLI-FLAGS-HEAD-DECODER: with a draft-head student and no --decoder, flags are checked against the decoder that runs (verify), not single-call", async () => {
    await usageError(/--budget applies to --decoder single-call only \(decoder is verify\)/, ...gen("--seed", "1", "--student", HEAD, "--budget", "4"));
    await usageError(/--budget-mode applies to --decoder single-call only \(decoder is verify\)/, ...gen("--seed", "1", "--student", HEAD, "--budget-mode", "fixed"));
    await usageError(/--drafts applies to --decoder multi-draft only/, ...gen("--seed", "1", "--student", HEAD, "--drafts", "3"));
    await usageError(/--budget applies to --decoder single-call only; .* is a draft-head student, decoded by verify/, "demo", "--model", M, "--tokenizer", T, "--student", HEAD, "--budget", "4");
  });

  it("CLI-FLAGS-UTF8: text files (prompts, corpora, u files) must be UTF-8: a byte that is not is an error naming the file and line, never a silent U+FFFD", async () => {
    const bad = join(tmp, "bad-utf8.txt");
    writeFileSync(bad, Buffer.concat([Buffer.from("Once upon\nOnce "), Buffer.from([0xff, 0xfe]), Buffer.from(" upon\n")]));
    const r = await runCli(...gen("--seed", "1", "--prompts", bad));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${bad}: line 2 is not valid UTF-8`);
    // A byte-order mark is UTF-8 and is dropped.
    const bom = join(tmp, "bom.txt");
    writeFileSync(bom, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from("Once upon\n")]));
    const plain = join(tmp, "plain.txt");
    writeFileSync(plain, "Once upon\n");
    expect((await runCli(...gen("--seed", "1", "--prompts", bom))).stdout).toBe((await runCli(...gen("--seed", "1", "--prompts", plain))).stdout);
  });

  it("CLI-FLAGS-THREADS-BACKEND: --threads with a backend that does not split work is refused, not ignored", async () => {
    await usageError(/--threads applies to the wasm backend \(--backend js does not split its work over threads\)/, ...gen("--seed", "1", "--backend", "js", "--threads", "4"));
    await usageError(/--threads applies to the wasm backend/, "demo", "--backend", "js", "--threads", "2");
  });

  it("CLI-FLAGS-RESUME-NOTHING: --resume with no checkpoint keeps an existing --out (it is not the run's) unless --force; with no --out yet it starts fresh", async () => {
    const out = join(tmp, "kept.bin");
    copyFileSync(M, out);
    const before = readFileSync(out);
    const r = await runCli(...trainAr("--resume").map((a) => (a === join(tmp, "ar.bin") ? out : a)));
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`--out ${out} exists and no checkpoint (${out}.train.safetensors) holds a run to continue; refusing to overwrite it (pass --force to replace it)`);
    expect(readFileSync(out).equals(before)).toBe(true);
    const fresh = join(tmp, "fresh-resume.bin");
    const f = await runCli(...trainAr("--resume").map((a) => (a === join(tmp, "ar.bin") ? fresh : a)));
    expect(f.code, f.stderr).toBe(0);
    expect(f.stderr).toContain("starting fresh");
  });

  it("CLI-FLAGS-DRAFT-SIZE: a new draft model beyond the machine or past a ptp file's 2 GiB is refused before it is made, in random-draft and distill --draft (no raw typed-array error, no minutes of allocation)", async () => {
    await usageError(
      /a draft model of dim 4096, hidden 8192, 8 layers \(vocab 512\) would be a 4\.\d GiB file, past the 2 GiB a ptp file may hold; lower --dim, --hidden or --layers/,
      "random-draft",
      "--model",
      M,
      "--variant",
      "C",
      "--out",
      join(tmp, "big-draft.st"),
      "--dim",
      "4096",
      "--layers",
      "8",
      "--heads",
      "32",
      "--kv-heads",
      "8",
      "--hidden",
      "8192",
    );
    expect(existsSync(join(tmp, "big-draft.st"))).toBe(false);
  });

  it("CLI-FLAGS-INVERSE-AR-SHAPE: inverse-AR's --context must hold twice --window and fit the teacher; --slot-input query is refused, not a crash mid-run", async () => {
    await usageError(/--context \(5\) must be at least twice --window \(4\)/, ...inverseAr("--window", "4", "--context", "5"));
    await usageError(/--context must be <= the teacher's seqLen 512, got 513/, ...inverseAr("--context", "513"));
    await usageError(/--slot-input query is not supported by --objective inverse-ar/, ...inverseAr("--slot-input", "query"));
  });

  it("CLI-FLAGS-TRAINING-BOUNDS: training and dataset counts beyond any run, and flags that would be ignored, exit 2 naming the flag before any work", async () => {
    await usageError(/--steps must be a positive integer \(at most 1000000000\), got 1e20|--steps must be in \[1, 1000000000\], got 1e20/, ...distill("--steps", "1e20"));
    await usageError(/--seed must be in \[0, 4294967295\], got -1/, ...distill("--seed", "-1"));
    await usageError(/--seed must be in \[0, 4294967295\], got 99999999999/, ...distill("--seed", "99999999999"));
    await usageError(/--draft-dim goes with --draft/, ...distill("--draft-dim", "16"));
    await usageError(/--rank is for LoRA students; a --draft model's size is its --draft-\* shape/, ...distill("--draft", "--rank", "2"));
    await usageError(/--alpha is for LoRA students/, ...distill("--draft", "--alpha", "8"));
    await usageError(/--digits applies to --aux digits only \(aux is anchors\)/, ...distill("--aux", "anchors", "--digits", "4"));
    await usageError(/--digits applies to --aux digits only \(aux is bits\)/, ...inverseAr("--aux", "bits", "--digits", "4"));
    await usageError(/--eval-count goes with --eval-prompts/, ...inverseAr("--eval-count", "3"));
    await usageError(/--eval-steps must be a positive integer/, ...inverseAr("--eval-steps", "0"));
    await usageError(/--temperature must be at least 0.000001 for inverse-ar/, ...inverseAr("--temperature", "1e-30"));
    await usageError(/--samples must be in \[1, 1000000\], got 2147483648|--samples must be a positive integer \(at most 1000000\)/, "pregenerate", "--model", M, "--out", join(tmp, "never.ptpd"), "--samples", "2147483648");
    await usageError(/--steps must be in \[1, 1048576\], got 4294967296|--steps must be a positive integer \(at most 1048576\)/, "pregenerate", "--model", M, "--out", join(tmp, "never.ptpd"), "--steps", "4294967296");
    await usageError(/--version goes with --to llama2c/, "convert", "--model", M, "--to", "hf", "--out", join(tmp, "never-hf"), "--version", "1");
    await usageError(/--shard-mb must be at least 1e-6 \(one byte\), got 1e-9/, "convert", "--model", M, "--to", "hf", "--out", join(tmp, "never-hf"), "--shard-mb", "1e-9");
  });

  it("CLI-FLAGS-EPIPE: a reader that closes the pipe early stops the CLI quietly with 141, no stack trace", async () => {
    const { spawn } = await import("node:child_process");
    const child = spawn(process.execPath, [join(ROOT, "bin/ptp.js"), "demo", "--steps", "200", "--no-color"], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    child.stdout.once("data", () => child.stdout.destroy());
    const code = await new Promise<number | null>((done) => child.on("close", done));
    expect(code, stderr).toBe(141);
    expect(stderr).not.toMatch(/EPIPE|Unhandled|node:events/);
  });
});

describe("a model that overflows as it runs", () => {
  it("CLI-FLAGS-NONFINITE-LOGITS: finite weights whose logits come out NaN stop generate and demo with exit 1 naming the file, at every temperature and backend, never printing tokens picked from NaN", async () => {
    const ckpt = readCheckpoint(M);
    ckpt.weights.rmsFinal.fill(3e38); // finite, so the load check passes; the final norm overflows to Inf and the logits to NaN
    const bad = join(tmp, "overflow.bin");
    writeCheckpoint(bad, ckpt);
    const student = join(tmp, "overflow.st");
    expect((await runCli("random-student", "--model", bad, "--rank", "2", "--variant", "C", "--out", student)).code).toBe(0);
    for (const extra of [[], ["--temperature", "0"], ["--temperature", "0", "--weights", "int8"], ["--backend", "js", "--temperature", "0"], ["--top-k", "5"], ["--student", student, "--temperature", "0"], ["--student", student, "--decoder", "verify"]]) {
      const r = await runCli("generate", "--model", bad, "--tokenizer", T, "--prompt", "Once", "--steps", "12", "--seed", "1", ...extra);
      expect(r.code, `${extra.join(" ")}: ${r.stderr}`).toBe(1);
      expect(r.stderr).toContain(`${bad}: the model's logits are not finite (logit 0 is NaN)`);
      expect(r.stdout).not.toContain("<unk>");
    }
    const d = await runCli("demo", "--model", bad, "--tokenizer", T, "--student", student, "--steps", "12", "--no-color");
    expect(d.code).toBe(1);
    expect(d.stderr).toContain(`${bad}: the model's logits are not finite`);
  });
});

describe("model files checked at load", () => {
  it("CLI-FLAGS-HF-TOKENS: a tokenizer.json with fewer tokens than the model's vocab is refused naming the file and both sizes", async () => {
    const small = Tokenizer.load(DEMO_TOK, 309);
    expect(() => HfTokenizer.fromJson(llama2cTokenizerToJson(small), {}, "small.json", 512)).toThrow(/small\.json: expected 512 tokens \(the model's vocab size\) but the tokenizer holds 309/);
    const dir = join(tmp, "hf-small");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(llama2cTokenizerToJson(small)));
    const r = await runCli("generate", "--model", M, "--tokenizer", join(dir, "tokenizer.json"), "--prompt", "Once upon", "--steps", "30", "--seed", "1");
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/tokenizer\.json: expected 512 tokens \(the model's vocab size\) but the tokenizer holds 309/);
    // The exact size still loads.
    expect(HfTokenizer.fromJson(llama2cTokenizerToJson(Tokenizer.load(T, 512)), {}, "ok.json", 512).vocabSize).toBe(512);
  });

  it("CLI-FLAGS-NONFINITE-MODEL: a checkpoint with a NaN weight is refused at load, naming the file and the tensor", async () => {
    const bad = join(tmp, "nan.bin");
    copyFileSync(M, bad);
    const fd = openSync(bad, "r+");
    writeSync(fd, Buffer.from([0xff, 0xff, 0xff, 0x7f]), 0, 4, 2000);
    closeSync(fd);
    const r = await runCli("generate", "--model", bad, "--tokenizer", T, "--prompt", "Once", "--steps", "20", "--seed", "1");
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/nan\.bin: tensor tokenEmbedding holds NaN at index \d+; a model's weights must be finite/);
    expect(r.stderr).not.toMatch(/softmaxF32/);
  });

  it("CLI-FLAGS-NONFINITE-MODEL: a Hugging Face folder with a NaN weight is refused at load, naming the folder", async () => {
    const dir = join(tmp, "nan-hf");
    expect((await runCli("convert", "--model", M, "--to", "hf", "--out", dir)).code).toBe(0);
    const file = join(dir, "model.safetensors");
    const fd = openSync(file, "r+");
    const len = Buffer.alloc(8);
    readSync(fd, len, 0, 8, 0);
    // The first float of the data (after the 8-byte length and the JSON header) becomes NaN.
    writeSync(fd, Buffer.from([0xff, 0xff, 0xff, 0x7f]), 0, 4, 8 + Number(len.readBigUInt64LE(0)));
    closeSync(fd);
    const r = await runCli("generate", "--model", dir, "--tokenizer", T, "--prompt", "Once", "--steps", "20", "--seed", "1");
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/nan-hf: tensor .* holds NaN at index \d+; a model's weights must be finite/);
  });
});

describe("Ctrl-C during inverse-AR training", () => {
  it("CLI-FLAGS-INVERSE-AR-SIGINT: stops within about a second, mid-step, saving a resumable checkpoint (bin/ptp.js: the built dist/)", async () => {
    const out = join(tmp, "sig.st");
    // The default shape: one step takes several seconds; the signal comes 1 s into the first.
    const r = await runChild(["bin/ptp.js", "train", "--objective", "inverse-ar", "--model", M, "--corpus", CORPUS, "--tokenizer", T, "--out", out, "--steps", "100000", "--eval-every", "0"], { when: /Ctrl-C saves/, signals: ["SIGINT"], delayMs: 1000, timeoutMs: 60000 });
    expect(r.code, r.stderr).toBe(130);
    expect(r.afterSignalMs).toBeLessThan(2000);
    expect(r.stderr).toMatch(/SIGINT received; interrupted at step 0; checkpoint saved/);
    expect(existsSync(`${out}.train.safetensors`)).toBe(true);
  }, 90000);
});
