import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli, STORIES_260K, TOK_512 } from "./helpers.js";

/**
 * Odd values a user may pass (from a hostile sweep of the CLI): each is a
 * usage error (exit 2, naming the flag) or a one-line error naming the file
 * (exit 1), never a read of the file "" or a run on a silently wrong input.
 */

const tmp = mkdtempSync(join(tmpdir(), "ptp-hostile-"));

describe("empty paths", () => {
  it("CLI-EMPTY-PATH: an empty FILE/PATH/DIR flag value exits 2 '--flag must not be empty' (it named no file: the error was ': file does not exist', exit 1)", async () => {
    const student = join(tmp, "s.safetensors");
    expect((await runCli("random-student", "--model", STORIES_260K, "--rank", "2", "--variant", "C", "--out", student)).code).toBe(0);
    const cases: [string[], string][] = [
      [["generate", "--model", "", "--tokenizer", TOK_512], "--model"],
      [["generate", "--model", STORIES_260K, "--tokenizer", ""], "--tokenizer"],
      [["generate", "--model", STORIES_260K, "--tokenizer", TOK_512, "--prompts", ""], "--prompts"],
      [["generate", "--model", STORIES_260K, "--tokenizer", TOK_512, "--aux-file", ""], "--aux-file"],
      [["generate", "--model", STORIES_260K, "--tokenizer", TOK_512, "--student", ""], "--student"],
      [["convert", "--model", "", "--to", "hf", "--out", join(tmp, "hf")], "--model"],
      [["convert", "--model", STORIES_260K, "--to", "hf", "--out", join(tmp, "hf"), "--tokenizer", ""], "--tokenizer"],
      [["demo", "--model", "", "--tokenizer", TOK_512], "--model"],
      [["demo", "--demo-dir", ""], "--demo-dir"],
      [["export-peft", student, "--out", join(tmp, "peft"), "--model", ""], "--model"],
      [["pregenerate", "--model", STORIES_260K, "--tokenizer", TOK_512, "--out", join(tmp, "d.ptpd"), "--prompts", ""], "--prompts"],
    ];
    for (const [argv, flag] of cases) {
      const r = await runCli(...argv);
      expect(r.code, argv.join(" ")).toBe(2);
      expect(r.stderr.split("\n")[0], argv.join(" ")).toBe(`ptp ${argv[0]}: ${flag} must not be empty`);
    }
    // An empty --prompt is still a prompt (the empty text: generation from BOS).
    const empty = await runCli("generate", "--model", STORIES_260K, "--tokenizer", TOK_512, "--prompt", "", "--steps", "3", "--seed", "1");
    expect(empty.code, empty.stderr).toBe(0);
  });

  it('CLI-EMPTY-PATH: export-peft refuses an empty STUDENT and an empty --base-model (it wrote base_model_name_or_path "")', async () => {
    const student = join(tmp, "s2.safetensors");
    expect((await runCli("random-student", "--model", STORIES_260K, "--rank", "2", "--variant", "C", "--out", student)).code).toBe(0);
    const noStudent = await runCli("export-peft", "", "--out", join(tmp, "p1"));
    expect(noStudent.code).toBe(2);
    expect(noStudent.stderr.split("\n")[0]).toBe("ptp export-peft: the student to export must not be an empty path");
    for (const name of ["", " "]) {
      const r = await runCli("export-peft", student, "--out", join(tmp, "p2"), "--base-model", name);
      expect(r.code).toBe(2);
      expect(r.stderr.split("\n")[0]).toBe("ptp export-peft: --base-model must not be empty (leave it out to record none)");
    }
    expect(readdirSync(tmp)).not.toContain("p2");
  });
});

describe("demo", () => {
  it("CLI-DEMO-DIR: a --demo-dir that is missing or not a folder is a one-line error naming it (was: 'the demo models are missing: FILE/teacher.bin ...')", async () => {
    const file = join(tmp, "not-a-folder");
    writeFileSync(file, "x");
    const missing = await runCli("demo", "--demo-dir", join(tmp, "nope"));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(`ptp demo: --demo-dir ${join(tmp, "nope")}: the folder does not exist (expected a folder of demo models)\n`);
    const notDir = await runCli("demo", "--demo-dir", file);
    expect(notDir.code).toBe(1);
    expect(notDir.stderr).toBe(`ptp demo: --demo-dir ${file}: is not a folder (expected a folder of demo models)\n`);
  });

  it("CLI-DEMO-SCALE-SHAPES: a shape listed twice in --scale-shapes exits 2 (it was measured twice)", async () => {
    const r = await runCli("demo", "--scale", "--scale-shapes", "15M,42M,15M");
    expect(r.code).toBe(2);
    expect(r.stderr.split("\n")[0]).toBe('ptp demo: --scale-shapes lists 15M twice in "15M,42M,15M"; give each shape once');
  });
});

