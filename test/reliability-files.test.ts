import { execFileSync } from "node:child_process";
import { existsSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseCheckpoint, readCheckpoint, serializeCheckpoint, writeCheckpoint } from "../src/io/checkpoint.js";
import { randomCheckpoint } from "../src/model/init.js";
import { Tokenizer } from "../src/io/tokenizer.js";
import { readLines } from "../src/io/errors.js";
import { loadTokenizer, readModelConfig } from "../src/io/model-file.js";
import { hfTensorShapes } from "../src/io/hf-checkpoint.js";
import { modelConfigToHf } from "../src/io/hf-config.js";
import type { ModelConfig } from "../src/model/config.js";
import { readPrompts } from "../src/cli/ptp-common.js";
import { readAuxFile } from "../src/sampling/aux.js";
import { loadTokenizerFile } from "../src/io/char-tokenizer.js";
import { encodeHeader, readDataset, readDatasetMeta } from "../src/data/dataset.js";
import { readSafetensors, writeSafetensors } from "../src/io/safetensors.js";
import { pregenFixture, ROOT, runCli, TOK_512 } from "./helpers.js";
import { lastFlagWins } from "./flag-args.js";

const { tmp, TEACHER, PROMPTS, DATA, config, pregenArgs } = pregenFixture("ptp-files-");

/** A training checkpoint as an older version wrote it: without these keys in its data_cursor's inputs. */
function stripInputs(path: string, keys: readonly string[]): void {
  const file = readSafetensors(path);
  const cursor = JSON.parse(file.metadata.data_cursor) as { inputs: Record<string, unknown> };
  for (const k of keys) delete cursor.inputs[k];
  writeSafetensors(path, Object.fromEntries(file.tensors), { ...file.metadata, data_cursor: JSON.stringify(cursor) });
}

async function dataset(): Promise<void> {
  if (existsSync(DATA)) return;
  const r = await runCli(...pregenArgs(DATA));
  expect(r.code, r.stderr).toBe(0);
}
const distillArgs = (out: string, ...extra: string[]) => lastFlagWins(["distill", "--model", TEACHER, "--dataset", DATA, "--out", out, "--rank", "4", "--window", "4", "--windows", "4", "--batch", "2", "--steps", "40", "--warmup", "2", "--eval-every", "0", "--backend", "wasm", ...extra]);
const corpus = join(tmp, "corpus.txt");
writeFileSync(corpus, Array.from({ length: 40 }, (_, i) => `the cat ${i % 3 === 0 ? "sat" : "ran"} on the mat.`).join("\n") + "\n");
const trainArgs = (out: string, ...extra: string[]) => lastFlagWins(["train", "--corpus", corpus, "--out", out, "--dim", "16", "--layers", "1", "--heads", "2", "--hidden", "32", "--seq-len", "16", "--batch", "2", "--steps", "4", "--eval-every", "0", ...extra]);

