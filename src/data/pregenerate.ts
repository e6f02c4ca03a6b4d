/**
 * Distillation data (method section 3.1): sample completions from the
 * teacher with its sampling settings and store, for every sampled token, the
 * bin [left, right) of the u that picked it. Record i's u's come from a PRNG
 * seeded by (seed, i) alone, so records can be generated in any session and
 * a resumed file is byte-identical to an uninterrupted one, on the backend
 * the header names (the teacher's logits are bit-exact per backend only).
 */

import { createHash } from "node:crypto";
import type { Backend } from "../backends/backend.js";
import { Mulberry32, SEED_SALT } from "../util/prng.js";
import { isPlainObject } from "../util/options.js";
import { BOS } from "../io/tokenizer.js";
import type { KVCache } from "../model/kv-cache.js";
import type { Transformer } from "../model/transformer.js";
import type { Checkpoint } from "../model/weights.js";
import { teacherChecksum } from "../ptp/files/teacher-checksum.js";
import { uFromU32 } from "../sampling/aux.js";
import { binOf, pick } from "../sampling/pick.js";
import { checkPositiveInteger, checkTokens, describeValue } from "../util/checks.js";
import { samplingDistribution, validateSamplingSettings, type SamplingSettings } from "../sampling/processors.js";
import { totalRecords, validateMeta, type DatasetMeta, type DatasetRecord, type DatasetWriter } from "./dataset.js";

/** Prompt token arrays (BOS first) and a name for where they came from ("bos", or a prompt file's name). */
export interface PromptSet {
  source: string;
  tokens: readonly (readonly number[])[];
}

/** The single prompt [BOS]: completions from the start of text. */
export function bosPrompts(): PromptSet {
  return { source: "bos", tokens: [[BOS]] };
}

/** SHA-256 hex of the prompts: their count, then each one's length and tokens, all int32 little-endian. */
export function promptsDigest(prompts: readonly (readonly number[])[]): string {
  if (!Array.isArray(prompts)) throw new TypeError(`promptsDigest: prompts must be an array of token arrays, got ${describeValue(prompts)}`);
  prompts.forEach((p, i) => {
    if (p === null || typeof p !== "object" || typeof p.length !== "number") throw new TypeError(`promptsDigest: prompt ${i} must be an array of token ids, got ${describeValue(p)}`);
    // Digested as int32: 1.5 or 2^32 + 1 would share the digest of another prompt.
    for (let j = 0; j < p.length; j++) if ((p[j] | 0) !== p[j]) throw new RangeError(`promptsDigest: prompt ${i}, position ${j}: token ids must be integers (int32), got ${describeValue(p[j])}`);
  });
  const hash = createHash("sha256");
  const int = (v: number): Uint8Array => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setInt32(0, v, true);
    return b;
  };
  hash.update(int(prompts.length));
  for (const p of prompts) {
    hash.update(int(p.length));
    hash.update(new Uint8Array(Int32Array.from(p).buffer));
  }
  return hash.digest("hex");
}

export interface PregenerateSettings {
  /** Temperature > 0; topK (0 or absent = off), topP (1 or absent = off). */
  sampling: SamplingSettings;
  samplesPerPrompt: number;
  /** Most sampled tokens per completion (fewer when the teacher emits BOS or seqLen is reached). */
  maxSteps: number;
  /** uint32. */
  seed: number;
}

/**
 * The header metadata for a dataset of `teacher`'s completions of `prompts`,
 * sampled on `backend` (the records' bits depend on it: see DatasetMeta.backend).
 * The teacher is its Checkpoint or the Transformer holding it (loadModel):
 * the same teacherChecksum.
 */
export function datasetMeta(teacher: Checkpoint | Transformer, prompts: PromptSet, settings: PregenerateSettings, backend: Backend): DatasetMeta {
  if (teacher === null || typeof teacher !== "object" || teacher.config === null || typeof teacher.config !== "object") throw new TypeError(`datasetMeta: teacher must be a Checkpoint (as readModel returns) or a Transformer (loadModel), got ${describeValue(teacher)}`);
  checkPromptSet(prompts, "datasetMeta", teacher.config.vocabSize, teacher.config.seqLen);
  if (settings === null || typeof settings !== "object") throw new TypeError(`datasetMeta: settings must be an object { sampling, samplesPerPrompt, maxSteps, seed }, got ${describeValue(settings)}`);
  for (const key of Object.keys(settings)) {
    if (!["sampling", "samplesPerPrompt", "maxSteps", "seed"].includes(key)) throw new RangeError(`datasetMeta: unknown setting ${JSON.stringify(key)}; the settings are sampling, samplesPerPrompt, maxSteps and seed`);
  }
  validateSamplingSettings(settings.sampling);
  if (backend === null || typeof backend !== "object" || typeof backend.description !== "string") throw new TypeError(`datasetMeta: backend must be the Backend the records are sampled on, got ${describeValue(backend)}`);
  const meta: DatasetMeta = {
    teacher: teacherChecksum(teacher),
    backend: backend.description,
    vocabSize: teacher.config.vocabSize,
    seqLen: teacher.config.seqLen,
    sampling: { temperature: settings.sampling.temperature, topK: settings.sampling.topK ?? 0, topP: settings.sampling.topP ?? 1 },
    seed: settings.seed,
    samplesPerPrompt: settings.samplesPerPrompt,
    maxSteps: settings.maxSteps,
    prompts: { source: prompts.source, count: prompts.tokens.length, sha256: promptsDigest(prompts.tokens) },
  };
  validateMeta(meta, "datasetMeta");
  return meta;
}

