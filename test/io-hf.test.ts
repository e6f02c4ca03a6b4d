import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { readCheckpoint } from "../src/io/checkpoint.js";
import { randomCheckpoint } from "../src/model/init.js";
import { modelConfigFromHf, modelConfigToHf } from "../src/io/hf-config.js";
import { hfTensors, permuteRowsFromHf, permuteRowsToHf, readHfCheckpoint, writeHfCheckpoint } from "../src/io/hf-checkpoint.js";
import { llama2cTokenizerToJson } from "../src/io/hf-tokenizer.js";
import { loadModel, loadTokenizer, readModel, readModelConfig } from "../src/io/model-file.js";
import { createBackend } from "../src/backends/registry.js";
import type { Backend } from "../src/backends/backend.js";
import { teacherChecksum } from "../src/ptp/files/teacher-checksum.js";
import { halfToFloat } from "../src/io/safetensors.js";
import { printsPiece, Tokenizer } from "../src/io/tokenizer.js";
import { chunkBytes, tokenBytes, type PieceDecoder } from "../src/ptp/chunk-text.js";
import type { ModelConfig } from "../src/model/config.js";
import { Transformer } from "../src/model/transformer.js";
import type { Checkpoint } from "../src/model/weights.js";
import { backend, firstBitDifference, formatError, GOLDEN, goldenText, ROOT, runCli, STORIES_260K, tinyCheckpoint, TOK_512, type GoldenCase } from "./helpers.js";

const tmp = mkdtempSync(join(tmpdir(), "ptp-hf-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let counter = 0;
const freshDir = (): string => join(tmp, `m${counter++}`);

/** Logits of every position of a fixed token sequence, one block. */
async function logitsOf(ckpt: Checkpoint): Promise<Float32Array> {
  const model = new Transformer(await backend("js"), ckpt);
  const n = Math.min(6, ckpt.config.seqLen);
  const tokens = Array.from({ length: n }, (_, i) => (i * 7 + 1) % ckpt.config.vocabSize);
  const out = Float32Array.from(model.forward({ tokens, positions: tokens.map((_, i) => i) }, model.newCache()));
  model.dispose();
  return out;
}

function sameWeights(a: Checkpoint, b: Checkpoint): void {
  expect(b.config).toEqual(a.config);
  expect(firstBitDifference(b.weights.tokenEmbedding, a.weights.tokenEmbedding)).toBeNull();
  expect(firstBitDifference(b.weights.rmsFinal, a.weights.rmsFinal)).toBeNull();
  expect(firstBitDifference(b.weights.wcls, a.weights.wcls)).toBeNull();
  a.weights.layers.forEach((la, l) => {
    for (const k of Object.keys(la) as (keyof typeof la)[]) expect(firstBitDifference(b.weights.layers[l][k], la[k]), `layer ${l} ${k}`).toBeNull();
  });
}

/** A safetensors file written by hand (any dtype, raw little-endian bytes), independent of src/io/safetensors.ts. */
function rawSafetensors(tensors: { name: string; dtype: string; shape: number[]; bytes: Uint8Array }[]): Uint8Array {
  let offset = 0;
  const header: Record<string, unknown> = {};
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes.length] };
    offset += t.bytes.length;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const t of tensors) out.set(t.bytes, at), (at += t.bytes.length);
  return out;
}