describe("non-finite steps end the run", () => {
  it("REL-NONFINITE-LR: `distill --lr 1e30` stops at the first non-finite step with an error naming --lr, instead of looping forever", async () => {
    await dataset();
    const r = await runCli(...distillArgs(join(tmp, "lr.safetensors"), "--lr", "1e30", "--steps", "100000"));
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/step \d+ gave a non-finite loss or gradient \(loss (NaN|-?Infinity), gradient norm/);
    expect(r.stderr).toMatch(/--lr 1e\+30 may be too high/);
  });

  it("DISTILL-NO-TRAINABLE-RECORD: a dataset with no record a student can train on (a query student needs two sampled tokens) is refused before training, naming the dataset file", async () => {
    const prompts = join(tmp, "one-word.txt");
    writeFileSync(prompts, "Once\n");
    const data = join(tmp, "one-token.ptpd");
    // One sampled token per record.
    expect((await runCli(...pregenArgs(data, "--prompts", prompts, "--steps", "1"))).code).toBe(0);
    const r = await runCli(...distillArgs(join(tmp, "query.safetensors"), "--dataset", data, "--slot-input", "query"));
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr.trimEnd().split("\n").at(-1)).toBe(`ptp distill: ${data}: has no record with two sampled tokens (a query student trains slots 1..N-1) to train on`);
  });

  it("STUDENT-WRONG-KIND: a --student that is the teacher or a dataset is named as what it is, not as a broken safetensors file; a binary file's bytes in a message are escaped", async () => {
    await dataset();
    for (const [file, kind] of [
      [TEACHER, "a llama2.c checkpoint"],
      [DATA, "a PTP distillation dataset"],
    ] as const) {
      const r = await runCli("generate", "--model", TEACHER, "--tokenizer", TOK_512, "--student", file, "--prompt", "Once", "--steps", "8");
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr.trimEnd().split("\n").at(-1)).toBe(`ptp generate: ${file}: is ${kind}, not a student (expected a student adapter file or a PEFT folder)`);
    }
    const tok = await runCli("generate", "--model", TEACHER, "--tokenizer", TOK_512, "--student", TOK_512, "--prompt", "Once", "--steps", "8");
    expect(tok.code, tok.stderr).toBe(1);
    expect(tok.stderr.trimEnd().split("\n").at(-1)).toBe(`ptp generate: ${TOK_512}: is a llama2.c tokenizer (tokenizer.bin), not a student (expected a student adapter file or a PEFT folder)`);
    // A binary file of no kind: its bytes in the message are escaped.
    const binary = join(tmp, "binary.bin");
    writeFileSync(binary, Buffer.concat([Buffer.from([8, 0, 0, 0, 0, 0, 0, 0]), Buffer.from("\u0000abc{}  ", "latin1"), Buffer.alloc(16)]));
    const r = await runCli("generate", "--model", TEACHER, "--tokenizer", TOK_512, "--student", binary, "--prompt", "Once", "--steps", "8");
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).not.toMatch(/[\u0000-\u0008\u000b-\u001f]/);
    expect(r.stderr).toMatch(/safetensors header is not valid JSON \(.*\\x00/);
  });

  it("MODEL-WRONG-KIND: a --model that is a student, a tokenizer or a dataset, and a --dataset that is a model, are named as what they are, not read as a nonsense header", async () => {
    await dataset();
    const student = join(tmp, "wrong-kind-student.safetensors");
    expect((await runCli("random-student", "--model", TEACHER, "--rank", "2", "--variant", "C", "--out", student)).code).toBe(0);
    for (const [file, kind] of [
      [student, "a safetensors file (a PTP student adapter, draft model or training checkpoint)"],
      [TOK_512, "a llama2.c tokenizer (tokenizer.bin)"],
      [DATA, "a PTP distillation dataset"],
    ] as const) {
      const r = await runCli("generate", "--model", file, "--tokenizer", TOK_512, "--prompt", "Once", "--steps", "8");
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr.trimEnd().split("\n").at(-1)).toBe(`ptp generate: ${file}: is ${kind}, not a model (expected a llama2.c checkpoint or a Hugging Face folder)`);
    }
    const d = await runCli("distill", "--model", TEACHER, "--dataset", TEACHER, "--out", join(tmp, "never.safetensors"), "--rank", "2", "--steps", "1");
    expect(d.code, d.stderr).toBe(1);
    expect(d.stderr.trimEnd().split("\n").at(-1)).toBe(`ptp distill: ${TEACHER}: is a llama2.c checkpoint, not a PTP distillation dataset (ptp pregenerate writes one)`);
  });

  it("CLI-WEIGHT-DECAY-BOUND: a weight decay with lr x wd >= 1 (which wipes or flips every decayed weight each step) is refused up front, exit 2, naming both flags; below it a diverging run's error names --weight-decay beside --lr", async () => {
    await dataset();
    const out = join(tmp, "wd.safetensors");
    let r = await runCli(...distillArgs(out, "--lr", "0.002", "--weight-decay", "1e30"));
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr.split("\n")[0]).toBe("ptp distill: --weight-decay 1e+30 with --lr 0.002 multiplies every decayed weight by 1 - lr x wd = -2e+27 each step; expected lr x wd < 1");
    expect(existsSync(out)).toBe(false);
    r = await runCli(...distillArgs(out, "--lr", "1e30", "--weight-decay", "1e-31", "--steps", "100000"));
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/--lr 1e\+30 \(or the weight decay --weight-decay 1e-31\) may be too high/);
  });

  it("REL-NONFINITE-FIRST: a diverging `train` exits 1 at the first step or evaluation that comes out NaN, naming it, with no NaN figure printed before (on the progress line, an evaluation, a skipped step)", async () => {
    for (const every of ["0", "1"]) {
      const out = join(tmp, `diverge-${every}.bin`);
      // --weight-decay 0: with train's default 0.01, lr x wd >= 1 is refused before any step (CLI-WEIGHT-DECAY-BOUND).
      const r = await runCli(...trainArgs(out, "--char-vocab", join(tmp, `diverge-${every}.tok`), "--lr", "1e30", "--weight-decay", "0", "--steps", "1000", "--eval-every", every));
      expect(r.code, r.stderr).toBe(1);
      const lines = r.stderr.trimEnd().split("\n");
      // --eval-every 1: the evaluation after the first update sees the diverged weights before the second step does.
      expect(lines.at(-1)).toMatch(every === "0" ? /: step 2 gave a non-finite loss or gradient .*; stopped at step 1 without saving/ : /: the evaluation at step 1 gave validLoss NaN; stopped at step 1 without saving/);
      expect(lines.at(-1)).toContain(`(the last checkpoint is ${out}.train.safetensors, at step 0); likely causes: the learning rate --lr 1e+30 may be too high`);
      expect(lines.slice(0, -1).join("\n")).not.toMatch(/NaN|Infinity/);
      expect(readSafetensors(`${out}.train.safetensors`).metadata.step).toBe("0");
    }
  });

  it("REL-NONFINITE-CKPT: a training checkpoint with NaN in adam_v, or a tampered rng / data_cursor, is refused on --resume naming the field", async () => {
    await dataset();
    const out = join(tmp, "nan.safetensors"),
      ckpt = `${out}.train.safetensors`;
    expect((await runCli(...distillArgs(out, "--stop-after", "2"))).code).toBe(130);
    const good = readSafetensors(ckpt);
    const tamper = (edit: (t: typeof good) => void) => {
      const copy = readSafetensors(ckpt);
      edit(copy);
      writeSafetensors(ckpt, Object.fromEntries(copy.tensors), copy.metadata);
    };
    const key = [...good.tensors.keys()].find((k) => k.startsWith("adam_v."))!;
    tamper((t) => ((t.tensors.get(key)!.data as Float32Array)[0] = NaN));
    let r = await runCli(...distillArgs(out, "--resume"));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`tensor ${key} holds NaN at index 0`);
    for (const [field, value, message] of [
      ["rng", '"x"', /metadata "rng" must be an integer/],
      ["rng", "4294967296", /metadata "rng" must be an integer/],
      ["data_cursor", '{"seconds":-1}', /metadata "data_cursor" must be/],
      ["data_cursor", '{"seconds":1,"evalPending":"yes"}', /metadata "data_cursor" must be/],
    ] as const) {
      tamper((t) => {
        t.tensors = good.tensors;
        t.metadata = { ...good.metadata, [field]: value };
      });
      r = await runCli(...distillArgs(out, "--resume"));
      expect(r.code, field).toBe(1);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).toContain(ckpt);
    }
  });
});

