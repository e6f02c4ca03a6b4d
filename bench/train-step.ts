/**
 * Speed of one distillation training step of the stories260K O-PTP student
 * (gated LoRA rank 32, anchors aux embedding, window 8, 512 slots per step
 * = 2 sequences x 32 windows x 8 slots over 256-token sequences), on 1 and 2
 * threads, next to the same step in PyTorch on CPU (bench/train-step-torch.py),
 * measured in the same run: rounds alternate ours and PyTorch at each thread
 * count, and each figure is the median over rounds of the median step time.
 *
 *   node --experimental-wasm-relaxed-simd --import tsx bench/train-step.ts \
 *     [--model ../shared/models/stories260K.bin] [--threads 1,2] [--rounds 3] [--steps 12]
 *     [--seq-len 256] [--rank 32] [--no-torch] [--json]
 *
 * A step is the whole of it: the teacher's KV of each sequence, the student's
 * forward and backward over all slots, the gradient reduction and AdamW.
 * GFLOP/s counts the student's forward and backward by the analytic formula
 * both scripts share (flopsPerSlot below); % of peak is against T times the
 * relaxed-SIMD FMA peak of one core measured in this run. PyTorch runs with
 * Debian's OpenBLAS (libopenblas0-openmp) and OPENBLAS_CORETYPE=SkylakeX when
 * that library is installed, else with whatever libblas.so.3 resolves to; the
 * table names the BLAS it used. Without /usr/bin/python3 + torch the PyTorch
 * column is skipped with a message.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { loadavg } from "node:os";
import { createBackend } from "../src/backends/registry.js";
import { measureFmaPeak } from "./peak.js";
import { readCheckpoint } from "../src/io/checkpoint.js";
import { kvDim } from "../src/model/config.js";
import { Transformer } from "../src/model/transformer.js";
import { randomStudent } from "../src/ptp/init.js";
import { teacherChecksum } from "../src/ptp/files/teacher-checksum.js";
import { wasmTrainKernels } from "../src/train/autograd/index.js";
import { DataParallel } from "../src/train/data-parallel.js";
import type { SequenceJob } from "../src/train/distill-step.js";
import { AdamW } from "../src/train/optim.js";
import { benchFlags, COUNT, listFlag, median, THREADS } from "./common.js";

const flags = benchFlags({
  model: { kind: "string", value: "FILE", default: "../shared/models/stories260K.bin" },
  threads: { kind: "string", value: "LIST", default: "1,2" },
  rounds: { ...COUNT, default: 3 },
  steps: { ...COUNT, default: 12 },
  // Longer than a window (L = 8 slots), whose starts are drawn in [1, N - L].
  "seq-len": { kind: "int", value: "N", default: 256, min: 9 },
  rank: { ...COUNT, value: "R", default: 32 },
  "no-torch": { kind: "bool" },
  json: { kind: "bool" },
});
const modelPath = flags.model;
const threadCounts = listFlag("threads", flags.threads, THREADS);
const { rounds, steps, rank } = flags;
const N = flags["seq-len"];
const S = 2,
  W = 32,
  L = 8,
  SLOTS = S * W * L;
const withTorch = !flags["no-torch"],
  asJson = flags.json;
const say = (s: string) => void (asJson ? process.stderr : process.stdout).write(s + "\n");

const ckpt = readCheckpoint(modelPath);
const cfg = ckpt.config;

/**
 * Analytic FLOPs of the student's forward + backward per slot (2 per
 * multiply-add): per layer, the frozen weights 4 in out (forward, input
 * gradient), LoRA 6 r (in + out), attention 8 H hs kbar over the k visible
 * keys (kbar = N/2 + 1) plus 4 H hs kwbar for the window keys' gradients
 * (kwbar = (L + 1)/2); the classifier 4 D V. The same formula as
 * bench/train-step-torch.py.
 */
function flopsPerSlot(): number {
  const kv = kvDim(cfg),
    D = cfg.dim,
    F = cfg.hiddenDim,
    hs = D / cfg.nHeads;
  const linears: [number, number][] = [
    [D, D],
    [D, kv],
    [D, kv],
    [D, D],
    [D, F],
    [F, D],
    [D, F],
  ];
  const io = linears.reduce((a, [i, o]) => a + i * o, 0),
    ipo = linears.reduce((a, [i, o]) => a + i + o, 0);
  const perLayer = 4 * io + 6 * rank * ipo + 8 * cfg.nHeads * hs * (N / 2 + 1) + 4 * cfg.nHeads * hs * ((L + 1) / 2);
  return cfg.nLayers * perLayer + 4 * D * cfg.vocabSize;
}

/** A deterministic stream of steps' jobs: random tokens and u's, window starts in [1, N - L]. */
function makeJobs(seed: number): SequenceJob[] {
  let x = seed >>> 0 || 1;
  const next = () => ((x ^= x << 13), (x ^= x >>> 17), (x ^= x << 5), (x >>> 0) / 2 ** 32);
  return Array.from({ length: S }, () => ({
    tokens: Int32Array.from({ length: N }, () => Math.floor(next() * cfg.vocabSize)),
    us: Float32Array.from({ length: N }, () => next()),
    starts: Array.from({ length: W }, () => 1 + Math.floor(next() * (N - L))),
  }));
}