describe("HF config mapping", () => {
  const base = modelConfigToHf({ dim: 16, hiddenDim: 24, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 10, seqLen: 32, sharedClassifier: false, normEps: 1e-6, ropeTheta: 500000 });

  it("HF-CONFIG: maps every field and back", () => {
    const c = modelConfigFromHf(base, "config.json");
    expect(c).toEqual({ dim: 16, hiddenDim: 24, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 10, seqLen: 32, sharedClassifier: false, normEps: 1e-6, ropeTheta: 500000 });
    // HF's defaults for absent optional fields
    const minimal = { hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 4, vocab_size: 10 };
    expect(modelConfigFromHf({ ...base, rope_scaling: { rope_type: "default" } }, "c").ropeTheta).toBe(500000);
    // transformers >= 5 keeps theta in "rope_parameters", with no top-level rope_theta.
    const { rope_theta: _theta, ...noTheta } = base;
    expect(modelConfigFromHf({ ...noTheta, rope_parameters: { rope_type: "default", rope_theta: 250000 } }, "c").ropeTheta).toBe(250000);
    expect(modelConfigFromHf({ ...base, rope_parameters: { rope_type: "default", rope_theta: 500000 } }, "c").ropeTheta).toBe(500000);
    expect(modelConfigFromHf(minimal, "c")).toEqual({ dim: 16, hiddenDim: 24, nLayers: 2, nHeads: 4, nKvHeads: 4, vocabSize: 10, seqLen: 2048, sharedClassifier: false, normEps: 1e-6, ropeTheta: 10000 });
  });

  it("HF-CONFIG-REFUSE: unsupported fields are refused by name", () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ rope_scaling: { type: "linear", factor: 2 } }, /"rope_scaling".*not supported/],
      [{ rope_scaling: { rope_type: "llama3", factor: 8 } }, /"rope_scaling".*not supported/],
      [{ rope_parameters: { rope_type: "yarn", rope_theta: 10000, factor: 4 } }, /"rope_parameters".*not supported/],
      [{ rope_parameters: { rope_type: "default", rope_theta: 10000 } }, /"rope_theta" 500000 and "rope_parameters.rope_theta" 10000 disagree/],
      [{ attention_bias: true }, /"attention_bias"/],
      [{ mlp_bias: true }, /"mlp_bias"/],
      [{ hidden_act: "gelu" }, /"hidden_act"/],
      [{ model_type: "mistral" }, /model_type "mistral"/],
      [{ architectures: ["LlamaForSequenceClassification"] }, /architectures/],
      [{ head_dim: 8 }, /"head_dim"/],
      [{ bos_token_id: 128000 }, /"bos_token_id"/],
      [{ quantization_config: { bits: 4 } }, /"quantization_config"/],
      [{ hidden_size: 0 }, /"hidden_size" must be a positive integer/],
      [{ num_key_value_heads: 3 }, /nKvHeads \(3\) must divide nHeads/],
      [{ vocab_size: undefined }, /missing "vocab_size"/],
      [{ partial_rotary_factor: 0.5 }, /"partial_rotary_factor": 0.5 is not supported/],
      [{ pretraining_tp: 2 }, /"pretraining_tp": 2 is not supported/],
      [{ num_hidden_layers: 2 ** 31 }, /nLayers must be <= 4096, got 2147483648/],
    ];
    for (const [patch, message] of cases) {
      const e = formatError(() => modelConfigFromHf({ ...base, ...patch }, "dir/config.json"), "dir/config.json");
      expect(e.message).toMatch(message);
    }
  });

  it("HF-CONFIG-TOKEN-IDS: eos_token_id (an id, a list of ids or null) and bos_token_id must lie in [0, vocab_size); anything else is refused naming config.json and the field", () => {
    const expected = modelConfigFromHf(base, "c");
    for (const patch of [{ eos_token_id: null }, { eos_token_id: undefined }, { eos_token_id: 0 }, { eos_token_id: 9 }, { eos_token_id: [2, 9] }, { eos_token_id: [] }, { bos_token_id: null }]) {
      expect(modelConfigFromHf({ ...base, ...patch }, "c"), JSON.stringify(patch)).toEqual(expected);
    }
    const ids = "must be null or a token id or a list of token ids in \\[0, vocab_size = 10\\), found";
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ eos_token_id: 10 }, new RegExp(`"eos_token_id" ${ids} 10$`)],
      [{ eos_token_id: -1 }, new RegExp(`"eos_token_id" ${ids} -1$`)],
      [{ eos_token_id: 2.5 }, new RegExp(`"eos_token_id" ${ids} 2.5$`)],
      [{ eos_token_id: "2" }, new RegExp(`"eos_token_id" ${ids} "2"$`)],
      [{ eos_token_id: [2, 10] }, new RegExp(`"eos_token_id" ${ids} \\[2,10\\]$`)],
      [{ eos_token_id: [2, null] }, new RegExp(`"eos_token_id" ${ids} \\[2,null\\]$`)],
      [{ eos_token_id: { id: 2 } }, new RegExp(`"eos_token_id" ${ids} \\{"id":2\\}$`)],
      [{ eos_token_id: 2 ** 53 }, new RegExp(`"eos_token_id" ${ids} 9007199254740992$`)],
      [{ vocab_size: 1, bos_token_id: 1, eos_token_id: null }, /"bos_token_id" must be null or a token id in \[0, vocab_size = 1\), found 1$/],
    ];
    for (const [patch, message] of cases) {
      expect(formatError(() => modelConfigFromHf({ ...base, ...patch }, "dir/config.json"), "dir/config.json").message, JSON.stringify(patch)).toMatch(message);
    }
    // A model whose vocabulary cannot hold BOS or EOS is written with null there, so it reads back.
    for (const vocabSize of [1, 2, 3]) {
      const c = { ...modelConfigFromHf(base, "c"), vocabSize };
      expect(modelConfigFromHf(modelConfigToHf(c), "c")).toEqual(c);
    }
  });
});

describe("q/k permutation", () => {
  it("HF-PERMUTE: HF's half-split RoPE on permuted rows equals llama2.c's interleaved RoPE, and the permutation inverts", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 0, max: 50 }), (heads, half, cols, pos) => {
        const hs = 2 * half;
        const w = Float32Array.from({ length: heads * hs * cols }, (_, i) => Math.sin(i * 1.3 + 0.1));
        const hf = permuteRowsToHf(w, heads, hs, cols);
        expect(firstBitDifference(permuteRowsFromHf(hf, heads, hs, cols), w)).toBeNull();
        const x = Float64Array.from({ length: cols }, (_, i) => Math.cos(i + 0.5));
        const mv = (m: Float32Array) => Array.from({ length: heads * hs }, (_, r) => x.reduce((s, xi, c) => s + m[r * cols + c] * xi, 0));
        const q = mv(w),
          qh = mv(hf);
        for (let h = 0; h < heads; h++) {
          for (let i = 0; i < half; i++) {
            const angle = pos * Math.pow(10000, -(2 * i) / hs);
            const [c, s] = [Math.cos(angle), Math.sin(angle)];
            // llama2.c: pair (2i, 2i+1); HF rotate_half: pair (i, i + hs/2), same frequency
            const a0 = q[h * hs + 2 * i],
              a1 = q[h * hs + 2 * i + 1];
            const b0 = qh[h * hs + i],
              b1 = qh[h * hs + half + i];
            expect(b0 * c - b1 * s).toBeCloseTo(a0 * c - a1 * s, 12);
            expect(b1 * c + b0 * s).toBeCloseTo(a1 * c + a0 * s, 12);
          }
        }
      }),
      { numRuns: 40 },
    );
  });
});

