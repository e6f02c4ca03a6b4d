// Row-wise ops. Each row is computed on its own, in index order, so these are
// batch-invariant by construction. They follow the js reference backend (and
// llama2.c): float32 arithmetic rounded after every operation, sums one term
// at a time in index order; SwiGLU's exp is vexpf (exp.ts), the same function
// of its argument in every row. Products that are not reduced are vectorised
// where that leaves every single float operation unchanged.

import { vexpf } from "./exp";

/** y[m, :] = weight * (scale * x[m, :]), scale = 1 / sqrt(sum(x^2) / D + eps), all f32. */
export function rmsnorm(y: usize, x: usize, weight: usize, M: i32, D: i32, eps: f32): void {
  const rowBytes = (<usize>D) << 2;
  const d4 = (<usize>(D & ~3)) << 2;
  for (let m = 0; m < M; m++) {
    const xr = x + <usize>m * rowBytes;
    const yr = y + <usize>m * rowBytes;
    // Sum of squares: one f32 term at a time, index order.
    let ss: f32 = 0;
    for (let i: usize = 0; i < rowBytes; i += 4) {
      const v = load<f32>(xr + i);
      ss += v * v;
    }
    const scale: f32 = <f32>1 / Mathf.sqrt(ss / <f32>D + eps);
    const sv = f32x4.splat(scale);
    let i: usize = 0;
    for (; i < d4; i += 16) {
      v128.store(yr + i, f32x4.mul(v128.load(weight + i), f32x4.mul(sv, v128.load(xr + i))));
    }
    for (; i < rowBytes; i += 4) {
      store<f32>(yr + i, load<f32>(weight + i) * (scale * load<f32>(xr + i)));
    }
  }
}

/**
 * RoPE in place. `table` holds, for every row m and pair p = i / 2, the f32
 * pair (cos, sin) of that row's angle, computed by the host from the shared
 * angle recipe: table[(m * headSize / 2 + p) * 2 + {0, 1}].
 * x0' = x0 c - x1 s, x1' = x0 s + x1 c (each product rounded, then the sum).
 */
export function rope(x: usize, table: usize, M: i32, nHeads: i32, headSize: i32): void {
  const half = headSize >> 1;
  const width = <usize>nHeads * <usize>headSize;
  for (let m = 0; m < M; m++) {
    const xr = x + ((<usize>m * width) << 2);
    const tr = table + ((<usize>m * <usize>half) << 3);
    for (let p = 0; p < half; p++) {
      const c = load<f32>(tr + ((<usize>p) << 3));
      const s = load<f32>(tr + ((<usize>p) << 3), 4);
      for (let h = 0; h < nHeads; h++) {
        const o = xr + ((<usize>h * <usize>headSize + ((<usize>p) << 1)) << 2);
        const a = load<f32>(o);
        const b = load<f32>(o, 4);
        store<f32>(o, a * c - b * s);
        store<f32>(o, a * s + b * c, 4);
      }
    }
  }
}

/** y[i] = (gate[i] * (1 / (1 + vexpf(-gate[i])))) * up[i], all f32, four at a time (element-wise, so batch-invariant). */
export function swiglu(y: usize, gate: usize, up: usize, n: i32): void {
  const end = (<usize>n) << 2;
  const end4 = (<usize>(n & ~3)) << 2;
  const one = f32x4.splat(1);
  let i: usize = 0;
  for (; i < end4; i += 16) {
    const g = v128.load(gate + i);
    const e = vexpf(f32x4.neg(g));
    v128.store(y + i, f32x4.mul(f32x4.mul(g, f32x4.div(one, f32x4.add(one, e))), v128.load(up + i)));
  }
  for (; i < end; i += 4) {
    const g = load<f32>(gate + i);
    const e = f32x4.extract_lane(vexpf(f32x4.splat(-g)), 0);
    store<f32>(y + i, (g * (<f32>1 / (<f32>1 + e))) * load<f32>(up + i));
  }
}

/** y[i] += x[i]. */
export function add(y: usize, x: usize, n: i32): void {
  const end = (<usize>n) << 2;
  const end4 = (<usize>(n & ~3)) << 2;
  let i: usize = 0;
  for (; i < end4; i += 16) {
    v128.store(y + i, f32x4.add(v128.load(y + i), v128.load(x + i)));
  }
  for (; i < end; i += 4) {
    store<f32>(y + i, load<f32>(y + i) + load<f32>(x + i));
  }
}

/** y[m, :] = table[ids[m], :] for ids[m] >= 0 (ids already range-checked by the host). */
export function embedding(y: usize, table: usize, ids: usize, M: i32, D: i32): void {
  const rowBytes = (<usize>D) << 2;
  for (let m = 0; m < M; m++) {
    const id = load<i32>(ids + ((<usize>m) << 2));
    if (id < 0) continue;
    memory.copy(y + <usize>m * rowBytes, table + <usize>id * rowBytes, rowBytes);
  }
}

/**
 * `embedding` from a table packed into panels (gemm.ts): row id is lane
 * id % 4 of panel id / 4, one element every 16 bytes (the same bits).
 */
