import { createHash } from "node:crypto";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { writeBytesAtomically } from "../io/atomic-write.js";
import { readCheckpoint } from "../io/checkpoint.js";
import { FileFormatError, quotePath } from "../io/errors.js";
import { isDirectory } from "../io/hf-checkpoint.js";
import { CORPUS_WHAT, readCorpus } from "../data/corpus.js";
import { MAX_SEQ_LEN, newModelConfig, type ModelConfig } from "../model/config.js";
import { MAX_THREADS } from "../backends/wasm/index.js";
import { wasmTrainKernels } from "../train/autograd/index.js";
import { loadTokenizerFile, writeCharTokenizer } from "../io/char-tokenizer.js";
import { pretrain } from "../train/pretrain.js";
import { initModel } from "../model/init.js";
import type { LoopOptions, RunFiles } from "../train/loop.js";
import { describeFlags, givenFlags, parseFlags, UsageError, defineFlags, type Parsed } from "./args.js";
import type { Io } from "./io.js";
import { refuseBeyondMemory } from "./memory.js";
import { pretrainMemory } from "../train/memory.js";
import { SIGNAL_EXIT_CODE } from "../train/interrupt.js";
import { checkInverseArFlags, inverseArCommand, inverseArFlags } from "./train-inverse-ar.js";
import { lockOutput, recognise } from "./output-files.js";
import { encodeDocuments, finishRun, loopOptions, progressSink, runFiles, runLocks, trainThreads } from "./training-flags.js";
import { checkDigitsGiven, checkShapeFlags, loopFlags } from "./flag-groups.js";

/** A recogniser of an existing file: true when `read` accepts it, else `problem`. */
function readableAs(read: (path: string) => unknown, problem: string): (path: string) => true | string {
  return (path) => {
    try {
      read(path);
      return true;
    } catch {
      return problem;
    }
  };
}

/** Existing files a resumed run may rewrite: its own llama2.c checkpoint and char tokenizer. */
const llamaCheckpointKind = readableAs((path) => readCheckpoint(path), "is not a llama2.c checkpoint");
const tokenizerKind = readableAs((path) => loadTokenizerFile(path), "is not a tokenizer.bin");

/** The flags only --objective ar reads: the new model's shape and the held-out split (inverse-ar adapts --model and trains on every line). */
const arFlags = defineFlags({
  dim: { kind: "int", value: "N", help: "ar: model width", default: 64, min: 1 },
  layers: { kind: "int", value: "N", help: "ar: transformer blocks", default: 4, min: 1 },
  heads: { kind: "int", value: "N", help: "ar: query heads", default: 4, min: 1 },
  "kv-heads": { kind: "int", value: "N", help: "ar: key/value heads (default: --heads)", min: 1 },
  hidden: { kind: "int", value: "N", help: "ar: SwiGLU hidden width", default: 172, min: 1 },
  "seq-len": { kind: "int", value: "N", help: `ar: the model's maximum sequence length (at most ${MAX_SEQ_LEN})`, default: 256, min: 1, max: MAX_SEQ_LEN },
  "valid-fraction": { kind: "number", value: "F", help: "ar: last fraction of the documents held out for validation", default: 0.05 },
});

export const trainFlags = defineFlags({
  ...loopFlags({ lr: 3e-3, schedule: "cosine", weightDecay: 0.01, steps: 2000, seedHelp: "seed of the init and the data order", evalHelp: "evaluate (held-out loss; inverse-ar: accepted per call) and checkpoint every N steps" }),
  corpus: { kind: "string", value: "FILE", help: "training text, one document per line", required: true },
  tokenizer: { kind: "string", value: "FILE", help: "llama2.c tokenizer.bin to encode the corpus with" },
  "char-vocab": { kind: "string", value: "FILE", help: "instead of --tokenizer: build a character tokenizer from the corpus and write it here" },
  out: { kind: "string", value: "FILE", help: "checkpoint to write (llama2.c .bin; with --objective inverse-ar: the C-PTP student, safetensors)", required: true },
  objective: { kind: "string", value: "KIND", help: "ar (next-token training from scratch) | inverse-ar (C-PTP student of --model with no teacher samples)", default: "ar", choices: ["ar", "inverse-ar"] },
  ...arFlags,
  context: { kind: "int", value: "N", help: "tokens per training window (default: --seq-len; inverse-ar: the model's seqLen)" },
  batch: { kind: "int", value: "N", help: "windows per step", default: 8, positive: true },
  threads: { kind: "int", value: "N", help: "worker threads that share each step's windows (default: the machine's cores, at most --batch); any number gives the same bits", min: 1, max: MAX_THREADS },
  ...inverseArFlags,
});

