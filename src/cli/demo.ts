import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createBackend } from "../backends/registry.js";
import { WEIGHT_TYPES } from "../backends/backend.js";
import { backendFlags, budgetFlag, checkThreadsBackend, windowFlag } from "./flag-groups.js";
import { WIDEN_SHAPES } from "../ptp/widen.js";
import { quotePath } from "../io/errors.js";
import { loadTokenizer, readModel, readModelConfig } from "../io/model-file.js";
import { inferenceMemory } from "../train/memory.js";
import { refuseBeyondMemory } from "./memory.js";
import type { TextTokenizer } from "../io/hf-tokenizer.js";
import { readStudent } from "../ptp/files/adapter-file.js";
import { chunkBytes } from "../ptp/chunk-text.js";
import { loadStudent } from "../ptp/files/student-file.js";
import { comparePtpArSteps, decoderSettings, defaultDecoder, firstMismatch } from "../ptp/decode/compare.js";
import { DECODER_DEFAULTS, decoderGoesWith, studentKind } from "../ptp/decode/defaults.js";
import type { DecoderName, PtpResult } from "../ptp/decode/run.js";
import { PtpModel } from "../ptp/ptp-model.js";
import { measureSpeedupSteps, speedupTable } from "../ptp/speedup.js";
import { teacherChecksum } from "../ptp/files/teacher-checksum.js";
import { XorShiftAux } from "../sampling/aux.js";
import { Interruption, runInterruptibly, signalSoFar } from "../train/interrupt.js";
import { describeFlags, givenFlags, parseFlags, UsageError, defineFlags } from "./args.js";
import { processIo, type Io } from "./io.js";
import { interrupted, loadModelOn, namingModel, plural, readPrompts, runPositions, seedFlag, temperatureFlag, warnNonFinite, whySlowerLines } from "./ptp-common.js";

/** The package root: two levels above this file, in src/cli/ and in dist/cli/ alike (not the cwd). */
const PACKAGE_ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const DEFAULT_DEMO_DIR = join(PACKAGE_ROOT, "demo");
/** The shipped demo files, inside the demo directory. */
export const DEMO_FILES = { model: "teacher.bin", tokenizer: "tok.bin", student: "student.safetensors" } as const;
/** Students shipped in demo/ for other teachers: `ptp demo --model M --tokenizer T` uses the one made for M. */
export const SHIPPED_STUDENTS = ["stories260K-student.safetensors"] as const;
export const DEMO_SCRIPT = "scripts/make-demo-models.sh";

/** Prompts that fit the synthetic story grammar (and read naturally for TinyStories models too). */
export const DEMO_PROMPTS = ["Once upon a time,", "One sunny day, a little girl named Lily", "Tom was a happy dog who", "There once was a shy cat called"];

export const demoFlags = defineFlags({
  model: { kind: "string", value: "FILE", help: "teacher checkpoint (default: the shipped demo/teacher.bin); needs --tokenizer; without --student, the shipped student made for it" },
  tokenizer: { kind: "string", value: "FILE", help: "tokenizer.bin of the model (default: demo/tok.bin)" },
  student: { kind: "string", value: "FILE", help: "PTP student distilled for the model, file or PEFT folder (default: demo/student.safetensors)" },
  "demo-dir": { kind: "string", value: "DIR", help: "where the default files live (default: demo/ in the package)" },
  prompts: { kind: "string", value: "FILE", help: "prompts, one per line (blank lines skipped); default: a built-in list" },
  steps: { kind: "int", value: "N", help: "positions to run per prompt, prompt included (0 = the model's seqLen)", default: 200, min: 0 },
  temperature: { kind: "number", value: "T", help: "sampling temperature; 0 = greedy", default: 0.7 },
  seed: { kind: "string", value: "S", help: "seed of the xorshift u-stream, an integer in [1, 2^64 - 1]; prompt i uses S + i", default: "1" },
  decoder: { kind: "string", value: "NAME", help: "single-call (one call verifies and proposes) or verify (a student call proposes, a teacher call verifies)", default: defaultDecoder("student"), choices: ["single-call", "verify"] },
  window: windowFlag(`proposal slots per window (default: the student's; a draft head's, at most ${DECODER_DEFAULTS.headWindow})`),
  budget: budgetFlag,
  ...backendFlags(),
  "draft-classifier": { kind: "string", value: "TYPE", help: "wasm backend: a draft-head student's classifier as f32 (default), bf16 or int8; the head only proposes, so the output stays the teacher's", choices: WEIGHT_TYPES },
  "no-color": { kind: "bool", help: "mark accepted chunks with [brackets] even on a terminal" },
  scale: { kind: "bool", help: "then measure AR and PTP tok/s at widened copies of the teacher with the compute of larger shapes (same tokens)" },
  "scale-shapes": { kind: "string", value: "LIST", help: `the shapes --scale measures, comma-separated (known: ${Object.keys(WIDEN_SHAPES).join(", ")})`, default: "15M,42M,110M" },
});