describe("user files are never replaced by accident", () => {
  it("REL-CLOBBER-EXISTS: writers refuse an existing --out unless --force", async () => {
    const out = join(tmp, "existing.bin");
    writeFileSync(out, "my precious file\n");
    const runs = [
      ["random-model", "--shape", "260K", "--out", out],
      ["random-student", "--model", TEACHER, "--rank", "2", "--variant", "O", "--out", out],
      ["random-draft", "--model", TEACHER, "--variant", "O", "--out", out],
      ["synth", "--stories", "3", "--out", out],
      ["synth", "--stories", "3", "--tokenizer-out", out],
      ["synth", "--stories", "3", "--prompts-out", out],
    ];
    for (const argv of runs) {
      const r = await runCli(...argv);
      expect(r.code, argv.join(" ")).toBe(1);
      expect(r.stderr).toMatch(/exists; pass --force to overwrite it/);
      expect(readFileSync(out, "utf8")).toBe("my precious file\n");
    }
    await dataset();
    const d = await runCli(...distillArgs(out));
    expect(d.code).toBe(1);
    expect(d.stderr).toMatch(/--out .* exists; pass --force/);
    const t = await runCli(...trainArgs(join(tmp, "new.bin"), "--char-vocab", out));
    expect(t.code).toBe(1);
    expect(t.stderr).toMatch(/--char-vocab .* exists; pass --force/);
    expect(readFileSync(out, "utf8")).toBe("my precious file\n");
    const forced = await runCli("random-model", "--shape", "260K", "--out", out, "--force");
    expect(forced.code).toBe(0);
    expect(readFileSync(out).length).toBeGreaterThan(1000);
  });

  it("REL-CLOBBER-LOG: `distill --log notes.txt` refuses a user's text file, with or without --resume", async () => {
    await dataset();
    const notes = join(tmp, "notes.txt"),
      out = join(tmp, "log-run.safetensors");
    writeFileSync(notes, "my notes\n");
    let r = await runCli(...distillArgs(out, "--log", notes));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--log .*notes.txt already exists; pass --force/);
    r = await runCli(...distillArgs(out, "--log", notes, "--resume"));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/is not a metrics log written by ptp/);
    expect(readFileSync(notes, "utf8")).toBe("my notes\n");
  });

  it("REL-CLOBBER-SAME: an output that is an input (same path, a symlink or a hard link) is refused with exit 2", async () => {
    await dataset();
    const link = join(tmp, "teacher-link.bin"),
      hard = join(tmp, "teacher-hard.bin");
    symlinkSync(TEACHER, link);
    linkSync(TEACHER, hard);
    const before = readFileSync(TEACHER);
    for (const out of [TEACHER, link, hard]) {
      for (const force of [[], ["--force"]]) {
        const r = await runCli(...distillArgs(out, ...force));
        expect(r.code, out).toBe(2);
        expect(r.stderr).toMatch(/--out .* is the same file as --model/);
      }
    }
    const s = await runCli("random-student", "--model", TEACHER, "--rank", "2", "--variant", "O", "--out", TEACHER, "--force");
    expect(s.code).toBe(2);
    const log = await runCli(...distillArgs(join(tmp, "x.safetensors"), "--log", DATA));
    expect(log.code).toBe(2);
    expect(log.stderr).toMatch(/--log .* is the same file as --dataset/);
    const p = await runCli("pregenerate", "--model", TEACHER, "--tokenizer", TOK_512, "--prompts", PROMPTS, "--out", PROMPTS, "--resume");
    expect(p.code).toBe(2);
    expect(readFileSync(TEACHER).equals(before)).toBe(true);
  });

  it("REL-TEMP-NAME: atomic writes go through a unique hidden temporary file, so a user's OUT.tmp survives", async () => {
    const out = join(tmp, "tmpname.bin");
    writeFileSync(`${out}.tmp`, "user data\n");
    expect((await runCli("random-model", "--shape", "260K", "--out", out)).code).toBe(0);
    expect(readFileSync(`${out}.tmp`, "utf8")).toBe("user data\n");
  });

  it("REL-WRITABLE: outputs are checked before training starts (a missing directory, a directory as --out)", async () => {
    await dataset();
    const missing = join(tmp, "no-such-dir", "s.safetensors");
    let r = await runCli(...distillArgs(missing));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--out .*: directory .*no-such-dir does not exist/);
    expect(r.stderr).not.toMatch(/training from step/);
    const dir = join(tmp, "a-dir");
    mkdirSync(dir);
    r = await runCli(...distillArgs(dir));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--out .*a-dir is a directory/);
    r = await runCli(...distillArgs(join(tmp, "ok.safetensors"), "--log", join(tmp, "no-such-dir", "log.jsonl")));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--log .* does not exist/);
    expect(r.stderr).not.toMatch(/training from step/);
  });
});

