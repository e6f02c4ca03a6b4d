import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseCheckpoint, readCheckpoint, serializeCheckpoint, writeCheckpoint } from "../../src/io/checkpoint.js";
import { randomCheckpoint } from "../../src/model/init.js";
import { FileFormatError } from "../../src/io/errors.js";
import { parseSafetensors } from "../../src/io/safetensors.js";
import { Tokenizer } from "../../src/io/tokenizer.js";
import { checkStudentMatchesTeacher, parseStudent, serializeStudent } from "../../src/ptp/files/adapter-file.js";
import { randomStudent } from "../../src/ptp/init.js";
import { checkDraftMatchesTeacher, parseDraft, serializeDraft } from "../../src/ptp/files/draft-file.js";
import { randomDraft } from "../../src/ptp/init.js";
import { teacherChecksum } from "../../src/ptp/files/teacher-checksum.js";
import { readDataset } from "../../src/data/dataset.js";
import { AdamW } from "../../src/train/optim.js";
import { makeParam } from "../../src/train/param.js";
import { loadTrainCheckpoint, saveTrainCheckpoint } from "../../src/train/train-checkpoint.js";
import { runCli, STORIES_260K, TOK_512 } from "../helpers.js";
import { mutate, mutations } from "./mutate.js";

/**
 * The loaders under attack: every mutant of a real file is either accepted
 * (a well-formed file of the format) or rejected with a FileFormatError
 * whose one-line message starts with the file's name. Never a raw
 * TypeError / RangeError from deep inside, never a multi-line or
 * megabyte-long message. FUZZ_RUNS sets the mutants per format (default
 * 200, in npm test; `npm run fuzz` runs thousands).
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 200);
const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : undefined;
const tmp = mkdtempSync(join(tmpdir(), "ptp-fuzz-"));
const NAME = "mutant.bin";
const tally: Record<string, { accepted: number; rejected: number }> = {};

/** Runs `load` on a mutant; fails the property on anything but acceptance or a FileFormatError naming the file. */
function outcome(format: string, load: () => void): "accepted" | "rejected" {
  const t = (tally[format] ??= { accepted: 0, rejected: 0 });
  try {
    load();
    t.accepted++;
    return "accepted";
  } catch (err) {
    const e = err as Error;
    if (!(err instanceof FileFormatError)) throw new Error(`${format}: a mutant raised ${e?.name}: ${String(e?.message).slice(0, 300)}`);
    expect(e.message.startsWith(`${err.path}: `), e.message).toBe(true);
    expect(e.message.includes("\n"), e.message).toBe(false);
    expect(e.message.length, e.message.slice(0, 200)).toBeLessThanOrEqual(600);
    t.rejected++;
    return "rejected";
  }
}

/** A check after loading that may refuse with a plain Error naming the file (e.g. "adapter NAME was made for ..."). */
function namedCheck(check: () => void): void {
  try {
    check();
  } catch (err) {
    const e = err as Error;
    if (err instanceof TypeError || err instanceof RangeError || !e.message.includes(NAME)) throw new Error(`a check raised ${e.name}: ${e.message.slice(0, 300)}`);
  }
}

const params = (seed?: number) => (seed === undefined ? { numRuns: RUNS } : { numRuns: RUNS, seed });

const teacher = readCheckpoint(STORIES_260K);
const checksum = teacherChecksum(teacher);
const v0 = new Uint8Array(readFileSync(STORIES_260K));
const v1 = serializeCheckpoint(teacher, 1);
const tok = new Uint8Array(readFileSync(TOK_512));
const student = serializeStudent(randomStudent(teacher, checksum, { variant: "C", rank: 2, aux: { kind: "digits", digits: 8 }, window: 4, seed: 3 }));
const draft = serializeDraft(randomDraft(teacher, checksum, { variant: "O", aux: { kind: "anchors" }, window: 4, seed: 3, config: { dim: 16, nLayers: 1, nHeads: 2, nKvHeads: 1, hiddenDim: 32 } }));

