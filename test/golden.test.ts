import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { readCheckpoint } from "../src/io/checkpoint.js";
import { Tokenizer } from "../src/io/tokenizer.js";
import { Transformer } from "../src/model/transformer.js";
import { decodeAR } from "../src/ptp/decode/ar.js";
import { XorShiftAux } from "../src/sampling/aux.js";
import { backend, BACKENDS, GOLDEN, ROOT, STORIES_260K, TOK_512 } from "./helpers.js";

/**
 * GOLDEN-LIB / GOLDEN-CLI: every case of the llama2.c reference program's
 * outputs for stories260K reproduces exactly, greedy and sampled (sampled
 * with the reference's xorshift u-stream), on every backend.
 */

interface GoldenCase {
  prompt: string;
  temperature: number;
  topp: number;
  seed: number;
  steps: number;
  output: string;
}
const golden: { cases: GoldenCase[] } = JSON.parse(readFileSync(GOLDEN, "utf8"));
const checkpoint = readCheckpoint(STORIES_260K);
const tokenizer = Tokenizer.load(TOK_512, checkpoint.config.vocabSize);
const label = (c: GoldenCase) => `${JSON.stringify(c.prompt)} T=${c.temperature} seed=${c.seed} steps=${c.steps}`;

describe.each(BACKENDS)("golden outputs of llama2.c on %s", (name) => {
  it.each(golden.cases.map((c) => [label(c), c] as const))("GOLDEN-LIB: %s", async (_, c) => {
    const model = new Transformer(await backend(name), checkpoint);
    const chunks: Uint8Array[] = [];
    decodeAR(model, tokenizer.encode(c.prompt, true, false), {
      steps: c.steps,
      sampling: { temperature: c.temperature, topP: c.topp },
      aux: new XorShiftAux(BigInt(c.seed)),
      onToken: (prev, token) => {
        const piece = tokenizer.decodePiece(prev, token);
        if (Tokenizer.isPrintablePiece(piece)) chunks.push(piece);
      },
    });
    model.dispose();
    expect(Buffer.concat(chunks).toString("utf8") + "\n").toBe(c.output);
  });

  // The CLI picks the wasm build itself, so it runs for js and wasm only.
  if (name === "wasm-simd") return;
  it.each(golden.cases.map((c) => [label(c), c] as const))("GOLDEN-CLI: %s", (_, c) => {
    const args = ["generate", "--model", STORIES_260K, "--tokenizer", TOK_512, "--prompt", c.prompt, "--steps", String(c.steps), "--temperature", String(c.temperature), "--top-p", String(c.topp), "--seed", String(c.seed), "--backend", name];
    const run = spawnSync(process.execPath, [resolve(ROOT, "bin/ptp.js"), ...args], { encoding: "utf8" });
    expect(run.stderr).toMatch(/achieved tok\/s/);
    expect(run.status).toBe(0);
    expect(run.stdout).toBe(c.output);
  });
});
