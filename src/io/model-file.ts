/**
 * One entry point for `--model PATH` and `--tokenizer PATH`: a llama2.c
 * checkpoint file (v0 or v1) or a Hugging Face Llama folder
 * (config.json + safetensors); a llama2.c tokenizer.bin or a Hugging Face
 * tokenizer.json.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Checkpoint } from "../model/weights.js";
import { readCheckpoint } from "./checkpoint.js";
import { checkPath, FileFormatError } from "./errors.js";
import { fileKindOf } from "./file-kind.js";
import { isDirectory, readHfCheckpoint } from "./hf-checkpoint.js";
import { HfTokenizer, type TextTokenizer } from "./hf-tokenizer.js";
import { Tokenizer } from "./tokenizer.js";

export const HF_TOKENIZER = "tokenizer.json";

/** Reads a model: a folder is read as a Hugging Face checkpoint, a file as llama2.c. */
export function readModel(path: string): Checkpoint {
  checkPath(path, "readModel");
  if (isDirectory(path)) return readHfCheckpoint(path);
  try {
    return readCheckpoint(path);
  } catch (err) {
    // A file of another kind fails as a nonsense v0 header: say what it is instead.
    const kind = err instanceof FileFormatError ? fileKindOf(path) : undefined;
    if (kind !== undefined && kind !== "a llama2.c checkpoint") throw new FileFormatError(path, `is ${kind}, not a model (expected a llama2.c checkpoint or a Hugging Face folder)`);
    throw err;
  }
}

/**
 * Loads a tokenizer for a model of `vocabSize` tokens: a path ending in
 * .json (or a folder holding tokenizer.json) through @huggingface/tokenizers,
 * anything else as a llama2.c tokenizer.bin.
 */
export function loadTokenizer(path: string, vocabSize: number): TextTokenizer {
  checkPath(path, "loadTokenizer");
  if (isDirectory(path)) {
    const inside = join(path, HF_TOKENIZER);
    if (!existsSync(inside)) throw new FileFormatError(path, `is a folder without ${HF_TOKENIZER} (expected a tokenizer file)`);
    return HfTokenizer.load(inside, vocabSize);
  }
  return path.endsWith(".json") ? HfTokenizer.load(path, vocabSize) : Tokenizer.load(path, vocabSize);
}

/**
 * The tokenizer a command uses: `--tokenizer` when given, else the
 * tokenizer.json of a Hugging Face model folder. Undefined when neither
 * exists (the command then reports the missing flag).
 */
export function tokenizerPathFor(model: string, tokenizer: string | undefined): string | undefined {
  if (tokenizer !== undefined) return tokenizer;
  if (isDirectory(model) && existsSync(join(model, HF_TOKENIZER))) return join(model, HF_TOKENIZER);
  return undefined;
}
