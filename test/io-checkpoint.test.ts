import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { parameterCount, type ModelConfig } from "../src/model/config.js";
import type { Checkpoint } from "../src/model/weights.js";
import { AK42_MAGIC, checkpointByteLength, legacyRopeTables, parseCheckpoint, randomCheckpoint, readCheckpoint, serializeCheckpoint, writeCheckpoint } from "../src/io/index.js";
import { exitedPid, formatError } from "./helpers.js";
import { createBackend } from "../src/backends/registry.js";
import { Transformer } from "../src/model/transformer.js";
import { allocWeights, freeWeights } from "../src/model/device-weights.js";
import { loadModel, readModel, readModelConfig } from "../src/io/model-file.js";
import { firstBitDifference } from "./helpers.js";
import { pureJsHash, teacherChecksum, teacherChecksumWith } from "../src/ptp/files/teacher-checksum.js";
import type { Backend } from "../src/backends/backend.js";

/** The wasm backend's bytes in live buffers (0 on a backend that does not count them). */
const live = (b: Backend): number => (b as unknown as { liveBytes?: number }).liveBytes ?? 0;

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const MODEL = resolve(ROOT, "../shared/models/stories260K.bin");
const modelBytes = new Uint8Array(readFileSync(MODEL));

const tmp = mkdtempSync(join(tmpdir(), "io-checkpoint-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const small: ModelConfig = {
  dim: 16,
  hiddenDim: 24,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  vocabSize: 10,
  seqLen: 8,
  sharedClassifier: false,
  normEps: 1e-5,
  ropeTheta: 10000,
};

function v0Header(h: number[]): Uint8Array {
  const b = new Uint8Array(28);
  const dv = new DataView(b.buffer);
  h.forEach((v, i) => dv.setInt32(4 * i, v, true));
  return b;
}

function v1Header(version: number, h: number[] = [16, 24, 2, 4, 2, 10, 8], flag = 1): Uint8Array {
  const b = new Uint8Array(256);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, AK42_MAGIC, true);
  dv.setInt32(4, version, true);
  h.forEach((v, i) => dv.setInt32(8 + 4 * i, v, true));
  b[36] = flag;
  return b;
}

