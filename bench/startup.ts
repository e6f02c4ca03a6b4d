/**
 * The time to the first token, phase by phase, and the memory it takes: what
 * `ptp generate` does before its first token (read the checkpoint, start the
 * wasm backend, upload the weights, the first forward call with its panel
 * packing), each repetition in a fresh process as a user runs it, for random
 * checkpoints of the given shapes (--format hf: as a Hugging Face folder,
 * written by `ptp convert --to hf`; --student: with a random C-PTP student
 * made for it, checked against the teacher's checksum as `ptp generate
 * --student` does). With --baseline, an older checkout's
 * build (its dist/, e.g. `git worktree add /tmp/old REV && cd /tmp/old &&
 * npm ci && npm run build`) is measured in the same run, alternating with
 * this one, and the table gives this checkout's speed over it.
 *
 *   node --import tsx bench/startup.ts [--shapes 15M,110M] [--threads 2] [--reps 3] [--format llama2c|hf] [--student] [--baseline DIR]
 *
 * Phases (ms, medians), as `ptp generate` runs them: read (the header alone,
 * readModelConfig; a build without loadModel, or a PTP run in a build whose
 * teacherChecksum takes no Transformer: readModel, the whole file and the
 * finiteness check), backend (createBackend), load (loadModel: the file
 * straight into the model's buffers and the check; without it: new
 * Transformer, the upload), student (--student: the teacher's checksum and
 * loadStudent), first call (a one-token greedy decode: the weights' panels
 * are made here), total; wasm
 * MB is the backend's memory after the first call, RSS MB the process's.
 * Run alone: page faults on fresh memory dominate these times, and on a
 * virtual machine their cost moves with the host's load.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { benchFlags, COUNT, listFlag, markdownTable, median, SHAPE_NAMES, THREADS } from "./common.js";

const f = benchFlags({
  shapes: { kind: "string", value: "LIST", default: "15M,110M" },
  threads: { ...THREADS, default: 2 },
  reps: { ...COUNT, default: 3 },
  baseline: { kind: "string", value: "DIR" },
  format: { kind: "string", value: "llama2c|hf", choices: ["llama2c", "hf"], default: "llama2c" },
  student: { kind: "bool" },
});
const shapes = listFlag("shapes", f.shapes, { kind: "string", choices: SHAPE_NAMES });
const root = resolve(import.meta.dirname, "..");
const builds: [string, string][] = [["this checkout", root]];
if (f.baseline !== undefined) builds.push(["baseline", resolve(f.baseline)]);

/** One fresh process: the phases of `root`'s dist on `model`, as JSON. */
const CHILD = `
const root = process.env.PTP_ROOT, model = process.env.PTP_MODEL, threads = Number(process.env.PTP_THREADS), studentPath = process.env.PTP_STUDENT;
const url = (p) => new URL(p, "file://" + root + "/dist/").href;
const files = await import(url("io/model-file.js"));
const { createBackend } = await import(url("backends/registry.js"));
const { Transformer } = await import(url("model/transformer.js"));
const { decodeAR } = await import(url("ptp/decode/decode-ar.js"));
const { teacherChecksum } = await import(url("ptp/files/teacher-checksum.js"));
const { loadStudent } = await import(url("ptp/files/student-file.js"));
// As ptp generate: the header first, the weights straight into the backend (loadModel); a build without loadModel, or
// a PTP run where teacherChecksum takes no Transformer (withWeightRows), reads them to the host and uploads.
const direct = files.loadModel && (!studentPath || "withWeightRows" in Transformer.prototype);
const t = [performance.now()];
const ckpt = direct ? files.readModelConfig(model) : files.readModel(model);
t.push(performance.now());
const backend = await createBackend("wasm", { threads });
t.push(performance.now());
const m = direct ? files.loadModel(backend, model) : new Transformer(backend, ckpt);
t.push(performance.now());
if (studentPath) {
  const checksum = teacherChecksum(direct ? m : ckpt);
  loadStudent(studentPath, direct ? { config: m.config, checksum } : { checkpoint: ckpt, checksum });
}
t.push(performance.now());
decodeAR(m, [1], { steps: 2, sampling: { temperature: 0 }, stopAtBos: false });
t.push(performance.now());
const phases = t.slice(1).map((x, i) => x - t[i]);
console.log(JSON.stringify({ phases, wasmBytes: backend.memoryBytes, rss: process.memoryUsage().rss }));
process.exit(0);
`;