describe("HF folders round-trip", () => {
  it("HF-ROUNDTRIP: a random tiny model written as an HF folder (single file or sharded) loads to the same weights and bit-identical logits", async () => {
    await fc.assert(
      fc.asyncProperty(tinyCheckpoint, fc.boolean(), async (ckpt, sharded) => {
        const dir = freshDir();
        writeHfCheckpoint(dir, ckpt, sharded ? { maxShardBytes: 600 } : {});
        if (sharded) expect(existsSync(join(dir, "model.safetensors.index.json"))).toBe(true);
        const back = readModel(dir);
        sameWeights(ckpt, back);
        expect(firstBitDifference(await logitsOf(back), await logitsOf(ckpt))).toBeNull();
      }),
      { numRuns: 25 },
    );
  });

  it("HF-BOTH-FILES: a folder holding both model.safetensors and an index of other shards reads model.safetensors, as transformers' from_pretrained does; without it, the shards", () => {
    const config: ModelConfig = { dim: 8, hiddenDim: 12, nLayers: 2, nHeads: 2, nKvHeads: 1, vocabSize: 11, seqLen: 16, sharedClassifier: false, normEps: 1e-5, ropeTheta: 10000 };
    const single = randomCheckpoint(config, 1),
      sharded = randomCheckpoint(config, 2);
    const dir = freshDir(),
      other = freshDir();
    writeHfCheckpoint(dir, sharded, { maxShardBytes: 600 });
    writeHfCheckpoint(other, single);
    writeFileSync(join(dir, "model.safetensors"), readFileSync(join(other, "model.safetensors")));
    expect(existsSync(join(dir, "model.safetensors.index.json"))).toBe(true);
    sameWeights(single, readHfCheckpoint(dir));
    rmSync(join(dir, "model.safetensors"));
    sameWeights(sharded, readHfCheckpoint(dir));
  });

  it("HF-HALF: F16 and BF16 weights in shards decode exactly like their F32 twin", async () => {
    const config: ModelConfig = { dim: 8, hiddenDim: 12, nLayers: 2, nHeads: 2, nKvHeads: 1, vocabSize: 11, seqLen: 16, sharedClassifier: false, normEps: 1e-5, ropeTheta: 10000 };
    const shapes = [...hfTensors(randomCheckpoint(config, 1)).entries()].map(([name, t]) => ({ name, shape: t.shape }));
    for (const dtype of ["F16", "BF16"] as const) {
      let seed = 12345;
      const next = () => ((seed = (seed * 1103515245 + 12345) >>> 0), seed >>> 8);
      const half: { name: string; dtype: string; shape: number[]; bytes: Uint8Array }[] = [];
      const full: typeof half = [];
      for (const { name, shape } of shapes) {
        const n = shape.reduce((a, b) => a * b, 1);
        const bits = new Uint16Array(n);
        const floats = new Float32Array(n);
        for (let i = 0; i < n; i++) {
          // sign, an exponent giving magnitudes around 2^-3..2^0, random mantissa
          const sign = next() & 1;
          if (dtype === "F16") {
            bits[i] = (sign << 15) | ((12 + (next() % 4)) << 10) | (next() & 0x3ff);
            floats[i] = halfToFloat(bits[i]);
          } else {
            bits[i] = (sign << 15) | ((124 + (next() % 4)) << 7) | (next() & 0x7f);
            floats[i] = new Float32Array(new Uint32Array([bits[i] << 16]).buffer)[0];
          }
        }
        half.push({ name, dtype, shape, bytes: new Uint8Array(bits.buffer) });
        full.push({ name, dtype: "F32", shape, bytes: new Uint8Array(floats.buffer) });
      }
      const hfConfig = JSON.stringify({ ...modelConfigToHf(config), torch_dtype: dtype === "F16" ? "float16" : "bfloat16" });
      // the half model in three shards, with an index
      const halfDir = freshDir();
      mkdirSync(halfDir);
      writeFileSync(join(halfDir, "config.json"), hfConfig);
      const third = Math.ceil(half.length / 3);
      const weightMap: Record<string, string> = {};
      for (let s = 0; s < 3; s++) {
        const part = half.slice(s * third, (s + 1) * third);
        const file = `model-0000${s + 1}-of-00003.safetensors`;
        writeFileSync(join(halfDir, file), rawSafetensors(part));
        for (const t of part) weightMap[t.name] = file;
      }
      writeFileSync(join(halfDir, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map: weightMap }));
      const fullDir = freshDir();
      mkdirSync(fullDir);
      writeFileSync(join(fullDir, "config.json"), hfConfig);
      writeFileSync(join(fullDir, "model.safetensors"), rawSafetensors(full));
      const a = readHfCheckpoint(halfDir),
        b = readHfCheckpoint(fullDir);
      sameWeights(b, a);
      expect(firstBitDifference(await logitsOf(a), await logitsOf(b))).toBeNull();
      // and the llama2.c twin, through the project's own convert command
      const bin = join(tmp, `twin-${dtype}.bin`);
      expect((await runCli("convert", "--model", halfDir, "--to", "llama2c", "--out", bin)).code).toBe(0);
      expect(firstBitDifference(await logitsOf(readCheckpoint(bin)), await logitsOf(b))).toBeNull();
    }
  });
});

