import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { createBackend } from "../src/backends/registry.js";
import { readCheckpoint } from "../src/io/checkpoint.js";
import { Transformer } from "../src/model/transformer.js";
import type { Decoder } from "../src/ptp/decode/decoder.js";
import { decode, decodeWith, makeDecoder } from "../src/ptp/decode/run.js";
import { readStudent } from "../src/ptp/files/adapter-file.js";
import { PtpModel } from "../src/ptp/ptp-model.js";
import { XorShiftAux } from "../src/sampling/aux.js";
import { ROOT, STORIES_260K } from "./helpers.js";

describe("single-call with runner-up rows", () => {
  it("PTP-RUNNER-UP: with the shipped stories260K student, calls whose correction was a draft's runner-up finalize the token after it too; every output equals AR's, with fewer calls than without runner-ups, and fewer still with three runner-ups per draft, whose later ranks match too", async () => {
    const backend = await createBackend("wasm", { threads: 1 });
    const teacher = new Transformer(backend, readCheckpoint(STORIES_260K));
    const model = new PtpModel(teacher, readStudent(resolve(ROOT, "demo/stories260K-student.safetensors")));
    try {
      const prompts = [
        [1, 403, 261],
        [1, 88, 45, 300, 11],
        [1, 306, 92],
      ];
      const options = (runnerUps: boolean | number) => ({ decoder: "single-call" as const, steps: 96, sampling: { temperature: 0.7 }, aux: prompts.map((_, i) => new XorShiftAux(BigInt(7 + i))), runnerUps });
      const ar = decode(model, prompts, { ...options(false), decoder: "ar" });
      const plain = decode(model, prompts, options(false));
      // A spy on the decoder's state: how many corrections had a runner-up row, and how many it matched.
      let tried = 0,
        hit = 0,
        mostPending = 0;
      const inner = makeDecoder(model, options(true)) as Decoder<{ runnerUpTried: number[]; runnerUpHit: number[] }>;
      const sum = (xs: number[]) => xs.reduce((a, x) => a + x, 0);
      const spy: Decoder = {
        ...inner,
        plan(seq) {
          // After the prompt's call, one pending token per call: a hit's runner-up row stays in the cache, so the corrected token is not run again.
          if (seq.cached > 0) mostPending = Math.max(mostPending, seq.pending.length);
          return inner.plan(seq);
        },
        accept(seq, group, out) {
          const s = inner.state!(seq);
          const [t0, h0] = [sum(s.runnerUpTried), sum(s.runnerUpHit)];
          const kept = inner.accept(seq, group, out);
          tried += sum(s.runnerUpTried) - t0;
          hit += sum(s.runnerUpHit) - h0;
          return kept;
        },
      };
      const withRunnerUps = decodeWith(model, prompts, spy, options(true));
      expect(withRunnerUps.outputs).toEqual(ar.outputs);
      expect(plain.outputs).toEqual(ar.outputs);
      expect(tried).toBeGreaterThan(20);
      expect(hit).toBeGreaterThan(0);
      expect(mostPending).toBe(1);
      // Each hit finalizes one token more in its call.
      expect(withRunnerUps.stats.modelCalls).toBeLessThan(plain.stats.modelCalls);
      // Verify with runner-up rows in its teacher calls: the same text, fewer calls.
      const verify = (runnerUps: boolean | number) => decode(model, prompts, { ...options(runnerUps), decoder: "verify" });
      const [v0, v1, v3] = [verify(false), verify(true), verify(3)];
      expect(v0.outputs).toEqual(ar.outputs);
      expect(v1.outputs).toEqual(ar.outputs);
      expect(v3.outputs).toEqual(ar.outputs);
      expect(v1.stats.modelCalls).toBeLessThan(v0.stats.modelCalls);
      expect(v3.stats.modelCalls).toBeLessThan(v1.stats.modelCalls);
      // Three runner-ups per draft in single-call: later ranks match too, and they are taken (the same text).
      const ranked = makeDecoder(model, { ...options(3), budget: 32 }) as Decoder<{ runnerUpHit: number[] }>;
      const hits: number[] = [];
      const rankSpy: Decoder = {
        ...ranked,
        accept(seq, group, out) {
          const kept = ranked.accept(seq, group, out);
          ranked.state!(seq).runnerUpHit.forEach((h, c) => (hits[c] = Math.max(hits[c] ?? 0, h)));
          return kept;
        },
      };
      expect(decodeWith(model, prompts, rankSpy, { ...options(3), budget: 32 }).outputs).toEqual(ar.outputs);
      expect(hits[1] ?? 0).toBeGreaterThan(0);
    } finally {
      model.dispose();
    }
  });
});
