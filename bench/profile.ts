/**
 * Where the time of one autoregressive decode step goes, per backend op; or,
 * with --rows K, the time of one K-row call (what a PTP decoder makes).
 *
 *   node --experimental-wasm-relaxed-simd --import tsx bench/profile.ts [--shapes 15M,110M] [--threads 1,2] [--tokens N] [--rows K]
 *     [--weights f32|bf16|int8]
 *
 * A random checkpoint of each shape decodes greedily (argmax) on the wasm
 * backend: one BOS prompt row, a few warm-up steps, then N timed one-row
 * forward calls. The backend is wrapped so every op call is timed with
 * performance.now(); matmuls are split by (K, N) into the per-layer linears
 * and the classifier. The profiled model runs each layer op by op (the
 * backend's fused decoderLayer hidden), so the table shows every op; the
 * "unprofiled" tokens/s is the model as users run it, fused layers and all.
 * "JS overhead" is the forward call's wall time minus
 * the sum of its op times (model code, argument checks, the timer itself).
 * Defaults: N = 64 for 15M and 260K, 32 for 42M, 16 for 110M.
 *
 * --rows K (K > 1): each timed step is instead one causal call of K rows at
 * positions 64 .. 64 + K - 1 after 64 cached tokens (the cost-curve's call),
 * repeated N times with the cache cropped back to 64 in between, the logits
 * written into one array as the decoders do (forwardInto); "argmax" is
 * then the host argmax of all K rows.
 */
import type { Backend } from "../src/backends/backend.js";
import { createBackend } from "../src/backends/registry.js";
import { randomCheckpoint } from "../src/model/init.js";
import { kvDim, shapeConfig, type ModelConfig } from "../src/model/config.js";
import { Transformer } from "../src/model/transformer.js";
import type { Checkpoint } from "../src/model/weights.js";
import { argmax } from "../src/sampling/pick.js";
import { benchFlags, COUNT, listFlag, markdownTable, SHAPE_NAMES, THREADS, WEIGHTS } from "./common.js";

const WARMUP = 4;
const BOS = 1;
const DEFAULT_TOKENS: Record<string, number> = { "260K": 64, "15M": 64, "42M": 32, "110M": 16 };

const f = benchFlags({
  shapes: { kind: "string", value: "LIST", default: "15M,110M" },
  threads: { kind: "string", value: "LIST", default: "1" },
  tokens: { ...COUNT },
  rows: { ...COUNT, value: "K", default: 1 },
  weights: { ...WEIGHTS, default: "f32" },
});
const shapes = listFlag("shapes", f.shapes, { kind: "string", choices: SHAPE_NAMES });
const threadCounts = listFlag("threads", f.threads, THREADS);
const tokensFlag = f.tokens;
const rowsPerCall = f.rows;
const CONTEXT = 64; // cached tokens before a K-row call
const weights = f.weights;

// ---- the timing wrapper ----------------------------------------------------

interface OpStat {
  calls: number;
  ms: number;
  flops: number;
}

class Stats {
  readonly ops = new Map<string, OpStat>();
  /** Off outside the timed steps (warm-up, model set-up and teardown). */
  recording = false;
  add(key: string, ms: number, flops = 0): void {
    if (!this.recording) return;
    let s = this.ops.get(key);
    if (!s) this.ops.set(key, (s = { calls: 0, ms: 0, flops: 0 }));
    s.calls++;
    s.ms += ms;
    s.flops += flops;
  }
}

/**
 * `inner` behind a Proxy that times every method call. Methods run with
 * `this` = the real backend (its buffers check their owner), and the timed
 * wrappers are made once so the proxy adds no allocation per call.
 * `matmulKey` names a matmul by its (K, N).
 */
function profiled(inner: Backend, stats: Stats, matmulKey: (K: number, N: number) => string): Backend {
  const wrapped = new Map<PropertyKey, unknown>();
  return new Proxy(inner, {
    get(target, prop) {
      // Without the fused layer op, so that the model calls (and this times) each op of a layer.
      if (prop === "decoderLayer") return undefined;
      const value = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      let w = wrapped.get(prop);
      if (!w) {
        const fn = value as (...args: unknown[]) => unknown;
        if (prop === "matmul") {
          w = (y: unknown, x: unknown, wt: unknown, M: number, K: number, N: number) => {
            const t = performance.now();
            fn.call(target, y, x, wt, M, K, N);
            stats.add(matmulKey(K, N), performance.now() - t, 2 * M * K * N);
          };
        } else {
          const key = String(prop);
          w = (...args: unknown[]) => {
            const t = performance.now();
            const r = fn.apply(target, args);
            stats.add(key, performance.now() - t);
            return r;
          };
        }
        wrapped.set(prop, w);
      }
      return w;
    },
  });
}

