import { describe, expect, it } from "vitest";
import { BackendError, type Buffer, type LayerActivations, type LayerShape, type LayerWeightBuffers } from "../src/backends/backend.js";
import { runBackendConformance } from "../src/backends/conformance.js";
import { JsBackend } from "../src/backends/js/index.js";
import { RowsMatmulMutant } from "./helpers.js";
import { createBackend } from "../src/backends/registry.js";
import { samplingDistribution } from "../src/sampling/processors.js";
import { tokenProbability } from "../src/sampling/softmax.js";

/**
 * BACKEND-CONFORMANCE-EXPORT: the contract as a library function
 * (runBackendConformance) passes for the built-in backends, the js
 * reference included with every error check, and catches broken backends.
 */

const IDS = ["matmul-agrees", "elementwise-exact", "written-weights-fresh", "host-access", "exp-ops-agree", "attention-agrees", "matmul-batch-invariant", "rows-batch-invariant", "attention-batch-invariant", "argmax-exact", "decoder-layer-exact", "pick-exact", "token-probabilities", "set-weight-type", "errors"];

/** A matmul off by a relative 1e-3. */
class Drifting extends JsBackend {
  override matmul(y: Buffer, x: Buffer, w: Buffer, M: number, K: number, N: number): void {
    super.matmul(y, x, w, M, K, N);
    this.upload(
      y,
      this.download(y).map((v) => v * (1 + 1e-3)),
    );
  }
}

/** Sums in reverse order when a call has several rows: within tolerance, but not batch-invariant. */
class Reordering extends RowsMatmulMutant {
  constructor() {
    super((X, W, xo, wo, K) => {
      let s = 0;
      for (let k = K - 1; k >= 0; k--) s = Math.fround(s + Math.fround(X[xo + k] * W[wo + k]));
      return s;
    });
  }
}

/** Has an argmax op that lets the last of tied maxima win (the host scan keeps the first); its misuse errors are right. */
class LastTie extends JsBackend {
  argmax(x: Buffer, M: number, N: number): Int32Array {
    if (x.dtype !== "f32" || N === 0) throw new BackendError("js", "argmax: f32 rows of at least one element");
    const v = this.download(x, 0, M * N);
    return Int32Array.from({ length: M }, (_, m) => {
      let best = 0;
      for (let i = 1; i < N; i++) if (v[m * N + i] >= v[m * N + best]) best = i;
      return best;
    });
  }
}

/** Has a pick op that puts a u on a bin's right edge into that bin (u <= cdf, not u < cdf); its misuse errors are right. */
/** A tokenProbabilities at twice the temperature asked. */
class HotProbabilities extends JsBackend {
  tokenProbabilities(x: Buffer, first: number, M: number, N: number, temperature: number, tokens: ArrayLike<number>): Float32Array {
    const v = this.download(x, first * N, M * N);
    return Float32Array.from({ length: M }, (_, m) => tokenProbability(v.subarray(m * N, (m + 1) * N), tokens[m], 2 * temperature));
  }
}

class EdgeBlind extends JsBackend {
  pick(x: Buffer, first: number, M: number, N: number, temperature: number, u: ArrayLike<number>, exclude: ArrayLike<number> = []): Int32Array {
    if (u.length !== M || !(temperature > 0) || Array.from(u).some((v) => !(v >= 0 && v < 1)) || Array.from(exclude).some((t) => !(t >= 0 && t < N))) throw new BackendError("js", "pick: bad arguments");
    const v = this.download(x, first * N, M * N);
    for (let m = 0; m < M; m++) for (const t of Array.from(exclude)) v[m * N + t] = Number.NEGATIVE_INFINITY;
    return Int32Array.from({ length: M }, (_, m) => {
      try {
        const probs = samplingDistribution(v.subarray(m * N, (m + 1) * N), { temperature });
        let cdf = 0;
        for (let i = 0; i < N; i++) if (u[m] <= (cdf = Math.fround(cdf + probs[i]))) return i;
        return N - 1;
      } catch {
        return -1;
      }
    });
  }
}

/** Keeps the first contents a matmul weight had and computes with them (as panels that outlive a write would); checks its operands as the reference does. */
class StaleWeights extends JsBackend {
  private readonly kept = new Map<Buffer, Buffer>();
  override matmul(y: Buffer, x: Buffer, w: Buffer, M: number, K: number, N: number): void {
    super.matmul(y, x, w, M, K, N);
    let k = this.kept.get(w);
    if (!k) {
      k = this.alloc(w.length);
      this.copy(k, 0, w, 0, w.length);
      this.kept.set(w, k);
    }
    super.matmul(y, x, k, M, K, N);
  }
}