describe("inspect on odd numbers and headers", () => {
  it("INSPECT-ODD-HEADERS: a safetensors header length past the file's end is named as such (it fell through to 'read as a v0 checkpoint'); a 1e400 in config.json shows as Infinity (it showed null)", async () => {
    const st = join(tmp, "long.safetensors");
    const bytes = new Uint8Array(12);
    new DataView(bytes.buffer).setBigUint64(0, 100_000_000n, true);
    bytes.set([0x7b, 0x7d, 0x20, 0x20], 8);
    writeFileSync(st, bytes);
    const a = await runCli("inspect", st);
    expect(a.code).toBe(1);
    expect(a.stderr.trim()).toBe(`ptp inspect: ${st}: safetensors header length 100000000 goes beyond the end of the file (12 bytes, so at most 4 bytes of header)`);
    const hf = join(tmp, "hf-inf");
    mkdirSync(hf);
    writeFileSync(join(hf, "config.json"), '{"architectures":["LlamaForCausalLM"],"hidden_size":1e400}');
    const b = await runCli("inspect", hf);
    expect(b.code).toBe(1);
    expect(b.stderr).toMatch(/hidden_size.*Infinity/);
    expect(b.stderr).not.toMatch(/null/);
    expect(b.stderr.trim().split("\n")).toHaveLength(1);
  });
});

describe("--steps past the model's context", () => {
  it("CLI-STEPS-PAST-SEQLEN: a --steps past seqLen runs seqLen positions, as llama2.c's run, and now says so on stderr (it was silent)", async () => {
    const r = await runCli("generate", "--model", STORIES_260K, "--tokenizer", TOK_512, "--steps", "9999", "--temperature", "0", "--no-stop", "--json");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("note: --steps 9999 is more than the model's seqLen (512): running 512 positions");
    expect(JSON.parse(r.stdout).tokens).toHaveLength(513); // BOS, then the token each of the 512 positions makes
    const d = await runCli("generate", "--model", STORIES_260K, "--tokenizer", TOK_512, "--steps", "0", "--temperature", "0", "--no-stop", "--json");
    expect(d.code, d.stderr).toBe(0);
    expect(d.stderr).not.toContain("note:");
    expect(JSON.parse(d.stdout).tokens).toEqual(JSON.parse(r.stdout).tokens);
  });
});

describe("a --log that is another kind of file", () => {
  it("CLI-LOG-NO-NEWLINE: `train --resume --log FILE` refuses a user's file that holds no newline (a dataset, a one-line note): it was read as a metrics log of one torn line and replaced by the log", async () => {
    const dir = mkdtempSync(join(tmp, "log-"));
    const corpus = join(dir, "corpus.txt"),
      out = join(dir, "m.bin");
    writeFileSync(corpus, "once upon a time\nthe cat sat\n");
    const train = (...extra: string[]) => runCli("train", "--corpus", corpus, "--char-vocab", join(dir, "tok.bin"), "--out", out, "--steps", "2", "--dim", "8", "--heads", "2", "--hidden", "8", "--layers", "1", "--seq-len", "8", "--threads", "1", "--force", ...extra);
    expect((await train("--stop-after", "1")).code).toBe(130); // stopped as Ctrl-C stops a run, with a checkpoint at step 1
    const binary = Uint8Array.from([0x50, 0x54, 0x50, 0x2d, 0x44, 0x41, 0x54, 0x41, 0, 1, 2, 0xff, 0xfe]); // "PTP-DATA" and bytes, no newline
    for (const [name, content] of [
      ["data.ptpd", binary],
      ["notes.txt", new TextEncoder().encode("my notes, no newline at the end")],
    ] as const) {
      const file = join(dir, name);
      writeFileSync(file, content);
      const r = await runCli("train", "--corpus", corpus, "--char-vocab", join(dir, "tok.bin"), "--out", out, "--steps", "2", "--dim", "8", "--heads", "2", "--hidden", "8", "--layers", "1", "--seq-len", "8", "--threads", "1", "--resume", "--log", file);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr.trim().split("\n").at(-1)).toBe(`ptp train: --log ${file} exists and is not a metrics log written by ptp (line 1 is not JSON); refusing to overwrite it (pass --force to replace it)`);
      expect(new Uint8Array(readFileSync(file))).toEqual(content);
    }
    // A log torn in its first line (killed while appending it) is still the run's own log, and resumes.
    const torn = join(dir, "torn.log.jsonl");
    writeFileSync(torn, '{"step":0,"valid');
    const r = await runCli("train", "--corpus", corpus, "--char-vocab", join(dir, "tok.bin"), "--out", out, "--steps", "2", "--dim", "8", "--heads", "2", "--hidden", "8", "--layers", "1", "--seq-len", "8", "--threads", "1", "--resume", "--log", torn);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(torn, "utf8")).toMatch(/^\{"step":2,/);
  }, 60_000);
});