/** Matmul labels by (K, N): the linears that share a shape share a row. */
function matmulLabels(c: ModelConfig): Map<string, string> {
  const kv = kvDim(c);
  const linears: [string, number, number][] = [
    ["wq", c.dim, c.dim],
    ["wk", c.dim, kv],
    ["wv", c.dim, kv],
    ["wo", c.dim, c.dim],
    ["w1", c.dim, c.hiddenDim],
    ["w2", c.hiddenDim, c.dim],
    ["w3", c.dim, c.hiddenDim],
  ];
  const names = new Map<string, string[]>();
  for (const [name, K, N] of linears) names.set(`${K}x${N}`, [...(names.get(`${K}x${N}`) ?? []), name]);
  const labels = new Map<string, string>();
  for (const [shape, ns] of names) labels.set(shape, `matmul ${ns.join("/")} (${shape})`);
  // Last, so a layer shape that happened to equal it could not hide the classifier.
  labels.set(`${c.dim}x${c.vocabSize}`, `matmul: classifier (${c.dim}x${c.vocabSize})`);
  return labels;
}

// ---- decoding ----------------------------------------------------------------

interface Run {
  stepMs: number; // per token (greedy forward) or per call (forward + host argmax of every row)
  forwardMs: number;
  argmaxMs: number;
}

/**
 * Greedy decode of `steps` tokens after a BOS prompt, as `ptp generate`
 * decodes at temperature 0 (Transformer.greedy: the backend's argmax op,
 * no logits download); times the steps after the warm-up (and records them
 * in `stats`).
 */
function decode(model: Transformer, steps: number, stats?: Stats): Run {
  const cache = model.newCache(WARMUP + steps + 1);
  let forwardMs = 0;
  for (const measured of [false, true]) {
    cache.crop(0);
    let token = model.greedy({ tokens: [BOS], positions: [0] }, cache)[0];
    const n = measured ? steps : WARMUP;
    if (stats) stats.recording = measured;
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      token = model.greedy({ tokens: [token], positions: [i + 1] }, cache)[0];
      if (measured) forwardMs += performance.now() - t0;
    }
  }
  if (stats) stats.recording = false;
  cache.free();
  return { stepMs: forwardMs / steps, forwardMs: forwardMs / steps, argmaxMs: 0 };
}

/** `steps` calls of `rows` rows after CONTEXT cached tokens (cropped back between calls), after the warm-up; argmax of every row. */
function kRowCalls(model: Transformer, rows: number, steps: number, stats?: Stats): Run {
  const vocab = model.config.vocabSize;
  const cache = model.newCache(CONTEXT + rows);
  const ids = (n: number, from: number) => Array.from({ length: n }, (_, i) => (i * 7919 + from) % vocab);
  model.forward({ tokens: ids(CONTEXT, 3), positions: ids(CONTEXT, 0).map((_, i) => i) }, cache);
  const call = { tokens: ids(rows, 11), positions: Array.from({ length: rows }, (_, i) => CONTEXT + i) };
  // Into one array, as the decoders call (a fresh logits array each call costs the host page faults).
  const out = new Float32Array(rows * vocab);
  let forwardMs = 0,
    argmaxMs = 0;
  for (const measured of [false, true]) {
    const n = measured ? steps : WARMUP;
    if (stats) stats.recording = measured;
    for (let i = 0; i < n; i++) {
      cache.crop(CONTEXT);
      const t0 = performance.now();
      const logits = model.forwardInto(out, call, cache);
      const t1 = performance.now();
      for (let r = 0; r < rows; r++) argmax(logits.subarray(r * vocab, (r + 1) * vocab));
      if (measured) {
        forwardMs += t1 - t0;
        argmaxMs += performance.now() - t1;
      }
    }
  }
  if (stats) stats.recording = false;
  cache.free();
  return { stepMs: (forwardMs + argmaxMs) / steps, forwardMs: forwardMs / steps, argmaxMs: argmaxMs / steps };
}

