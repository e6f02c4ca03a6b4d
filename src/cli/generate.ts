import { createBackend, DEFAULT_BACKEND } from "../backends/registry.js";
import { readCheckpoint } from "../io/checkpoint.js";
import { Tokenizer } from "../io/tokenizer.js";
import { Transformer } from "../model/transformer.js";
import { decodeAR } from "../ptp/decode/ar.js";
import { readAuxFile, XorShiftAux, type AuxSource } from "../sampling/aux.js";
import { needsU } from "../sampling/sampler.js";
import { describeFlags, parseFlags, UsageError, type FlagSpecs } from "./args.js";
import type { Io } from "./io.js";

export const generateFlags = {
  model: { kind: "string", value: "FILE", help: "llama2.c checkpoint (.bin)", required: true },
  tokenizer: { kind: "string", value: "FILE", help: "llama2.c tokenizer.bin matching the model", required: true },
  prompt: { kind: "string", value: "TEXT", help: "text to continue", default: "" },
  steps: { kind: "int", value: "N", help: "positions to run, prompt included (0 = the model's seqLen)", default: 256 },
  temperature: { kind: "number", value: "T", help: "sampling temperature; 0 = greedy", default: 1 },
  "top-k": { kind: "int", value: "K", help: "keep the K most probable tokens (0 = off)", default: 0 },
  "top-p": { kind: "number", value: "P", help: "nucleus sampling threshold (1 = off)", default: 1 },
  seed: { kind: "string", value: "S", help: "seed of the xorshift u-stream (integer >= 1; default: from the clock, printed)" },
  "aux-file": { kind: "string", value: "FILE", help: "u values, one per line, one per sampled token (instead of --seed)" },
  backend: { kind: "string", value: "NAME", help: "compute backend", default: DEFAULT_BACKEND, choices: ["js", "wasm"] },
  "no-stop": { kind: "bool", help: "do not stop when the model emits BOS (for benchmarks on random weights)" },
  json: { kind: "bool", help: "print one JSON object {tokens, text, stats} instead of the text" },
} satisfies FlagSpecs;

export const generateUsage = `usage: ptp generate --model FILE --tokenizer FILE [options]

Continue a prompt with a llama2.c checkpoint, sampling each token as
Pick(u, P) from explicit auxiliary variables u. stdout: the prompt and its
continuation, as llama2.c's run prints them; stderr: tokens/s.

${describeFlags(generateFlags)}`;

export async function generateCommand(argv: readonly string[], io: Io): Promise<number> {
  const f = parseFlags(argv, generateFlags);
  if (f.seed !== undefined && f["aux-file"] !== undefined) throw new UsageError("give either --seed or --aux-file, not both");
  if (f.temperature! < 0) throw new UsageError(`--temperature must be >= 0, got ${f.temperature}`);
  if (f.steps! < 0) throw new UsageError(`--steps must be >= 0, got ${f.steps}`);
  if (f["top-p"]! < 0 || f["top-p"]! > 1) throw new UsageError(`--top-p must be in [0, 1], got ${f["top-p"]}`);
  if (f["top-k"]! < 0) throw new UsageError(`--top-k must be >= 0, got ${f["top-k"]}`);

  if (f.seed !== undefined && !/^\d+$/.test(f.seed)) throw new UsageError(`--seed must be a positive integer, got ${JSON.stringify(f.seed)}`);

  const checkpoint = readCheckpoint(f.model!);
  const tokenizer = Tokenizer.load(f.tokenizer!, checkpoint.config.vocabSize);
  const sampling = { temperature: f.temperature!, topK: f["top-k"], topP: f["top-p"] };

  let aux: AuxSource | undefined;
  if (needsU(sampling)) {
    if (f["aux-file"] !== undefined) aux = readAuxFile(f["aux-file"]);
    else {
      const seed = f.seed !== undefined ? BigInt(f.seed) : BigInt(Date.now());
      if (f.seed === undefined) io.stderr(`seed: ${seed}\n`);
      aux = new XorShiftAux(seed);
    }
  }

  const backend = await createBackend(f.backend);
  const model = new Transformer(backend, checkpoint);
  const prompt = tokenizer.encode(f.prompt!, true, false);
  const bytes: Uint8Array[] = [];
  const result = decodeAR(model, prompt, {
    steps: f.steps!,
    sampling,
    aux,
    stopAtBos: !f["no-stop"],
    onToken: (prev, token) => {
      const piece = tokenizer.decodePiece(prev, token);
      if (!Tokenizer.isPrintablePiece(piece)) return;
      if (f.json) bytes.push(piece);
      else io.stdout(piece);
    },
  });
  model.dispose();

  if (f.json) {
    const text = new TextDecoder().decode(Buffer.concat(bytes));
    io.stdout(JSON.stringify({ tokens: result.tokens, text, stats: { ...result.stats, backend: backend.description } }) + "\n");
  } else {
    io.stdout("\n");
  }
  io.stderr(`achieved tok/s: ${result.stats.tokensPerSecond.toFixed(2)} (${result.stats.generatedTokens} tokens, ${result.stats.modelCalls} model calls, ${backend.description})\n`);
  return 0;
}
