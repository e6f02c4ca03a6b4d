import { execFileSync, spawnSync } from "node:child_process";
import { closeSync, existsSync, lstatSync, mkdtempSync, openSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { readCheckpoint, writeCheckpoint } from "../src/io/checkpoint.js";
import { readHfCheckpoint, writeHfCheckpoint } from "../src/io/hf-checkpoint.js";
import { randomCheckpoint } from "../src/model/init.js";
import { runChild } from "./child.js";
import { firstBitDifference, ROOT, runCli, STORIES_260K, TOK_512 } from "./helpers.js";

/**
 * Output files of the CLI's writers (src/cli/output-files.ts and the
 * writers' temporary files): nothing half-written after a failure, no input
 * overwritten, no stale files left beside a replaced model, and bad output
 * paths refused up front with a message naming the flag (never a raw errno
 * text with a temporary file's name).
 */

const tmp = mkdtempSync(join(tmpdir(), "ptp-outputs-"));
const fresh = (name: string): string => join(mkdtempSync(join(tmp, "case-")), name);
/** Files of a folder, temporary ones included (hidden names start with a dot). */
const list = (dir: string): string[] => readdirSync(dir).sort();
const RAW_ERRNO = /ENOENT|EEXIST|EACCES|EISDIR|ENOTDIR|\.tmp/;
const tiny = { dim: 16, hiddenDim: 24, nLayers: 2, nHeads: 2, nKvHeads: 1, vocabSize: 512, seqLen: 64, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };

function sameWeights(path: string, expected: string): void {
  const a = readHfCheckpoint(path).weights,
    b = readCheckpoint(expected).weights;
  expect(firstBitDifference(a.tokenEmbedding, b.tokenEmbedding)).toBeNull();
  expect(firstBitDifference(a.layers[0].wq, b.layers[0].wq)).toBeNull();
  expect(firstBitDifference(a.rmsFinal, b.rmsFinal)).toBeNull();
}

describe("convert --force replaces a model folder's model", () => {
  it("OUT-FORCE-STALE: a single-file model written over a sharded one leaves no shards or index (the folder loads the new model); other files stay", async () => {
    const dir = fresh("v1");
    const old = join(tmp, "old.bin");
    writeCheckpoint(old, randomCheckpoint({ ...tiny, dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4 }, 5));
    expect((await runCli("convert", "--model", old, "--to", "hf", "--out", dir, "--shard-mb", "0.3")).code).toBe(0);
    expect(list(dir)).toContain("model.safetensors.index.json");
    writeFileSync(join(dir, "notes.txt"), "mine\n");
    const r = await runCli("convert", "--model", STORIES_260K, "--to", "hf", "--out", dir, "--force");
    expect(r.code, r.stderr).toBe(0);
    expect(list(dir)).toEqual(["config.json", "model.safetensors", "notes.txt"]);
    sameWeights(dir, STORIES_260K);
    // and back: a sharded model over a single-file one leaves no model.safetensors
    expect((await runCli("convert", "--model", old, "--to", "hf", "--out", dir, "--shard-mb", "0.3", "--force")).code).toBe(0);
    expect(list(dir)).not.toContain("model.safetensors");
    sameWeights(dir, old);
    // the library writer does the same
    writeHfCheckpoint(dir, readCheckpoint(STORIES_260K));
    expect(list(dir)).toEqual(["config.json", "model.safetensors", "notes.txt"]);
    sameWeights(dir, STORIES_260K);
  });

  it("OUT-FORCE-KEPT-TOKENIZER: convert --force over a folder with a tokenizer.json, without --tokenizer, keeps it and says so; with --tokenizer it is replaced silently", async () => {
    const dir = fresh("kept-tok");
    expect((await runCli("convert", "--model", STORIES_260K, "--to", "hf", "--out", dir, "--tokenizer", TOK_512)).code).toBe(0);
    const tok = readFileSync(join(dir, "tokenizer.json"));
    let r = await runCli("convert", "--model", STORIES_260K, "--to", "hf", "--out", dir, "--force");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/note: .*tokenizer\.json was there before and is kept as it was; pass --tokenizer FILE/);
    expect(readFileSync(join(dir, "tokenizer.json")).equals(tok)).toBe(true);
    r = await runCli("convert", "--model", STORIES_260K, "--to", "hf", "--out", dir, "--tokenizer", TOK_512, "--force");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/note:/);
  });
});