describe("HF-LOAD-MODEL: loadModel reads a Hugging Face folder straight into the backend's buffers", () => {
  const live = (b: Backend): number => (b as unknown as { liveBytes?: number }).liveBytes ?? 0;
  /**
   * `ckpt` as an HF folder of `dtype` tensors in `shards` files, and its
   * twin read from a folder of one F32 file holding the same values (halves
   * decoded here, by hand: the reference does not go through the decoder
   * under test).
   */
  function folderOf(ckpt: Checkpoint, dtype: "F32" | "F16" | "BF16", shards: number): { dir: string; twin: Checkpoint } {
    type Raw = { name: string; dtype: string; shape: number[]; bytes: Uint8Array };
    const tensors: Raw[] = [];
    const exact: Raw[] = [];
    for (const [name, t] of hfTensors(ckpt)) {
      const data = t.data as Float32Array;
      if (dtype === "F32") {
        const bytes = new Uint8Array(data.slice().buffer);
        tensors.push({ name, dtype, shape: t.shape, bytes });
        exact.push({ name, dtype, shape: t.shape, bytes });
        continue;
      }
      const bits = new Uint16Array(data.length);
      const f32bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
      const back = new Float32Array(data.length);
      for (let i = 0; i < data.length; i++) {
        if (dtype === "BF16") {
          bits[i] = f32bits[i] >>> 16;
          back[i] = new Float32Array(new Uint32Array([bits[i] << 16]).buffer)[0];
        } else {
          // A normal half near the float (its top 10 mantissa bits), magnitudes kept in 2^-14..2^15: (-1)^s 2^(e-15) (1 + m/1024).
          const e = Math.min(30, Math.max(1, ((f32bits[i] >>> 23) & 0xff) - 127 + 15));
          const m = (f32bits[i] >>> 13) & 0x3ff;
          bits[i] = ((f32bits[i] >>> 16) & 0x8000) | (e << 10) | m;
          back[i] = (bits[i] & 0x8000 ? -1 : 1) * 2 ** (e - 15) * (1 + m / 1024);
        }
      }
      tensors.push({ name, dtype, shape: t.shape, bytes: new Uint8Array(bits.buffer) });
      exact.push({ name, dtype: "F32", shape: t.shape, bytes: new Uint8Array(back.buffer) });
    }
    const write = (dir: string, raws: Raw[], files: number): void => {
      writeHfCheckpoint(dir, ckpt); // config.json
      rmSync(join(dir, "model.safetensors"), { force: true });
      rmSync(join(dir, "model.safetensors.index.json"), { force: true });
      const per = Math.ceil(raws.length / files);
      const weightMap: Record<string, string> = {};
      for (let s = 0; s < files; s++) {
        const part = raws.slice(s * per, (s + 1) * per);
        const file = files === 1 ? "model.safetensors" : `model-${s + 1}-of-${files}.safetensors`;
        writeFileSync(join(dir, file), rawSafetensors(part));
        for (const t of part) weightMap[t.name] = file;
      }
      if (files > 1) writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    };
    const dir = freshDir(),
      twinDir = freshDir();
    write(dir, tensors, shards);
    write(twinDir, exact, 1);
    return { dir, twin: readHfCheckpoint(twinDir) };
  }
  const logits = (m: Transformer): Float32Array => {
    const cache = m.newCache(8);
    const out = m.forward({ tokens: [1, 5, 9, 3], positions: [0, 1, 2, 3] }, cache);
    cache.free();
    return out;
  };

  it.each(["wasm", "js"] as const)(
    "HF-LOAD-MODEL (%s): F32, F16 and BF16 folders (one file and shards; tied and separate classifier; a BF16 embedding over 1 MiB, decoded in pieces) give readModel's config, logits and teacher checksum bit for bit, and dispose frees every buffer; readModelConfig reads config.json and the safetensors headers, no weight",
    async (name) => {
      const b = await createBackend(name, { threads: 1 });
      const shapes: ModelConfig[] = [
        { dim: 8, hiddenDim: 12, nLayers: 2, nHeads: 2, nKvHeads: 1, vocabSize: 11, seqLen: 16, sharedClassifier: false, normEps: 1e-5, ropeTheta: 10000 },
        { dim: 64, hiddenDim: 96, nLayers: 1, nHeads: 4, nKvHeads: 2, vocabSize: 9000, seqLen: 16, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 },
      ];
      for (const [i, config] of shapes.entries()) {
        for (const [dtype, shards] of [
          ["F32", 1],
          ["F16", 3],
          ["BF16", i === 1 ? 1 : 2],
        ] as const) {
          const { dir, twin } = folderOf(randomCheckpoint(config, 3 + i), dtype, shards);
          expect(readModelConfig(dir)).toEqual(twin.config);
          // A load, a call and a dispose first: what stays is the backend's own scratch, which later loads reuse.
          const warm = loadModel(b, dir);
          logits(warm);
          warm.dispose();
          const before = live(b);
          const ref = new Transformer(b, twin);
          const got = loadModel(b, dir);
          expect(got.config).toEqual(twin.config);
          expect(firstBitDifference(logits(got), logits(ref)), `${dtype} ${shards}`).toBeNull();
          expect(teacherChecksum(got)).toBe(teacherChecksum(twin));
          got.dispose();
          ref.dispose();
          expect(live(b)).toBe(before);
        }
      }
      // A folder whose weights are garbage: its config is refused as readModel refuses the folder (the headers are read with config.json), and loading it fails alike, leaving nothing behind.
      const { dir } = folderOf(randomCheckpoint(shapes[0], 1), "F32", 1);
      writeFileSync(join(dir, "model.safetensors"), "garbage that is no safetensors file");
      const before = live(b);
      const want = formatError(() => readModel(dir), join(dir, "model.safetensors")).message;
      expect(formatError(() => readModelConfig(dir), join(dir, "model.safetensors")).message).toBe(want);
      expect(formatError(() => loadModel(b, dir), join(dir, "model.safetensors")).message).toBe(want);
      expect(live(b)).toBe(before);
    },
  );

  it("HF-LOAD-MODEL: a NaN weight is readModel's FileFormatError (the folder, the tensor, the index) and the buffers read so far are freed", async () => {
    const b = await createBackend("wasm", { threads: 1 });
    const ckpt = randomCheckpoint({ dim: 8, hiddenDim: 12, nLayers: 2, nHeads: 2, nKvHeads: 1, vocabSize: 11, seqLen: 16, sharedClassifier: false, normEps: 1e-5, ropeTheta: 10000 }, 5);
    const dir = freshDir();
    writeHfCheckpoint(dir, ckpt);
    const tensors = [...hfTensors(ckpt).entries()].map(([name, t]) => ({ name, dtype: "F32", shape: t.shape, bytes: new Uint8Array((t.data as Float32Array).slice().buffer) }));
    const w2 = tensors.find((t) => t.name === "model.layers.1.mlp.down_proj.weight")!;
    new Float32Array(w2.bytes.buffer)[7] = Number.NaN;
    writeFileSync(join(dir, "model.safetensors"), rawSafetensors(tensors));
    const want = formatError(() => readModel(dir), dir).message;
    expect(want).toMatch(/tensor layer 1 w2 holds NaN at index 7/);
    const before = live(b);
    expect(formatError(() => loadModel(b, dir), dir).message).toBe(want);
    expect(live(b)).toBe(before);
  });
});

