/**
 * A hostile user's sweep of the library API, fifth round: every function
 * exported from `ptp-ts/io` and the small helpers of `ptp-ts/model`, called
 * with nothing, null, a number, a string, an object or a Map where they
 * take bytes, a config, a path or tensors. Each must give an Error naming
 * the function and the argument, never a raw V8 error ("Cannot read
 * properties of undefined", "Cannot convert undefined or null to object",
 * "Maximum call stack size exceeded") or a silent wrong answer (a Map of
 * tensors written as a file of none); and the checks change no result.
 */
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  buildCharTokenizer,
  charVocabulary,
  checkpointByteLength,
  FileFormatError,
  hfTensorShapes,
  hfTensors,
  HfTokenizer,
  isPrintablePiece,
  legacyRopeTables,
  llama2cTokenizerToJson,
  modelConfigToHf,
  parseCheckpoint,
  parseSafetensors,
  parseSafetensorsHeader,
  permuteRowsFromHf,
  permuteRowsToHf,
  randomCheckpoint,
  rawBytePiece,
  serializeCheckpoint,
  serializeSafetensors,
  Tokenizer,
  tokenizerVocabSize,
  writeCharTokenizer,
  writeHfTokenizer,
  writeSafetensors,
} from "../src/io/index.js";
import { causalMask, headSize, kvDim, linearShape, newModelConfig, type ModelConfig } from "../src/model/index.js";
import { runCli, thrown, TOK_512 } from "./helpers.js";

const CONFIG: ModelConfig = { dim: 8, hiddenDim: 12, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 16, seqLen: 16, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };
const scratch = (): string => mkdtempSync(join(tmpdir(), "ptp-api-sweep3-"));
const any = (v: unknown) => v as never;
/** The odd arguments every function gets in place of its first. */
const ODD: unknown[] = [undefined, null, 42, "x", {}, [], Symbol("s")];
/** Never a raw engine error: an Error whose message starts with `where`. */
const named = (f: () => unknown, where: string): Error => {
  const e = thrown(f);
  expect(e).toBeInstanceOf(Error);
  expect(e.message, `${where}: ${e.message}`).not.toMatch(/Cannot read properties|is not a function|Cannot destructure|is not iterable|Cannot convert|Invalid typed array length|Maximum call stack|BigInt/);
  expect(e.message.startsWith(where), e.message).toBe(true);
  return e;
};