describe("FUZZ: mutants of real files are accepted or refused with a FileFormatError naming the file", () => {
  it.each([
    ["checkpoint v0", v0],
    ["checkpoint v1", v1],
  ] as const)("FUZZ-CKPT: %s", (format, bytes) => {
    fc.assert(
      fc.property(mutations(false), (ms) => {
        outcome(format, () => void parseCheckpoint(mutate(bytes, ms), NAME));
      }),
      params(SEED),
    );
  });

  it("FUZZ-TOKENIZER: tokenizer.bin", () => {
    fc.assert(
      fc.property(mutations(false), (ms) => {
        outcome("tokenizer", () => void Tokenizer.fromBytes(mutate(tok, ms), 512, NAME));
      }),
      params(SEED),
    );
  });

  it("FUZZ-SAFETENSORS: student adapters and draft models (header JSON edits included)", () => {
    fc.assert(
      fc.property(mutations(true), fc.boolean(), (ms, isStudent) => {
        const bytes = mutate(isStudent ? student : draft, ms);
        outcome("safetensors", () => void parseSafetensors(bytes, NAME));
        if (isStudent) {
          if (outcome("student", () => void parseStudent(bytes, NAME)) === "accepted") namedCheck(() => checkStudentMatchesTeacher(parseStudent(bytes, NAME), teacher, checksum, NAME));
        } else if (outcome("draft", () => void parseDraft(bytes, NAME)) === "accepted") namedCheck(() => checkDraftMatchesTeacher(parseDraft(bytes, NAME), teacher, checksum, NAME));
      }),
      params(SEED),
    );
  });

  it("FUZZ-TRAIN-CKPT: training checkpoints (resumed into an optimizer of the same params)", () => {
    const make = () => new AdamW([makeParam("w", [3, 4], new Float32Array(12).fill(0.5), true), makeParam("b", [4], new Float32Array(4), false)], { lr: 1e-3 });
    const good = join(tmp, "train-good.safetensors");
    saveTrainCheckpoint(good, make(), { rng: 7, dataCursor: { seconds: 1 }, config: { a: 1 } });
    const bytes = new Uint8Array(readFileSync(good));
    const path = join(tmp, NAME);
    fc.assert(
      fc.property(mutations(true), (ms) => {
        writeFileSync(path, mutate(bytes, ms));
        const opt = make();
        // On refusal the optimizer is untouched.
        if (outcome("train checkpoint", () => void loadTrainCheckpoint(path, opt)) === "rejected") expect(opt.t).toBe(0);
      }),
      params(SEED),
    );
  });

  it("FUZZ-DATASET: distillation datasets (an accepted mutant holds a prefix of the original records: corruption is never silently accepted)", async () => {
    const teacherPath = join(tmp, "t.bin"),
      data = join(tmp, "d.ptpd"),
      prompts = join(tmp, "p.txt");
    writeCheckpoint(teacherPath, randomCheckpoint({ dim: 16, hiddenDim: 24, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 512, seqLen: 32, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 }, 5));
    writeFileSync(prompts, "Once upon a time\nThe cat\n");
    const r = await runCli("pregenerate", "--model", teacherPath, "--tokenizer", TOK_512, "--prompts", prompts, "--out", data, "--samples", "2", "--steps", "12", "--temperature", "0.8", "--backend", "js");
    expect(r.code, r.stderr).toBe(0);
    const bytes = new Uint8Array(readFileSync(data));
    const original = readDataset(data).records;
    const path = join(tmp, NAME);
    fc.assert(
      fc.property(mutations(false), fc.boolean(), (ms, allowTornTail) => {
        writeFileSync(path, mutate(bytes, ms));
        let records: ReturnType<typeof readDataset>["records"] = [];
        if (outcome("dataset", () => void (records = readDataset(path, { allowTornTail }).records)) === "accepted") {
          expect(records.length).toBeLessThanOrEqual(original.length);
          records.forEach((rec, i) => expect(rec).toEqual(original[i]));
        }
      }),
      params(SEED),
    );
  });

  it("FUZZ-LAYERS: a header claiming 2^31 - 1 layers (found by the fuzzer: it exhausted the heap) is refused before the expected tensors are listed", () => {
    const claim = (bytes: Uint8Array, from: RegExp, to: string) => {
      const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
      const json = new TextDecoder().decode(bytes.subarray(8, 8 + n)).replace(from, to);
      const header = new TextEncoder().encode(json),
        out = new Uint8Array(8 + header.length + bytes.length - 8 - n);
      new DataView(out.buffer).setBigUint64(0, BigInt(header.length), true);
      out.set(header, 8);
      out.set(bytes.subarray(8 + n), 8 + header.length);
      return out;
    };
    expect(() => parseDraft(claim(draft, /\\"nLayers\\":1/, '\\"nLayers\\":2147483647'), NAME)).toThrow(/mutant.bin: draft_config says 2147483647 layers, but the file holds only \d+ tensors/);
    expect(() => parseStudent(claim(student, /\\"nLayers\\":5/, '\\"nLayers\\":2147483647'), NAME)).toThrow(/mutant.bin: teacher_shape says 2147483647 layers/);
  });

  it("FUZZ-TALLY: every format refused mutants, and mutants were accepted (they reach past the first check; a student's or draft's are accepted in about 2-4 % of runs, so only the total is sure to be positive)", () => {
    if (process.env.FUZZ_REPORT) writeFileSync(process.env.FUZZ_REPORT, JSON.stringify({ runsPerFormat: RUNS, tally }, null, 2) + "\n");
    for (const [format, t] of Object.entries(tally)) expect(t.rejected, format).toBeGreaterThan(0);
    expect(Object.values(tally).reduce((n, t) => n + t.accepted, 0)).toBeGreaterThan(0);
    expect(Object.keys(tally).sort()).toEqual(["checkpoint v0", "checkpoint v1", "dataset", "draft", "safetensors", "student", "tokenizer", "train checkpoint"]);
  });
});
