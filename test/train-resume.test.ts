import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readSafetensors, writeSafetensors } from "../src/io/safetensors.js";
import { pregenFixture, runCli, TOK_512 } from "./helpers.js";
import { lastFlagWins } from "./flag-args.js";

// Resuming training runs: extending a short finished run, the logged running figures, the refusal of other options, and a failed run's files.
const { tmp, TEACHER, DATA, dataset } = pregenFixture("ptp-resume-");
const corpus = join(tmp, "corpus.txt");
writeFileSync(corpus, Array.from({ length: 40 }, (_, i) => `the cat ${i % 3 === 0 ? "sat" : "ran"} on the mat.`).join("\n") + "\n");
// No --warmup: the default (100) is longer than every run here.
const trainArgs = (out: string, ...extra: string[]) => lastFlagWins(["train", "--corpus", corpus, "--char-vocab", `${out}.tok`, "--out", out, "--dim", "16", "--layers", "1", "--heads", "2", "--hidden", "32", "--seq-len", "16", "--batch", "2", "--eval-every", "0", ...extra]);
const distillArgs = (out: string, ...extra: string[]) => lastFlagWins(["distill", "--model", TEACHER, "--dataset", DATA, "--out", out, "--rank", "4", "--window", "4", "--windows", "4", "--batch", "2", "--warmup", "2", "--eval-every", "0", "--backend", "wasm", ...extra]);

const bytes = (path: string) => readFileSync(path);
const stepOf = (checkpoint: string) => Number(readSafetensors(checkpoint).metadata.step);
/** The metrics log's lines, without its timing fields. */
const logged = (out: string) =>
  readFileSync(`${out}.log.jsonl`, "utf8")
    .trim()
    .split("\n")
    .map((l) => {
      const { minutes: _m, unitsPerSecond: _u, ...rest } = JSON.parse(l);
      return rest as Record<string, number>;
    });
/** The evaluation lines on stderr, without their timing figures. */
const evalLines = (stderr: string) =>
  stderr
    .split("\n")
    .filter((l) => /^(train|distill): step \d+ /.test(l))
    .map((l) => l.replace(/ {2}unitsPerSecond \S+/, "").replace(/ {2}\([\d.]+ s\)$/, ""));