describe("io: bytes, configs, paths and tensors", () => {
  it("API-IO-ARGS: the parse functions, the config helpers, the writers and the piece tests of ptp-ts/io name a wrong argument (each was a raw TypeError or RangeError)", () => {
    const bytes = serializeCheckpoint(randomCheckpoint(CONFIG, 1));
    for (const v of ODD) {
      named(() => parseCheckpoint(any(v), "m.bin"), "parseCheckpoint:");
      named(() => parseSafetensors(any(v), "s.safetensors"), "parseSafetensors:");
      named(() => parseSafetensorsHeader(any(v), 0, "s.safetensors"), "parseSafetensorsHeader:");
      named(() => checkpointByteLength(any(v)), "checkpointByteLength:");
      named(() => legacyRopeTables(any(v)), "legacyRopeTables:");
      named(() => modelConfigToHf(any(v)), "modelConfigToHf:");
      named(() => hfTensorShapes(any(v)), "hfTensorShapes:");
      named(() => hfTensors(any(v)), "hfTensors:");
      named(() => permuteRowsToHf(any(v), 2, 4, 8), "permuteRowsToHf:");
      named(() => permuteRowsFromHf(any(v), 2, 4, 8), "permuteRowsFromHf:");
      named(() => llama2cTokenizerToJson(any(v)), "llama2cTokenizerToJson:");
      named(() => tokenizerVocabSize(any(v)), "tokenizerVocabSize:");
      named(() => rawBytePiece(any(v)), "rawBytePiece:");
      named(() => isPrintablePiece(any(v)), "isPrintablePiece:");
      named(() => Tokenizer.isPrintablePiece(any(v)), "isPrintablePiece:");
      if (typeof v !== "string") named(() => Tokenizer.load(TOK_512, 512).lookup(any(v)), `${TOK_512}: Tokenizer.lookup takes a piece as a string or a Uint8Array`);
      if (typeof v !== "string") {
        if (!(v !== null && typeof v === "object" && !Array.isArray(v))) named(() => serializeSafetensors(any(v)), "serializeSafetensors:"); // {} is a file of no tensors
        if (!Array.isArray(v)) named(() => charVocabulary(any(v)), "charVocabulary:"); // [] is a corpus of no lines
        if (!Array.isArray(v)) named(() => buildCharTokenizer(any(v)), "charVocabulary:");
        named(() => new FileFormatError("f", any(v)), "FileFormatError:");
      }
    }
    // The name that starts a parse error must be a string, the data length an integer.
    named(() => parseCheckpoint(bytes, any(undefined)), "parseCheckpoint: name");
    named(() => parseSafetensorsHeader(new Uint8Array(2), Number.NaN, "s"), "parseSafetensorsHeader: dataLength");
    // A fractional or missing field of a config, a version that is neither 0 nor 1.
    named(() => checkpointByteLength({ ...CONFIG, dim: 8.5 }), "checkpointByteLength: dim must be a positive integer");
    named(() => checkpointByteLength(CONFIG, any(2)), "checkpointByteLength: unsupported version 2");
    named(() => modelConfigToHf({ ...CONFIG, normEps: any(undefined) }), "modelConfigToHf: normEps");
    named(() => hfTensorShapes({ ...CONFIG, nLayers: 2 ** 31 - 1 }), "hfTensorShapes: nLayers must be <= 4096");
    // permuteRows: an odd head size dropped a row, a NaN count gave an empty array.
    named(() => permuteRowsToHf(new Float32Array(24), 2, 3, 4), "permuteRowsToHf: hs");
    named(() => permuteRowsToHf(new Float32Array(0), Number.NaN, 4, 8), "permuteRowsToHf: heads");
    // The tensors of a safetensors file: a string's characters were tensors "0", "1", ...; a tensor null.
    named(() => serializeSafetensors(any("ab")), "serializeSafetensors:");
    named(() => serializeSafetensors({ a: any(null) }), 'serializeSafetensors: tensor "a": must be an object');
    named(() => serializeSafetensors({}, any(null)), "serializeSafetensors: metadata");
    named(() => charVocabulary(any(["a", 5])), "charVocabulary: text must be a string or an array of strings (lines), but line 1 is 5");
    // FileFormatError itself: a problem that is not a string.
    named(() => new FileFormatError(any(undefined), "p"), "FileFormatError:");
    // Valid calls are unchanged.
    expect(parseCheckpoint(bytes, "m.bin").config).toEqual(CONFIG);
    expect(checkpointByteLength(CONFIG)).toBe(BigInt(bytes.length));
    expect(checkpointByteLength({ ...CONFIG, vocabSize: 2 ** 30 }) > 2n ** 32n).toBe(true); // an absurd header still gets its exact size
    expect(
      permuteRowsFromHf(
        permuteRowsToHf(
          Float32Array.from({ length: 64 }, (_, i) => i),
          2,
          4,
          8,
        ),
        2,
        4,
        8,
      ),
    ).toEqual(Float32Array.from({ length: 64 }, (_, i) => i));
    expect(isPrintablePiece(Uint8Array.of(0x41))).toBe(true);
    expect(rawBytePiece(new TextEncoder().encode("<0x0A>"))).toBe(10);
    expect(Tokenizer.load(TOK_512, 512).lookup("<0x0A>")).toBe(13);
    expect(new FileFormatError("f", "p").message).toBe("f: p");
    // A name with a control character or a line separator is quoted (the message stays one line); the path property keeps it as given.
    const odd = new FileFormatError("a\nb.bin", "p");
    expect([odd.message, odd.path]).toEqual(['"a\\nb.bin": p', "a\nb.bin"]);
    expect(new FileFormatError("a\u2028b\u0085", "p").message).toBe('"a\\u2028b\\u0085": p');
  });

  it("API-IO-CONSTRUCTORS: new Tokenizer() and new HfTokenizer() (private to TypeScript, callable from JavaScript) say how a tokenizer is made (each was 'Cannot read properties of undefined')", () => {
    const Tok = Tokenizer as unknown as new (...args: unknown[]) => unknown,
      HfTok = HfTokenizer as unknown as new (...args: unknown[]) => unknown;
    for (const args of [[], ...ODD.map((v) => [v]), ["t", 4, [], new Float32Array(1)]]) {
      expect(named(() => new Tok(...args), "Tokenizer: the constructor is internal")).toBeInstanceOf(TypeError);
      expect(named(() => new HfTok(...args), "HfTokenizer: the constructor is internal")).toBeInstanceOf(TypeError);
    }
    expect(named(() => new Tok(), "Tokenizer:").message).toMatch(/make a tokenizer with Tokenizer\.load\(path, vocabSize\) or Tokenizer\.fromBytes\(bytes, vocabSize, name\), got new Tokenizer\(undefined, \.\.\.\)$/);
    expect(named(() => new HfTok(), "HfTokenizer:").message).toMatch(/make a tokenizer with HfTokenizer\.load\(path, modelVocabSize\) or HfTokenizer\.fromJson\(json, config, name, modelVocabSize\)/);
    // The factories still make them.
    const tok = Tokenizer.load(TOK_512, 512);
    expect(tok.vocabSize).toBe(512);
    expect(HfTokenizer.fromJson(llama2cTokenizerToJson(tok), {}, "t", 512).encode("Once upon", true, false)).toEqual(tok.encode("Once upon", true, false));
  });

  it("API-IO-WRITE-ARGS: writeSafetensors, writeCharTokenizer and writeHfTokenizer check their path and data before anything is written (a Map of tensors was written as a file of no tensors; a bad tokenizer left an empty folder)", async () => {
    const dir = scratch();
    const tensors = hfTensors(randomCheckpoint(CONFIG, 1));
    const file = join(dir, "m.safetensors");
    const e = named(() => writeSafetensors(file, any(tensors)), "serializeSafetensors: tensors must be a plain object");
    expect(e.message).toContain("Object.fromEntries");
    expect(existsSync(file)).toBe(false);
    writeSafetensors(file, Object.fromEntries(tensors));
    expect(parseSafetensors(readFileSync(file), file).tensors.size).toBe(tensors.size);
    for (const v of ODD.filter((x) => typeof x !== "string")) {
      named(() => writeSafetensors(any(v), {}), "writeSafetensors:");
      named(() => writeCharTokenizer(any(v), "abc"), "writeCharTokenizer:");
      named(() => writeHfTokenizer(any(v), Tokenizer.load(TOK_512, 512)), "writeHfTokenizer:");
    }
    const hfDir = join(dir, "tok");
    for (const v of ODD) named(() => writeHfTokenizer(hfDir, any(v)), "writeHfTokenizer: tok must be a llama2.c Tokenizer");
    expect(existsSync(hfDir)).toBe(false);
    writeHfTokenizer(hfDir, Tokenizer.load(TOK_512, 512));
    expect(existsSync(join(hfDir, "tokenizer.json"))).toBe(true);
  });

  it("IO-CHAR-VOCAB-WIDE: a corpus of 170,000 distinct characters builds its char tokenizer (Math.max(...pieces) overflowed the stack: `ptp train --char-vocab` said 'Maximum call stack size exceeded')", async () => {
    let wide = "";
    for (let cp = 0x20000; cp < 0x20000 + 170_000; cp++) wide += String.fromCodePoint(cp);
    const bytes = buildCharTokenizer(wide);
    expect(tokenizerVocabSize(bytes)).toBe(3 + 256 + 170_001); // the specials, the bytes, the characters and " "
    expect(new DataView(bytes.buffer).getInt32(0, true)).toBe(6); // max_token_length: "\n</s>\n"
    const dir = scratch();
    const corpus = join(dir, "wide.txt");
    const { writeFileSync } = await import("node:fs");
    writeFileSync(corpus, `${wide}\nonce upon a time\n`);
    const r = await runCli("train", "--corpus", corpus, "--char-vocab", join(dir, "tok.bin"), "--out", join(dir, "m.bin"), "--steps", "1", "--dim", "8", "--heads", "2", "--hidden", "8", "--layers", "1", "--seq-len", "8", "--threads", "1");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/wrote a character tokenizer of 1702\d\d tokens/); // the corpus's characters, " ", "\n" and the prompt line's letters
  }, 120_000);
});

