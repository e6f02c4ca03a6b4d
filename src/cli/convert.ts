import { existsSync } from "node:fs";
import { join } from "node:path";
import { serializeCheckpoint } from "../io/checkpoint.js";
import { FileFormatError, quotePath } from "../io/errors.js";
import { isHfModelFile, writeHfFiles } from "../io/hf-checkpoint.js";
import { writeFilesAtomically, writeFolderAtomically } from "../io/atomic-write.js";
import { llama2cTokenizerBytes, readJsonFile, writeHfTokenizer } from "../io/hf-tokenizer.js";
import { readModel, tokenizerPathFor } from "../io/model-file.js";
import { Tokenizer } from "../io/tokenizer.js";
import { LLAMA2C_NORM_EPS, LLAMA2C_ROPE_THETA, parameterCount } from "../model/config.js";
import { describeFlags, parseFlags, UsageError, defineFlags, givenFlags } from "./args.js";
import type { Io } from "./io.js";
import { checkOutputs, withSignalsCaught, writeOutputs } from "./output-files.js";

/** The files writeHfTokenizer adds to a Hugging Face folder. */
const HF_TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json"];

export const convertFlags = defineFlags({
  model: { kind: "string", value: "PATH", help: "the model to convert: a llama2.c checkpoint file or a Hugging Face folder", required: true },
  to: { kind: "string", value: "FORMAT", help: "hf (a Hugging Face Llama folder) or llama2c (a v0 checkpoint file)", required: true, choices: ["hf", "llama2c"] },
  out: { kind: "string", value: "PATH", help: "the folder (hf) or file (llama2c) to write", required: true },
  tokenizer: { kind: "string", value: "FILE", help: "hf: also write this tokenizer.bin as tokenizer.json (+ tokenizer_config.json); llama2c: the tokenizer.json to write as --tokenizer-out (default: the model folder's)" },
  "tokenizer-out": { kind: "string", value: "FILE", help: "llama2c: where to write the tokenizer as tokenizer.bin" },
  "shard-mb": { kind: "number", value: "MB", help: "hf: split the weights into safetensors shards of at most about MB megabytes" },
  version: { kind: "int", value: "V", help: 'llama2c: checkpoint version 0 (legacy) or 1 ("ak42")', default: 0 },
  force: { kind: "bool", help: "overwrite an existing output (hf: the folder's model files are replaced, those of an earlier model removed; other files are kept)" },
});

export const convertUsage = `usage: ptp convert --model PATH --to hf|llama2c --out PATH [--tokenizer FILE] [--tokenizer-out FILE] [--shard-mb MB] [--version 0|1] [--force]

Convert a model between llama2.c checkpoints and Hugging Face Llama folders
(config.json + model.safetensors, or shards with model.safetensors.index.json).
The q/k rows are permuted between llama2.c's interleaved RoPE pairs and HF's
half-split layout, so both load to the same weights and the same logits.

${describeFlags(convertFlags)}`;

