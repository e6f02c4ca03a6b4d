/**
 * AR decode, ours against native C in the same run: `ptp generate` (the CLI a
 * user runs, wasm backend) and karpathy/llama2.c's run.c compiled here with
 * `gcc -Ofast -march=native -fopenmp`, on random-weight checkpoints of the
 * TinyStories shapes (`ptp random-model`), greedy, the same number of steps,
 * 1 and 2 threads (ours: --threads T; run.c: OMP_NUM_THREADS=T).
 *
 * Runs alternate (each repetition: every thread count, ours then run.c) so
 * all see the same load;
 * each figure is the median of --reps runs of the "achieved tok/s" each
 * program prints (run.c starts its clock after the first token; ours after
 * a warm-up call). The load average is printed before and after.
 *
 * run.c is not part of this repository: pass its path (for example a file
 * taken from a clone of github.com/karpathy/llama2.c). Without --runc only
 * our figures are printed. --runq PATH adds llama2.c's int8 runq.c (same
 * flags), on the same random model exported to its Q8_0 format (version 2,
 * group size 32 like our --weights int8; embeddings quantised too, as runq
 * does).
 *
 *   node --experimental-wasm-relaxed-simd --import tsx bench/native-vs-ours.ts \
 *     --runc /path/to/run.c [--runq /path/to/runq.c] [--shapes 15M,110M] [--threads 1,2] [--weights f32,bf16,int8] [--steps 256] [--reps 3] [--json]
 *
 * --weights: our runs per weight type (ptp generate --weights); run.c is f32.
 *
 * The memory ceiling, same run: bench/stream.c (compiled with the same gcc
 * flags) and bench/stream-wasm.ts (our relaxed build's `streamRead`: 16-byte
 * loads, four streams per thread, as the one-row matmul reads its panels)
 * each read 512 MiB with T threads in each repetition, and a second table
 * sets each program's weight traffic (the bytes of the matrices a token
 * reads, times tokens/s; the KV cache and small vectors left out, so a
 * lower bound) against those streaming rates. A decoder at the ceiling on
 * one thread can gain at most stream(2T) / its own 1T traffic from a second.
 *
 * Needs ../shared/models/tokenizer.bin (the 32000-token llama2.c tokenizer)
 * or --tokenizer FILE; the 260K shape (vocab 512) takes
 * ../shared/models/tok512.bin or --tokenizer-512 FILE.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { readCheckpoint } from "../src/io/checkpoint.js";
import { kvDim, SHAPES } from "../src/model/config.js";
import { LINEAR_NAMES, type Checkpoint } from "../src/model/weights.js";
import { benchFlags, COUNT, inputError, listFlag, SHAPE_NAMES, THREADS, WEIGHTS } from "./common.js";

const root = resolve(import.meta.dirname, "..");
const f = benchFlags({
  runc: { kind: "string", value: "FILE" },
  runq: { kind: "string", value: "FILE" },
  shapes: { kind: "string", value: "LIST", default: "15M,110M" },
  threads: { kind: "string", value: "LIST", default: "1,2" },
  weights: { kind: "string", value: "LIST", default: "f32" },
  steps: { ...COUNT, default: 256 },
  reps: { ...COUNT, default: 3 },
  tokenizer: { kind: "string", value: "FILE", default: resolve(root, "../shared/models/tokenizer.bin") },
  "tokenizer-512": { kind: "string", value: "FILE", default: resolve(root, "../shared/models/tok512.bin") },
  json: { kind: "bool" },
});
const { runc, runq, steps, reps, tokenizer } = f;
const shapes = listFlag("shapes", f.shapes, { kind: "string", choices: SHAPE_NAMES });
const threads = listFlag("threads", f.threads, THREADS);
const weightTypes = listFlag("weights", f.weights, WEIGHTS);
const asJson = f.json;
const progress = (m: string) => process.stderr.write(`[native-vs-ours] ${m}\n`);
/** The tokenizer of each shape's vocabulary, by the flag that names it. */
const TOKENIZERS: Record<number, { flag: string; path: string }> = {
  32000: { flag: "--tokenizer", path: tokenizer },
  512: { flag: "--tokenizer-512", path: f["tokenizer-512"] },
};
const tokenizerOf = (shape: keyof typeof SHAPES): string => TOKENIZERS[SHAPES[shape].vocabSize].path;
for (const shape of shapes) {
  const vocab = SHAPES[shape].vocabSize,
    t = TOKENIZERS[vocab];
  if (!existsSync(t.path)) inputError(`${t.flag} ${t.path}: not found (a llama2.c tokenizer of ${vocab} tokens, for the ${shape} shape)`);
}
for (const [flag, path, file] of [
  ["--runc", runc, "run.c"],
  ["--runq", runq, "runq.c"],
] as const) {
  if (path !== undefined && !statSync(path, { throwIfNoEntry: false })?.isFile()) inputError(`${flag} ${path}: not a file (expected llama2.c's ${file}, from github.com/karpathy/llama2.c)`);
}

