import { MIN_TEMPERATURE } from "../sampling/processors.js";
import { existsSync, rmSync, statSync } from "node:fs";
import { basename } from "node:path";
import { createBackend } from "../backends/registry.js";
import { backendFlags, checkThreadsBackend } from "./flag-groups.js";
import { loadTokenizer, readModelConfig } from "../io/model-file.js";
import { quotePath } from "../io/errors.js";
import { formatRate, Progress } from "../util/progress.js";
import { refuseBeyondMemory } from "./memory.js";
import { inferenceMemory } from "../train/memory.js";
import { loadModelOn, readPrompts } from "./ptp-common.js";
import { DatasetWriter, totalRecords } from "../data/dataset.js";
import { fileKindOf } from "../io/file-kind.js";
import { bosPrompts, datasetMeta, pregenerate, type PregenerateProgress, type PromptSet } from "../data/pregenerate.js";
import { describeFlags, parseFlags, UsageError, defineFlags } from "./args.js";
import type { Io } from "./io.js";
import { progressSink } from "./training-flags.js";
import { checkOutputs, lockOutput } from "./output-files.js";
import { SIGNAL_EXIT_CODE, type StopSignal } from "../train/interrupt.js";

export const pregenerateFlags = defineFlags({
  model: { kind: "string", value: "FILE", help: "the teacher: llama2.c checkpoint (.bin) or Hugging Face Llama folder", required: true },
  tokenizer: { kind: "string", value: "FILE", help: "tokenizer.bin or tokenizer.json matching the model", required: true },
  out: { kind: "string", value: "FILE", help: "dataset file to write (spec/dataset.md)", required: true },
  prompts: { kind: "string", value: "FILE", help: "prompts, one per line (blank lines skipped); default: complete from BOS" },
  samples: { kind: "int", value: "N", help: "completions per prompt", default: 32, positive: true, max: 1_000_000 },
  steps: { kind: "int", value: "N", help: "most sampled tokens per completion (also stops at BOS and at the model's seqLen)", default: 256, positive: true, max: 1 << 20 },
  temperature: { kind: "number", value: "T", help: "sampling temperature (> 0)", default: 0.7 },
  "top-k": { kind: "int", value: "K", help: "keep the K most probable tokens (0 = off)", default: 50, min: 0 },
  "top-p": { kind: "number", value: "P", help: "nucleus threshold in [0, 1] (0 or 1 = off)", default: 0.95 },
  seed: { kind: "int", value: "S", help: "seed of the u's (integer in [0, 2^32)); record i uses (S, i)", default: 1, min: 0, max: 2 ** 32 - 1 },
  ...backendFlags(),
  resume: { kind: "bool", help: "continue an existing --out (same settings and --backend; a torn last record is truncated)" },
  force: { kind: "bool", help: "start an existing --out over: it is removed once the model and prompts are read, and a new dataset written (only a PTP dataset is replaced)" },
});

export const pregenerateUsage = `usage: ptp pregenerate --model FILE --tokenizer FILE --out FILE [options]

Sample completions from the teacher with its sampling settings and write
the distillation dataset: per completion its tokens and, for every sampled
token, the bin [left, right) of the u that picked it (spec/dataset.md).
--samples completions per prompt, from --prompts or from BOS. Records are
appended and synced as they are made; after an interruption, run the same
command with --resume to continue (the result is byte-identical to an
uninterrupted run; the samples depend on the backend, so the header records
it and a resume on another is refused). stderr: a progress bar, then a
summary.

${describeFlags(pregenerateFlags)}`;

