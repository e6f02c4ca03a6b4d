/**
 * A hostile user's sweep of the library API, third round: wrong types and
 * edge values on the sampling functions, the backend registry, the js
 * backend, the conformance suite, the model file writers and the dataset
 * functions. Each must give an Error naming the argument, never a raw V8
 * error, an ignored option or a silent wrong answer.
 */
import { execFileSync } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { writeFilesAtomically } from "../src/io/atomic-write.js";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { type Backend, BackendError } from "../src/backends/backend.js";
import { JsBackend } from "../src/backends/js/index.js";
import { runBackendConformance } from "../src/backends/conformance.js";
import { createBackend, listBackends, registerBackend } from "../src/backends/registry.js";
import { DatasetWriter, readDataset, totalRecords } from "../src/data/dataset.js";
import { bosPrompts, datasetMeta, generateRecord, metaSampling, nextU, pregenerate, promptsDigest, recordPrompt, recordRng } from "../src/data/pregenerate.js";
import { generateStories, heldOutSeed, storyPrompt } from "../src/data/synthetic.js";
import { readCheckpoint, serializeCheckpoint, writeCheckpoint } from "../src/io/checkpoint.js";
import { readHfCheckpoint, writeHfCheckpoint } from "../src/io/hf-checkpoint.js";
import { loadTokenizer, readModel } from "../src/io/model-file.js";
import { randomCheckpoint } from "../src/model/init.js";
import { Transformer } from "../src/model/transformer.js";
import { ArrayAux, readAuxFile, uFromU32, XorShiftAux } from "../src/sampling/aux.js";
import { argmax, binOf, pick } from "../src/sampling/pick.js";
import { applyTemperature, samplingDistribution, validateSamplingSettings } from "../src/sampling/processors.js";
import { sampleToken } from "../src/sampling/sampler.js";
import { softmaxF32 } from "../src/sampling/softmax.js";
import { betaSample } from "../src/sampling/u-in-bin.js";
import { UStream } from "../src/sampling/ustream.js";
import { Mulberry32 } from "../src/util/prng.js";
import { TOK_512 } from "./helpers.js";

const CONFIG = { dim: 8, hiddenDim: 12, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 16, seqLen: 16, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };
const scratch = (): string => mkdtempSync(join(tmpdir(), "ptp-api-sweep-"));
const any = (v: unknown) => v as never;

