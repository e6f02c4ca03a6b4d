import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Backend } from "../src/backends/backend.js";
import { Transformer } from "../src/model/transformer.js";
import { sampleToken } from "../src/sampling/sampler.js";
import { tokenProbability } from "../src/sampling/softmax.js";
import { argmax } from "../src/sampling/pick.js";
import type { Checkpoint } from "../src/model/weights.js";
import { backend, BACKENDS, RowsMatmulMutant, firstBitDifference, maxRelativeError, rng, tinyCheckpoint } from "./helpers.js";

/**
 * The keystone of lossless PTP: a row's logits are bit-identical however
 * many other rows share the call and whatever they are, given the same
 * visible keys. Ids follow spec/model.md.
 */

const RUNS = 60;

/** A checkpoint and a sequence of (token, position) rows valid for it. */
const caseArb = tinyCheckpoint.chain((ckpt) =>
  fc.record({
    ckpt: fc.constant(ckpt),
    rows: fc.array(fc.record({ token: fc.nat(ckpt.config.vocabSize - 1), position: fc.nat(ckpt.config.seqLen - 1) }), { minLength: 1, maxLength: 10 }),
    split: fc.nat(10),
    junk: fc.array(fc.record({ token: fc.nat(ckpt.config.vocabSize - 1), position: fc.nat(ckpt.config.seqLen - 1) }), { maxLength: 6 }),
    seed: fc.integer(),
  }),
);

/** Logits of each row when the rows are fed one call at a time (the AR way). */
function oneByOne(model: Transformer, rows: { token: number; position: number }[]): Float32Array[] {
  const cache = model.newCache(64);
  const out = rows.map((r) => model.forward({ tokens: [r.token], positions: [r.position] }, cache));
  cache.free();
  return out;
}

type Case = typeof caseArb extends fc.Arbitrary<infer C> ? C : never;

/** A property over random cases: `body` gets the case, its model on `b` and each row's logits fed one at a time (oneByOne). */
function rowsProperty(b: Backend, body: (c: Case, model: Transformer, ref: Float32Array[]) => void) {
  return fc.property(caseArb, (c) => withModel(b, c.ckpt, (model) => body(c, model, oneByOne(model, c.rows))));
}

const rowOf = (logits: Float32Array, m: number, vocab: number) => logits.subarray(m * vocab, (m + 1) * vocab);

function withModel<T>(b: Awaited<ReturnType<typeof backend>>, ckpt: Checkpoint, f: (model: Transformer) => T): T {
  const model = new Transformer(b, ckpt);
  try {
    return f(model);
  } finally {
    model.dispose();
  }
}