/** hostView returns a copy: writes through it are lost (loadModel would fill a copy and leave the model's weights zero). */
class CopyingView extends JsBackend {
  override hostView(buf: Buffer, access: "read" | "write" = "write"): Float32Array {
    return super.hostView(buf, access).slice();
  }
}

/** Has a fused decoderLayer that runs the layer's ops but normalises the feed-forward input with the attention norm's weights. */
class WrongNorm extends JsBackend {
  decoderLayer(a: LayerActivations, w: LayerWeightBuffers, keys: Buffer, values: Buffer, cached: number, M: number, mask: { dense?: Buffer; sparse?: Buffer }, c: LayerShape): void {
    const kv = c.nKvHeads * c.headSize;
    this.rmsnorm(a.xb, a.x, w.rmsAtt, M, c.dim, c.normEps);
    this.matmul(a.q, a.xb, w.wq, M, c.dim, c.dim);
    this.matmul(a.k, a.xb, w.wk, M, c.dim, kv);
    this.matmul(a.v, a.xb, w.wv, M, c.dim, kv);
    this.rope(a.q, a.positions, M, c.nHeads, c.headSize, c.ropeTheta);
    this.rope(a.k, a.positions, M, c.nKvHeads, c.headSize, c.ropeTheta);
    this.copy(keys, cached * kv, a.k, 0, M * kv);
    this.copy(values, cached * kv, a.v, 0, M * kv);
    if (mask.sparse) this.attentionSparse(a.att, a.q, keys, values, mask.sparse, M, cached + M, c.nHeads, c.nKvHeads, c.headSize);
    else this.attention(a.att, a.q, keys, values, mask.dense ?? null, M, cached + M, c.nHeads, c.nKvHeads, c.headSize);
    this.matmul(a.xb2, a.att, w.wo, M, c.dim, c.dim);
    this.add(a.x, a.xb2, M * c.dim);
    this.rmsnorm(a.xb, a.x, w.rmsAtt, M, c.dim, c.normEps); // wrong: rmsFfn
    this.matmul(a.hb, a.xb, w.w1, M, c.dim, c.hiddenDim);
    this.matmul(a.hb2, a.xb, w.w3, M, c.dim, c.hiddenDim);
    this.swiglu(a.hb, a.hb, a.hb2, M * c.hiddenDim);
    this.matmul(a.xb2, a.hb, w.w2, M, c.hiddenDim, c.dim);
    this.add(a.x, a.xb2, M * c.dim);
  }
}

/** Swallows the errors of add. */
class Lenient extends JsBackend {
  override add(y: Buffer, x: Buffer, n: number): void {
    try {
      super.add(y, x, n);
    } catch {
      /* wrong: misuse must throw */
    }
  }
}

describe("runBackendConformance", () => {
  it.each(["js", "wasm", "wasm-simd"])("BACKEND-CONFORMANCE-EXPORT: %s passes every check", async (name) => {
    const target = name === "wasm-simd" ? await createBackend("wasm", { wasmBuild: "simd" }) : name;
    const report = await runBackendConformance(target, { runs: 6, seed: 7 });
    expect(report.checks.map((c) => c.id)).toEqual(IDS);
    for (const c of report.checks) expect(c.failure, c.id).toBeUndefined();
    expect(report.passed).toBe(true);
    expect(report.checks.every((c) => c.cases >= 1)).toBe(true);
  });

  it("BACKEND-CONFORMANCE-CATCHES: a drifting matmul, a batch-dependent sum order, swallowed misuse, an argmax that breaks ties upward, a pick that misplaces bin edges, token probabilities at the wrong temperature, a fused layer with the wrong norm, a stale copy of a written weight and a host view that is a copy each fail their check", async () => {
    const failing = async (b: JsBackend) => (await runBackendConformance(b, { runs: 4 })).checks.filter((c) => !c.passed).map((c) => c.id);
    expect(await failing(new Drifting())).toEqual(["matmul-agrees"]);
    expect(await failing(new Reordering())).toContain("matmul-batch-invariant");
    const lenient = await runBackendConformance(new Lenient(), { runs: 2 });
    expect(lenient.passed).toBe(false);
    expect(lenient.checks.find((c) => c.id === "errors")!.failure).toMatch(/no error thrown/);
    expect(await failing(new LastTie())).toEqual(["argmax-exact"]);
    expect(await failing(new EdgeBlind())).toEqual(["pick-exact"]);
    expect(await failing(new HotProbabilities())).toEqual(["token-probabilities"]);
    expect(await failing(new WrongNorm())).toEqual(["decoder-layer-exact"]);
    // A stale copy also misses what is written through a view.
    expect(await failing(new StaleWeights())).toEqual(["written-weights-fresh", "host-access"]);
    expect(await failing(new CopyingView())).toEqual(["host-access"]);
  });
});
