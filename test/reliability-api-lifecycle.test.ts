/**
 * A hostile user's sweep of the library's lifecycle: models and backends
 * disposed while a decode runs (from its callbacks), in any order or twice;
 * decodes run from inside another decode's callbacks; models sharing a
 * backend or a teacher; prompts, sampling settings and u sources that
 * change or fail midway; wasm backends closed at once, failing to start or
 * made by the score. Each is either correct (the outer decode's output
 * equals a clean run's) or an Error naming the function and what went
 * wrong, with the decode's caches freed; never a raw V8 error, a
 * "buffer used after free", a leaked worker or a silently wrong output.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { type Backend, BackendError } from "../src/backends/backend.js";
import { createBackend } from "../src/backends/registry.js";
import type { WasmBackend } from "../src/backends/wasm/index.js";
import { spawnNodeWorker } from "../src/backends/wasm/node-worker.js";
import type { WorkerSpawner } from "../src/backends/wasm/threads.js";
import { readCheckpoint } from "../src/io/checkpoint.js";
import { loadModel } from "../src/io/model-file.js";
import { randomCheckpoint } from "../src/model/init.js";
import { KVCache } from "../src/model/kv-cache.js";
import { Transformer } from "../src/model/transformer.js";
import { decodeAR } from "../src/ptp/decode/decode-ar.js";
import { type DecodeOptions, type DecoderName, decode, decodeWith, makeDecoder } from "../src/ptp/decode/run.js";
import type { Decoder } from "../src/ptp/decode/decoder.js";
import { DraftModel } from "../src/ptp/draft-model.js";
import { readStudent } from "../src/ptp/files/adapter-file.js";
import { randomDraft, randomStudent } from "../src/ptp/init.js";
import { PtpModel } from "../src/ptp/ptp-model.js";
import { type AuxSource, XorShiftAux } from "../src/sampling/aux.js";
import { ROOT, STORIES_260K } from "./helpers.js";

const TINY = { dim: 16, hiddenDim: 24, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 32, seqLen: 32, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };
/** Another shape (head size 12, two layers, another theta) for a second model on the same backend. */
const OTHER = { dim: 24, hiddenDim: 20, nLayers: 2, nHeads: 2, nKvHeads: 2, vocabSize: 32, seqLen: 32, sharedClassifier: false, normEps: 1e-5, ropeTheta: 500 };
const DECODERS: DecoderName[] = ["verify", "single-call", "self", "multi-draft", "ar"];
const S = { temperature: 0.8 };
const X = (seed = 1n) => new XorShiftAux(seed);
/** Two prompts that finish at different calls (the second is longer). */
const PROMPTS = [
  [1, 3],
  [1, 5, 7, 9, 11],
];
/** Two prompts, the second longer than the runs' 20 steps: finished (onFinished called) before the first call. */
const LONG = [[1, 3], Array.from({ length: 22 }, (_, i) => 2 + (i % 20))];
const aux2 = () => [X(), X(2n)];

type Kind = "js" | "wasm" | "wasm-2";
const KINDS: Kind[] = ["js", "wasm", "wasm-2"];
/** A fresh backend: js, wasm on one thread, or wasm with two threads (a worker pool). */
const newBackend = (kind: Kind): Promise<Backend> => (kind === "js" ? createBackend("js") : createBackend("wasm", { threads: kind === "wasm-2" ? 2 : 1 }));
/** Bytes the backend holds (wasm; undefined on js, which lets the garbage collector free). */
const liveBytes = (b: Backend): number | undefined => (b as Partial<WasmBackend>).liveBytes;
const tiny = (b: Backend, seed = 3) => {
  const ckpt = randomCheckpoint(TINY, seed);
  const teacher = new Transformer(b, ckpt);
  const student = randomStudent(ckpt, "t", { variant: "C", rank: 2, window: 4, seed: 1 });
  return { ckpt, teacher, student, model: new PtpModel(teacher, student) };
};
const run = (model: PtpModel, decoder: DecoderName, o: Partial<DecodeOptions> = {}, prompts = PROMPTS) => decode(model, prompts, { decoder, steps: 20, sampling: S, aux: aux2(), ...o });
const ar = (t: Transformer, o: { onToken?: (prev: number, token: number) => void } = {}) => decodeAR(t, [1, 3], { steps: 20, sampling: S, aux: X(), ...o }).tokens;
/** What `f` threw (failing when it threw nothing). */
const thrown = (f: () => unknown): unknown => {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error("expected a throw");
};