describe("model: the config helpers", () => {
  it("API-MODEL-HELPERS: headSize, kvDim, linearShape, newModelConfig and causalMask name a missing config, a non-number field, an unknown layer or a non-integer count (each was a raw TypeError, a silent NaN, or a string concatenated into a size)", () => {
    for (const v of ODD) {
      named(() => headSize(any(v)), "headSize:");
      named(() => kvDim(any(v)), "kvDim:");
      named(() => linearShape(any(v), "wq"), "linearShape:");
      named(() => newModelConfig(any(v)), "newModelConfig:");
      if (v !== 42) named(() => causalMask(any(v), 2), "causalMask: cached");
      if (v !== 42) named(() => causalMask(0, any(v)), "causalMask: M");
    }
    named(() => headSize({ ...CONFIG, nHeads: 0 }), "headSize: the config's nHeads must be a non-zero number");
    named(() => kvDim({ ...CONFIG, nKvHeads: any("1") }), "kvDim: the config's nKvHeads");
    named(() => linearShape(CONFIG, any("wx")), "linearShape: name must be one of wq, wk, wv, wo, w1, w2, w3");
    named(() => newModelConfig(any({ dim: 8, hiddenDim: 12, nLayers: 1, nHeads: 2, vocabSize: 16, seqLen: 16, seqlen: 4 })), 'newModelConfig: unknown option "seqlen" in shape; did you mean seqLen?');
    named(() => newModelConfig(any({ dim: "8", hiddenDim: 12, nLayers: 1, nHeads: 2, vocabSize: 16, seqLen: 16 })), "newModelConfig: the config's dim");
    named(() => causalMask(-1, 2), "causalMask: cached");
    named(() => causalMask(0, 2 ** 20), "causalMask: 1048576 rows");
    // Valid calls are unchanged (ptp train sizes a shape with vocabSize 0 before the corpus is read).
    expect([headSize(CONFIG), kvDim(CONFIG), ...linearShape(CONFIG, "wk")]).toEqual([4, 4, 4, 8]);
    expect(newModelConfig({ dim: 8, hiddenDim: 12, nLayers: 1, nHeads: 2, vocabSize: 0, seqLen: 16 }).nKvHeads).toBe(2);
    expect([...causalMask(1, 2)]).toEqual([1, 1, 0, 1, 1, 1]);
  });
});