/** Bitwise equality of float arrays (fast, unlike a deep equal of 100k elements). */
function sameFloats(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

function expectSameWeights(a: Checkpoint, b: Checkpoint): void {
  expect(b.config).toEqual(a.config);
  expect(sameFloats(a.weights.tokenEmbedding, b.weights.tokenEmbedding)).toBe(true);
  expect(sameFloats(a.weights.rmsFinal, b.weights.rmsFinal)).toBe(true);
  expect(sameFloats(a.weights.wcls, b.weights.wcls)).toBe(true);
  expect(b.weights.layers.length).toBe(a.weights.layers.length);
  a.weights.layers.forEach((la, l) => {
    const lb = b.weights.layers[l];
    for (const k of ["rmsAtt", "wq", "wk", "wv", "wo", "rmsFfn", "w1", "w2", "w3"] as const) {
      expect(sameFloats(la[k], lb[k]), `layer ${l} ${k}`).toBe(true);
    }
  });
}

describe("IO-CKPT-LOAD: stories260K.bin (v0)", () => {
  const ckpt = readCheckpoint(MODEL);

  it("loads with the published config", () => {
    expect(ckpt.config).toEqual({
      dim: 64,
      hiddenDim: 172,
      nLayers: 5,
      nHeads: 8,
      nKvHeads: 4,
      vocabSize: 512,
      seqLen: 512,
      sharedClassifier: true,
      normEps: 1e-5,
      ropeTheta: 10000,
    });
  });

  it("has arrays of the right shapes, the shared classifier being the embedding itself", () => {
    const w = ckpt.weights;
    expect(w.wcls).toBe(w.tokenEmbedding);
    expect(w.tokenEmbedding.length).toBe(512 * 64);
    expect(w.rmsFinal.length).toBe(64);
    expect(w.layers.length).toBe(5);
    for (const l of w.layers) {
      expect(l.rmsAtt.length).toBe(64);
      expect(l.rmsFfn.length).toBe(64);
      expect(l.wq.length).toBe(64 * 64);
      expect(l.wo.length).toBe(64 * 64);
      expect(l.wk.length).toBe(32 * 64);
      expect(l.wv.length).toBe(32 * 64);
      expect(l.w1.length).toBe(172 * 64);
      expect(l.w2.length).toBe(64 * 172);
      expect(l.w3.length).toBe(172 * 64);
    }
    expect(modelBytes.length).toBe(28 + 4 * (parameterCount(ckpt.config) + 512 * 8));
  });

  it("reads the floats in the documented order", () => {
    const dv = new DataView(modelBytes.buffer, modelBytes.byteOffset);
    const f = (i: number): number => dv.getFloat32(28 + 4 * i, true);
    const w = ckpt.weights;
    expect(w.tokenEmbedding[0]).toBe(f(0));
    expect(w.tokenEmbedding[512 * 64 - 1]).toBe(f(512 * 64 - 1));
    let o = 512 * 64;
    expect(w.layers[0].rmsAtt[0]).toBe(f(o));
    expect(w.layers[4].rmsAtt[63]).toBe(f(o + 5 * 64 - 1));
    o += 5 * 64;
    expect(w.layers[0].wq[0]).toBe(f(o));
    expect(w.layers[1].wq[0]).toBe(f(o + 64 * 64));
    o += 5 * 64 * 64; // wq
    expect(w.layers[0].wk[0]).toBe(f(o));
    o += 5 * 32 * 64 * 2 + 5 * 64 * 64; // wk, wv, wo
    expect(w.layers[2].rmsFfn[7]).toBe(f(o + 2 * 64 + 7));
    o += 5 * 64 + 3 * 5 * 172 * 64; // rms_ffn, w1, w2, w3
    expect(w.layers[4].w3[172 * 64 - 1]).toBe(f(o - 1));
    expect(w.rmsFinal[0]).toBe(f(o));
    // RMSNorm weights of a trained model are positive-ish and finite.
    expect(w.rmsFinal.every((x) => Number.isFinite(x))).toBe(true);
  });

  it("serializes back to the original bytes (v0), all but the recomputed legacy RoPE tables", () => {
    const out = serializeCheckpoint(ckpt);
    expect(out.length).toBe(modelBytes.length);
    const ropeBytes = 4 * 512 * 8; // the tables close the file (the classifier is shared)
    expect(Buffer.from(out.subarray(0, out.length - ropeBytes)).equals(Buffer.from(modelBytes.subarray(0, out.length - ropeBytes)))).toBe(true);
  });

  it("computes legacy RoPE tables matching the file's to within one float32 ulp", () => {
    const computed = legacyRopeTables(ckpt.config);
    const n = 512 * 8;
    const stored = new Float32Array(modelBytes.slice(modelBytes.length - 4 * n).buffer);
    expect(computed.length).toBe(n);
    let differing = 0;
    for (let i = 0; i < n; i++) {
      expect(Math.abs(computed[i] - stored[i])).toBeLessThanOrEqual(6e-8);
      if (computed[i] !== stored[i]) differing++;
    }
    // PyTorch's float32 cos/sin are not always correctly rounded.
    expect(differing).toBeLessThan(n / 10);
    // cos(0) = 1, sin(0) = 0; position 1, pair 0 has angle 1.
    expect(computed[0]).toBe(1);
    expect(computed[n / 2]).toBe(0);
    expect(computed[n / 2 + 4]).toBe(Math.fround(Math.sin(1)));
  });

  it("round-trips through v1", () => {
    const v1 = serializeCheckpoint(ckpt, 1);
    expect(BigInt(v1.length)).toBe(checkpointByteLength(ckpt.config, 1));
    expect(v1.length).toBe(256 + 4 * parameterCount(ckpt.config));
    const back = parseCheckpoint(v1, "stories260K.v1.bin");
    expectSameWeights(ckpt, back);
    expect(back.weights.wcls).toBe(back.weights.tokenEmbedding);
    expect(Buffer.from(serializeCheckpoint(back, 1)).equals(Buffer.from(v1))).toBe(true);
    // v1 has no RoPE tables, so v0 written from it uses the computed ones.
    const v0 = serializeCheckpoint(back, 0);
    expect(v0.length).toBe(modelBytes.length);
    const tail = new Float32Array(v0.slice(v0.length - 4 * 512 * 8).buffer);
    expect(sameFloats(tail, legacyRopeTables(ckpt.config))).toBe(true);
    expect(Buffer.from(v0.subarray(0, v0.length - 4 * 512 * 8)).equals(Buffer.from(modelBytes.subarray(0, v0.length - 4 * 512 * 8)))).toBe(true);
  });

  it("v1 header fields are where llama2.c puts them", () => {
    const v1 = serializeCheckpoint(ckpt, 1);
    const dv = new DataView(v1.buffer);
    expect(dv.getUint32(0, true)).toBe(0x616b3432);
    expect(String.fromCharCode(...v1.subarray(0, 4))).toBe("24ka");
    expect(dv.getInt32(4, true)).toBe(1);
    expect([0, 1, 2, 3, 4, 5, 6].map((i) => dv.getInt32(8 + 4 * i, true))).toEqual([64, 172, 5, 8, 4, 512, 512]);
    expect(v1[36]).toBe(1);
    expect(v1.subarray(37, 256).every((b) => b === 0)).toBe(true);
    // first float: layer 0's attention RMSNorm weight
    expect(dv.getFloat32(256, true)).toBe(ckpt.weights.layers[0].rmsAtt[0]);
    // after all norms (2 * 5 * 64 + 64 floats) comes the token embedding
    expect(dv.getFloat32(256 + 4 * (11 * 64), true)).toBe(ckpt.weights.tokenEmbedding[0]);
  });

  it("IO-CKPT-V1-PADDING: a v1 header whose padding bytes 37..255 are not zero is refused, naming the byte", () => {
    const v1 = serializeCheckpoint(ckpt, 1);
    for (const at of [37, 100, 255]) {
      const bad = v1.slice();
      bad[at] = 0xff;
      expect(() => parseCheckpoint(bad, "pad.bin")).toThrow(new RegExp(`pad\\.bin: "ak42" header bytes 37\\.\\.255 must be zero padding, found byte ${at} = 255`));
    }
  });

  it("parses from a misaligned view", () => {
    const buf = new Uint8Array(modelBytes.length + 1);
    buf.set(modelBytes, 1);
    const back = parseCheckpoint(buf.subarray(1), "misaligned");
    expectSameWeights(ckpt, back);
  });
});

describe("IO-CKPT-RANDOM: random checkpoints", () => {
  it("are deterministic per seed", () => {
    const a = serializeCheckpoint(randomCheckpoint(small, 42));
    const b = serializeCheckpoint(randomCheckpoint(small, 42));
    const c = serializeCheckpoint(randomCheckpoint(small, 43));
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
    expect(Buffer.from(a).equals(Buffer.from(c))).toBe(false);
  });

  it("have unit norms and sanely scaled linear weights", () => {
    const r = randomCheckpoint({ ...small, dim: 64, hiddenDim: 128 }, 1);
    const l = r.weights.layers[0];
    expect(l.rmsAtt.every((x) => x === 1)).toBe(true);
    expect(r.weights.rmsFinal.every((x) => x === 1)).toBe(true);
    const std = (a: Float32Array): number => Math.sqrt(a.reduce((s, x) => s + x * x, 0) / a.length);
    expect(std(l.wq)).toBeCloseTo(1 / 8, 2);
    expect(std(l.w2)).toBeCloseTo(1 / Math.sqrt(128), 2);
    expect(r.weights.wcls).not.toBe(r.weights.tokenEmbedding);
    const shared = randomCheckpoint({ ...small, sharedClassifier: true }, 1);
    expect(shared.weights.wcls).toBe(shared.weights.tokenEmbedding);
  });

  it("reject invalid configs", () => {
    expect(() => randomCheckpoint({ ...small, nHeads: 3 }, 1)).toThrow(/nHeads \(3\) must divide dim \(16\)/);
  });

  for (const version of [0, 1] as const) {
    it(`unshared classifier round-trips through v${version}`, () => {
      const r = randomCheckpoint(small, 7);
      const bytes = serializeCheckpoint(r, version);
      expect(BigInt(bytes.length)).toBe(checkpointByteLength(small, version));
      const dv = new DataView(bytes.buffer);
      if (version === 0) expect(dv.getInt32(20, true)).toBe(-10);
      else expect(bytes[36]).toBe(0);
      const back = parseCheckpoint(bytes, "random.bin");
      expect(back.config.sharedClassifier).toBe(false);
      expect(back.weights.wcls).not.toBe(back.weights.tokenEmbedding);
      expectSameWeights(r, back);
      expect(Buffer.from(serializeCheckpoint(back, version)).equals(Buffer.from(bytes))).toBe(true);
    });
  }

  it("v0 of an unshared model stores wcls after the RoPE tables", () => {
    const r = randomCheckpoint(small, 9);
    const bytes = serializeCheckpoint(r, 0);
    const floats = new Float32Array(bytes.buffer, 28);
    const n = small.vocabSize * small.dim;
    expect(floats.subarray(floats.length - n)).toEqual(r.weights.wcls);
    const rope = floats.subarray(floats.length - n - small.seqLen * 4, floats.length - n);
    expect(rope).toEqual(legacyRopeTables(small));
  });

  it("serialize rejects arrays of the wrong length", () => {
    const r = randomCheckpoint(small, 1);
    r.weights.layers[1].wk = new Float32Array(3);
    expect(() => serializeCheckpoint(r)).toThrow(/layer 1 wk has 3 floats, expected 128/);
  });
});

describe("IO-CKPT-WRITE: writeCheckpoint / readCheckpoint", () => {
  it("writes atomically and reads back, v0 and v1", () => {
    const r = randomCheckpoint(small, 3);
    for (const version of [0, 1] as const) {
      const path = join(tmp, `model-v${version}.bin`);
      writeCheckpoint(path, r, version);
      expect(existsSync(`${path}.tmp`)).toBe(false);
      expectSameWeights(r, readCheckpoint(path));
      // overwrite in place
      writeCheckpoint(path, randomCheckpoint(small, 4), version);
      expectSameWeights(randomCheckpoint(small, 4), readCheckpoint(path));
    }
    expect(readdirSync(tmp).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });

  it("IO-ATOMIC-ORPHANS: a write removes the temporaries of earlier writes to the same file whose process is gone (kill -9 before the rename), and nothing else", async () => {
    const dir = mkdtempSync(join(tmp, "orphans-"));
    const path = join(dir, "m.bin");
    const gone = await exitedPid();
    const orphan = join(dir, `.m.bin.${gone}.0123456789ab.tmp`);
    const live = join(dir, `.m.bin.${process.ppid}.0123456789ab.tmp`); // a running writer's (the test runner's parent)
    const others = [join(dir, `.m.bin.${gone}.tmp`), join(dir, `.other.bin.${gone}.0123456789ab.tmp`), join(dir, `.m.bin.${gone}.0123456789ab.tmp.keep`)];
    for (const p of [orphan, live, ...others]) writeFileSync(p, "x");
    writeCheckpoint(path, randomCheckpoint(small, 3));
    expect(existsSync(orphan)).toBe(false);
    for (const p of [live, ...others]) expect(existsSync(p), p).toBe(true);
  });
});

describe("IO-CKPT-ERRORS: checkpoint errors name the file and the problem", () => {
  it("missing file", () => {
    const path = join(tmp, "nope.bin");
    const e = formatError(() => readCheckpoint(path), path);
    expect(e.message).toMatch(/does not exist/);
  });

  it("a directory", () => {
    const e = formatError(() => readCheckpoint(tmp), tmp);
    expect(e.message).toMatch(/is a directory/);
  });

  it("shorter than the header", () => {
    const path = join(tmp, "short.bin");
    writeFileSync(path, modelBytes.subarray(0, 10));
    const e = formatError(() => readCheckpoint(path), path);
    expect(e.message).toBe(`${path}: file is 10 bytes, shorter than the 28-byte llama2.c checkpoint header (truncated)`);
    formatError(() => parseCheckpoint(new Uint8Array(0), "empty.bin"), "empty.bin");
  });

  it("header fine but the data cut short", () => {
    const path = join(tmp, "cut.bin");
    writeFileSync(path, modelBytes.subarray(0, 1000));
    const e = formatError(() => readCheckpoint(path), path);
    expect(e.message).toContain("file is 1000 bytes but the v0 header (dim 64, hidden_dim 172, n_layers 5, n_heads 8, n_kv_heads 4");
    expect(e.message).toContain("requires 1056540 bytes");
    expect(e.message).toContain("truncated");
  });

  it("size larger than the header implies", () => {
    const big = new Uint8Array(modelBytes.length + 4);
    big.set(modelBytes);
    const e = formatError(() => parseCheckpoint(big, "big.bin"), "big.bin");
    expect(e.message).toContain("file is 1056544 bytes but");
    expect(e.message).toContain("requires 1056540 bytes (4 bytes too many)");
  });

  it("size mismatch from a wrong shared/unshared sign", () => {
    const bytes = new Uint8Array(modelBytes);
    new DataView(bytes.buffer).setInt32(20, -512, true);
    const e = formatError(() => parseCheckpoint(bytes, "sign.bin"), "sign.bin");
    expect(e.message).toContain("vocab_size 512 (separate classifier)");
    expect(e.message).toContain(`requires ${1056540 + 4 * 512 * 64} bytes`);
  });

  const absurd: [string, number[], RegExp][] = [
    ["zero dim", [0, 172, 5, 8, 4, 512, 512], /dim must be a positive integer, got 0/],
    ["negative hidden dim", [64, -172, 5, 8, 4, 512, 512], /hiddenDim must be a positive integer, got -172/],
    ["negative layers", [64, 172, -5, 8, 4, 512, 512], /nLayers must be a positive integer, got -5/],
    ["zero vocab", [64, 172, 5, 8, 4, 0, 512], /vocabSize must be a positive integer, got 0/],
    ["nHeads not dividing dim", [64, 172, 5, 7, 7, 512, 512], /nHeads \(7\) must divide dim \(64\)/],
    ["nKvHeads not dividing nHeads", [64, 172, 5, 8, 3, 512, 512], /nKvHeads \(3\) must divide nHeads \(8\)/],
    ["odd head size", [63, 172, 5, 9, 3, 512, 512], /head size dim\/nHeads \(7\) must be even/],
  ];
  for (const [what, header, re] of absurd) {
    it(`absurd header: ${what}`, () => {
      const bytes = new Uint8Array(1056540);
      bytes.set(v0Header(header));
      const e = formatError(() => parseCheckpoint(bytes, "absurd.bin"), "absurd.bin");
      expect(e.message).toMatch(/invalid v0 header \(dim /);
      expect(e.message).toMatch(re);
    });
  }

  it("huge but positive header values report the exact required size", () => {
    const e = formatError(() => parseCheckpoint(v0Header([2 ** 30, 2 ** 30, 2 ** 30, 2, 2, 2 ** 30, 2]), "huge.bin"), "huge.bin");
    expect(e.message).toMatch(/file is 28 bytes but the v0 header .* requires \d{20,} bytes/);
  });

  it("v1 version 2 (int8) is unsupported", () => {
    const e = formatError(() => parseCheckpoint(v1Header(2), "q80.bin"), "q80.bin");
    expect(e.message).toMatch(/version 2 \(int8-quantized.*\) is not supported/);
  });

  it("unknown v1 versions", () => {
    const e = formatError(() => parseCheckpoint(v1Header(7), "v7.bin"), "v7.bin");
    expect(e.message).toMatch(/unknown "ak42" checkpoint version 7/);
  });

  it("v1 header truncated", () => {
    const e = formatError(() => parseCheckpoint(v1Header(1).subarray(0, 100), "v1short.bin"), "v1short.bin");
    expect(e.message).toMatch(/file is 100 bytes, shorter than the 256-byte "ak42" version 1 header/);
    const e2 = formatError(() => parseCheckpoint(v1Header(1).subarray(0, 6), "v1tiny.bin"), "v1tiny.bin");
    expect(e2.message).toMatch(/ends before the version number/);
  });

  it("v1 size mismatch, bad flag, absurd header", () => {
    const e = formatError(() => parseCheckpoint(v1Header(1), "v1data.bin"), "v1data.bin");
    expect(e.message).toMatch(/file is 256 bytes but the v1 header \(dim 16, .*\) requires \d+ bytes/);
    const f = formatError(() => parseCheckpoint(v1Header(1, undefined, 5), "flag.bin"), "flag.bin");
    expect(f.message).toMatch(/shared_classifier flag must be 0 or 1, found 5/);
    const g = formatError(() => parseCheckpoint(v1Header(1, [16, 24, 2, 4, 2, -10, 8]), "neg.bin"), "neg.bin");
    expect(g.message).toMatch(/invalid v1 header.*vocabSize must be a positive integer, got -10/);
  });
});

describe("IO-LOAD-MODEL: loadModel reads a llama2.c file straight into the backend's buffers", () => {
  const logitsOf = (m: Transformer): Float32Array => {
    const cache = m.newCache(8);
    const out = m.forward({ tokens: [1, 5, 9, 3], positions: [0, 1, 2, 3] }, cache);
    cache.free();
    return out;
  };

  it.each(["wasm", "js"] as const)("IO-LOAD-MODEL (%s): stories260K (v0, shared classifier) and a v1 file with its own classifier give the logits and host tables of readModel + new Transformer, bit for bit; dispose frees every buffer", async (name) => {
    const backend = await createBackend(name, { threads: 1 });
    const v1 = join(tmp, `load-v1-${name}.bin`);
    writeCheckpoint(v1, randomCheckpoint({ ...small, vocabSize: 40 }, 7), 1);
    for (const path of [MODEL, v1]) {
      // A load and dispose first: what stays is the backend's own scratch, which later loads reuse.
      const warm = loadModel(backend, path);
      logitsOf(warm);
      warm.dispose();
      const before = live(backend);
      const ref = new Transformer(backend, readModel(path));
      const got = loadModel(backend, path);
      expect(got.config).toEqual(ref.config);
      expect(readModelConfig(path)).toEqual(ref.config);
      expect(firstBitDifference(logitsOf(got), logitsOf(ref))).toBeNull();
      for (const t of ["tokenEmbeddingTable", "finalNormTable", "classifierTable"] as const) expect(firstBitDifference(got[t], ref[t]), t).toBeNull();
      got.dispose();
      ref.dispose();
      expect(live(backend)).toBe(before);
    }
  });

  it.each(["wasm", "js"] as const)(
    "IO-LOAD-MODEL-CHECKSUM (%s): teacherChecksum of the Transformer loadModel made, and of one made from the checkpoint, is the checkpoint's (v0 shared, v1 separate classifier), before and after forward calls (a weight's panels in place read as rows); node:crypto's SHA-256 and the pure-JS one give the same digest",
    async (name) => {
      const backend = await createBackend(name, { threads: 1 });
      const v1 = join(tmp, `checksum-v1-${name}.bin`);
      writeCheckpoint(v1, randomCheckpoint({ ...small, vocabSize: 40 }, 9), 1);
      const digests = new Set<string>();
      for (const path of [MODEL, v1]) {
        const ckpt = readModel(path);
        const want = teacherChecksum(ckpt);
        digests.add(want);
        expect(teacherChecksumWith(ckpt, pureJsHash())).toBe(want);
        const loaded = loadModel(backend, path);
        const uploaded = new Transformer(backend, ckpt);
        for (const m of [loaded, uploaded]) {
          expect(teacherChecksum(m)).toBe(want);
          expect(teacherChecksumWith(m, pureJsHash())).toBe(want);
          const logits = logitsOf(m);
          expect(teacherChecksum(m)).toBe(want);
          // Its rows read back for the checksum, the model still computes the same logits.
          expect(firstBitDifference(logitsOf(m), logits)).toBeNull();
          m.dispose();
        }
        expect(() => teacherChecksum(loaded)).toThrow(/withWeightRows/);
      }
      // On an int8 backend the weights' panels are their own memory: reading the rows for the checksum keeps them.
      if (name === "wasm") {
        const int8 = await createBackend("wasm", { threads: 1, weights: "int8" });
        const m = loadModel(int8, MODEL);
        const logits = logitsOf(m);
        const wq = (m as unknown as { weights: { layers: { wq: { packedPtr: number } }[] } }).weights.layers[0].wq;
        const panels = wq.packedPtr;
        expect(panels).not.toBe(0);
        expect(teacherChecksum(m)).toBe(teacherChecksum(readModel(MODEL)));
        expect(wq.packedPtr, "the int8 panels kept").toBe(panels);
        expect(firstBitDifference(logitsOf(m), logits)).toBeNull();
        m.dispose();
        int8.dispose?.();
      }
      // One weight's bit flipped: another digest.
      const flipped = readModel(MODEL);
      flipped.weights.layers[0].wq[3] = Math.fround(flipped.weights.layers[0].wq[3] * 1.0000001 + 1e-7);
      expect(digests.has(teacherChecksum(new Transformer(backend, flipped)))).toBe(false);
      expect(digests.size).toBe(2);
    },
  );

  it("IO-LOAD-MODEL: a weight that is not finite is the FileFormatError readCheckpoint gives (naming the tensor and index), and the buffers read so far are freed; a file of another kind is named as readModel names it", async () => {
    const backend = await createBackend("wasm", { threads: 1 });
    const ckpt = randomCheckpoint(small, 3);
    const path = join(tmp, "load-nan.bin");
    // writeCheckpoint refuses a NaN: patch the file's bytes of layer 1's w2[5] (a random float, found by its bits).
    const bytes = serializeCheckpoint(ckpt, 1);
    const bits = new Uint8Array(new Float32Array([ckpt.weights.layers[1].w2[5]]).buffer);
    const at = Buffer.from(bytes).indexOf(Buffer.from(bits));
    expect(at).toBeGreaterThan(0);
    new DataView(bytes.buffer, bytes.byteOffset).setFloat32(at, Number.NaN, true);
    writeFileSync(path, bytes);
    loadModel(backend, MODEL).dispose();
    const before = live(backend);
    const e = formatError(() => loadModel(backend, path), path);
    expect(e.message).toBe(formatError(() => readCheckpoint(path), path).message);
    expect(e.message).toContain("tensor layer 1 w2 holds NaN at index 5");
    // A large tensor's bad float is named by its index in the tensor: here the embedding's float 300000 is +Infinity.
    const wide = randomCheckpoint({ ...small, vocabSize: 20000 }, 4);
    const wideBytes = serializeCheckpoint(wide, 0);
    new DataView(wideBytes.buffer, wideBytes.byteOffset).setFloat32(28 + 4 * 300000, Number.POSITIVE_INFINITY, true);
    const widePath = join(tmp, "load-inf.bin");
    writeFileSync(widePath, wideBytes);
    expect(formatError(() => loadModel(backend, widePath), widePath).message).toBe(`${widePath}: tensor tokenEmbedding holds Infinity at index 300000; a model's weights must be finite numbers`);
    expect(live(backend)).toBe(before);
    const cut = join(tmp, "load-cut.bin");
    writeFileSync(cut, modelBytes.subarray(0, 1000));
    expect(formatError(() => loadModel(backend, cut), cut).message).toBe(formatError(() => readModel(cut), cut).message);
    // Weights given on the backend are checked by shape, by name.
    expect(() => new Transformer(backend, { config: small, device: {} as never })).toThrow(/device checkpoint's device must be \{ tokenEmbedding, layers \(2\)/);
    const device = allocWeights(backend, small),
      three = backend.alloc(3);
    expect(() => new Transformer(backend, { config: small, device: { ...device, tokenEmbedding: three } })).toThrow("Transformer: device weight tokenEmbedding must be an f32 buffer of 160 elements");
    // A tied classifier is the embedding's own buffer: a separate one would be read by the forward pass but not by a teacher checksum.
    const tied = allocWeights(backend, { ...small, sharedClassifier: true });
    expect(() => new Transformer(backend, { config: { ...small, sharedClassifier: true }, device: { ...tied, wcls: device.wcls } })).toThrow("Transformer: the config says the classifier is shared (sharedClassifier: true), so device.wcls must be the tokenEmbedding buffer itself, got a separate buffer");
    freeWeights(backend, tied);
    freeWeights(backend, device);
    backend.free(three);
    const tok = resolve(ROOT, "../shared/models/tok512.bin");
    expect(formatError(() => loadModel(backend, tok), tok).message).toBe(formatError(() => readModel(tok), tok).message);
    expect(live(backend)).toBe(before);
  });
});
