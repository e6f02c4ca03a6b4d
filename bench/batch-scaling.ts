/**
 * Batch scaling of `generate --prompts`: wall-clock tokens/s of the
 * single-call decoder and of AR when B prompts are decoded together (one
 * shared KV cache), for several B. With per-sequence attention (a sparse
 * mask: each row visits only its own sequence's keys) the cost per token
 * stays flat as B grows; `--dense` hides the backend's sparse attention so
 * every row scans the whole shared cache (the behaviour before), for
 * comparison. Outputs are checked equal to AR's.
 *
 *   node --experimental-wasm-relaxed-simd --import tsx bench/batch-scaling.ts [flags]
 *
 * Flags: --model FILE (../shared/models/stories260K.bin)  --tokenizer FILE (../shared/models/tok512.bin)
 *   --student FILE (demo/stories260K-student.safetensors)  --batches 1,4,16  --steps N (128)
 *   --temperature T (0.7)  --reps N (3)  --threads N (1)  --dense
 */
import { loadavg } from "node:os";
import { resolve } from "node:path";
import type { Backend } from "../src/backends/backend.js";
import { createBackend } from "../src/backends/registry.js";
import { DEMO_PROMPTS } from "../src/cli/demo.js";
import { readCheckpoint } from "../src/io/checkpoint.js";
import { Tokenizer } from "../src/io/tokenizer.js";
import { Transformer } from "../src/model/transformer.js";
import { checkStudentMatchesTeacher, readStudent } from "../src/ptp/files/adapter-file.js";
import { decode, type DecoderName } from "../src/ptp/decode/run.js";
import { PtpModel } from "../src/ptp/ptp-model.js";
import { teacherChecksum } from "../src/ptp/files/teacher-checksum.js";
import { XorShiftAux } from "../src/sampling/aux.js";
import { benchFlags, COUNT, listFlag, median, TEMPERATURE, THREADS, usageError } from "./common.js";

const root = resolve(import.meta.dirname, "..");
const f = benchFlags({
  model: { kind: "string", value: "FILE", default: resolve(root, "../shared/models/stories260K.bin") },
  tokenizer: { kind: "string", value: "FILE", default: resolve(root, "../shared/models/tok512.bin") },
  student: { kind: "string", value: "FILE", default: resolve(root, "demo/stories260K-student.safetensors") },
  batches: { kind: "string", value: "LIST", default: "1,4,16" },
  steps: { ...COUNT, default: 128 },
  temperature: { ...TEMPERATURE, default: 0.7 },
  reps: { ...COUNT, default: 3 },
  threads: { ...THREADS, default: 1 },
  dense: { kind: "bool" },
});
const modelPath = f.model,
  tokPath = f.tokenizer,
  studentPath = f.student;
const batches = listFlag("batches", f.batches, COUNT);
const { steps, temperature, reps, threads } = f;

const teacher = readCheckpoint(modelPath);
const student = readStudent(studentPath);
checkStudentMatchesTeacher(student, teacher, teacherChecksum(teacher), studentPath);
const tokenizer = Tokenizer.load(tokPath, teacher.config.vocabSize);
// A prompt of more than --steps tokens makes nothing (and would count negative tokens).
const longest = Math.max(...DEMO_PROMPTS.slice(0, Math.max(...batches)).map((p) => tokenizer.encode(p, true, false).length));
if (steps < longest) usageError(`--steps ${steps} is shorter than the longest prompt (${longest} tokens): give at least ${longest}`);
const wasm = await createBackend("wasm", { threads });
// --dense: the same backend without attentionSparse, so the model falls back to dense masks.
const backend: Backend = f.dense ? new Proxy(wasm, { get: (t, k) => (k === "attentionSparse" ? undefined : ((v) => (typeof v === "function" ? v.bind(t) : v))(Reflect.get(t, k, t))) }) : wasm;
const model = new PtpModel(new Transformer(backend, teacher), student);
const sampling = { temperature, topK: 0, topP: 1 };
const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");
process.stderr.write(`[batch-scaling] ${f.dense ? "dense masks" : "sparse masks"}, steps ${steps}, T ${temperature}, threads ${threads}; load ${load()}\n`);

function run(decoder: DecoderName, prompts: number[][]): { seconds: number; tokens: number; outputs: number[][] } {
  const start = performance.now();
  const r = decode(model, prompts, { decoder, steps, sampling, aux: prompts.map((_, i) => new XorShiftAux(BigInt(i + 1))), stopAtBos: false });
  const seconds = (performance.now() - start) / 1000;
  return { seconds, tokens: r.outputs.reduce((n, o, i) => n + o.length - prompts[i].length, 0), outputs: r.outputs };
}

console.log("| batch | AR tok/s | single-call tok/s | speedup | equals AR |");
console.log("|---|---|---|---|---|");
for (const B of batches) {
  const prompts = Array.from({ length: B }, (_, i) => tokenizer.encode(DEMO_PROMPTS[i % DEMO_PROMPTS.length], true, false));
  const ar: number[] = [],
    sc: number[] = [];
  let same = true;
  for (let r = 0; r < reps; r++) {
    const a = run("ar", prompts),
      s = run("single-call", prompts);
    ar.push(a.tokens / a.seconds);
    sc.push(s.tokens / s.seconds);
    same &&= JSON.stringify(a.outputs) === JSON.stringify(s.outputs);
  }
  const arT = median(ar),
    scT = median(sc);
  console.log(`| ${B} | ${arT.toFixed(0)} | ${scT.toFixed(0)} | ${(scT / arT).toFixed(2)}x | ${same ? "yes" : "NO"} |`);
}
process.stderr.write(`[batch-scaling] load after ${load()}\n`);
model.dispose();
