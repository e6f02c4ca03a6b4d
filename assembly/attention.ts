// Masked multi-head attention over the KV cache.

import { vexpf } from "./exp";
import { madd } from "./madd";
import { dot, finish } from "./reduce";

/**
 * Masked multi-head attention (see Backend.attention): all heads. `scratch`
 * is host-owned, at least nHeads * nKeys * 8 bytes (see attentionHeads).
 */
export function attention(
  out: usize, q: usize, keys: usize, values: usize, mask: usize, hasMask: i32,
  M: i32, nKeys: i32, nHeads: i32, nKvHeads: i32, headSize: i32, scratch: usize,
): void {
  attentionHeads(out, q, keys, values, mask, hasMask, M, nKeys, nHeads, nKvHeads, headSize, scratch, 0, nHeads);
}

/** Four dot products q . k_a, q . k_b, q . k_c, q . k_d, each in the order of reduce.ts (four-lane chunks, then hsum and tail), divided by d. */
// @ts-ignore: decorator
@inline function scores4(sp: usize, qp: usize, ka: usize, kb: usize, kc: usize, kd: usize, h4: usize, hsBytes: usize, d: f32): void {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  for (let k: usize = 0; k < h4; k += 16) {
    const v = v128.load(qp + k);
    a0 = madd(v, v128.load(ka + k), a0);
    a1 = madd(v, v128.load(kb + k), a1);
    a2 = madd(v, v128.load(kc + k), a2);
    a3 = madd(v, v128.load(kd + k), a3);
  }
  if (h4 == hsBytes) {
    // No tail: the four horizontal sums at once, lane i = key i's (l0 + l1) + (l2 + l3) (a 4x4 transpose), one division.
    const lo01 = v128.shuffle<f32>(a0, a1, 0, 4, 1, 5), lo23 = v128.shuffle<f32>(a2, a3, 0, 4, 1, 5);
    const hi01 = v128.shuffle<f32>(a0, a1, 2, 6, 3, 7), hi23 = v128.shuffle<f32>(a2, a3, 2, 6, 3, 7);
    const l0 = v128.shuffle<f32>(lo01, lo23, 0, 1, 4, 5), l1 = v128.shuffle<f32>(lo01, lo23, 2, 3, 6, 7);
    const l2 = v128.shuffle<f32>(hi01, hi23, 0, 1, 4, 5), l3 = v128.shuffle<f32>(hi01, hi23, 2, 3, 6, 7);
    v128.store(sp, f32x4.div(f32x4.add(f32x4.add(l0, l1), f32x4.add(l2, l3)), f32x4.splat(d)));
    return;
  }
  store<f32>(sp, finish(a0, qp, ka, h4, hsBytes) / d);
  store<f32>(sp, finish(a1, qp, kb, h4, hsBytes) / d, 4);
  store<f32>(sp, finish(a2, qp, kc, h4, hsBytes) / d, 8);
  store<f32>(sp, finish(a3, qp, kd, h4, hsBytes) / d, 12);
}

/**
 * The largest of n scores at p as the loop `if (s > mx) mx = s` from
 * -Infinity finds it: per lane with pmax (mx < s ? s : mx, the same
 * comparison, so NaN scores are skipped as there), then across lanes. Only
 * a zero's sign could depend on the order, and s - (+0) and s - (-0) differ
 * only for s = -0, where exp gives 1 either way.
 */
// @ts-ignore: decorator
@inline function maxOf(p: usize, n: i32): f32 {
  const n4 = n & ~3;
  let mv = f32x4.splat(-Infinity);
  for (let t = 0; t < n4; t += 4) mv = f32x4.pmax(mv, v128.load(p + ((<usize>t) << 2)));
  let mx = f32x4.extract_lane(mv, 0);
  const s1 = f32x4.extract_lane(mv, 1), s2 = f32x4.extract_lane(mv, 2), s3 = f32x4.extract_lane(mv, 3);
  if (s1 > mx) mx = s1;
  if (s2 > mx) mx = s2;
  if (s3 > mx) mx = s3;
  for (let t = n4; t < n; t++) {
    const s = load<f32>(p + ((<usize>t) << 2));
    if (s > mx) mx = s;
  }
  return mx;
}

