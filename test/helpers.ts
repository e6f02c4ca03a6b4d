import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import fc from "fast-check";
import { expect } from "vitest";
import type { Backend, Buffer } from "../src/backends/backend.js";
import { JsBackend } from "../src/backends/js/index.js";
import { createBackend } from "../src/backends/registry.js";
import type { Io } from "../src/cli/io.js";
import { main } from "../src/cli/main.js";
import { lastFlagWins } from "./flag-args.js";
import { writeCheckpoint } from "../src/io/checkpoint.js";
import { randomCheckpoint } from "../src/model/init.js";
import { FileFormatError } from "../src/io/errors.js";
import { Mulberry32 } from "../src/util/prng.js";
import { Tokenizer } from "../src/io/tokenizer.js";
import type { Transformer } from "../src/model/transformer.js";
import { decodeAR } from "../src/ptp/decode/decode-ar.js";
import { XorShiftAux } from "../src/sampling/aux.js";
import type { ModelConfig } from "../src/model/config.js";
import type { Checkpoint } from "../src/model/weights.js";

/** The repository root, and files of ../shared read in place. */
export const ROOT = resolve(import.meta.dirname, "..");
export const SHARED = resolve(ROOT, "../shared");
export const STORIES_260K = resolve(SHARED, "models/stories260K.bin");
export const TOK_512 = resolve(SHARED, "models/tok512.bin");
export const GOLDEN = resolve(SHARED, "golden/stories260K_llama2c.json");

/**
 * The backends every engine property runs on: js, wasm (the build the
 * runtime picks: relaxed SIMD under vitest) and wasm's plain SIMD build.
 */
export const BACKENDS = ["js", "wasm", "wasm-simd"] as const;
export type BackendLabel = (typeof BACKENDS)[number];

const instances = new Map<string, Promise<Backend>>();
/** One backend instance per label, shared by a test file. */
export function backend(label: BackendLabel): Promise<Backend> {
  if (!instances.has(label)) {
    instances.set(label, label === "wasm-simd" ? createBackend("wasm", { wasmBuild: "simd" }) : createBackend(label));
  }
  return instances.get(label)!;
}

/** Arbitraries of a tiny model shape's fields, each from 1 to its given maximum (head size = 2 halfHead, nHeads = group nKvHeads). */
export function shapeArbs(max: { halfHead: number; nKvHeads: number; group: number; nLayers: number; hiddenDim: number }) {
  return {
    halfHead: fc.integer({ min: 1, max: max.halfHead }),
    nKvHeads: fc.integer({ min: 1, max: max.nKvHeads }),
    group: fc.integer({ min: 1, max: max.group }),
    nLayers: fc.integer({ min: 1, max: max.nLayers }),
    hiddenDim: fc.integer({ min: 1, max: max.hiddenDim }),
  };
}

/**
 * Random tiny Llama configs: head sizes 2..8 (even), 1..4 KV heads with
 * 1..3 query heads each (so GQA and MHA both occur), 1..3 layers, shared or
 * separate classifier.
 */
export const tinyConfig: fc.Arbitrary<ModelConfig> = fc
  .record({
    ...shapeArbs({ halfHead: 4, nKvHeads: 4, group: 3, nLayers: 3, hiddenDim: 40 }),
    vocabSize: fc.integer({ min: 3, max: 40 }),
    sharedClassifier: fc.boolean(),
  })
  .map(({ halfHead, nKvHeads, group, nLayers, hiddenDim, vocabSize, sharedClassifier }) => {
    const nHeads = nKvHeads * group;
    return { dim: nHeads * halfHead * 2, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, seqLen: 64, sharedClassifier, normEps: 1e-5, ropeTheta: 10000 };
  });

/** A random checkpoint of a random tiny config. */
export const tinyCheckpoint: fc.Arbitrary<Checkpoint> = fc.tuple(tinyConfig, fc.integer({ min: 1, max: 1 << 30 })).map(([config, seed]) => randomCheckpoint(config, seed));

/** Bit-exact equality of float arrays (Object.is on every element, so -0 != 0 and NaN == NaN). */
export function firstBitDifference(a: ArrayLike<number>, b: ArrayLike<number>): string | null {
  if (a.length !== b.length) return `lengths differ: ${a.length} vs ${b.length}`;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return `element ${i}: ${a[i]} vs ${b[i]}`;
  return null;
}

/** Largest |a - b| / (1 + |b|) over the elements. */
export function maxRelativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / (1 + Math.abs(b[i])));
  return worst;
}