describe("an output is never an input", () => {
  it("OUT-SAME-INPUT: convert refuses (exit 2) an output that is its input or inside its input folder, with or without --force; the input is untouched", async () => {
    const bin = fresh("m.bin");
    writeFileSync(bin, readFileSync(STORIES_260K));
    const hf = join(tmp, "same-hf");
    expect((await runCli("convert", "--model", STORIES_260K, "--to", "hf", "--out", hf)).code).toBe(0);
    const weights = readFileSync(join(hf, "model.safetensors"));
    for (const force of [[], ["--force"]]) {
      let r = await runCli("convert", "--model", bin, "--to", "llama2c", "--out", bin, ...force);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(/--out .*m.bin is the same file as --model/);
      r = await runCli("convert", "--model", hf, "--to", "llama2c", "--out", join(hf, "model.safetensors"), ...force);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(/--out .*model.safetensors is inside --model .*same file as --model/);
      r = await runCli("convert", "--model", hf, "--to", "hf", "--out", hf, ...force);
      expect(r.code, r.stderr).toBe(2);
    }
    expect(readFileSync(bin).equals(readFileSync(STORIES_260K))).toBe(true);
    expect(list(hf)).toEqual(["config.json", "model.safetensors"]);
    expect(readFileSync(join(hf, "model.safetensors")).equals(weights)).toBe(true);
  });

  it("OUT-PEFT-ARGS: export-peft STUDENT --out STUDENT --force exits 2 (no folder named --force); a flag value equal to the student stays a value", async () => {
    const student = fresh("s.safetensors");
    expect((await runCli("random-student", "--model", STORIES_260K, "--rank", "2", "--variant", "O", "--out", student)).code).toBe(0);
    const before = readFileSync(student);
    const r = await runCli("export-peft", student, "--out", student, "--force");
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/--out .*s.safetensors is the same file as STUDENT/);
    expect(existsSync(resolve("--force"))).toBe(false);
    expect(readFileSync(student).equals(before)).toBe(true);
    const dir = fresh("peft");
    const ok = await runCli("export-peft", student, "--out", dir, "--base-model", student);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(dir, "adapter_config.json"), "utf8")).base_model_name_or_path).toBe(student);
  });
});

describe("output names", () => {
  it("CLI-NAME-TOO-LONG: an output whose file name is over 255 bytes (a derived one too) is refused before any work, exit 2, naming the flag; a name of 250 bytes is written (its temporary name is shortened)", async () => {
    const dir = mkdtempSync(join(tmp, "names-"));
    const long = join(dir, "s".repeat(256));
    let r = await runCli("random-model", "--shape", "260K", "--out", long);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr.split("\n")[0]).toBe(`ptp random-model: --out ${long}: the file name is 256 bytes, more than the 255 a name may have; choose a shorter name`);
    // --out fits, the checkpoint derived from it (OUT.train.safetensors) does not.
    const out = join(dir, "d".repeat(240));
    r = await runCli("train", "--corpus", join(ROOT, "../shared/corpora/tinystories_sample.txt"), "--char-vocab", join(dir, "v.tok"), "--out", out, "--steps", "2");
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr.split("\n")[0]).toMatch(/^ptp train: --checkpoint .*\.train\.safetensors: the file name is 258 bytes, more than the 255/);
    expect(list(dir)).toEqual([]);
    const ok = join(dir, "k".repeat(250));
    r = await runCli("random-model", "--shape", "260K", "--out", ok);
    expect(r.code, r.stderr).toBe(0);
    expect(list(dir)).toEqual(["k".repeat(250)]);
  });

  it("CLI-LOCK-PATH: --checkpoint or --log naming the run's own lock file (OUT.lock) is refused up front, exit 2", async () => {
    const dir = mkdtempSync(join(tmp, "lockpath-"));
    const out = join(dir, "m.bin");
    for (const flag of ["--checkpoint", "--log"]) {
      const r = await runCli("train", "--corpus", join(ROOT, "../shared/corpora/tinystories_sample.txt"), "--char-vocab", join(dir, "v.tok"), "--out", out, "--steps", "2", flag, `${out}.lock`);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr.split("\n")[0]).toBe(`ptp train: ${flag} ${out}.lock is the lock file this run holds while it writes --out ${out}; choose another path`);
    }
    expect(list(dir)).toEqual([]);
  });
});

