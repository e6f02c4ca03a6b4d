import { readModel } from "../io/model-file.js";
import { configProblems, parameterCount } from "../model/config.js";
import { writeDraft } from "../ptp/files/draft-file.js";
import { DEFAULT_DRAFT_SHAPE, randomDraft } from "../ptp/init.js";
import { teacherChecksum } from "../ptp/files/teacher-checksum.js";
import { describeFlags, parseFlags, UsageError, defineFlags } from "./args.js";
import { auxFlags, auxFromFlags, slotInputFromFlags } from "./flag-groups.js";
import type { Io } from "./io.js";
import { checkOutputs, forceFlag } from "./output-files.js";

export const randomDraftFlags = defineFlags({
  model: { kind: "string", value: "FILE", help: "the teacher: a llama2.c checkpoint or Hugging Face folder (its vocabulary and seqLen are used)", required: true },
  variant: { kind: "string", value: "O|C", help: "O-PTP (own u seen) or C-PTP (own u withheld)", required: true, choices: ["O", "C"] },
  out: { kind: "string", value: "FILE", help: "where to write the draft model (safetensors)", required: true },
  dim: { kind: "int", value: "D", help: "draft model width", default: DEFAULT_DRAFT_SHAPE.dim },
  hidden: { kind: "int", value: "H", help: "draft model SwiGLU hidden width", default: DEFAULT_DRAFT_SHAPE.hiddenDim },
  layers: { kind: "int", value: "L", help: "draft model layers", default: DEFAULT_DRAFT_SHAPE.nLayers },
  heads: { kind: "int", value: "N", help: "draft model query heads", default: DEFAULT_DRAFT_SHAPE.nHeads },
  "kv-heads": { kind: "int", value: "K", help: "draft model key/value heads", default: DEFAULT_DRAFT_SHAPE.nKvHeads },
  ...auxFlags,
  ...forceFlag,
});

export const randomDraftUsage = `usage: ptp random-draft --model FILE --variant O|C --out FILE [options]

Write an untrained standalone PTP draft model (a small transformer of its
own with the teacher's vocabulary, an auxiliary embedding and, for C, a
start vector; random weights) for a teacher checkpoint, for tests and
benchmarks. Use it with 'ptp generate --draft FILE --decoder verify'.

${describeFlags(randomDraftFlags)}`;

export async function randomDraftCommand(argv: readonly string[], io: Io): Promise<number> {
  const f = parseFlags(argv, randomDraftFlags);
  for (const name of ["dim", "hidden", "layers", "heads", "kv-heads", "window"] as const) {
    if (f[name] < 1) throw new UsageError(`--${name} must be a positive integer, got ${f[name]}`);
  }
  if (f.seed < 0) throw new UsageError(`--seed must be a non-negative integer, got ${f.seed}`);
  const shape = { dim: f.dim, hiddenDim: f.hidden, nLayers: f.layers, nHeads: f.heads, nKvHeads: f["kv-heads"] };
  // The shape is checked before any file is read (vocab and seqLen come from the teacher).
  const problems = configProblems({ ...shape, vocabSize: 1, seqLen: 1, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 });
  if (problems.length > 0) throw new UsageError(`the draft shape is invalid: ${problems.join("; ")}`);
  const aux = auxFromFlags(f);
  checkOutputs([{ flag: "--out", path: f.out }], { inputs: [{ flag: "--model", path: f.model }], force: f.force });

  const checkpoint = readModel(f.model);
  const checksum = teacherChecksum(checkpoint);
  const draft = randomDraft(checkpoint, checksum, { config: shape, variant: f.variant, aux, window: f.window, ...slotInputFromFlags(f["slot-input"], f.variant, f.window, true), seed: f.seed });
  writeDraft(f.out, draft);
  const c = draft.config,
    m = c.model;
  const auxParameters = [draft.weights.aux.weight, draft.weights.aux.bias, draft.weights.aux.anchors, draft.weights.start].reduce((n, a) => n + (a?.length ?? 0), 0);
  io.stderr(
    `wrote ${f.out}: ${c.variant}-PTP draft model, dim ${m.dim}, hidden ${m.hiddenDim}, ${m.nLayers} layers, ${m.nHeads} heads, ${m.nKvHeads} kv heads, ` +
      `vocab ${m.vocabSize}, seqLen ${m.seqLen}; aux ${c.aux.kind}${c.aux.kind === "digits" ? ` (${c.aux.digits} digits)` : ""}, window ${c.window}, seed ${f.seed}; ` +
      `${parameterCount(m) + auxParameters} parameters; teacher ${f.model} (checksum ${checksum.slice(0, 12)})\n`,
  );
  return 0;
}