export async function pregenerateCommand(argv: readonly string[], io: Io): Promise<number> {
  const f = parseFlags(argv, pregenerateFlags);
  if (!(f.temperature >= MIN_TEMPERATURE)) throw new UsageError(`--temperature must be > 0 (at least ${MIN_TEMPERATURE}; the dataset stores sampling bins), got ${f.temperature}`);
  // As in generate and llama2.c: 0 and 1 both mean off (the dataset records off as 1).
  if (!(f["top-p"] >= 0 && f["top-p"] <= 1)) throw new UsageError(`--top-p must be in [0, 1] (0 or 1 = off), got ${f["top-p"]}`);
  checkThreadsBackend(f);
  const out = f.out;
  // (An existing --out is this command's own dataset: DatasetWriter checks it on --resume.)
  checkOutputs([{ flag: "--out", path: out }], {
    inputs: [
      { flag: "--model", path: f.model },
      { flag: "--tokenizer", path: f.tokenizer },
      { flag: "--prompts", path: f.prompts },
    ],
    force: true,
  });
  if (f.force && f.resume) throw new UsageError("--force starts --out over and --resume continues it; give one of them");
  if (!f.resume && existsSync(out)) {
    if (!f.force) throw new Error(`${quotePath(out)} exists; pass --resume to continue it, or --force to start it over`);
    const kind = fileKindOf(out);
    if (kind !== "a PTP distillation dataset") throw new Error(`${quotePath(out)} is ${kind ?? "not a PTP dataset"}; --force replaces only a dataset (choose another --out, or remove the file yourself)`);
  }
  lockOutput(io, "pregenerate", [out], argv);

  // The header now, the weights straight into the backend's buffers once it exists (loadModel).
  const config = readModelConfig(f.model);
  const tokenizer = loadTokenizer(f.tokenizer, config.vocabSize);
  const prompts: PromptSet = f.prompts !== undefined ? { source: basename(f.prompts), tokens: readPrompts(f.prompts).map((t) => tokenizer.encode(t, true, false)) } : bosPrompts();
  const seqLen = config.seqLen;
  prompts.tokens.forEach((p, i) => {
    if (p.length > seqLen) throw new Error(`${quotePath(String(f.prompts))}: prompt ${i + 1} is ${p.length} tokens (BOS included), more than the model's seqLen ${seqLen}`);
  });
  const longest = prompts.tokens.reduce((n, p) => Math.max(n, p.length), 1);
  refuseBeyondMemory(quotePath(f.model), inferenceMemory(config, Math.min(seqLen, longest + f.steps), longest), f.backend, "--steps (or the longest of --prompts)", f.model);
  // The records' bits depend on the backend (and its wasm build), which the header records: it comes first.
  const backend = await createBackend(f.backend, { threads: f.threads });
  const model = loadModelOn(backend, f.model);
  let writer: DatasetWriter;
  try {
    // The teacher's checksum read from its buffers (teacherChecksum of a Transformer).
    const meta = datasetMeta(
      model,
      prompts,
      {
        sampling: { temperature: f.temperature, topK: f["top-k"], topP: f["top-p"] === 0 ? 1 : f["top-p"] },
        samplesPerPrompt: f.samples,
        maxSteps: f.steps,
        seed: f.seed,
      },
      backend,
    );
    // Started over only now, with the model, the prompts and the backend ready.
    if (f.force && existsSync(out)) rmSync(out);
    writer = DatasetWriter.open(out, meta, { resume: f.resume === true });
  } catch (err) {
    model.dispose();
    backend.dispose?.();
    throw err;
  }
  // Ctrl-C / kill: finish the current record, sync, and say how to continue.
  const abort = new AbortController();
  let stoppedBy: StopSignal = "SIGINT";
  const onSignal = (s: NodeJS.Signals): void => {
    stoppedBy = s as StopSignal;
    abort.abort();
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    const total = totalRecords(writer.meta);
    if (writer.resumed) {
      const tail = writer.truncatedBytes > 0 ? `; truncated a torn last record (${writer.truncatedBytes} bytes)` : "";
      io.stderr(`resuming ${out}: ${writer.records} of ${total} records complete${tail}\n`);
    } else {
      // A line at once: the progress line comes only after its first interval.
      io.stderr(`generating ${total} records into ${out}\n`);
    }
    // The shared progress line (src/util/progress.ts): records done, their rate and ETA, and the sampled tokens' rate;
    // redrawn in place on a terminal, elsewhere a line every 5 seconds (logs of long runs stay short).
    const bar = new Progress({ total, initial: writer.records, unit: "record", label: "pregenerate", stream: progressSink(io), intervalSeconds: 5, ttyIntervalSeconds: 0.2 });
    const sampled = (p: PregenerateProgress) => ({ sampled: `${formatRate(p.seconds > 0 ? p.tokens / p.seconds : 0)} tok/s` });
    const summary = await pregenerate(model, writer, prompts, { onProgress: (p) => bar.update(p.done, sampled(p)), signal: abort.signal });
    bar.finish(sampled(summary));
    const bytes = statSync(out).size;
    if (summary.stopped) {
      io.stderr(`interrupted: ${quotePath(out)} holds ${summary.done} of ${total} records; run the same command with --resume to continue\n`);
      return SIGNAL_EXIT_CODE[stoppedBy];
    }
    const rate = summary.seconds > 0 ? summary.tokens / summary.seconds : 0;
    io.stderr(`wrote ${out}: ${summary.done} records (${summary.generated} this run, ${summary.tokens} sampled tokens, ${rate.toFixed(0)} tok/s), ${formatBytes(bytes)}\n`);
    return 0;
  } catch (err) {
    // A run that made the file and failed before its first record (a teacher whose logits are NaN, weights
    // the backend cannot hold) leaves no header-only file behind, which a plain re-run would refuse.
    if (!writer.resumed && writer.records === 0) {
      writer.close();
      rmSync(out, { force: true });
    }
    throw err;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    writer.close();
    model.dispose();
  }
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} bytes`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MiB`;
}