describe("ptp: the helpers of ptp-ts/ptp", () => {
  it("API-PTP-HELPERS: auxFeatures, embedAux, chunkBytes, firstMismatch, proposerConfig, teacherShapeOf, decoderSettings and draftHeadOf name a wrong argument; firstMismatch refuses batches of different sizes (the prompts only the second held were never compared: it answered 'equal')", async () => {
    const { auxFeatures, chunkBytes, decoderSettings, draftHeadOf, embedAux, firstMismatch, proposerConfig, teacherShapeOf } = await import("../src/ptp/index.js");
    const tok = Tokenizer.load(TOK_512, 512);
    for (const v of ODD) {
      if (typeof v !== "number") named(() => auxFeatures(any(v), { kind: "bits" }), "auxFeatures: u");
      named(() => auxFeatures(0.5, any(v)), "auxFeatures:");
      named(() => embedAux(0.5, any(v), any({}), 4), "embedAux:");
      named(() => embedAux(0.5, { kind: "anchors" }, any(v), 4), "embedAux:");
      named(() => chunkBytes(any(v), [1, 5], [1]), "chunkBytes: tokenizer");
      if (!Array.isArray(v)) named(() => chunkBytes(tok, any(v), [1]), "chunkBytes: tokens");
      if (!Array.isArray(v)) named(() => firstMismatch(any(v), [[1]]), "firstMismatch: a");
      named(() => proposerConfig(any(v)), "proposerConfig:");
      named(() => teacherShapeOf(any(v)), "teacherShapeOf:");
      named(() => draftHeadOf(any(v), CONFIG, any({})), "draftHeadOf: student");
      if (v !== undefined && (v === null || typeof v !== "object")) named(() => decoderSettings(any(v)), "decoderSettings:");
    }
    named(() => auxFeatures(Number.NaN, { kind: "bits" }), "auxFeatures: u must be a number in [0, 1), got NaN");
    named(() => chunkBytes(tok, [1, 5, 6], any([1, "1"])), "chunkBytes: chunks[1] must be a non-negative integer");
    named(() => chunkBytes(tok, [1, 5, 6], [3, -1]), "chunkBytes: chunks[1]");
    named(() => firstMismatch([[1, 2]], [[1, 2], [3]]), "firstMismatch: the batches hold 1 and 2 sequences");
    // Valid calls are unchanged.
    expect(firstMismatch([[1, 2]], [[1, 2]])).toBeUndefined();
    expect(firstMismatch([[1, 2]], [[1, 3]])).toEqual({ prompt: 0, position: 1, ptp: 2, ar: 3 });
    expect([...auxFeatures(0.75, { kind: "digits", digits: 3 })]).toEqual([1, 1, 0]);
    expect(chunkBytes(tok, [1, 5, 6], [1]).chunks).toHaveLength(1);
    expect(teacherShapeOf(CONFIG)).toEqual({ dim: 8, hiddenDim: 12, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 16, seqLen: 16, sharedClassifier: true });
  });
});