describe("resuming training runs", () => {
  it("REL-RESUME-EXTEND-SHORT: a finished run shorter than --warmup extends with a larger --steps (as one started with --warmup of its length); a changed --warmup is still refused, and a checkpoint from before the stored --warmup extends too", async () => {
    const out = join(tmp, "short.bin");
    expect((await runCli(...trainArgs(out, "--steps", "4"))).code).toBe(0);
    const longer = await runCli(...trainArgs(out, "--steps", "8", "--resume"));
    expect(longer.code, longer.stderr).toBe(0);
    expect(longer.stderr).toMatch(/resumed from .* at step 4/);
    expect(stepOf(`${out}.train.safetensors`)).toBe(8);
    // The warmup of its first 4 steps is over: the same run as one begun with --warmup 4 --steps 8.
    const ref = join(tmp, "short-ref.bin");
    expect((await runCli(...trainArgs(ref, "--steps", "8", "--warmup", "4"))).code).toBe(0);
    expect(bytes(out).equals(bytes(ref))).toBe(true);
    // Extended again, then finished: nothing to do.
    expect((await runCli(...trainArgs(out, "--steps", "10", "--resume"))).code).toBe(0);
    const again = await runCli(...trainArgs(out, "--steps", "10", "--resume"));
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/already at step 10 of 10; nothing to do/);
    // A real change of --warmup (or of anything else) is still refused, naming it.
    for (const [flag, value, line] of [
      ["--warmup", "50", "--warmup was 100 in the checkpoint, now 50"],
      ["--lr", "0.01", "--lr was 0.003 in the checkpoint, now 0.01"],
    ] as const) {
      const r = await runCli(...trainArgs(out, "--steps", "12", "--resume", flag, value));
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toContain(line);
      expect(stepOf(`${out}.train.safetensors`)).toBe(10);
    }
    // A checkpoint written before the --warmup asked for was stored: its warmup spans the run, so any --warmup of at least its length extends it.
    const old = join(tmp, "short-old.bin"),
      ckpt = `${old}.train.safetensors`;
    expect((await runCli(...trainArgs(old, "--steps", "4"))).code).toBe(0);
    const st = readSafetensors(ckpt);
    const config = JSON.parse(st.metadata.config);
    expect(config.train.askedWarmup).toBe(100);
    delete config.train.askedWarmup;
    writeSafetensors(ckpt, Object.fromEntries(st.tensors), { ...st.metadata, config: JSON.stringify(config) });
    const small = await runCli(...trainArgs(old, "--steps", "8", "--resume", "--warmup", "3"));
    expect(small.code).toBe(1);
    expect(small.stderr).toContain("--warmup was 4 or more in the checkpoint, now 3");
    const extended = await runCli(...trainArgs(old, "--steps", "8", "--resume"));
    expect(extended.code, extended.stderr).toBe(0);
    expect(bytes(old).equals(bytes(ref))).toBe(true);
  });

  it("REL-RESUME-RUNNING-LOG: after a stop between evaluations and --resume, the logged running figures (loss, correct) equal an uninterrupted run's, in the log and on stderr", async () => {
    await dataset();
    for (const [args, name] of [
      [trainArgs, "run-train.bin"],
      [distillArgs, "run-distill.safetensors"],
    ] as const) {
      const straight = join(tmp, `straight-${name}`),
        resumed = join(tmp, `resumed-${name}`);
      const s = await runCli(...args(straight, "--steps", "6", "--eval-every", "3"));
      expect(s.code, s.stderr).toBe(0);
      // Stopped after 2 steps: the evaluation at step 3 averages 2 steps before the stop and 1 after it.
      expect((await runCli(...args(resumed, "--steps", "6", "--eval-every", "3", "--stop-after", "2"))).code).toBe(130);
      const r = await runCli(...args(resumed, "--steps", "6", "--eval-every", "3", "--resume"));
      expect(r.code, r.stderr).toBe(0);
      expect(bytes(resumed).equals(bytes(straight))).toBe(true);
      const want = logged(straight);
      expect(want.map((l) => l.step)).toEqual(name.startsWith("run-train") ? [0, 3, 6] : [3, 6]);
      expect(want.every((l) => l.step === 0 || typeof l.loss === "number")).toBe(true);
      expect(logged(resumed)).toEqual(want);
      expect(evalLines(r.stderr)).toEqual(evalLines(s.stderr).filter((l) => !/ step 0 /.test(l)));
    }
  });

  it("REL-RESUME-CONFIG-FLAGS: a resume with other options names each differing flag with both values (one line each; --slot-input by its kinds), exit 1, without dumping the configurations; another command's checkpoint is named as such in one line", async () => {
    await dataset();
    const out = join(tmp, "flags.safetensors");
    expect((await runCli(...distillArgs(out, "--steps", "40", "--stop-after", "2"))).code).toBe(130);
    const r = await runCli(...distillArgs(out, "--steps", "40", "--resume", "--lr", "0.5", "--rank", "3", "--gamma", "0.5"));
    expect(r.code).toBe(1);
    const lines = r.stderr.trimEnd().split("\n").slice(-5);
    expect(lines[0]).toBe(`ptp distill: ${out}.train.safetensors: the checkpoint was made with a different configuration:`);
    expect(lines.slice(1, -1).sort()).toEqual(["  --gamma was 0.9 in the checkpoint, now 0.5", "  --lr was 0.002 in the checkpoint, now 0.5", "  --rank was 4 in the checkpoint, now 3"]);
    expect(lines.at(-1)).toBe("pass the checkpoint's values, or start over with --force instead of --resume");
    expect(r.stderr).not.toMatch(/\{"|has shape/);
    const t = join(tmp, "flags.bin");
    expect((await runCli(...trainArgs(t, "--steps", "6", "--stop-after", "2"))).code).toBe(130);
    const tr = await runCli(...trainArgs(t, "--steps", "6", "--resume", "--hidden", "48", "--schedule", "constant"));
    expect(tr.code).toBe(1);
    expect(tr.stderr).toContain("\n  --hidden was 32 in the checkpoint, now 48\n");
    expect(tr.stderr).toContain("\n  --schedule was cosine in the checkpoint, now constant\n");
    expect(tr.stderr).not.toMatch(/\{"/);
    // --slot-input is named by its kinds, not by the fields that store it.
    const slot = await runCli(...distillArgs(out, "--steps", "40", "--resume", "--slot-input", "aux"));
    expect(slot.code).toBe(1);
    expect(slot.stderr).toMatch(/\n {2}--slot-input was (hybrid|query) in the checkpoint, now aux\n/);
    // Another command's checkpoint: one line saying whose it is.
    const cross = await runCli(...trainArgs(join(tmp, "cross.bin"), "--steps", "6", "--checkpoint", `${out}.train.safetensors`, "--resume"));
    expect(cross.code).toBe(1);
    expect(cross.stderr).toContain(": the checkpoint was written by ptp distill, not by this command: resume it with that command, or start over with --force instead of --resume\n");
    expect(cross.stderr).not.toMatch(/\{"/);
  });

  it("REL-RESUME-EVAL-PROMPTS: a resume with other --eval-prompts of the same count (or another --tokenizer for them) is refused naming --eval-prompts; the same prompts resume", async () => {
    await dataset();
    const a = join(tmp, "eval-a.txt"),
      b = join(tmp, "eval-b.txt");
    writeFileSync(a, "Once upon a time\nThe dog ran\n");
    writeFileSync(b, "Once upon a hill\nThe cat sat\n");
    const out = join(tmp, "eval-prompts.safetensors");
    const args = (prompts: string, ...extra: string[]) => distillArgs(out, "--steps", "40", "--eval-every", "20", "--eval-prompts", prompts, "--tokenizer", TOK_512, "--eval-steps", "16", ...extra);
    expect((await runCli(...args(a, "--stop-after", "1"))).code).toBe(130);
    const r = await runCli(...args(b, "--resume"));
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/\n {2}--eval-prompts \(its prompts' tokens, a checksum; or the --tokenizer that encodes them\) was [0-9a-f]{8} in the checkpoint, now [0-9a-f]{8}\n/);
    const same = await runCli(...args(a, "--resume", "--stop-after", "1"));
    expect(same.code, same.stderr).toBe(130);
  });

  it("REL-TRAIN-FAIL-CLEAN: a `train` that fails before its first checkpoint (a corpus too short, a --model of another vocabulary) leaves no --char-vocab it wrote; the too-short corpus is one line naming the file, --corpus, --context and the tokens needed and found", async () => {
    const short = join(tmp, "short.txt");
    writeFileSync(short, "the cat\nthe dog\n");
    const out = join(tmp, "fail.bin"),
      tok = `${out}.tok`;
    const r = await runCli(...trainArgs(out, "--steps", "4").map((a) => (a === corpus ? short : a)));
    expect(r.code, r.stderr).toBe(1);
    const last = r.stderr.trimEnd().split("\n").at(-1)!;
    expect(last).toBe(`ptp train: ${short}: the --corpus is too short for --context 16 (default: --seq-len): a window takes 17 tokens, but the training part has 10 and the held-out part (--valid-fraction 0.05) 10; give a longer corpus or a smaller --context`);
    expect(existsSync(tok)).toBe(false);
    expect(existsSync(`${out}.train.safetensors`)).toBe(false);
    expect(existsSync(out)).toBe(false);
    // inverse-ar: a --char-vocab that does not match --model is refused after it was written, and removed.
    const base = join(tmp, "base.bin");
    expect((await runCli(...trainArgs(base, "--steps", "2"))).code).toBe(0);
    writeFileSync(join(tmp, "other.txt"), "xyz qrs\nuvw\n");
    const iar = await runCli("train", "--objective", "inverse-ar", "--corpus", join(tmp, "other.txt"), "--char-vocab", tok, "--model", base, "--out", join(tmp, "iar.safetensors"), "--rank", "2", "--window", "3", "--steps", "2");
    expect(iar.code, iar.stderr).toBe(1);
    expect(iar.stderr).toMatch(/has a vocabulary of \d+ tokens but the tokenizer has \d+/);
    expect(existsSync(tok)).toBe(false);
    // With --force over a file of the user's: its bytes are put back; a usage error (no --model) writes nothing.
    writeFileSync(tok, "precious\n");
    const forced = await runCli("train", "--objective", "inverse-ar", "--corpus", join(tmp, "other.txt"), "--char-vocab", tok, "--model", base, "--out", join(tmp, "iar.safetensors"), "--rank", "2", "--window", "3", "--steps", "2", "--force");
    expect(forced.code, forced.stderr).toBe(1);
    expect(forced.stderr).toContain(`train: put back the earlier ${tok}, which this failed run had replaced`);
    expect(readFileSync(tok, "utf8")).toBe("precious\n");
    const usage = await runCli("train", "--objective", "inverse-ar", "--corpus", join(tmp, "other.txt"), "--char-vocab", tok, "--out", join(tmp, "iar.safetensors"), "--steps", "2", "--force");
    expect(usage.code, usage.stderr).toBe(2);
    expect(usage.stderr).not.toContain("wrote a character tokenizer");
    expect(readFileSync(tok, "utf8")).toBe("precious\n");
    rmSync(tok);
    // A run that failed after a checkpoint (diverged after step 0's) keeps its tokenizer: the checkpoint needs it.
    const nan = await runCli(...trainArgs(out, "--steps", "100", "--lr", "1e30", "--weight-decay", "0"));
    expect(nan.code).toBe(1);
    expect(existsSync(`${out}.train.safetensors`)).toBe(true);
    expect(existsSync(tok)).toBe(true);
  });
});