describe("stories260K as an HF folder", () => {
  const dir = freshDir();
  const golden: { cases: GoldenCase[] } = JSON.parse(readFileSync(GOLDEN, "utf8"));

  it("HF-STORIES: `ptp convert --to hf` then `--to llama2c` gives back the same weights", async () => {
    const r = await runCli("convert", "--model", STORIES_260K, "--to", "hf", "--out", dir);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/Hugging Face Llama folder/);
    const bin = join(tmp, "back.bin");
    expect((await runCli("convert", "--model", dir, "--to", "llama2c", "--out", bin)).code).toBe(0);
    sameWeights(readCheckpoint(STORIES_260K), readCheckpoint(bin));
    // no silent overwrite
    const again = await runCli("convert", "--model", dir, "--to", "llama2c", "--out", bin);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already exists; pass --force/);
    expect((await runCli("convert", "--model", dir, "--to", "llama2c", "--out", bin, "--force")).code).toBe(0);
  });

  it("HF-STORIES-GOLDEN: the HF folder generates llama2.c's golden outputs (library and CLI)", async () => {
    const ckpt = readHfCheckpoint(dir);
    const tokenizer = Tokenizer.load(TOK_512, ckpt.config.vocabSize);
    const model = new Transformer(await backend("wasm"), ckpt);
    for (const c of golden.cases) expect(goldenText(model, tokenizer, c)).toBe(c.output);
    model.dispose();
    const c = golden.cases[golden.cases.length - 1];
    const r = await runCli("generate", "--model", dir, "--tokenizer", TOK_512, "--prompt", c.prompt, "--steps", String(c.steps), "--temperature", String(c.temperature), "--top-p", String(c.topp), "--seed", String(c.seed), "--backend", "js");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(c.output);
  });

  it("HF-STORIES-PTP: `ptp generate --student` with the HF folder loads it into the backend, checks the shipped head against the checksum read from its buffers, and prints the llama2.c file's text", async () => {
    const head = join(ROOT, "demo", "stories260K-head.safetensors");
    const args = ["--tokenizer", TOK_512, "--student", head, "--prompt", "Once upon a time", "--steps", "60", "--temperature", "0.8", "--seed", "7", "--backend", "wasm", "--threads", "1"];
    const fromHf = await runCli("generate", "--model", dir, ...args);
    expect(fromHf.code, fromHf.stderr).toBe(0);
    expect(fromHf.stderr).toMatch(/equals AR:\s+yes/);
    const fromBin = await runCli("generate", "--model", STORIES_260K, ...args);
    expect(fromBin.code, fromBin.stderr).toBe(0);
    expect(fromHf.stdout).toBe(fromBin.stdout);
    expect(fromHf.stdout.length).toBeGreaterThan(20);
    // Another teacher's student is refused by its checksum, after the folder is read.
    const other = freshDir();
    writeHfCheckpoint(other, randomCheckpoint({ ...readHfCheckpoint(dir).config }, 9));
    const wrong = await runCli("generate", "--model", other, ...args);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/belongs to teacher [0-9a-f]{12} but the model's checksum is [0-9a-f]{12}/);
  });
});

describe("text of byte pieces", () => {
  // stories260K's tokenizer spells these characters with byte-fallback tokens, one byte each.
  const PROMPT = "日本語 🙂 Once upon a time";
  const dir = freshDir();
  const head = join(ROOT, "demo", "stories260K-head.safetensors");
  const run = ["--prompt", PROMPT, "--steps", "40", "--temperature", "0", "--backend", "js"];

  it("HF-TEXT-BYTES: a Hugging Face tokenizer prints every byte (a UTF-8 character split over byte pieces stays whole), tokenizer.bin follows safe_printf as run.c; --json's text keeps every byte for both", async () => {
    const converted = await runCli("convert", "--model", STORIES_260K, "--tokenizer", TOK_512, "--to", "hf", "--out", dir);
    expect(converted.code, converted.stderr).toBe(0);
    const hf = loadTokenizer(dir, 512);
    const bin = Tokenizer.load(TOK_512, 512);
    expect(hf.safePrintf).toBe(false);
    expect(bin.safePrintf).toBe(true);
    expect(printsPiece(hf, Uint8Array.of(0xe6))).toBe(true);
    expect(printsPiece(bin, Uint8Array.of(0xe6))).toBe(false);
    expect(printsPiece({}, Uint8Array.of(0xe6))).toBe(false); // a tokenizer that does not say: safe_printf
    const tokens = bin.encode(PROMPT, true, false);
    expect(tokens.filter((t) => t >= 3 && t < 259).length).toBeGreaterThanOrEqual(13); // the characters are byte pieces
    const decoded = (t: PieceDecoder): string => new TextDecoder().decode(tokenBytes(t, tokens, 1, tokens.length));
    expect(decoded(hf)).toContain("日本語 🙂");
    expect(decoded(bin)).not.toContain("日");
    expect(new TextDecoder().decode(Buffer.concat(chunkBytes(hf, tokens, [4, tokens.length - 5]).chunks))).toContain("🙂");

    // The CLI, AR and PTP: the HF folder prints the characters; the llama2.c files print what run.c prints, and --json's text has them.
    for (const extra of [[], ["--student", head]]) {
      const fromHf = await runCli("generate", "--model", dir, ...run, ...extra);
      expect(fromHf.code, fromHf.stderr).toBe(0);
      expect(fromHf.stdout).toContain("日本語 🙂 Once upon a time");
      const fromBin = await runCli("generate", "--model", STORIES_260K, "--tokenizer", TOK_512, ...run, ...extra);
      expect(fromBin.code, fromBin.stderr).toBe(0);
      expect(fromBin.stdout).not.toContain("日");
      expect(fromBin.stdout).toContain("Once upon a time");
      const json = await runCli("generate", "--model", STORIES_260K, "--tokenizer", TOK_512, ...run, ...extra, "--json");
      expect(json.code, json.stderr).toBe(0);
      const out = JSON.parse(json.stdout) as { text: string };
      expect(out.text).toContain("日本語 🙂 Once upon a time");
      // Past the prompt, the same text as the stream (the story is ASCII).
      expect(out.text.slice(out.text.indexOf("Once"))).toBe(fromBin.stdout.slice(fromBin.stdout.indexOf("Once")).replace(/\n$/, ""));
    }
  });
  it('HF-TEXT-ARGS: tokenBytes, chunkBytes and printsPiece refuse what is not a tokenizer, token array or range by name; HfTokenizer.decode([]) is "" as Tokenizer.decode([])', () => {
    const hf = loadTokenizer(dir, 512);
    const bin = Tokenizer.load(TOK_512, 512);
    const tokens = bin.encode("Once upon", true, false);
    expect(hf.decode([])).toBe("");
    expect(hf.decode(new Int32Array(0) as unknown as number[])).toBe("");
    expect(bin.decode([])).toBe("");
    expect(() => printsPiece(undefined as never, Uint8Array.of(65))).toThrow(/^printsPiece: tokenizer must be a tokenizer/);
    expect(() => tokenBytes(undefined as never, tokens, 0, 2)).toThrow(/^tokenBytes: tokenizer must have decodePiece/);
    expect(() => tokenBytes(bin, undefined as never, 0, 2)).toThrow(/^tokenBytes: tokens must be an array of token ids/);
    for (const [from, to] of [
      [1.5, 2],
      [0, tokens.length + 1],
      [3, 2],
      [Number.NaN, Number.NaN],
      [0, "3"],
    ] as const) {
      expect(() => tokenBytes(bin, tokens, from as number, to as number), `${from}..${String(to)}`).toThrow(/^tokenBytes: /);
    }
    expect(new TextDecoder().decode(tokenBytes(bin, tokens, 0, tokens.length))).toBe("Once upon");
    expect(() => chunkBytes(null as never, tokens, [1])).toThrow(/^chunkBytes: tokenizer must have decodePiece/);
  });
});