describe("a standard output that cannot be written", () => {
  it.skipIf(!existsSync("/dev/full"))("CLI-STDOUT-FULL: stdout on a full device (/dev/full) is one line on stderr and exit 1, never a stack trace", () => {
    for (const args of [
      ["inspect", STORIES_260K],
      ["generate", "--model", STORIES_260K, "--tokenizer", TOK_512, "--prompt", "Once", "--steps", "20", "--seed", "1"],
    ]) {
      const full = openSync("/dev/full", "w");
      try {
        const r = spawnSync(process.execPath, [join(ROOT, "bin/ptp.js"), ...args], { stdio: ["ignore", full, "pipe"], encoding: "utf8" });
        expect(r.status, r.stderr).toBe(1);
        expect(r.stderr).toContain("ptp: cannot write to standard output: ENOSPC (no space left on the device)\n");
        expect(r.stderr).not.toMatch(/\n\s+at /);
      } finally {
        closeSync(full);
      }
    }
  });
});

describe("a failed convert leaves nothing behind", () => {
  it("OUT-CONVERT-ATOMIC: a bad --tokenizer or an unwritable --tokenizer-out fails before anything is written; an existing folder is unchanged", async () => {
    const badTok = join(tmp, "truncated-tok.bin");
    writeFileSync(badTok, readFileSync(TOK_512).subarray(0, 1000));
    const sharedTok = resolve(STORIES_260K, "../tokenizer.bin"); // 32000 tokens: not the model's vocabulary
    for (const tok of [badTok, ...(existsSync(sharedTok) ? [sharedTok] : [])]) {
      const out = fresh("c2");
      const r = await runCli("convert", "--model", STORIES_260K, "--to", "hf", "--out", out, "--tokenizer", tok);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toContain(tok);
      expect(list(resolve(out, ".."))).toEqual([]);
    }
    const hf = fresh("with-tok");
    expect((await runCli("convert", "--model", STORIES_260K, "--to", "hf", "--out", hf, "--tokenizer", TOK_512)).code).toBe(0);
    const before = list(hf).map((f) => readFileSync(join(hf, f)));
    const over = await runCli("convert", "--model", STORIES_260K, "--to", "hf", "--out", hf, "--tokenizer", badTok, "--force", "--shard-mb", "0.3");
    expect(over.code).toBe(1);
    expect(list(hf).map((f) => readFileSync(join(hf, f)))).toEqual(before);
    const bin = fresh("v3.bin");
    const r = await runCli("convert", "--model", hf, "--to", "llama2c", "--out", bin, "--tokenizer-out", join(resolve(bin, ".."), "nodir", "t.bin"));
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/--tokenizer-out .*nodir\/t.bin: directory .*nodir does not exist/);
    expect(r.stderr).not.toMatch(RAW_ERRNO);
    expect(r.stderr).not.toMatch(/wrote/);
    expect(list(resolve(bin, ".."))).toEqual([]);
  });
});

