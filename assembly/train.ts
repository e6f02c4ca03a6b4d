// WASM SIMD kernels for training (src/train/autograd/wasm-kernels.ts):
// the three dense products of a linear layer's forward and backward pass.
//
// Unlike the inference module (assembly/index.ts) these need no batch
// invariance, only determinism, so they are free to block over rows. Every
// kernel takes byte pointers into this module's own memory (the TypeScript
// side copies operands in and results out) and element counts.
// Matrices are row-major float32; W is stored [N, K] (y = x W^T).

// @ts-ignore: decorator
@inline function hsum(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

// @ts-ignore: decorator
@inline function fma(acc: v128, a: v128, b: v128): v128 {
  return f32x4.add(acc, f32x4.mul(a, b));
}

/** y[M, N] = x[M, K] W[N, K]^T: two rows of x by four rows of W per tile. */
export function matmul(y: usize, x: usize, w: usize, M: i32, K: i32, N: i32): void {
  const K4 = K & ~3;
  const rowX = <usize>K << 2;
  let m = 0;
  for (; m + 2 <= M; m += 2) {
    const x0 = x + <usize>m * rowX, x1 = x0 + rowX;
    let n = 0;
    for (; n + 4 <= N; n += 4) {
      const w0 = w + <usize>n * rowX, w1 = w0 + rowX, w2 = w1 + rowX, w3 = w2 + rowX;
      let a00 = f32x4.splat(0), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00, a13 = a00;
      for (let k = 0; k < K4; k += 4) {
        const o = <usize>k << 2;
        const u0 = v128.load(x0 + o), u1 = v128.load(x1 + o);
        const v0 = v128.load(w0 + o), v1 = v128.load(w1 + o), v2 = v128.load(w2 + o), v3 = v128.load(w3 + o);
        a00 = fma(a00, u0, v0); a01 = fma(a01, u0, v1); a02 = fma(a02, u0, v2); a03 = fma(a03, u0, v3);
        a10 = fma(a10, u1, v0); a11 = fma(a11, u1, v1); a12 = fma(a12, u1, v2); a13 = fma(a13, u1, v3);
      }
      let s00 = hsum(a00), s01 = hsum(a01), s02 = hsum(a02), s03 = hsum(a03);
      let s10 = hsum(a10), s11 = hsum(a11), s12 = hsum(a12), s13 = hsum(a13);
      for (let k = K4; k < K; k++) {
        const o = <usize>k << 2;
        const u0 = load<f32>(x0 + o), u1 = load<f32>(x1 + o);
        const v0 = load<f32>(w0 + o), v1 = load<f32>(w1 + o), v2 = load<f32>(w2 + o), v3 = load<f32>(w3 + o);
        s00 += u0 * v0; s01 += u0 * v1; s02 += u0 * v2; s03 += u0 * v3;
        s10 += u1 * v0; s11 += u1 * v1; s12 += u1 * v2; s13 += u1 * v3;
      }
      const y0 = y + ((<usize>m * N + n) << 2), y1 = y0 + (<usize>N << 2);
      store<f32>(y0, s00); store<f32>(y0 + 4, s01); store<f32>(y0 + 8, s02); store<f32>(y0 + 12, s03);
      store<f32>(y1, s10); store<f32>(y1 + 4, s11); store<f32>(y1 + 8, s12); store<f32>(y1 + 12, s13);
    }
    for (; n < N; n++) {
      store<f32>(y + ((<usize>m * N + n) << 2), dot(x0, w + <usize>n * rowX, K));
      store<f32>(y + ((<usize>(m + 1) * N + n) << 2), dot(x1, w + <usize>n * rowX, K));
    }
  }
  for (; m < M; m++) {
    for (let n = 0; n < N; n++) store<f32>(y + ((<usize>m * N + n) << 2), dot(x + <usize>m * rowX, w + <usize>n * rowX, K));
  }
}

function dot(a: usize, b: usize, K: i32): f32 {
  const K4 = K & ~3;
  let acc = f32x4.splat(0);
  for (let k = 0; k < K4; k += 4) acc = fma(acc, v128.load(a + (<usize>k << 2)), v128.load(b + (<usize>k << 2)));
  let s = hsum(acc);
  for (let k = K4; k < K; k++) s += load<f32>(a + (<usize>k << 2)) * load<f32>(b + (<usize>k << 2));
  return s;
}

/**
 * out[R, C] += sum_j coef[R, J] (as coef[r * cs + j * js]) * src[j, C] over j < J:
 * the shared shape of both gradients. Four output rows per pass keep their
 * accumulators in registers across the whole j loop, a column block of 4
 * at a time.
 */
function accumulate(out: usize, coef: usize, cs: i32, js: i32, src: usize, R: i32, C: i32, J: i32): void {
  const C4 = C & ~3;
  const rowC = <usize>C << 2;
  let r = 0;
  for (; r + 4 <= R; r += 4) {
    const o0 = out + <usize>r * rowC, o1 = o0 + rowC, o2 = o1 + rowC, o3 = o2 + rowC;
    const c0 = coef + ((<usize>r * cs) << 2), c1 = c0 + (<usize>cs << 2), c2 = c1 + (<usize>cs << 2), c3 = c2 + (<usize>cs << 2);
    for (let c = 0; c < C4; c += 4) {
      const off = <usize>c << 2;
      let a0 = v128.load(o0 + off), a1 = v128.load(o1 + off), a2 = v128.load(o2 + off), a3 = v128.load(o3 + off);
      for (let j = 0; j < J; j++) {
        const s = v128.load(src + <usize>j * rowC + off), jo = <usize>(j * js) << 2;
        a0 = fma(a0, f32x4.splat(load<f32>(c0 + jo)), s);
        a1 = fma(a1, f32x4.splat(load<f32>(c1 + jo)), s);
        a2 = fma(a2, f32x4.splat(load<f32>(c2 + jo)), s);
        a3 = fma(a3, f32x4.splat(load<f32>(c3 + jo)), s);
      }
      v128.store(o0 + off, a0); v128.store(o1 + off, a1); v128.store(o2 + off, a2); v128.store(o3 + off, a3);
    }
    for (let c = C4; c < C; c++) {
      for (let i = 0; i < 4; i++) {
        const oc = out + <usize>(r + i) * rowC + (<usize>c << 2), ci = coef + ((<usize>(r + i) * cs) << 2);
        let s = load<f32>(oc);
        for (let j = 0; j < J; j++) s += load<f32>(ci + ((<usize>(j * js)) << 2)) * load<f32>(src + <usize>j * rowC + (<usize>c << 2));
        store<f32>(oc, s);
      }
    }
  }
  for (; r < R; r++) {
    const ci = coef + ((<usize>r * cs) << 2);
    for (let c = 0; c < C; c++) {
      const oc = out + <usize>r * rowC + (<usize>c << 2);
      let s = load<f32>(oc);
      for (let j = 0; j < J; j++) s += load<f32>(ci + ((<usize>(j * js)) << 2)) * load<f32>(src + <usize>j * rowC + (<usize>c << 2));
      store<f32>(oc, s);
    }
  }
}

/** dx[M, K] += dy[M, N] W[N, K]. */
export function matmulGradX(dx: usize, dy: usize, w: usize, M: i32, K: i32, N: i32): void {
  accumulate(dx, dy, N, 1, w, M, K, N);
}

/** dW[N, K] += dy[M, N]^T x[M, K]. */
export function matmulGradW(dw: usize, dy: usize, x: usize, M: i32, K: i32, N: i32): void {
  accumulate(dw, dy, 1, N, x, N, K, M);
}

/** First byte free for the caller's buffers. */
export function heapBase(): usize {
  return __heap_base;
}

// ---------------------------------------------------------------------------
// Masked multi-head attention with GQA over key ranges (src/train/autograd/
// attention.ts). Row m sees keys [a0, b0) then [a1, b1) (ranges: i32 [M, 4]);
// probabilities are kept for the backward pass at probs + offsets[m] + h n_m.

// @ts-ignore: decorator
@inline function dotN(a: usize, b: usize, n: i32): f32 {
  const n4 = n & ~3;
  let acc = f32x4.splat(0);
  for (let d = 0; d < n4; d += 4) acc = fma(acc, v128.load(a + (<usize>d << 2)), v128.load(b + (<usize>d << 2)));
  let s = hsum(acc);
  for (let d = n4; d < n; d++) s += load<f32>(a + (<usize>d << 2)) * load<f32>(b + (<usize>d << 2));
  return s;
}

/** y[0..n) += c x[0..n). */
// @ts-ignore: decorator
@inline function axpy(y: usize, c: f32, x: usize, n: i32): void {
  const n4 = n & ~3, cv = f32x4.splat(c);
  for (let d = 0; d < n4; d += 4) v128.store(y + (<usize>d << 2), fma(v128.load(y + (<usize>d << 2)), cv, v128.load(x + (<usize>d << 2))));
  for (let d = n4; d < n; d++) store<f32>(y + (<usize>d << 2), load<f32>(y + (<usize>d << 2)) + c * load<f32>(x + (<usize>d << 2)));
}

/** The key index of the i-th visible key of a row with ranges [a0, b0) [a1, b1). */
// @ts-ignore: decorator
@inline function keyAt(i: i32, a0: i32, b0: i32, a1: i32): i32 {
  return i < b0 - a0 ? a0 + i : a1 + i - (b0 - a0);
}

export function attentionForward(out: usize, probs: usize, q: usize, k: usize, v: usize, ranges: usize, offsets: usize, M: i32, H: i32, KVH: i32, hs: i32, scale: f32): void {
  const W = H * hs, KW = KVH * hs, group = H / KVH;
  for (let m = 0; m < M; m++) {
    const r = ranges + (<usize>m << 4);
    const a0 = load<i32>(r), b0 = load<i32>(r, 4), a1 = load<i32>(r, 8), b1 = load<i32>(r, 12);
    const n = b0 - a0 + (b1 - a1);
    for (let h = 0; h < H; h++) {
      const qo = q + (<usize>(m * W + h * hs) << 2), ko = (h / group) * hs;
      const p = probs + (<usize>(load<i32>(offsets + (<usize>m << 2)) + h * n) << 2);
      let max = -Infinity as f32;
      for (let i = 0; i < n; i++) {
        const s = dotN(qo, k + (<usize>(keyAt(i, a0, b0, a1) * KW + ko) << 2), hs) * scale;
        store<f32>(p + (<usize>i << 2), s);
        if (s > max) max = s;
      }
      let sum: f32 = 0;
      for (let i = 0; i < n; i++) {
        const e = Mathf.exp(load<f32>(p + (<usize>i << 2)) - max);
        store<f32>(p + (<usize>i << 2), e);
        sum += e;
      }
      const inv: f32 = 1 / sum;
      const oo = out + (<usize>(m * W + h * hs) << 2);
      memory.fill(oo, 0, <usize>hs << 2);
      for (let i = 0; i < n; i++) {
        const pi = load<f32>(p + (<usize>i << 2)) * inv;
        store<f32>(p + (<usize>i << 2), pi);
        axpy(oo, pi, v + (<usize>(keyAt(i, a0, b0, a1) * KW + ko) << 2), hs);
      }
    }
  }
}

/** dq, dk, dv += the gradients of attentionForward's output given dout; dp: scratch of the longest row's n floats. */
export function attentionBackward(dq: usize, dk: usize, dv: usize, dout: usize, probs: usize, q: usize, k: usize, v: usize, ranges: usize, offsets: usize, M: i32, H: i32, KVH: i32, hs: i32, scale: f32, dp: usize): void {
  const W = H * hs, KW = KVH * hs, group = H / KVH;
  for (let m = 0; m < M; m++) {
    const r = ranges + (<usize>m << 4);
    const a0 = load<i32>(r), b0 = load<i32>(r, 4), a1 = load<i32>(r, 8), b1 = load<i32>(r, 12);
    const n = b0 - a0 + (b1 - a1);
    for (let h = 0; h < H; h++) {
      const row = <usize>(m * W + h * hs) << 2, ko = (h / group) * hs;
      const p = probs + (<usize>(load<i32>(offsets + (<usize>m << 2)) + h * n) << 2);
      let pdp: f32 = 0;
      for (let i = 0; i < n; i++) {
        const kv = <usize>(keyAt(i, a0, b0, a1) * KW + ko) << 2, pi = load<f32>(p + (<usize>i << 2));
        const d = dotN(dout + row, v + kv, hs);
        store<f32>(dp + (<usize>i << 2), d);
        pdp += pi * d;
        axpy(dv + kv, pi, dout + row, hs);
      }
      for (let i = 0; i < n; i++) {
        const ds = load<f32>(p + (<usize>i << 2)) * (load<f32>(dp + (<usize>i << 2)) - pdp) * scale;
        if (ds == 0) continue;
        const kv = <usize>(keyAt(i, a0, b0, a1) * KW + ko) << 2;
        axpy(dq + row, ds, k + kv, hs);
        axpy(dk + kv, ds, q + row, hs);
      }
    }
  }
}