describe("HF folder errors", () => {
  const good = (): string => {
    const dir = freshDir();
    writeHfCheckpoint(dir, randomCheckpoint({ dim: 8, hiddenDim: 4, nLayers: 1, nHeads: 2, nKvHeads: 2, vocabSize: 5, seqLen: 8, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 }, 3));
    return dir;
  };
  it("HF-SPECIAL-FILES: a FIFO or a directory as model.safetensors, and a config of 2^31 layers, are refused at once naming the file (no blocking open, no loop over the layers)", () => {
    let dir = good();
    rmSync(join(dir, "model.safetensors"));
    execFileSync("mkfifo", [join(dir, "model.safetensors")]);
    const started = performance.now();
    expect(formatError(() => readHfCheckpoint(dir), join(dir, "model.safetensors")).message).toMatch(/is not a regular file/);
    dir = good();
    rmSync(join(dir, "model.safetensors"));
    mkdirSync(join(dir, "model.safetensors"));
    expect(formatError(() => readHfCheckpoint(dir), join(dir, "model.safetensors")).message).toMatch(/is a directory, expected/);
    dir = good();
    const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ...config, num_hidden_layers: 2 ** 31 }));
    expect(formatError(() => readHfCheckpoint(dir), join(dir, "config.json")).message).toMatch(/nLayers must be <= 4096, got 2147483648/);
    expect(performance.now() - started).toBeLessThan(10_000);
  });

  it("HF-JSON-UTF8: every JSON file read (config.json, the safetensors index, tokenizer.json, tokenizer_config.json) must be UTF-8: a byte that is not is refused naming the file, never read as U+FFFD; a leading BOM is read past", () => {
    /** `json` (an object) with a first member "_note" whose string holds `bytes`. */
    const withBytes = (json: string, bytes: number[]): Buffer => Buffer.concat([Buffer.from('{"_note": "'), Buffer.from(bytes), Buffer.from(`", ${json.slice(1)}`)]);
    const BOM = Buffer.from([0xef, 0xbb, 0xbf]);
    const notUtf8 = (path: string, what: string, load: () => unknown): void => {
      expect(formatError(load, path).problem).toBe(`not valid UTF-8 (expected ${what} in UTF-8)`);
    };
    const ckpt = randomCheckpoint({ dim: 8, hiddenDim: 4, nLayers: 1, nHeads: 2, nKvHeads: 2, vocabSize: 512, seqLen: 8, sharedClassifier: false, normEps: 1e-5, ropeTheta: 10000 }, 5);
    const dir = freshDir();
    writeHfCheckpoint(dir, ckpt, { maxShardBytes: 4096 });
    const configPath = join(dir, "config.json"),
      indexPath = join(dir, "model.safetensors.index.json");
    const config = readFileSync(configPath, "utf8"),
      index = readFileSync(indexPath, "utf8");
    for (const bad of [[0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82]]) {
      writeFileSync(configPath, withBytes(config, bad));
      notUtf8(configPath, "a Hugging Face config.json", () => readHfCheckpoint(dir));
    }
    // The project's policy for text files: a byte-order mark is UTF-8 and is read past.
    writeFileSync(configPath, Buffer.concat([BOM, Buffer.from(config)]));
    sameWeights(readHfCheckpoint(dir), ckpt);
    writeFileSync(configPath, config);
    writeFileSync(indexPath, withBytes(index, [0xff]));
    notUtf8(indexPath, "a safetensors index with a weight_map", () => readHfCheckpoint(dir));
    writeFileSync(indexPath, Buffer.concat([BOM, Buffer.from(index)]));
    sameWeights(readHfCheckpoint(dir), ckpt);

    const tokDir = freshDir();
    mkdirSync(tokDir);
    const tokPath = join(tokDir, "tokenizer.json"),
      tokConfigPath = join(tokDir, "tokenizer_config.json");
    const tokenizer = JSON.stringify(llama2cTokenizerToJson(Tokenizer.load(TOK_512, 512)));
    const reference = Tokenizer.load(TOK_512, 512).encode("Once upon a time", true, false);
    writeFileSync(tokPath, withBytes(tokenizer, [0xff]));
    notUtf8(tokPath, "a Hugging Face tokenizer.json", () => loadTokenizer(tokPath, 512));
    writeFileSync(tokPath, Buffer.concat([BOM, Buffer.from(tokenizer)]));
    expect(loadTokenizer(tokPath, 512).encode("Once upon a time", true, false)).toEqual(reference);
    writeFileSync(tokConfigPath, withBytes(JSON.stringify({ bos_token: "<s>" }), [0x80]));
    notUtf8(tokConfigPath, "a Hugging Face tokenizer_config.json", () => loadTokenizer(tokPath, 512));
    writeFileSync(tokConfigPath, Buffer.concat([BOM, Buffer.from(JSON.stringify({ bos_token: "<s>" }))]));
    expect(loadTokenizer(tokPath, 512).encode("Once upon a time", true, false)).toEqual(reference);
  });

  it("HF-ERRORS: missing folder, config or weights; extra, missing, misplaced or mis-shaped tensors: refused naming the file", () => {
    formatError(() => readHfCheckpoint(join(tmp, "nope")), join(tmp, "nope"));
    let dir = good();
    rmSync(join(dir, "config.json"));
    expect(formatError(() => readHfCheckpoint(dir), join(dir, "config.json")).message).toMatch(/does not exist/);
    dir = good();
    rmSync(join(dir, "model.safetensors"));
    expect(formatError(() => readHfCheckpoint(dir), dir).message).toMatch(/neither model.safetensors nor/);
    dir = good();
    writeFileSync(join(dir, "config.json"), "{not json");
    expect(formatError(() => readHfCheckpoint(dir), join(dir, "config.json")).message).toMatch(/not valid JSON/);

    const withTensors = (edit: (t: { name: string; dtype: string; shape: number[]; bytes: Uint8Array }[]) => void): string => {
      const d = good();
      const tensors = [...hfTensors(readHfCheckpoint(d)).entries()].map(([name, t]) => ({ name, dtype: "F32", shape: t.shape, bytes: new Uint8Array(t.data.buffer.slice(0)) }));
      edit(tensors);
      writeFileSync(join(d, "model.safetensors"), rawSafetensors(tensors));
      return d;
    };
    dir = withTensors((t) => t.push({ name: "model.layers.0.self_attn.q_proj.bias", dtype: "F32", shape: [8], bytes: new Uint8Array(32) }));
    expect(formatError(() => readHfCheckpoint(dir), join(dir, "model.safetensors")).message).toMatch(/unexpected tensor "model.layers.0.self_attn.q_proj.bias".*biases are not supported/);
    dir = withTensors((t) =>
      t.splice(
        t.findIndex((x) => x.name === "model.norm.weight"),
        1,
      ),
    );
    expect(formatError(() => readHfCheckpoint(dir), join(dir, "model.safetensors")).message).toMatch(/missing tensor "model.norm.weight"/);
    dir = withTensors((t) => (t.find((x) => x.name === "model.norm.weight")!.shape = [2, 4]));
    expect(formatError(() => readHfCheckpoint(dir), join(dir, "model.safetensors")).message).toMatch(/shape \[2, 4\], expected \[8\]/);
    dir = withTensors((t) => {
      const x = t.find((y) => y.name === "model.norm.weight")!;
      x.dtype = "I32";
    });
    expect(formatError(() => readHfCheckpoint(dir), join(dir, "model.safetensors")).message).toMatch(/dtype I32; expected F32, F16 or BF16/);
    // an index that places a tensor in a file that does not exist (the index alone: beside a model.safetensors it does not list, it is not read)
    dir = good();
    rmSync(join(dir, "model.safetensors"));
    writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify({ weight_map: { "model.norm.weight": "other.safetensors" } }));
    expect(formatError(() => readHfCheckpoint(dir), join(dir, "other.safetensors")).message).toMatch(/does not exist/);
    // An index lists only the model's own tensors (an entry for another would open a file for nothing), in files of the folder.
    const index = join(dir, "model.safetensors.index.json");
    writeFileSync(index, JSON.stringify({ weight_map: { "model.norm.weight": "model.safetensors", "foo.weight": "x.safetensors" } }));
    expect(formatError(() => readHfCheckpoint(dir), index).message).toBe(`${index}: weight_map lists tensor "foo.weight", which a LlamaForCausalLM checkpoint of this config.json does not have`);
    for (const name of [".", ".."]) {
      writeFileSync(index, JSON.stringify({ weight_map: { "model.norm.weight": name } }));
      expect(formatError(() => readHfCheckpoint(dir), index).message).toBe(`${index}: weight_map entry "model.norm.weight" must name a file in the folder, found "${name}"`);
    }
    // config.json must be an object: null is named as null.
    dir = good();
    writeFileSync(join(dir, "config.json"), "null");
    expect(formatError(() => readHfCheckpoint(dir), join(dir, "config.json")).message).toMatch(/expected a JSON object \(a Hugging Face config.json\), found null$/);
  });

  it("HF-HEADERS-FIRST: readModelConfig of a folder checks config.json against the safetensors headers (a config that disagrees with the tensors is refused before anything is sized from it); a model file or link that cannot be opened says why", async () => {
    const dir = good();
    const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ...config, intermediate_size: 1_000_000_000 }));
    expect(formatError(() => readModelConfig(dir), join(dir, "model.safetensors")).message).toMatch(/tensor "model.layers.0.mlp.\w+_proj.weight" has shape \[\d+, \d+\], expected \[(1000000000, \d+|\d+, 1000000000)\] from config.json/);
    // The CLI says the same (exit 1), not that the run needs thousands of GiB.
    const r = await runCli("generate", "--model", dir, "--tokenizer", TOK_512, "--steps", "4", "--seed", "1");
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/^ptp generate: .*model.safetensors: tensor "model.layers.0.mlp.\w+_proj.weight" has shape/);
    // A config.json given as the model: a JSON file, not a model; the folder is what to give.
    const asFile = await runCli("generate", "--model", join(dir, "config.json"), "--tokenizer", TOK_512, "--steps", "4");
    expect(asFile.code).toBe(1);
    expect(asFile.stderr).toContain(`config.json: is a JSON file, not a model (for a Hugging Face model, give the folder that holds its config.json and weights)`);
    // model.safetensors as a broken link or a loop of links: its open says so (not "has neither model.safetensors nor ...").
    const { symlinkSync } = await import("node:fs");
    const linked = good();
    const weights = join(linked, "model.safetensors");
    rmSync(weights);
    symlinkSync(join(linked, "gone.safetensors"), weights);
    expect(formatError(() => readModelConfig(linked), weights).message).toMatch(/is a broken symbolic link: its target does not exist/);
    rmSync(weights);
    symlinkSync(weights, weights);
    expect(formatError(() => readModelConfig(linked), weights).message).toMatch(/cannot read file \(expected a safetensors file of the model\): it is a loop of symbolic links$/);
  });
});