export const demoUsage = `usage: ptp demo [--model FILE --tokenizer FILE --student FILE] [options]

Decode a few prompts with Parallel Token Prediction (by default the
single-call decoder: one model call verifies the last proposals and makes
the next; --decoder verify: a student call proposes, a teacher call
verifies) and again autoregressively with the same u's, then print each
text with the chunk that each step accepted marked (alternating colours on
a terminal, else [brackets]), accepted tokens per step (per call for
single-call), model calls,
tokens/s of both, the speedup, and whether the outputs equal AR's (exit 1
if not). On this CPU what pays at larger shapes is the draft head, which
drafts beside the teacher (decoder verify): ptp demo --model
stories260K.bin --tokenizer tok512.bin --student
demo/stories260K-head.safetensors --window 4 --scale (docs/BENCHMARKS.md).

By default it runs the small teacher and distilled student shipped in
demo/ (a char-level Llama trained on the project's synthetic stories; see
${DEMO_SCRIPT}). On a real checkpoint:
  ptp demo --model stories260K.bin --tokenizer tok512.bin (uses the shipped
  stories260K student; --student FILE for another)

${describeFlags(demoFlags)}`;

/** ANSI backgrounds alternating between chunks; the prompt is bold. */
const CHUNK_STYLES = ["\x1b[30;46m", "\x1b[30;43m"];
const BOLD = "\x1b[1m";
const RESET = "\x1b[0m";

/**
 * The demo's last line when PTP took longer than AR and --scale was not
 * given (then the widened shapes answer it): why, and what to run. Empty
 * otherwise.
 */
export function whySlower(ptpSeconds: number, arSeconds: number, scale: boolean): string {
  if (scale || !(ptpSeconds > arSeconds)) return "";
  return "\nwhy slower: " + whySlowerLines("--scale measures the same decoding at the compute of larger models.");
}

