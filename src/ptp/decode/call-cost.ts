/**
 * What a teacher call of r rows costs on this backend: its time, measured,
 * and so c(r) = time(r rows) / time(1 row), for draftStop "auto"
 * (decoders/head-verify.ts), with the rules that read it. Fewer calls save time only where a call of
 * several rows costs little more than one, and how much more depends on
 * the model, the weight type, the backend, the threads and the CPU
 * (docs/BENCHMARKS.md, the cost curve): a decoder that reads c(r) from the
 * machine it runs on needs no window tuned for another.
 *
 * The measurement (timeCalls, which bench/ptp-speedup.ts's c(rows) uses
 * too): a scratch cache holding a short prefix, then calls of 1 .. maxRows
 * rows after it, each size once to warm up, then ROUNDS rounds in
 * alternating order (so drift hits every size alike); the fastest of each
 * size (on a shared machine another tenant only ever adds time, and one
 * slow round read as a median misjudged a whole decode).
 * About ROUNDS + 1 calls of each size: at 110M 0.28 s on two threads and
 * 0.42 s on one (15M: 41 and 65 ms; docs/BENCHMARKS.md), paid once per
 * teacher and maxRows (kept with the teacher). The
 * teacher's weights and state are untouched (its own caches are not used).
 */
import type { Transformer } from "../../model/transformer.js";

const PREFIX = 16;
const ROUNDS = 4;

const measured = new WeakMap<Transformer, Map<number, readonly number[]>>();

/** The time in ms of a teacher call of 1 .. maxRows rows (index r - 1; never less than one row's), measured at the first call and kept with the teacher: c(r) is time[r - 1] / time[0]. */
export function callCost(teacher: Transformer, maxRows: number): readonly number[] {
  let byRows = measured.get(teacher);
  if (!byRows) measured.set(teacher, (byRows = new Map()));
  let cost = byRows.get(maxRows);
  if (!cost) byRows.set(maxRows, (cost = measureCallCost(teacher, maxRows)));
  return cost;
}

function measureCallCost(teacher: Transformer, maxRows: number): readonly number[] {
  const times = timeCalls(
    teacher,
    Array.from({ length: maxRows }, (_, r) => r + 1),
    { prefix: PREFIX, rounds: ROUNDS, statistic: "fastest" },
  );
  // Never below the one-row call.
  return times.map((t) => Math.max(times[0], t));
}

/** How timeCalls measures: the cached tokens before the calls, the timed rounds after a warm-up one, and which time of each size it keeps. */
export interface CallTiming {
  prefix: number;
  rounds: number;
  /** "fastest": another tenant only adds time; "median": the benchmarks' figure. */
  statistic: "fastest" | "median";
}

/**
 * The time in ms of a causal teacher call of each of `rows` row counts after
 * `prefix` cached tokens (a shorter prefix where the teacher's seqLen asks,
 * and at most seqLen rows), on a scratch cache: each size once to warm up,
 * then `rounds` rounds in alternating order (so drift hits every size
 * alike), the logits into one array as the decoders call. The teacher's
 * weights and state are untouched (its own caches are not used).
 */
export function timeCalls(teacher: Transformer, rows: readonly number[], o: CallTiming): number[] {
  const { vocabSize, seqLen } = teacher.config;
  const most = Math.min(Math.max(...rows), seqLen);
  const prefix = Math.max(0, Math.min(o.prefix, seqLen - most));
  const cache = teacher.newCache(prefix + most);
  try {
    const token = (i: number) => (i * 7 + 1) % vocabSize;
    if (prefix > 0) teacher.forward({ tokens: Array.from({ length: prefix }, (_, i) => token(i)), positions: Array.from({ length: prefix }, (_, i) => i) }, cache);
    const logits = new Float32Array(most * vocabSize);
    const blocks = rows.map((r) => {
      const n = Math.min(r, most);
      return { tokens: Array.from({ length: n }, (_, i) => token(prefix + i)), positions: Array.from({ length: n }, (_, i) => prefix + i) };
    });
    const time = (i: number): number => {
      cache.crop(prefix);
      const t = performance.now();
      teacher.forwardInto(logits, blocks[i], cache);
      return performance.now() - t;
    };
    for (let i = 0; i < blocks.length; i++) time(i);
    const samples = blocks.map(() => [] as number[]);
    for (let round = 0; round < o.rounds; round++) {
      for (let j = 0; j < blocks.length; j++) {
        const i = round % 2 ? blocks.length - 1 - j : j;
        samples[i].push(time(i));
      }
    }
    return samples.map((s) => (o.statistic === "fastest" ? Math.min(...s) : [...s].sort((a, b) => a - b)[s.length >> 1]));
  } finally {
    cache.free();
  }
}

/**
 * The expected tokens a call with the first j drafts finalizes (its own
 * pick, plus each draft that passes with all before it) over its cost: the
 * teacher call of j + 1 rows, cost[j], plus the head's j slots, perDraft
 * each (the same unit).
 */
function rate(chances: readonly number[], cost: readonly number[], perDraft: number, j: number): number {
  let expected = 1;
  for (let i = 0; i < j; i++) expected += chances[i];
  return expected / (cost[j] + j * perDraft);
}

/**
 * How many of the drafts whose chances of passing (each the chance that it
 * and every draft before it pass) are `chances` a call should carry: the j
 * that makes (1 + chances[0] + .. + chances[j - 1]) / (cost[j] + j
 * perDraft) largest, the expected tokens a call finalizes over what it
 * costs (cost[j]: a teacher call of j + 1 rows; perDraft: drafting one
 * token). Ties go to fewer rows.
 */
export function bestDraftCount(chances: readonly number[], cost: readonly number[], perDraft = 0): number {
  let best = 0;
  for (let j = 1; j <= chances.length && j < cost.length; j++) if (rate(chances, cost, perDraft, j) > rate(chances, cost, perDraft, best)) best = j;
  return best;
}

/**
 * Whether drafting past `chances` (the drafts so far) can still raise the
 * rate bestDraftCount finds, up to `most` drafts: at best each next draft
 * passes with the last chance (a chance only falls as drafts are added).
 */
export function moreDraftsCanPay(chances: readonly number[], cost: readonly number[], most: number, perDraft = 0): boolean {
  const bestRate = rate(chances, cost, perDraft, bestDraftCount(chances, cost, perDraft));
  let expected = 1 + chances.reduce((a, b) => a + b, 0);
  const last = chances.length === 0 ? 1 : chances[chances.length - 1];
  for (let j = chances.length + 1; j <= most && j < cost.length; j++) {
    expected += last;
    if (expected / (cost[j] + j * perDraft) > bestRate) return true;
  }
  return false;
}

/**
 * Whether keeping the head can beat the teacher decoding alone: the best
 * rate of a call with j drafts sure to pass (j = 1 .. most), counting its
 * teacher call, its j slots and the head's keys and values of its j + 1
 * tokens (perToken each), against AR's one token per cost[0].
 */
export function headCanPay(cost: readonly number[], most: number, perDraft = 0, perToken = 0): boolean {
  for (let j = 1; j <= most && j < cost.length; j++) if ((1 + j) / (cost[j] + j * perDraft + (1 + j) * perToken) > 1 / cost[0]) return true;
  return false;
}
