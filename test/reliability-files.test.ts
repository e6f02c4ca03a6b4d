import { existsSync, linkSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { randomCheckpoint, writeCheckpoint } from "../src/io/checkpoint.js";
import { readSafetensors, writeSafetensors } from "../src/io/safetensors.js";
import { runCli, TOK_512 } from "./helpers.js";

const tmp = mkdtempSync(join(tmpdir(), "ptp-files-"));
const TEACHER = join(tmp, "teacher.bin"), PROMPTS = join(tmp, "prompts.txt"), DATA = join(tmp, "data.ptpd");
const config = { dim: 16, hiddenDim: 24, nLayers: 2, nHeads: 2, nKvHeads: 1, vocabSize: 512, seqLen: 64, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };
writeCheckpoint(TEACHER, randomCheckpoint(config, 11));
writeFileSync(PROMPTS, "Once upon a time\nThe cat sat\nLily went to the park\n");

async function dataset(): Promise<void> {
  if (existsSync(DATA)) return;
  const r = await runCli("pregenerate", "--model", TEACHER, "--tokenizer", TOK_512, "--prompts", PROMPTS, "--out", DATA, "--samples", "2", "--steps", "24", "--temperature", "0.7", "--top-k", "0", "--top-p", "1");
  expect(r.code, r.stderr).toBe(0);
}
const distillArgs = (out: string, ...extra: string[]) => [
  "distill", "--model", TEACHER, "--dataset", DATA, "--out", out, "--rank", "4", "--window", "4", "--windows", "4", "--batch", "2",
  "--steps", "40", "--warmup", "2", "--eval-every", "0", "--backend", "wasm", ...extra,
];
const corpus = join(tmp, "corpus.txt");
writeFileSync(corpus, Array.from({ length: 40 }, (_, i) => `the cat ${i % 3 === 0 ? "sat" : "ran"} on the mat.`).join("\n") + "\n");
const trainArgs = (out: string, ...extra: string[]) => ["train", "--corpus", corpus, "--out", out, "--dim", "16", "--layers", "1", "--heads", "2", "--hidden", "32", "--seq-len", "16", "--batch", "2", "--steps", "4", "--eval-every", "0", ...extra];

describe("non-finite steps end the run", () => {
  it("REL-NONFINITE-LR: `distill --lr 1e30` stops after a bounded run of skipped steps with an error naming --lr, instead of looping forever", async () => {
    await dataset();
    const r = await runCli(...distillArgs(join(tmp, "lr.safetensors"), "--lr", "1e30", "--steps", "100000"));
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/10 consecutive steps had a non-finite loss or gradient/);
    expect(r.stderr).toMatch(/--lr 1e\+30 may be too high/);
    expect(r.stderr.match(/skipped/g)!.length).toBeLessThanOrEqual(10);
  });

  it("REL-NONFINITE-CKPT: a training checkpoint with NaN in adam_v, or a tampered rng / data_cursor, is refused on --resume naming the field", async () => {
    await dataset();
    const out = join(tmp, "nan.safetensors"), ckpt = `${out}.train.safetensors`;
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
      ["rng", "\"x\"", /metadata "rng" must be an integer/],
      ["rng", "4294967296", /metadata "rng" must be an integer/],
      ["data_cursor", "{\"seconds\":-1}", /metadata "data_cursor" must be/],
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
    const notes = join(tmp, "notes.txt"), out = join(tmp, "log-run.safetensors");
    writeFileSync(notes, "my notes\n");
    let r = await runCli(...distillArgs(out, "--log", notes));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--log .*notes.txt exists; pass --force/);
    r = await runCli(...distillArgs(out, "--log", notes, "--resume"));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/is not a metrics log written by ptp/);
    expect(readFileSync(notes, "utf8")).toBe("my notes\n");
  });

  it("REL-CLOBBER-SAME: an output that is an input (same path, a symlink or a hard link) is refused with exit 2", async () => {
    await dataset();
    const link = join(tmp, "teacher-link.bin"), hard = join(tmp, "teacher-hard.bin");
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