export async function demoCommand(argv: readonly string[], io: Io): Promise<number> {
  const f = parseFlags(argv, demoFlags);
  temperatureFlag(f.temperature);
  seedFlag(f.seed);
  checkThreadsBackend(f);
  const unknownShape = f["scale-shapes"].split(",").find((s) => !Object.hasOwn(WIDEN_SHAPES, s));
  if (unknownShape !== undefined) throw new UsageError(`--scale-shapes must list known shapes (${Object.keys(WIDEN_SHAPES).join(", ")}), comma-separated; got ${JSON.stringify(unknownShape)} in ${JSON.stringify(f["scale-shapes"])}`);
  const repeatedShape = f["scale-shapes"].split(",").find((s, i, all) => all.indexOf(s) !== i);
  if (repeatedShape !== undefined) throw new UsageError(`--scale-shapes lists ${repeatedShape} twice in ${JSON.stringify(f["scale-shapes"])}; give each shape once`);
  if (givenFlags(argv, demoFlags).has("scale-shapes") && !f.scale) throw new UsageError("--scale-shapes goes with --scale");
  if (f.budget !== undefined && f.decoder !== "single-call") throw new UsageError(`--budget applies to --decoder single-call only (the decoder is ${f.decoder})`);
  if (f["draft-classifier"] !== undefined && f["draft-classifier"] !== "f32" && f.backend !== "wasm") throw new UsageError(`--draft-classifier ${f["draft-classifier"]} needs the wasm backend`);
  if ((f.model === undefined) !== (f.tokenizer === undefined)) throw new UsageError("give --model and --tokenizer together (a tokenizer belongs to its model)");

  const dir = f["demo-dir"] ?? DEFAULT_DEMO_DIR;
  if (f["demo-dir"] !== undefined) {
    const st = statSync(dir, { throwIfNoEntry: false });
    if (st === undefined) throw new Error(`--demo-dir ${quotePath(dir)}: the folder does not exist (expected a folder of demo models)`);
    if (!st.isDirectory()) throw new Error(`--demo-dir ${quotePath(dir)}: is not a folder (expected a folder of demo models)`);
  }
  // A --model without --student takes the shipped student made for it, found once the model is read.
  const paths: { model: string; tokenizer: string; student: string | undefined } = {
    model: f.model ?? join(dir, DEMO_FILES.model),
    tokenizer: f.tokenizer ?? join(dir, DEMO_FILES.tokenizer),
    student: f.student ?? (f.model !== undefined ? undefined : join(dir, DEMO_FILES.student)),
  };
  const missingDefaults = (["model", "tokenizer", "student"] as const).filter((k) => f[k] === undefined && paths[k] !== undefined && !existsSync(paths[k]!));
  if (missingDefaults.length > 0) {
    throw new Error(`the demo models are missing: ${missingDefaults.map((k) => quotePath(paths[k]!)).join(", ")}.\n` + `Create them with ${DEMO_SCRIPT} (synthetic stories -> char tokenizer -> teacher -> distilled student; see README.md),\n` + `or pass --model FILE --tokenizer FILE --student FILE.`);
  }

  // A teacher too large for memory is refused from its header, before its buffers are made (as generate does).
  const header = readModelConfig(paths.model);
  const positions = f.steps === 0 ? header.seqLen : Math.min(f.steps, header.seqLen);
  refuseBeyondMemory(`${quotePath(paths.model)} at --steps ${positions}`, inferenceMemory(header, positions, positions), f.backend, "--steps", paths.model);
  // The teacher straight into the backend's buffers (loadModel); the student is matched against the checksum read from them.
  const backend = await createBackend(f.backend, { threads: f.threads });
  // Ctrl-C (SIGTERM) stops the decodes between two model calls, --scale between two decodes; one seen during the (synchronous) load, at the first of those.
  const interruption = new Interruption();
  const teacher = loadModelOn(backend, paths.model);
  let model: PtpModel | undefined;
  try {
    const checksum = teacherChecksum(teacher);
    paths.student ??= shippedStudentFor(checksum, dir);
    if (paths.student === undefined) {
      const looked = [DEMO_FILES.student, ...SHIPPED_STUDENTS].map((n) => quotePath(join(dir, n))).join(", ");
      throw new Error(`no shipped student was made for ${quotePath(paths.model)} (looked at ${looked}); pass --student FILE, a student distilled for that model (ptp distill)`);
    }
    const tokenizer = loadTokenizer(paths.tokenizer, teacher.config.vocabSize);
    const student = loadStudent(paths.student, { config: teacher.config, checksum });
    warnNonFinite(io, "student", paths.student, student.weights);
    if (f["draft-classifier"] !== undefined && !student.config.draftHead) throw new UsageError(`--draft-classifier applies to a draft-head student; ${quotePath(paths.student)} is a student whose slots run in the teacher's call`);
    const texts = f.prompts !== undefined ? readPrompts(f.prompts) : DEMO_PROMPTS;
    const seed = seedFlag(f.seed, texts.length);
    const color = !f["no-color"] && io === processIo && process.stdout.isTTY === true && !process.env.NO_COLOR;
    const draftClassifier = f["draft-classifier"];
    model = new PtpModel(teacher, student, undefined, { classifierWeights: draftClassifier });
    const { window, budget, draftStop } = decoderSettings({ window: f.window, budget: f.budget, studentWindow: student.config.window, studentDraftHead: student.config.draftHead === true });
    // A draft head drafts beside the teacher: its decoders and its default are the library's (proposerDecoders, defaultDecoder).
    const kind = studentKind(student);
    const head = kind === "draft-head";
    const decoderGiven = givenFlags(argv, demoFlags).has("decoder");
    if (decoderGiven && !decoderGoesWith(kind, f.decoder as DecoderName)) throw new UsageError(`--decoder ${f.decoder} does not go with ${quotePath(paths.student)}, a draft-head student, which drafts beside the teacher (--decoder ${defaultDecoder(kind)})`);
    if (head && f.budget !== undefined) throw new UsageError(`--budget applies to --decoder single-call only; ${quotePath(paths.student)} is a draft-head student, decoded by ${defaultDecoder(kind)}`);
    const decoder = (decoderGiven ? f.decoder : defaultDecoder(kind)) as "single-call" | "verify";
    // The paper's figure: tokens per verification step (single-call: one call).
    const perStep = decoder === "verify" ? "accepted per step" : "accepted per call";
    const c = teacher.config,
      s = student.config;
    const positions = runPositions(io, f.steps, c.seqLen, givenFlags(argv, demoFlags).has("steps"));
    io.stdout(
      `teacher:  ${paths.model} (dim ${c.dim}, ${c.nLayers} layers, vocab ${c.vocabSize}, seqLen ${c.seqLen})\n` +
        `student:  ${paths.student} (${head ? `a draft head of ${s.extraBlocks} blocks, ` : ""}${s.variant}-PTP, ${head ? "" : `rank ${s.rank}, `}window ${s.window})\n` +
        `decoding: ${decoder === "verify" ? `verify (window ${window}${head ? `: the pending token and up to ${window - 1} drafts per teacher call${draftStop === "auto" ? ", as many as the measured call cost pays for" : draftStop > 0 ? `, stopping where the head's chance falls below ${draftStop}` : ""}${draftClassifier ? `; the head's classifier in ${draftClassifier}` : ""}` : ""})` : `single-call (window ${window}, budget ${budget})`} vs AR, temperature ${f.temperature}, seed ${f.seed} (prompt i: seed + i), ` +
        `${positions} positions; ${color ? "each call's accepted tokens in alternating colours" : "each call's accepted tokens in [brackets]"}\n\n`,
    );

    const prompts = texts.map((t) => tokenizer.encode(t, true, false));
    const runs: Run[] = [];
    const early = await signalSoFar(interruption);
    if (early !== undefined) return interrupted(io, "demo", early, `0 of ${plural(prompts.length, "prompt")}`);
    // One prompt per decode, so each prompt's speed is its own; a warm-up of both decoders first.
    const compared = await runInterruptibly(
      comparePtpArSteps(model, prompts, {
        decode: { steps: positions, sampling: { temperature: f.temperature }, decoder, window, budget },
        aux: (i) => new XorShiftAux(seed + BigInt(i)),
        batch: 1,
        warmUp: "both",
        onBatch: ({ from: i, ptp, ar }) => {
          const run = runOf(ptp, ar);
          runs.push(run);
          io.stdout(`[${i + 1}] `);
          io.stdout(markedText(tokenizer, ptp.outputs[0], ptp.chunks[0], color));
          const r = summary(run);
          io.stdout(`\n    ${run.generated} tokens; ${perStep} ${r.accepted}; model calls ${r.calls}; tokens/s ${r.speed}; equals AR: ${r.equal}\n\n`);
        },
      }),
      interruption,
    );
    // A prompt is printed once both of its decodes are done: what was printed is the uninterrupted run's start.
    if (!compared.done) return interrupted(io, "demo", compared.signal, `${runs.length} of ${plural(prompts.length, "prompt")}`);

    const all = runs.reduce(addRuns);
    const r = summary(all);
    io.stdout(
      `overall: ${prompts.length} prompt${prompts.length === 1 ? "" : "s"}, ${all.generated} tokens\n` +
        `${perStep}: ${r.accepted} (mean${decoder === "verify" ? (head ? "; a step is one teacher call, the head drafting beside it" : "; a step is a student call and a teacher call") : ""})\n` +
        `model calls: ${r.calls}\n` +
        `tokens/s: ${r.speed}\n` +
        `equals AR: ${r.equal}\n` +
        `backend: ${backend.description}\n`,
    );
    if (all.generated > 0) io.stdout(whySlower(all.seconds, all.arSeconds, f.scale));
    if (all.equal && f.scale && all.generated === 0) {
      io.stdout(`\nat larger shapes: nothing to measure: every prompt fills the ${positions} positions (--steps)\n`);
    } else if (all.equal && f.scale) {
      io.stdout(`\nat larger shapes: the teacher and student widened to the compute of the ${f["scale-shapes"]} shapes (extra width, heads,\n` + `layers and vocabulary that contribute nothing: the same tokens and acceptance), ${decoder} vs AR, one prompt per decode:\n\n`);
      const scaled = await runInterruptibly(
        measureSpeedupSteps({
          backend,
          // The widening reads the teacher's weights on the host: only here.
          teacher: readModel(paths.model),
          proposer: { kind: "student", student },
          prompts,
          shapes: ["own", ...f["scale-shapes"].split(",")],
          decoders: [decoder],
          window,
          steps: positions,
          temperature: f.temperature,
          reps: 1,
          seed,
          draftClassifier,
          // Minutes at the larger shapes: say what runs (stderr, so stdout stays the report).
          onProgress: (m) => io.stderr(`ptp demo: --scale ${m}\n`),
        }),
        interruption,
      );
      if (!scaled.done) return interrupted(io, "demo", scaled.signal, `all ${plural(prompts.length, "prompt")}, during --scale (its table is printed only whole)`);
      const rows = scaled.value;
      io.stdout(speedupTable(rows));
      io.stdout("(one timed run per cell, AR and PTP one after the other: on a loaded machine the speedups move; bench/ptp-speedup.ts --reps N repeats them)\n");
      all.equal = rows.every((row) => row.equalsAR);
    }
    if (!all.equal) {
      io.stderr("ptp demo: a PTP output differs from AR's with the same u's; PTP decoding must reproduce AR exactly, so this is a library bug\n");
      return 1;
    }
    return 0;
  } catch (e) {
    throw namingModel(e, paths.model);
  } finally {
    interruption.dispose();
    model?.dispose();
    teacher.dispose();
  }
}

