import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { readCheckpoint, serializeCheckpoint } from "../src/io/checkpoint.js";
import { Tokenizer } from "../src/io/tokenizer.js";
import { readStudent, serializeStudent } from "../src/ptp/files/adapter-file.js";
import { readDraft } from "../src/ptp/files/draft-file.js";
import { slotInputOf } from "../src/ptp/files/ptp-file-parts.js";
import { randomDraft, randomStudent } from "../src/ptp/init.js";
import { DEFAULT_SLOT_INPUT } from "../src/ptp/student-weights.js";
import { teacherChecksum } from "../src/ptp/files/teacher-checksum.js";
import { datasetRecords, readDatasetMeta } from "../src/data/dataset.js";
import { pregenFixture, ROOT, runCli, SHARED, STORIES_260K, TOK_512 } from "./helpers.js";
import { AdamW } from "../src/train/optim.js";
import { makeParam } from "../src/train/param.js";
import { saveTrainCheckpoint } from "../src/train/train-checkpoint.js";
import { DECODER_DEFAULTS } from "../src/ptp/decode/defaults.js";

const ptp = runCli;

const MODEL = ["--model", STORIES_260K, "--tokenizer", TOK_512];
const PROMPT = ["--prompt", "Once upon a time"];
const tmp = mkdtempSync(join(tmpdir(), "ptp-cli-ptp-"));
const STUDENT_O = join(tmp, "student-o.safetensors");
const STUDENT_C = join(tmp, "student-c.safetensors");
const OTHER_TEACHER = join(tmp, "other-260k.bin");
const OTHER_STUDENT = join(tmp, "other-student.safetensors");

beforeAll(async () => {
  for (const argv of [
    ["random-student", "--model", STORIES_260K, "--rank", "4", "--variant", "O", "--window", "8", "--seed", "2", "--out", STUDENT_O],
    ["random-student", "--model", STORIES_260K, "--rank", "4", "--variant", "C", "--window", "6", "--aux", "digits", "--digits", "12", "--seed", "3", "--out", STUDENT_C],
    ["random-model", "--shape", "260K", "--seed", "9", "--out", OTHER_TEACHER],
    ["random-student", "--model", OTHER_TEACHER, "--rank", "2", "--variant", "O", "--out", OTHER_STUDENT],
  ]) {
    const r = await ptp(...argv);
    expect(r.code, r.stderr).toBe(0);
  }
});

describe("random-student", () => {
  it("CLI-PTP-RANDOM-STUDENT: writes a loadable adapter for the checkpoint and says what it wrote", async () => {
    const out = join(tmp, "zero-b.safetensors");
    const r = await ptp("random-student", "--model", STORIES_260K, "--rank", "3", "--variant", "C", "--alpha", "16", "--aux", "anchors", "--zero-b", "--out", out);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`wrote ${out}`);
    expect(r.stderr).toMatch(/C-PTP student, rank 3/);
    const s = readStudent(out);
    expect(s.config).toMatchObject({ variant: "C", rank: 3, alpha: 16, aux: { kind: "anchors" }, window: 16 });
    expect(s.config.teacherChecksum).toBe(teacherChecksum(readCheckpoint(STORIES_260K)));
    expect(s.weights.layers[0].wq.B.every((v) => v === 0)).toBe(true);
    expect(readStudent(STUDENT_C).config).toMatchObject({ variant: "C", aux: { kind: "digits", digits: 12 }, window: 6 });
  });

  it("CLI-PTP-SLOT-DEFAULT: random-student and random-draft without --slot-input give the slot input randomStudent and randomDraft give without one, DEFAULT_SLOT_INPUT, which their --help names", async () => {
    expect(DEFAULT_SLOT_INPUT).toBe("hybrid");
    const ckpt = readCheckpoint(STORIES_260K);
    const checksum = teacherChecksum(ckpt);
    // STUDENT_O came from random-student without --slot-input: the library's student for the same options, byte for byte.
    const library = randomStudent(ckpt, checksum, { variant: "O", rank: 4, window: 8, seed: 2 });
    expect(slotInputOf(library.config)).toBe(DEFAULT_SLOT_INPUT);
    expect(slotInputOf(readStudent(STUDENT_O).config)).toBe(DEFAULT_SLOT_INPUT);
    expect(Buffer.compare(readFileSync(STUDENT_O), Buffer.from(serializeStudent(library)))).toBe(0);
    const draftOut = join(tmp, "slot-default-draft.safetensors");
    const r = await ptp("random-draft", "--model", STORIES_260K, "--variant", "C", "--window", "4", "--out", draftOut);
    expect(r.code, r.stderr).toBe(0);
    expect(slotInputOf(readDraft(draftOut).config)).toBe(DEFAULT_SLOT_INPUT);
    expect(slotInputOf(randomDraft(ckpt, checksum, { variant: "C", window: 4, seed: 1 }).config)).toBe(DEFAULT_SLOT_INPUT);
    for (const command of ["random-student", "random-draft"]) {
      const help = await ptp(command, "--help");
      const line = help.stdout.split("\n").find((l) => l.trimStart().startsWith("--slot-input"));
      expect(line, command).toContain(`(default "${DEFAULT_SLOT_INPUT}")`);
    }
  });
});