const backend = await createBackend("wasm", { threads: 1 });
const kernels = wasmTrainKernels();
const teacher = new Transformer(backend, ckpt);
const settings = { loss: "ce" as const, gamma: 1, window: L, sequences: S, sampling: { temperature: 0.7, topK: 0, topP: 1 } };

/** Median step time (seconds) of `steps` steps after 2 warm-up steps, on T threads. */
async function ours(T: number): Promise<number> {
  const student = randomStudent(ckpt, teacherChecksum(ckpt), { variant: "O", rank, alpha: rank, aux: { kind: "anchors" }, window: L, hybrid: true, seed: 1 });
  const parallel = await DataParallel.start(ckpt, teacher, { kind: "student", student }, settings, T, S, kernels);
  try {
    const opt = new AdamW(parallel.trainable, { weightDecay: 0 });
    const times: number[] = [];
    for (let i = 0; i < steps + 2; i++) {
      const jobs = makeJobs(1000 + i);
      const t0 = performance.now();
      await parallel.run(jobs);
      opt.step(1e-3);
      if (i >= 2) times.push((performance.now() - t0) / 1000);
    }
    return median(times);
  } finally {
    parallel.close();
  }
}

interface TorchResult {
  medianStepSeconds: number;
  slotsPerSecond: number;
  blas: string;
  openblasCoretype: string | null;
  torch: string;
}

const PYTHON = "/usr/bin/python3";
const OPENBLAS = "/usr/lib/x86_64-linux-gnu/openblas-openmp";
let torchNote = "";
function torch(T: number): TorchResult | null {
  if (!withTorch) return null;
  const env = { ...process.env };
  if (existsSync(`${OPENBLAS}/libblas.so.3`)) Object.assign(env, { LD_LIBRARY_PATH: OPENBLAS, OPENBLAS_CORETYPE: "SkylakeX" });
  const r = spawnSync(PYTHON, ["bench/train-step-torch.py", "--threads", String(T), "--steps", String(steps), "--seq-len", String(N), "--rank", String(rank), "--json"], { env, encoding: "utf8" });
  if (r.status !== 0) {
    torchNote = `PyTorch skipped: ${(r.stderr || r.error?.message || "").trim().split("\n").pop()}`;
    return null;
  }
  return JSON.parse(r.stdout.trim().split("\n").pop()!) as TorchResult;
}

say(`train step: stories260K O-PTP student, rank ${rank}, window ${L}, ${SLOTS} slots per step (${S} sequences x ${W} windows), ${N}-token sequences; ${rounds} rounds x ${steps} steps`);
const peak = await measureFmaPeak(1);
const corePeak = peak.relaxed ?? peak.simd;
say(
  `FMA peak of one core measured now: ${corePeak.toFixed(1)} GFLOP/s (${peak.relaxed !== null ? "relaxed madd" : "mul+add"}); load average before: ${loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")}`,
);
const fps = flopsPerSlot();
const mine = new Map<number, number[]>(),
  theirs = new Map<number, TorchResult[]>();
for (let r = 0; r < rounds; r++) {
  for (const T of threadCounts) {
    (mine.get(T) ?? mine.set(T, []).get(T)!).push(await ours(T));
    const t = torch(T);
    if (t) (theirs.get(T) ?? theirs.set(T, []).get(T)!).push(t);
  }
}
const rows = threadCounts.map((T) => {
  const sec = median(mine.get(T)!),
    sps = SLOTS / sec,
    gflops = (sps * fps) / 1e9;
  const t = theirs.get(T);
  const tsec = t ? median(t.map((x) => x.medianStepSeconds)) : null;
  const tsps = tsec ? SLOTS / tsec : null;
  return {
    threads: T,
    slotsPerSecond: sps,
    gflopsPerSecond: gflops,
    percentOfPeak: (100 * gflops) / (T * corePeak),
    torchSlotsPerSecond: tsps,
    torchGflopsPerSecond: tsps ? (tsps * fps) / 1e9 : null,
    oursOverTorch: tsps ? sps / tsps : null,
    torchBlas: t?.[0].blas ?? null,
    torchCoretype: t?.[0].openblasCoretype ?? null,
  };
});
const f = (x: number | null, d = 0) => (x === null ? "-" : x.toFixed(d));
say(`\n| threads | ours slots/s | GFLOP/s | % of T x peak | PyTorch slots/s | PyTorch GFLOP/s | ours / PyTorch |\n|---|---|---|---|---|---|---|`);
for (const r of rows) say(`| ${r.threads} | ${f(r.slotsPerSecond)} | ${f(r.gflopsPerSecond, 2)} | ${f(r.percentOfPeak, 1)} | ${f(r.torchSlotsPerSecond)} | ${f(r.torchGflopsPerSecond, 2)} | ${f(r.oursOverTorch, 2)} |`);
say(
  `\n${(fps / 1e6).toFixed(3)} MFLOP per slot (student forward + backward); load average after: ${loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")}`,
);
if (rows[0]?.torchBlas) say(`PyTorch ${theirs.get(threadCounts[0])![0].torch}, BLAS: ${rows[0].torchBlas}${rows[0].torchCoretype ? `, OPENBLAS_CORETYPE=${rows[0].torchCoretype}` : ""}`);
if (torchNote) say(torchNote);
if (asJson) console.log(JSON.stringify({ flopsPerSlot: fps, corePeak, rows }));
teacher.dispose();