const measure = (model: Transformer, steps: number, stats?: Stats): Run => (rowsPerCall > 1 ? kRowCalls(model, rowsPerCall, steps, stats) : decode(model, steps, stats));

// ---- report ------------------------------------------------------------------

const OP_ORDER = ["attention", "rmsnorm", "rope", "swiglu", "add", "embedding", "softmax", "copy", "upload", "download", "downloadInto", "argmax"];

function table(c: ModelConfig, stats: Stats, run: Run, steps: number): string {
  const rows: string[][] = [];
  const pct = (ms: number) => ((100 * ms) / run.stepMs).toFixed(1);
  const row = (name: string, s: OpStat | undefined, gflops = false) => {
    if (!s) return;
    const ms = s.ms / steps;
    const rate = gflops && s.ms > 0 ? (s.flops / (s.ms * 1e6)).toFixed(1) : "";
    rows.push([name, (s.calls / steps).toFixed(0), ms.toFixed(3), pct(ms), rate]);
  };
  const labels = [...matmulLabels(c).values()];
  const classifier = labels[labels.length - 1];
  const layerLabels = labels.filter((l) => l !== classifier);
  const layers: OpStat = { calls: 0, ms: 0, flops: 0 };
  for (const l of layerLabels) {
    const s = stats.ops.get(l);
    if (!s) continue;
    layers.calls += s.calls;
    layers.ms += s.ms;
    layers.flops += s.flops;
  }
  row("matmul: layers", layers, true);
  for (const l of layerLabels) row(`&nbsp;&nbsp;${l.replace("matmul ", "")}`, stats.ops.get(l), true);
  row(classifier, stats.ops.get(classifier), true);
  for (const op of OP_ORDER) row(op, stats.ops.get(op));
  const known = new Set([...labels, ...OP_ORDER]);
  for (const [op, s] of stats.ops) if (!known.has(op)) row(op, s);
  let opMs = 0;
  for (const s of stats.ops.values()) opMs += s.ms / steps;
  const overhead = run.forwardMs - opMs;
  rows.push(["JS overhead (forward wall - ops)", "", overhead.toFixed(3), pct(overhead), ""]);
  if (run.argmaxMs > 0) rows.push(["argmax of every row (host, after forward)", "1", run.argmaxMs.toFixed(3), pct(run.argmaxMs), ""]);
  rows.push(["**step total**", "", `**${run.stepMs.toFixed(3)}**`, "100.0", ""]);
  const unit = rowsPerCall > 1 ? "call" : "token";
  const head = ["op", `calls/${unit}`, `ms/${unit}`, "% of step", "GFLOP/s"];
  return markdownTable(head, rows);
}

// ---- main --------------------------------------------------------------------

for (const shape of shapes) {
  const config = shapeConfig(shape);
  const steps = Math.min(tokensFlag ?? DEFAULT_TOKENS[shape] ?? 32, config.seqLen - 1 - WARMUP);
  const ckpt: Checkpoint = randomCheckpoint(config, 1);
  const labels = matmulLabels(config);
  for (const threads of threadCounts) {
    const raw = await createBackend("wasm", { threads, weights });
    await (raw as Backend & { startThreads?: () => Promise<void> }).startThreads?.();

    // Unwrapped first: tokens/s without the profiler's own cost, to compare.
    let model = new Transformer(raw, ckpt);
    const plain = measure(model, steps);
    model.dispose();

    const stats = new Stats();
    model = new Transformer(
      profiled(raw, stats, (K, N) => labels.get(`${K}x${N}`) ?? `matmul (${K}x${N})`),
      ckpt,
    );
    const run = measure(model, steps, stats);
    model.dispose();
    raw.dispose?.();

    const what = rowsPerCall > 1 ? `${steps} calls of ${rowsPerCall} rows after ${CONTEXT} cached tokens` : `${steps} tokens`;
    console.log(`\n### ${shape} shape, ${raw.description}, ${threads} thread(s), ${what} after ${WARMUP} warm-up steps\n`);
    console.log(table(config, stats, run, steps));
    if (rowsPerCall > 1) console.log(`\nms per ${rowsPerCall}-row call: ${run.stepMs.toFixed(3)} profiled, ${plain.stepMs.toFixed(3)} unprofiled (forward + argmax of every row)`);
    else console.log(`\ntokens/s: ${(1000 / run.stepMs).toFixed(1)} profiled, ${(1000 / plain.stepMs).toFixed(1)} unprofiled (greedy forward)`);
  }
}
