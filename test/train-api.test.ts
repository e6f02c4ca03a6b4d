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