const tmp = mkdtempSync(join(tmpdir(), "ptp-native-"));
// The compiled programs and the random checkpoints (hundreds of MB at 110M) go when the bench ends, however it ends.
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => process.exit(130));
const compile = (src: string | undefined, name: string, extra: string[] = []): string | undefined => {
  if (!src) return undefined;
  const bin = join(tmp, name);
  const flags = ["-Ofast", "-march=native", "-fopenmp", ...extra];
  execFileSync("gcc", [...flags, src, "-lm", "-o", bin], { stdio: "inherit" });
  progress(`compiled ${src} with gcc ${flags.join(" ")}`);
  return bin;
};
const runBin = compile(runc, "run"),
  runqBin = compile(runq, "runq"),
  streamBin = compile(resolve(root, "bench/stream.c"), "stream")!;

/** llama2.c's Q8_0 checkpoint (export.py's version2_export) of c, group size gs. */
function writeQ80(c: Checkpoint, path: string, gs: number): void {
  const cfg = c.config,
    w = c.weights;
  const fd = openSync(path, "w");
  const put = (b: ArrayBufferView) => writeSync(fd, new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
  const header = new DataView(new ArrayBuffer(256));
  header.setUint32(0, 0x616b3432, true);
  header.setInt32(4, 2, true);
  [cfg.dim, cfg.hiddenDim, cfg.nLayers, cfg.nHeads, cfg.nKvHeads, cfg.vocabSize, cfg.seqLen].forEach((v, i) => header.setInt32(8 + 4 * i, v, true));
  header.setUint8(36, cfg.sharedClassifier ? 1 : 0);
  header.setInt32(37, gs, true);
  put(header);
  for (const l of w.layers) put(l.rmsAtt);
  for (const l of w.layers) put(l.rmsFfn);
  put(w.rmsFinal);
  const quant = (a: Float32Array) => {
    const q = new Int8Array(a.length),
      s = new Float32Array(a.length / gs);
    for (let g = 0; g < s.length; g++) {
      let amax = 0;
      for (let i = g * gs; i < (g + 1) * gs; i++) amax = Math.max(amax, Math.abs(a[i]));
      const scale = (s[g] = Math.fround(amax / 127));
      for (let i = g * gs; i < (g + 1) * gs; i++) {
        const v = Math.fround(a[i] / scale),
          r = Math.round(v);
        q[i] = scale === 0 ? 0 : r - v === 0.5 && r % 2 !== 0 ? r - 1 : r; // round half to even, as torch.round
      }
    }
    put(q);
    put(s);
  };
  quant(w.tokenEmbedding);
  for (const name of LINEAR_NAMES) for (const l of w.layers) quant(l[name]);
  if (!cfg.sharedClassifier) quant(w.wcls);
  closeSync(fd);
}

const tokPerSec = (stderr: string, who: string): number => {
  const m = /achieved tok\/s: ([0-9.]+)/.exec(stderr);
  if (!m) throw new Error(`${who}: no "achieved tok/s" in its output:\n${stderr}`);
  return Number(m[1]);
};

function ours(model: string, tok: string, t: number, weights: string): number {
  const r = spawnSync(process.execPath, [resolve(root, "bin/ptp.js"), "generate", "--model", model, "--tokenizer", tok, "--steps", String(steps), "--temperature", "0", "--no-stop", "--threads", String(t), "--weights", weights], { encoding: "utf8", maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`ptp generate failed: ${r.stderr}`);
  return tokPerSec(r.stderr, "ptp generate");
}

function native(bin: string, model: string, tok: string, t: number): number {
  const r = spawnSync(bin, [model, "-z", tok, "-t", "0", "-n", String(steps)], {
    encoding: "utf8",
    maxBuffer: 1 << 26,
    env: { ...process.env, OMP_NUM_THREADS: String(t) },
  });
  if (r.status !== 0) throw new Error(`${bin} failed: ${r.stderr}`);
  return tokPerSec(r.stderr, bin);
}

/** The host's streaming read rate on t threads now (bench/stream.c built as `bin`), GB/s. */
function stream(bin: string, t: number): number {
  const r = spawnSync(bin, [], { encoding: "utf8", env: { ...process.env, OMP_NUM_THREADS: String(t) } });
  const m = /stream GB\/s: ([0-9.]+)/.exec(r.stdout);
  if (r.status !== 0 || !m) throw new Error(`bench/stream.c failed: ${r.stderr}${r.stdout}`);
  return Number(m[1]);
}

/** The same read by wasm on t threads now (bench/stream-wasm.ts), GB/s: what our kernels' loads can stream. */
function wasmStream(t: number): number {
  const r = spawnSync(process.execPath, ["--experimental-wasm-relaxed-simd", "--import", "tsx", resolve(root, "bench/stream-wasm.ts"), "--threads", String(t)], { encoding: "utf8", cwd: root });
  const m = /wasm stream GB\/s: ([0-9.]+)/.exec(r.stdout);
  if (r.status !== 0 || !m) throw new Error(`bench/stream-wasm.ts failed: ${r.stderr}${r.stdout}`);
  return Number(m[1]);
}

/** Bytes per weight as the kernels read them: int8 panels hold 32 weights and one f32 scale per row group (1.125). */
const BYTES_PER_WEIGHT: Record<string, number> = { f32: 4, bf16: 2, int8: 1 + 4 / 32 };

/** Bytes of weight matrices one token reads: every layer's seven, then the classifier. */
function weightBytesPerToken(c: Checkpoint["config"], weights: string): number {
  const kv = kvDim(c);
  const perLayer = 2 * c.dim * c.dim + 2 * kv * c.dim + 3 * c.hiddenDim * c.dim;
  return (c.nLayers * perLayer + c.vocabSize * c.dim) * BYTES_PER_WEIGHT[weights];
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");

interface Row {
  shape: string;
  threads: number;
  weights: string;
  ours: number;
  native: number | null;
  ratio: number | null;
  oursAll: number[];
  nativeAll: number[];
  runq: number | null;
  runqAll: number[];
  /** Bytes of weight matrices per token for `weights` (and for run.c's f32). */
  bytesPerToken: number;
  f32BytesPerToken: number;
  stream: number;
  streamAll: number[];
  /** The same read by wasm (bench/stream-wasm.ts). */
  wasmStream: number;
  wasmStreamAll: number[];
}
const rows: Row[] = [];
const loadBefore = load();
progress(`load average before: ${loadBefore}`);
for (const shape of shapes) {
  const model = join(tmp, `${shape}.bin`);
  execFileSync(process.execPath, [resolve(root, "bin/ptp.js"), "random-model", "--shape", shape, "--seed", "1", "--out", model], { stdio: "ignore" });
  const modelQ = join(tmp, `${shape}-q80.bin`);
  const tok = tokenizerOf(shape);
  const config = readCheckpoint(model).config;
  if (runqBin) writeQ80(readCheckpoint(model), modelQ, 32);
  // Every repetition runs every thread count and weight type (and run.c) in turn, so all see the same load.
  const o = new Map<string, number[]>(),
    n = new Map<number, number[]>(),
    q = new Map<number, number[]>(),
    st = new Map<number, number[]>(),
    sw = new Map<number, number[]>();
  const key = (t: number, w: string) => `${t}/${w}`;
  for (let i = 0; i < reps; i++) {
    for (const t of threads) {
      for (const w of weightTypes) {
        const v = ours(model, tok, t, w);
        o.set(key(t, w), [...(o.get(key(t, w)) ?? []), v]);
      }
      if (runBin) n.set(t, [...(n.get(t) ?? []), native(runBin, model, tok, t)]);
      if (runqBin) q.set(t, [...(q.get(t) ?? []), native(runqBin, modelQ, tok, t)]);
      st.set(t, [...(st.get(t) ?? []), stream(streamBin, t)]);
      sw.set(t, [...(sw.get(t) ?? []), wasmStream(t)]);
      progress(
        `${shape} ${t}T rep ${i + 1}: ${weightTypes.map((w) => `ours ${w} ${o.get(key(t, w))![i].toFixed(1)}`).join(", ")}${runBin ? `, run.c ${n.get(t)![i].toFixed(1)}` : ""}${runqBin ? `, runq.c ${q.get(t)![i].toFixed(1)}` : ""} tok/s; stream ${st.get(t)![i].toFixed(1)} GB/s (wasm ${sw.get(t)![i].toFixed(1)})`,
      );
    }
  }
  for (const t of threads) {
    const nm = runBin ? median(n.get(t)!) : null,
      qm = runqBin ? median(q.get(t)!) : null;
    for (const w of weightTypes) {
      const all = o.get(key(t, w))!;
      const om = median(all);
      const sAll = st.get(t)!,
        swAll = sw.get(t)!;
      rows.push({
        shape,
        threads: t,
        weights: w,
        ours: om,
        native: nm,
        ratio: nm ? om / nm : null,
        oursAll: all,
        nativeAll: n.get(t) ?? [],
        runq: qm,
        runqAll: q.get(t) ?? [],
        bytesPerToken: weightBytesPerToken(config, w),
        f32BytesPerToken: weightBytesPerToken(config, "f32"),
        stream: median(sAll),
        streamAll: sAll,
        wasmStream: median(swAll),
        wasmStreamAll: swAll,
      });
    }
  }
}
const loadAfter = load();

console.log(`AR decode, greedy, ${steps} steps, random ${shapes.join("/")} checkpoints; medians of ${reps} alternating runs`);
console.log(`load average (1/5/15 min) before: ${loadBefore}; after: ${loadAfter}\n`);
console.log("| shape | threads | our weights | ours tok/s | run.c tok/s (f32) | ours / run.c | runq.c tok/s (int8) | ours / runq.c |");
console.log("|---|---|---|---|---|---|---|---|");
const x = (a: number, b: number | null) => (b ? (a / b).toFixed(2) + "x" : "-");
for (const r of rows) {
  console.log(`| ${r.shape} | ${r.threads} | ${r.weights} | ${r.ours.toFixed(1)} | ${r.native?.toFixed(1) ?? "-"} | ${x(r.ours, r.native)} | ${r.runq?.toFixed(1) ?? "-"} | ${x(r.ours, r.runq)} |`);
}
console.log(
  "\nThe memory ceiling: weight traffic (MB of weight matrices per token x tok/s) against the host's streaming read rate on the same threads, " + "medians of the same repetitions: bench/stream.c (gcc, its widest loads) and bench/stream-wasm.ts (wasm, 16-byte loads, the one-row matmul's four streams per thread)\n",
);
console.log("| shape | threads | our weights | MB per token | ours GB/s | run.c GB/s (f32) | C stream GB/s | wasm stream GB/s | ours / wasm stream | run.c / C stream |");
console.log("|---|---|---|---|---|---|---|---|---|---|");
const gb = (tokS: number, bytes: number) => (tokS * bytes) / 1e9;
for (const r of rows) {
  const mine = gb(r.ours, r.bytesPerToken),
    theirs = r.native ? gb(r.native, r.f32BytesPerToken) : null;
  console.log(`| ${r.shape} | ${r.threads} | ${r.weights} | ${(r.bytesPerToken / 1e6).toFixed(1)} | ${mine.toFixed(1)} | ${theirs?.toFixed(1) ?? "-"} | ${r.stream.toFixed(1)} | ${r.wasmStream.toFixed(1)} | ${(mine / r.wasmStream).toFixed(2)} | ${theirs ? (theirs / r.stream).toFixed(2) : "-"} |`);
}
console.log("");
for (const shape of shapes) {
  for (const w of weightTypes) {
    const one = rows.find((r) => r.shape === shape && r.threads === 1 && r.weights === w);
    const two = rows.find((r) => r.shape === shape && r.threads === 2 && r.weights === w);
    if (!one || !two) continue;
    // The most a second thread can give a decoder whose one thread already reads gb(one) GB/s: the two-thread streaming rate over that.
    const ceiling = two.wasmStream / gb(one.ours, one.bytesPerToken);
    console.log(
      `${shape}: ours (${w}) 2T / 1T = ${(two.ours / one.ours).toFixed(2)}x (wasm streams at most ${ceiling.toFixed(2)}x our 1T rate on two threads; it streams ${(two.wasmStream / one.wasmStream).toFixed(2)}x its own 1T rate, C ${(two.stream / one.stream).toFixed(2)}x)` +
        (w === weightTypes[0] && two.native && one.native ? `; run.c 2T / 1T = ${(two.native / one.native).toFixed(2)}x (at most ${(two.stream / gb(one.native, one.f32BytesPerToken)).toFixed(2)}x)` : ""),
    );
  }
}
if (asJson) console.log(JSON.stringify({ steps, reps, loadBefore, loadAfter, rows }));