const CASES: [decoder: string, student: "O" | "C"][] = [
  ["ar", "O"],
  ["verify", "O"],
  ["verify", "C"],
  ["single-call", "O"],
  ["multi-draft", "O"],
  ["self", "C"],
];

describe("ptp generate with a student", () => {
  const arText = new Map<string, string>();
  const arOutput = async (temperature: string): Promise<string> => {
    if (!arText.has(temperature)) {
      const r = await ptp("generate", ...MODEL, ...PROMPT, "--steps", "64", "--temperature", temperature, "--seed", "5");
      expect(r.code, r.stderr).toBe(0);
      arText.set(temperature, r.stdout);
    }
    return arText.get(temperature)!;
  };

  describe.each(["0.8", "0"])("at temperature %s", (temperature) => {
    it.each(CASES)("CLI-PTP-DECODERS: --decoder %s with the %s-PTP student prints the AR text and its stats", async (decoder, variant) => {
      const student = variant === "O" ? STUDENT_O : STUDENT_C;
      const argv = ["generate", ...MODEL, ...PROMPT, "--steps", "64", "--temperature", temperature, "--seed", "5", "--student", student, "--decoder", decoder];

      const text = await ptp(...argv);
      expect(text.code, text.stderr).toBe(0);
      expect(text.stderr).toMatch(new RegExp(`decoder: +${decoder}`));
      expect(text.stderr).toMatch(/model calls: +\d+ \(AR: \d+\)/);
      expect(text.stderr).toMatch(/accepted per step: +\d+\.\d+ mean; histogram( \d+:\d+)+/);
      expect(text.stderr).toMatch(/tokens\/s: +[\d.]+ \(AR: [\d.]+; speedup [\d.]+x\)/);
      // A PTP decode slower than AR says why (as the demo does); one at least as fast, or AR itself, does not.
      const speedup = Number(/speedup ([\d.]+)x/.exec(text.stderr)![1]);
      if (speedup !== 1) expect(/why slower: fewer calls save time only where/.test(text.stderr), text.stderr).toBe(decoder !== "ar" && speedup < 1);
      expect(text.stdout.startsWith("Once upon a time")).toBe(true);

      const json = await ptp(...argv, "--json");
      expect(json.code, json.stderr).toBe(0);
      const out = JSON.parse(json.stdout);
      expect(out.stats.decoder).toBe(decoder);
      expect(out.stats.modelCalls).toBeGreaterThan(0);
      expect(out.stats.generatedTokens).toBeGreaterThan(0);
      expect(out.stats.tokensPerSecond).toBeGreaterThan(0);
      expect(out.stats.arTokensPerSecond).toBeGreaterThan(0);
      expect(out.stats.speedup).toBeCloseTo(out.stats.tokensPerSecond / out.stats.arTokensPerSecond, 9);
      expect(out.stats.meanAccepted).toBeGreaterThanOrEqual(1);
      expect(out.stats.acceptedHistogram.reduce((a: number, b: number) => a + b, 0)).toBeGreaterThan(0);
      expect(out.outputs).toHaveLength(1);
      expect(out.tokens).toEqual(out.outputs[0].tokens);
      expect(out.text).toBe(out.outputs[0].text);
      expect(out.text + "\n").toBe(text.stdout);

      if (decoder === "self") {
        // Self decoding follows the C-PTP model's own AR path, not the teacher's.
        expect(out.stats.equalsAR).toBeNull();
        expect(out.stats.note).toMatch(/self decoding follows the student's own AR path/);
        expect(text.stderr).toMatch(/equals AR: +n\/a/);
      } else {
        expect(out.stats.equalsAR).toBe(true);
        expect(text.stderr).toMatch(/equals AR: +yes/);
        // ... and the text is exactly what the plain AR command prints.
        expect(text.stdout).toBe(await arOutput(temperature));
      }
    });
  });

  it("CLI-PTP-DECODERS: with a student the default decoder is single-call; without --seed the seed is printed, even at temperature 0", async () => {
    const r = await ptp("generate", ...MODEL, ...PROMPT, "--steps", "32", "--temperature", "0", "--student", STUDENT_O, "--json");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^seed: \d+/m);
    const out = JSON.parse(r.stdout);
    expect(out.stats.decoder).toBe("single-call");
    expect(out.stats.equalsAR).toBe(true);
  });

  it("CLI-PTP-DECODERS: --window, --budget, --budget-mode, --runner-ups and --drafts reach the decoders", async () => {
    const common = ["generate", ...MODEL, ...PROMPT, "--steps", "48", "--temperature", "0.8", "--seed", "11", "--student", STUDENT_O];
    const a = await ptp(...common, "--decoder", "single-call", "--window", "4", "--budget", "5", "--budget-mode", "fixed");
    expect(a.code, a.stderr).toBe(0);
    expect(a.stderr).toMatch(/single-call \(window 4, budget 5, fixed\)/);
    // Runner-up rows: the default for single-call with a C-PTP student (not for this O-PTP one, nor for verify); --runner-ups sets them.
    const withC = common.map((x) => (x === STUDENT_O ? STUDENT_C : x));
    const c = await ptp(...withC, "--decoder", "single-call", "--json");
    expect(c.code, c.stderr).toBe(0);
    expect(c.stderr).toMatch(/single-call \(window \d+, budget \d+, adaptive, runner-ups, drafts at [\d.]+ T\)/);
    expect(JSON.parse(c.stdout).stats.equalsAR).toBe(true);
    const d = await ptp(...withC, "--decoder", "single-call", "--runner-ups", "off", "--json");
    expect(d.code, d.stderr).toBe(0);
    expect(d.stderr).toMatch(/single-call \(window \d+, budget \d+, adaptive, drafts at [\d.]+ T\)/);
    expect(JSON.parse(d.stdout).text).toBe(JSON.parse(c.stdout).text);
    const v = await ptp(...withC, "--decoder", "verify", "--json");
    expect(v.stderr).toMatch(/verify \(window \d+, drafts at [\d.]+ T\)/);
    const vr = await ptp(...withC, "--decoder", "verify", "--runner-ups", "on", "--json");
    expect(vr.code, vr.stderr).toBe(0);
    expect(vr.stderr).toMatch(/verify \(window \d+, runner-ups, drafts at [\d.]+ T\)/);
    expect(JSON.parse(vr.stdout).text).toBe(JSON.parse(v.stdout).text);
    const v3 = await ptp(...withC, "--decoder", "verify", "--runner-ups", "3", "--json");
    expect(v3.code, v3.stderr).toBe(0);
    expect(v3.stderr).toMatch(/verify \(window \d+, 3 runner-ups per draft, drafts at [\d.]+ T\)/);
    expect(JSON.parse(v3.stdout).text).toBe(JSON.parse(v.stdout).text);
    const b = await ptp(...common, "--decoder", "multi-draft", "--drafts", "2", "--json");
    expect(b.code, b.stderr).toBe(0);
    expect(b.stderr).toMatch(/multi-draft \(window 8, 2 drafts\)/);
    expect(JSON.parse(b.stdout).stats.equalsAR).toBe(true);
  });

  it("CLI-PTP-DECODERS: --draft-temperature-scale reaches a C-PTP student's drafts (named in the stats), and the text stays AR's", async () => {
    const common = ["generate", ...MODEL, ...PROMPT, "--steps", "48", "--temperature", "0.8", "--seed", "11", "--student", STUDENT_C, "--decoder", "verify", "--json"];
    const sharp = await ptp(...common, "--draft-temperature-scale", "0.25");
    expect(sharp.code, sharp.stderr).toBe(0);
    expect(sharp.stderr).toMatch(/verify \(window \d+, drafts at 0\.25 T\)/);
    const plain = await ptp(...common, "--draft-temperature-scale", "1");
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stderr).toMatch(/verify \(window \d+\)\n/);
    const a = JSON.parse(sharp.stdout),
      b = JSON.parse(plain.stdout);
    expect(a.stats.equalsAR && b.stats.equalsAR).toBe(true);
    expect(a.text).toBe(b.text);
    // The default scale is named too; an O-PTP student drafts the argmax, so none is named.
    expect((await ptp(...common)).stderr).toMatch(new RegExp(`drafts at ${DECODER_DEFAULTS.draftTemperatureScale} T`));
    const o = await ptp(...common.map((x) => (x === STUDENT_C ? STUDENT_O : x)));
    expect(o.stderr).not.toMatch(/drafts at/);
  });
});