describe("what a llama2.c file cannot hold", () => {
  it("HF-CONVERT-NORM-ROPE: `convert --to llama2c` of a folder whose rms_norm_eps or rope_theta is not llama2.c's (1e-5, 10000) is refused naming both, exit 1, nothing written", async () => {
    const dir = freshDir();
    writeHfCheckpoint(dir, randomCheckpoint({ dim: 8, hiddenDim: 4, nLayers: 1, nHeads: 2, nKvHeads: 2, vocabSize: 5, seqLen: 8, sharedClassifier: true, normEps: 1e-6, ropeTheta: 500000 }, 3));
    const out = join(tmp, "eps.bin");
    const r = await runCli("convert", "--model", dir, "--to", "llama2c", "--out", out);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain("has rms_norm_eps 0.000001 and rope_theta 500000; a llama2.c checkpoint holds neither");
    expect(existsSync(out)).toBe(false);
  });

  it("HF-DTYPE-HEADER-FIRST: a tensor of a dtype the reader cannot use (I32) is refused by readModelConfig from the header, naming the file and the tensor", () => {
    const dir = freshDir();
    writeHfCheckpoint(dir, randomCheckpoint({ dim: 8, hiddenDim: 4, nLayers: 1, nHeads: 2, nKvHeads: 2, vocabSize: 5, seqLen: 8, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 }, 3));
    const file = join(dir, "model.safetensors");
    const bytes = readFileSync(file);
    const n = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString("utf8"));
    header["model.norm.weight"].dtype = "I32";
    const json = Buffer.from(JSON.stringify(header).padEnd(n, " "));
    expect(json.length).toBe(n);
    writeFileSync(file, Buffer.concat([bytes.subarray(0, 8), json, bytes.subarray(8 + n)]));
    expect(formatError(() => readModelConfig(dir), file).message).toMatch(/tensor "model.norm.weight" has dtype I32; expected F32, F16 or BF16/);
  });
});