describe("resuming", () => {
  it("REL-RESUME-FINISHED: --resume on a finished run changes nothing (no bogus log line), whether --steps or --minutes ended it; a larger --steps extends it", async () => {
    await dataset();
    const out = join(tmp, "fin.safetensors");
    const args = (...extra: string[]) => distillArgs(out, "--steps", "4", "--eval-every", "2", ...extra);
    expect((await runCli(...args())).code).toBe(0);
    const log = readFileSync(`${out}.log.jsonl`, "utf8"),
      student = readFileSync(out);
    const again = await runCli(...args("--resume"));
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/already at step 4 of 4; nothing to do/);
    expect(readFileSync(`${out}.log.jsonl`, "utf8")).toBe(log);
    expect(readFileSync(out).equals(student)).toBe(true);
    const longer = await runCli(...distillArgs(out, "--steps", "7", "--eval-every", "2", "--resume"));
    expect(longer.code, longer.stderr).toBe(0);
    expect(Number(readSafetensors(`${out}.train.safetensors`).metadata.step)).toBe(7);
    expect(
      readFileSync(`${out}.log.jsonl`, "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l).step),
    ).toEqual([2, 4, 6, 7]);
    // A run ended by --minutes is done too: each --resume with its time spent trains nothing and writes no line again.
    const timed = join(tmp, "timed.safetensors");
    const timedArgs = (...extra: string[]) => distillArgs(timed, "--steps", "100000", "--eval-every", "3", "--minutes", "0.002", ...extra);
    expect((await runCli(...timedArgs())).code).toBe(0);
    const timedLog = readFileSync(`${timed}.log.jsonl`, "utf8");
    for (let i = 0; i < 2; i++) expect((await runCli(...timedArgs("--resume"))).code).toBe(0);
    expect(readFileSync(`${timed}.log.jsonl`, "utf8")).toBe(timedLog);
  });

  it("REL-RESUME-TRUNCATED: a truncated training checkpoint on --resume is an error naming it and what is wrong (exit 1), not a refusal to overwrite it; it is left as it is", async () => {
    const out = join(tmp, "trunc.bin"),
      ckpt = `${out}.train.safetensors`;
    const args = (...extra: string[]) => trainArgs(out, "--char-vocab", join(tmp, "trunc.tok"), ...extra);
    expect((await runCli(...args("--stop-after", "2"))).code).toBe(130);
    const whole = readFileSync(ckpt);
    for (const [size, problem] of [
      [0, /file is 0 bytes, shorter than the 8-byte safetensors header length \(truncated/],
      [100, /safetensors header length \d+ goes beyond the end of the file \(100 bytes/],
      [whole.length - 1, /lie outside the data section .*truncated\?/],
    ] as const) {
      writeFileSync(ckpt, whole.subarray(0, size));
      const r = await runCli(...args("--resume"));
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toContain(`${ckpt}: cannot resume from this training checkpoint: `);
      expect(r.stderr).toMatch(problem);
      expect(r.stderr).not.toMatch(/refusing to overwrite/);
      expect(readFileSync(ckpt).equals(whole.subarray(0, size))).toBe(true);
    }
  });

  it("REL-RESUME-DATA: --resume with another dataset or --backend (distill), or another corpus, tokenizer of the same size or --valid-fraction (train) is refused, naming what differs", async () => {
    await dataset();
    const other = join(tmp, "other.ptpd");
    expect((await runCli("pregenerate", "--model", TEACHER, "--tokenizer", TOK_512, "--prompts", PROMPTS, "--out", other, "--samples", "2", "--steps", "24", "--temperature", "0.7", "--top-k", "0", "--top-p", "1", "--seed", "99")).code).toBe(0);
    const out = join(tmp, "data-run.safetensors");
    expect((await runCli(...distillArgs(out, "--stop-after", "2"))).code).toBe(130);
    const args = distillArgs(out, "--resume");
    args[args.indexOf("--dataset") + 1] = other;
    const r = await runCli(...args);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/trained on other inputs/);
    expect(r.stderr).toMatch(/\n {2}--dataset \(its header and record count\): /);
    // The teacher's logits on js and wasm agree to 1e-4, not bit for bit: the backend is part of the run.
    const js = await runCli(...distillArgs(out, "--resume", "--backend", "js"));
    expect(js.code).toBe(1);
    expect(js.stderr).toContain('--backend: "wasm" in the checkpoint, now "js"');
    const corpus2 = join(tmp, "corpus2.txt");
    writeFileSync(corpus2, readFileSync(corpus, "utf8").replace(/cat/g, "dog"));
    const tOut = join(tmp, "t-data.bin");
    expect((await runCli(...trainArgs(tOut, "--char-vocab", join(tmp, "t-data.tok"), "--stop-after", "1"))).code).toBe(130);
    const t = trainArgs(tOut, "--char-vocab", join(tmp, "t-data.tok"), "--resume");
    t[t.indexOf("--corpus") + 1] = corpus2;
    const tr = await runCli(...t);
    expect(tr.code).toBe(1);
    expect(tr.stderr).toMatch(/trained on other inputs/);
    expect(tr.stderr).toMatch(/--corpus \(its SHA-256\): /);
    // Another tokenizer of the same size (one score changed) would train on other token ids; another held-out fraction on another split.
    const vocab = readFileSync(join(tmp, "t-data.tok"));
    vocab.writeFloatLE(vocab.readFloatLE(4) + 1, 4);
    const tok2 = join(tmp, "t-data2.tok");
    writeFileSync(tok2, vocab);
    const tokResume = await runCli(...trainArgs(tOut, "--char-vocab", tok2, "--resume"));
    expect(tokResume.code, tokResume.stderr).toBe(1);
    expect(tokResume.stderr).toMatch(/--char-vocab \(its SHA-256\): "[0-9a-f]{64}" in the checkpoint, now "[0-9a-f]{64}"/);
    const fraction = await runCli(...trainArgs(tOut, "--char-vocab", join(tmp, "t-data.tok"), "--resume", "--valid-fraction", "0.2"));
    expect(fraction.code, fraction.stderr).toBe(1);
    expect(fraction.stderr).toContain("--valid-fraction: 0.05 in the checkpoint, now 0.2");
    expect((await runCli(...trainArgs(tOut, "--char-vocab", join(tmp, "t-data.tok"), "--resume"))).code).toBe(0);
    // A checkpoint from before the tokenizer's digest and the held-out fraction were stored still resumes.
    const old = join(tmp, "t-old.bin");
    expect((await runCli(...trainArgs(old, "--char-vocab", join(tmp, "t-old.tok"), "--stop-after", "1"))).code).toBe(130);
    stripInputs(`${old}.train.safetensors`, ["tokenizerSha256", "validFraction"]);
    const resumedOld = await runCli(...trainArgs(old, "--char-vocab", join(tmp, "t-old.tok"), "--resume"));
    expect(resumedOld.code, resumedOld.stderr).toBe(0);
  });

  it("REL-DATASET-HEADER: a dataset header contradicting the teacher (vocabSize, seqLen) or with an unusable temperature is refused naming the file", async () => {
    await dataset();
    const bytes = readFileSync(DATA),
      meta = readDatasetMeta(DATA),
      oldHeader = encodeHeader(meta);
    for (const [edit, message] of [
      [{ vocabSize: 1000 }, /the dataset header says vocabSize 1000, but the teacher has 512/],
      [{ seqLen: 32 }, /the dataset header says seqLen 32, but the teacher has 64/],
      [{ sampling: { ...meta.sampling, temperature: 1e-30 } }, /sampling settings are unusable: temperature must be/],
    ] as const) {
      const path = join(tmp, "bad-header.ptpd");
      writeFileSync(path, Buffer.concat([encodeHeader({ ...meta, ...edit }), bytes.subarray(oldHeader.length)]));
      const r = await runCli(...distillArgs(join(tmp, "bad-header.safetensors"), "--dataset", path, "--force"));
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).toContain(path);
    }
  });

  it("REL-DATASET-TORN: distill reports a torn last dataset record instead of dropping it silently", async () => {
    await dataset();
    const torn = join(tmp, "torn.ptpd");
    writeFileSync(torn, Buffer.concat([readFileSync(DATA), Buffer.from("PTPR\x05\x00")]));
    const r = await runCli(...distillArgs(join(tmp, "torn.safetensors"), "--dataset", torn, "--steps", "2"));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/warning: .*torn.ptpd: record \d+ at byte \d+ is torn/);
  });
});