describe("ptp generate --prompts", () => {
  it("CLI-PTP-BATCH: three prompts decoded together give each the output it gets alone with seed + i", async () => {
    const prompts = ["Once upon a time", "The cat sat", "Lily went to the park"];
    const file = join(tmp, "prompts.txt");
    writeFileSync(file, `${prompts[0]}\n\n${prompts[1]}\r\n   \n${prompts[2]}\n`);
    const common = [...MODEL, "--steps", "64", "--temperature", "0.8", "--student", STUDENT_O];
    const batch = await ptp("generate", ...common, "--prompts", file, "--seed", "20", "--json");
    expect(batch.code, batch.stderr).toBe(0);
    const out = JSON.parse(batch.stdout);
    expect(out.outputs).toHaveLength(3);
    expect(out.tokens).toBeUndefined();
    expect(out.stats.equalsAR).toBe(true);
    const text = await ptp("generate", ...common, "--prompts", file, "--seed", "20");
    expect(text.code, text.stderr).toBe(0);
    expect(text.stderr).toMatch(/prompts: +3/);
    let expected = "";
    for (let i = 0; i < 3; i++) {
      const alone = await ptp("generate", ...common, "--prompt", prompts[i], "--seed", String(20 + i), "--json");
      expect(alone.code, alone.stderr).toBe(0);
      const a = JSON.parse(alone.stdout);
      expect(out.outputs[i].tokens).toEqual(a.tokens);
      expect(out.outputs[i].text).toBe(a.text);
      expect(out.outputs[i].text.startsWith(prompts[i])).toBe(true);
      expected += a.text + "\n";
    }
    expect(text.stdout).toBe(expected);
    // Without a student, --prompts batches plain AR decoding.
    const ar = await ptp("generate", ...MODEL, "--steps", "64", "--temperature", "0.8", "--prompts", file, "--seed", "20");
    expect(ar.code, ar.stderr).toBe(0);
    expect(ar.stdout).toBe(expected);
  });
});