describe("a failed pregenerate leaves no header-only dataset", () => {
  it("OUT-PREGEN-FIRST: a teacher whose logits are NaN fails before the first record; the file is gone and a plain re-run fails the same way (not 'pass --resume')", async () => {
    const teacher = fresh("overflow.bin");
    const ckpt = readCheckpoint(STORIES_260K);
    ckpt.weights.rmsFinal.fill(3e38); // finite weights, logits overflow: Inf - Inf = NaN in the softmax
    writeCheckpoint(teacher, ckpt);
    const out = join(resolve(teacher, ".."), "d.ptpd");
    for (let run = 0; run < 2; run++) {
      const r = await runCli("pregenerate", "--model", teacher, "--tokenizer", TOK_512, "--out", out, "--samples", "1", "--steps", "4", "--backend", "js");
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/NaN/);
      expect(r.stderr).not.toMatch(/--resume/);
      expect(existsSync(out)).toBe(false);
    }
  });
});

describe("a named pipe as --dataset", () => {
  it("OUT-FIFO-DATASET: distill refuses a FIFO --dataset at once (exit 1, not a regular file) instead of blocking in open", () => {
    const fifo = fresh("fifo.ptpd");
    execFileSync("mkfifo", [fifo]);
    const run = spawnSync(process.execPath, [resolve(ROOT, "bin/ptp.js"), "distill", "--model", STORIES_260K, "--dataset", fifo, "--out", `${fifo}.st`, "--steps", "1"], { encoding: "utf8", timeout: 30_000 });
    expect(run.signal, "distill hung on the FIFO").toBeNull();
    expect(run.status, run.stderr).toBe(1);
    expect(run.stderr).toContain(`${fifo}: is not a regular file`);
  });
});

describe("flag values with no sensible use are refused at once", () => {
  it.each([
    [["synth", "--stories", "1e12", "--out", "never.txt"], /--stories must be <= 1000000, got 1e12/],
    [["synth", "--prompts-out", "never.txt", "--prompt-count", "1e12"], /--prompt-count must be <= 1000000, got 1e12/],
    [["random-model", "--shape", "260K", "--out", "never.bin", "--seed", "-1"], /--seed must be in \[0, 4294967295\], got -1/],
    [["random-model", "--shape", "260K", "--out", "never.bin", "--seed", "4294967296"], /--seed must be in \[0, 4294967295\], got 4294967296/],
    [["random-model", "--shape", "260K", "--out", "never.bin", "--seed", "1e20"], /--seed must be in \[0, 4294967295\], got 1e20/],
  ])("OUT-FLAG-RANGE: %j exits 2 naming the flag", (argv, message) => {
    // In a child with a small heap and a time limit: without the bound, synth grows memory until it dies.
    const cwd = mkdtempSync(join(tmp, "range-"));
    const run = spawnSync(process.execPath, ["--max-old-space-size=200", resolve(ROOT, "bin/ptp.js"), ...argv], { cwd, encoding: "utf8", timeout: 20_000 });
    expect(run.signal, "the run did not end at once").toBeNull();
    expect(run.status, run.stderr).toBe(2);
    expect(run.stderr).toMatch(message);
    expect(list(cwd)).toEqual([]);
  });

  it("OUT-SEED-MAX: random-model takes the largest 32-bit seed", async () => {
    const r = await runCli("random-model", "--shape", "260K", "--out", fresh("max-seed.bin"), "--seed", "4294967295");
    expect(r.code, r.stderr).toBe(0);
  });
});

