/**
 * One entry point for `--model PATH` and `--tokenizer PATH`: a llama2.c
 * checkpoint file (v0 or v1) or a Hugging Face Llama folder
 * (config.json + safetensors); a llama2.c tokenizer.bin or a Hugging Face
 * tokenizer.json.
 */
import { describeValue } from "../util/checks.js";
import { join } from "node:path";
import type { Backend } from "../backends/backend.js";
import type { ModelConfig } from "../model/config.js";
import { allocWeights, freeWeights } from "../model/device-weights.js";
import { Transformer, type TransformerOptions } from "../model/transformer.js";
import type { Checkpoint } from "../model/weights.js";
import { CHECKPOINT_READS_IN_PLACE, readCheckpoint, readCheckpointConfig, readCheckpointInto, type CheckpointTensor } from "./checkpoint.js";
import { checkPath, entryExists, FileFormatError } from "./errors.js";
import { fileKindOf } from "./file-kind.js";
import { HF_CONFIG, isDirectory, readHfCheckpoint, readHfCheckpointInto, readHfConfig, readHfConfigChecked } from "./hf-checkpoint.js";
import { HfTokenizer, type TextTokenizer } from "./hf-tokenizer.js";
import { Tokenizer } from "./tokenizer.js";

export const HF_TOKENIZER = "tokenizer.json";

/** Reads a model: a folder is read as a Hugging Face checkpoint, a file as llama2.c. */
export function readModel(path: string): Checkpoint {
  checkPath(path, "readModel");
  if (isDirectory(path)) return readHfCheckpoint(path);
  return asModelFile(path, () => readCheckpoint(path));
}

/**
 * A model's config without reading a weight: a llama2.c file's from its
 * header (checked against the file's size), a folder's from its config.json
 * checked against its safetensors headers (every tensor there, of the shape
 * the config gives). What a caller sizes memory from; readModel and
 * loadModel check the weights themselves.
 */
export function readModelConfig(path: string): ModelConfig {
  checkPath(path, "readModelConfig");
  if (isDirectory(path)) return readHfConfigChecked(path);
  return asModelFile(path, () => readCheckpointConfig(path));
}

/**
 * The model at `path` (as readModel reads it) as a Transformer on `backend`.
 * A llama2.c file or a Hugging Face folder is read straight into the
 * model's buffers where the backend has hostView (wasm, js) and the host is
 * little-endian, so the weights are never held on the host as well: on the
 * benchmark VM a fresh page of memory costs ~14 us, and at 110M the host
 * copy and its upload cost that twice over 440 MB (docs/BENCHMARKS.md,
 * bench/startup.ts). Another backend goes through readModel. Errors are
 * readModel's; on one, the buffers made so far are freed.
 */
export function loadModel(backend: Backend, path: string, options?: TransformerOptions): Transformer {
  if (backend === null || typeof backend !== "object" || typeof (backend as { alloc?: unknown }).alloc !== "function") {
    throw new TypeError(`loadModel: backend must be a Backend (createBackend("wasm"), new JsBackend()), got ${describeValue(backend)}`);
  }
  checkPath(path, "loadModel");
  if (!backend.hostView || !CHECKPOINT_READS_IN_PLACE) return new Transformer(backend, readModel(path), options);
  const folder = isDirectory(path);
  // The buffers first, in the forward pass's order (a v0 file groups each matrix across layers), then the weights into them.
  const header = folder ? readHfConfig(path) : asModelFile(path, () => readCheckpointConfig(path));
  const device = allocWeights(backend, header);
  try {
    const into = (tensor: CheckpointTensor, length: number): Float32Array => {
      const b = tensor.kind === "layer" ? device.layers[tensor.layer]?.[tensor.field] : device[tensor.field];
      // The header read twice: a file replaced in between would not fit the buffers.
      if (b === undefined || b.length !== length) throw new FileFormatError(path, "changed while it was read (its header no longer matches)");
      return backend.hostView!(b);
    };
    const config = folder ? readHfCheckpointInto(path, into) : asModelFile(path, () => readCheckpointInto(path, into));
    if (JSON.stringify(config) !== JSON.stringify(header)) throw new FileFormatError(path, "changed while it was read (its header no longer matches)");
    return new Transformer(backend, { config, device }, options);
  } catch (err) {
    freeWeights(backend, device);
    throw err;
  }
}

/** Runs `read` on a model file; a file of another kind fails as a nonsense v0 header: say what it is instead. */
function asModelFile<T>(path: string, read: () => T): T {
  try {
    return read();
  } catch (err) {
    const kind = err instanceof FileFormatError ? fileKindOf(path) : undefined;
    if (kind === "a JSON file") throw new FileFormatError(path, `is a JSON file, not a model (for a Hugging Face model, give the folder that holds its ${HF_CONFIG} and weights)`);
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
    if (!entryExists(inside)) throw new FileFormatError(path, `is a folder without ${HF_TOKENIZER} (expected a tokenizer file)`);
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
  if (isDirectory(model) && entryExists(join(model, HF_TOKENIZER))) return join(model, HF_TOKENIZER);
  return undefined;
}