describe("ptp inspect", () => {
  it("CLI-PTP-INSPECT: a v0 and a v1 checkpoint: config, parameters, version and teacher checksum", async () => {
    const checkpoint = readCheckpoint(STORIES_260K);
    const checksum = teacherChecksum(checkpoint);
    const v1 = join(tmp, "stories260K-v1.bin");
    writeFileSync(v1, serializeCheckpoint(checkpoint, 1));
    for (const [file, version] of [
      [STORIES_260K, 0],
      [v1, 1],
    ] as const) {
      const j = await ptp("inspect", file, "--json");
      expect(j.code, j.stderr).toBe(0);
      const info = JSON.parse(j.stdout);
      expect(info).toMatchObject({ file, kind: "checkpoint", version, teacherChecksum: checksum, parameters: 260032 });
      expect(info.config).toMatchObject({ dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 512, sharedClassifier: true });
      const t = await ptp("inspect", file);
      expect(t.code).toBe(0);
      expect(t.stdout).toContain(`llama2.c checkpoint, version ${version}`);
      expect(t.stdout).toContain(checksum);
      expect(t.stdout).toMatch(/parameters +260032/);
    }
  });

  it("CLI-PTP-INSPECT: a student adapter: its config, tensor count and parameter count", async () => {
    const j = await ptp("inspect", "--json", STUDENT_C);
    expect(j.code, j.stderr).toBe(0);
    const info = JSON.parse(j.stdout);
    const student = readStudent(STUDENT_C);
    expect(info.kind).toBe("student");
    expect(info.config).toEqual(JSON.parse(JSON.stringify(student.config)));
    // 5 layers x 7 linear layers x (A, B), aux weight and bias, start.
    expect(info.tensors).toBe(5 * 7 * 2 + 2 + 1);
    const w = student.weights;
    const n = w.layers.flatMap((l) => Object.values(l)).reduce((s, p) => s + p.A.length + p.B.length, 0) + w.aux.weight!.length + w.aux.bias!.length + w.start!.length;
    expect(info.parameters).toBe(n);
    const t = await ptp("inspect", STUDENT_C);
    expect(t.code).toBe(0);
    expect(t.stdout).toMatch(/PTP student adapter/);
    expect(t.stdout).toMatch(/variant +C/);
    expect(t.stdout).toMatch(/aux +digits \(12 digits\)/);
    expect(t.stdout).toMatch(/window +6/);
    expect(t.stdout).toContain(student.config.teacherChecksum);
  });

  it("CLI-PTP-EXTRA: random-student --extra-blocks writes a student whose extra blocks inspect reports; the decoders run it and print AR's text", async () => {
    const out = join(tmp, "student-extra.safetensors");
    const r = await ptp("random-student", "--model", STORIES_260K, "--rank", "4", "--variant", "C", "--window", "4", "--aux", "anchors", "--slot-input", "query", "--extra-blocks", "2", "--seed", "5", "--out", out);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/window 4, 2 extra blocks/);
    const student = readStudent(out);
    expect(student.config.extraBlocks).toBe(2);
    expect(student.weights.extra?.length).toBe(2);
    const t = await ptp("inspect", out);
    expect(t.stdout).toMatch(/slot input +query/);
    expect(t.stdout).toMatch(/extra blocks +2/);
    const ar = await ptp("generate", ...MODEL, ...PROMPT, "--steps", "40", "--temperature", "0.8", "--seed", "4");
    for (const decoder of ["verify", "single-call"]) {
      const g = await ptp("generate", ...MODEL, ...PROMPT, "--steps", "40", "--temperature", "0.8", "--seed", "4", "--student", out, "--decoder", decoder);
      expect(g.code, g.stderr).toBe(0);
      expect(g.stdout).toBe(ar.stdout);
    }
    const bad = await ptp("random-student", "--model", STORIES_260K, "--rank", "4", "--variant", "C", "--extra-blocks", "-1", "--out", join(tmp, "x.safetensors"));
    expect(bad.code).toBe(2);
    expect(bad.stderr.split("\n")[0]).toBe("ptp random-student: --extra-blocks must be in [0, 64], got -1");
  });

  it("CLI-PTP-FEEDBACK: random-student --pick-feedback writes a query student whose table starts at 0, which inspect reports and the decoders run to AR's text; without a query slot or extra blocks it is a usage error", async () => {
    const out = join(tmp, "student-feedback.safetensors");
    const r = await ptp("random-student", "--model", STORIES_260K, "--rank", "4", "--variant", "C", "--window", "4", "--aux", "anchors", "--slot-input", "query", "--extra-blocks", "1", "--pick-feedback", "chain", "--seed", "5", "--out", out);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/1 extra blocks, pick feedback chain/);
    const student = readStudent(out);
    expect(student.config.pickFeedback).toBe("chain");
    expect(student.weights.feedback?.every((x) => x === 0)).toBe(true);
    const t = await ptp("inspect", out);
    expect(t.stdout).toMatch(/pick feedback +chain: every slot reads the draft of the slot before it/);
    const ar = await ptp("generate", ...MODEL, ...PROMPT, "--steps", "40", "--temperature", "0.8", "--seed", "4");
    const g = await ptp("generate", ...MODEL, ...PROMPT, "--steps", "40", "--temperature", "0.8", "--seed", "4", "--student", out, "--decoder", "verify");
    expect(g.code, g.stderr).toBe(0);
    expect(g.stdout).toBe(ar.stdout);
    const noQuery = await ptp("random-student", "--model", STORIES_260K, "--rank", "4", "--variant", "C", "--window", "4", "--slot-input", "hybrid", "--extra-blocks", "1", "--pick-feedback", "first", "--out", join(tmp, "x.safetensors"));
    expect(noQuery.code).toBe(2);
    expect(noQuery.stderr.split("\n")[0]).toBe("ptp random-student: --pick-feedback needs --slot-input query (only a query student's first pick is known inside the call)");
    const noExtra = await ptp("random-student", "--model", STORIES_260K, "--rank", "4", "--variant", "C", "--window", "4", "--slot-input", "query", "--pick-feedback", "chain", "--out", join(tmp, "x.safetensors"));
    expect(noExtra.code).toBe(2);
    expect(noExtra.stderr.split("\n")[0]).toBe("ptp random-student: --pick-feedback needs --extra-blocks E >= 1 (the pick is read after the teacher's layers, by the extra blocks)");
    expect(existsSync(join(tmp, "x.safetensors"))).toBe(false);
  });

  it("CLI-PTP-INSPECT: a distillation dataset: its settings, complete records and sampled tokens; an unfinished one says so", async () => {
    const { DATA, pregenArgs } = pregenFixture("ptp-inspect-data-");
    const made = await ptp(...pregenArgs(DATA));
    expect(made.code, made.stderr).toBe(0);
    const records = [...datasetRecords(DATA)];
    const j = await ptp("inspect", DATA, "--json");
    expect(j.code, j.stderr).toBe(0);
    const info = JSON.parse(j.stdout);
    expect(info).toMatchObject({ file: DATA, kind: "dataset", records: 6, total: 6, tornBytes: 0 });
    expect(info.meta).toEqual(JSON.parse(JSON.stringify(readDatasetMeta(DATA))));
    expect(info.sampledTokens).toBe(records.reduce((n, r) => n + r.tokens.length - r.promptLength, 0));
    const t = await ptp("inspect", DATA);
    expect(t.code).toBe(0);
    expect(t.stdout).toMatch(/PTP distillation dataset/);
    expect(t.stdout).toMatch(/records +6 of 6\n/);
    expect(t.stdout).toMatch(/3 from prompts.txt, 2 sample\(s\) each/);
    expect(t.stdout).toMatch(new RegExp(`sampled on +${readDatasetMeta(DATA).backend!.replace(/[()]/g, "\\$&")}\n`));
    // Cut inside the last record: five complete records and a torn one.
    const bytes = readFileSync(DATA);
    const torn = join(tmp, "torn.ptpd");
    writeFileSync(torn, bytes.subarray(0, bytes.length - 5));
    const u = await ptp("inspect", torn);
    expect(u.code, u.stderr).toBe(0);
    expect(u.stdout).toMatch(/records +5 of 6 \(unfinished/);
    expect(u.stdout).toMatch(/torn last record/);
  });

  it("CLI-PTP-INSPECT-OTHER: a training checkpoint (its step, trained params) and a llama2.c tokenizer.bin (its token count) are told apart too", async () => {
    const ckpt = join(tmp, "run.train.safetensors");
    const opt = new AdamW([makeParam("w", [3, 4], new Float32Array(12).fill(0.5), true), makeParam("b", [4], new Float32Array(4), true)], { lr: 1e-3 });
    opt.step();
    saveTrainCheckpoint(ckpt, opt, { config: { steps: 10 } });
    const j = await ptp("inspect", ckpt, "--json");
    expect(j.code, j.stderr).toBe(0);
    expect(JSON.parse(j.stdout)).toEqual({ file: ckpt, kind: "train-checkpoint", step: 1, parameters: 16, tensors: 6 });
    const t = await ptp("inspect", ckpt);
    expect(t.stdout).toMatch(/ptp training checkpoint/);
    expect(t.stdout).toMatch(/step +1\n/);
    for (const [file, tokens] of [
      [TOK_512, 512],
      [join(SHARED, "models/tokenizer.bin"), 32000],
    ] as const) {
      const r = await ptp("inspect", file, "--json");
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual({ file, kind: "tokenizer", vocabSize: tokens });
    }
    const r = await ptp("inspect", TOK_512);
    expect(r.stdout).toBe(`${TOK_512}: llama2.c tokenizer (tokenizer.bin)\n  tokens            512 (the vocab size of the models it goes with)\n`);
  });

  it("CLI-PTP-INSPECT: garbled, truncated and missing files exit 1 naming the file", async () => {
    const garbled = join(tmp, "garbled.bin");
    writeFileSync(garbled, "this is not a model at all, just some text that goes on for a while\n");
    const short = join(tmp, "short.bin");
    writeFileSync(short, "abc");
    const header = Buffer.alloc(8);
    header.writeBigUInt64LE(40n);
    const truncated = join(tmp, "truncated.safetensors");
    writeFileSync(truncated, Buffer.concat([header, Buffer.from('{"a": {"dtype": "F32"')]));
    for (const file of [garbled, short, truncated, join(tmp, "missing.bin")]) {
      const r = await ptp("inspect", file);
      expect(r.code, file).toBe(1);
      expect(r.stderr).toContain(file);
      expect(r.stdout).toBe("");
    }
    const empty = await ptp("inspect", "");
    expect(empty.code).toBe(2);
    expect(empty.stderr.split("\n")[0]).toBe("ptp inspect: the file to inspect must not be an empty path");
  });

  it("CLI-PTP-INSPECT-NONFINITE: a llama2.c checkpoint holding NaN or Inf is refused naming the tensor and index, exit 1, as generate refuses it (it was reported as a model)", async () => {
    const ckpt = readCheckpoint(STORIES_260K);
    for (const [bad, shown] of [
      [Number.NaN, "NaN"],
      [Number.POSITIVE_INFINITY, "Infinity"],
    ] as const) {
      const w2 = Float32Array.from(ckpt.weights.layers[3].w2);
      w2[5] = bad;
      const file = join(tmp, `nonfinite-${shown}.bin`);
      writeFileSync(file, serializeCheckpoint({ ...ckpt, weights: { ...ckpt.weights, layers: ckpt.weights.layers.map((l, i) => (i === 3 ? { ...l, w2 } : l)) } }));
      const r = await ptp("inspect", file);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toContain(file);
      expect(r.stderr).toMatch(new RegExp(`tensor layer 3 w2 holds ${shown} at index 5`));
      expect(r.stdout).toBe("");
    }
  });

  it("CLI-PTP-INSPECT-TEXT: a text file is said to be one, in one line naming it and the kinds inspect reads (not a v0 header of its letters); a missing file lists the same kinds as --help", async () => {
    const help = await ptp("inspect", "--help");
    const kinds = /^Tell ([\s\S]*?) apart/m.exec(help.stdout)![1].replace(/\s+/g, " ");
    for (const kind of ["a llama2.c checkpoint", "a Hugging Face Llama folder", "a PTP student adapter", "a PEFT LoRA folder", "a PTP draft model", "a ptp training checkpoint", "a PTP distillation dataset", "a llama2.c tokenizer.bin"]) expect(kinds).toContain(kind);
    const missing = join(tmp, "missing.bin");
    const m = await ptp("inspect", missing);
    expect(m.code).toBe(1);
    expect(m.stderr).toBe(`ptp inspect: ${missing}: file does not exist (expected ${kinds})\n`);
    // A README, a text cut mid-character at the probe's end (4095 ASCII bytes, then "é"), CRLF and tab text, three bytes of text.
    const cut = join(tmp, "cut.txt");
    writeFileSync(cut, "x".repeat(4095) + "é and more text\n");
    const crlf = join(tmp, "crlf.txt");
    writeFileSync(crlf, "prompt one\tΩ 🙂\r\nprompt two\r\n");
    const short = join(tmp, "abc.bin");
    writeFileSync(short, "abc");
    for (const file of [join(ROOT, "README.md"), join(ROOT, "package.json"), cut, crlf, short]) {
      const r = await ptp("inspect", file);
      expect(r.code, file).toBe(1);
      expect(r.stdout).toBe("");
      expect(r.stderr).toBe(`ptp inspect: ${file}: a text file; inspect reads ${kinds}\n`);
    }
    // Bytes that are not text (a NUL, a control byte, invalid UTF-8) still read as what they are not.
    for (const [name, bytes] of [
      ["nul.bin", Buffer.from("some text\0 then more text that goes on")],
      ["bell.bin", Buffer.from("some text\x07 then more text that goes on")],
      ["latin1.bin", Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0x61, 0x75, 0x20, 0x6c, 0x61, 0x69, 0x74, 0x20, 0x63, 0x68, 0x61, 0x75, 0x64, 0x20, 0x21, 0x21, 0x21, 0x21, 0x21, 0x21, 0x21, 0x21, 0x21, 0x21, 0x21])],
    ] as const) {
      const file = join(tmp, name);
      writeFileSync(file, bytes);
      const r = await ptp("inspect", file);
      expect(r.code, name).toBe(1);
      expect(r.stderr, name).toMatch(/read as a v0 checkpoint/);
      expect(r.stderr, name).not.toMatch(/text file/);
    }
  });

  it("CLI-PTP-INSPECT-PEFT: a PEFT folder is labelled a PEFT LoRA folder (not a safetensors adapter); one without ptp settings names --model: ptp inspect DIR --model PATH", async () => {
    const dir = join(tmp, "peft-c");
    expect((await ptp("export-peft", STUDENT_C, "--out", dir)).code).toBe(0);
    const t = await ptp("inspect", dir);
    expect(t.code, t.stderr).toBe(0);
    expect(t.stdout.split("\n")[0]).toBe(`${dir}: PTP student, PEFT LoRA folder, C-PTP`);
    expect(t.stdout).toMatch(/variant +C/);
    expect(t.stdout).not.toMatch(/safetensors/);
    // The reference code's folders have no "ptp" settings: the same folder without them.
    const ref = join(tmp, "peft-reference");
    mkdirSync(ref);
    const { ptp: _settings, ...config } = JSON.parse(readFileSync(join(dir, "adapter_config.json"), "utf8"));
    writeFileSync(join(ref, "adapter_config.json"), JSON.stringify(config));
    writeFileSync(join(ref, "adapter_model.safetensors"), readFileSync(join(dir, "adapter_model.safetensors")));
    const r = await ptp("inspect", ref);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(`ptp inspect: ${join(ref, "adapter_config.json")}: has no "ptp" settings (a reference-code folder): give its teacher model, which gives the teacher's shape: ptp inspect ${ref} --model PATH\n`);
  });
});