describe("flag values", () => {
  it.each([
    [["generate", "--steps", "0x10"], /--steps must be a number/],
    [["generate", "--steps", " 5"], /--steps must be a number/],
    [["generate", "--temperature", "1e-30"], /--temperature must be >= 0 \(0 = greedy; a positive one at least 0.000001\)/],
    [["generate", "--seed", "0"], /--seed must be an integer in \[1, /],
    [["generate", "--threads", "0"], /--threads must be in \[1, 256\]/],
    [["generate", "--window", "1000000000"], /--window must be in \[1, 1024\]/],
    [["generate", "--budget", "1e9"], /--budget must be in \[1, 8192\]/],
    [["generate", "--drafts", "100000"], /--drafts must be in \[1, 64\]/],
    [["distill", "--rank", "1000000"], /--rank must be <= 4096/],
    [["distill", "--windows", "100000"], /--windows must be in \[1, 4096\], got 100000/],
    [["distill", "--threads", "0"], /--threads must be in \[1, 256\]/],
    [["pregenerate", "--threads", "-1"], /--threads must be in \[1, 256\]/],
    [["demo", "--threads", "0"], /--threads must be in \[1, 256\]/],
  ])("REL-FLAGS: %j exits 2 naming the flag", async (argv, message) => {
    const r = await runCli(...(argv as string[]), "--model", TEACHER, "--tokenizer", TOK_512);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(message as RegExp);
  });

  it("REL-TOPP-ZERO: --top-p 0 means off in every command (generate prints what --top-p 1 prints; pregenerate accepts it)", async () => {
    const gen = (p: string) => runCli("generate", "--model", TEACHER, "--tokenizer", TOK_512, "--prompt", "Once", "--steps", "20", "--temperature", "0.9", "--seed", "3", "--top-p", p, "--backend", "js");
    const [a, b] = [await gen("0"), await gen("1")];
    expect(a.code).toBe(0);
    expect(a.stdout).toBe(b.stdout);
    const out = join(tmp, "topp0.ptpd");
    const r = await runCli("pregenerate", "--model", TEACHER, "--tokenizer", TOK_512, "--prompts", PROMPTS, "--out", out, "--samples", "1", "--steps", "8", "--top-p", "0", "--backend", "js");
    expect(r.code, r.stderr).toBe(0);
  });
});

describe("loaders read headers first and refuse what is not a regular file", () => {
  it("REL-HEADER-FIRST: /dev/zero is refused at once; a 2.5 GiB sparse file is judged by its header without being read", () => {
    expect(() => readCheckpoint("/dev/zero")).toThrow(/\/dev\/zero: is not a regular file/);
    expect(() => readSafetensors("/dev/zero")).toThrow(/\/dev\/zero: is not a regular file/);
    expect(() => Tokenizer.load("/dev/zero", 512)).toThrow(/\/dev\/zero: is not a regular file/);
    const big = join(tmp, "sparse.bin");
    writeFileSync(big, readFileSync(TEACHER).subarray(0, 256));
    truncateSync(big, 2.5 * 2 ** 30);
    // The header's size check, not a 2.5 GB read: the message names the size the header requires.
    expect(() => readCheckpoint(big)).toThrow(/sparse.bin: file is 2684354560 bytes but the v0 header .* requires \d+ bytes/);
    const st = join(tmp, "sparse.safetensors");
    const head = Buffer.alloc(16);
    head.writeBigUInt64LE(8n, 0);
    head.write("{}      ", 8);
    writeFileSync(st, head);
    truncateSync(st, 2.5 * 2 ** 30);
    expect(() => readSafetensors(st)).toThrow(/sparse.safetensors: file is 2684354560 bytes; files of 2 GiB or more are not supported/);
    const longHeader = join(tmp, "long-header.safetensors");
    head.writeBigUInt64LE(2n ** 40n, 0);
    writeFileSync(longHeader, head);
    expect(() => readSafetensors(longHeader)).toThrow(/long-header.safetensors: safetensors header length 1099511627776 goes beyond the end of the file/);
  });

  it("REL-EISDIR: a directory given as an input file is named in a one-line error (no bare EISDIR)", async () => {
    const dir = mkdtempSync(join(tmp, "dir-"));
    expect(() => readDataset(dir)).toThrow(new RegExp(`${dir}: is a directory, expected a PTP distillation dataset`));
    for (const flag of ["--model", "--dataset"]) {
      const args = distillArgs(join(tmp, "eisdir.safetensors"));
      args[args.indexOf(flag) + 1] = dir;
      const r = await runCli(...args);
      expect(r.code, flag).toBe(1);
      // --model DIR is read as a Hugging Face folder: the message names the file it lacks.
      expect(r.stderr).toContain(flag === "--model" ? `${dir}/config.json: file does not exist` : `${dir}: is a directory`);
      expect(r.stderr).not.toMatch(/EISDIR/);
    }
  });

  it("REL-MEMORY: generate refuses up front (exit 2, as distill, train and pregenerate: one mechanism) a run whose KV cache would not fit (wasm: 4 GiB), naming what to lower; a short run of the same model works", async () => {
    const big = join(tmp, "long-context.bin");
    writeCheckpoint(big, randomCheckpoint({ ...config, dim: 64, hiddenDim: 64, nLayers: 8, nHeads: 4, nKvHeads: 4, seqLen: 2 ** 20 }, 3), 1);
    const r = await runCli("generate", "--model", big, "--tokenizer", TOK_512, "--steps", "0", "--backend", "wasm", "--seed", "1");
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/^ptp generate: .*long-context.bin at --steps 1048576 needs about 4\.\d GiB \(largest part: KV cache of 1048576 rows, 4\.0 GiB; 4\.\d GiB per wasm instance\), more than the wasm backend's 4 GiB; lower --steps\n/);
    // PTP decoding (here --prompts, the decoder ar) is refused alike, naming the decoder flags that size its cache too.
    const prompts = join(tmp, "memory-prompts.txt");
    writeFileSync(prompts, "Once\n");
    const p = await runCli("generate", "--model", big, "--tokenizer", TOK_512, "--prompts", prompts, "--steps", "0", "--backend", "wasm", "--seed", "1");
    expect(p.code, p.stderr).toBe(2);
    expect(p.stderr).toMatch(/^ptp generate: .*long-context.bin at --steps 1048576 needs about \d+\.\d GiB \(largest part: KV cache of \d+ rows, .*\), more than the wasm backend's 4 GiB; lower --steps \(or --window, --budget, --drafts\)\n/);
    const ok = await runCli("generate", "--model", big, "--tokenizer", TOK_512, "--steps", "8", "--backend", "wasm", "--seed", "1");
    expect(ok.code, ok.stderr).toBe(0);
  });

  it("REL-MEMORY-TRAIN: distill, train (both objectives) and pregenerate refuse up front (exit 2) a run whose estimated memory is beyond the machine, naming the flags that drive it; nothing is written", async () => {
    await dataset();
    const started = performance.now();
    const out = join(tmp, "memory.safetensors");
    let r = await runCli(...distillArgs(out, "--windows", "4096", "--window", "64", "--batch", "4096", "--threads", "256"));
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/^ptp distill: .*teacher.bin needs about \d+\.\d GiB \(largest part: training graph of 4096 windows x 64 slots x 256 threads, .*\), more than this machine's .* GiB; lower --windows, --window, --threads \(or --batch\) or --rank\n/);
    expect(existsSync(out)).toBe(false);
    r = await runCli(...trainArgs(join(tmp, "memory.bin"), "--tokenizer", TOK_512, "--dim", "4096", "--hidden", "16384", "--layers", "64", "--heads", "32", "--seq-len", "65536", "--batch", "4096"));
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/^ptp train: pretraining needs about \d+\.\d GiB \(largest part: training graph of one window of 65536 tokens \(x \d+ threads\), .*\), more than this machine's .* GiB; lower --threads, --context \(or --seq-len\), --dim, --hidden or --layers\n/);
    const big = join(tmp, "long-context-train.bin");
    writeCheckpoint(big, randomCheckpoint({ ...config, dim: 64, hiddenDim: 64, nLayers: 8, nHeads: 4, nKvHeads: 4, seqLen: 2 ** 20 }, 3), 1);
    r = await runCli("train", "--objective", "inverse-ar", "--model", big, "--corpus", corpus, "--tokenizer", TOK_512, "--out", join(tmp, "iar-memory.safetensors"), "--context", "1048576", "--steps", "2");
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/^ptp train: --objective inverse-ar on .*long-context-train.bin needs about \d+\.\d GiB .*; lower --context, --window, --threads or --rank\n/);
    const data = join(tmp, "memory.ptpd");
    r = await runCli("pregenerate", "--model", big, "--tokenizer", TOK_512, "--out", data, "--steps", "1048576", "--samples", "1", "--backend", "wasm");
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/^ptp pregenerate: .*long-context-train.bin needs about \d+\.\d GiB \(largest part: KV cache of 1048576 rows, 4\.0 GiB; 4\.\d GiB per wasm instance\), more than the wasm backend's 4 GiB; lower --steps \(or the longest of --prompts\)\n/);
    expect(existsSync(data)).toBe(false);
    // Refused before any big allocation: all four in well under the time one would take.
    expect(performance.now() - started).toBeLessThan(20_000);
    // A run of the same model that fits still goes.
    const ok = await runCli("pregenerate", "--model", big, "--tokenizer", TOK_512, "--out", data, "--steps", "8", "--samples", "1", "--backend", "wasm");
    expect(ok.code, ok.stderr).toBe(0);
  });

  it("REL-MEMORY-WEIGHTS: a model whose weights alone are beyond the limit is refused naming the file (exit 1, no usage line: no flag can help), by generate and demo, before its buffers are made; a 2 GiB checkpoint is refused from its header", async () => {
    // A 1.2B-parameter folder (sparse BF16 shards, 2.5 GB on paper, nothing on disk): 4.6 GiB as float32, past the wasm backend's 4 GiB.
    const dir = mkdtempSync(join(tmp, "big-hf-"));
    const big: ModelConfig = { dim: 2048, hiddenDim: 5632, nLayers: 24, nHeads: 16, nKvHeads: 16, vocabSize: 512, seqLen: 256, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };
    writeFileSync(join(dir, "config.json"), JSON.stringify(modelConfigToHf(big)));
    const shapes = [...hfTensorShapes(big)];
    const map: Record<string, string> = {};
    const half = Math.ceil(shapes.length / 2);
    for (const [k, part] of [shapes.slice(0, half), shapes.slice(half)].entries()) {
      const file = `model-0000${k + 1}-of-00002.safetensors`;
      const header: Record<string, unknown> = {};
      let at = 0;
      for (const [name, shape] of part) {
        const bytes = 2 * shape.reduce((a, b) => a * b, 1);
        header[name] = { dtype: "BF16", shape, data_offsets: [at, at + bytes] };
        map[name] = file;
        at += bytes;
      }
      const json = Buffer.from(JSON.stringify(header));
      const head = Buffer.alloc(8);
      head.writeBigUInt64LE(BigInt(json.length), 0);
      writeFileSync(join(dir, file), Buffer.concat([head, json]));
      truncateSync(join(dir, file), 8 + json.length + at);
    }
    writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify({ weight_map: map }));
    const want = `${dir}: the model's weights alone need about 4.6 GiB, more than the wasm backend's 4 GiB (--backend js has no 4 GiB bound)\n`;
    const g = await runCli("generate", "--model", dir, "--tokenizer", TOK_512, "--steps", "8", "--backend", "wasm", "--seed", "1");
    expect(g.code, g.stderr).toBe(1);
    expect(g.stderr).toBe(`ptp generate: ${want}`);
    const d = await runCli("demo", "--model", dir, "--tokenizer", TOK_512, "--student", join(ROOT, "demo/stories260K-head.safetensors"));
    expect(d.code, d.stderr).toBe(1);
    expect(d.stderr).toBe(`ptp demo: ${want}`);
    // A llama2.c file of 2 GiB or more: refused from its header by readModelConfig, so before loadModel makes a buffer.
    const bin = join(tmp, "two-gib.bin");
    const header = new Int32Array([1024, 2816, 48, 16, 16, 32000, 256]);
    writeFileSync(bin, new Uint8Array(header.buffer));
    truncateSync(bin, 2597785628);
    expect(() => readModelConfig(bin)).toThrow(`${bin}: file is 2597785628 bytes; files of 2 GiB or more are not supported (expected a llama2.c checkpoint)`);
    const r = await runCli("generate", "--model", bin, "--tokenizer", TOK_512, "--steps", "1");
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain("files of 2 GiB or more are not supported");
  });

  it("REL-SAFETENSORS-HEADER-CAP: a header over 100,000,000 bytes is refused as such (not as not fitting the file) by every safetensors reader: a student file and a model folder's shard", () => {
    const path = join(tmp, "long-header.safetensors");
    const head = Buffer.alloc(8);
    head.writeBigUInt64LE(200_000_000n, 0);
    writeFileSync(path, head);
    truncateSync(path, 300_000_000);
    const want = `${path}: safetensors header length 200000000 is over the 100000000-byte limit for a header (the format's reference reader's)`;
    expect(() => readSafetensors(path)).toThrow(want);
    const dir = mkdtempSync(join(tmp, "long-header-hf-"));
    writeFileSync(join(dir, "config.json"), JSON.stringify(modelConfigToHf(config)));
    const shard = join(dir, "model.safetensors");
    writeFileSync(shard, head);
    truncateSync(shard, 300_000_000);
    expect(() => readModelConfig(dir)).toThrow(want.replace(path, shard));
  });

  it("REL-SEQLEN: a v1 checkpoint with seq_len 2^31 - 1 is refused naming the field", () => {
    const bytes = new Uint8Array(serializeCheckpoint(randomCheckpoint(config, 2), 1));
    new DataView(bytes.buffer).setInt32(8 + 4 * 6, 2 ** 31 - 1, true);
    expect(() => parseCheckpoint(bytes, "v1.bin")).toThrow(/v1.bin: invalid v1 header .*seqLen must be <= 1048576, got 2147483647/);
  });
});