export const trainUsage = `usage: ptp train --corpus FILE (--tokenizer FILE | --char-vocab FILE) --out FILE [options]

Train a small Llama-architecture model from scratch by next-token
prediction on a text corpus (one document per line) and write it as a
llama2.c checkpoint. With --char-vocab the command first builds a
character-level tokenizer from the corpus. The last --valid-fraction of
the documents is held out; its loss is reported every --eval-every steps,
when the checkpoint is also written (atomically). Ctrl-C saves and stops;
--resume continues exactly, with the same options (a larger --steps extends
a finished run; a run shorter than --warmup keeps its warmup and decays to
the new end).

--objective inverse-ar instead trains a C-PTP student of an existing model
(--model) on the corpus with no teacher samples (method section 3.4): for
each window the u's are recovered one slot at a time inside the student's
OWN bins of the observed tokens, then one gradient step is taken on the
C-PTP cross-entropy. --out is then the student adapter (safetensors).

${describeFlags(trainFlags)}`;

export async function trainCommand(argv: readonly string[], io: Io): Promise<number> {
  const f = parseFlags(argv, trainFlags);
  if ((f.tokenizer === undefined) === (f["char-vocab"] === undefined)) throw new UsageError("give exactly one of --tokenizer and --char-vocab");
  // A flag of the other objective would be silently ignored: refuse it.
  const given = givenFlags(argv, trainFlags);
  const foreign = Object.keys(f.objective === "ar" ? inverseArFlags : arFlags).find((k) => given.has(k));
  if (foreign !== undefined) throw new UsageError(`--${foreign} applies to --objective ${f.objective === "ar" ? "inverse-ar" : "ar"} only (the objective is ${f.objective})`);
  if (f.objective === "inverse-ar") {
    checkInverseArFlags(f);
    checkDigitsGiven(f, given);
  }
  if (f["eval-prompts"] === undefined) for (const k of ["eval-count", "eval-steps"]) if (given.has(k)) throw new UsageError(`--${k} goes with --eval-prompts`);
  const loop = loopOptions(f, f.lr / 10);
  if (!(f["valid-fraction"] > 0 && f["valid-fraction"] < 1)) throw new UsageError(`--valid-fraction must be in (0, 1), got ${f["valid-fraction"]}`);
  const out = f.out;
  // The model's shape from the flags; its memory is checked before the corpus is read (with the vocabulary still unknown) and again once it is known.
  const shapeOf = (vocabSize: number): ModelConfig => {
    const config = newModelConfig({ dim: f.dim, hiddenDim: f.hidden, nLayers: f.layers, nHeads: f.heads, nKvHeads: f["kv-heads"], vocabSize, seqLen: f["seq-len"] });
    if (f.objective === "inverse-ar") return config;
    checkShapeFlags({ ...config, vocabSize: Math.max(1, vocabSize) });
    const context = f.context ?? config.seqLen;
    if (context < 1 || context > config.seqLen) throw new UsageError(`--context must be in [1, --seq-len = ${config.seqLen}], got ${context}`);
    refuseBeyondMemory("pretraining", pretrainMemory(config, { context, threads: trainThreads(f) }), "js", "--threads, --context (or --seq-len), --dim, --hidden or --layers");
    return config;
  };
  shapeOf(0);
  // A folder given as the corpus is named as that first (an --out inside it read as an output inside an input, exit 2).
  if (isDirectory(f.corpus)) throw new FileFormatError(f.corpus, `is a directory, expected ${CORPUS_WHAT}`);
  const charVocab = f["char-vocab"] !== undefined ? [{ flag: "--char-vocab", path: f["char-vocab"], kind: tokenizerKind }] : [];
  const files = runFiles(f, out, {
    inputs: [
      { flag: "--corpus", path: f.corpus },
      { flag: "--tokenizer", path: f.tokenizer },
      { flag: "--model", path: f.model },
      { flag: "--eval-prompts", path: f["eval-prompts"] },
    ],
    outKind: f.objective === "inverse-ar" ? recognise.safetensors : llamaCheckpointKind,
    extra: charVocab,
  });
  // A run that fails before its first checkpoint (a corpus too short, a model of another vocabulary, a shape beyond
  // memory) leaves --char-vocab as it found it: removed if it created it, its old bytes back if --force replaced it.
  let checkpointed = false;
  files.onCheckpoint = () => void (checkpointed = true);
  let replaced: { path: string; before?: Uint8Array } | undefined;
  const undoCharVocab = (why: string): void => {
    if (replaced === undefined || checkpointed) return;
    const r = replaced;
    replaced = undefined;
    if (r.before === undefined) {
      rmSync(r.path, { force: true });
      io.stderr(`train: removed ${quotePath(r.path)}, which this ${why} run had written\n`);
    } else {
      writeBytesAtomically(r.path, r.before);
      io.stderr(`train: put back the earlier ${quotePath(r.path)}, which this ${why} run had replaced\n`);
    }
  };
  // A SIGINT/SIGTERM before the loop arms its own handling ends the process in the output lock's handler (process.exit
  // with its code): --char-vocab is undone then too, or --resume would find it without a checkpoint and refuse.
  const onExit = (code: number): void => {
    if (Object.values(SIGNAL_EXIT_CODE).includes(code)) undoCharVocab("interrupted");
  };
  process.on("exit", onExit);
  try {
    // Taken after the handler above is installed: at exit the lock is released last, once --char-vocab is as it was.
    lockOutput(io, "train", runLocks(f, out, charVocab), argv);
    return await runTraining(f, given, loop, shapeOf, files, (path) => void (replaced = { path, before: existsSync(path) ? readFileSync(path) : undefined }), io);
  } catch (err) {
    undoCharVocab("failed");
    throw err;
  } finally {
    process.off("exit", onExit);
  }
}

