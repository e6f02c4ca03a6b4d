import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { createBackend } from "../src/backends/registry.js";
import { DECODER_DEFAULTS } from "../src/ptp/decode/defaults.js";
import { DEFAULT_DEMO_DIR, DEMO_FILES, DEMO_PROMPTS, markedText, SHIPPED_STUDENTS, whySlower } from "../src/cli/demo.js";
import { textOf } from "../src/cli/ptp-common.js";
import { readCheckpoint, writeCheckpoint } from "../src/io/checkpoint.js";
import { randomCheckpoint } from "../src/model/init.js";
import { Tokenizer } from "../src/io/tokenizer.js";
import type { ModelConfig } from "../src/model/config.js";
import type { Checkpoint } from "../src/model/weights.js";
import { Transformer } from "../src/model/transformer.js";
import { writeStudent } from "../src/ptp/files/adapter-file.js";
import { randomStudent } from "../src/ptp/init.js";
import { decode } from "../src/ptp/decode/run.js";
import { PtpModel } from "../src/ptp/ptp-model.js";
import { teacherChecksum } from "../src/ptp/files/teacher-checksum.js";
import { XorShiftAux } from "../src/sampling/aux.js";
import { buildCharTokenizer, tokenizerVocabSize } from "../src/io/char-tokenizer.js";
import { generateStories } from "../src/data/synthetic.js";
import { ROOT, runCli, STORIES_260K, TOK_512 } from "./helpers.js";

const tmp = mkdtempSync(join(tmpdir(), "ptp-demo-"));
const DIR = join(tmp, "demo");
const EMPTY = join(tmp, "empty");
const OTHER_STUDENT = join(tmp, "other-student.safetensors");
const OTHER_TEACHER = join(tmp, "other-teacher.bin");
const STEPS = 48;

// The char tokenizer of the synthetic corpus (without newlines, so each printed text stays on its line).
const TOKENIZER_BYTES = buildCharTokenizer(generateStories(100, 1).join(" "));
const VOCAB = tokenizerVocabSize(TOKENIZER_BYTES);
const tokenizer = Tokenizer.fromBytes(TOKENIZER_BYTES, VOCAB);

/**
 * A random teacher whose classifier favours the character tokens strongly
 * (the byte and special tokens' rows are zero), so the sampled text is made
 * of corpus characters: no brackets of its own, no unprintable bytes.
 */
function charTeacher(seed: number): Checkpoint {
  const config: ModelConfig = { dim: 16, hiddenDim: 32, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: VOCAB, seqLen: 64, sharedClassifier: false, normEps: 1e-5, ropeTheta: 10000 };
  const ckpt = randomCheckpoint(config, seed);
  const { wcls } = ckpt.weights;
  for (let t = 0; t < VOCAB; t++) for (let d = 0; d < config.dim; d++) wcls[t * config.dim + d] = t < 259 ? 0 : wcls[t * config.dim + d] * 6;
  return ckpt;
}

const TEACHER = charTeacher(11);

beforeAll(() => {
  mkdirSync(DIR, { recursive: true });
  mkdirSync(EMPTY, { recursive: true });
  writeFileSync(join(DIR, DEMO_FILES.tokenizer), TOKENIZER_BYTES);
  writeCheckpoint(join(DIR, DEMO_FILES.model), TEACHER);
  writeStudent(join(DIR, DEMO_FILES.student), randomStudent(TEACHER, teacherChecksum(TEACHER), { variant: "O", rank: 2, window: 4, seed: 5 }));
  const other = charTeacher(12);
  writeCheckpoint(OTHER_TEACHER, other);
  writeStudent(OTHER_STUDENT, randomStudent(other, teacherChecksum(other), { variant: "O", rank: 2, window: 4, seed: 5 }));
});

/** What AR sampling prints after the prompt's BOS for prompt i of a demo run with seed S (u's from S + i). */
async function arText(prompt: string, seed: number): Promise<string> {
  const model = new Transformer(await createBackend("js"), TEACHER);
  const ptp = new PtpModel(model);
  try {
    const r = decode(ptp, [tokenizer.encode(prompt, true, false)], { decoder: "ar", steps: STEPS, sampling: { temperature: 0.7 }, aux: [new XorShiftAux(BigInt(seed))] });
    return Buffer.from(textOf(tokenizer, r.outputs[0])).toString("utf8");
  } finally {
    ptp.dispose();
    model.dispose();
  }
}

