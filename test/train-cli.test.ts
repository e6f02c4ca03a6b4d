import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createBackend } from "../src/backends/registry.js";
import { readCheckpoint, writeCheckpoint } from "../src/io/checkpoint.js";
import { randomCheckpoint } from "../src/model/init.js";
import { readSafetensors } from "../src/io/safetensors.js";
import { Tokenizer } from "../src/io/tokenizer.js";
import { Transformer } from "../src/model/transformer.js";
import { checkStudentMatchesTeacher, readStudent } from "../src/ptp/files/adapter-file.js";
import { randomStudent } from "../src/ptp/init.js";
import { decodeAR } from "../src/ptp/decode/decode-ar.js";
import { decode } from "../src/ptp/decode/run.js";
import { PtpModel } from "../src/ptp/ptp-model.js";
import { checkDraftMatchesTeacher, readDraft } from "../src/ptp/files/draft-file.js";
import { DraftModel } from "../src/ptp/draft-model.js";
import { teacherChecksum } from "../src/ptp/files/teacher-checksum.js";
import { XorShiftAux } from "../src/sampling/aux.js";
import { sampleToken } from "../src/sampling/sampler.js";
import { Tape } from "../src/train/autograd/index.js";
import { constantWeights } from "../src/train/graph.js";
import { recoverUs } from "../src/train/inverse-ar.js";
import { studentLogits, windowRows } from "../src/train/ptp-windows.js";
import { trainableStudent } from "../src/train/student-params.js";
import { rng, runCli, tinyCheckpoint, TOK_512 } from "./helpers.js";
import { lastFlagWins, withoutFlags } from "./flag-args.js";

const tmp = mkdtempSync(join(tmpdir(), "ptp-train-cli-"));
const TEACHER = join(tmp, "teacher.bin");
const PROMPTS = join(tmp, "prompts.txt");
const DATA = join(tmp, "data.ptpd");
const config = { dim: 16, hiddenDim: 24, nLayers: 2, nHeads: 2, nKvHeads: 1, vocabSize: 512, seqLen: 64, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };
writeCheckpoint(TEACHER, randomCheckpoint(config, 11));
writeFileSync(PROMPTS, "Once upon a time\nThe cat sat\nLily went to the park\n");

const bytes = (path: string) => readFileSync(path);

/**
 * A training command (`args(name, threads, ...extra)`, writing `out(name)`) gives the same bytes on
 * 1, 2 and 3 threads, and a run stopped after `stopAfter` steps on 2 threads resumes on 1 to the same bytes.
 */
async function sameBytesOnAnyThreadCount(args: (name: string, threads: number, ...extra: string[]) => string[], out: (name: string) => string, stopAfter: number): Promise<void> {
  for (const t of [1, 2, 3]) {
    const r = await runCli(...args(`t${t}`, t));
    expect(r.code, r.stderr).toBe(0);
  }
  for (const t of [2, 3]) expect(bytes(out(`t${t}`)).equals(bytes(out("t1"))), `${t} threads`).toBe(true);
  expect((await runCli(...args("mix", 2, "--stop-after", String(stopAfter)))).code).toBe(130);
  const resumed = await runCli(...args("mix", 1, "--resume"));
  expect(resumed.code, resumed.stderr).toBe(0);
  expect(bytes(out("mix")).equals(bytes(out("t1")))).toBe(true);
}

async function dataset(): Promise<void> {
  if (existsSync(DATA)) return;
  const r = await runCli("pregenerate", "--model", TEACHER, "--tokenizer", TOK_512, "--prompts", PROMPTS, "--out", DATA, "--samples", "2", "--steps", "24", "--temperature", "0.7", "--top-k", "0", "--top-p", "1");
  expect(r.code, r.stderr).toBe(0);
}

// A --draft model has no LoRA rank: the default --rank is left out there (distill refuses it).
const distillArgs = (out: string, ...extra: string[]) => {
  const args = lastFlagWins(["distill", "--model", TEACHER, "--dataset", DATA, "--out", out, "--rank", "4", "--window", "4", "--windows", "4", "--batch", "2", "--steps", "6", "--warmup", "2", "--eval-every", "3", "--tokenizer", TOK_512, "--eval-prompts", PROMPTS, "--eval-steps", "16", "--backend", "wasm", ...extra]);
  return extra.includes("--draft") ? withoutFlags(args, "rank") : args;
};