/** The run after its flags and files are checked; `writing` hears of the --char-vocab file it is about to write. */
async function runTraining(f: Parsed<typeof trainFlags>, given: ReadonlySet<string>, loop: LoopOptions, shapeOf: (vocabSize: number) => ModelConfig, files: RunFiles, writing: (path: string) => void, io: Io): Promise<number> {
  const out = f.out;

  // Two documents at least: one to train on, one held out.
  const { documents: lines, sha256 } = readCorpus(f.corpus, 2);
  let tokenizerPath: string;
  if (f["char-vocab"] !== undefined) {
    tokenizerPath = f["char-vocab"];
    if (!(f.resume && existsSync(tokenizerPath))) {
      writing(tokenizerPath);
      const n = writeCharTokenizer(tokenizerPath, lines);
      io.stderr(`train: wrote a character tokenizer of ${n} tokens to ${tokenizerPath}\n`);
    }
  } else if (f.tokenizer !== undefined) tokenizerPath = f.tokenizer;
  else throw new UsageError("give exactly one of --tokenizer and --char-vocab");
  const tokenizer = loadTokenizerFile(tokenizerPath);
  // A resume must train on the same corpus, encoded by the same tokenizer (another one of the same size would train on
  // other token ids) and, for ar, split at the same place: their digests and the held-out fraction are stored and compared.
  files.inputs = {
    corpusSha256: sha256,
    tokenizerSha256: createHash("sha256").update(readFileSync(tokenizerPath)).digest("hex"),
    ...(f.objective === "inverse-ar" ? {} : { validFraction: f["valid-fraction"] }),
  };
  files.inputNames = { corpusSha256: "--corpus (its SHA-256)", tokenizerSha256: `${f["char-vocab"] !== undefined ? "--char-vocab" : "--tokenizer"} (its SHA-256)`, validFraction: "--valid-fraction" };
  loop.kernels = wasmTrainKernels();
  if (f.objective === "inverse-ar") return inverseArCommand(f, loop, lines, tokenizer, { out, ...files }, io);

  const config = shapeOf(tokenizer.vocabSize);
  const context = f.context ?? config.seqLen;
  const split = Math.max(1, Math.floor(lines.length * (1 - f["valid-fraction"])));
  const train = await encodeDocuments(io, "train", lines.slice(0, split), tokenizer),
    valid = await encodeDocuments(io, "train (held out)", lines.slice(split), tokenizer);
  // A window is --context tokens and the next one; both parts need one (pretrain checks it too, without the file's name).
  if (train.length < context + 1 || valid.length < context + 1) {
    throw new Error(
      `${quotePath(f.corpus)}: the --corpus is too short for --context ${context}${given.has("context") ? "" : " (default: --seq-len)"}: a window takes ${context + 1} tokens, but the training part has ${train.length} and the held-out part (--valid-fraction ${f["valid-fraction"]}) ${valid.length}; give a longer corpus or a smaller --context`,
    );
  }
  const threads = trainThreads(f);
  io.stderr(`train: ${split} documents (${train.length} tokens) for training, ${lines.length - split} (${valid.length} tokens) held out; vocab ${config.vocabSize}; ${threads} worker thread${threads === 1 ? "" : "s"}\n`);
  const model = initModel(config, f.seed);
  const r = await pretrain(
    model,
    train,
    valid,
    {
      batch: f.batch,
      context,
      threads,
      ...loop,
    },
    { out, ...files },
    progressSink(io),
  );
  return finishRun(io, "train", r, `model: ${out}`);
}