describe.each(BACKENDS)("batch invariance on %s", (name) => {
  it("MODEL-BLOCK-EQ-SEQ: a block forward equals token-by-token forward, bit for bit, after any cached prefix", async () => {
    fc.assert(blockEqualsSequential(await backend(name)), { numRuns: RUNS });
  });

  it("MODEL-UNRELATED-ROWS: unrelated rows in the cache and in the block change no row", async () => {
    const b = await backend(name);
    fc.assert(
      rowsProperty(b, ({ ckpt, rows, junk, seed }, model, ref) => {
        const V = ckpt.config.vocabSize;
        const rand = rng(seed);
        const cache = model.newCache(64);
        // Junk already in the cache, attended causally among itself.
        if (junk.length > 0) model.forward({ tokens: junk.map((r) => r.token), positions: junk.map((r) => r.position) }, cache);
        const cached = cache.length;
        // Interleave our rows (in order) with more junk rows at random places.
        const order: ({ kind: "ours"; i: number } | { kind: "junk"; i: number })[] = [];
        let a = 0,
          j = 0;
        while (a < rows.length || j < junk.length) {
          if (j >= junk.length || (a < rows.length && rand() < 0.5)) order.push({ kind: "ours", i: a++ });
          else order.push({ kind: "junk", i: j++ });
        }
        const M = order.length,
          nKeys = cached + M;
        const mask = new Uint8Array(M * nKeys);
        order.forEach((o, m) => {
          if (o.kind === "ours") {
            // Our rows see exactly our earlier rows and themselves: never the junk.
            order.forEach((p, k) => {
              if (p.kind === "ours" && k <= m) mask[m * nKeys + cached + k] = 1;
            });
          } else {
            // Junk rows see an arbitrary subset of everything, themselves included.
            for (let k = 0; k < nKeys; k++) mask[m * nKeys + k] = rand() < 0.5 ? 1 : 0;
            mask[m * nKeys + cached + m] = 1;
          }
        });
        const pick = (o: (typeof order)[number]) => (o.kind === "ours" ? rows[o.i] : junk[o.i]);
        const logits = model.forward({ tokens: order.map((o) => pick(o).token), positions: order.map((o) => pick(o).position), mask }, cache);
        order.forEach((o, m) => {
          if (o.kind !== "ours") return;
          const diff = firstBitDifference(rowOf(logits, m, V), ref[o.i]);
          if (diff) throw new Error(`our row ${o.i} (block row ${m}): ${diff}`);
        });
        cache.free();
      }),
      { numRuns: RUNS },
    );
  });

  it("MODEL-SPARSE-CAUSAL: a causal block given as a sparse mask (visible: every cached row, then the block rows up to itself) has the logits of the same block with no mask, bit for bit", async () => {
    const b = await backend(name);
    fc.assert(
      fc.property(caseArb, ({ ckpt, rows, split }) =>
        withModel(b, ckpt, (model) => {
          // A cached prefix of `split` rows, then the rest as one block, once with no mask and once as visible.
          const s = Math.min(split, rows.length - 1);
          const prefix = rows.slice(0, s),
            block = rows.slice(s);
          const run = (sparse: boolean) => {
            const cache = model.newCache(64);
            try {
              if (prefix.length > 0) model.forward({ tokens: prefix.map((r) => r.token), positions: prefix.map((r) => r.position) }, cache);
              const C = cache.length,
                M = block.length;
              const offsets = Int32Array.from({ length: M + 1 }, (_, m) => m * C + (m * (m + 1)) / 2);
              const keys = Int32Array.from(Array.from({ length: M }, (_, m) => Array.from({ length: C + m + 1 }, (_, j) => j)).flat());
              return model.forward({ tokens: block.map((r) => r.token), positions: block.map((r) => r.position), ...(sparse ? { visible: { offsets, keys } } : {}) }, cache);
            } finally {
              cache.free();
            }
          };
          const diff = firstBitDifference(run(true), run(false));
          if (diff) throw new Error(diff);
        }),
      ),
      { numRuns: RUNS },
    );
  });

  it("MODEL-EMBED-ROWS: a row fed the embedding vector of a token equals the token row, bit for bit", async () => {
    const b = await backend(name);
    fc.assert(
      rowsProperty(b, ({ ckpt, rows, seed }, model, ref) => {
        const { dim, vocabSize: V } = ckpt.config;
        const rand = rng(seed);
        const tokens = rows.map((r) => (rand() < 0.5 ? -1 : r.token));
        const embeddings = new Float32Array(rows.length * dim);
        rows.forEach((r, m) => embeddings.set(ckpt.weights.tokenEmbedding.subarray(r.token * dim, (r.token + 1) * dim), m * dim));
        const cache = model.newCache(64);
        const logits = model.forward({ tokens, embeddings, positions: rows.map((r) => r.position) }, cache);
        rows.forEach((_, m) => {
          const diff = firstBitDifference(rowOf(logits, m, V), ref[m]);
          if (diff) throw new Error(`row ${m}: ${diff}`);
        });
        cache.free();
      }),
      { numRuns: RUNS },
    );
  });

  it("MODEL-GREEDY: greedy(block) gives the host argmax of every row forward(block) gives (the backend's argmax op, or the download when it has none)", async () => {
    const b = await backend(name);
    fc.assert(
      rowsProperty(b, ({ rows }, model, ref) => {
        const cache = model.newCache(64);
        const picks = model.greedy({ tokens: rows.map((r) => r.token), positions: rows.map((r) => r.position) }, cache);
        expect(Array.from(picks)).toEqual(ref.map((row) => argmax(row)));
        expect(cache.length).toBe(rows.length);
        cache.free();
      }),
      { numRuns: RUNS },
    );
  });

  it("MODEL-PICKROW: pickRow gives sampleToken's pick for every row of the latest forward (on a backend with a pick op; else nothing), and nothing for a row of an earlier call, a copy, or top-k sampling", async () => {
    const b = await backend(name);
    let picked = 0;
    fc.assert(
      rowsProperty(b, ({ ckpt, rows, seed }, model) => {
        const V = ckpt.config.vocabSize;
        const rand = rng(seed);
        const settings = { temperature: 0.5 + rand() };
        const block = { tokens: rows.map((r) => r.token), positions: rows.map((r) => r.position) };
        const cache = model.newCache(128);
        const logits = model.forward(block, cache);
        rows.forEach((_, m) => {
          const row = logits.subarray(m * V, (m + 1) * V),
            u = Math.fround(rand());
          const t = model.pickRow(row, settings, u);
          if (b.pick) {
            expect(t, `row ${m}`).toBe(sampleToken(row, settings, u));
            picked++;
          } else expect(t).toBeUndefined();
          expect(model.pickRow(row.slice(), settings, u), "a copy").toBeUndefined();
          expect(model.pickRow(row, { ...settings, topK: 2 }, u), "top-k").toBeUndefined();
        });
        const first = logits.subarray(0, V);
        cache.crop(0);
        model.forward(block, cache);
        expect(model.pickRow(first, settings, 0.5), "a row of an earlier forward").toBeUndefined();
        cache.free();
      }),
      { numRuns: RUNS },
    );
    if (name === "wasm") expect(picked).toBeGreaterThan(RUNS);
  });

  it("MODEL-FORWARD-INTO: forwardInto writes forward's logits bit for bit into the caller's array (a longer one keeps its tail), picks and token probabilities read them where they are; a short array is a RangeError", async () => {
    const b = await backend(name);
    fc.assert(
      rowsProperty(b, ({ ckpt, rows, seed }, model) => {
        const V = ckpt.config.vocabSize,
          M = rows.length;
        const block = { tokens: rows.map((r) => r.token), positions: rows.map((r) => r.position) };
        const cache = model.newCache(128);
        const want = model.forward(block, cache);
        cache.crop(0);
        const out = new Float32Array(M * V + 3).fill(7);
        const got = model.forwardInto(out, block, cache);
        expect(got.buffer).toBe(out.buffer);
        expect(firstBitDifference(got, want)).toBeNull();
        expect(Array.from(out.subarray(M * V))).toEqual([7, 7, 7]);
        const rand = rng(seed);
        const settings = { temperature: 0.5 + rand() },
          u = Math.fround(rand());
        const row = got.subarray((M - 1) * V, M * V);
        if (b.pick) expect(model.pickRow(row, settings, u)).toBe(sampleToken(row, settings, u));
        expect(Math.abs(model.tokenProbability(row, 0, 0.7) - tokenProbability(row, 0, 0.7))).toBeLessThanOrEqual(1e-4 * tokenProbability(row, 0, 0.7) + 1e-30);
        cache.crop(0);
        expect(() => model.forwardInto(new Float32Array(M * V - 1), block, cache)).toThrow(`forwardInto: out must be a Float32Array of at least ${M * V} values (${M} rows x vocab ${V})`);
        expect(cache.length, "nothing ran").toBe(0);
        cache.free();
      }),
      { numRuns: RUNS },
    );
  });

  it("MODEL-CACHE-CROP: cropping or compacting the cache and re-running gives the same logits, bit for bit", async () => {
    const b = await backend(name);
    fc.assert(
      rowsProperty(b, ({ ckpt, rows, split, junk }, model, ref) => {
        const V = ckpt.config.vocabSize;
        const s = Math.min(split, rows.length - 1);
        const tokens = rows.map((r) => r.token),
          positions = rows.map((r) => r.position);
        const cache = model.newCache(64);
        model.forward({ tokens, positions }, cache);
        // crop back to s rows, then recompute the rest
        cache.crop(s);
        const again = model.forward({ tokens: tokens.slice(s), positions: positions.slice(s) }, cache);
        for (let m = 0; m < rows.length - s; m++) {
          const diff = firstBitDifference(rowOf(again, m, V), ref[s + m]);
          if (diff) throw new Error(`after crop, row ${s + m}: ${diff}`);
        }
        // keep(): our first s rows followed by junk, compact away the junk, continue.
        cache.crop(s);
        if (junk.length > 0) model.forward({ tokens: junk.map((r) => r.token), positions: junk.map((r) => r.position) }, cache);
        cache.keep(Array.from({ length: s }, (_, i) => i));
        const kept = model.forward({ tokens: tokens.slice(s), positions: positions.slice(s) }, cache);
        for (let m = 0; m < rows.length - s; m++) {
          const diff = firstBitDifference(rowOf(kept, m, V), ref[s + m]);
          if (diff) throw new Error(`after keep, row ${s + m}: ${diff}`);
        }
        cache.free();
      }),
      { numRuns: RUNS },
    );
  });
});