describe("train: params, the optimizer and token streams", () => {
  it("API-TRAIN-PARAMS: makeParam, zeroGrads, gradNorm, clipGradNorm, new AdamW and tokenStream name a wrong argument (raw 'params is not iterable' errors; a decay 'no' read as true, a shape of strings and token ids 1.5 or NaN truncated silently)", async () => {
    const { AdamW, clipGradNorm, gradNorm, makeParam, tokenStream, zeroGrads } = await import("../src/train/index.js");
    for (const v of ODD) {
      if (!Array.isArray(v)) {
        named(() => zeroGrads(any(v)), "zeroGrads: params");
        named(() => gradNorm(any(v)), "gradNorm: params");
        named(() => clipGradNorm(any(v), 1), "clipGradNorm: params");
        named(() => new AdamW(any(v)), "AdamW: params");
      }
      if (!Array.isArray(v)) named(() => tokenStream(any(v)), "tokenStream: docs");
      if (typeof v !== "string") named(() => makeParam(any(v), [1], new Float32Array(1), true), "makeParam: name");
      if (!Array.isArray(v)) named(() => makeParam("w", any(v), new Float32Array(1), true), "makeParam: param w: shape");
      named(() => makeParam("w", [1], any(v), true), "makeParam: param w: data");
      named(() => makeParam("w", [1], new Float32Array(1), any(v)), "makeParam: param w: decay");
    }
    named(() => makeParam("w", any(["2", 3]), new Float32Array(6), true), "makeParam: param w: shape");
    named(() => makeParam("", [1], new Float32Array(1), true), "makeParam: name");
    named(() => zeroGrads(any([null])), "zeroGrads: params[0]");
    named(() => gradNorm(any([{ data: new Float32Array(2), grad: new Float32Array(1) }])), "gradNorm: params[0]");
    named(() => clipGradNorm([], any("1")), "clipGradNorm: maxNorm");
    for (const bad of [1.5, Number.NaN, -1, "3"])
      named(
        () =>
          tokenStream(
            any([
              [1, 5],
              [1, bad],
            ]),
          ),
        "tokenStream: docs[1], position 1",
      );
    // Valid calls are unchanged.
    const p = makeParam("w", [2], Float32Array.of(1, 2), false);
    p.grad.set([3, 4]);
    expect(gradNorm([p])).toBe(5);
    expect(clipGradNorm([p], 1)).toBe(5);
    zeroGrads([p]);
    expect([...p.grad]).toEqual([0, 0]);
    expect([
      ...tokenStream([
        [1, 5],
        [1, 6, 7],
      ]),
    ]).toEqual([1, 5, 1, 6, 7, 1]);
    expect(new AdamW([p], { lr: 0.1 })).toBeInstanceOf(AdamW);
    // A misspelt option left lr at 0 in silence: step() changed nothing.
    expect(() => new AdamW([p], any({ learningRate: 1e-3 }))).toThrow('AdamW: unknown option "learningRate" (the options are lr, beta1, beta2, eps, weightDecay)');
    expect(() => new AdamW([p], any({ lr: 0.1, weight_decay: 0.1 }))).toThrow(/^AdamW: unknown option "weight_decay"; did you mean weightDecay\?/);
    expect(() => new AdamW([p], { lr: 0.1 }).setHyperparameters(any({ beta: 0.5 }))).toThrow(/^AdamW.setHyperparameters: unknown option "beta" in hyperparameters/);
  });
});
