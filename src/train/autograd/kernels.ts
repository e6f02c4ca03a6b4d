/**
 * The dense products that dominate training time, behind one small
 * interface so a faster implementation (WASM SIMD) can replace the plain
 * loops without the ops knowing. All matrices are row-major float32;
 * W is stored [N, K] as in the model (y = x W^T).
 */
export interface TrainKernels {
  readonly name: string;
  /** y[M, N] = x[M, K] W[N, K]^T (overwrites y). */
  matmul(y: Float32Array, x: Float32Array, w: Float32Array, M: number, K: number, N: number): void;
  /** dx[M, K] += dy[M, N] W[N, K]: the gradient of y = x W^T with respect to x. */
  matmulGradX(dx: Float32Array, dy: Float32Array, w: Float32Array, M: number, K: number, N: number): void;
  /** dW[N, K] += dy[M, N]^T x[M, K]: the gradient of y = x W^T with respect to W. */
  matmulGradW(dw: Float32Array, dy: Float32Array, x: Float32Array, M: number, K: number, N: number): void;
  /**
   * Masked GQA attention (see attention.ts): row m sees keys
   * ranges[4m]..ranges[4m+1]-1 then ranges[4m+2]..ranges[4m+3]-1; writes
   * out [M, H hs] and the probabilities, row m's at probs[offsets[m] + h n_m + i].
   */
  attentionForward(out: Float32Array, probs: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array, ranges: Int32Array, offsets: Int32Array, M: number, H: number, KVH: number, hs: number, scale: number): void;
  /**
   * dq, dk, dv += the gradients of attentionForward's output for dout.
   * Keys below kvFrom (default 0) are constants: their rows of dk and dv are
   * left as they are (dq still sums over them).
   */
  attentionBackward(dq: Float32Array, dk: Float32Array, dv: Float32Array, dout: Float32Array, probs: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array, ranges: Int32Array, offsets: Int32Array, M: number, H: number, KVH: number, hs: number, scale: number, kvFrom?: number): void;
  /** SwiGLU's forward pass over n entries: sig = sigmoid(gate), y = gate sig up (sig kept for the backward pass). */
  swiglu(y: Float32Array, sig: Float32Array, gate: Float32Array, up: Float32Array, n: number): void;
  /** Its backward pass: dgate += dy up sig (1 + gate (1 - sig)), dup += dy gate sig (null skips one). */
  swigluBackward(dgate: Float32Array | null, dup: Float32Array | null, dy: Float32Array, gate: Float32Array, up: Float32Array, sig: Float32Array, n: number): void;
  /**
   * A linear layer with its LoRA update: t = x A^T [M, r], y = x W^T + s (t B^T) [M, N],
   * with the roundings of the separate ops (matmul, then fround(s u), then the f32 sum).
   */
  loraForward(y: Float32Array, t: Float32Array, x: Float32Array, w: Float32Array, a: Float32Array, b: Float32Array, M: number, K: number, N: number, r: number, s: number): void;
  /**
   * Its gradients for dy: with du = fround(s dy) and dt = du B, in this order:
   * dB += du^T t, dx += dt A, dA += dt^T x, dx += dy W, dW += dy^T x (null skips one).
   */
  loraBackward(dx: Float32Array | null, da: Float32Array | null, db: Float32Array | null, dw: Float32Array | null, dy: Float32Array, x: Float32Array, w: Float32Array, a: Float32Array, b: Float32Array, t: Float32Array, M: number, K: number, N: number, r: number, s: number): void;
}

/**
 * out[r, :] += sum_j coef[r cs + j js] src[j, :] for r < R, j < J (rows of C):
 * the shape both gradients of y = x W^T share (assembly/train.ts does the same).
 * Each output element sums over j in increasing order; zero coefficients are skipped.
 */
function accumulate(out: Float32Array, coef: Float32Array, cs: number, js: number, src: Float32Array, R: number, C: number, J: number): void {
  for (let r = 0; r < R; r++) {
    const o = r * C;
    for (let j = 0; j < J; j++) {
      const a = coef[r * cs + j * js];
      if (a === 0) continue;
      const so = j * C;
      for (let c = 0; c < C; c++) out[o + c] += a * src[so + c];
    }
  }
}

/**
 * Calls `body` for each query row m and head h, with the row's visible keys,
 * the offset of the (m, h) query in a [M, H * hs] array, the offset of its kv
 * head within a key row, and its slice of `probs` (one per visible key).
 */
function eachHeadRow(ranges: Int32Array, offsets: Int32Array, probs: Float32Array, M: number, H: number, KVH: number, hs: number, body: (js: number[], qo: number, ko: number, p: Float32Array) => void): void {
  const W = H * hs,
    group = H / KVH;
  for (let m = 0; m < M; m++) {
    const js = visibleKeys(ranges, m),
      n = js.length;
    for (let h = 0; h < H; h++) body(js, m * W + h * hs, Math.floor(h / group) * hs, probs.subarray(offsets[m] + h * n, offsets[m] + (h + 1) * n));
  }
}

/** The key indices row m sees, in order. */
function visibleKeys(ranges: Int32Array, m: number): number[] {
  const [a0, b0, a1, b1] = ranges.subarray(4 * m, 4 * m + 4);
  const js: number[] = [];
  for (let j = a0; j < b0; j++) js.push(j);
  for (let j = a1; j < b1; j++) js.push(j);
  return js;
}

