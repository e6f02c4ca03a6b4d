import type { CudaAddon, HostArray } from "../packages/backend-cuda/index.js";

/**
 * A host stand-in for the CUDA plug-in's native addon (packages/backend-cuda/
 * src/addon.cpp): the same functions on integer handles, with each kernel of
 * kernels.cu written as the per-element float32 recipe it runs (one rounding
 * per operation, sums in index order in one thread). It lets the plug-in's
 * JavaScript side (index.js: validation, host mirrors, RoPE tables, copies,
 * errors) run the conformance suite on machines without a GPU. It is not
 * evidence about the kernels themselves: that needs a device.
 */
export function hostCudaAddon(): CudaAddon {
  const f = Math.fround;
  const bufs = new Map<number, ArrayBuffer>();
  let next = 1;
  const get = (h: number) => {
    const b = bufs.get(h);
    if (!b) throw new Error("not a live buffer handle");
    return b;
  };
  const F = (h: number) => new Float32Array(get(h));
  return {
    deviceCount: () => 1,
    deviceName: () => "host stand-in",
    probe: () => ({ count: 1, reason: "" }),
    init: () => {},
    synchronize: () => {},
    alloc(bytes) {
      bufs.set(next, new ArrayBuffer(Math.ceil(bytes / 4) * 4));
      return next++;
    },
    free(h) {
      get(h);
      bufs.delete(h);
    },
    upload(h, off, data: HostArray) {
      new Uint8Array(get(h)).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), off);
    },
    download: (h, off, len) => get(h).slice(off, off + len),
    copy(d, dOff, s, sOff, n) {
      const src = new Uint8Array(get(s)).slice(sOff, sOff + n);
      new Uint8Array(get(d)).set(src, dOff);
    },
    matmul(y, x, w, M, K, N) {
      const Y = F(y),
        X = F(x),
        W = F(w);
      for (let m = 0; m < M; m++)
        for (let n = 0; n < N; n++) {
          let acc = 0;
          for (let k = 0; k < K; k++) acc = f(acc + f(X[m * K + k] * W[n * K + k]));
          Y[m * N + n] = acc;
        }
    },
    rmsnorm(y, x, g, M, D, eps) {
      const Y = F(y),
        X = F(x),
        G = F(g);
      for (let m = 0; m < M; m++) {
        let ss = 0;
        for (let i = 0; i < D; i++) ss = f(ss + f(X[m * D + i] * X[m * D + i]));
        const scale = f(1 / f(Math.sqrt(f(f(ss / D) + eps))));
        for (let i = 0; i < D; i++) Y[m * D + i] = f(G[i] * f(scale * X[m * D + i]));
      }
    },
    rope(x, table, M, nHeads, hs) {
      const X = F(x),
        T = F(table),
        half = hs / 2;
      for (let m = 0; m < M; m++)
        for (let h = 0; h < nHeads; h++)
          for (let p = 0; p < half; p++) {
            const c = T[(m * half + p) * 2],
              s = T[(m * half + p) * 2 + 1];
            const o = m * nHeads * hs + h * hs + 2 * p,
              a = X[o],
              b = X[o + 1];
            X[o] = f(f(a * c) - f(b * s));
            X[o + 1] = f(f(a * s) + f(b * c));
          }
    },
    attention(out, q, keys, values, mask, M, nKeys, nHeads, nKv, hs) {
      const O = F(out),
        Q = F(q),
        Kc = F(keys),
        Vc = F(values);
      const Mk = mask >= 0 ? new Uint8Array(get(mask)) : null;
      const width = nHeads * hs,
        kvW = nKv * hs,
        sqrtHs = f(Math.sqrt(hs));
      const sc = new Float32Array(nKeys);
      for (let m = 0; m < M; m++) {
        const vis = (j: number) => (Mk ? Mk[m * nKeys + j] !== 0 : j <= nKeys - M + m);
        for (let h = 0; h < nHeads; h++) {
          const qo = m * width + h * hs,
            ko = Math.floor(h / (nHeads / nKv)) * hs;
          let mx = -Infinity;
          for (let j = 0; j < nKeys; j++) {
            if (!vis(j)) continue;
            let s = 0;
            for (let i = 0; i < hs; i++) s = f(s + f(Q[qo + i] * Kc[j * kvW + ko + i]));
            sc[j] = f(s / sqrtHs);
            if (sc[j] > mx) mx = sc[j];
          }
          let sum = 0;
          for (let j = 0; j < nKeys; j++) if (vis(j)) sum = f(sum + (sc[j] = f(Math.exp(f(sc[j] - mx)))));
          for (let j = 0; j < nKeys; j++) if (vis(j)) sc[j] = f(sc[j] / sum);
          for (let i = 0; i < hs; i++) {
            let o = 0;
            for (let j = 0; j < nKeys; j++) if (vis(j)) o = f(o + f(sc[j] * Vc[j * kvW + ko + i]));
            O[qo + i] = o;
          }
        }
      }
    },
    swiglu(y, g, u, n) {
      const Y = F(y),
        G = F(g),
        U = F(u);
      for (let i = 0; i < n; i++) Y[i] = f(f(G[i] * f(1 / f(1 + f(Math.exp(-G[i]))))) * U[i]);
    },
    add(y, x, n) {
      const Y = F(y),
        X = F(x);
      for (let i = 0; i < n; i++) Y[i] = f(Y[i] + X[i]);
    },
    embedding(y, table, ids, M, D) {
      const Y = F(y),
        T = F(table),
        I = new Int32Array(get(ids));
      for (let m = 0; m < M; m++) if (I[m] >= 0) Y.set(T.subarray(I[m] * D, I[m] * D + D), m * D);
    },
    softmax(x, M, N) {
      const X = F(x);
      for (let m = 0; m < M; m++) {
        const row = X.subarray(m * N, (m + 1) * N);
        let mx = -Infinity;
        for (let i = 0; i < N; i++) if (row[i] > mx) mx = row[i];
        let sum = 0;
        for (let i = 0; i < N; i++) sum = f(sum + (row[i] = f(Math.exp(f(row[i] - mx)))));
        for (let i = 0; i < N; i++) row[i] = f(row[i] / sum);
      }
    },
    reset: () => bufs.clear(),
    liveBuffers: () => bufs.size,
  };
}