/** The marked text of each prompt: the lines "[i] TEXT". */
function markedLines(stdout: string): string[] {
  return stdout
    .split("\n")
    .filter((l) => /^\[\d+\] /.test(l))
    .map((l) => l.replace(/^\[\d+\] /, ""));
}

describe("ptp demo", () => {
  it("DEMO-RUN: on the demo files it prints each text with its accepted chunks, the stats, and equals AR: yes", async () => {
    const r = await runCli("demo", "--demo-dir", DIR, "--steps", String(STEPS), "--seed", "3");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^equals AR: yes$/m);
    expect(r.stdout).toMatch(/^accepted per call: \d+\.\d\d \(mean\)$/m);
    expect(r.stdout).toMatch(/^model calls: \d+ \(AR: \d+; [\d.]+x fewer\)$/m);
    expect(r.stdout).toMatch(/^tokens\/s: [\d.]+ \(AR: [\d.]+; speedup [\d.]+x\)$/m);
    expect(r.stdout.match(/; equals AR: yes$/gm)).toHaveLength(DEMO_PROMPTS.length);
    expect(r.stdout).not.toContain("\x1b["); // not a terminal: brackets

    const lines = markedLines(r.stdout);
    expect(lines).toHaveLength(DEMO_PROMPTS.length);
    for (const [i, line] of lines.entries()) {
      const prompt = DEMO_PROMPTS[i];
      expect(line.startsWith(prompt)).toBe(true);
      const ar = await arText(prompt, 3 + i);
      expect(ar).not.toMatch(/[[\]]/);
      // After the prompt: nothing but [chunks], which concatenated give the AR continuation.
      const rest = line.slice(prompt.length);
      expect(rest).toMatch(/^(\[[^[\]]+\])+$/);
      expect(prompt + rest.replace(/[[\]]/g, "")).toBe(ar);
    }
  });

  it("DEMO-SHIPPED: plain `ptp demo` runs on the models shipped in demo/, accepts more than one token per call, and equals AR", async () => {
    const r = await runCli("demo", "--steps", "80");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^equals AR: yes$/m);
    // The shipped student is trained: it must beat one token per call (an untrained one gets ~1.1).
    const accepted = Number(/^accepted per call: (\d+\.\d\d) \(mean\)$/m.exec(r.stdout)![1]);
    expect(accepted).toBeGreaterThan(1.5);
  });

  it("DEMO-STORIES: `ptp demo --model stories260K.bin --tokenizer tok512.bin` uses the shipped stories260K student, accepts more than one token per call, and equals AR", async () => {
    const r = await runCli("demo", "--model", STORIES_260K, "--tokenizer", TOK_512, "--steps", "64");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).toContain(join(ROOT, "demo", SHIPPED_STUDENTS[0]));
    expect(r.stdout).toMatch(/^equals AR: yes$/m);
    const accepted = Number(/^accepted per call: (\d+\.\d\d) \(mean\)$/m.exec(r.stdout)![1]);
    expect(accepted).toBeGreaterThan(1.2);
  });

  it("DEMO-SCALE: --scale then prints AR and PTP tok/s at a widened shape with the same acceptance, equal to AR", async () => {
    const r = await runCli("demo", "--steps", "24", "--scale", "--scale-shapes", "15M");
    expect(r.code, r.stderr).toBe(0);
    const row = (shape: string) => {
      const m = new RegExp(`^\\| ${shape} \\| single-call \\| ([0-9.]+) \\| ([0-9.]+) \\|.*\\| ([0-9.]+)x \\| [0-9]+ % \\| (yes|NO) \\|$`, "m").exec(r.stdout);
      expect(m, `a ${shape} row in:\n${r.stdout}`).not.toBeNull();
      return m!;
    };
    const own = row("own"),
      wide = row("15M");
    expect(wide[1]).toBe(own[1]); // tokens per call: the widened model accepts exactly as the original
    expect(wide[2]).toBe(own[2]); // rows per call
    expect(own[4]).toBe("yes");
    expect(wide[4]).toBe("yes");
    // Progress on stderr while the larger shapes run (minutes at 110M), not on stdout.
    expect(r.stderr).toMatch(/^ptp demo: --scale 15M: widening the teacher, then a warm-up and 1 timed run of ar, single-call on 4 prompts$/m);
    expect(r.stderr).toMatch(/^ptp demo: --scale 15M single-call: [0-9.]+ tok\/s/m);
    expect(r.stdout).not.toContain("ptp demo: --scale");
  });

  it("DEMO-SCALE-STEPS0: --steps 0 is the model's seqLen for the demo and for --scale alike", async () => {
    const prompts = join(tmp, "one-prompt.txt");
    writeFileSync(prompts, "Tom wanted to\n");
    const r = await runCli("demo", "--prompts", prompts, "--steps", "0", "--scale", "--scale-shapes", "15M", "--no-color");
    expect(r.code, r.stderr).toBe(0);
    const seqLen = readCheckpoint(join(DEFAULT_DEMO_DIR, DEMO_FILES.model)).config.seqLen;
    expect(r.stdout).toContain(`, ${seqLen} positions; `);
    expect(r.stdout).toMatch(/^\| 15M \| single-call \|.*\| yes \|$/m);
  });

  it("DEMO-DECODER: --decoder verify --window 2 decodes with verify (its own, and at --scale a widened shape: the same acceptance, equal to AR); --budget goes with single-call only", async () => {
    const r = await runCli("demo", "--decoder", "verify", "--window", "2", "--steps", "24", "--scale", "--scale-shapes", "15M");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("decoding: verify (window 2) vs AR");
    expect(r.stdout).toMatch(/^accepted per step: \d+\.\d\d \(mean; a step is a student call and a teacher call\)$/m);
    const row = (shape: string) => new RegExp(`^\\| ${shape} \\| verify \\| ([0-9.]+) \\| ([0-9.]+) \\|.*\\| (yes|NO) \\|$`, "m").exec(r.stdout);
    const own = row("own"),
      wide = row("15M");
    expect(own, r.stdout).not.toBeNull();
    expect(wide, r.stdout).not.toBeNull();
    expect(wide![1]).toBe(own![1]);
    expect([own![3], wide![3]]).toEqual(["yes", "yes"]);
    const bad = await runCli("demo", "--decoder", "verify", "--budget", "4");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--budget applies to --decoder single-call only/);
  });

  it("DEMO-HEAD: the shipped draft head decodes with verify by default (a teacher call holds the pending token and window - 1 drafts), equal to AR, also at a widened shape with the same acceptance; --decoder single-call is a usage error", async () => {
    const head = join(ROOT, "demo", "stories260K-head.safetensors");
    const args = ["demo", "--model", STORIES_260K, "--tokenizer", TOK_512, "--student", head, "--window", "3", "--steps", "40", "--no-color"];
    const r = await runCli(...args, "--scale", "--scale-shapes", "15M");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("(a draft head of 5 blocks, C-PTP, window 8)");
    expect(r.stdout).toContain(`decoding: verify (window 3: the pending token and up to 2 drafts per teacher call, stopping where the head's chance falls below ${DECODER_DEFAULTS.draftStop}) vs AR`);
    expect(r.stdout).toMatch(/^accepted per step: \d+\.\d\d \(mean; a step is one teacher call, the head drafting beside it\)$/m);
    expect(r.stdout).toMatch(/^equals AR: yes$/m);
    const row = (shape: string) => new RegExp(`^\\| ${shape} \\| verify \\| ([0-9.]+) \\| ([0-9.]+) \\|.*\\| (yes|NO) \\|$`, "m").exec(r.stdout);
    const own = row("own"),
      wide = row("15M");
    expect(own, r.stdout).not.toBeNull();
    expect(wide![1]).toBe(own![1]);
    expect([own![3], wide![3]]).toEqual(["yes", "yes"]);
    const bad = await runCli(...args, "--decoder", "single-call");
    expect(bad.code).toBe(2);
    expect(bad.stderr.split("\n")[0]).toBe(`ptp demo: --decoder single-call does not go with ${head}, a draft-head student, which drafts beside the teacher (--decoder verify)`);
  });

  it("DEMO-FLAGS: explicit --model/--tokenizer/--student, a --prompts file, --window/--budget and the js backend", async () => {
    const prompts = join(tmp, "prompts.txt");
    writeFileSync(prompts, "Tom wanted to\n\nOnce upon a time, there\n");
    const r = await runCli("demo", "--model", join(DIR, DEMO_FILES.model), "--tokenizer", join(DIR, DEMO_FILES.tokenizer), "--student", join(DIR, DEMO_FILES.student), "--prompts", prompts, "--steps", "40", "--temperature", "0.5", "--window", "3", "--budget", "5", "--backend", "js", "--no-color");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("single-call (window 3, budget 5)");
    expect(r.stdout).toMatch(/^overall: 2 prompts, \d+ tokens$/m);
    expect(r.stdout).toMatch(/^equals AR: yes$/m);
    expect(markedLines(r.stdout).map((l) => l.replace(/\[.*$/, ""))).toEqual(["Tom wanted to", "Once upon a time, there"]);
  });

  it("DEMO-WHY: a last line says why when PTP took longer than AR, and names --scale; none when it did not, or with --scale", () => {
    expect(whySlower(2, 1, false)).toMatch(/^\nwhy slower: .*\n.*\n.*--scale measures the same decoding/s);
    expect(whySlower(1, 2, false)).toBe("");
    expect(whySlower(1, 1, false)).toBe("");
    expect(whySlower(2, 1, true)).toBe("");
    expect(whySlower(0, 0, false)).toBe("");
  });

  it("DEMO-NO-ROOM: prompts longer than --steps generate nothing, and the ratios read n/a", async () => {
    const r = await runCli("demo", "--demo-dir", DIR, "--steps", "3");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^overall: 4 prompts, 0 tokens$/m);
    expect(r.stdout).toMatch(/^accepted per call: n\/a \(mean\)$/m);
    expect(r.stdout).toMatch(/^equals AR: yes$/m);
  });

  it("DEMO-MISSING: without the demo files it says which are missing and how to make them", async () => {
    const r = await runCli("demo", "--demo-dir", EMPTY);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(join(EMPTY, DEMO_FILES.model));
    expect(r.stderr).toContain(join(EMPTY, DEMO_FILES.student));
    expect(r.stderr).toContain("scripts/make-demo-models.sh");
    expect(DEFAULT_DEMO_DIR).toBe(join(ROOT, "demo"));
  });

  it("DEMO-MISMATCH: a student made for another teacher is refused", async () => {
    const r = await runCli("demo", "--demo-dir", DIR, "--student", OTHER_STUDENT);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(OTHER_STUDENT);
  });

  it.each([
    [["--steps", "-1"], "--steps must be >= 0"],
    [["--temperature", "-0.5"], "--temperature must be >= 0"],
    [["--seed", "0"], "--seed must be an integer in [1, 2^64 - 1]"],
    [["--window", "0"], "--window must be a positive integer"],
    [["--model", "m.bin"], "give --model and --tokenizer together"],
    [["--backend", "gpu"], "--backend must be one of"],
    [["--bogus"], "unknown flag --bogus"],
  ])("DEMO-USAGE: %j exits 2 with a usage message", async (args, message) => {
    const r = await runCli("demo", "--demo-dir", DIR, ...args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
    expect(r.stderr).toContain("usage: ptp demo");
  });

  it("DEMO-NO-STUDENT: --model without --student uses the shipped student made for it, and says clearly when none is", async () => {
    const r = await runCli("demo", "--demo-dir", DIR, "--model", OTHER_TEACHER, "--tokenizer", join(DIR, DEMO_FILES.tokenizer));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`no shipped student was made for ${OTHER_TEACHER}`);
    expect(r.stderr).toContain("--student FILE");
    // The demo teacher given explicitly finds its shipped student.
    const found = await runCli("demo", "--demo-dir", DIR, "--model", join(DIR, DEMO_FILES.model), "--tokenizer", join(DIR, DEMO_FILES.tokenizer), "--steps", "24");
    expect(found.code, found.stderr).toBe(0);
    expect(found.stdout + found.stderr).toContain(join(DIR, DEMO_FILES.student));
  });

  it("DEMO-HELP: --help prints the usage", async () => {
    const r = await runCli("demo", "--help");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("usage: ptp demo");
    expect(r.stdout).toContain("scripts/make-demo-models.sh");
  });
});