/** p_j = e_j / sum for the n exponentials at p. */
// @ts-ignore: decorator
@inline function normalise(p: usize, n: i32, sum: f32): void {
  const sv = f32x4.splat(sum);
  const n4 = n & ~3;
  let t = 0;
  for (; t < n4; t += 4) {
    const sp = p + ((<usize>t) << 2);
    v128.store(sp, f32x4.div(v128.load(sp), sv));
  }
  for (; t < n; t++) {
    const sp = p + ((<usize>t) << 2);
    store<f32>(sp, load<f32>(sp) / sum);
  }
}

/** The cached key or value row whose index is the i32 at `ip`. */
// @ts-ignore: decorator
@inline function cachedRow(base: usize, ip: usize, rowBytes: usize): usize {
  return base + <usize>load<i32>(ip) * rowBytes;
}

/** Where touchRows leaves what it read, so the loads stay in the program (see touchSink). */
let touched: i32 = 0;

/** What touchRows read last (keeps its loads observable; never needed otherwise). */
export function touchSink(): i32 {
  return touched;
}

/**
 * Loads one word of every cache line of bytes [from, to) of the first
 * nKeys key and value rows: independent loads, so the lines come from
 * memory with many misses in flight, before the score and value loops walk
 * them with arithmetic between the loads (in a decode step the weights
 * pushed them out of the caches since the last token). Every row of a call
 * sees a subset of these keys, so one pass serves all. Changes no float
 * operation.
 */
// @ts-ignore: decorator
@inline function touchRows(keys: usize, values: usize, nKeys: i32, rowBytes: usize, from: usize, to: usize): void {
  let acc: i32 = 0;
  const end = <usize>nKeys * rowBytes;
  for (let r: usize = 0; r < end; r += rowBytes) {
    for (let b = from; b < to; b += 64) acc |= load<i32>(keys + r + b) | load<i32>(values + r + b);
  }
  touched = acc;
}

/**
 * Query heads h0 .. h1-1 of masked multi-head attention (threads split the
 * heads into contiguous ranges). `scratch` holds, for head h, nKeys f32
 * scores at scratch + h * nKeys * 8; the visible key indices of the row go
 * to scratch + h0 * nKeys * 8 + nKeys * 4. hasMask = 0 selects the causal
 * default (row m sees keys 0 .. nKeys - M + m). The host checks beforehand
 * that every row sees at least one key. Masked keys are never read.
 * hasMask = 2: `mask` is a sparse mask of i32s, offsets [M + 1] then the
 * visible key indices of every row (strictly increasing), so a row costs its
 * visible keys only.
 *
 * Per (row, head), over the visible keys j only, each loop in index order:
 *   s_j = dot(q, k_j) / sqrt(headSize)   (dot in the order of reduce.ts over headSize)
 *   mx  = max s_j
 *   e_j = vexpf(s_j - mx);  sum = sum + e_j     (f32, one term at a time)
 *   p_j = e_j / sum
 *   out_i = 0;  out_i = out_i + p_j * v_j[i]    (f32 mul, then f32 add)
 * Four keys' dot products run side by side (each with its own accumulator)
 * and the value sum keeps out_i in a register across four keys; the loops
 * over keys run outside the loop over the range's heads, so each cached key
 * and value row is read once, front to back, for all of them (one memory
 * stream instead of one strided pass per head). None of this changes any
 * float operation, so every row and head gets the sequence above whatever
 * M, the mask, the head range or the thread count.
 */