describe("ptp inspect DIR", () => {
  it("HF-INSPECT: reports the config of an HF folder, with the same teacher checksum as its llama2.c twin", async () => {
    const dir = freshDir();
    expect((await runCli("convert", "--model", STORIES_260K, "--to", "hf", "--out", dir, "--shard-mb", "0.3")).code).toBe(0);
    expect(existsSync(join(dir, "model.safetensors.index.json"))).toBe(true);
    const r = await runCli("inspect", dir);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Hugging Face Llama checkpoint/);
    expect(r.stdout).toMatch(/nKvHeads\s+4/);
    const hf = JSON.parse((await runCli("inspect", dir, "--json")).stdout);
    const bin = JSON.parse((await runCli("inspect", STORIES_260K, "--json")).stdout);
    expect(hf.kind).toBe("hf-checkpoint");
    expect(hf.config).toEqual(bin.config);
    expect(hf.teacherChecksum).toBe(bin.teacherChecksum);
  });
});

describe("header-first loading", () => {
  it("HF-STREAMED: a 3 GB (sparse) shard with an unexpected tensor is refused from its header alone, where a whole-file read could not even start", async () => {
    const { openSync, ftruncateSync, closeSync, writeSync } = await import("node:fs");
    const dir = freshDir();
    writeHfCheckpoint(dir, randomCheckpoint({ dim: 8, hiddenDim: 4, nLayers: 1, nHeads: 2, nKvHeads: 2, vocabSize: 5, seqLen: 8, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 }, 3));
    const big = 750_000_000; // floats: 3 GB, beyond what readFileSync can return
    // The shard holds one of the model's tensors (so the index sends the reader to it) and a 3 GB one it has not.
    const header = new TextEncoder().encode(JSON.stringify({ "model.norm.weight": { dtype: "F32", shape: [8], data_offsets: [0, 32] }, "model.layers.0.mlp.up_proj.bias": { dtype: "F32", shape: [big], data_offsets: [32, 32 + 4 * big] } }));
    const path = join(dir, "model-00002-of-00002.safetensors");
    const fd = openSync(path, "w");
    const len = new Uint8Array(8);
    new DataView(len.buffer).setBigUint64(0, BigInt(header.length), true);
    writeSync(fd, len);
    writeSync(fd, header);
    ftruncateSync(fd, 8 + header.length + 32 + 4 * big);
    closeSync(fd);
    const map: Record<string, string> = {};
    for (const name of hfTensors(readHfCheckpoint(dir)).keys()) map[name] = "model.safetensors";
    map["model.norm.weight"] = "model-00002-of-00002.safetensors";
    writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify({ weight_map: map }));
    expect(() => readFileSync(path)).toThrow(); // a whole-file read fails outright
    expect(formatError(() => readHfCheckpoint(dir), path).message).toMatch(/unexpected tensor "model.layers.0.mlp.up_proj.bias".*biases are not supported/);
  });
});
