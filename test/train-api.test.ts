import { expect, it } from "vitest";
import { createBackend, randomCheckpoint, randomStudent, Transformer } from "../src/index.js";
import { AdamW, autograd, constantWeights, studentLogits, teacherContext, trainableStudent, windowLoss, windowRows } from "../src/train/index.js";

it("TRAIN-API: the README's student step runs through the public API, and repeated steps lower the loss", async () => {
  const teacherCkpt = randomCheckpoint({ dim: 16, hiddenDim: 24, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 32, seqLen: 32, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 }, 3);
  const teacher = new Transformer(await createBackend("wasm"), teacherCkpt);
  const student = randomStudent(teacherCkpt, "x", { variant: "O", rank: 4, seed: 1, zeroB: true });
  const tokens = Array.from({ length: 20 }, (_, i) => (i * 7) % 32);
  const us = Float32Array.from({ length: 20 }, (_, i) => (i + 0.5) / 20);
  const st = trainableStudent(student, teacherCkpt.config);
  const { context: teacherKV } = teacherContext(teacher, tokens);
  const rows = windowRows("O", tokens, us, [5, 9], 8);
  const opt = new AdamW(st.params, { lr: 1e-2 });
  const losses: number[] = [];
  for (let i = 0; i < 20; i++) {
    for (const p of st.params) p.grad.fill(0);
    const tape = new autograd.Tape();
    const loss = windowLoss(tape, "O", studentLogits(tape, teacherCkpt.config, constantWeights(teacherCkpt), st, teacherKV, rows), rows, "ce", 0.7);
    tape.backward(loss);
    opt.step();
    losses.push(loss.data[0]);
  }
  expect(losses.at(-1)!).toBeLessThan(losses[0] * 0.8);
  teacher.dispose();
});

it("TRAIN-WINDOWS-MANY: windowRows takes very many windows (Math.max(...starts) overflowed the call stack at 200,000)", () => {
  const n = 200_001;
  const starts = Array.from({ length: n - 1 }, (_, i) => n - 1 - i);
  const rows = windowRows("O", new Int32Array(n), new Float32Array(n).fill(0.5), starts, 1);
  expect(rows.contextLength).toBe(n - 1);
  expect(windowRows("O", [1, 2, 3, 4], new Float32Array(4), [2, 1, 3], 2).contextLength).toBe(3);
});

it("TRAIN-WINDOWS-ARGS: windowRows refuses a variant, window length, u or token that is not one, and a us shorter than the tokens, naming it (a u of 1.5 trained in silence; a short us failed rows later as NaN)", () => {
  const tokens = [1, 5, 6, 7, 8],
    us = Float32Array.of(0.1, 0.2, 0.3, 0.4, 0.5);
  expect(windowRows("O", tokens, us, [1, 2], 3).positions.length).toBe(6);
  expect(() => windowRows("X" as never, tokens, us, [1], 3)).toThrow('windowRows: variant must be "O" or "C", got "X" (string)');
  for (const L of [0, -1, 1.5, Number.NaN]) expect(() => windowRows("O", tokens, us, [1], L), String(L)).toThrow(/^windowRows: L \(slots per window\) must be a positive integer/);
  expect(() => windowRows("O", tokens, us.subarray(0, 3), [1], 3)).toThrow("windowRows: us must be a Float32Array with a u for each of the 5 tokens, got 3 u's");
  expect(() => windowRows("O", tokens, [0.1, 0.2, 0.3, 0.4, 0.5] as never, [1], 3)).toThrow(/^windowRows: us must be a Float32Array/);
  for (const bad of [1.5, 1, -0.1, Number.NaN]) {
    const u = us.slice();
    u[3] = bad;
    expect(() => windowRows("O", tokens, u, [1], 3), String(bad)).toThrow(/^windowRows: us\[3\] must be a u in \[0, 1\)/);
  }
  expect(() => windowRows("O", [1, 5, -2, 7, 8], us, [1], 3)).toThrow(/^windowRows: tokens\[2\] must be a token id/);
});

it("TRAIN-CONTEXT-EMPTY: teacherContext of no tokens says so (it read as a KV cache of capacity 0)", async () => {
  const teacher = new Transformer(await createBackend("js"), randomCheckpoint({ dim: 8, hiddenDim: 16, nLayers: 1, nHeads: 2, nKvHeads: 2, vocabSize: 8, seqLen: 8, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 }, 1));
  expect(() => teacherContext(teacher, [])).toThrow("teacherContext: tokens is empty (a context needs at least one token, e.g. BOS)");
  expect(teacherContext(teacher, [1, 2]).context.length).toBe(2);
});