export function attentionHeads(
  out: usize, q: usize, keys: usize, values: usize, mask: usize, hasMask: i32,
  M: i32, nKeys: i32, nHeads: i32, nKvHeads: i32, headSize: i32, scratch: usize, h0: i32, h1: i32,
): void {
  if (h1 <= h0) return;
  const width = <usize>nHeads * <usize>headSize;
  const kvWidthBytes = (<usize>nKvHeads * <usize>headSize) << 2;
  const hsBytes = (<usize>headSize) << 2;
  const h4 = (<usize>(headSize & ~3)) << 2;
  const group = nHeads / nKvHeads; // query heads per KV head (the host checks that nKvHeads divides nHeads)
  const sqrtHs = Mathf.sqrt(<f32>headSize);
  const headScratch = (<usize>nKeys) << 3; // bytes of scratch per head
  const idxScratch = scratch + <usize>h0 * headScratch + ((<usize>nKeys) << 2);
  // Head h reads KV head h / group: the loops over heads step these along (ko0: byte offset of h0's KV head in a row, g0: h0's place in its group).
  const g0 = h0 % group;
  const ko0 = <usize>(h0 / group) * hsBytes;
  touchRows(keys, values, nKeys, kvWidthBytes, ko0, <usize>((h1 - 1) / group) * hsBytes + hsBytes);
  for (let m = 0; m < M; m++) {
    // The visible keys, in index order.
    let n = 0;
    let idx = idxScratch;
    if (hasMask == 2) {
      // Sparse rows: i32 offsets [M + 1], then the key indices of every row.
      const from = load<i32>(mask + ((<usize>m) << 2));
      n = load<i32>(mask + ((<usize>m + 1) << 2)) - from;
      idx = mask + ((<usize>M + 1 + <usize>from) << 2);
    } else if (hasMask) {
      const maskRow = mask + <usize>m * <usize>nKeys;
      for (let j = 0; j < nKeys; j++) {
        if (load<u8>(maskRow + <usize>j) != 0) {
          store<i32>(idx + ((<usize>n) << 2), j);
          n++;
        }
      }
    } else {
      n = min<i32>(nKeys, nKeys - M + m + 1);
      for (let j = 0; j < n; j++) store<i32>(idx + ((<usize>j) << 2), j);
    }
    const n4 = n & ~3;
    const qRow = q + ((<usize>m * width) << 2);
    const oRow = out + ((<usize>m * width) << 2);
    // Scores, four keys at a time, every head of the range per four keys.
    let t = 0;
    for (; t < n4; t += 4) {
      const ip = idx + ((<usize>t) << 2);
      const ra = cachedRow(keys, ip, kvWidthBytes), rb = cachedRow(keys, ip + 4, kvWidthBytes);
      const rc = cachedRow(keys, ip + 8, kvWidthBytes), rd = cachedRow(keys, ip + 12, kvWidthBytes);
      // Pointers stepped head by head (no multiplications in the loop).
      let sp = scratch + <usize>h0 * headScratch + ((<usize>t) << 2), qp = qRow + <usize>h0 * hsBytes;
      for (let h = h0, ko = ko0, g = g0; h < h1; h++, sp += headScratch, qp += hsBytes) {
        scores4(sp, qp, ra + ko, rb + ko, rc + ko, rd + ko, h4, hsBytes, sqrtHs);
        if (++g == group) { g = 0; ko += hsBytes; }
      }
    }
    for (; t < n; t++) {
      const r = cachedRow(keys, idx + ((<usize>t) << 2), kvWidthBytes);
      for (let h = h0, ko = ko0, g = g0; h < h1; h++) {
        store<f32>(scratch + <usize>h * headScratch + ((<usize>t) << 2), dot(qRow + <usize>h * hsBytes, r + ko, headSize) / sqrtHs);
        if (++g == group) { g = 0; ko += hsBytes; }
      }
    }
    // Per head: the max, then the exponentials (vexpf, four keys at a time).
    for (let h = h0; h < h1; h++) {
      const scores = scratch + <usize>h * headScratch;
      const mv = f32x4.splat(maxOf(scores, n));
      let t1 = 0;
      for (; t1 < n4; t1 += 4) {
        const sp = scores + ((<usize>t1) << 2);
        v128.store(sp, vexpf(f32x4.sub(v128.load(sp), mv)));
      }
      for (; t1 < n; t1++) {
        const sp = scores + ((<usize>t1) << 2);
        store<f32>(sp, f32x4.extract_lane(vexpf(f32x4.sub(f32x4.splat(load<f32>(sp)), mv)), 0));
      }
    }
    // The sums, one term at a time per head (four heads' chains side by side: independent, so they overlap), then the probabilities.
    let h = h0;
    for (; h + 4 <= h1; h += 4) {
      const e0 = scratch + <usize>h * headScratch, e1 = e0 + headScratch, e2 = e1 + headScratch, e3 = e2 + headScratch;
      let s0: f32 = 0, s1: f32 = 0, s2: f32 = 0, s3: f32 = 0;
      for (let t: usize = 0, end = (<usize>n) << 2; t < end; t += 4) {
        s0 += load<f32>(e0 + t);
        s1 += load<f32>(e1 + t);
        s2 += load<f32>(e2 + t);
        s3 += load<f32>(e3 + t);
      }
      normalise(e0, n, s0);
      normalise(e1, n, s1);
      normalise(e2, n, s2);
      normalise(e3, n, s3);
    }
    for (; h < h1; h++) {
      const e = scratch + <usize>h * headScratch;
      let sum: f32 = 0;
      for (let t: usize = 0, end = (<usize>n) << 2; t < end; t += 4) sum += load<f32>(e + t);
      normalise(e, n, sum);
    }
    memory.fill(oRow + <usize>h0 * hsBytes, 0, <usize>(h1 - h0) * hsBytes);
    // Weighted sum of the visible values, every head of the range per four keys: each out_i stays in a register over four keys.
    let j = 0;
    for (; j < n4; j += 4) {
      const ip = idx + ((<usize>j) << 2);
      const ra = cachedRow(values, ip, kvWidthBytes), rb = cachedRow(values, ip + 4, kvWidthBytes);
      const rc = cachedRow(values, ip + 8, kvWidthBytes), rd = cachedRow(values, ip + 12, kvWidthBytes);
      let sp = scratch + <usize>h0 * headScratch + ((<usize>j) << 2), op = oRow + <usize>h0 * hsBytes;
      for (let h = h0, vo = ko0, g = g0; h < h1; h++, sp += headScratch, op += hsBytes) {
        const va = ra + vo, vb = rb + vo, vc = rc + vo, vd = rd + vo;
        const pa = load<f32>(sp), pb = load<f32>(sp, 4), pc = load<f32>(sp, 8), pd = load<f32>(sp, 12);
        const qa = f32x4.splat(pa), qb = f32x4.splat(pb), qc = f32x4.splat(pc), qd = f32x4.splat(pd);
        let i: usize = 0;
        for (; i < h4; i += 16) {
          let o = v128.load(op + i);
          o = f32x4.add(o, f32x4.mul(qa, v128.load(va + i)));
          o = f32x4.add(o, f32x4.mul(qb, v128.load(vb + i)));
          o = f32x4.add(o, f32x4.mul(qc, v128.load(vc + i)));
          o = f32x4.add(o, f32x4.mul(qd, v128.load(vd + i)));
          v128.store(op + i, o);
        }
        for (; i < hsBytes; i += 4) {
          let o = load<f32>(op + i);
          o = o + pa * load<f32>(va + i);
          o = o + pb * load<f32>(vb + i);
          o = o + pc * load<f32>(vc + i);
          o = o + pd * load<f32>(vd + i);
          store<f32>(op + i, o);
        }
        if (++g == group) { g = 0; vo += hsBytes; }
      }
    }
    for (; j < n; j++) {
      const r = cachedRow(values, idx + ((<usize>j) << 2), kvWidthBytes);
      for (let h = h0, vo = ko0, g = g0; h < h1; h++) {
        const vp = r + vo;
        const op = oRow + <usize>h * hsBytes;
        const pj = load<f32>(scratch + <usize>h * headScratch + ((<usize>j) << 2));
        const pv = f32x4.splat(pj);
        let i: usize = 0;
        for (; i < h4; i += 16) {
          v128.store(op + i, f32x4.add(v128.load(op + i), f32x4.mul(pv, v128.load(vp + i))));
        }
        for (; i < hsBytes; i += 4) {
          store<f32>(op + i, load<f32>(op + i) + pj * load<f32>(vp + i));
        }
        if (++g == group) { g = 0; vo += hsBytes; }
      }
    }
  }
}