/** What one prompt (or, summed, all prompts) took with PTP and with AR. */
interface Run {
  generated: number;
  /** Verification steps, i.e. accepted chunks. */
  steps: number;
  calls: number;
  arCalls: number;
  seconds: number;
  arSeconds: number;
  equal: boolean;
}

function runOf(ptp: PtpResult, ar: PtpResult): Run {
  return {
    generated: ptp.stats.generatedTokens,
    steps: ptp.chunks[0].length,
    calls: ptp.stats.modelCalls,
    arCalls: ar.stats.modelCalls,
    seconds: ptp.stats.seconds,
    arSeconds: ar.stats.seconds,
    equal: firstMismatch(ptp.outputs, ar.outputs) === undefined,
  };
}

function addRuns(a: Run, b: Run): Run {
  return {
    generated: a.generated + b.generated,
    steps: a.steps + b.steps,
    calls: a.calls + b.calls,
    arCalls: a.arCalls + b.arCalls,
    seconds: a.seconds + b.seconds,
    arSeconds: a.arSeconds + b.arSeconds,
    equal: a.equal && b.equal,
  };
}

/** The printed figures of a run; ratios of nothing (a prompt with no room to generate) read "n/a". */
function summary(r: Run): { accepted: string; calls: string; speed: string; equal: string } {
  const ratio = (a: number, b: number, digits: number) => (a > 0 && b > 0 ? (a / b).toFixed(digits) : "n/a");
  // With nothing generated the calls and seconds are the prompt's alone: no PTP to compare.
  const times = (a: number, b: number) => (r.generated > 0 && a > 0 && b > 0 ? `${(a / b).toFixed(2)}x` : "n/a");
  return {
    accepted: ratio(r.generated, r.steps, 2),
    calls: `${r.calls} (AR: ${r.arCalls}; ${r.generated > 0 ? `${times(r.arCalls, r.calls)} fewer` : "fewer: n/a"})`,
    speed: `${ratio(r.generated, r.seconds, 1)} (AR: ${ratio(r.generated, r.arSeconds, 1)}; speedup ${times(r.arSeconds, r.seconds)})`,
    equal: r.equal ? "yes" : "NO",
  };
}