describe("accepted chunks", () => {
  it("DEMO-CHUNKS: each prompt's chunks partition its generated tokens, for every decoder and with BOS stops", async () => {
    // A 6-token vocabulary, so BOS comes up often and stops sequences mid-step.
    const small = randomCheckpoint({ dim: 8, hiddenDim: 16, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 6, seqLen: 64, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 }, 4);
    const model = new Transformer(await createBackend("js"), small);
    const ptp = new PtpModel(model, randomStudent(small, teacherChecksum(small), { variant: "C", rank: 2, window: 3, seed: 8 }));
    try {
      const prompts = [[1, 3], [1, 4, 5], [1]];
      let stopped = 0;
      for (const decoder of ["ar", "verify", "single-call", "self", "multi-draft"] as const) {
        for (const stopAtBos of [true, false]) {
          const aux = prompts.map((_, i) => new XorShiftAux(BigInt(7 + i)));
          const r = decode(ptp, prompts, { decoder, steps: 30, sampling: { temperature: 1 }, aux, stopAtBos });
          r.outputs.forEach((tokens, p) => {
            const sum = r.chunks[p].reduce((a, b) => a + b, 0);
            expect(sum, `${decoder} prompt ${p}`).toBe(tokens.length - prompts[p].length);
            expect(r.chunks[p].every((n) => n >= 1)).toBe(true);
            if (tokens.length < 31) stopped++;
          });
        }
      }
      expect(stopped).toBeGreaterThan(0);
    } finally {
      ptp.dispose();
      model.dispose();
    }
  });

  it("DEMO-MARKS: the colour marks, removed, leave the AR text; brackets likewise", () => {
    const tokens = tokenizer.encode("Tom was happy.", true, false);
    const chunks = [3, 1, 5]; // the last 9 tokens, so "Tom w" is the prompt part
    const plain = Buffer.from(textOf(tokenizer, tokens)).toString("utf8");
    const colour = Buffer.from(markedText(tokenizer, tokens, chunks, true)).toString("utf8");
    const brackets = Buffer.from(markedText(tokenizer, tokens, chunks, false)).toString("utf8");
    expect(colour.replace(/\x1b\[[\d;]*m/g, "")).toBe(plain);
    expect(colour).toContain("\x1b[30;46m");
    expect(colour).toContain("\x1b[30;43m");
    expect(brackets).toBe("Tom w[as ][h][appy.]");
  });

  it("DEMO-MARKS-UTF8: a character whose bytes came in two chunks (byte pieces of a Hugging Face tokenizer) is shown whole in the later one, never cut by a mark", () => {
    const pieces: Record<number, number[]> = { 10: [0x78], 11: [0xc3], 12: [0xa9], 13: [0x79], 14: [0xf0, 0x9f], 15: [0x99, 0x82] };
    const bytes = { safePrintf: false, name: "t", vocabSize: 16, decodePiece: (_prev: number, t: number) => Uint8Array.from(pieces[t] ?? []), encode: () => [], decode: () => "" };
    const text = (chunks: number[], tokens: number[]) => Buffer.from(markedText(bytes, tokens, chunks, false)).toString("utf8");
    expect(text([1, 2], [1, 10, 11, 12, 13])).toBe("x[][éy]");
    expect(text([1, 1, 1], [1, 10, 14, 15, 13])).toBe("x[][🙂][y]");
    // A character cut short at the end stays (the AR text's bytes, whatever they are).
    expect(Buffer.from(markedText(bytes, [1, 10, 11], [1], false))).toEqual(Buffer.from([0x78, 0x5b, 0x5d, 0xc3]));
  });
});
