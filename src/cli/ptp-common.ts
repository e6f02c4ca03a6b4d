/** Helpers shared by the commands that decode prompts and compare with AR (generate, demo). */
import type { Backend } from "../backends/backend.js";
import { quotePath, readLines } from "../io/errors.js";
import { loadModel } from "../io/model-file.js";
import type { Transformer } from "../model/transformer.js";
import type { TextTokenizer } from "../io/hf-tokenizer.js";
import { printsPiece } from "../io/tokenizer.js";
import { firstNonFiniteWeight } from "../ptp/files/ptp-file-parts.js";
import { MIN_TEMPERATURE } from "../sampling/processors.js";
import { NonFiniteLogitsError } from "../sampling/softmax.js";
import { UsageError } from "./args.js";
import type { Io } from "./io.js";
import { SIGNAL_EXIT_CODE, type StopSignal } from "../train/interrupt.js";

/** An error of a run, with the model file named when its logits were not finite (a checkpoint that overflows float32 as it runs). */
export function namingModel(e: unknown, modelPath: string): unknown {
  return e instanceof NonFiniteLogitsError ? new Error(`${quotePath(modelPath)}: ${e.message}`) : e;
}

/**
 * A warning on stderr for prompts that leave no position to generate in:
 * `steps` positions run 0 .. steps - 1, and position p reads token p and
 * produces token p + 1, so a prompt of n <= steps tokens (BOS included)
 * still gets the token at position n (decodeAR, Sequence); only one of more
 * than `steps` tokens is cut there, as in the reference, with nothing
 * generated.
 */
export function warnFullPrompts(io: Io, prompts: readonly (readonly number[])[], steps: number, asked: number = steps): void {
  const full = prompts.flatMap((p, i) => (p.length > steps ? [i] : []));
  if (full.length === 0) return;
  const which = prompts.length === 1 ? "the prompt has" : `${full.length} of ${prompts.length} prompts (the first: prompt ${full[0] + 1}) have`;
  // --steps 0 (or past seqLen) runs the model's seqLen positions: the prompt is longer than the model's context.
  const limit = asked === steps ? `--steps (${steps})` : `the model's seqLen (${steps}, which --steps ${asked} runs)`;
  const advice = asked === steps ? "give more --steps" : "shorten the prompt";
  io.stderr(`warning: ${which} more than ${limit} tokens: nothing is generated for ${full.length === 1 ? "it" : "them"} (${advice})\n`);
}

/**
 * The positions a run makes of --steps, as llama2.c's run reads it: 0, or
 * more than the model's seqLen, runs seqLen positions. A --steps the user
 * gave past seqLen gets a note on stderr (`given`: the flag was on the
 * command line, not its default).
 */
export function runPositions(io: Io, steps: number, seqLen: number, given: boolean): number {
  if (steps > 0 && steps <= seqLen) return steps;
  if (given && steps > seqLen) io.stderr(`note: --steps ${steps} is more than the model's seqLen (${seqLen}): running ${seqLen} positions\n`);
  return seqLen;
}

/** The largest xorshift seed: its state is 64 bits, never 0. */
const MAX_SEED = 2n ** 64n - 1n;

/**
 * --seed S, exactly (a JavaScript number would round it past 2^53): an
 * integer in [1, 2^64 - 1], and so is S + prompts - 1, the seed of the last
 * prompt (prompt i uses S + i).
 */
/**
 * Why PTP took longer than AR, for the commands that time both (demo,
 * generate): the lines after "why slower: ", ending in `measure` (what
 * measures it at larger models).
 */
export function whySlowerLines(measure: string): string {
  return "fewer calls save time only where a call of several rows costs little more than a\n" + "one-row call; on a CPU that holds for large models, not small ones (docs/BENCHMARKS.md, the cost\n" + `curve). ${measure}\n`;
}