/** A seeded uniform [0, 1) generator for test data (fast-check seeds fix the data). */
export function rng(seed: number): () => number {
  const g = new Mulberry32(seed);
  return () => g.nextFloat();
}

/** The error thrown by fn, checked to be a FileFormatError whose message starts with `name: `. */
export function formatError(fn: () => unknown, name: string): FileFormatError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(FileFormatError);
    expect((err as Error).message.startsWith(`${name}: `)).toBe(true);
    expect((err as FileFormatError).path).toBe(name);
    return err as FileFormatError;
  }
  throw new Error(`expected a FileFormatError for ${name}, but nothing was thrown`);
}

/** Runs the CLI in-process and captures what it writes. */
function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return all;
}

export async function runCli(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  // stdout's bytes decoded once at the end, as a terminal does: a UTF-8 character may come in several writes.
  const out: Uint8Array[] = [];
  let stderr = "";
  const io: Io = {
    stdout: (d) => void out.push(typeof d === "string" ? new TextEncoder().encode(d) : Uint8Array.from(d)),
    stderr: (d) => void (stderr += d),
  };
  const code = await main(argv, io);
  return { code, stdout: new TextDecoder().decode(concatBytes(out)), stderr };
}

export interface GoldenCase {
  prompt: string;
  temperature: number;
  topp: number;
  seed: number;
  steps: number;
  output: string;
}

/** What llama2.c's run prints for a golden case, computed with decodeAR on `model`: the pieces it prints, then "\n". */
export function goldenText(model: Transformer, tokenizer: Tokenizer, c: GoldenCase): string {
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
  return Buffer.concat(chunks).toString("utf8") + "\n";
}

/**
 * A js backend whose matmul computes every output of a several-row call as
 * `dot(X, W, xOffset, wOffset, K)` (a one-row call stays the reference's):
 * mutants that are within tolerance but not batch-invariant.
 */
export class RowsMatmulMutant extends JsBackend {
  constructor(private readonly dot: (X: Float32Array, W: Float32Array, xo: number, wo: number, K: number) => number) {
    super();
  }
  override matmul(y: Buffer, x: Buffer, w: Buffer, M: number, K: number, N: number): void {
    if (M === 1) return super.matmul(y, x, w, M, K, N);
    const X = this.download(x),
      W = this.download(w),
      Y = new Float32Array(M * N);
    for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) Y[m * N + n] = this.dot(X, W, m * K, n * K, K);
    this.upload(y, Y);
  }
}

/**
 * A fresh temporary folder (`prefix`) holding a tiny random teacher (seed 11,
 * vocab 512 for TOK_512) and three prompts, with the path its pregenerated
 * dataset goes to and the pregenerate arguments that make it.
 */
export function pregenFixture(prefix: string) {
  const tmp = mkdtempSync(join(tmpdir(), prefix));
  const TEACHER = join(tmp, "teacher.bin"),
    PROMPTS = join(tmp, "prompts.txt"),
    DATA = join(tmp, "data.ptpd");
  const config = { dim: 16, hiddenDim: 24, nLayers: 2, nHeads: 2, nKvHeads: 1, vocabSize: 512, seqLen: 64, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };
  writeCheckpoint(TEACHER, randomCheckpoint(config, 11));
  writeFileSync(PROMPTS, "Once upon a time\nThe cat sat\nLily went to the park\n");
  const pregenArgs = (out: string, ...extra: string[]) => lastFlagWins(["pregenerate", "--model", TEACHER, "--tokenizer", TOK_512, "--prompts", PROMPTS, "--out", out, "--samples", "2", "--steps", "24", "--temperature", "0.7", "--top-k", "0", "--top-p", "1", ...extra]);
  /** Makes the fixture's dataset with `ptp pregenerate`, once. */
  const dataset = async () => {
    if (existsSync(DATA)) return;
    const r = await runCli(...pregenArgs(DATA));
    if (r.code !== 0) throw new Error(`pregenerate failed (exit ${r.code}): ${r.stderr}`);
  };
  return { tmp, TEACHER, PROMPTS, DATA, config, pregenArgs, dataset };
}

/** Calls f and returns what it threw (failing when it threw nothing). */
export function thrown(f: () => unknown): Error {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a throw");
}

/** The pid of a process that has exited (for files named after a writer that is gone: a stale lock, an orphaned temporary). */
export async function exitedPid(): Promise<number> {
  const c = spawn(process.execPath, ["-e", "0"]);
  await new Promise((res) => c.on("exit", res));
  return c.pid!;
}