function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/** The PRNG of record `index`: Mulberry32 seeded with mix32(seed ^ mix32(index ^ SEED_SALT)) (SEED_SALT = 0x9e3779b9). */
export function recordRng(seed: number, index: number): Mulberry32 {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new RangeError(`recordRng: seed must be an integer in [0, 2^32), got ${describeValue(seed)}`);
  if (!Number.isInteger(index) || index < 0 || index > 0xffffffff) throw new RangeError(`recordRng: index must be an integer in [0, 2^32), got ${describeValue(index)}`);
  return new Mulberry32(mix32((seed ^ mix32(index ^ SEED_SALT)) >>> 0));
}

/** The next sampling u: a float32 in [0, 1) with 24 random bits, as llama2.c's random_f32. */
export function nextU(rng: Mulberry32): number {
  if (rng === null || typeof rng !== "object" || typeof rng.nextU32 !== "function") throw new TypeError(`nextU: rng must be a Mulberry32 (recordRng's), got ${describeValue(rng)}`);
  return uFromU32(rng.nextU32());
}

/** The sampling settings of a dataset's metadata. */
export function metaSampling(meta: DatasetMeta): SamplingSettings {
  if (meta === null || typeof meta !== "object" || meta.sampling === null || typeof meta.sampling !== "object") throw new TypeError(`metaSampling: meta must be a dataset's metadata (datasetMeta or readDatasetMeta), got ${describeValue(meta)}`);
  return { temperature: meta.sampling.temperature, topK: meta.sampling.topK, topP: meta.sampling.topP };
}

/** The prompt [0, count) that record `index` continues, and which of its samples it is. */
export function recordPrompt(meta: DatasetMeta, index: number): { prompt: number; sample: number } {
  const total = totalRecords(meta);
  if (!Number.isInteger(index) || index < 0 || index >= total) throw new RangeError(`recordPrompt: index must be an integer in [0, ${total}), got ${describeValue(index)}`);
  return { prompt: Math.floor(index / meta.samplesPerPrompt), sample: index % meta.samplesPerPrompt };
}

/**
 * Samples one completion after a prefilled prompt: `cache` holds the
 * prompt's keys and values and `logits` the prompt's last row. Stops after
 * BOS (which is kept: it is the end-of-text target), after maxSteps sampled
 * tokens, or when the next position would reach seqLen.
 */
function complete(model: Transformer, cache: KVCache, meta: DatasetMeta, prompt: readonly number[], logits: Float32Array, rng: Mulberry32): DatasetRecord {
  const sampling = metaSampling(meta);
  const tokens = prompt.slice();
  const left: number[] = [];
  const right: number[] = [];
  for (;;) {
    const P = samplingDistribution(logits, sampling);
    const u = nextU(rng);
    const token = pick(u, P);
    const [l, r] = binOf(P, token);
    if (!(l <= u && u < r)) throw new Error(`pregenerate: u = ${u} picked token ${token} whose bin is [${l}, ${r}): pick and binOf disagree (a library bug)`);
    tokens.push(token);
    left.push(l);
    right.push(r);
    const pos = tokens.length - 1; // where the new token would be read
    if (token === BOS || left.length >= meta.maxSteps || pos >= meta.seqLen) break;
    logits = model.forward({ tokens: [token], positions: [pos] }, cache);
  }
  return { promptLength: prompt.length, tokens: Int32Array.from(tokens), left: Float32Array.from(left), right: Float32Array.from(right) };
}

/**
 * KV cache rows a record needs, whatever the model's seqLen: the longest
 * prompt plus the sampled tokens fed back (at most maxSteps).
 */
function cacheRows(model: Transformer, meta: DatasetMeta, prompts: readonly (readonly number[])[]): number {
  const longest = prompts.reduce((a, p) => Math.max(a, p.length), 1);
  return Math.min(model.config.seqLen, longest + meta.maxSteps);
}