export async function convertCommand(argv: readonly string[], io: Io): Promise<number> {
  const f = parseFlags(argv, convertFlags);
  const out = f.out;
  if (f["shard-mb"] !== undefined && (f.to !== "hf" || !(f["shard-mb"] > 0))) {
    throw new UsageError(`--shard-mb goes with --to hf and must be > 0, got ${f["shard-mb"]}`);
  }
  // Shards are sized in whole bytes: less than one byte (1e-6 MB) would be none.
  if (f["shard-mb"] !== undefined && Math.floor(f["shard-mb"] * 1e6) < 1) throw new UsageError(`--shard-mb must be at least 1e-6 (one byte), got ${f["shard-mb"]}`);
  if (f.version !== 0 && f.version !== 1) throw new UsageError(`--version must be 0 or 1, got ${f.version}`);
  if (f["tokenizer-out"] !== undefined && f.to !== "llama2c") throw new UsageError(`--tokenizer-out goes with --to llama2c`);
  if (f.to !== "llama2c" && givenFlags(argv, convertFlags).has("version")) throw new UsageError(`--version goes with --to llama2c (a Hugging Face folder has no checkpoint version)`);
  if (f.tokenizer !== undefined && f.to === "llama2c" && f["tokenizer-out"] === undefined) throw new UsageError(`--to llama2c --tokenizer needs --tokenizer-out FILE`);
  const tokenizerOut = f["tokenizer-out"];
  // Every output is checked, and every input read and checked, before anything is written.
  const hfOwns = (name: string): boolean => isHfModelFile(name) || (f.tokenizer !== undefined && HF_TOKENIZER_FILES.includes(name));
  checkOutputs([f.to === "hf" ? { flag: "--out", path: out, owns: hfOwns } : { flag: "--out", path: out }, ...(tokenizerOut === undefined ? [] : [{ flag: "--tokenizer-out", path: tokenizerOut }])], {
    inputs: [
      { flag: "--model", path: f.model },
      { flag: "--tokenizer", path: f.tokenizer },
    ],
    force: f.force,
  });
  const version = f.version; // 0 or 1 (checked above)
  // Ctrl-C while the model is read and converted stops the command (checked between those parts) with nothing written.
  return withSignalsCaught(io, "ptp convert", async ({ stopped }) => {
    const ckpt = readModel(f.model);
    const early = await stopped();
    if (early !== undefined) return early;
    if (f.to === "hf") {
      const shard = f["shard-mb"];
      const tokenizer = f.tokenizer === undefined ? undefined : Tokenizer.load(f.tokenizer, ckpt.config.vocabSize);
      // Through a temporary folder: a failure leaves nothing; over an existing folder, the model files of an earlier model go.
      const write = () =>
        writeFolderAtomically(
          out,
          (tmp) => {
            const written = writeHfFiles(tmp, ckpt, shard === undefined ? {} : { maxShardBytes: Math.floor(shard * 1e6) });
            if (tokenizer !== undefined) written.push(...writeHfTokenizer(tmp, tokenizer));
            return written;
          },
          isHfModelFile,
        );
      // --force keeps the folder's other files; an earlier tokenizer may not be this model's.
      const keptTokenizer = tokenizer === undefined && existsSync(join(out, "tokenizer.json"));
      return await writeOutputs(io, "ptp convert", `${out} (a Hugging Face folder)`, write, (files) => {
        io.stderr(`wrote ${out}: Hugging Face Llama folder (${files.length} files), ${parameterCount(ckpt.config)} parameters\n`);
        if (keptTokenizer) io.stderr(`note: ${quotePath(join(out, "tokenizer.json"))} was there before and is kept as it was; pass --tokenizer FILE to write this model's\n`);
      });
    }
    // A llama2.c file has no field for them and always loads with llama2.c's values: any other would be a silently different model.
    const { normEps, ropeTheta } = ckpt.config;
    if (normEps !== LLAMA2C_NORM_EPS || ropeTheta !== LLAMA2C_ROPE_THETA) {
      throw new FileFormatError(f.model, `has rms_norm_eps ${normEps} and rope_theta ${ropeTheta}; a llama2.c checkpoint holds neither and loads as 1e-5 and 10000, so the converted model would compute other logits (keep it as a Hugging Face folder)`);
    }
    let tokenizer: { source: string; bytes: Uint8Array } | undefined;
    if (tokenizerOut !== undefined) {
      const source = tokenizerPathFor(f.model, f.tokenizer);
      if (source === undefined) throw new UsageError(`--tokenizer-out needs --tokenizer FILE.json (the model is not a folder with tokenizer.json)`);
      const bytes = llama2cTokenizerBytes(readJsonFile(source, "a Hugging Face tokenizer.json"), source);
      Tokenizer.fromBytes(bytes, ckpt.config.vocabSize, source); // the model and tokenizer must agree
      tokenizer = { source, bytes };
    }
    // Both files or neither.
    const files = [{ path: out, bytes: serializeCheckpoint(ckpt, version) }, ...(tokenizer !== undefined && tokenizerOut !== undefined ? [{ path: tokenizerOut, bytes: tokenizer.bytes }] : [])];
    const late = await stopped();
    if (late !== undefined) return late;
    const write = () => writeFilesAtomically(files);
    return await writeOutputs(io, "ptp convert", files.map((file) => file.path).join(" and "), write, () => {
      io.stderr(`wrote ${out}: llama2.c checkpoint v${f.version}, ${parameterCount(ckpt.config)} parameters\n`);
      if (tokenizer !== undefined) io.stderr(`wrote ${tokenizerOut}: llama2.c tokenizer.bin from ${tokenizer.source}\n`);
    });
  });
}