describe("disposing while a decode runs, twice, or in any order", () => {
  it.each(KINDS)("API-DISPOSE-IN-CALLBACK: a model, teacher or backend disposed by onToken / onCall / onFinished stops the decode with an error naming decode and what was disposed, the run's cache freed (%s)", async (kind) => {
    const b = await newBackend(kind);
    const { ckpt, student, teacher: ref, model: refModel } = tiny(b);
    // Clean runs (they also grow the backend's scratch to what these runs need).
    const clean = ar(ref),
      cleanOut = run(refModel, "verify").outputs;
    const bytes = liveBytes(b);
    // decodeAR: onToken disposes the model.
    {
      const t = new Transformer(b, ckpt);
      let n = 0;
      expect(() => ar(t, { onToken: () => ++n === 4 && t.dispose() })).toThrow(/^Transformer.forward: the model was disposed/);
      // Its weights, run state and the run's KV cache all went back.
      expect(liveBytes(b)).toBe(bytes);
    }
    // decode and decodeWith: onCall / onFinished dispose the PtpModel or its teacher.
    const kills: [string, (m: PtpModel, t: Transformer) => void, RegExp][] = [
      ["PtpModel", (m) => m.dispose(), /^decode: the model was disposed \(PtpModel.dispose\) by a callback while the decode ran; a callback must not dispose what a running decode uses/],
      ["teacher", (_, t) => t.dispose(), /^decode: the model's teacher was disposed \(Transformer.dispose\) by a callback while the decode ran/],
    ];
    for (const [what, kill, message] of kills) {
      for (const callback of ["onCall", "onFinished"] as const) {
        const t = new Transformer(b, ckpt),
          m = new PtpModel(t, student);
        let once = false;
        const e = thrown(() => run(m, "verify", { [callback]: () => once || ((once = true), kill(m, t)) }, LONG));
        expect(e, `${what} ${callback}`).toBeInstanceOf(Error);
        expect((e as Error).message, `${what} ${callback}`).toMatch(message);
        m.dispose();
        t.dispose();
        expect(liveBytes(b), `${what} ${callback}`).toBe(bytes);
      }
    }
    {
      const t = new Transformer(b, ckpt),
        m = new PtpModel(t, student);
      const decoder = makeDecoder(m, { decoder: "single-call", steps: 20, sampling: S });
      expect(() => decodeWith(m, PROMPTS, decoder, { steps: 20, sampling: S, aux: aux2(), onCall: () => m.dispose() })).toThrow(/^decodeWith: the model was disposed \(PtpModel.dispose\) by a callback/);
      t.dispose();
      expect(liveBytes(b)).toBe(bytes);
    }
    // The backend itself, disposed from a callback (wasm: js has nothing to dispose).
    if (kind !== "js") {
      const b1 = await newBackend(kind);
      const t1 = new Transformer(b1, ckpt);
      expect(() => ar(t1, { onToken: () => b1.dispose?.() })).toThrow(/^Transformer.forward: the model's backend was disposed \(backend.dispose\(\)\)/);
      const b2 = await newBackend(kind);
      const { teacher: t2, model: m2 } = tiny(b2);
      expect(() => run(m2, "verify", { onFinished: () => b2.dispose?.() }, LONG)).toThrow(/^decode: the model's backend was disposed \(backend.dispose\(\)\) by a callback while the decode ran/);
      // Disposing the models after their backend is harmless.
      for (const x of [t1, m2, t2]) expect(() => x.dispose()).not.toThrow();
    }
    // The models that stayed alive decode as before.
    expect(ar(ref)).toEqual(clean);
    expect(run(refModel, "verify").outputs).toEqual(cleanOut);
    expect(liveBytes(b)).toBe(bytes);
    refModel.dispose();
    ref.dispose();
    b.dispose?.();
  });

  it.each(KINDS)("API-DISPOSE-ORDER: PtpModel and DraftModel dispose twice harmlessly; a disposed PtpModel or teacher is named by PtpModel, decode and forward, not 'buffer used after free' or 'a KV cache does not fit'; a KV cache outlives its model (%s)", async (kind) => {
    const b = await newBackend(kind);
    const { ckpt, teacher, student, model } = tiny(b);
    const draft = new DraftModel(teacher, randomDraft(ckpt, "t", { variant: "C", window: 3, seed: 2 }));
    draft.dispose();
    expect(() => draft.dispose()).not.toThrow();
    expect(() => run(new PtpModel(teacher), "verify", { draft })).toThrow(/^decode: the draft model was disposed \(DraftModel.dispose\); make a new one/);
    const cache = model.newCache();
    model.forward({ tokens: [1, 3], positions: [0, 1] }, cache, 0);
    const keys = cache.snapshot(0).keys;
    model.dispose();
    expect(() => model.dispose()).not.toThrow(); // it freed the student's buffers twice: "buffer used after free"
    expect(model.disposed).toBe(true);
    expect(() => model.forward({ tokens: [5], positions: [2] }, cache, 0)).toThrow(/^PtpModel.forward: the model was disposed \(dispose\(\) freed the student's weights\); make a new PtpModel/);
    expect(() => model.newCache()).toThrow(/^PtpModel.newCache: the model was disposed/);
    expect(() => run(model, "verify")).toThrow(/^decode: the model was disposed \(PtpModel.dispose\); make a new one/);
    // The teacher is the caller's: still alive, with the cache the PtpModel filled.
    expect(teacher.forward({ tokens: [5], positions: [2] }, cache)).toHaveLength(TINY.vocabSize);
    teacher.dispose();
    expect(teacher.disposed).toBe(true);
    // The cache outlives its model: it still reads, and frees (twice), but no other model takes it.
    expect(cache.snapshot(0).keys.subarray(0, keys.length)).toEqual(keys);
    expect(() => new Transformer(b, ckpt).forward({ tokens: [1], positions: [3] }, cache)).toThrow(/^forward: the cache must be a KVCache of this model, but another model/);
    cache.free();
    expect(() => cache.free()).not.toThrow();
    // A PtpModel over a disposed teacher: refused when made, and by decode (it said "a KV cache of 46 rows ... does not fit").
    expect(() => new PtpModel(teacher, student)).toThrow(/^PtpModel: the teacher was disposed \(Transformer.dispose\)/);
    const t2 = new Transformer(b, ckpt),
      m2 = new PtpModel(t2, student);
    t2.dispose();
    for (const decoder of DECODERS) {
      const e = thrown(() => run(m2, decoder)) as Error;
      expect(e.message, decoder).toMatch(/^decode: the model's teacher was disposed \(Transformer.dispose\); make a new one/);
      expect(e.message).not.toMatch(/does not fit/);
    }
    expect(() => m2.forward({ tokens: [1], positions: [0] }, new KVCache(b, TINY), 0)).toThrow(/^Transformer.forward: the model was disposed/);
    m2.dispose();
    b.dispose?.();
  });

  it.each(["wasm", "wasm-2"] as const)("API-BACKEND-DISPOSED: a backend disposed under two live models: their calls, new models and new caches are refused by name; disposing the models and caches afterwards is harmless (%s)", async (kind) => {
    const b = await newBackend(kind);
    const { ckpt, teacher, model } = tiny(b);
    const second = new Transformer(b, randomCheckpoint(OTHER, 4));
    const cache = teacher.newCache(),
      cache2 = second.newCache();
    second.forward({ tokens: [1], positions: [0] }, cache2);
    b.dispose?.();
    b.dispose?.(); // twice: harmless
    for (const m of [teacher, second]) {
      expect(() => m.forward({ tokens: [1, 2], positions: [0, 1] }, m === teacher ? cache : cache2)).toThrow(/^Transformer.forward: the model's backend was disposed \(backend.dispose\(\)\); make a new backend and model/);
      expect(() => m.newCache()).toThrow(/^Transformer.newCache: the model's backend was disposed/);
    }
    expect(() => decodeAR(teacher, [1], { steps: 4, sampling: S, aux: X() })).toThrow(/^Transformer.newCache: the model's backend was disposed/);
    expect(() => run(model, "verify")).toThrow(/^decode: the model's backend was disposed \(backend.dispose\(\)\); make a new one/);
    // It said "KVCache: 32 rows ... do not fit: backend used after dispose", or only the backend's words.
    expect(() => new Transformer(b, ckpt)).toThrow(/^Transformer: the backend was disposed \(backend.dispose\(\)\); create a new one with createBackend/);
    expect(() => new KVCache(b, TINY)).toThrow(/^KVCache: the backend was disposed/);
    // Freeing after the backend is gone (it threw "backend used after dispose") is harmless, in any order.
    for (const f of [() => cache.free(), () => model.dispose(), () => teacher.dispose(), () => second.dispose(), () => cache2.free()]) expect(f).not.toThrow();
    // Any other use of the backend is still its own error.
    expect(() => b.alloc(4)).toThrow(BackendError);
  });
});

describe("decoding from inside a decode's callbacks", () => {
  it.each(["js", "wasm-2"] as const)("API-REENTRANT-DECODE: decode, decodeAR and forward on the same model (own caches) from onToken / onCall / onFinished leave the outer outputs and chunks equal to a clean run's, every decoder (%s)", async (kind) => {
    const b = await newBackend(kind);
    const { teacher, model } = tiny(b);
    const nested = () => {
      decode(model, [[1, 9]], { decoder: "single-call", steps: 12, sampling: S, aux: [X(7n)] });
      decodeAR(teacher, [1, 7], { steps: 10, sampling: S, aux: X(5n) });
      const c = model.newCache();
      model.forward({ tokens: [1, 2, 3], positions: [0, 1, 2] }, c, 0);
      teacher.greedy({ tokens: [4], positions: [3] }, c);
      c.free();
    };
    const cleanAr = ar(teacher);
    expect(ar(teacher, { onToken: nested })).toEqual(cleanAr);
    for (const decoder of DECODERS) {
      const clean = run(model, decoder);
      for (const callback of ["onCall", "onFinished"] as const) {
        const r = run(model, decoder, { [callback]: nested });
        expect(r.outputs, `${decoder} ${callback}`).toEqual(clean.outputs);
        expect(r.chunks, `${decoder} ${callback}`).toEqual(clean.chunks);
      }
      // decodeWith with the decoder's accept running a decode of its own between calls.
      const inner = makeDecoder(model, { decoder, steps: 20, sampling: S });
      const wrapped: Decoder = { name: "nested", plan: (s) => inner.plan(s), accept: (s, g, out) => (nested(), inner.accept(s, g, out)), release: inner.release };
      expect(decodeWith(model, PROMPTS, wrapped, { steps: 20, sampling: S, aux: aux2() }).outputs, decoder).toEqual(clean.outputs);
    }
    model.dispose();
    b.dispose?.();
  });

  it("API-REENTRANT-HEAD: a draft-head and a draft-model decode of stories260K run nested decodes from their callbacks with unchanged outputs and chunks (wasm, 2 threads)", async () => {
    const b = await newBackend("wasm-2");
    const ckpt = readCheckpoint(STORIES_260K);
    const teacher = new Transformer(b, ckpt);
    const head = new PtpModel(teacher, readStudent(join(ROOT, "demo/stories260K-head.safetensors")));
    const plain = new PtpModel(teacher);
    const draft = new DraftModel(teacher, randomDraft(ckpt, "t", { variant: "C", window: 3, seed: 2 }));
    const prompts = [
      [1, 403, 407],
      [1, 403, 407, 261, 378],
    ];
    const arOut = prompts.map((p, i) => decodeAR(teacher, p, { steps: 24, sampling: S, aux: aux2()[i] }).tokens);
    for (const [label, m, o] of [
      ["head", head, {}],
      ["draft", plain, { draft }],
    ] as const) {
      const go = (extra: Partial<DecodeOptions>) => decode(m, prompts, { decoder: "verify", steps: 24, sampling: S, aux: aux2(), ...o, ...extra });
      const clean = go({});
      expect(clean.outputs, label).toEqual(arOut);
      const nested = () => void go({ aux: [X(9n), X(8n)] });
      const r = go({ onCall: nested, onFinished: nested });
      expect(r.outputs, label).toEqual(arOut);
      expect(r.chunks, label).toEqual(clean.chunks);
    }
    draft.dispose();
    head.dispose();
    teacher.dispose();
    b.dispose?.();
  });

  it.each(["js", "wasm"] as const)("API-CALLBACK-CACHE: onFinished (or onCall, with a cache kept from it) that crops, frees or runs forward on the decode's KV cache is an error naming decode and the callback (it failed in KVCache.keep, or went on); reading it is fine (%s)", async (kind) => {
    const b = await newBackend(kind);
    const { model } = tiny(b);
    const clean = run(model, "verify").outputs;
    const changes: [string, (c: KVCache) => void, RegExp][] = [
      ["crop", (c) => c.crop(0), /now 0\)/],
      ["free", (c) => c.free(), /freed it/],
      ["forward", (c) => model.forward({ tokens: [1, 2], positions: [0, 1] }, c, 0), /now \d+\)/],
    ];
    for (const decoder of ["verify", "single-call", "ar"] as const) {
      for (const [what, change, detail] of changes) {
        let once = false;
        const e = thrown(() => run(model, decoder, { onFinished: (_, c) => once || ((once = true), change(c)) })) as Error;
        expect(e.message, `${decoder} ${what}`).toMatch(/^decode: onFinished changed the decode's KV cache \(/);
        expect(e.message, `${decoder} ${what}`).toMatch(detail);
        expect(e.message).toMatch(/for reading only/);
        let kept: KVCache | undefined;
        // LONG's second prompt is finished before the first call: its onFinished hands out the cache early.
        expect(() => run(model, decoder, { onFinished: (_, c) => void (kept = c), onCall: () => kept && change(kept) }, LONG), `${decoder} ${what}`).toThrow(/^decode: onCall changed the decode's KV cache/);
      }
    }
    // Reading the cache (as the tests of decode's rows do) changes nothing.
    expect(run(model, "verify", { onFinished: (_, c) => void c.snapshot(0) }).outputs).toEqual(clean);
    expect(run(model, "verify").outputs).toEqual(clean);
    model.dispose();
  });
});

describe("models sharing a backend or a teacher", () => {
  it.each(KINDS)("API-SHARED-BACKEND: two Transformers of different shapes on one backend, called alternately, give logits bit-identical to each alone on its own backend; two PtpModels over one teacher, alternately, the same outputs and chunks as alone (%s)", async (kind) => {
    const shared = await newBackend(kind);
    const [own1, own2] = [await newBackend(kind), await newBackend(kind)];
    const c1 = randomCheckpoint(TINY, 3),
      c2 = randomCheckpoint(OTHER, 4);
    const a = new Transformer(shared, c1),
      bb = new Transformer(shared, c2),
      soloA = new Transformer(own1, c1),
      soloB = new Transformer(own2, c2);
    const caches = [a, bb, soloA, soloB].map((t) => t.newCache());
    for (let p = 0; p < 12; p++) {
      // Blocks of 1 to 3 rows, so each call resizes the run state and scratch.
      const n = 1 + (p % 3);
      const block = { tokens: Array.from({ length: n }, (_, i) => (p * 7 + i) % 32), positions: Array.from({ length: n }, (_, i) => 3 * p + i) };
      if (block.positions[n - 1] >= TINY.seqLen) break;
      const [la, lb, sa, sb] = [a, bb, soloA, soloB].map((t, i) => t.forward(block, caches[i]));
      expect(la, `call ${p}`).toEqual(sa);
      expect(lb, `call ${p}`).toEqual(sb);
    }
    // Two students over one teacher, decoding in turns, against each alone (its own teacher and backend).
    const s1 = randomStudent(c1, "t", { variant: "C", rank: 2, window: 4, seed: 1 }),
      s2 = randomStudent(c1, "t", { variant: "O", rank: 3, window: 3, seed: 2, extraBlocks: 1 });
    const m1 = new PtpModel(a, s1),
      m2 = new PtpModel(a, s2);
    const alone = [new PtpModel(soloA, s1), new PtpModel(new Transformer(own2, c1), s2)].map((m) => run(m, "verify"));
    for (let round = 0; round < 2; round++) {
      for (const [i, m] of [m1, m2].entries()) {
        const r = run(m, "verify");
        expect(r.outputs, `round ${round} model ${i}`).toEqual(alone[i].outputs);
        expect(r.chunks, `round ${round} model ${i}`).toEqual(alone[i].chunks);
      }
    }
    for (const x of [shared, own1, own2]) x.dispose?.();
  });
});

describe("arguments that change or fail while a decode runs", () => {
  it.each(["js", "wasm"] as const)("API-PROMPT-MUTATION: a prompt array (or Int32Array) changed by a callback mid-decode changes nothing: decode and decodeAR read a copy (%s)", async (kind) => {
    const b = await newBackend(kind);
    const { teacher, model } = tiny(b);
    const cleanAr = ar(teacher),
      clean = run(model, "verify").outputs;
    const p = [1, 3];
    expect(decodeAR(teacher, p, { steps: 20, sampling: S, aux: X(), onToken: () => void (p[1] = 99) }).tokens).toEqual(cleanAr);
    const prompts = PROMPTS.map((q) => Int32Array.from(q));
    const outer = [...prompts];
    const r = decode(model, outer, { decoder: "verify", steps: 20, sampling: S, aux: aux2(), onCall: () => (prompts[0].fill(0), outer.reverse(), (outer.length = 1)) });
    expect(r.outputs).toEqual(clean);
    model.dispose();
  });

  it.each(["js", "wasm-2"] as const)("API-AUX-THROWS: a u source whose next() throws midway passes its own error on; NaN, 1, -0.1, a string or undefined midway is a RangeError naming decode, the source and the position; either way the decode's caches are freed and the model decodes as before (%s)", async (kind) => {
    const b = await newBackend(kind);
    const { ckpt, teacher, model } = tiny(b);
    const draft = new DraftModel(teacher, randomDraft(ckpt, "t", { variant: "C", window: 3, seed: 2 }));
    const plain = new PtpModel(teacher);
    const runs: [string, PtpModel, Partial<DecodeOptions>][] = [...DECODERS.map((d) => [d, model, { decoder: d }] as [string, PtpModel, Partial<DecodeOptions>]), ["draft", plain, { decoder: "verify", draft }]];
    const clean = runs.map(([, m, o]) => run(m, "verify", o).outputs);
    const cleanAr = ar(teacher);
    const bytes = liveBytes(b);
    /** XorShift's u's, then `bad()` from the fourth on. */
    const failing = (bad: () => unknown): AuxSource => {
      const x = X(2n);
      let n = 0;
      return { next: () => (++n > 3 ? bad() : x.next()) as number };
    };
    const boom = new Error("my u source broke");
    for (const [label, m, o] of runs) {
      expect(
        thrown(() => run(m, "verify", { ...o, aux: [X(), failing(() => throwIt(boom))] })),
        label,
      ).toBe(boom);
      expect(liveBytes(b), label).toBe(bytes);
      for (const [bad, shown] of [
        [Number.NaN, "NaN"],
        [1, "1"],
        [-0.1, "-0.1"],
        ["0.5", '"0.5" \\(string\\)'],
        [undefined, "undefined"],
      ] as const) {
        const e = thrown(() => run(m, "verify", { ...o, aux: [X(), failing(() => bad)] }));
        expect(e, `${label} ${shown}`).toBeInstanceOf(RangeError);
        expect((e as Error).message, `${label} ${shown}`).toMatch(new RegExp(`^decode: aux\\[1\\], u for position \\d+: auxiliary variable u must be in \\[0, 1\\), got ${shown}`));
        expect(liveBytes(b), `${label} ${shown}`).toBe(bytes);
      }
    }
    expect(thrown(() => decodeAR(teacher, [1, 3], { steps: 20, sampling: S, aux: failing(() => throwIt(boom)) }))).toBe(boom);
    expect(() => decodeAR(teacher, [1, 3], { steps: 20, sampling: S, aux: failing(() => Number.NaN) })).toThrow(/^decodeAR: aux, u for position 5: auxiliary variable u must be in \[0, 1\), got NaN/);
    expect(liveBytes(b)).toBe(bytes);
    // Nothing of the failed runs is left behind.
    expect(runs.map(([, m, o]) => run(m, "verify", o).outputs)).toEqual(clean);
    expect(ar(teacher)).toEqual(cleanAr);
    b.dispose?.();
  });

  it("API-AUX-THROWS-HEAD: a failing u source frees a draft head's per-sequence caches too (stories260K, wasm, 2 threads)", async () => {
    const b = await newBackend("wasm-2");
    const teacher = new Transformer(b, readCheckpoint(STORIES_260K));
    const head = new PtpModel(teacher, readStudent(join(ROOT, "demo/stories260K-head.safetensors")));
    const prompts = [
      [1, 403, 407],
      [1, 403, 407, 261, 378],
    ];
    const clean = decode(head, prompts, { decoder: "verify", steps: 24, sampling: S, aux: aux2() }).outputs;
    const bytes = liveBytes(b);
    const x = X(2n);
    let n = 0;
    const failing = { next: () => (++n > 8 ? Number.NaN : x.next()) };
    expect(() => decode(head, prompts, { decoder: "verify", steps: 24, sampling: S, aux: [X(), failing] })).toThrow(/^decode: aux\[1\], u for position \d+: auxiliary variable u must be in \[0, 1\), got NaN/);
    expect(liveBytes(b)).toBe(bytes);
    expect(decode(head, prompts, { decoder: "verify", steps: 24, sampling: S, aux: aux2() }).outputs).toEqual(clean);
    b.dispose?.();
  });

  it.each(["js", "wasm"] as const)("API-SAMPLING-MUTATION: sampling settings changed by a callback mid-decode change nothing: the run keeps the settings it started with (greedy to T = 0.8 without aux was a raw TypeError in decodeAR and u's of 0.5 in decode) (%s)", async (kind) => {
    const b = await newBackend(kind);
    const { teacher, model } = tiny(b);
    const changes: [string, { temperature: number; topK?: number }, (s: { temperature: number; topK?: unknown }) => void][] = [
      ["greedy to sampled", { temperature: 0 }, (s) => (s.temperature = 0.8)],
      ["sampled to greedy", { temperature: 0.8 }, (s) => (s.temperature = 0)],
      ["topK to a string", { temperature: 0.8, topK: 5 }, (s) => (s.topK = "x")],
      ["hotter", { temperature: 0.8 }, (s) => (s.temperature = 2)],
    ];
    for (const [label, start, change] of changes) {
      const greedy = start.temperature === 0;
      const cleanAr = decodeAR(teacher, [1, 3], { steps: 20, sampling: { ...start }, aux: greedy ? undefined : X(), stopAtBos: false }).tokens;
      const settings = { ...start };
      expect(decodeAR(teacher, [1, 3], { steps: 20, sampling: settings, aux: greedy ? undefined : X(), stopAtBos: false, onToken: () => change(settings) }).tokens, label).toEqual(cleanAr);
      for (const decoder of DECODERS) {
        const o = () => ({ decoder, steps: 20, stopAtBos: false, aux: greedy ? undefined : aux2() });
        const clean = decode(model, PROMPTS, { ...o(), sampling: { ...start } });
        const s = { ...start };
        const r = decode(model, PROMPTS, { ...o(), sampling: s, onCall: () => change(s) });
        expect(r.outputs, `${label} ${decoder}`).toEqual(clean.outputs);
        expect(r.chunks, `${label} ${decoder}`).toEqual(clean.chunks);
      }
    }
    model.dispose();
  });

  it.each(["js", "wasm"] as const)("API-LOGITS-KEPT: logits a caller keeps stay as they were after later calls: forward's arrays and decodeWith's `out` rows are fresh each call; forwardInto's are views of the caller's array, as documented (%s)", async (kind) => {
    const b = await newBackend(kind);
    const { teacher, model } = tiny(b);
    const cache = teacher.newCache();
    const first = teacher.forward({ tokens: [1, 3], positions: [0, 1] }, cache);
    const copy = first.slice();
    teacher.forward({ tokens: [5, 6, 7], positions: [2, 3, 4] }, cache);
    expect(first).toEqual(copy);
    // forwardInto writes the caller's array: an earlier view reads the later call's logits.
    const out = new Float32Array(4 * TINY.vocabSize);
    const v1 = teacher.forwardInto(out, { tokens: [8], positions: [5] }, cache);
    const v1copy = v1.slice();
    const v2 = teacher.forwardInto(out, { tokens: [9], positions: [6] }, cache);
    expect(v1.buffer).toBe(out.buffer);
    expect(v1).toEqual(v2);
    expect(v1).not.toEqual(v1copy);
    // decodeWith: a decoder may keep the rows it is given.
    for (const decoder of ["verify", "single-call"] as const) {
      const inner = makeDecoder(model, { decoder, steps: 20, sampling: S });
      const kept: [Float32Array, Float32Array][] = [];
      const keeping: Decoder = { name: "keeping", plan: (s) => inner.plan(s), accept: (s, g, o) => (kept.push(...o.base.map((row) => [row, row.slice()] as [Float32Array, Float32Array])), inner.accept(s, g, o)) };
      const r = decodeWith(model, PROMPTS, keeping, { steps: 20, sampling: S, aux: aux2() });
      expect(r.outputs).toEqual(run(model, decoder).outputs);
      expect(kept.length).toBeGreaterThan(4);
      for (const [row, at] of kept) expect(row).toEqual(at);
    }
    model.dispose();
  });
});

describe("wasm worker threads: closed early, failing to start, made by the score", () => {
  it("API-BACKEND-CLOSE-EARLY: a 2-thread backend disposed as soon as it is made (twice) refuses every use by name, and stops its workers", async () => {
    let spawned = 0,
      terminated = 0;
    const counting: WorkerSpawner = (data, onFail) => {
      spawned++;
      const w = spawnNodeWorker(data, onFail);
      return { terminate: () => (terminated++, w.terminate()) };
    };
    const b = (await createBackend("wasm", { threads: 3, spawnWorker: counting })) as WasmBackend;
    expect(b.threadsReady).toBe(true);
    b.dispose();
    b.dispose();
    expect(b.disposed).toBe(true);
    expect([spawned, terminated]).toEqual([2, 2]);
    expect(b.threadsReady).toBe(false);
    expect(() => b.alloc(4)).toThrow(/^backend "wasm": backend used after dispose/);
    await expect(b.startThreads()).rejects.toThrow(/backend used after dispose/);
    expect(() => new Transformer(b, randomCheckpoint(TINY, 1))).toThrow(/^Transformer: the backend was disposed/);
    expect(() => new KVCache(b, TINY)).toThrow(/^KVCache: the backend was disposed/);
  });

  it("API-BACKEND-SPAWN-FAIL: createBackend whose worker fails to start rejects naming the wasm backend and the cause, and stops the workers that did start (they ran on, unreferenced)", async () => {
    let spawned = 0,
      terminated = 0;
    const failing: WorkerSpawner = (data, onFail) => {
      if (++spawned === 2) {
        setTimeout(() => onFail(new Error("no room for a worker")), 5);
        return { terminate: () => void terminated++ };
      }
      const w = spawnNodeWorker(data, onFail);
      return { terminate: () => (terminated++, w.terminate()) };
    };
    await expect(createBackend("wasm", { threads: 4, spawnWorker: failing })).rejects.toThrow(/^wasm backend: a worker thread failed to start: no room for a worker$/);
    expect(spawned).toBe(3);
    expect(terminated).toBe(3);
  });

  it("API-BACKEND-ARGS: a spawnWorker that is not a function, or returns no worker handle, a js backend's bad thread count, loadModel without a backend and withWeightRows without a callback are refused by name (they were raw TypeErrors or accepted)", async () => {
    await expect(createBackend("wasm", { threads: 2, spawnWorker: 3 as never })).rejects.toThrow(/^wasm backend: spawnWorker must be a function/);
    await expect(createBackend("wasm", { threads: 2, spawnWorker: (() => null) as never })).rejects.toThrow(/^wasm backend: spawnWorker must return a worker handle with terminate\(\), got null$/);
    for (const threads of [-4, 0, 1.5, "2"]) await expect(createBackend("js", { threads: threads as number })).rejects.toThrow(/^createBackend: threads must be a positive integer/);
    expect(() => loadModel(undefined as never, STORIES_260K)).toThrow(/^loadModel: backend must be a Backend/);
    const b = await createBackend("wasm", { threads: 1 });
    const model = new Transformer(b, randomCheckpoint({ dim: 16, hiddenDim: 32, nLayers: 1, nHeads: 2, nKvHeads: 2, vocabSize: 8, seqLen: 8, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 }, 1));
    expect(() => model.withWeightRows("wq", 0, 5 as never)).toThrow(/^withWeightRows: use must be a function/);
    expect(model.withWeightRows("wq", 0, (rows) => rows.length)).toBe(256);
    model.dispose();
    b.dispose?.();
  });

  it("API-JS-DISPOSE: the js backend has dispose() as wasm does: a model on it then refuses calls by name, a new model is refused, freeing does nothing, a second dispose is a no-op", async () => {
    const b = await createBackend("js");
    const config = { dim: 8, hiddenDim: 16, nLayers: 1, nHeads: 2, nKvHeads: 2, vocabSize: 8, seqLen: 8, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };
    const model = new Transformer(b, randomCheckpoint(config, 1));
    const buf = b.alloc(4);
    expect(b.disposed).toBe(false);
    b.dispose?.();
    b.dispose?.();
    expect(b.disposed).toBe(true);
    expect(() => model.forward({ tokens: [1], positions: [0] }, model.newCache(4))).toThrow(/the (model's )?backend was disposed/);
    expect(() => new Transformer(b, randomCheckpoint(config, 1))).toThrow(/^Transformer: the backend was disposed/);
    expect(() => b.alloc(4)).toThrow(/alloc: the backend was disposed/);
    expect(() => b.upload(buf, new Float32Array(4))).toThrow(/the backend was disposed/);
    b.free(buf);
  });

  it("API-BACKEND-LEAK: 20 two-thread backends made and disposed in a loop leave no worker thread behind, and the process exits at once", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ptp-lifecycle-"));
    const script = join(dir, "leak.mts");
    writeFileSync(
      script,
      `import { readdirSync } from "node:fs";
import { createBackend } from ${JSON.stringify(join(ROOT, "src/index.js"))};
const tasks = () => readdirSync("/proc/self/task").length;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const settle = async (target) => { for (let i = 0; i < 150 && tasks() > target; i++) await sleep(20); };
(await createBackend("wasm", { threads: 2 })).dispose();
await sleep(200);
const base = tasks();
let peak = 0;
for (let i = 0; i < 20; i++) {
  const b = await createBackend("wasm", { threads: 2 });
  peak = Math.max(peak, tasks());
  b.dispose();
}
await settle(base);
console.log(JSON.stringify({ base, peak, after: tasks(), at: Date.now() }));
`,
    );
    const child = spawn(process.execPath, ["--experimental-wasm-relaxed-simd", "--import", "tsx", script], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "",
      stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d));
    child.stderr.on("data", (d: Buffer) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    const exitedAt = Date.now();
    clearTimeout(timer);
    expect(code, stderr).toBe(0);
    const { base, peak, after, at } = JSON.parse(stdout.trim().split("\n").pop()!);
    expect(peak).toBeGreaterThan(base); // a worker ran while each backend lived
    expect(after, `threads: ${base} before, ${after} after`).toBeLessThanOrEqual(base);
    expect(exitedAt - at).toBeLessThan(3000);
  });
});

function throwIt(e: Error): never {
  throw e;
}