describe("file names with control characters", () => {
  it('CLI-PATH-NEWLINE: a missing file named "a\\nb.bin" (or with a tab or an escape) is a one-line error quoting the name, exit 1 (the newline split the message in two lines)', async () => {
    const dir = mkdtempSync(join(tmp, "names-"));
    for (const name of ["a\nb.bin", "a\tb\u001b[31m.bin"]) {
      const path = join(dir, name);
      for (const [argv, expected] of [
        [["generate", "--model", path, "--tokenizer", TOK_512], `${JSON.stringify(path)}: file does not exist (expected a llama2.c checkpoint)`],
        [["generate", "--model", STORIES_260K, "--tokenizer", path], `${JSON.stringify(path)}: file does not exist (expected a llama2.c tokenizer.bin)`],
        [["generate", "--model", STORIES_260K, "--tokenizer", TOK_512, "--aux-file", path], `u file not found: ${JSON.stringify(path)}`],
        [["random-student", "--model", path, "--rank", "2", "--variant", "C", "--out", join(dir, "s.safetensors")], `${JSON.stringify(path)}: file does not exist (expected a llama2.c checkpoint)`],
      ] as const) {
        const r = await runCli(...argv);
        expect(r.code, r.stderr).toBe(1);
        expect(r.stderr).toBe(`ptp ${argv[0]}: ${expected}\n`);
      }
    }
    expect(readdirSync(dir)).toEqual([]);
    // A plain name is shown as it is.
    const r = await runCli("generate", "--model", join(dir, "plain.bin"), "--tokenizer", TOK_512);
    expect(r.stderr).toBe(`ptp generate: ${join(dir, "plain.bin")}: file does not exist (expected a llama2.c checkpoint)\n`);
  });

  it('CLI-PATH-NEWLINE-OUT: an --out or --demo-dir whose name holds a newline is a one-line error quoting it: a missing directory "a\\nb" exit 1, an --out ending in a slash exit 2 (the raw newline split the message)', async () => {
    const dir = mkdtempSync(join(tmp, "out-names-"));
    const odd = join(dir, "a\nb");
    const q = JSON.stringify;
    // Files: exit 1, one line.
    const missingDir = await runCli("random-model", "--shape", "260K", "--out", join(odd, "x.bin"));
    expect(missingDir.code, missingDir.stderr).toBe(1);
    expect(missingDir.stderr).toBe(`ptp random-model: --out ${q(join(odd, "x.bin"))}: directory ${q(odd)} does not exist\n`);
    const existing = join(dir, "m\n.bin");
    writeFileSync(existing, "mine");
    const exists = await runCli("random-model", "--shape", "260K", "--out", existing);
    expect(exists.code, exists.stderr).toBe(1);
    expect(exists.stderr).toBe(`ptp random-model: --out ${q(existing)} already exists; pass --force to overwrite it\n`);
    expect(readFileSync(existing, "utf8")).toBe("mine");
    const demo = await runCli("demo", "--demo-dir", odd);
    expect(demo.code, demo.stderr).toBe(1);
    expect(demo.stderr).toBe(`ptp demo: --demo-dir ${q(odd)}: the folder does not exist (expected a folder of demo models)\n`);
    // Usage: exit 2, the message one line, then the usage line and the --help hint.
    const slash = await runCli("random-model", "--shape", "260K", "--out", `${odd}/`);
    expect(slash.code, slash.stderr).toBe(2);
    const lines = slash.stderr.split("\n");
    expect(lines[0]).toBe(`ptp random-model: --out ${q(`${odd}/`)} ends with a slash, expected a file path (this output is one file)`);
    expect(lines[1]).toMatch(/^usage: ptp random-model/);
    expect(readdirSync(dir)).toEqual(["m\n.bin"]);
  });
});