describe("ptp distill", () => {
  it("TRAIN-DISTILL-RUN: trains a student that loads against its teacher, logs accepted tokens per call, and decodes exactly as AR", async () => {
    await dataset();
    const out = join(tmp, "s-run.safetensors");
    const r = await runCli(...distillArgs(out));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/accepted/);
    const student = readStudent(out);
    const ckpt = readCheckpoint(TEACHER);
    checkStudentMatchesTeacher(student, ckpt, teacherChecksum(ckpt), out);
    // Training moved B away from its zero init.
    expect(student.weights.layers.some((l) => Object.values(l).some((p) => p.B.some((b) => b !== 0)))).toBe(true);
    const log = readFileSync(`${out}.log.jsonl`, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(log.map((e) => e.step)).toEqual([0, 3, 6]);
    for (const e of log) expect(e.accepted).toBeGreaterThanOrEqual(1);
    // The trained student changes only speed: single-call decoding still equals AR.
    const backend = await createBackend("wasm");
    const teacher = new Transformer(backend, ckpt);
    const model = new PtpModel(teacher, student);
    const prompt = [1, 403, 407];
    const sampling = { temperature: 0.7 };
    const ar = decodeAR(teacher, prompt, { steps: 40, sampling, aux: new XorShiftAux(5n) }).tokens;
    const ptp = decode(model, [prompt], { decoder: "single-call", steps: 40, sampling, aux: [new XorShiftAux(5n)] }).outputs[0];
    expect(ptp).toEqual(ar);
    model.dispose();
    teacher.dispose();
  });

  it("TRAIN-DISTILL-DEFAULTS: with no recipe flags distill trains the shipped recipe (C-PTP query student, KL, anchors, window 8); --variant O defaults to hybrid slots and cross-entropy", async () => {
    await dataset();
    const base = ["distill", "--model", TEACHER, "--dataset", DATA, "--rank", "4", "--windows", "2", "--batch", "1", "--steps", "2", "--eval-every", "0", "--backend", "wasm"];
    const c = join(tmp, "defaults-c.safetensors");
    const rc = await runCli(...base, "--out", c);
    expect(rc.code, rc.stderr).toBe(0);
    expect(rc.stderr).toMatch(/C-PTP student rank 4 \(anchors\), window 8, loss kl/);
    expect(readStudent(c).config).toMatchObject({ variant: "C", hybrid: true, query: true, window: 8, aux: { kind: "anchors" } });
    const o = join(tmp, "defaults-o.safetensors");
    const ro = await runCli(...base, "--out", o, "--variant", "O");
    expect(ro.code, ro.stderr).toBe(0);
    expect(ro.stderr).toMatch(/O-PTP student rank 4 \(anchors\), window 8, loss ce/);
    expect(readStudent(o).config).toMatchObject({ variant: "O", hybrid: true });
    expect(readStudent(o).config.query ?? false).toBe(false);
    // An --init student brings its variant: --variant must agree, and the loss defaults to the student's.
    const again = await runCli(...base, "--out", join(tmp, "defaults-o2.safetensors"), "--init", o, "--variant", "C");
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/--variant C does not match the --init student/);
    const eq = await runCli(...base, "--out", join(tmp, "defaults-o2.safetensors"), "--init", o, "--variant=C");
    expect(eq.code).toBe(2);
    expect(eq.stderr).toMatch(/--variant C does not match the --init student/);
    const cont = await runCli(...base, "--out", join(tmp, "defaults-o3.safetensors"), "--init", o);
    expect(cont.code, cont.stderr).toBe(0);
    expect(cont.stderr).toMatch(/O-PTP .* loss ce/);
  });

  it("TRAIN-RESUME: a run stopped after 3 steps and resumed ends byte-identical to an uninterrupted run (deterministic per seed)", async () => {
    await dataset();
    const straight = join(tmp, "s-straight.safetensors"),
      resumed = join(tmp, "s-resumed.safetensors");
    expect((await runCli(...distillArgs(straight))).code).toBe(0);
    const first = await runCli(...distillArgs(resumed, "--stop-after", "3"));
    expect(first.code).toBe(130);
    expect(first.stderr).toMatch(/interrupted at step 3/);
    // Without --resume an existing checkpoint is refused, so nothing is overwritten by accident.
    const refused = await runCli(...distillArgs(resumed));
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/pass --resume/);
    const second = await runCli(...distillArgs(resumed, "--resume"));
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toMatch(/resumed from .* at step 3/);
    expect(bytes(resumed).equals(bytes(straight))).toBe(true);
    // The training checkpoints hold the same tensors (their metadata records wall-clock time, which differs).
    const a = readSafetensors(`${resumed}.train.safetensors`).tensors,
      b = readSafetensors(`${straight}.train.safetensors`).tensors;
    expect([...a.keys()]).toEqual([...b.keys()]);
    for (const [k, t] of a) expect(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).equals(Buffer.from(b.get(k)!.data.buffer, b.get(k)!.data.byteOffset, b.get(k)!.data.byteLength)), k).toBe(true);
    // The log has the same evaluations (timing fields aside).
    const figures = (path: string) =>
      readFileSync(path, "utf8")
        .trim()
        .split("\n")
        .map((l) => {
          const { step, accepted, loss, correct } = JSON.parse(l);
          return { step, accepted, loss, correct };
        });
    expect(figures(`${resumed}.log.jsonl`)).toEqual(figures(`${straight}.log.jsonl`));
    // A resume with different options is refused with both configurations shown.
    const other = await runCli(...distillArgs(resumed, "--resume", "--lr", "0.5"));
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/different configuration/);
    // Options that change the tensors' shapes too (--rank): the configuration is named, not a tensor's shape.
    const rank = await runCli(...distillArgs(resumed, "--resume", "--rank", "3"));
    expect(rank.code).toBe(1);
    expect(rank.stderr).toMatch(/different configuration/);
    expect(rank.stderr).not.toMatch(/has shape/);
  });

  it("TRAIN-THREADS: data-parallel distillation gives the same bits on 1, 2 and 3 threads, and a run resumes on another thread count", async () => {
    await dataset();
    const one = join(tmp, "s-t1.safetensors"),
      two = join(tmp, "s-t2.safetensors"),
      three = join(tmp, "s-t3.safetensors"),
      mixed = join(tmp, "s-tmix.safetensors");
    const args = (out: string, t: number, ...extra: string[]) => distillArgs(out, "--batch", "3", "--threads", String(t), ...extra);
    for (const [out, t] of [
      [one, 1],
      [two, 2],
      [three, 3],
    ] as const) {
      const r = await runCli(...args(out, t));
      expect(r.code, r.stderr).toBe(0);
    }
    expect(bytes(two).equals(bytes(one))).toBe(true);
    expect(bytes(three).equals(bytes(one))).toBe(true);
    expect((await runCli(...args(mixed, 2, "--stop-after", "3"))).code).toBe(130);
    const resumed = await runCli(...args(mixed, 1, "--resume"));
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(bytes(mixed).equals(bytes(one))).toBe(true);
    // A hybrid student (the default) was trained: its file says so.
    expect(readStudent(one).config.hybrid).toBe(true);
  });

  it("TRAIN-CPTP: C-PTP students train with cross-entropy, KL and reverse KL", async () => {
    await dataset();
    for (const loss of ["ce", "kl", "rkl"]) {
      const out = join(tmp, `c-${loss}.safetensors`);
      const r = await runCli(...distillArgs(out, "--variant", "C", "--loss", loss, "--eval-decoder", "self", "--gamma", "0.9"));
      expect(r.code, r.stderr).toBe(0);
      expect(readStudent(out).config.variant).toBe("C");
    }
  });

  it("TRAIN-QUERY: --slot-input query trains a C-PTP student whose slot 0 is the teacher's own query: its file says so, has no start vector, and verify and single-call decode exactly as AR", async () => {
    await dataset();
    const out = join(tmp, "query.safetensors");
    const r = await runCli(...distillArgs(out, "--variant", "C", "--slot-input", "query", "--loss", "kl", "--gamma", "0.9"));
    expect(r.code, r.stderr).toBe(0);
    const student = readStudent(out);
    expect(student.config).toMatchObject({ variant: "C", hybrid: true, query: true });
    expect(student.weights.start).toBeUndefined();
    const ckpt = readCheckpoint(TEACHER);
    const backend = await createBackend("wasm");
    const teacher = new Transformer(backend, ckpt);
    const model = new PtpModel(teacher, student);
    const sampling = { temperature: 0.7 },
      prompt = [1, 403, 407];
    const ar = decodeAR(teacher, prompt, { steps: 40, sampling, aux: new XorShiftAux(9n) }).tokens;
    for (const decoder of ["verify", "single-call"] as const) {
      const out = decode(model, [prompt], { decoder, steps: 40, sampling, aux: [new XorShiftAux(9n)] });
      expect(out.outputs[0], decoder).toEqual(ar);
      // verify: the first draft of every proposal is the teacher's own pick, so every step accepts at least 2 (bar the last).
      if (decoder === "verify") expect(out.stats.acceptedHistogram[1] ?? 0).toBeLessThanOrEqual(1);
    }
    model.dispose();
    teacher.dispose();
    // O-PTP, draft models and one-slot windows cannot have a query slot.
    for (const extra of [
      ["--variant", "O"],
      ["--variant", "C", "--window", "1"],
      ["--variant", "C", "--draft"],
    ]) {
      const bad = await runCli(...distillArgs(join(tmp, "bad-query.safetensors"), "--slot-input", "query", ...extra));
      expect(bad.code, `${extra.join(" ")}: ${bad.stderr}`).toBe(2);
      expect(bad.stderr).toMatch(/--slot-input query/);
    }
  });

  it("TRAIN-DRAFT: --draft trains a standalone draft model whose verify decoding equals AR", async () => {
    await dataset();
    const out = join(tmp, "draft.safetensors");
    const r = await runCli(...distillArgs(out, "--draft", "--draft-dim", "8", "--draft-layers", "1", "--draft-heads", "2", "--draft-kv-heads", "1", "--draft-hidden", "16"));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/draft model dim 8/);
    const draft = readDraft(out);
    const ckpt = readCheckpoint(TEACHER);
    checkDraftMatchesTeacher(draft, ckpt, teacherChecksum(ckpt), out);
    const backend = await createBackend("wasm");
    const teacher = new Transformer(backend, ckpt);
    const dm = new DraftModel(teacher, draft);
    const model = new PtpModel(teacher);
    const sampling = { temperature: 0.7 },
      prompt = [1, 403, 407];
    const ar = decodeAR(teacher, prompt, { steps: 40, sampling, aux: new XorShiftAux(9n) }).tokens;
    expect(decode(model, [prompt], { decoder: "verify", draft: dm, steps: 40, sampling, aux: [new XorShiftAux(9n)] }).outputs[0]).toEqual(ar);
    dm.dispose();
    model.dispose();
    teacher.dispose();
  });

  it("TRAIN-DRAFT-INIT: --draft-init teacher trains a draft that starts as the teacher (--draft-layers adds blocks); shape flags and a lone --draft-init are usage errors", async () => {
    await dataset();
    const out = join(tmp, "draft-copy.safetensors");
    const r = await runCli(...distillArgs(out, "--draft", "--draft-init", "teacher", "--draft-layers", String(config.nLayers + 1), "--slot-input", "hybrid", "--variant", "C", "--loss", "kl"));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`draft model dim ${config.dim} x ${config.nLayers + 1} layers \\(from the teacher\\)`));
    const draft = readDraft(out);
    expect(draft.config.model).toMatchObject({ ...config, nLayers: config.nLayers + 1 });
    expect(draft.config.hybrid).toBe(true);
    for (const [extra, why] of [
      [["--draft-init", "teacher"], /--draft-init goes with --draft/],
      [["--draft", "--draft-init", "teacher", "--draft-dim", "8"], /--draft-dim does not go with --draft-init teacher/],
      [["--draft", "--draft-init", "teacher", "--draft-layers", "1"], /--draft-layers must be at least/],
      // --flag=value reads as --flag value everywhere
      [["--draft", "--draft-init", "teacher", "--draft-dim=8"], /--draft-dim does not go with --draft-init teacher/],
      [["--draft", "--draft-init", "teacher", "--draft-layers=1"], /--draft-layers must be at least/],
      [["--draft", "--draft-init", "teacher", "--eval-decoder=single-call"], /a draft model is evaluated with --eval-decoder verify/],
      [["--draft", "--draft-init", "copy"], /--draft-init/],
    ] as const) {
      const bad = await runCli(...distillArgs(join(tmp, "bad-init.safetensors"), ...extra));
      expect(bad.code, `${extra.join(" ")}: ${bad.stderr}`).toBe(2);
      expect(bad.stderr).toMatch(why);
    }
  });

  it("TRAIN-SEQLEN-END: records that fill the teacher's whole context (seqLen + 1 tokens) train", async () => {
    const short = join(tmp, "short.bin"),
      data = join(tmp, "short.ptpd"),
      out = join(tmp, "short.safetensors");
    writeCheckpoint(short, randomCheckpoint({ ...config, seqLen: 12 }, 5));
    const g = await runCli("pregenerate", "--model", short, "--tokenizer", TOK_512, "--out", data, "--samples", "3", "--steps", "40", "--temperature", "1", "--top-k", "0", "--top-p", "1");
    expect(g.code, g.stderr).toBe(0);
    const r = await runCli("distill", "--model", short, "--dataset", data, "--out", out, "--rank", "2", "--window", "4", "--windows", "8", "--batch", "3", "--steps", "3", "--eval-every", "0");
    expect(r.code, r.stderr).toBe(0);
  });

  it("TRAIN-WINDOW-PAST-RECORDS: a --window longer than every record's sampled tokens is warned about (its last slots never train); a fitting one is not", async () => {
    await dataset();
    const long = await runCli(...distillArgs(join(tmp, "s-longwin.safetensors"), "--window", "40", "--steps", "1", "--eval-every", "0"));
    expect(long.code, long.stderr).toBe(0);
    expect(long.stderr).toMatch(/distill: warning: --window 40 is longer than any record of \S+data\.ptpd \(at most (\d+) sampled tokens\): slots \d+ to 40 of a window are never trained/);
    const fits = await runCli(...distillArgs(join(tmp, "s-fitwin.safetensors"), "--steps", "1", "--eval-every", "0"));
    expect(fits.code, fits.stderr).toBe(0);
    expect(fits.stderr).not.toContain("never trained");
  });

  it("TRAIN-USAGE: bad arguments exit 2 with the usage", async () => {
    await dataset();
    for (const extra of [["--rank", "0"], ["--variant", "O", "--loss", "kl"], ["--gamma", "1.5"], ["--eval-prompts", PROMPTS, "--tokenizer"], ["--bogus"]]) {
      const args = distillArgs(join(tmp, "bad.safetensors")).filter((a, i, all) => !(a === "--tokenizer" || all[i - 1] === "--tokenizer" || a === "--eval-prompts" || all[i - 1] === "--eval-prompts"));
      const r = await runCli(...args, ...extra);
      expect(r.code, `${extra.join(" ")}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(/usage: ptp distill/);
    }
    const t = await runCli("train", "--corpus", PROMPTS, "--out", join(tmp, "m.bin"));
    expect(t.code).toBe(2);
    expect(t.stderr).toMatch(/exactly one of --tokenizer and --char-vocab/);
  });
});

describe("ptp train", () => {
  const corpus = join(tmp, "corpus.txt");
  writeFileSync(corpus, Array.from({ length: 60 }, (_, i) => `the cat ${i % 3 === 0 ? "sat" : "ran"} on the mat and the dog ${i % 2 ? "slept" : "barked"}.`).join("\n") + "\n");

  it("TRAIN-AR: next-token training from scratch lowers the held-out loss and writes a loadable llama2.c checkpoint with a char tokenizer", async () => {
    const out = join(tmp, "scratch.bin"),
      tok = join(tmp, "chars.bin");
    const r = await runCli("train", "--corpus", corpus, "--char-vocab", tok, "--out", out, "--dim", "16", "--layers", "1", "--heads", "2", "--hidden", "32", "--seq-len", "32", "--batch", "4", "--steps", "40", "--eval-every", "40", "--lr", "1e-2", "--warmup", "5");
    expect(r.code, r.stderr).toBe(0);
    const log = readFileSync(`${out}.log.jsonl`, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(log[0].step).toBe(0);
    expect(log.at(-1).step).toBe(40);
    expect(log.at(-1).validLoss).toBeLessThan(log[0].validLoss - 1);
    const model = readCheckpoint(out);
    const tokenizer = Tokenizer.load(tok, model.config.vocabSize);
    expect(tokenizer.decode(tokenizer.encode("the cat", true, false))).toContain("the cat");
  });

  it("TRAIN-AR-RESUME: stopped and resumed, the checkpoint ends byte-identical to an uninterrupted run", async () => {
    const args = (out: string, ...extra: string[]) => ["train", "--corpus", corpus, "--char-vocab", join(tmp, `${out}.tok`), "--out", join(tmp, out), "--dim", "16", "--layers", "1", "--heads", "2", "--hidden", "32", "--seq-len", "32", "--batch", "2", "--steps", "6", "--eval-every", "3", ...extra];
    expect((await runCli(...args("a.bin"))).code).toBe(0);
    expect((await runCli(...args("b.bin", "--stop-after", "2"))).code).toBe(130);
    expect((await runCli(...args("b.bin", "--resume"))).code).toBe(0);
    expect(bytes(join(tmp, "b.bin")).equals(bytes(join(tmp, "a.bin")))).toBe(true);
  });

  it("TRAIN-CORPUS-FOLDER: a folder as --corpus is named as one (exit 1), also with --out inside it (that read as an output inside an input, exit 2)", async () => {
    const folder = join(tmp, "corpus-folder");
    mkdirSync(folder, { recursive: true });
    for (const out of [join(folder, "o.bin"), join(tmp, "o-folder.bin")]) {
      const r = await runCli("train", "--corpus", folder, "--char-vocab", join(tmp, "folder.tok"), "--out", out, "--steps", "2");
      expect(r.code, out).toBe(1);
      expect(r.stderr).toBe(`ptp train: ${folder}: is a directory, expected a text corpus, one document per line\n`);
    }
  });

  it("TRAIN-LOG-FRESH: a fresh run (--force, or --resume without a checkpoint) starts its metrics log empty: no earlier run's lines, its step-0 evaluation included", async () => {
    const out = join(tmp, "fresh.bin");
    const args = (seed: string, ...extra: string[]) => ["train", "--corpus", corpus, "--char-vocab", join(tmp, "fresh.tok"), "--out", out, "--dim", "16", "--layers", "1", "--heads", "2", "--hidden", "32", "--seq-len", "32", "--batch", "2", "--steps", "4", "--eval-every", "2", "--seed", seed, ...extra];
    const steps = () =>
      readFileSync(`${out}.log.jsonl`, "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { step: number; validLoss: number });
    expect((await runCli(...args("1"))).code).toBe(0);
    const first = steps();
    expect(first.map((e) => e.step)).toEqual([0, 2, 4]);
    for (const again of [["--force"], ["--force", "--resume"]]) {
      rmSync(`${out}.train.safetensors`, { force: true }); // --resume then finds no checkpoint
      const r = await runCli(...args("2", ...again));
      expect(r.code, r.stderr).toBe(0);
      const log = steps();
      expect(
        log.map((e) => e.step),
        again.join(" "),
      ).toEqual([0, 2, 4]);
      expect(log[0].validLoss).not.toBe(first[0].validLoss); // this run's (another seed), not the first run's
    }
  });

  it("TRAIN-AR-THREADS: next-token training gives the same bytes on 1, 2 and 3 threads, a run resumes on another thread count, and --threads is checked", async () => {
    const shape = ["--dim", "16", "--layers", "1", "--heads", "2", "--hidden", "32", "--seq-len", "32", "--batch", "5"];
    const args = (out: string, t: number, ...extra: string[]) => ["train", "--corpus", corpus, "--char-vocab", join(tmp, `${out}.tok`), "--out", join(tmp, out), ...shape, "--steps", "6", "--eval-every", "3", "--threads", String(t), ...extra];
    await sameBytesOnAnyThreadCount(
      (name, t, ...extra) => args(`${name}.bin`, t, ...extra),
      (name) => join(tmp, `${name}.bin`),
      4,
    );
    for (const bad of ["0", "1.5", "x"]) {
      const r = await runCli("train", "--corpus", corpus, "--char-vocab", join(tmp, "thbad.tok"), "--out", join(tmp, "thbad.bin"), "--threads", bad);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/--threads/);
    }
  });

  it("TRAIN-INVERSE-AR: recovered u's lie in the student's own bins (Pick gives back every observed token), and the command trains a C-PTP student, the same bytes on any number of threads (TRAIN-INVERSE-AR-THREADS)", async () => {
    fc.assert(
      fc.property(tinyCheckpoint, fc.integer({ min: 1, max: 1 << 30 }), fc.constantFrom(0.7, 1), (ckpt, seed, temperature) => {
        const next = rng(seed),
          cfg = ckpt.config;
        const student = randomStudent(ckpt, "t", { variant: "C", rank: 2, aux: { kind: "digits", digits: 12 }, window: 3, seed });
        const st = trainableStudent(student, cfg);
        const n = 12,
          L = 3,
          tokens = Array.from({ length: n }, () => Math.floor(next() * cfg.vocabSize));
        const starts = [1, 4, 7];
        const js = { context: { keys: [] as Float32Array[], values: [] as Float32Array[], length: n } };
        for (let l = 0; l < cfg.nLayers; l++) {
          const kv = (cfg.dim * cfg.nKvHeads) / cfg.nHeads;
          js.context.keys.push(Float32Array.from({ length: n * kv }, () => 2 * next() - 1));
          js.context.values.push(Float32Array.from({ length: n * kv }, () => 2 * next() - 1));
        }
        const sampling = { temperature, topK: 0, topP: 1 };
        const weights = constantWeights(ckpt);
        const us = recoverUs(cfg, weights, st, js.context, tokens, starts, L, sampling, () => next());
        // The rows as the student reads them (its slot input: hybrid, the default of randomStudent), as recoverUs builds them.
        const rows = windowRows("C", tokens, us, starts, L, 1, st.slots.input);
        const logits = studentLogits(new Tape(), cfg, weights, st, js.context, rows).data;
        for (let r = 0; r < rows.targets.length; r++) {
          expect(sampleToken(logits.subarray(r * cfg.vocabSize, (r + 1) * cfg.vocabSize), sampling, rows.targetU[r])).toBe(rows.targets[r]);
        }
      }),
      { numRuns: 20, endOnFailure: true },
    );
    const model = join(tmp, "base.bin"),
      tok = join(tmp, "base.tok");
    expect((await runCli("train", "--corpus", corpus, "--char-vocab", tok, "--out", model, "--dim", "16", "--layers", "1", "--heads", "2", "--hidden", "32", "--seq-len", "32", "--batch", "2", "--steps", "4", "--eval-every", "0")).code).toBe(0);
    const out = join(tmp, "iar.safetensors");
    const r = await runCli("train", "--objective", "inverse-ar", "--corpus", corpus, "--tokenizer", tok, "--model", model, "--out", out, "--rank", "2", "--window", "3", "--context", "16", "--batch", "2", "--steps", "3", "--eval-every", "0");
    expect(r.code, r.stderr).toBe(0);
    expect(readStudent(out).config.variant).toBe("C");
    // TRAIN-INVERSE-AR-THREADS: the text windows of a step on 1, 2 and 3 threads give the same bytes; a run resumes on another count.
    const iar = (name: string, t: number, ...extra: string[]) => [
      "train",
      "--objective",
      "inverse-ar",
      "--corpus",
      corpus,
      "--tokenizer",
      tok,
      "--model",
      model,
      "--out",
      join(tmp, name),
      "--rank",
      "2",
      "--window",
      "3",
      "--context",
      "16",
      "--batch",
      "3",
      "--steps",
      "4",
      "--eval-every",
      "2",
      "--threads",
      String(t),
      ...extra,
    ];
    await sameBytesOnAnyThreadCount(
      (name, t, ...extra) => iar(`iar-${name}.safetensors`, t, ...extra),
      (name) => join(tmp, `iar-${name}.safetensors`),
      3,
    );
  });
});