/** Prefills `prompt` into an emptied cache; returns its last row's logits. */
function prefill(model: Transformer, cache: KVCache, prompt: readonly number[]): Float32Array {
  cache.crop(0);
  const n = prompt.length;
  const logits = model.forward({ tokens: prompt, positions: Array.from({ length: n }, (_, i) => i) }, cache);
  return logits.slice((n - 1) * model.config.vocabSize, n * model.config.vocabSize);
}

/** PregenerateOptions, checked: an object of the known keys with a function, a signal and a positive integer. */
function checkPregenerateOptions(options: unknown): asserts options is PregenerateOptions {
  if (!isPlainObject(options)) throw new TypeError(`pregenerate: options must be an object ({ onProgress, signal, syncEvery }), got ${describeValue(options)}`);
  const o = options as Record<string, unknown>;
  for (const key of Object.keys(o)) if (!["onProgress", "signal", "syncEvery"].includes(key)) throw new RangeError(`pregenerate: unknown option ${JSON.stringify(key)}; the options are onProgress, signal and syncEvery`);
  if (o.onProgress !== undefined && typeof o.onProgress !== "function") throw new TypeError(`pregenerate: onProgress must be a function, got ${describeValue(o.onProgress)}`);
  if (o.signal !== undefined && (o.signal === null || typeof o.signal !== "object" || typeof (o.signal as { aborted?: unknown }).aborted !== "boolean")) throw new TypeError(`pregenerate: signal must be an AbortSignal, got ${describeValue(o.signal)}`);
  if (o.syncEvery !== undefined) checkPositiveInteger(o.syncEvery, "pregenerate", "syncEvery");
}

/** A PromptSet: a source name and at least one prompt of 1 to seqLen token ids in [0, vocabSize). */
function checkPromptSet(prompts: unknown, where: string, vocabSize: number, seqLen: number): asserts prompts is PromptSet {
  const p = prompts as Partial<PromptSet> | null;
  if (p === null || typeof p !== "object" || typeof p.source !== "string" || !Array.isArray(p.tokens)) throw new TypeError(`${where}: prompts must be a PromptSet { source: string, tokens: number[][] } (e.g. bosPrompts()), got ${describeValue(prompts)}`);
  p.tokens.forEach((t, i) => {
    const ids = checkTokens(t, vocabSize, where, `prompt ${i}`);
    if (ids.length < 1 || ids.length > seqLen) throw new RangeError(`${where}: prompt ${i} has ${ids.length} tokens; it needs 1 to ${seqLen} (the model's seqLen) to leave room for a sampled token`);
  });
}

/** Refuses a model (its shape, its backend) or prompts other than those the dataset's header names. */
function checkModelAndPrompts(model: Transformer, meta: DatasetMeta, prompts: PromptSet, where: string): void {
  if (model === null || typeof model !== "object" || model.config === null || typeof model.config !== "object" || typeof model.forward !== "function") throw new TypeError(`${where}: model must be a Transformer, got ${describeValue(model)}`);
  if (meta === null || typeof meta !== "object" || typeof meta.sampling !== "object" || meta.sampling === null) throw new TypeError(`${where}: meta must be a dataset's metadata (datasetMeta), got ${describeValue(meta)}`);
  if (prompts === null || typeof prompts !== "object" || !Array.isArray(prompts.tokens)) throw new TypeError(`${where}: prompts must be a PromptSet { source, tokens } (e.g. bosPrompts()), got ${describeValue(prompts)}`);
  const { vocabSize, seqLen } = model.config;
  if (meta.vocabSize !== vocabSize || meta.seqLen !== seqLen) {
    throw new Error(`pregenerate: the dataset is for vocabSize ${meta.vocabSize} and seqLen ${meta.seqLen}, the model has ${vocabSize} and ${seqLen}`);
  }
  const backend = model.backend.description;
  if (meta.backend !== backend) {
    const sampledOn = meta.backend === undefined ? "an unrecorded backend (a version 1 dataset)" : JSON.stringify(meta.backend);
    throw new Error(`pregenerate: the dataset's records were sampled on ${sampledOn}, the model runs on ${JSON.stringify(backend)}; the teacher's samples are bit-exact per backend only, so its records would not match the file's`);
  }
  if (prompts.source !== meta.prompts.source || prompts.tokens.length !== meta.prompts.count || promptsDigest(prompts.tokens) !== meta.prompts.sha256) {
    throw new Error(`pregenerate: the prompts (${prompts.source}, ${prompts.tokens.length}) are not the ones the dataset's header names (${meta.prompts.source}, ${meta.prompts.count})`);
  }
  prompts.tokens.forEach((p, i) => {
    if (p.length < 1 || p.length > seqLen) throw new RangeError(`pregenerate: prompt ${i} has ${p.length} tokens; it needs 1 to ${seqLen} (the model's seqLen) to leave room for a sampled token`);
    const bad = p.findIndex((t: number) => !Number.isInteger(t) || t < 0 || t >= vocabSize);
    if (bad >= 0) throw new RangeError(`pregenerate: prompt ${i} token ${bad} is ${p[bad]}, outside the vocabulary [0, ${vocabSize})`);
  });
}

