import type { EvalSettings } from "../train/evaluate.js";
import { slotInputFromFlags } from "./flag-groups.js";
import { availableParallelism } from "node:os";
import { createBackend } from "../backends/registry.js";
import { loadTokenizer, readModel } from "../io/model-file.js";
import { Transformer } from "../model/transformer.js";
import { randomDraft, randomStudent, teacherDraft } from "../ptp/init.js";
import { loadStudent } from "../ptp/files/student-file.js";
import { DECODERS, type DecoderName } from "../ptp/decode/run.js";
import type { Proposer } from "../ptp/proposer.js";
import { teacherChecksum } from "../ptp/files/teacher-checksum.js";
import { trainKernelsFor } from "../train/autograd/index.js";
import { checkDatasetMatchesTeacher, readDataset } from "../data/dataset.js";
import { distill, trainableRecords } from "../train/distill.js";
import { FileFormatError, quotePath } from "../io/errors.js";
import { LOSSES } from "../train/ptp-windows.js";
import { describeFlags, givenFlags, parseFlags, UsageError, defineFlags } from "./args.js";
import type { Io } from "./io.js";
import { refuseBeyondMemory, refuseDraftBeyondLimits } from "./memory.js";
import { distillMemory } from "../train/memory.js";
import { DEFAULT_SLOT_INPUT, weightCounts } from "../ptp/student-weights.js";
import { lockOutput, recognise } from "./output-files.js";
import { EVAL_SEED, evalPromptTokens, finishRun, loopOptions, progressSink, runFiles, runLocks } from "./training-flags.js";
import { backendFlags, checkAgainstTeacher, checkDigitsGiven, checkRank, checkShapeFlags, draftShapeSpecs, extraBlocksFlag, loopFlags, pickFeedbackFromFlags, slotInputFlagWithoutDefault, studentAux, studentFlags } from "./flag-groups.js";

/** --draft-*: the draft model's shape flags (random-draft's, bounded alike). */
const DRAFT_SHAPE = draftShapeSpecs();

// The defaults are the recipe of the shipped stories260K student (docs/BENCHMARKS.md, issue 10):
// a C-PTP query student trained with KL to the teacher, anchors, windows of 8, gamma 0.9, cosine.
export const distillFlags = defineFlags({
  ...studentFlags({ aux: "anchors", digits: 16, window: 8, beta: 1, helpPrefix: "" }),
  ...slotInputFlagWithoutDefault(`query for a C-PTP student with --window 2 or more, else ${DEFAULT_SLOT_INPUT}`),
  ...loopFlags({ lr: 2e-3, schedule: "cosine", weightDecay: 0, steps: 2000, seedHelp: "seed of the student init and the data order", evalHelp: "evaluate and checkpoint every N steps" }),
  model: { kind: "string", value: "FILE", help: "the teacher: llama2.c checkpoint (.bin) or Hugging Face Llama folder", required: true },
  dataset: { kind: "string", value: "FILE", help: "distillation dataset from 'ptp pregenerate'", required: true },
  out: { kind: "string", value: "FILE", help: "student adapter (or --draft model) to write (safetensors), rewritten at every checkpoint", required: true },
  init: { kind: "string", value: "FILE", help: "start from this student (adapter file or PEFT folder) instead of a fresh one (B = 0)" },
  ...extraBlocksFlag,
  draft: { kind: "bool", help: "train a standalone draft model (its own small transformer, --draft-* shape) instead of a LoRA student; evaluated with --eval-decoder verify" },
  "draft-init": { kind: "string", value: "random|teacher", help: "with --draft: random weights of the --draft-* shape, or a copy of the teacher (its shape; --draft-layers may add blocks that start as exact no-ops)", default: "random", choices: ["random", "teacher"] },
  "draft-dim": DRAFT_SHAPE.dim,
  "draft-layers": DRAFT_SHAPE.layers,
  "draft-heads": DRAFT_SHAPE.heads,
  "draft-kv-heads": DRAFT_SHAPE["kv-heads"],
  "draft-hidden": DRAFT_SHAPE.hidden,
  variant: { kind: "string", value: "O|C", help: "O-PTP (own u seen, argmax) or C-PTP (own u withheld, Pick)", default: "C", choices: ["O", "C"] },
  loss: { kind: "string", value: "KIND", help: "ce (cross-entropy on the sampled tokens) | kl | rkl (C-PTP: KL or reverse KL to the teacher) (default: kl for C-PTP, ce for O-PTP)", choices: LOSSES },
  gamma: { kind: "number", value: "G", help: "position weighting gamma^j of slot j (1 = off)", default: 0.9 },
  windows: { kind: "int", value: "N", help: "windows per sequence per step", default: 32, positive: true, max: 4096 },
  batch: { kind: "int", value: "N", help: "sequences per step", default: 2, positive: true, max: 4096 },
  tokenizer: { kind: "string", value: "FILE", help: "tokenizer for --eval-prompts" },
  "eval-prompts": { kind: "string", value: "FILE", help: "held-out prompts, one per line, for accepted tokens per call" },
  "eval-count": { kind: "int", value: "N", help: "prompts used by the periodic evaluations", default: 32, positive: true },
  "eval-steps": { kind: "int", value: "N", help: "positions per evaluation prompt, prompt included", default: 96, positive: true },
  "eval-decoder": { kind: "string", value: "NAME", help: "decoder measured by the evaluations", default: "single-call", choices: DECODERS },
  ...backendFlags({
    backend: "backend of the teacher's KV and the evaluations",
    threads: "threads that share each step's sequences (default: the machine's cores, at most --batch); any number gives the same bits",
  }),
});

