import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { writeCheckpoint } from "../src/io/checkpoint.js";
import { randomCheckpoint } from "../src/model/init.js";
import type { ModelConfig } from "../src/model/config.js";
import { runCli, TOK_512 } from "./helpers.js";

/*
 * CLI-THREADS: `ptp generate --threads 2` runs work on a worker thread (the
 * pool is up before the first op, though decoding is synchronous), prints the
 * same tokens as --threads 1, and starts the tokens/s clock after a warm-up.
 */
describe("ptp generate --threads", () => {
  const tmp = mkdtempSync(join(tmpdir(), "ptp-cli-threads-"));
  // Large enough that its matmuls are split over threads (vocab 512: the tokenizer's), and with layers enough that a
  // worker descheduled for a while on a loaded host still gets its share of a run.
  const config: ModelConfig = { dim: 256, hiddenDim: 512, nLayers: 6, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 64, sharedClassifier: false, normEps: 1e-5, ropeTheta: 10000 };
  const model = join(tmp, "threads.bin");
  writeCheckpoint(model, randomCheckpoint(config, 11));
  const common = ["generate", "--model", model, "--tokenizer", TOK_512, "--steps", "64", "--temperature", "1", "--seed", "5", "--no-stop", "--json"];

  it("CLI-THREADS: --threads 2 runs chunks on a worker and gives the tokens of --threads 1", async () => {
    const one = await runCli(...common, "--threads", "1");
    const two = await runCli(...common, "--threads", "2");
    expect(one.code).toBe(0);
    expect(two.code).toBe(0);
    const a = JSON.parse(one.stdout),
      b = JSON.parse(two.stdout);
    expect(a.stats.threads).toBe(1);
    expect(a.stats.workerChunks).toBe(0);
    expect(b.stats.threads).toBe(2);
    expect(b.stats.workerChunks).toBeGreaterThan(0);
    expect(b.tokens).toEqual(a.tokens);
    expect(b.tokens.length).toBe(65);
    expect(b.stats.warmUp).toBe(true);
  });

  it("CLI-THREADS: the text output says the clock started after a warm-up and how many threads ran", async () => {
    const r = await runCli("generate", "--model", model, "--tokenizer", TOK_512, "--steps", "20", "--temperature", "0", "--threads", "2");
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/achieved tok\/s: .*2 threads \(\d+ chunks on workers\); clock started after a warm-up call/);
  });

  it.each(["bf16", "int8"])("CLI-WEIGHTS: --weights %s runs that model (said in the backend line) and needs the wasm backend", async (weights) => {
    const r = await runCli("generate", "--model", model, "--tokenizer", TOK_512, "--steps", "20", "--temperature", "0", "--weights", weights, "--json");
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.stats.backend).toMatch(new RegExp(`${weights} weights`));
    expect(out.tokens.length).toBeGreaterThan(1);
    const js = await runCli("generate", "--model", model, "--tokenizer", TOK_512, "--backend", "js", "--weights", weights);
    expect(js.code).toBe(2);
    expect(js.stderr).toMatch(new RegExp(`--weights ${weights} needs the wasm backend`));
  });

  it("CLI-WEIGHTS: with --weights int8 the PTP output equals the AR output; an unknown type is a one-line usage error naming the flag", async () => {
    const student = join(tmp, "student.safetensors");
    const rs = await runCli("random-student", "--model", model, "--rank", "4", "--variant", "O", "--window", "8", "--seed", "2", "--out", student);
    expect(rs.code, rs.stderr).toBe(0);
    const ptp = await runCli(...common, "--weights", "int8", "--student", student, "--decoder", "single-call");
    expect(ptp.code, ptp.stderr).toBe(0);
    expect(JSON.parse(ptp.stdout).stats.equalsAR).toBe(true);
    const bad = await runCli("generate", "--model", model, "--tokenizer", TOK_512, "--weights", "int4");
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split("\n")[0]).toMatch(/--weights.*int4/);
  });
});