describe("ptp generate and the PTP commands: bad arguments", () => {
  const missing = join(tmp, "no-such-model.bin"); // never read: the flags are checked first
  const M = ["--model", missing, "--tokenizer", TOK_512];
  it.each([
    ["a PTP decoder without --student", ["generate", ...M, "--decoder", "verify"]],
    ["an unknown decoder", ["generate", ...M, "--student", STUDENT_O, "--decoder", "medusa"]],
    ["--prompts with --prompt", ["generate", ...M, "--prompts", "p.txt", "--prompt", "hi"]],
    ["--prompts with --aux-file", ["generate", ...M, "--prompts", "p.txt", "--aux-file", "u.txt"]],
    ["--window 0", ["generate", ...M, "--student", STUDENT_O, "--window", "0"]],
    ["a fractional --window", ["generate", ...M, "--student", STUDENT_O, "--window", "2.5"]],
    ["--budget -1", ["generate", ...M, "--student", STUDENT_O, "--budget", "-1"]],
    ["--drafts 0", ["generate", ...M, "--student", STUDENT_O, "--decoder", "multi-draft", "--drafts", "0"]],
    ["--budget with another decoder", ["generate", ...M, "--student", STUDENT_O, "--decoder", "verify", "--budget", "8"]],
    ["--budget-mode with another decoder", ["generate", ...M, "--student", STUDENT_O, "--decoder", "self", "--budget-mode", "fixed"]],
    ["--runner-ups with another decoder", ["generate", ...M, "--student", STUDENT_O, "--decoder", "multi-draft", "--runner-ups", "on"]],
    ["an unknown --runner-ups", ["generate", ...M, "--student", STUDENT_O, "--runner-ups", "yes"]],
    ["too many --runner-ups", ["generate", ...M, "--student", STUDENT_O, "--runner-ups", "9"]],
    ["an unknown --budget-mode", ["generate", ...M, "--student", STUDENT_O, "--budget-mode", "greedy"]],
    ["--drafts with another decoder", ["generate", ...M, "--student", STUDENT_O, "--drafts", "3"]],
    ["--window without a PTP decoder", ["generate", ...M, "--window", "4"]],
    ["--draft-temperature-scale 0", ["generate", ...M, "--student", STUDENT_O, "--draft-temperature-scale", "0"]],
    ["--draft-temperature-scale above 1", ["generate", ...M, "--student", STUDENT_O, "--draft-temperature-scale", "1.5"]],
    ["--draft-temperature-scale without a PTP decoder", ["generate", ...M, "--draft-temperature-scale", "0.5"]],
    ["random-student without --rank", ["random-student", "--model", missing, "--variant", "O", "--out", "x"]],
    ["random-student --rank 0", ["random-student", "--model", missing, "--rank", "0", "--variant", "O", "--out", "x"]],
    ["random-student --variant X", ["random-student", "--model", missing, "--rank", "2", "--variant", "X", "--out", "x"]],
    ["random-student --window 0", ["random-student", "--model", missing, "--rank", "2", "--variant", "O", "--window", "0", "--out", "x"]],
    ["random-student --aux digits without --digits", ["random-student", "--model", missing, "--rank", "2", "--variant", "O", "--aux", "digits", "--out", "x"]],
    ["random-student --digits without --aux digits", ["random-student", "--model", missing, "--rank", "2", "--variant", "O", "--digits", "8", "--out", "x"]],
    ["random-student --digits 0", ["random-student", "--model", missing, "--rank", "2", "--variant", "O", "--aux", "digits", "--digits", "0", "--out", "x"]],
    ["random-student --alpha 0", ["random-student", "--model", missing, "--rank", "2", "--variant", "O", "--alpha", "0", "--out", "x"]],
    ["inspect without a file", ["inspect"]],
    ["inspect with two files", ["inspect", missing, missing]],
    ["inspect with an unknown flag", ["inspect", missing, "--verbose"]],
  ])("CLI-PTP-USAGE: %s exits 2 with usage", async (_, argv) => {
    const r = await ptp(...argv);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/usage: ptp/);
  });

  it("CLI-PTP-USAGE: a student made for another teacher of the same shape exits 1 with the checksum message", async () => {
    const r = await ptp("generate", ...MODEL, ...PROMPT, "--steps", "16", "--seed", "1", "--student", OTHER_STUDENT);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(OTHER_STUDENT);
    expect(r.stderr).toMatch(/belongs to teacher [0-9a-f]{12} but the model's checksum is [0-9a-f]{12}/);
    expect(r.stdout).toBe("");
  });

  it("CLI-PTP-DECODER-STUDENT: a decoder the student does not support (self with an O-PTP student; any but verify with a draft head) exits 2 with a one-line usage error naming --decoder and what the student supports", async () => {
    const r = await ptp("generate", ...MODEL, "--steps", "16", "--seed", "1", "--student", STUDENT_O, "--decoder", "self");
    expect(r.code, r.stderr).toBe(2);
    expect(r.stdout).toBe("");
    const [line, usage] = r.stderr.split("\n");
    expect(line).toBe(`ptp generate: --decoder self needs a C-PTP student (its own u withheld); ${STUDENT_O} is an O-PTP student, which decodes with --decoder verify, single-call or multi-draft (or ar)`);
    expect(usage).toMatch(/^usage: ptp generate/);
    // The same for a draft-head student with a decoder other than verify (or ar).
    const head = join(tmp, "head.safetensors");
    expect((await ptp("random-student", "--model", STORIES_260K, "--rank", "2", "--variant", "C", "--slot-input", "query", "--extra-blocks", "1", "--pick-feedback", "chain", "--draft-head", "--out", head)).code).toBe(0);
    for (const decoder of ["single-call", "self", "multi-draft"]) {
      const h = await ptp("generate", ...MODEL, "--steps", "16", "--seed", "1", "--student", head, "--decoder", decoder);
      expect(h.code, h.stderr).toBe(2);
      expect(h.stderr.split("\n")[0]).toBe(`ptp generate: --decoder ${decoder} does not go with ${head}, a draft-head student, which drafts beside the teacher (--decoder verify)`);
    }
    // Every decoder a C-PTP student supports runs.
    for (const decoder of ["self", "verify", "single-call", "multi-draft"]) expect((await ptp("generate", ...MODEL, ...PROMPT, "--steps", "8", "--seed", "1", "--student", STUDENT_C, "--decoder", decoder)).code, decoder).toBe(0);
  });

  it("CLI-GEN-FULL-PROMPT: a prompt of exactly --steps tokens still gets one token, without a warning; one of --steps + 1 tokens gets none, with the warning (AR and PTP)", async () => {
    const n = Tokenizer.load(TOK_512, 512).encode("Once upon a time", true, false).length;
    const warning = (steps: number) => `warning: the prompt has more than --steps (${steps}) tokens: nothing is generated for it (give more --steps)`;
    for (const student of [[], ["--student", STUDENT_C, "--decoder", "verify"]]) {
      const at = await ptp("generate", ...MODEL, ...PROMPT, "--steps", String(n), "--seed", "1", "--json", "--no-stop", ...student);
      expect(at.code, at.stderr).toBe(0);
      expect(at.stderr).not.toContain("warning");
      expect(JSON.parse(at.stdout).tokens).toHaveLength(n + 1);
      const over = await ptp("generate", ...MODEL, ...PROMPT, "--steps", String(n - 1), "--seed", "1", "--json", "--no-stop", ...student);
      expect(over.code, over.stderr).toBe(0);
      expect(over.stderr).toContain(warning(n - 1));
      expect(JSON.parse(over.stdout).tokens).toHaveLength(n);
      expect(JSON.parse(over.stdout).stats.generatedTokens).toBe(0);
    }
    // Several prompts: only those over --steps are counted.
    const file = join(tmp, "full-prompts.txt");
    writeFileSync(file, "Once\nOnce upon a time\nOnce upon a time there\n");
    const many = await ptp("generate", ...MODEL, "--prompts", file, "--steps", String(n), "--seed", "1", "--student", STUDENT_C);
    expect(many.code, many.stderr).toBe(0);
    expect(many.stderr).toContain(`warning: 1 of 3 prompts (the first: prompt 3) have more than --steps (${n}) tokens: nothing is generated for it (give more --steps)`);
  });

  it("CLI-PTP-USAGE: --help lists the PTP flags and the new commands", async () => {
    const g = await ptp("generate", "--help");
    for (const flag of ["--student FILE", "--decoder NAME", "--window N", "--budget B", "--budget-mode MODE", "--drafts M", "--prompts FILE"]) expect(g.stdout).toContain(flag);
    const top = await ptp("help");
    expect(top.stdout).toMatch(/random-student/);
    expect(top.stdout).toMatch(/inspect/);
    // Asked for, the usage goes to stdout (`ptp --help | less`); a top-level flag takes no arguments.
    for (const h of ["--help", "-h"]) {
      const r = await ptp(h);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(top.stdout);
      expect(r.stderr).toBe("");
    }
    const extra = await ptp("--version", "extra");
    expect(extra.code).toBe(2);
    expect(extra.stderr.split("\n")[0]).toBe('ptp: --version takes no arguments, got "extra"');
  });
});
