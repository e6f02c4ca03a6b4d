import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { FileFormatError } from "../src/io/errors.js";
import { readSafetensors, writeSafetensors, type SafeTensor } from "../src/io/safetensors.js";
import { AdamW, clipGradNorm, gradNorm, type AdamWOptions } from "../src/train/optim.js";
import { makeParam, zeroGrads, type Param } from "../src/train/param.js";
import { Progress, formatDuration } from "../src/util/progress.js";
import { lrAt, type ScheduleConfig } from "../src/train/schedule.js";
import { loadTrainCheckpoint, saveTrainCheckpoint, TRAIN_CHECKPOINT_FORMAT } from "../src/train/train-checkpoint.js";

const tmp = mkdtempSync(join(tmpdir(), "train-optim-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A tiny LCG whose whole state is one JSON number, standing in for the trainer's RNG. */
class Lcg {
  constructor(public state: number) {}
  next(): number {
    this.state = (Math.imul(this.state, 1664525) + 1013904223) >>> 0;
    return this.state / 4294967296 - 0.5;
  }
}

const bytes = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** A toy model: three params with names like a real model's, filled from `seed`. */
function toyParams(seed: number): Param[] {
  const rng = new Lcg(seed);
  const fill = (n: number): Float32Array => Float32Array.from({ length: n }, () => 2 * rng.next());
  return [makeParam("layers.0.wq.lora_A", [4, 3], fill(12), true), makeParam("norm", [3], fill(3), false), makeParam("aux.emb", [2, 3], fill(6), true)];
}

const SCHED: ScheduleConfig = { lr: 0.05, warmup: 3, totalSteps: 20, decay: "cosine", minLr: 0.005 };
const HYPER: AdamWOptions = { beta1: 0.8, beta2: 0.95, eps: 1e-6, weightDecay: 0.1 };

/**
 * Toy quadratic loss sum_i (i+1)/2 (p_i - 0.3)^2 per param, plus noise from
 * the RNG and a term from the data cursor, so that resuming must restore all three.
 */
function train(opt: AdamW, rng: Lcg, cursor: { batch: number }, steps: number): void {
  for (let s = 0; s < steps; s++) {
    zeroGrads(opt.params);
    for (const p of opt.params) {
      for (let i = 0; i < p.data.length; i++) p.grad[i] = (i + 1) * (p.data[i] - 0.3) + 0.5 * rng.next() + 0.01 * (cursor.batch % 5);
    }
    clipGradNorm(opt.params, 1.5);
    opt.step(lrAt(opt.t + 1, SCHED));
    cursor.batch++;
  }
}

/** Expects a FileFormatError naming `path` whose message contains `text`. */
function expectFileError(fn: () => unknown, path: string, text: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(FileFormatError);
  expect((caught as FileFormatError).path).toBe(path);
  expect((caught as Error).message).toBe(`${path}: ${(caught as FileFormatError).problem}`);
  expect((caught as Error).message).toContain(text);
}

describe("AdamW", () => {
  const grads = [
    [0.5, -2, 1e-3, 0],
    [0.4, -1, -1e-3, 0],
    [-0.3, 3, 2e-3, 0],
    [0.1, 0.5, 0, 0],
    [0.2, -0.7, 1e-3, 0],
  ];
  const init = [1.5, -0.25, 0.75, -2];

  it("OPT-ADAMW: matches a float64 reference of the textbook update", () => {
    const lr = 0.01,
      b1 = 0.9,
      b2 = 0.999,
      eps = 1e-8,
      wd = 0.05;
    const p = makeParam("w", [4], Float32Array.from(init), true);
    const opt = new AdamW([p], { lr, weightDecay: wd });
    const ref = init.map((x) => Math.fround(x));
    const m = [0, 0, 0, 0],
      v = [0, 0, 0, 0];
    for (let t = 1; t <= grads.length; t++) {
      p.grad.set(grads[t - 1]);
      opt.step();
      for (let i = 0; i < 4; i++) {
        const g = Math.fround(grads[t - 1][i]);
        m[i] = b1 * m[i] + (1 - b1) * g;
        v[i] = b2 * v[i] + (1 - b2) * g * g;
        const mhat = m[i] / (1 - b1 ** t),
          vhat = v[i] / (1 - b2 ** t);
        ref[i] -= lr * (mhat / (Math.sqrt(vhat) + eps) + wd * ref[i]);
      }
    }
    // Tolerance: the optimizer rounds p, m and v to float32 once per step. Each
    // p rounding is <= 2^-24 |p|; m and v roundings perturb the update term
    // mhat/(sqrt(vhat)+eps) (|.| <= ~1 here) by a relative ~2^-23, times lr.
    // Grads do not depend on p, so errors add rather than compound: after T
    // steps |error| <= T * (2^-24 * max|p| + lr * 2^-22), doubled for slack.
    const T = grads.length;
    const tol = 2 * T * (2 ** -24 * 2 + lr * 2 ** -22);
    for (let i = 0; i < 4; i++) expect(Math.abs(p.data[i] - ref[i])).toBeLessThan(tol);
    // The first step of Adam moves each coordinate by about lr * sign(g): a hand check of the formula.
    const q = makeParam("q", [4], Float32Array.from(init), false);
    q.grad.set(grads[0]);
    new AdamW([q], { lr }).step();
    init.forEach((x, i) => expect(Math.abs(q.data[i] - (x - lr * Math.sign(grads[0][i])))).toBeLessThan(1e-6));
  });

  it("OPT-ADAMW: float32 state is exactly a reference that rounds m, v and p to float32 at each store", () => {
    const p = makeParam("w", [4], Float32Array.from(init), true);
    const opt = new AdamW([p], { lr: 0.02, ...HYPER });
    const { beta1: b1, beta2: b2, eps, weightDecay: wd } = HYPER as Required<AdamWOptions>;
    const ref = init.map((x) => Math.fround(x));
    const m = [0, 0, 0, 0],
      v = [0, 0, 0, 0];
    const f = Math.fround;
    for (let t = 1; t <= grads.length; t++) {
      p.grad.set(grads[t - 1]);
      opt.step();
      for (let i = 0; i < 4; i++) {
        const g = f(grads[t - 1][i]);
        m[i] = f(b1 * m[i] + (1 - b1) * g);
        v[i] = f(b2 * v[i] + (1 - b2) * g * g);
        ref[i] = f(ref[i] - 0.02 * (m[i] / (1 - b1 ** t) / (Math.sqrt(v[i] / (1 - b2 ** t)) + eps) + wd * ref[i]));
      }
    }
    expect(bytes(p.data)).toEqual(bytes(Float32Array.from(ref)));
    expect(opt.t).toBe(grads.length);
  });

  it("OPT-ADAMW-DECAY: weight decay applies only to decay=true params, decoupled from the gradient", () => {
    const data = Float32Array.from([1, -2, 0.5]);
    const withDecay = makeParam("a", [3], data.slice(), true);
    const without = makeParam("b", [3], data.slice(), false);
    const reference = makeParam("c", [3], data.slice(), false);
    const opt = new AdamW([withDecay, without], { lr: 0.1, weightDecay: 0.5 });
    const noDecayOpt = new AdamW([reference], { lr: 0.1, weightDecay: 0 });
    for (let s = 0; s < 3; s++) {
      for (const p of [withDecay, without, reference]) p.grad.set([0.3, -0.1, 0.2]);
      opt.step();
      noDecayOpt.step();
    }
    expect(bytes(without.data)).toEqual(bytes(reference.data));
    expect(bytes(withDecay.data)).not.toEqual(bytes(reference.data));
    // A zero gradient leaves only the decay: p <- p (1 - lr wd).
    const idle = makeParam("idle", [2], Float32Array.from([2, -4]), true);
    new AdamW([idle], { lr: 0.1, weightDecay: 0.5 }).step();
    expect(Array.from(idle.data)).toEqual([Math.fround(2 - 0.1 * 0.5 * 2), Math.fround(-4 + 0.1 * 0.5 * 4)]);
  });

  it("OPT-ADAMW: refuses bad hyperparameters and duplicate names", () => {
    const p = makeParam("w", [1], new Float32Array(1), true);
    expect(() => new AdamW([p], { beta1: 1 })).toThrow(/AdamW: beta1 must be in \[0, 1\), got 1/);
    expect(() => new AdamW([p], { eps: 0 })).toThrow(RangeError);
    expect(() => new AdamW([p], { weightDecay: -1 })).toThrow(/weightDecay/);
    expect(() => new AdamW([p]).step(NaN)).toThrow(/lr must be a finite number/);
    expect(() => new AdamW([p, makeParam("w", [2], new Float32Array(2), true)])).toThrow(/two params are named "w"/);
  });

  it("OPT-DETERMINISM: the same inputs give the same bytes", () => {
    const run = (): Buffer[] => {
      const opt = new AdamW(toyParams(7), HYPER);
      train(opt, new Lcg(99), { batch: 0 }, 12);
      const state = opt.exportState();
      return opt.params.flatMap((p) => [bytes(p.data), bytes(state.m.get(p.name)!), bytes(state.v.get(p.name)!)]);
    };
    expect(run()).toEqual(run());
  });
});

describe("clipGradNorm", () => {
  it("OPT-CLIP: global float64 norm; scales in place only above maxNorm; returns the pre-clip norm", () => {
    const a = makeParam("a", [1], new Float32Array(1), true);
    const b = makeParam("b", [1], new Float32Array(1), true);
    a.grad[0] = 3;
    b.grad[0] = 4;
    expect(gradNorm([a, b])).toBe(5);
    expect(clipGradNorm([a, b], 10)).toBe(5);
    expect([a.grad[0], b.grad[0]]).toEqual([3, 4]); // below maxNorm: untouched
    expect(clipGradNorm([a, b], 1)).toBe(5);
    expect([a.grad[0], b.grad[0]]).toEqual([Math.fround(0.6), Math.fround(0.8)]);
    expect(gradNorm([a, b])).toBeCloseTo(1, 6);
    // Squares that overflow float32 do not overflow the float64 sum.
    a.grad[0] = 3e20;
    b.grad[0] = 4e20;
    expect(gradNorm([a, b]) / 5e20).toBeCloseTo(1, 6);
    // A non-finite norm leaves the grads alone for the caller to skip the step.
    a.grad[0] = NaN;
    b.grad[0] = 2;
    expect(clipGradNorm([a, b], 1)).toBeNaN();
    expect(b.grad[0]).toBe(2);
    expect(() => clipGradNorm([a, b], 0)).toThrow(/maxNorm must be a finite number > 0, got 0/);
  });
});

describe("schedule", () => {
  it("OPT-SCHED: warmup from 0 to lr, then cosine to minLr exactly at totalSteps", () => {
    const cfg: ScheduleConfig = { lr: 3e-4, warmup: 10, totalSteps: 110, decay: "cosine", minLr: 1e-5 };
    expect(lrAt(0, cfg)).toBe(0);
    expect(lrAt(1, cfg)).toBeCloseTo(3e-5, 15);
    expect(lrAt(5, cfg)).toBeCloseTo(1.5e-4, 15);
    expect(lrAt(10, cfg)).toBe(3e-4);
    expect(lrAt(60, cfg)).toBeCloseTo((3e-4 + 1e-5) / 2, 15);
    expect(lrAt(110, cfg)).toBe(1e-5);
    expect(lrAt(500, cfg)).toBe(1e-5);
    let previous = Infinity;
    for (let s = 10; s <= 110; s++) {
      expect(lrAt(s, cfg)).toBeLessThanOrEqual(previous);
      previous = lrAt(s, cfg);
    }
    expect(lrAt(110, { ...cfg, minLr: undefined })).toBe(0);
  });

  it("OPT-SCHED: constant holds lr after warmup; no warmup starts at lr", () => {
    const cfg: ScheduleConfig = { lr: 0.01, warmup: 4, totalSteps: 50, decay: "constant" };
    expect(lrAt(2, cfg)).toBe(0.005);
    expect(lrAt(4, cfg)).toBe(0.01);
    expect(lrAt(50, cfg)).toBe(0.01);
    expect(lrAt(0, { ...cfg, warmup: 0 })).toBe(0.01);
    expect(lrAt(0, { ...cfg, warmup: 0, decay: "cosine" })).toBe(0.01);
    expect(lrAt(50, { ...cfg, warmup: 0, decay: "cosine" })).toBe(0);
  });

  it("OPT-SCHED: invalid configs and steps are RangeErrors that say what is wrong", () => {
    const cfg: ScheduleConfig = { lr: 0.01, warmup: 4, totalSteps: 50, decay: "cosine" };
    expect(() => lrAt(-1, cfg)).toThrow(/step must be an integer >= 0, got -1/);
    expect(() => lrAt(1.5, cfg)).toThrow(RangeError);
    expect(() => lrAt(1, { ...cfg, warmup: 60 })).toThrow(/warmup must be an integer in \[0, totalSteps = 50\], got 60/);
    expect(() => lrAt(1, { ...cfg, totalSteps: 0 })).toThrow(/totalSteps must be an integer >= 1/);
    expect(() => lrAt(1, { ...cfg, lr: -1 })).toThrow(/lr must be a finite number >= 0/);
    expect(() => lrAt(1, { ...cfg, minLr: 0.1 })).toThrow(/minLr must be a finite number in \[0, lr = 0.01\], got 0.1/);
    expect(() => lrAt(1, { ...cfg, decay: "linear" as "cosine" })).toThrow(/decay must be "constant" or "cosine", got "linear"/);
  });
});

describe("training checkpoints", () => {
  const extras = { rng: { state: 12345 }, dataCursor: { shard: 2, offset: 4096 }, config: { model: "toy", steps: 20 } };

  it("OPT-CKPT: one safetensors file, written atomically, round-trips params, moments, step and metadata", () => {
    const opt = new AdamW(toyParams(1), HYPER);
    train(opt, new Lcg(5), { batch: 0 }, 4);
    const path = join(tmp, "round-trip.safetensors");
    saveTrainCheckpoint(path, opt, extras);
    expect(existsSync(`${path}.tmp`)).toBe(false);
    expect(readdirSync(tmp).filter((f) => f.startsWith("round-trip"))).toEqual(["round-trip.safetensors"]);

    const file = readSafetensors(path);
    expect([...file.tensors.keys()].sort()).toEqual(opt.params.flatMap((p) => [`adam_m.${p.name}`, `adam_v.${p.name}`, `param.${p.name}`]).sort());
    expect(file.metadata.format).toBe(TRAIN_CHECKPOINT_FORMAT);

    const fresh = new AdamW(toyParams(2));
    const info = loadTrainCheckpoint(path, fresh);
    expect(info).toEqual({ version: 1, step: 4, optimizer: { lr: opt.lr, ...HYPER }, ...extras });
    expect(fresh.hyperparameters()).toEqual(opt.hyperparameters());
    expect(fresh.t).toBe(4);
    const a = opt.exportState(),
      b = fresh.exportState();
    opt.params.forEach((p, k) => {
      expect(bytes(fresh.params[k].data)).toEqual(bytes(p.data));
      expect(bytes(b.m.get(p.name)!)).toEqual(bytes(a.m.get(p.name)!));
      expect(bytes(b.v.get(p.name)!)).toEqual(bytes(a.v.get(p.name)!));
    });
    // Saving what was loaded gives the same bytes.
    saveTrainCheckpoint(join(tmp, "again.safetensors"), fresh, extras);
    expect(readFileSync(join(tmp, "again.safetensors"))).toEqual(readFileSync(path));
  });

  it("OPT-RESUME: N steps, save, load into fresh objects, M steps == N+M steps straight, byte for byte", () => {
    const N = 7,
      M = 9;
    const straight = new AdamW(toyParams(3), HYPER);
    const straightRng = new Lcg(42),
      straightCursor = { batch: 0 };
    train(straight, straightRng, straightCursor, N + M);

    const first = new AdamW(toyParams(3), HYPER);
    const rng = new Lcg(42),
      cursor = { batch: 0 };
    train(first, rng, cursor, N);
    const path = join(tmp, "resume.safetensors");
    saveTrainCheckpoint(path, first, { rng: { state: rng.state }, dataCursor: cursor, config: SCHED });

    // Fresh objects with other values and default hyperparameters: the checkpoint must restore all of it.
    const resumed = new AdamW(toyParams(1000));
    const info = loadTrainCheckpoint(path, resumed);
    const rng2 = new Lcg((info.rng as { state: number }).state);
    const cursor2 = { ...(info.dataCursor as { batch: number }) };
    expect(info.config).toEqual(SCHED);
    train(resumed, rng2, cursor2, M);

    expect(resumed.t).toBe(N + M);
    expect(rng2.state).toBe(straightRng.state);
    const out1 = join(tmp, "straight-end.safetensors"),
      out2 = join(tmp, "resumed-end.safetensors");
    saveTrainCheckpoint(out1, straight, { rng: { state: straightRng.state } });
    saveTrainCheckpoint(out2, resumed, { rng: { state: rng2.state } });
    expect(readFileSync(out2)).toEqual(readFileSync(out1));
    // And the run did move: the resumed params differ from the checkpointed ones.
    expect(bytes(resumed.params[0].data)).not.toEqual(bytes(first.params[0].data));
  });

  it("OPT-CKPT-ERRORS: missing tensor, wrong shape, wrong dtype, foreign tensor, wrong format tag, bad version, no file", () => {
    const opt = new AdamW(toyParams(1), HYPER);
    train(opt, new Lcg(5), { batch: 0 }, 2);
    const good = join(tmp, "good.safetensors");
    saveTrainCheckpoint(good, opt, extras);
    const { tensors, metadata } = readSafetensors(good);
    const variant = (name: string, edit: (t: Record<string, SafeTensor>, m: Record<string, string>) => void): string => {
      const t = Object.fromEntries(tensors),
        m = { ...metadata };
      edit(t, m);
      const path = join(tmp, name);
      writeSafetensors(path, t, m);
      return path;
    };
    const target = (): AdamW => new AdamW(toyParams(9), HYPER);

    const missing = variant("missing.safetensors", (t) => delete t["adam_v.norm"]);
    expectFileError(() => loadTrainCheckpoint(missing, target()), missing, "tensor adam_v.norm is missing");

    const wrongShape = new AdamW([makeParam("layers.0.wq.lora_A", [16, 64], new Float32Array(1024), true)]);
    const small = join(tmp, "small.safetensors");
    saveTrainCheckpoint(small, new AdamW([makeParam("layers.0.wq.lora_A", [8, 64], new Float32Array(512), true)]));
    expectFileError(() => loadTrainCheckpoint(small, wrongShape), small, "tensor param.layers.0.wq.lora_A has shape [8, 64], expected [16, 64]");

    const i32 = variant("i32.safetensors", (t) => {
      t["param.norm"] = { dtype: "I32", shape: [3], data: new Int32Array(3) };
    });
    expectFileError(() => loadTrainCheckpoint(i32, target()), i32, "tensor param.norm has dtype I32, expected F32");

    const foreign = variant("foreign.safetensors", (t) => {
      t["param.extra"] = { dtype: "F32", shape: [1], data: new Float32Array(1) };
    });
    expectFileError(() => loadTrainCheckpoint(foreign, target()), foreign, "tensor param.extra matches no param being trained");

    const tag = variant("tag.safetensors", (_t, m) => {
      m.format = "ptp-adapter";
    });
    expectFileError(() => loadTrainCheckpoint(tag, target()), tag, `metadata "format" is "ptp-adapter", expected "ptp-train-checkpoint"`);
    const untagged = variant("untagged.safetensors", (_t, m) => delete m.format);
    expectFileError(() => loadTrainCheckpoint(untagged, target()), untagged, `metadata "format" is missing`);

    const version = variant("version.safetensors", (_t, m) => {
      m.version = "2";
    });
    expectFileError(() => loadTrainCheckpoint(version, target()), version, "version 2 is not supported");

    const badOpt = variant("bad-opt.safetensors", (_t, m) => {
      m.optimizer = JSON.stringify({ ...JSON.parse(m.optimizer), beta2: 1.5 });
    });
    expectFileError(() => loadTrainCheckpoint(badOpt, target()), badOpt, `metadata "optimizer": AdamW: beta2 must be in [0, 1), got 1.5`);

    const nowhere = join(tmp, "nowhere.safetensors");
    expectFileError(() => loadTrainCheckpoint(nowhere, target()), nowhere, "file does not exist");

    // A failed load leaves the caller's params and optimizer untouched.
    const untouched = target();
    const before = untouched.params.map((p) => bytes(p.data.slice()));
    expect(() => loadTrainCheckpoint(missing, untouched)).toThrow(FileFormatError);
    expect(untouched.params.map((p) => bytes(p.data))).toEqual(before);
    expect(untouched.t).toBe(0);
  });
});

describe("progress", () => {
  /** A stream that records what is written, and a clock the test moves. */
  function fixture(isTTY: boolean) {
    const writes: string[] = [];
    let ms = 0;
    const clock = { advance: (s: number) => void (ms += 1000 * s) };
    const progress = (extra: Partial<ConstructorParameters<typeof Progress>[0]> = {}) => new Progress({ total: 200, unit: "tok", label: "eval", barWidth: 10, stream: { write: (s) => writes.push(s), isTTY }, now: () => ms, ...extra });
    return { writes, clock, progress };
  }

  it("OPT-PROGRESS: non-TTY prints a full line at most every interval and at the end", () => {
    const { writes, clock, progress } = fixture(false);
    const bar = progress();
    clock.advance(4);
    bar.update(40, { loss: 2.31456, "#correct": 1.8 });
    expect(writes).toEqual([]); // under 10 s: nothing yet
    clock.advance(6);
    bar.update(50, { loss: 2.31456, "#correct": 1.8 });
    expect(writes).toEqual(["eval [###-------] 50/200  25.0%  5.00 tok/s  ETA 30s  loss 2.315  #correct 1.8\n"]);
    clock.advance(1);
    bar.tick(10);
    expect(writes.length).toBe(1);
    clock.advance(9);
    bar.tick(140, { loss: "1.90" });
    bar.finish();
    bar.finish();
    bar.update(1);
    // finish() right after a print of the same line does not repeat it; later calls do nothing.
    expect(writes.slice(1)).toEqual(["eval [##########] 200/200  100.0%  10.0 tok/s  ETA 0s  loss 1.90\n"]);
  });

  it("OPT-PROGRESS: a TTY redraws one line with \\r, padding over longer text, and ends with a newline", () => {
    const { writes, clock, progress } = fixture(true);
    const bar = progress({ initial: 100 });
    clock.advance(0.05);
    bar.update(101);
    expect(writes).toEqual([]); // under the 0.1 s redraw interval
    clock.advance(1.95);
    bar.update(110, { step: 110, loss: 3.25 });
    clock.advance(2);
    bar.update(120);
    bar.finish({});
    const first = "eval [######----] 110/200  55.0%  5.00 tok/s  ETA 18s  step 110  loss 3.25";
    const second = "eval [######----] 120/200  60.0%  5.00 tok/s  ETA 16s  step 110  loss 3.25";
    const last = "eval [######----] 120/200  60.0%  5.00 tok/s  ETA 16s";
    expect(writes).toEqual([`\r${first}`, `\r${second}`, `\r${last.padEnd(second.length)}`, "\n"]);
  });

  it("OPT-PROGRESS: durations and unknown rates", () => {
    expect([formatDuration(0), formatDuration(59.4), formatDuration(61), formatDuration(3 * 3600 + 4 * 60 + 5)]).toEqual(["0s", "59s", "1m01s", "3h04m"]);
    const { writes, clock, progress } = fixture(false);
    progress().finish();
    expect(writes).toEqual(["eval [----------] 0/200  0.0%  ? tok/s  ETA ?\n"]);
    const early = progress();
    clock.advance(5);
    early.update(20);
    early.finish({ loss: 1.5 }); // stopped early: the end line shows where it stopped
    expect(writes.slice(1)).toEqual(["eval [#---------] 20/200  10.0%  4.00 tok/s  ETA 45s  loss 1.5\n"]);
    expect(() => progress({ total: -1 })).toThrow(RangeError);
  });
});