/** Record `index` of a dataset with `meta`, generated on its own (what pregenerate appends at that index). */
export function generateRecord(model: Transformer, meta: DatasetMeta, prompts: PromptSet, index: number): DatasetRecord {
  checkModelAndPrompts(model, meta, prompts, "generateRecord");
  if (!Number.isInteger(index) || index < 0 || index >= totalRecords(meta)) throw new RangeError(`generateRecord: index must be in [0, ${totalRecords(meta)}), got ${index}`);
  const prompt = prompts.tokens[recordPrompt(meta, index).prompt];
  const cache = model.newCache(cacheRows(model, meta, [prompt]));
  try {
    return complete(model, cache, meta, prompt, prefill(model, cache, prompt), recordRng(meta.seed, index));
  } finally {
    cache.free();
  }
}

export interface PregenerateProgress {
  /** Records in the file. */
  done: number;
  total: number;
  /** Records and sampled tokens generated by this call, and its seconds so far. */
  generated: number;
  tokens: number;
  seconds: number;
}

export interface PregenerateOptions {
  /** Called once before the first record and after every record. */
  onProgress?: (p: PregenerateProgress) => void;
  /** Stop after the current record (Ctrl-C); the file stays complete up to it. */
  signal?: AbortSignal;
  /** fsync after this many records (default 16), or 2 seconds, whichever comes first. */
  syncEvery?: number;
}

export interface PregenerateSummary extends PregenerateProgress {
  /** Whether the signal stopped the run before the file was complete. */
  stopped: boolean;
}

/**
 * Appends to `writer` the records it still lacks, in index order: record i
 * continues prompt floor(i / samplesPerPrompt) with u's from
 * recordRng(seed, i). Every sampled token's bin is checked to hold its u.
 * The caller built `model` from the checkpoint whose checksum the writer's
 * metadata holds, on the backend it names (another is refused), and owns
 * (closes) the writer.
 */
export async function pregenerate(model: Transformer, writer: DatasetWriter, prompts: PromptSet, options: PregenerateOptions = {}): Promise<PregenerateSummary> {
  if (writer === null || typeof writer !== "object" || typeof writer.append !== "function") throw new TypeError(`pregenerate: writer must be a DatasetWriter (DatasetWriter.open), got ${describeValue(writer)}`);
  checkPregenerateOptions(options);
  const meta = writer.meta;
  checkModelAndPrompts(model, meta, prompts, "pregenerate");
  const total = totalRecords(meta);
  const syncEvery = options.syncEvery ?? 16;
  const start = performance.now();
  let generated = 0,
    tokens = 0,
    sinceSync = 0,
    lastSync = start;
  const progress = (): PregenerateProgress => ({ done: writer.records, total, generated, tokens, seconds: (performance.now() - start) / 1000 });
  options.onProgress?.(progress());

  const cache = model.newCache(cacheRows(model, meta, prompts.tokens));
  try {
    let prefilled = -1;
    let promptLogits: Float32Array = new Float32Array(0);
    while (writer.records < total && !options.signal?.aborted) {
      const index = writer.records;
      const p = recordPrompt(meta, index).prompt;
      const prompt = prompts.tokens[p];
      // Samples of one prompt share its prefill: crop the cache back to the prompt.
      if (p !== prefilled) {
        promptLogits = prefill(model, cache, prompt);
        prefilled = p;
      } else {
        cache.crop(prompt.length);
      }
      const record = complete(model, cache, meta, prompt, promptLogits, recordRng(meta.seed, index));
      writer.append(record);
      generated++;
      tokens += record.left.length;
      sinceSync++;
      const now = performance.now();
      if (sinceSync >= syncEvery || now - lastSync >= 2000) {
        writer.sync();
        sinceSync = 0;
        lastSync = now;
      }
      options.onProgress?.(progress());
      // Let signal handlers (Ctrl-C) run between records.
      await new Promise((resolve) => setImmediate(resolve));
    }
  } finally {
    cache.free();
    writer.sync();
  }
  return { ...progress(), stopped: writer.records < total };
}