describe("sampling: rows, probabilities, settings and u sources", () => {
  it("API-SAMPLING-PROBS: pick refuses a probability that is NaN, negative, above 1 or Infinity (it shifted every later bin and picked a token silently)", () => {
    for (const [probs, bad] of [
      [[NaN, 1], "NaN"],
      [[-1, 2], "-1"],
      [[Infinity, 0], "Infinity"],
      [[0.5, 1.5], "1.5"],
    ] as const) {
      expect(() => pick(0.99, new Float32Array(probs))).toThrow(RangeError);
      expect(() => pick(0.99, new Float32Array(probs))).toThrow(new RegExp(`^pick: probability \\d must be in \\[0, 1\\], got ${bad}`));
    }
    // Valid rows pick as before, and pick agrees with binOf.
    const P = new Float32Array([0.25, 0, 0.75]);
    expect(pick(0.3, P)).toBe(2);
    expect(binOf(P, 2)).toEqual([0.25, 1]);
    expect(() => pick(0.5, new Float32Array([0, 0]))).toThrow(/no token with nonzero probability/);
  });

  it("API-SAMPLING-SETTINGS-TYPO: a misspelled sampling option (top_p, topk, temp) is refused naming the one meant, and any other key (minP) is refused, not ignored", () => {
    const logits = new Float32Array([1, 2, 3, 4]);
    for (const [key, meant] of [
      ["top_p", "topP"],
      ["topk", "topK"],
      ["TopP", "topP"],
      ["top-k", "topK"],
      ["temp", "temperature"],
      ["Temperature", "temperature"],
    ] as const) {
      const settings = { temperature: 1, [key]: 0.5 };
      expect(() => samplingDistribution(logits, any(settings)), key).toThrow(new RegExp(`unknown option "${key}"; did you mean ${meant}\\?`));
      expect(() => validateSamplingSettings(any(settings))).toThrow(RangeError);
    }
    // The options themselves pass; any other key is refused (a setting this library lacks, minP, sampled unfiltered in silence).
    expect(samplingDistribution(logits, { temperature: 1, topK: 2, topP: 0.9 })[3]).toBeGreaterThan(0.5);
    expect(() => validateSamplingSettings(any({ temperature: 1, comment: "x" }))).toThrow('sampling settings: unknown option "comment" (the options are temperature, topK and topP)');
    expect(() => samplingDistribution(logits, any({ temperature: 1, minP: 0.05 }))).toThrow(/unknown option "minP"/);
    expect(() => samplingDistribution(logits, any({ temperature: 1, topKs: 5 }))).toThrow(/unknown option "topKs"; did you mean topK\?/);
  });

  it("API-SAMPLING-ROWS: softmaxF32, applyTemperature, argmax, sampleToken and betaSample name a missing or wrong argument (no 'Cannot read properties')", () => {
    expect(() => softmaxF32(any(undefined))).toThrow(/^softmaxF32: logits must be a Float32Array, got undefined/);
    expect(() => softmaxF32(any(new Float64Array(2)))).toThrow(TypeError);
    expect(() => applyTemperature(any(undefined), 1)).toThrow(/^applyTemperature: logits must be a Float32Array/);
    expect(() => argmax(any(null))).toThrow(/^argmax: logits must be an array or typed array of numbers, got null/);
    expect(() => argmax(any({}))).toThrow(TypeError); // had returned 0
    expect(argmax([1, 3, 2])).toBe(1);
    expect(() => sampleToken(any([1, 2]), { temperature: 0 }, undefined)).toThrow(/^sampleToken: logits must be a Float32Array/);
    expect(() => betaSample(any(undefined), 1)).toThrow(/^betaSample: rng must be a Mulberry32/);
    expect(() => betaSample(any({}), 1)).toThrow(TypeError);
  });

  it("API-SAMPLING-U-SOURCES: uFromU32 takes 32-bit integers only, UStream an integer first position, ArrayAux a bounded length, readAuxFile a path", () => {
    for (const bits of [NaN, 1.5, -1, 2 ** 32, 2 ** 40]) expect(() => uFromU32(bits), String(bits)).toThrow(/^uFromU32: bits must be an integer in \[0, 2\^32\)/);
    expect(uFromU32(0xffffffff)).toBe(16777215 / 16777216);
    // A symbol or a bigint: a TypeError naming uFromU32 (was the engine's "Cannot convert a Symbol value to a number" / "Cannot mix BigInt and other types").
    for (const bits of [Symbol("b"), 5n, "5"]) {
      expect(() => uFromU32(bits as never), String(bits)).toThrow(TypeError);
      expect(() => uFromU32(bits as never), String(bits)).toThrow(/^uFromU32: bits must be an integer in \[0, 2\^32\), got (symbol|5n \(bigint\)|"5" \(string\))$/);
    }
    // first NaN made at(0) return undefined (a u of undefined) instead of an error.
    for (const first of [NaN, -1, 1.5]) expect(() => new UStream(new XorShiftAux(1), first)).toThrow(/the first sampled position must be a non-negative integer/);
    expect(new UStream(new XorShiftAux(1), 0).at(0)).toBe(new XorShiftAux(1).next());
    expect(() => new ArrayAux(any({ length: 1e10 }))).toThrow(/^u array: ArrayAux takes at most \d+ u's/);
    for (const path of [undefined, null, 5, ""]) expect(() => readAuxFile(any(path))).toThrow(/^readAuxFile: path must be a file path \(a non-empty string\)/);
  });
});

describe("seeds are integers", () => {
  it("API-SEED-INTEGER: Mulberry32, generateStories, heldOutSeed and randomCheckpoint refuse a seed that is not an integer (NaN and undefined were seed 0, 1.5 was 1)", () => {
    for (const seed of [NaN, undefined, 1.5, "5", 1n, Infinity]) {
      expect(() => new Mulberry32(any(seed)), String(seed)).toThrow(/^Mulberry32: seed must be an integer \(reduced to 32 bits\)/);
      expect(() => generateStories(1, any(seed))).toThrow(/^generateStories: seed must be an integer/);
      expect(() => heldOutSeed(any(seed))).toThrow(/^heldOutSeed: seed must be an integer/);
      expect(() => randomCheckpoint(CONFIG, any(seed))).toThrow(RangeError);
    }
    expect(() => Mulberry32.resume(NaN)).toThrow(/^Mulberry32.resume: stateWord must be an integer/);
    // Integers are reduced to 32 bits, as documented.
    expect(new Mulberry32(-1).nextU32()).toBe(new Mulberry32(2 ** 32 - 1).nextU32());
    expect(new Mulberry32(2 ** 32 + 5).nextU32()).toBe(new Mulberry32(5).nextU32());
  });
});

describe("backends: the registry, the conformance suite and the js reference", () => {
  it("API-REGISTRY: registerBackend takes a string name and a function; createBackend an options object whose keys the built-in backend reads, and refuses a factory's non-Backend", async () => {
    expect(() => registerBackend(any(undefined), async () => new JsBackend())).toThrow(/^registerBackend: name must be/);
    for (const factory of [undefined, null, 5, {}]) expect(() => registerBackend("sweep-bad", any(factory))).toThrow(/^registerBackend: factory must be a function/);
    expect(listBackends()).not.toContain("sweep-bad");
    for (const options of [null, 5, "x", []]) await expect(createBackend("js", any(options))).rejects.toThrow(/^createBackend: options must be an object/);
    // A misspelled option was ignored; js has no bf16 or int8 weights (they were ignored: an f32 model ran).
    await expect(createBackend("wasm", any({ thread: 2 }))).rejects.toThrow(/^createBackend: unknown option "thread" for the wasm backend; it reads wasmBuild, threads/);
    await expect(createBackend("js", any({ wasmBuild: "simd" }))).rejects.toThrow(/^createBackend: unknown option "wasmBuild" for the js backend/);
    await expect(createBackend("js", { weights: "bf16" })).rejects.toThrow(/^createBackend: the js backend computes in f32 only, got weights "bf16"/);
    expect((await createBackend("js", { threads: 1, weights: "f32" })).name).toBe("js");
    // A plug-in's factory takes any keys, but must return a Backend.
    registerBackend("sweep-plugin", async (o) => (o.mine === 1 ? new JsBackend() : any({ name: "x" })));
    expect((await createBackend("sweep-plugin", { mine: 1 })).name).toBe("js");
    await expect(createBackend("sweep-plugin", { mine: 2 })).rejects.toThrow(/^createBackend: the factory registered as "sweep-plugin" returned an object that is not a Backend \(it lacks alloc, upload/);
    await expect(createBackend(any(5))).rejects.toThrow(/^unknown backend 5/);
  });

  it("API-CONFORMANCE-ARGS: runBackendConformance names a bad backend, options object or option key, and bounds runs (10^9 runs held the thread for hours)", async () => {
    for (const backend of [undefined, null, 5, {}]) await expect(runBackendConformance(any(backend))).rejects.toThrow(/^runBackendConformance: backend must be a registered backend's name or a Backend instance/);
    await expect(runBackendConformance("js", any(null))).rejects.toThrow(/^runBackendConformance: options must be an object/);
    await expect(runBackendConformance("js", any({ run: 1 }))).rejects.toThrow(/^runBackendConformance: unknown option "run"; did you mean runs\? \(the options are runs, seed, backendOptions\)/);
    await expect(runBackendConformance("js", { runs: 1e9 })).rejects.toThrow(/^runBackendConformance: runs must be at most 10000/);
    await expect(runBackendConformance("js", { runs: 1, backendOptions: any(5) })).rejects.toThrow(/^createBackend: options must be an object/);
  });

  it("API-JS-BACKEND-ARGS: the js reference checks sizes, offsets, dtypes and data as the wasm backend does (NaN sizes were silent no-ops, fractional offsets were truncated)", async () => {
    for (const b of [new JsBackend(), await createBackend("wasm", { threads: 1 })] as Backend[]) {
      const x = b.alloc(4),
        y = b.alloc(4),
        w = b.alloc(4),
        pos = b.alloc(1, "i32");
      const refuse = (f: () => unknown, pattern: RegExp) => {
        expect(f, `${b.name} ${pattern}`).toThrow(BackendError);
        expect(f, `${b.name} ${pattern}`).toThrow(pattern);
      };
      refuse(() => b.alloc(4, any("f64")), /alloc: unknown dtype "f64"/);
      refuse(() => b.alloc(2 ** 40), /out of memory/);
      refuse(() => b.upload(x, new Float32Array([9]), NaN), /upload: 1 elements at offset NaN/);
      refuse(() => b.upload(x, new Float32Array([9]), 1.5), /upload: 1 elements at offset 1.5/);
      refuse(() => b.download(x, 1.5), /download: range \[1.5/);
      refuse(() => b.download(x, 0, NaN), /download: range \[0, NaN\)/);
      refuse(() => b.matmul(y, x, w, NaN, 2, 2), /matmul: M must be a non-negative integer, got NaN/);
      refuse(() => b.matmul(y, x, w, 1, -2, 2), /matmul: K must be a non-negative integer, got -2/);
      refuse(() => b.rmsnorm(y, x, w, 1.5, 2, 1e-5), /rmsnorm: M must be a non-negative integer/);
      refuse(() => b.rope(x, pos, 1, 1, 3, 10000), /rope: headSize must be even, got 3/);
      refuse(() => b.softmax(x, NaN, 4), /softmax: M must be a non-negative integer/);
      refuse(() => b.add(y, x, NaN), /add: n must be a non-negative integer/);
      refuse(() => b.swiglu(y, x, w, -1), /swiglu: n must be a non-negative integer/);
      refuse(() => b.copy(y, NaN, x, 0, 2), /copy: dstOffset must be a non-negative integer/);
      refuse(() => b.copy(y, 0, x, 0, 1.5), /copy: n must be a non-negative integer/);
      refuse(() => b.attention(y, x, x, x, null, 1, 2, 2, 0, 2), /attention: nHeads 2 is not a multiple of nKvHeads 0/);
      if (b instanceof JsBackend) {
        refuse(() => b.upload(x, any(undefined)), /upload: data must be a typed array/);
        refuse(() => b.download(any(null)), /not a buffer of this backend/);
      }
      for (const buf of [x, y, w, pos]) b.free(buf);
      (b as Backend).dispose?.();
    }
  });
});

describe("model files: paths, checkpoints and write failures", () => {
  it("API-PATHS: the readers and writers name a path that is not a non-empty string (Node's 'The \"path\" argument must be of type string' or a raw 'Cannot read properties' before)", () => {
    const ckpt = randomCheckpoint(CONFIG, 1);
    for (const path of [undefined, null, 5, ""]) {
      const p = any(path);
      expect(() => readCheckpoint(p)).toThrow(/^readCheckpoint: path must be a file path \(a non-empty string\), got /);
      expect(() => readHfCheckpoint(p)).toThrow(/^readHfCheckpoint: dir must be a file path/);
      expect(() => readModel(p)).toThrow(/^readModel: path must be a file path/);
      expect(() => loadTokenizer(p, 512)).toThrow(/^loadTokenizer: path must be a file path/);
      expect(() => writeCheckpoint(p, ckpt)).toThrow(/^writeCheckpoint: path must be a file path/);
      expect(() => writeHfCheckpoint(p, ckpt)).toThrow(/^writeHfCheckpoint: dir must be a file path/);
      expect(() => readDataset(p)).toThrow(/^readDataset: path must be a file path/);
    }
    expect(loadTokenizer(TOK_512, 512).vocabSize).toBe(512);
  });

  it("API-WRITE-ERRORS: a write into a missing folder, onto a directory or over a file where a folder goes names the user's path and the cause, not the temporary file, and leaves nothing", () => {
    const dir = scratch();
    const ckpt = randomCheckpoint(CONFIG, 1);
    const check = (f: () => unknown, pattern: RegExp) => {
      let err: unknown;
      try {
        f();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toMatch(pattern);
      expect((err as Error).message).not.toMatch(/\.tmp|ENOENT|EISDIR|ENOTDIR/);
    };
    check(() => writeCheckpoint(join(dir, "nope", "m.bin"), ckpt), new RegExp(`^${dir}/nope/m.bin: cannot write: its folder ${dir}/nope does not exist`));
    mkdirSync(join(dir, "folder"));
    check(() => writeCheckpoint(join(dir, "folder"), ckpt), new RegExp(`^${dir}/folder: cannot write: it is a directory`));
    writeFileSync(join(dir, "a-file"), "mine\n");
    check(() => writeHfCheckpoint(join(dir, "a-file"), ckpt), new RegExp(`^${dir}/a-file: cannot write a folder there: it exists and is not a folder`));
    // The folder writers make their parents: a file in the way, or a NUL byte, is said in words too.
    check(() => writeHfCheckpoint(join(dir, "a-file", "sub", "hf"), ckpt), new RegExp(`^${dir}/a-file/sub: cannot write: (a part of the path is a file|a file is in the way)`));
    check(() => writeHfCheckpoint(join(dir, "x\u0000y", "hf"), ckpt), /: cannot write: the path holds a NUL byte$/);
    check(() => writeCheckpoint(join(dir, "x\u0000y.bin"), ckpt), /: cannot write: the path holds a NUL byte$/);
    expect(readdirSync(dir).sort()).toEqual(["a-file", "folder"]);
    expect(readdirSync(join(dir, "folder"))).toEqual([]);
  });

  it("API-WRITE-SPECIAL: a writer refuses to rename over a FIFO (or a device, a socket) at its path, leaving it in place (as root, writeCheckpoint replaced /dev/null with a regular file); a folder write checks every name it replaces before changing anything", () => {
    const dir = scratch();
    const ckpt = randomCheckpoint(CONFIG, 1);
    const fifo = join(dir, "pipe");
    execFileSync("mkfifo", [fifo]);
    expect(() => writeCheckpoint(fifo, ckpt)).toThrow(new RegExp(`^${fifo}: cannot write: it is a FIFO, not a regular file; refusing to replace it$`));
    expect(() =>
      writeFilesAtomically([
        { path: join(dir, "ok.bin"), bytes: new Uint8Array(1) },
        { path: fifo, bytes: new Uint8Array(1) },
      ]),
    ).toThrow(/it is a FIFO/);
    expect(lstatSync(fifo).isFIFO()).toBe(true);
    expect(readdirSync(dir).sort()).toEqual(["pipe"]);
    // A sharded model, then a single-file one over it whose config.json cannot be replaced: the old shards stay.
    const hf = join(dir, "hf");
    writeHfCheckpoint(hf, ckpt, { maxShardBytes: 4096 });
    const before = readdirSync(hf).sort();
    rmSync(join(hf, "config.json"));
    mkdirSync(join(hf, "config.json"));
    expect(() => writeHfCheckpoint(hf, ckpt)).toThrow(new RegExp(`^${hf}/config.json: cannot write: it is a directory`));
    expect(readdirSync(hf).sort()).toEqual(before);
  });

  it("API-WRITE-CHECKPOINT: the writers refuse a non-checkpoint, a bad version or option, and weights readCheckpoint would refuse (NaN/Inf: the file was written, then unreadable)", () => {
    const dir = scratch();
    for (const c of [null, {}, { config: CONFIG }, { config: CONFIG, weights: {} }]) {
      expect(() => writeCheckpoint(join(dir, "x.bin"), any(c))).toThrow(/^writeCheckpoint: the checkpoint must be an object \{ config, weights \}/);
      expect(() => serializeCheckpoint(any(c))).toThrow(/^serializeCheckpoint: the checkpoint must be an object \{ config, weights \}/);
      expect(() => writeHfCheckpoint(join(dir, "x"), any(c))).toThrow(/^writeHfCheckpoint: the checkpoint must be an object/);
    }
    const ckpt = randomCheckpoint(CONFIG, 1);
    for (const version of [2, -1, NaN, "1"]) expect(() => serializeCheckpoint(ckpt, any(version))).toThrow(RangeError);
    expect(() => writeCheckpoint(join(dir, "x.bin"), ckpt, any("1"))).toThrow(/^writeCheckpoint: unsupported version "1" \(string\) \(expected 0 or 1\)/);
    expect(() => writeHfCheckpoint(join(dir, "x"), ckpt, any(null))).toThrow(/^writeHfCheckpoint: options must be an object/);
    expect(() => writeHfCheckpoint(join(dir, "x"), ckpt, any({ shardSize: 10 }))).toThrow(/^writeHfCheckpoint: unknown option "shardSize" \(the one option is maxShardBytes\)/);
    for (const max of [0, -1, NaN, 1.5]) expect(() => writeHfCheckpoint(join(dir, "x"), ckpt, { maxShardBytes: max })).toThrow(/^writeHfCheckpoint: maxShardBytes must be a positive integer/);
    const bad = randomCheckpoint(CONFIG, 1);
    bad.weights.layers[0].wq[3] = Number.POSITIVE_INFINITY;
    expect(() => writeCheckpoint(join(dir, "bad.bin"), bad)).toThrow(/^writeCheckpoint: .*bad.bin not written: tensor layer 0 wq holds Infinity at index 3/);
    expect(() => writeHfCheckpoint(join(dir, "bad"), bad)).toThrow(/^writeHfCheckpoint: .*bad not written: tensor layer 0 wq holds Infinity at index 3/);
    expect(readdirSync(dir)).toEqual([]);
    // A good one still round-trips.
    writeCheckpoint(join(dir, "ok.bin"), ckpt);
    expect(readCheckpoint(join(dir, "ok.bin")).weights.layers[0].wq).toEqual(ckpt.weights.layers[0].wq);
  });
});

describe("distillation data: metadata, records, writers and stories", () => {
  const setup = async () => {
    const b = new JsBackend();
    const ckpt = randomCheckpoint(CONFIG, 1);
    const model = new Transformer(b, ckpt);
    const settings = { sampling: { temperature: 1 }, samplesPerPrompt: 2, maxSteps: 4, seed: 5 };
    return { b, ckpt, model, settings, meta: datasetMeta(ckpt, bosPrompts(), settings, b) };
  };

  it("API-DATA-META: datasetMeta, recordRng, recordPrompt, promptsDigest, nextU, metaSampling and totalRecords name a bad argument (misspelled settings were ignored; recordPrompt(-1) returned prompt -1)", async () => {
    const { b, ckpt, settings, meta } = await setup();
    expect(() => datasetMeta(ckpt, bosPrompts(), any(undefined), b)).toThrow(/^datasetMeta: settings must be an object/);
    expect(() => datasetMeta(ckpt, bosPrompts(), any({ ...settings, maxstep: 3 }), b)).toThrow(/^datasetMeta: unknown setting "maxstep"/);
    expect(() => datasetMeta(ckpt, bosPrompts(), any({ ...settings, sampling: { temperature: 1, top_k: 3 } }), b)).toThrow(/unknown option "top_k"; did you mean topK\?/);
    expect(() => datasetMeta(ckpt, any(null), settings, b)).toThrow(/^datasetMeta: prompts must be a PromptSet/);
    expect(() => datasetMeta(ckpt, { source: "x", tokens: [[99]] }, settings, b)).toThrow(/^datasetMeta: prompt 0, position 0: token ids must be integers in \[0, 16\)/);
    expect(() => datasetMeta(ckpt, { source: "x", tokens: [[]] }, settings, b)).toThrow(/^datasetMeta: prompt 0 has 0 tokens/);
    expect(() => datasetMeta(ckpt, bosPrompts(), settings, any(null))).toThrow(/^datasetMeta: backend must be the Backend/);
    expect(() => datasetMeta(any(null), bosPrompts(), settings, b)).toThrow(/^datasetMeta: teacher must be a Checkpoint/);
    for (const [seed, index] of [
      [NaN, 0],
      [1.5, 0],
      [-1, 0],
      [2 ** 32, 0],
      [1, NaN],
      [1, -1],
    ]) {
      expect(() => recordRng(seed, index), `${seed} ${index}`).toThrow(/^recordRng: (seed|index) must be an integer in \[0, 2\^32\)/);
    }
    for (const index of [-1, 1.5, NaN, 2]) expect(() => recordPrompt(meta, index)).toThrow(/^recordPrompt: index must be an integer in \[0, 2\)/);
    expect(recordPrompt(meta, 1)).toEqual({ prompt: 0, sample: 1 });
    // [[1.5]] had the digest of [[1]].
    expect(() => promptsDigest([[1.5]])).toThrow(/^promptsDigest: prompt 0, position 0: token ids must be integers \(int32\)/);
    expect(() => promptsDigest(any(null))).toThrow(/^promptsDigest: prompts must be an array/);
    expect(() => nextU(any(undefined))).toThrow(/^nextU: rng must be a Mulberry32/);
    expect(() => metaSampling(any(null))).toThrow(/^metaSampling: meta must be/);
    expect(() => totalRecords(any(null))).toThrow(/^totalRecords: meta must be/);
  });

  it("API-DATA-WRITER: DatasetWriter.open, append, pregenerate and readDataset check their options and records; a folder is refused by name (EISDIR or 'file exists' before)", async () => {
    const { model, meta } = await setup();
    const dir = scratch();
    for (const options of [undefined, null, {}, { resume: "yes" }, { resum: true }]) {
      expect(() => DatasetWriter.open(join(dir, "d.bin"), meta, any(options)), JSON.stringify(options)).toThrow(/^DatasetWriter.open: options must be \{ resume: true \} or \{ resume: false \}/);
    }
    expect(() => DatasetWriter.open(join(dir, "d.bin"), meta, any({ resume: false, force: true }))).toThrow(/^DatasetWriter.open: unknown option "force"/);
    // A meta key the header does not hold was written, then ignored by every reader; a bad field names the call and the file.
    const d = join(dir, "d.bin");
    expect(() => DatasetWriter.open(d, any({ ...meta, bogus: 1 }), { resume: false })).toThrow(`DatasetWriter.open: ${d}: unknown option "bogus" in meta`);
    expect(() => DatasetWriter.open(d, any({ ...meta, sampling: { ...meta.sampling, top_p: 1 } }), { resume: false })).toThrow(`DatasetWriter.open: ${d}: unknown option "top_p" in meta.sampling; did you mean topP?`);
    expect(() => DatasetWriter.open(d, any({ ...meta, seed: -1 }), { resume: false })).toThrow(`DatasetWriter.open: ${d}: metadata field seed (an integer in [0, 2^32)) is missing or invalid`);
    for (const resume of [false, true]) expect(() => DatasetWriter.open(dir, meta, { resume })).toThrow(new RegExp(`^${dir}: is a directory, expected a PTP distillation dataset to ${resume ? "resume" : "create"}`));
    expect(existsSync(join(dir, "d.bin"))).toBe(false);
    const w = DatasetWriter.open(join(dir, "d.bin"), meta, { resume: false });
    try {
      expect(() => w.append(any(null))).toThrow(/record 0: a record must be an object \{ promptLength, tokens, left, right \}/);
      expect(() => w.append(any({}))).toThrow(/record 0: tokens must be an array or typed array, got undefined/);
      const rec = generateRecord(model, meta, bosPrompts(), 0);
      // A plain-array record whose token is 1.5 was stored as 1.
      expect(() => w.append({ ...rec, tokens: any([...rec.tokens.slice(0, -1), 1.5]) })).toThrow(/record 0: token \d+ is 1.5, outside the vocabulary/);
      for (const options of [null, { syncEvery: 0 }, { syncEvery: NaN }, { onProgress: 5 }, { signal: {} }, { sync: 1 }]) {
        await expect(pregenerate(model, w, bosPrompts(), any(options)), JSON.stringify(options)).rejects.toThrow(/^pregenerate: /);
      }
      await expect(pregenerate(model, any(null), bosPrompts())).rejects.toThrow(/^pregenerate: writer must be a DatasetWriter/);
      expect(w.records).toBe(0);
      const summary = await pregenerate(model, w, bosPrompts(), { syncEvery: 1 });
      expect(summary.done).toBe(2);
    } finally {
      w.close();
    }
    expect(() => readDataset(join(dir, "d.bin"), any(null))).toThrow(/^readDataset: options must be an object/);
    expect(() => readDataset(join(dir, "d.bin"), any({ allowTorn: true }))).toThrow(/^readDataset: unknown option "allowTorn"/);
    expect(() => readDataset(join(dir, "d.bin"), any({ allowTornTail: "yes" }))).toThrow(/^readDataset: allowTornTail must be true or false/);
    expect(readDataset(join(dir, "d.bin")).records.length).toBe(2);
  });

  it("API-DATA-STORIES: storyPrompt and generateStories check their arguments (storyPrompt(s, -1) dropped the last word, NaN gave an empty prompt)", () => {
    expect(() => storyPrompt(any(undefined), 3)).toThrow(/^storyPrompt: story must be a string/);
    for (const words of [-1, NaN, 1.5]) expect(() => storyPrompt("a b c", words)).toThrow(/^storyPrompt: words must be a non-negative integer/);
    expect(storyPrompt("a b c", 2)).toBe("a b");
    expect(() => generateStories(1, 1, any(5))).toThrow(/^generateStories: onStory must be a function/);
    expect(generateStories(2, 7)).toEqual(generateStories(2, 7));
  });
});
