/**
 * One entry point for `--model PATH`: a llama2.c checkpoint file (v0 or v1)
 * or a Hugging Face Llama folder (config.json + safetensors).
 */
import type { Checkpoint } from "../model/weights.js";
import { readCheckpoint } from "./checkpoint.js";
import { isDirectory, readHfCheckpoint } from "./hf-checkpoint.js";

/** Reads a model: a folder is read as a Hugging Face checkpoint, a file as llama2.c. */
export function readModel(path: string): Checkpoint {
  return isDirectory(path) ? readHfCheckpoint(path) : readCheckpoint(path);
}