/**
 * The bytes the AR path prints for `tokens` (the pieces the tokenizer
 * prints, after the first token), with the generated part (the last
 * sum(chunks) tokens) cut into the accepted chunks:
 * each chunk in [brackets], or in alternating ANSI backgrounds with the
 * prompt in bold. Removing the marks gives the AR text exactly.
 */
export function markedText(tokenizer: TextTokenizer, tokens: readonly number[], chunks: readonly number[], color: boolean): Uint8Array {
  const parts = chunkBytes(tokenizer, tokens, chunks);
  const out: Uint8Array[] = [];
  const ascii = (s: string) => out.push(Buffer.from(s, "latin1"));
  // A UTF-8 character whose bytes came in two chunks is shown whole in the later one (a mark inside it would garble it).
  let carry: Uint8Array = new Uint8Array(0);
  const whole = (bytes: Uint8Array): Uint8Array => {
    const all = Buffer.concat([carry, bytes]);
    const cut = all.length - incompleteUtf8Tail(all);
    carry = all.subarray(cut);
    return all.subarray(0, cut);
  };
  if (color) ascii(BOLD);
  out.push(whole(parts.prompt));
  if (color) ascii(RESET);
  parts.chunks.forEach((bytes, j) => {
    ascii(color ? CHUNK_STYLES[j % CHUNK_STYLES.length] : "[");
    out.push(whole(bytes));
    ascii(color ? RESET : "]");
  });
  out.push(carry);
  return Buffer.concat(out);
}

/** How many bytes at the end of `bytes` start a UTF-8 character that is not complete yet (0 to 3). */
function incompleteUtf8Tail(bytes: Uint8Array): number {
  // Walk back over at most 3 continuation bytes (10xxxxxx) to the lead byte and compare its length with what follows.
  for (let back = 1; back <= Math.min(4, bytes.length); back++) {
    const b = bytes[bytes.length - back];
    if ((b & 0xc0) === 0x80) continue;
    const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return need > back ? back : 0;
  }
  return 0;
}

/** The shipped student whose teacher checksum is the model's, if any (undefined: none fits). */
function shippedStudentFor(checksum: string, dir: string): string | undefined {
  for (const name of [DEMO_FILES.student, ...SHIPPED_STUDENTS]) {
    const path = join(dir, name);
    if (existsSync(path) && readStudent(path).config.teacherChecksum === checksum) return path;
  }
  return undefined;
}