/** --draft-stop: a number in [0, 1) or "auto" (DecodeOptions.draftStop), else a usage error. */
export function draftStopFlag(raw: string): number | "auto" {
  if (raw === "auto") return raw;
  const q = /^\s*$/.test(raw) ? Number.NaN : Number(raw);
  if (!(q >= 0 && q < 1)) throw new UsageError(`--draft-stop must be a number in [0, 1) or auto, got ${JSON.stringify(raw)}`);
  return q;
}

/** A decoding --temperature: 0 (greedy) or at least MIN_TEMPERATURE (below it logits / T overflow). */
export function temperatureFlag(t: number): void {
  if (t < 0 || (t > 0 && t < MIN_TEMPERATURE)) throw new UsageError(`--temperature must be >= 0 (0 = greedy; a positive one at least ${MIN_TEMPERATURE}), got ${t}`);
}

export function seedFlag(raw: string, prompts = 1): bigint {
  if (!/^\d+$/.test(raw) || BigInt(raw) < 1n || BigInt(raw) > MAX_SEED) throw new UsageError(`--seed must be an integer in [1, 2^64 - 1], got ${JSON.stringify(raw)}`);
  const seed = BigInt(raw);
  if (seed + BigInt(prompts - 1) > MAX_SEED) throw new UsageError(`--seed ${raw}: the last of ${prompts} prompts would use seed + ${prompts - 1}, past 2^64 - 1`);
  return seed;
}

/** A warning on stderr, naming the file, when a student's or draft's weights hold NaN/Inf (decoding stays exact, but its drafts are rejected). */
export function warnNonFinite(io: Io, what: string, path: string, weights: unknown): void {
  const bad = firstNonFiniteWeight(weights);
  if (bad !== undefined) io.stderr(`warning: ${what} ${quotePath(path)} holds non-finite weights (${bad}); drafts computed from them are rejected (the output still equals AR's, with less or no speedup; a tensor the decoder never reads costs nothing)\n`);
}

/** A --prompts file is at most 1 GiB, a prompt (line) at most 1 MiB. */
export const PROMPT_FILE_LIMITS = { maxBytes: 2 ** 30, maxLine: 2 ** 20 };

/** The prompts of a --prompts file: one per line, blank lines skipped; read line by line, non-regular or oversized files refused before reading. */
export function readPrompts(path: string): string[] {
  const prompts: string[] = [];
  readLines(path, "a text file of prompts, one per line", PROMPT_FILE_LIMITS, (line) => {
    if (line.trim() !== "") prompts.push(line);
  });
  if (prompts.length === 0) throw new Error(`${quotePath(path)}: no prompts (every line is blank)`);
  return prompts;
}

/**
 * The bytes of a sequence after its first token: what the AR path prints
 * (the pieces the tokenizer prints, printsPiece), or with `every` each
 * piece's bytes (--json's text: a UTF-8 character made of byte pieces stays whole).
 */
export function textOf(tokenizer: TextTokenizer, tokens: readonly number[], every = false): Uint8Array {
  const pieces: Uint8Array[] = [];
  for (let i = 1; i < tokens.length; i++) {
    const piece = tokenizer.decodePiece(tokens[i - 1], tokens[i]);
    if (every || printsPiece(tokenizer, piece)) pieces.push(piece);
  }
  return Buffer.concat(pieces);
}

/** The model at `path` on `backend` (loadModel); where it cannot be loaded, the backend (its worker threads) is disposed before the error goes on. */
export function loadModelOn(backend: Backend, path: string): Transformer {
  try {
    return loadModel(backend, path);
  } catch (err) {
    backend.dispose?.();
    throw err;
  }
}

/** The note and exit code of `ptp COMMAND` stopped by `signal` (an Interruption) after `done`. */
export function interrupted(io: Io, command: string, signal: StopSignal, done: string): number {
  io.stderr(`ptp ${command}: interrupted (${signal}) after ${done}\n`);
  return SIGNAL_EXIT_CODE[signal];
}

/** "1 token", "2 tokens". */
export const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? "" : "s"}`;