export const distillUsage = `usage: ptp distill --model FILE --dataset FILE --out FILE [options]

Distill a gated-LoRA PTP student of the teacher (or, with --draft, a
standalone draft model trained from scratch) from a dataset of teacher
samples (ptp pregenerate). Every step draws the u of each sampled token
inside its bin, lays --windows windows of --window slots at random starts
of each of --batch sequences, and trains them in one pass against the
teacher's KV. stderr: a progress bar (loss, #correct, slots/s, ETA) and,
every --eval-every steps, accepted tokens per call on held-out prompts with
the real decoder. The student and a training checkpoint are written
atomically at each evaluation and at the end; Ctrl-C stops after the
current step and saves; --resume continues exactly.

${describeFlags(distillFlags)}`;

export async function distillCommand(argv: readonly string[], io: Io): Promise<number> {
  const f = parseFlags(argv, distillFlags);
  checkRank(f.rank);
  if (!(f.gamma > 0 && f.gamma <= 1)) throw new UsageError(`--gamma must be in (0, 1], got ${f.gamma}`);
  const loop = loopOptions(f);
  if (f.init !== undefined) loop.nonFiniteHint += `, e.g. the --init student ${quotePath(f.init)}`;
  const variant = f.variant;
  const slotInput = f["slot-input"] ?? (variant === "C" && !f.draft && f.window >= 2 ? "query" : DEFAULT_SLOT_INPUT);
  if (variant === "O" && f.loss !== undefined && f.loss !== "ce") throw new UsageError(`--loss ${f.loss} matches the teacher's distribution, which only a C-PTP student predicts; use --variant C or --loss ce`);
  if (f["eval-prompts"] !== undefined && f.tokenizer === undefined) throw new UsageError("--eval-prompts needs --tokenizer");
  // A flag that this run would not read is refused, not ignored (their defaults make them look set).
  const given = givenFlags(argv, distillFlags);
  if (!f.draft) {
    const draftFlag = [...given].find((k) => k.startsWith("draft-") && k !== "draft-head");
    if (draftFlag !== undefined) throw new UsageError(`--${draftFlag} goes with --draft`);
  }
  const loraFlag = ["rank", "alpha"].find((k) => given.has(k));
  if (f.draft && loraFlag !== undefined) throw new UsageError(`--${loraFlag} is for LoRA students; a --draft model's size is its --draft-* shape`);
  checkDigitsGiven(f, given);
  if (f["draft-init"] === "teacher") {
    const shapeFlag = ["draft-dim", "draft-heads", "draft-kv-heads", "draft-hidden"].find((k) => given.has(k));
    if (shapeFlag) throw new UsageError(`--${shapeFlag} does not go with --draft-init teacher (the draft takes the teacher's shape; --draft-layers may add layers)`);
  }
  if (f.draft && f.init !== undefined) throw new UsageError("--init starts from a student; it does not go with --draft");
  const extraBlocksGiven = given.has("extra-blocks");
  if (f.draft && f["draft-head"]) throw new UsageError("--draft-head is for LoRA query students with --extra-blocks and --pick-feedback chain, not a --draft model");
  if (f.init !== undefined && f["draft-head"]) throw new UsageError("--draft-head makes a new student; an --init student brings its own kind");
  if (f.draft && f["pick-feedback"]) throw new UsageError("--pick-feedback is for LoRA query students with --extra-blocks, not a --draft model");
  if (f.draft && extraBlocksGiven) throw new UsageError("--extra-blocks is for LoRA students; a --draft model is deepened with --draft-layers (and --draft-init teacher)");
  if (f.draft && f["eval-decoder"] !== "verify" && given.has("eval-decoder")) throw new UsageError("a draft model is evaluated with --eval-decoder verify");
  const draftShape = { dim: f["draft-dim"], nLayers: f["draft-layers"], nHeads: f["draft-heads"], nKvHeads: f["draft-kv-heads"], hiddenDim: f["draft-hidden"] };
  if (f.draft && f["draft-init"] === "random") checkShapeFlags(draftShape, "draft-");
  const out = f.out;
  const files = runFiles(f, out, {
    inputs: [
      { flag: "--model", path: f.model },
      { flag: "--dataset", path: f.dataset },
      { flag: "--init", path: f.init },
      { flag: "--tokenizer", path: f.tokenizer },
      { flag: "--eval-prompts", path: f["eval-prompts"] },
    ],
    outKind: recognise.safetensors,
  });
  lockOutput(io, "distill", runLocks(f, out), argv);

  const ckpt = readModel(f.model);
  const checksum = teacherChecksum(ckpt);
  const dataset = readDataset(f.dataset, {
    allowTornTail: true,
    onTornTail: (t) => io.stderr(`distill: warning: ${quotePath(f.dataset)}: record ${t.index} at byte ${t.offset} is torn (${t.why}); training on the ${t.index} complete records before it\n`),
  });
  checkDatasetMatchesTeacher(f.dataset, dataset.meta, { config: ckpt.config, checksum, name: f.model });
  // A resume must train on the same data, with the teacher's logits from the same backend (js and wasm agree to 1e-4,
  // not bit for bit): the dataset's header and record count and the backend are stored with the checkpoint.
  files.inputs = { dataset: { ...dataset.meta, records: dataset.records.length }, backend: f.backend };
  files.inputNames = { dataset: "--dataset (its header and record count)", backend: "--backend" };
  checkAgainstTeacher({ rank: f.draft ? undefined : f.rank, window: f.window }, ckpt.config);
  const aux = studentAux(f);
  let proposer: Proposer = {
    kind: "student",
    student: randomStudent(ckpt, checksum, {
      variant,
      rank: f.rank,
      alpha: f.alpha,
      aux,
      window: f.window,
      ...slotInputFromFlags(slotInput, variant, f.window, f.draft),
      seed: f.seed,
      zeroB: true,
      extraBlocks: f["extra-blocks"],
      ...(f.draft || f.init !== undefined ? {} : pickFeedbackFromFlags(f, slotInput === "query")),
    }),
  };
  if (f.init !== undefined) {
    const student = loadStudent(f.init, { checkpoint: ckpt, checksum });
    if (given.has("variant") && student.config.variant !== variant) throw new UsageError(`--variant ${variant} does not match the --init student ${quotePath(f.init)}, a ${student.config.variant}-PTP student`);
    const extraBlocks = student.config.extraBlocks ?? 0;
    if (extraBlocksGiven && f["extra-blocks"] !== extraBlocks) throw new UsageError(`--extra-blocks ${f["extra-blocks"]} does not match the --init student ${quotePath(f.init)}, which has ${extraBlocks} extra blocks (it trains the blocks it has)`);
    if (f["pick-feedback"] !== undefined && f["pick-feedback"] !== student.config.pickFeedback)
      throw new UsageError(`--pick-feedback ${f["pick-feedback"]} does not match the --init student ${quotePath(f.init)}, which has ${student.config.pickFeedback ? `pick feedback ${student.config.pickFeedback}` : "no pick feedback"} (it trains the parts it has)`);
    proposer = { kind: "student", student };
  }
  if (f.draft) {
    const common = { variant, aux, window: f.window, hybrid: slotInput === "hybrid", seed: f.seed };
    if (f["draft-init"] === "teacher") {
      const layers = given.has("draft-layers") ? f["draft-layers"] : ckpt.config.nLayers;
      if (layers < ckpt.config.nLayers) throw new UsageError(`--draft-layers must be at least the teacher's ${ckpt.config.nLayers} layers with --draft-init teacher, got ${layers}`);
      proposer = { kind: "draft", draft: teacherDraft(ckpt, checksum, { ...common, nLayers: layers }) };
    } else {
      refuseDraftBeyondLimits(ckpt.config, draftShape, "draft-");
      proposer = { kind: "draft", draft: randomDraft(ckpt, checksum, { ...common, config: draftShape }) };
    }
  }
  // The loss follows the student actually trained (an --init student brings its own variant and aux).
  const trained = proposer.kind === "student" ? proposer.student.config : proposer.draft.config;
  const trainedVariant = trained.variant;
  const loss = f.loss ?? (trainedVariant === "C" ? "kl" : "ce");
  if (trainedVariant === "O" && loss !== "ce") throw new UsageError(`--loss ${loss} matches the teacher's distribution, which only a C-PTP student predicts; the --init student ${quotePath(String(f.init))} is O-PTP`);
  const threads = f.threads ?? availableParallelism();
  // Refuse a run beyond the machine before the teacher, the threads and the first step allocate.
  const memory = distillMemory(ckpt.config, {
    proposerParams: weightCounts(proposer.kind === "draft" ? proposer.draft.weights : proposer.student.weights).parameters,
    draft: proposer.kind === "draft" ? proposer.draft.config.model : undefined,
    rank: f.rank,
    extraBlocks: proposer.kind === "student" ? proposer.student.config.extraBlocks : undefined,
    windows: f.windows,
    window: f.window,
    sequences: f.batch,
    threads,
  });
  refuseBeyondMemory(quotePath(f.model), memory, f.backend, f.draft ? "--windows, --window, --threads (or --batch) or the --draft-* shape" : `--windows, --window, --threads (or --batch)${proposer.kind === "student" && proposer.student.config.extraBlocks ? ", --rank or --extra-blocks" : " or --rank"}`);
  const trainable = trainableRecords(dataset.records, proposer);
  if (trainable.usable.length === 0) throw new FileFormatError(f.dataset, `has no record with ${trainable.need} to train on`);
  // A slot past a record's last sampled token has no target (weight 0): slots past every record's never train.
  const longest = dataset.records.reduce((m, r) => Math.max(m, r.tokens.length - r.promptLength), 0);
  if (dataset.records.length > 0 && f.window > longest) {
    io.stderr(`distill: warning: --window ${f.window} is longer than any record of ${quotePath(f.dataset)} (at most ${longest} sampled tokens): slots ${longest + 1} to ${f.window} of a window are never trained\n`);
  }
  // Each training thread runs its own teacher on one thread; the evaluations run on this one.
  const backend = await createBackend(f.backend, { threads: 1 });
  // Training products run on WASM SIMD with the wasm backend, in plain TypeScript otherwise.
  loop.kernels = trainKernelsFor(f.backend);
  const teacher = new Transformer(backend, ckpt);
  const sampling = dataset.meta.sampling;
  let evalSettings: EvalSettings | undefined;
  if (f["eval-prompts"] !== undefined && f.tokenizer !== undefined) {
    const tokenizer = loadTokenizer(f.tokenizer, ckpt.config.vocabSize);
    const prompts = evalPromptTokens(f["eval-prompts"], f["eval-count"], tokenizer);
    evalSettings = { prompts, steps: f["eval-steps"], sampling, decoder: (f.draft ? "verify" : f["eval-decoder"]) as DecoderName, seed: EVAL_SEED };
  }
  const what =
    proposer.kind === "draft"
      ? `draft model dim ${proposer.draft.config.model.dim} x ${proposer.draft.config.model.nLayers} layers${f["draft-init"] === "teacher" ? " (from the teacher)" : ""}`
      : `student rank ${proposer.student.config.rank}${proposer.student.config.extraBlocks ? ` with ${proposer.student.config.extraBlocks} extra blocks` : ""}`;
  io.stderr(`distill: ${dataset.records.length} sequences, ${trainedVariant}-PTP ${what} (${trained.aux.kind}), window ${f.window}, loss ${loss}, T ${sampling.temperature}\n`);
  try {
    const r = await distill(
      ckpt,
      teacher,
      proposer,
      dataset.records,
      {
        loss,
        gamma: f.gamma,
        betaB: f.beta,
        windows: f.windows,
        sequences: f.batch,
        window: f.window,
        sampling,
        ...loop,
        eval: evalSettings,
        threads,
      },
      { out, ...files },
      progressSink(io),
    );
    return finishRun(io, "distill", r, `${proposer.kind === "draft" ? "draft model" : "student"}: ${out}`);
  } finally {
    teacher.dispose();
  }
}