describe("large prompt files", () => {
  it("REL-BATCH: --prompts decodes in bounded batches (16) with progress on stderr; stdout has exactly one line per prompt, and every output equals the prompt decoded alone", async () => {
    const file = join(tmp, "many-prompts.txt");
    const texts = Array.from({ length: 70 }, (_, i) => `Once ${i} upon`);
    writeFileSync(file, texts.join("\n") + "\n");
    const common = ["--model", TEACHER, "--tokenizer", TOK_512, "--steps", "24", "--temperature", "1", "--backend", "js", "--no-stop"];
    const r = await runCli("generate", ...common, "--prompts", file, "--seed", "5");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/generate: 16\/70 prompts decoded\n(.|\n)*generate: 64\/70 prompts decoded\ngenerate: 70\/70 prompts decoded/);
    expect(r.stderr).toMatch(/prompts: +70/);
    const lines = r.stdout.split("\n");
    expect(lines.pop()).toBe("");
    expect(lines).toHaveLength(70);
    const json = JSON.parse((await runCli("generate", ...common, "--prompts", file, "--seed", "5", "--json")).stdout);
    expect(json.outputs).toHaveLength(70);
    const tokenizer = Tokenizer.load(TOK_512, 512);
    for (const i of [0, 15, 16, 69]) {
      const alone = JSON.parse((await runCli("generate", ...common, "--prompt", texts[i], "--seed", String(5 + i), "--json")).stdout);
      expect(json.outputs[i].tokens, `prompt ${i}`).toEqual(alone.tokens);
      expect(json.outputs[i].text, `prompt ${i}`).toBe(alone.text);
      // The line is the streamed text (tokenizer.bin: what run.c prints), escaped; --json's text has every byte.
      expect(lines[i]).toBe(tokenizer.decode(alone.tokens).replace(/\\/g, "\\\\").replace(/\n/g, "\\n"));
      expect(alone.text).toBe(new TextDecoder().decode(tokenizer.decodeBytes(alone.tokens, false)));
    }
  });
});

