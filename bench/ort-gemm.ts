/**
 * onnxruntime-web's WASM backend on single-MatMul models, for bench/run.ts.
 * Run as its own process per thread count (ort.env.wasm.numThreads is read
 * once per process): prints one JSON line [{shape, M, gflops}].
 *
 *   node --import tsx bench/ort-gemm.ts THREADS [--quick]
 *
 * The ONNX models are built here in memory: a minimal protobuf encoder for
 * the few ModelProto fields a MatMul graph needs.
 */
import * as ort from "onnxruntime-web";
import { MAX_THREADS } from "../src/backends/wasm/index.js";
import { benchFlags, usageError } from "./common.js";

// ---- minimal protobuf ------------------------------------------------------

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n % 128) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}
const concat = (parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};
/** Field with wire type 0 (varint). */
const vfield = (field: number, n: number) => new Uint8Array([...varint(field << 3), ...varint(n)]);
/** Field with wire type 2 (length-delimited). */
const lfield = (field: number, body: Uint8Array) => concat([new Uint8Array([...varint((field << 3) | 2), ...varint(body.length)]), body]);
const sfield = (field: number, s: string) => lfield(field, new TextEncoder().encode(s));

/** TypeProto for a float tensor of the given shape. */
function tensorType(dims: number[]): Uint8Array {
  const shape = concat(dims.map((d) => lfield(1, vfield(1, d)))); // TensorShapeProto.dim { dim_value }
  return lfield(1, concat([vfield(1, 1 /* FLOAT */), lfield(2, shape)])); // TypeProto.tensor_type
}
const valueInfo = (name: string, dims: number[]) => concat([sfield(1, name), lfield(2, tensorType(dims))]);

/** ModelProto bytes of Y[M, N] = X[M, K] W[K, N] with W an initializer. */
export function matmulModel(M: number, K: number, N: number, w: Float32Array): Uint8Array {
  const node = concat([sfield(1, "X"), sfield(1, "W"), sfield(2, "Y"), sfield(4, "MatMul")]);
  const init = concat([vfield(1, K), vfield(1, N), vfield(2, 1), sfield(8, "W"), lfield(9, new Uint8Array(w.buffer, w.byteOffset, w.byteLength))]);
  const graph = concat([lfield(1, node), sfield(2, "g"), lfield(5, init), lfield(11, valueInfo("X", [M, K])), lfield(12, valueInfo("Y", [M, N]))]);
  const opset = concat([sfield(1, ""), vfield(2, 13)]);
  return concat([vfield(1, 8 /* ir_version */), lfield(8, opset), lfield(7, graph)]);
}

// ---- run -------------------------------------------------------------------

export const GEMM_SHAPES: [number, number][] = [
  [768, 768],
  [2048, 768],
  [32000, 288],
];
export const GEMM_ROWS = [1, 16, 64];

if (import.meta.url === `file://${process.argv[1]}`) {
  // THREADS first (default 1), then the flags.
  const argv = process.argv.slice(2);
  const given = argv[0] !== undefined && !argv[0].startsWith("--") ? argv[0] : undefined;
  const { quick } = benchFlags({ quick: { kind: "bool" } }, given === undefined ? argv : argv.slice(1));
  const threads = given === undefined ? 1 : /^[1-9][0-9]*$/.test(given) && Number(given) <= MAX_THREADS ? Number(given) : usageError(`THREADS must be a whole number in [1, ${MAX_THREADS}], got ${JSON.stringify(given)}`);
  ort.env.wasm.numThreads = threads;
  ort.env.logLevel = "error";
  const rows: { shape: string; M: number; gflops: number }[] = [];
  for (const [N, K] of GEMM_SHAPES) {
    const w = Float32Array.from({ length: N * K }, (_, i) => Math.sin(i) * 0.05);
    for (const M of GEMM_ROWS) {
      const session = await ort.InferenceSession.create(matmulModel(M, K, N, w), { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
      const x = new ort.Tensor(
        "float32",
        Float32Array.from({ length: M * K }, (_, i) => Math.cos(i)),
        [M, K],
      );
      const flops = 2 * M * N * K;
      const inner = Math.max(1, Math.round(1e8 / flops) * (quick ? 1 : 2));
      for (let i = 0; i < inner; i++) await session.run({ X: x });
      const times: number[] = [];
      for (let r = 0; r < (quick ? 3 : 9); r++) {
        const t = performance.now();
        for (let i = 0; i < inner; i++) await session.run({ X: x });
        times.push((performance.now() - t) / 1000);
      }
      times.sort((a, b) => a - b);
      rows.push({ shape: `${N}x${K}`, M, gflops: (flops * inner) / times[times.length >> 1] / 1e9 });
      await session.release();
    }
  }
  console.log(JSON.stringify(rows));
  process.exit(0);
}