export function embeddingPanels(y: usize, panels: usize, ids: usize, M: i32, D: i32): void {
  const rowBytes = (<usize>D) << 2;
  for (let m = 0; m < M; m++) {
    const id = load<i32>(ids + ((<usize>m) << 2));
    if (id < 0) continue;
    const src = panels + (<usize>(id >> 2)) * (rowBytes << 2) + ((<usize>(id & 3)) << 2);
    const dst = y + <usize>m * rowBytes;
    for (let k: usize = 0; k < <usize>D; k++) store<u32>(dst + (k << 2), load<u32>(src + (k << 4)));
  }
}

/**
 * out[m] = argmax of row m of x [M, N] (N >= 1), exactly as the host's
 * sequential scan (src/sampling/pick.ts) gives it: best = 0, then index i
 * replaces it when x[i] > x[best]. So: the lowest index of the largest
 * value, a NaN never wins, and a row starting with NaN gives 0. Sixteen
 * lanes (four vectors, four independent compare chains, so the scan is not
 * one chain's latency per four elements) each scan every sixteenth element
 * the same way, starting below every value so a NaN cannot stick to a lane;
 * the first vector then scans the last N % 16 elements that fill whole
 * vectors; the lanes are merged by value, ties to the lower index, and the
 * N % 4 tail is scanned last. Any lane count gives the scan's answer: each
 * lane keeps the first index of its largest value.
 */
export function argmaxRows(out: usize, x: usize, M: i32, N: i32): void {
  const rowBytes = (<usize>N) << 2;
  const end16 = (<usize>(N & ~15)) << 2;
  const end4 = (<usize>(N & ~3)) << 2;
  const sixteen = i32x4.splat(16);
  for (let m = 0; m < M; m++) {
    const xr = x + <usize>m * rowBytes;
    const first = load<f32>(xr);
    let best: i32 = 0;
    if (first == first) {
      const low = f32x4.splat(-Infinity), none = i32x4.splat(-1);
      let bv0 = low, bv1 = low, bv2 = low, bv3 = low;
      let bi0 = none, bi1 = none, bi2 = none, bi3 = none;
      let idx = i32x4(0, 1, 2, 3);
      let i: usize = 0;
      for (; i < end16; i += 64) {
        const v0 = v128.load(xr + i), v1 = v128.load(xr + i, 16), v2 = v128.load(xr + i, 32), v3 = v128.load(xr + i, 48);
        const g0 = f32x4.gt(v0, bv0), g1 = f32x4.gt(v1, bv1), g2 = f32x4.gt(v2, bv2), g3 = f32x4.gt(v3, bv3);
        bv0 = v128.bitselect(v0, bv0, g0);
        bv1 = v128.bitselect(v1, bv1, g1);
        bv2 = v128.bitselect(v2, bv2, g2);
        bv3 = v128.bitselect(v3, bv3, g3);
        bi0 = v128.bitselect(idx, bi0, g0);
        bi1 = v128.bitselect(i32x4.add(idx, i32x4.splat(4)), bi1, g1);
        bi2 = v128.bitselect(i32x4.add(idx, i32x4.splat(8)), bi2, g2);
        bi3 = v128.bitselect(i32x4.add(idx, i32x4.splat(12)), bi3, g3);
        idx = i32x4.add(idx, sixteen);
      }
      for (; i < end4; i += 16) {
        const v = v128.load(xr + i);
        const g = f32x4.gt(v, bv0);
        bv0 = v128.bitselect(v, bv0, g);
        bi0 = v128.bitselect(idx, bi0, g);
        idx = i32x4.add(idx, i32x4.splat(4));
      }
      let bestValue = first;
      best = mergeLanes(bv0, bi0, bestValue, best);
      bestValue = load<f32>(xr + ((<usize>best) << 2));
      best = mergeLanes(bv1, bi1, bestValue, best);
      bestValue = load<f32>(xr + ((<usize>best) << 2));
      best = mergeLanes(bv2, bi2, bestValue, best);
      bestValue = load<f32>(xr + ((<usize>best) << 2));
      best = mergeLanes(bv3, bi3, bestValue, best);
      bestValue = load<f32>(xr + ((<usize>best) << 2));
      for (i = end4; i < rowBytes; i += 4) {
        const v = load<f32>(xr + i);
        if (v > bestValue) {
          bestValue = v;
          best = <i32>(i >> 2);
        }
      }
    }
    store<i32>(out + ((<usize>m) << 2), best);
  }
}

/** The index of the larger of (bestValue at best) and each lane's (value, index) of one vector, ties to the lower index; a lane that never took a value (index -1) is skipped. */
// @ts-ignore: decorator
@inline function mergeLanes(bv: v128, bi: v128, bestValue: f32, best: i32): i32 {
  for (let lane = 0; lane < 4; lane++) {
    let i: i32, v: f32;
    if (lane == 0) { i = i32x4.extract_lane(bi, 0); v = f32x4.extract_lane(bv, 0); }
    else if (lane == 1) { i = i32x4.extract_lane(bi, 1); v = f32x4.extract_lane(bv, 1); }
    else if (lane == 2) { i = i32x4.extract_lane(bi, 2); v = f32x4.extract_lane(bv, 2); }
    else { i = i32x4.extract_lane(bi, 3); v = f32x4.extract_lane(bv, 3); }
    if (i < 0) continue;
    if (v > bestValue || (v == bestValue && i < best)) {
      bestValue = v;
      best = i;
    }
  }
  return best;
}