describe("text inputs: refused unread when not regular or beyond their bound, then read line by line", () => {
  const dir = mkdtempSync(join(tmp, "text-"));
  const fifo = join(dir, "fifo");
  execFileSync("mkfifo", [fifo]);
  const fifoJson = join(dir, "fifo.json");
  symlinkSync(fifo, fifoJson);
  const zeroJson = join(dir, "zero.json");
  symlinkSync("/dev/zero", zeroJson);

  it("REL-TEXT-NONREGULAR: /dev/zero or a FIFO as a tokenizer (tokenizer.bin or tokenizer.json), prompt file, u file or corpus is refused at once, naming the file", async () => {
    const started = performance.now();
    for (const path of ["/dev/zero", fifo]) {
      expect(() => Tokenizer.load(path, 512), path).toThrow(new RegExp(`^${path}: is not a regular file`));
      expect(() => readAuxFile(path), path).toThrow(new RegExp(`^${path}: is not a regular file`));
      const r = await runCli("generate", "--model", TEACHER, "--tokenizer", TOK_512, "--prompts", path, "--steps", "8", "--seed", "1");
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toBe(`ptp generate: ${path}: is not a regular file (a device, pipe or socket), expected a text file of prompts, one per line\n`);
      const t = await runCli(...trainArgs(join(dir, "never.bin"), "--tokenizer", TOK_512).map((a) => (a === corpus ? path : a)));
      expect(t.code, t.stderr).toBe(1);
      expect(t.stderr).toMatch(new RegExp(`^ptp train: ${path}: is not a regular file .*expected a text corpus`));
    }
    for (const path of [zeroJson, fifoJson]) expect(() => loadTokenizer(path, 512), path).toThrow(new RegExp(`^${path}: is not a regular file .*tokenizer.json`));
    expect(performance.now() - started).toBeLessThan(10_000);
  });

  it("REL-TEXT-BOUND: a 3 GiB sparse file is refused without being read, naming the file and the limit (tokenizer.bin: the size its header allows for the vocab)", async () => {
    const huge = join(dir, "huge.txt");
    try {
      execFileSync("truncate", ["-s", "3G", huge]);
      const hugeJson = join(dir, "huge.json");
      symlinkSync(huge, hugeJson);
      const started = performance.now();
      expect(() => Tokenizer.load(huge, 512)).toThrow(`${huge}: file is 3221225472 bytes, more than the 4100 bytes 512 tokens of at most max_token_length 0 bytes take`);
      expect(() => loadTokenizer(hugeJson, 512)).toThrow(`${hugeJson}: file is 3221225472 bytes, more than the 536870912-byte limit for a Hugging Face tokenizer.json`);
      expect(() => readAuxFile(huge)).toThrow(`${huge}: file is 3221225472 bytes, more than the 268435456-byte limit for a u file, one value per line`);
      const r = await runCli("generate", "--model", TEACHER, "--tokenizer", TOK_512, "--prompts", huge, "--steps", "8", "--seed", "1");
      expect(r.stderr).toBe(`ptp generate: ${huge}: file is 3221225472 bytes, more than the 1073741824-byte limit for a text file of prompts, one per line\n`);
      const t = await runCli(...trainArgs(join(dir, "never.bin"), "--tokenizer", TOK_512).map((a) => (a === corpus ? huge : a)));
      expect(t.stderr).toBe(`ptp train: ${huge}: file is 3221225472 bytes; files of 2 GiB or more are not supported (expected a text corpus, one document per line)\n`);
      expect(performance.now() - started).toBeLessThan(10_000);
    } finally {
      rmSync(huge, { force: true });
    }
  });

  it("REL-TOKENIZER-HEADER: a corrupt tokenizer.bin header is refused naming the field, before the rest is read; a piece longer than the header allows is named", () => {
    const bytes = new Uint8Array(readFileSync(TOK_512));
    const bad = join(dir, "bad-header.bin");
    const edit = (v: number) => {
      const copy = bytes.slice();
      new DataView(copy.buffer).setInt32(0, v, true);
      writeFileSync(bad, copy);
    };
    edit(2 ** 31 - 1);
    expect(() => Tokenizer.load(bad, 512)).toThrow(`${bad}: header field max_token_length must be at most 65536, found 2147483647`);
    expect(() => loadTokenizerFile(bad)).toThrow(`${bad}: header field max_token_length must be at most 65536, found 2147483647`);
    edit(3);
    expect(() => Tokenizer.load(bad, 512)).toThrow(/bad-header.bin: token \d+ is \d+ bytes, longer than the header's max_token_length 3 \(at byte offset \d+\)/);
  });

  it("REL-TOKENIZER-JSON-FOR-BIN: a tokenizer.json where a tokenizer.bin is expected is named as such, not as a bad header field", () => {
    const json = join(dir, "tokenizer.json");
    writeFileSync(json, '{\n  "version": "1.0",\n  "model": {"type": "BPE", "vocab": {}, "merges": []}\n}\n');
    const expected = `${json}: starts like a JSON file (a Hugging Face tokenizer.json?), but a llama2.c tokenizer.bin is expected here`;
    expect(() => Tokenizer.load(json, 512)).toThrow(expected);
    expect(() => loadTokenizerFile(json)).toThrow(expected);
    expect(() => Tokenizer.fromBytes(new Uint8Array(readFileSync(json)), 512, json)).toThrow(expected);
  });

  it("REL-TEXT-LINES: prompt files, u files and corpora are read line by line (64 KiB chunks): CRLF, lines across chunk boundaries and a missing last newline read as before; a line beyond the bound is refused naming the line", async () => {
    const lines = Array.from({ length: 3000 }, (_, i) => `prompt ${i} ${"x".repeat(i % 97)}`);
    const file = join(dir, "many.txt");
    const text = lines.map((l, i) => (i % 3 === 0 ? `${l}\r\n` : i % 5 === 0 ? `${l}\n\n` : `${l}\n`)).join("") + "last without newline";
    writeFileSync(file, text);
    expect(readPrompts(file)).toEqual(text.split(/\r?\n/).filter((l) => l.trim() !== ""));
    const got: string[] = [];
    readLines(file, "lines", { maxBytes: 2 ** 20, maxLine: 200 }, (l) => got.push(l));
    expect(got).toEqual(text.split(/\r?\n/));
    const long = join(dir, "long-line.txt");
    writeFileSync(long, `short\n${"y".repeat(2 ** 20 + 1)}\n`);
    expect(() => readPrompts(long)).toThrow(`${long}: line 2 is longer than 1048576 bytes`);
    const us = join(dir, "us.txt");
    writeFileSync(us, "# u's\r\n0.25\n\n0.5\r\n0.75");
    const aux = readAuxFile(us);
    expect([aux.next(), aux.next(), aux.next(), aux.remaining]).toEqual([0.25, 0.5, 0.75, 0]);
  });
});
