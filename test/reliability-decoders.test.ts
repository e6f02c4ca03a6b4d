import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { writeCheckpoint } from "../src/io/checkpoint.js";
import { randomCheckpoint } from "../src/model/init.js";
import { writeStudent } from "../src/ptp/files/adapter-file.js";
import { randomStudent } from "../src/ptp/init.js";
import { decodeAR } from "../src/ptp/decode/decode-ar.js";
import { decode, type DecoderName } from "../src/ptp/decode/run.js";
import { firstNonFiniteWeight } from "../src/ptp/files/ptp-file-parts.js";
import { PtpModel } from "../src/ptp/ptp-model.js";
import type { Student } from "../src/ptp/student-weights.js";
import { teacherChecksum } from "../src/ptp/files/teacher-checksum.js";
import { ArrayAux, XorShiftAux } from "../src/sampling/aux.js";
import { JsBackend } from "../src/backends/js/index.js";
import { Transformer } from "../src/model/transformer.js";
import { backend, runCli, TOK_512 } from "./helpers.js";
import { caseArb, makeStudent, studentSpecArb, usFor, withTeacher } from "./ptp-helpers.js";

/** Every weight array of a student, in key order. */
function weightArrays(w: unknown, out: Float32Array[] = []): Float32Array[] {
  if (w instanceof Float32Array) out.push(w);
  else if (typeof w === "object" && w !== null) for (const v of Object.values(w)) weightArrays(v, out);
  return out;
}

/** Poisons some entries of one weight array with NaN, +Inf or -Inf. */
const poisonArb = fc.record({ array: fc.nat(), index: fc.nat(), count: fc.integer({ min: 1, max: 4 }), value: fc.constantFrom(NaN, Infinity, -Infinity) });
function poison(s: Student, p: { array: number; index: number; count: number; value: number }): void {
  const arrays = weightArrays(s.weights);
  const a = arrays[p.array % arrays.length];
  for (let i = 0; i < p.count; i++) a[(p.index + i * 7) % a.length] = p.value;
}

describe.each(["js", "wasm"] as const)("students with non-finite weights on %s", (name) => {
  it("REL-NONFINITE-STUDENT: whatever NaN/Inf a student's weights hold, every decoder's output still equals AR's, token for token", async () => {
    const b = await backend(name);
    fc.assert(
      fc.property(caseArb, studentSpecArb(), poisonArb, fc.constantFrom<DecoderName>("verify", "single-call", "multi-draft"), (c, spec, p, decoder) =>
        withTeacher(b, c.teacher, (teacher) => {
          const us = usFor(teacher, c);
          const ar = c.prompts.map((pr, i) => decodeAR(teacher, pr, { steps: c.steps, sampling: c.sampling, aux: new ArrayAux(us[i]) }).tokens);
          const student = makeStudent(c.teacher, spec);
          poison(student, p);
          expect(firstNonFiniteWeight(student.weights)).toBeDefined();
          const model = new PtpModel(teacher, student);
          try {
            const out = decode(model, c.prompts, { decoder, window: spec.window, budget: 6, budgetMode: "adaptive", drafts: 2, steps: c.steps, sampling: c.sampling, aux: us.map((u) => new ArrayAux(u)) });
            out.outputs.forEach((o, i) => expect(o, `prompt ${i}`).toEqual(ar[i]));
          } finally {
            model.dispose();
          }
        }),
      ),
      { numRuns: 60 },
    );
  });
});

describe("the CLI warns about a broken student", () => {
  it("REL-NONFINITE-WARN: `generate --student` with NaN weights warns naming the file, and still prints AR's text (equals AR: yes, exit 0)", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "ptp-nan-student-"));
    const teacherPath = join(tmp, "t.bin"),
      studentPath = join(tmp, "nan-student.safetensors");
    const config = { dim: 16, hiddenDim: 24, nLayers: 2, nHeads: 2, nKvHeads: 1, vocabSize: 512, seqLen: 64, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };
    const teacher = randomCheckpoint(config, 3);
    writeCheckpoint(teacherPath, teacher);
    for (const variant of ["O", "C"] as const) {
      const s = randomStudent(teacher, teacherChecksum(teacher), { variant, rank: 2, aux: { kind: "bits" }, window: 4, seed: 5 });
      s.weights.layers[0].w1!.B.fill(NaN);
      writeStudent(studentPath, s);
      for (const decoder of ["single-call", "verify", "multi-draft"]) {
        const r = await runCli("generate", "--model", teacherPath, "--tokenizer", TOK_512, "--student", studentPath, "--decoder", decoder, "--prompt", "Once upon a time", "--steps", "30", "--temperature", "0.8", "--seed", "7", "--backend", "js");
        expect(r.code, `${variant} ${decoder}: ${r.stderr}`).toBe(0);
        expect(r.stderr).toContain(`warning: student ${studentPath} holds non-finite weights`);
        expect(r.stderr).toMatch(/equals AR:\s+yes/);
      }
    }
    // export-peft writes such a student as it is, and says so too.
    const e = await runCli("export-peft", studentPath, "--out", join(tmp, "nan-peft"));
    expect(e.code, e.stderr).toBe(0);
    expect(e.stderr).toContain(`warning: student ${studentPath} holds non-finite weights`);
  });
});

describe("batch scaling", () => {
  it("REL-BATCH-LINEAR: in a batch, a single-call row's attention visits only its own sequence's keys, so the work per token does not grow with the batch (and outputs equal decoding alone)", async () => {
    const js = new JsBackend();
    let pairs = 0;
    // Counts the (row, key) pairs attention visits: the whole dense mask, or the listed keys of a sparse one.
    const counting = new Proxy(js, {
      get(target, key) {
        const value = Reflect.get(target, key, target);
        if (typeof value !== "function") return value;
        if (key === "attention") {
          return (...a: Parameters<JsBackend["attention"]>) => {
            const [, , , , mask, M, nKeys] = a;
            pairs += mask ? M * nKeys : M * (nKeys - M) + (M * (M + 1)) / 2;
            return value.apply(target, a);
          };
        }
        if (key === "attentionSparse") {
          return (...a: Parameters<NonNullable<JsBackend["attentionSparse"]>>) => {
            pairs += target.download(a[4], a[5], 1)[0];
            return value.apply(target, a);
          };
        }
        return value.bind(target);
      },
    }) as JsBackend;
    const ckpt = randomCheckpoint({ dim: 16, hiddenDim: 24, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 64, seqLen: 64, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 }, 7);
    const model = new PtpModel(new Transformer(counting, ckpt), makeStudent(ckpt, { variant: "O", rank: 2, aux: "bits", window: 4, seed: 3, hybrid: false }));
    const prompts = Array.from({ length: 16 }, (_, i) => [1, 2 + i, 3 + (i % 5)]);
    const options = { decoder: "single-call" as const, steps: 48, sampling: { temperature: 1, topK: 0, topP: 1 }, stopAtBos: false };
    const run = (ps: number[][], first: number) => {
      pairs = 0;
      const out = decode(model, ps, { ...options, aux: ps.map((_, i) => new XorShiftAux(BigInt(first + i + 1))) }).outputs;
      return { out, perToken: pairs / out.reduce((n, o) => n + o.length, 0) };
    };
    const alone = prompts.map((p, i) => run([p], i));
    const together = run(prompts, 0);
    expect(together.out).toEqual(alone.map((a) => a.out[0]));
    const single = alone.reduce((n, a) => n + a.perToken, 0) / alone.length;
    // Dense masks over the shared cache: about 16 times the single-sequence work.
    expect(together.perToken / single).toBeLessThan(1.5);
    model.dispose();
  });
});