interface Sample {
  phases: number[];
  wasmBytes: number;
  rss: number;
}

function measure(buildRoot: string, model: string, student: string | undefined): Sample {
  const out = execFileSync(process.execPath, ["--experimental-wasm-relaxed-simd", "--input-type=module", "-e", CHILD], {
    encoding: "utf8",
    env: { ...process.env, PTP_ROOT: buildRoot, PTP_MODEL: model, PTP_THREADS: String(f.threads), PTP_STUDENT: student ?? "" },
    maxBuffer: 1 << 20,
  });
  return JSON.parse(out.trim().split("\n").pop()!) as Sample;
}

const load = () => (process.platform === "linux" ? execFileSync("cat", ["/proc/loadavg"], { encoding: "utf8" }).split(" ").slice(0, 3).join(" ") : "n/a");
const tmp = mkdtempSync(join(tmpdir(), "ptp-startup-"));
const loadBefore = load();
const rows: string[][] = [];
try {
  for (const shape of shapes) {
    const bin = join(tmp, `${shape}.bin`);
    const ptp = (...args: string[]) => execFileSync(process.execPath, [join(root, "bin/ptp.js"), ...args], { stdio: "ignore" });
    ptp("random-model", "--shape", shape, "--seed", "1", "--out", bin);
    const model = f.format === "hf" ? join(tmp, `${shape}-hf`) : bin;
    if (f.format === "hf") ptp("convert", "--model", bin, "--to", "hf", "--out", model);
    const student = f.student ? join(tmp, `${shape}-student.safetensors`) : undefined;
    if (student) ptp("random-student", "--model", bin, "--rank", "4", "--variant", "C", "--window", "4", "--out", student);
    const samples = new Map<string, Sample[]>(builds.map(([name]) => [name, []]));
    for (let r = 0; r < f.reps; r++) {
      // Alternating, the order flipped every repetition.
      const order = r % 2 === 0 ? builds : [...builds].reverse();
      for (const [name, dir] of order) {
        const s = measure(dir, model, student);
        samples.get(name)!.push(s);
        process.stderr.write(`[startup] ${shape} ${name} rep ${r + 1}: ${s.phases.map((p) => p.toFixed(0)).join(" + ")} ms; wasm ${(s.wasmBytes / 2 ** 20).toFixed(0)} MB\n`);
      }
    }
    const totals = new Map<string, number>();
    for (const [name] of builds) {
      const ss = samples.get(name)!;
      const phase = (i: number) => median(ss.map((s) => s.phases[i]));
      const total = median(ss.map((s) => s.phases.reduce((a, b) => a + b, 0)));
      totals.set(name, total);
      rows.push([shape, name, ...[0, 1, 2, 3, 4].map((i) => phase(i).toFixed(0)), total.toFixed(0), (median(ss.map((s) => s.wasmBytes)) / 2 ** 20).toFixed(0), (median(ss.map((s) => s.rss)) / 2 ** 20).toFixed(0), ""]);
    }
    if (f.baseline !== undefined) rows[rows.length - 2][10] = `${(totals.get("baseline")! / totals.get("this checkout")!).toFixed(2)}x`;
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
const what = `${f.format === "hf" ? "Hugging Face folders" : "llama2.c files"}${f.student ? ", with a student checked against the teacher" : ""}`;
console.log(`Time to the first token (ms, medians of ${f.reps} fresh processes), ${what}, wasm backend, ${f.threads} thread(s); load average before ${loadBefore}, after ${load()}\n`);
console.log(markdownTable(["shape", "build", "read", "backend", "load", "student", "first call", "total", "wasm MB", "RSS MB", "speed vs baseline"], rows));