describe.each(["wasm", "wasm-simd"] as const)("backends agree", (other) => {
  it(`MODEL-BACKENDS-AGREE: js and ${other} logits agree within 1e-4 relative error`, async () => {
    // Each backend is bit-exact with itself; across backends only the float
    // rounding differs (js sums one term at a time, wasm in four f32 lanes,
    // possibly fused). Tiny models with unit-scale activations stay far below 1e-4.
    const js = await backend("js"),
      wasm = await backend(other);
    fc.assert(
      fc.property(caseArb, ({ ckpt, rows }) => {
        const run = (b: typeof js) =>
          withModel(b, ckpt, (m) => {
            const cache = m.newCache(64);
            const logits = m.forward({ tokens: rows.map((r) => r.token), positions: rows.map((r) => r.position) }, cache);
            cache.free();
            return logits;
          });
        const a = run(js),
          c = run(wasm);
        expect(maxRelativeError(c, a)).toBeLessThan(1e-4);
      }),
      { numRuns: RUNS },
    );
  });
});

/** MODEL-BLOCK-EQ-SEQ as a property of a backend, so the mutation test can reuse it. */
function blockEqualsSequential(b: Backend) {
  return rowsProperty(b, ({ ckpt, rows, split }, model, ref) => {
    const V = ckpt.config.vocabSize;
    const s = Math.min(split, rows.length - 1);
    const cache = model.newCache(64);
    const blocks = [rows.slice(0, s), rows.slice(s)].filter((r) => r.length > 0);
    let i = 0;
    for (const blk of blocks) {
      const logits = model.forward({ tokens: blk.map((r) => r.token), positions: blk.map((r) => r.position) }, cache);
      for (let m = 0; m < blk.length; m++, i++) {
        const diff = firstBitDifference(rowOf(logits, m, V), ref[i]);
        if (diff) throw new Error(`row ${i}: ${diff}`);
      }
    }
    cache.free();
  });
}

/**
 * A deliberately broken backend: its matmul splits the K sum in two halves
 * when a call has several rows (as a naive split-K parallelisation would).
 * Every row is still "correct" to float tolerance, but not batch-invariant.
 */
class SplitKBackend extends RowsMatmulMutant {
  constructor() {
    super((X, W, xo, wo, K) => {
      const f = Math.fround,
        h = K >> 1;
      let a = 0,
        c = 0;
      for (let k = 0; k < h; k++) a = f(a + f(X[xo + k] * W[wo + k]));
      for (let k = h; k < K; k++) c = f(c + f(X[xo + k] * W[wo + k]));
      return a + c;
    });
  }
}

describe("mutation sanity", () => {
  it("MODEL-MUTANT: a split-K matmul (not batch-invariant) makes MODEL-BLOCK-EQ-SEQ fail", () => {
    const result = fc.check(blockEqualsSequential(new SplitKBackend()), { numRuns: RUNS, seed: 1, endOnFailure: true });
    expect(result.failed).toBe(true);
    expect(String(result.errorInstance)).toMatch(/row \d+: element \d+/);
  });
});
