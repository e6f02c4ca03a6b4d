import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { readCheckpoint } from "../src/io/checkpoint.js";
import { Tokenizer } from "../src/io/tokenizer.js";
import { Transformer } from "../src/model/transformer.js";
import { backend, BACKENDS, GOLDEN, goldenText, ROOT, STORIES_260K, TOK_512, type GoldenCase } from "./helpers.js";

/**
 * GOLDEN-LIB / GOLDEN-CLI: every case of the llama2.c reference program's
 * outputs for stories260K reproduces exactly, greedy and sampled (sampled
 * with the reference's xorshift u-stream), on every backend.
 */

const golden: { cases: GoldenCase[] } = JSON.parse(readFileSync(GOLDEN, "utf8"));
const checkpoint = readCheckpoint(STORIES_260K);
const tokenizer = Tokenizer.load(TOK_512, checkpoint.config.vocabSize);
const label = (c: GoldenCase) => `${JSON.stringify(c.prompt)} T=${c.temperature} seed=${c.seed} steps=${c.steps}`;

describe.each(BACKENDS)("golden outputs of llama2.c on %s", (name) => {
  it.each(golden.cases.map((c) => [label(c), c] as const))("GOLDEN-LIB: %s", async (_, c) => {
    const model = new Transformer(await backend(name), checkpoint);
    expect(goldenText(model, tokenizer, c)).toBe(c.output);
    model.dispose();
  });

  // The CLI picks the wasm build itself, so it runs for js and wasm only.
  if (name === "wasm-simd") return;
  it.each(golden.cases.map((c) => [label(c), c] as const))("GOLDEN-CLI: %s", (_, c) => {
    const args = ["generate", "--model", STORIES_260K, "--tokenizer", TOK_512, "--prompt", c.prompt, "--steps", String(c.steps), "--temperature", String(c.temperature), "--top-p", String(c.topp), "--seed", String(c.seed), "--backend", name];
    // The bin compiles the kernels straight to optimized code (--no-liftoff); PTP_LIFTOFF=1 keeps V8's tiers: both give the golden text.
    for (const env of [process.env, { ...process.env, PTP_LIFTOFF: "1" }]) {
      const run = spawnSync(process.execPath, [resolve(ROOT, "bin/ptp.js"), ...args, ...(name === "wasm" ? ["--threads", "2"] : [])], { encoding: "utf8", env });
      expect(run.stderr).toMatch(/achieved tok\/s/);
      expect(run.status).toBe(0);
      expect(run.stdout).toBe(c.output);
    }
  });
});