describe("unusable output paths are refused up front, naming the flag", () => {
  it("OUT-EMPTY: --out '' exits 2 '--out must not be empty' in every writer", async () => {
    const student = fresh("s.safetensors");
    expect((await runCli("random-student", "--model", STORIES_260K, "--rank", "2", "--variant", "O", "--out", student)).code).toBe(0);
    for (const argv of [
      ["random-model", "--shape", "260K"],
      ["random-student", "--model", STORIES_260K, "--rank", "2", "--variant", "O"],
      ["random-draft", "--model", STORIES_260K, "--variant", "O"],
      ["synth", "--stories", "2"],
      ["convert", "--model", STORIES_260K, "--to", "hf"],
      ["convert", "--model", STORIES_260K, "--to", "llama2c"],
      ["export-peft", student],
    ]) {
      const r = await runCli(...argv, "--out", "");
      expect(r.code, argv.join(" ")).toBe(2);
      expect(r.stderr).toMatch(/^ptp [a-z-]+: --out must not be empty\n/);
    }
    const t = await runCli("synth", "--stories", "2", "--tokenizer-out", "");
    expect(t.code).toBe(2);
    expect(t.stderr).toMatch(/--tokenizer-out must not be empty/);
  });

  it("OUT-FOLDER-PATHS: convert and export-peft refuse a missing parent folder (never creating it) and an existing file as their output folder, even with --force", async () => {
    const student = fresh("s.safetensors");
    const base = resolve(student, "..");
    expect((await runCli("random-student", "--model", STORIES_260K, "--rank", "2", "--variant", "O", "--out", student)).code).toBe(0);
    const file = join(base, "a-file");
    writeFileSync(file, "mine\n");
    for (const argv of [
      ["convert", "--model", STORIES_260K, "--to", "hf"],
      ["export-peft", student],
    ]) {
      let r = await runCli(...argv, "--out", join(base, "nodir", "sub", "hf"));
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/--out .*nodir\/sub\/hf: directory .*nodir\/sub does not exist/);
      expect(existsSync(join(base, "nodir"))).toBe(false);
      r = await runCli(...argv, "--out", file, "--force");
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/--out .*a-file exists and is not a folder/);
      expect(r.stderr).not.toMatch(RAW_ERRNO);
      expect(readFileSync(file, "utf8")).toBe("mine\n");
    }
    expect(list(base)).toEqual(["a-file", "s.safetensors"]);
  });

  it("OUT-FILE-PATHS: a file output ending in a slash exits 2, a parent that is a file is named as such, and a symbolic link to nothing is not replaced without --force", async () => {
    const base = resolve(fresh("x"), "..");
    const file = join(base, "a-file");
    writeFileSync(file, "mine\n");
    for (const argv of [
      ["random-model", "--shape", "260K"],
      ["convert", "--model", STORIES_260K, "--to", "llama2c"],
    ]) {
      for (const out of [join(base, "nodir") + "/", `${file}/`]) {
        const r = await runCli(...argv, "--out", out, "--force");
        expect(r.code, r.stderr).toBe(2);
        expect(r.stderr).toContain(`--out ${out} ends with a slash, expected a file path`);
        expect(r.stderr).not.toMatch(RAW_ERRNO);
      }
      const r = await runCli(...argv, "--out", join(file, "m.bin"));
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toContain(`${file} is not a directory`);
    }
    const link = join(base, "link.bin");
    symlinkSync(join(base, "nowhere", "target.bin"), link);
    let r = await runCli("random-model", "--shape", "260K", "--out", link);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`--out ${link} is a symbolic link to ${join(base, "nowhere", "target.bin")}, which does not exist; pass --force`);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    r = await runCli("random-model", "--shape", "260K", "--out", link, "--force");
    expect(r.code, r.stderr).toBe(0);
    expect(lstatSync(link).isFile()).toBe(true);
    expect(readFileSync(file, "utf8")).toBe("mine\n");
    expect(list(base)).toEqual(["a-file", "link.bin"]);
  });

  it("OUT-SIGNAL-WRITE: a Ctrl-C while convert or random-model writes is acted on once the files are whole (exit 130, saying so), leaving no temporary file", async () => {
    const dir = mkdtempSync(join(tmp, "signal-"));
    const model = join(dir, "m.bin");
    writeCheckpoint(model, randomCheckpoint({ ...tiny, dim: 256, hiddenDim: 512, nLayers: 8, nHeads: 4, nKvHeads: 4, vocabSize: 4096 }, 3));
    for (const [argv, out] of [
      [["convert", "--model", model, "--to", "hf", "--shard-mb", "2"], join(dir, "hf")],
      [["convert", "--model", model, "--to", "llama2c", "--version", "1"], join(dir, "v1.bin")],
      [["random-model", "--shape", "15M"], join(dir, "r15.bin")],
    ] as const) {
      const r = await runChild(["bin/ptp.js", ...argv, "--out", out], { when: /: writing /, signals: ["SIGINT"] });
      expect(r.signal, r.stderr).toBeNull();
      expect(r.code, r.stderr).toBe(130);
      expect(r.stderr).toMatch(new RegExp(`^ptp ${argv[0]}: SIGINT received while writing; the files were completed first$`, "m"));
      expect(r.stderr).toMatch(/^wrote /m);
      if (argv[0] === "convert") {
        const read = argv.includes("hf") ? readHfCheckpoint(out) : readCheckpoint(out);
        expect(firstBitDifference(read.weights.layers[7].w2, readCheckpoint(model).weights.layers[7].w2)).toBeNull();
      } else {
        expect(readCheckpoint(out).config.dim).toBe(288);
      }
    }
    expect(list(dir).filter((n) => n.startsWith("."))).toEqual([]);
    expect(readdirSync(join(dir, "hf")).filter((n) => n.startsWith("."))).toEqual([]);
  });

  it("OUT-SIGNAL-PREPARE: a Ctrl-C while random-model, random-student or random-draft reads the teacher or makes the weights stops it there: one line says so, exit 130, no file written or replaced (the signal killed it without a word)", async () => {
    const dir = mkdtempSync(join(tmp, "signal-prepare-"));
    const mine = join(dir, "mine.bin");
    writeFileSync(mine, "mine\n");
    for (const argv of [
      ["random-model", "--shape", "260K"],
      ["random-student", "--model", STORIES_260K, "--rank", "2", "--variant", "C"],
      ["random-draft", "--model", STORIES_260K, "--variant", "C", "--dim", "16", "--hidden", "32", "--layers", "1", "--heads", "2", "--kv-heads", "1"],
    ]) {
      for (const out of [join(dir, `${argv[0]}.bin`), mine]) {
        // The command works synchronously up to its first look for a signal, where the handlers of one that came meanwhile run: the signal comes there.
        const running = runCli(...argv, "--out", out, "--force");
        process.emit("SIGINT", "SIGINT");
        const r = await running;
        expect(r.code, r.stderr).toBe(130);
        expect(r.stderr).toBe(`ptp ${argv[0]}: interrupted (SIGINT); nothing was written\n`);
      }
    }
    expect(list(dir)).toEqual(["mine.bin"]);
    expect(readFileSync(mine, "utf8")).toBe("mine\n");
    // Without a signal, the same commands write their files.
    const r = await runCli("random-model", "--shape", "260K", "--out", mine, "--force");
    expect(r.code, r.stderr).toBe(0);
    expect(readCheckpoint(mine).config.dim).toBe(64);
  });

  it.skipIf(!existsSync("/proc/self"))("OUT-PROBE: an output folder where no file can be created (/proc) fails at once, in writers and in training (not at the first save)", async () => {
    const r = await runCli("random-model", "--shape", "260K", "--out", "/proc/x");
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("ptp random-model: --out /proc/x: directory /proc is not writable (a file cannot be created there)\n");
    const corpus = fresh("corpus.txt");
    writeFileSync(corpus, "the cat sat on the mat.\n".repeat(20));
    const t = await runCli("train", "--corpus", corpus, "--out", "/proc/x", "--dim", "16", "--layers", "1", "--heads", "2", "--hidden", "32", "--seq-len", "16", "--batch", "2", "--steps", "2", "--eval-every", "0", "--tokenizer", TOK_512);
    expect(t.code, t.stderr).toBe(1);
    expect(t.stderr).toMatch(/--out \/proc\/x: directory \/proc is not writable/);
    expect(t.stderr).not.toMatch(/training from step/);
    // and a writable folder leaves no probe file behind
    const out = fresh("ok.bin");
    expect((await runCli("random-model", "--shape", "260K", "--out", out)).code).toBe(0);
    expect(list(resolve(out, ".."))).toEqual(["ok.bin"]);
  });
});