/** Plain TypeScript loops, in a fixed order (deterministic for given inputs). */
export const jsKernels: TrainKernels = {
  name: "js",
  matmul(y, x, w, M, K, N) {
    for (let m = 0; m < M; m++) {
      const xo = m * K;
      for (let n = 0; n < N; n++) {
        const wo = n * K;
        let s = 0;
        for (let k = 0; k < K; k++) s += x[xo + k] * w[wo + k];
        y[m * N + n] = s;
      }
    }
  },
  matmulGradX(dx, dy, w, M, K, N) {
    accumulate(dx, dy, N, 1, w, M, K, N);
  },
  matmulGradW(dw, dy, x, M, K, N) {
    accumulate(dw, dy, 1, N, x, N, K, M);
  },
  attentionForward(O, probs, Q, K, V, ranges, offsets, M, H, KVH, hs, scale) {
    const KW = KVH * hs;
    eachHeadRow(ranges, offsets, probs, M, H, KVH, hs, (js, qo, ko, p) => {
      const n = js.length;
      let max = -Infinity;
      for (let i = 0; i < n; i++) {
        let s = 0;
        const kj = js[i] * KW + ko;
        for (let d = 0; d < hs; d++) s += Q[qo + d] * K[kj + d];
        p[i] = s * scale;
        if (p[i] > max) max = p[i];
      }
      let sum = 0;
      for (let i = 0; i < n; i++) sum += p[i] = Math.exp(p[i] - max);
      for (let i = 0; i < n; i++) p[i] /= sum;
      for (let d = 0; d < hs; d++) O[qo + d] = 0;
      for (let i = 0; i < n; i++) {
        const vj = js[i] * KW + ko,
          pi = p[i];
        for (let d = 0; d < hs; d++) O[qo + d] += pi * V[vj + d];
      }
    });
  },
  loraForward(y, t, x, w, a, b, M, K, N, r, s) {
    const u = new Float32Array(M * N);
    this.matmul(y, x, w, M, K, N);
    this.matmul(t, x, a, M, K, r);
    this.matmul(u, t, b, M, r, N);
    for (let i = 0; i < M * N; i++) y[i] = y[i] + Math.fround(s * u[i]);
  },
  loraBackward(dx, da, db, dw, dy, x, w, a, b, t, M, K, N, r, s) {
    const du = new Float32Array(M * N),
      dt = new Float32Array(M * r);
    for (let i = 0; i < M * N; i++) du[i] = s * dy[i];
    this.matmulGradX(dt, du, b, M, r, N);
    if (db) this.matmulGradW(db, du, t, M, r, N);
    if (dx) this.matmulGradX(dx, dt, a, M, K, r);
    if (da) this.matmulGradW(da, dt, x, M, K, r);
    if (dx) this.matmulGradX(dx, dy, w, M, K, N);
    if (dw) this.matmulGradW(dw, dy, x, M, K, N);
  },
  swigluBackward(dgate, dup, dy, gate, up, sig, n) {
    if (dgate) {
      for (let i = 0; i < n; i++) {
        const s = sig[i];
        dgate[i] += dy[i] * up[i] * s * (1 + gate[i] * (1 - s));
      }
    }
    if (dup) for (let i = 0; i < n; i++) dup[i] += dy[i] * gate[i] * sig[i];
  },
  swiglu(y, sig, gate, up, n) {
    for (let i = 0; i < n; i++) {
      const g = gate[i],
        s = 1 / (1 + Math.exp(-g));
      sig[i] = s;
      y[i] = g * s * up[i];
    }
  },
  attentionBackward(dq, dk, dv, dO, probs, Q, K, V, ranges, offsets, M, H, KVH, hs, scale, kvFrom = 0) {
    const KW = KVH * hs;
    let dp = new Float64Array(0);
    eachHeadRow(ranges, offsets, probs, M, H, KVH, hs, (js, qo, ko, p) => {
      const n = js.length;
      if (dp.length < n) dp = new Float64Array(n);
      // dP_j = dO . v_j;  dV_j += P_j dO;  dS_j = P_j (dP_j - sum_i P_i dP_i)
      let pdp = 0;
      for (let i = 0; i < n; i++) {
        const vj = js[i] * KW + ko;
        let s = 0;
        for (let d = 0; d < hs; d++) s += dO[qo + d] * V[vj + d];
        dp[i] = s;
        pdp += p[i] * s;
        if (js[i] >= kvFrom) for (let d = 0; d < hs; d++) dv[vj + d] += p[i] * dO[qo + d];
      }
      for (let i = 0; i < n; i++) {
        const ds = p[i] * (dp[i] - pdp) * scale;
        if (ds === 0) continue;
        const kj = js[i] * KW + ko;
        for (let d = 0; d < hs; d++) dq[qo + d] += ds * K[kj + d];
        if (js[i] >= kvFrom) for (let d = 0; d < hs; d++) dk[kj + d] += ds * Q[qo + d];
      }
    });
  },
};

let active: TrainKernels = jsKernels;

/** The kernels a Tape made without any uses (trainers pass theirs: LoopOptions.kernels). */
export function trainKernels(): TrainKernels {
  return active;
}

/** Switch the default kernels of new Tapes (tests and scripts; trainers take an instance); returns the previous set. */
export function useTrainKernels(k: TrainKernels): TrainKernels {
  const prev = active;
  active = k;
  return prev;
}
