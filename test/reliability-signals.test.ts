import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readSafetensors } from "../src/io/safetensors.js";
import { runChild } from "./child.js";
import { pregenFixture, runCli, STORIES_260K, TOK_512 } from "./helpers.js";
import { lastFlagWins } from "./flag-args.js";

/** The run ended with `code`; its stderr is shown when it did not (a failure under load says why). */
function expectExit(r: { code: number | null; stderr: string }, code: number): void {
  expect(r.code, r.stderr).toBe(code);
}

// Real signals to real child processes (bin/ptp.js runs the built dist/, as `npm test` builds first).
const { tmp, TEACHER, DATA, pregenArgs } = pregenFixture("ptp-signals-");

async function dataset(): Promise<void> {
  if (existsSync(DATA)) return;
  const r = await runCli(...pregenArgs(DATA));
  expect(r.code, r.stderr).toBe(0);
}

// Steps far beyond what a test runs: a run can only end by a signal or --stop-after.
const distillArgs = (out: string, ...extra: string[]) => lastFlagWins(["distill", "--model", TEACHER, "--dataset", DATA, "--out", out, "--rank", "4", "--window", "4", "--windows", "4", "--batch", "2", "--steps", "1000000", "--warmup", "2", "--eval-every", "0", "--backend", "wasm", ...extra]);

const bytes = (path: string) => readFileSync(path);
const stepOf = (checkpoint: string) => Number(readSafetensors(checkpoint).metadata.step);

/** The training checkpoints of two runs hold the same tensors, bit for bit (metadata records wall-clock time). */
function sameTensors(a: string, b: string): void {
  const x = readSafetensors(a).tensors,
    y = readSafetensors(b).tensors;
  expect([...x.keys()]).toEqual([...y.keys()]);
  for (const [k, t] of x) expect(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).equals(Buffer.from(y.get(k)!.data.buffer, y.get(k)!.data.byteOffset, y.get(k)!.data.byteLength)), k).toBe(true);
}

describe("signals stop training runs, which resume exactly", () => {
  it.each([
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const)("REL-SIGNAL-DISTILL: %s to a running `ptp distill` saves a checkpoint and exits %i; --resume then matches an uninterrupted run bit for bit", async (signal, code) => {
    await dataset();
    const out = join(tmp, `sig-${signal}.safetensors`),
      ref = join(tmp, `ref-${signal}.safetensors`);
    const r = await runChild(["bin/ptp.js", ...distillArgs(out)], { when: /Ctrl-C saves/, signals: [signal], delayMs: 300 });
    expect(r.signal, r.stderr).toBeNull();
    expect(r.code, r.stderr).toBe(code);
    expect(r.stderr).toMatch(new RegExp(`${signal} received; interrupted at step \\d+; checkpoint saved`));
    const k = stepOf(`${out}.train.safetensors`);
    // The reference: the same run, never interrupted, to step k + 2; the interrupted one resumed for 2 more steps.
    expectExit(await runCli(...distillArgs(ref, "--stop-after", String(k + 2))), 130);
    const resumed = await runCli(...distillArgs(out, "--resume", "--stop-after", "2"));
    expect(resumed.code, resumed.stderr).toBe(130);
    expect(resumed.stderr).toMatch(new RegExp(`resumed from .* at step ${k} `));
    expect(stepOf(`${out}.train.safetensors`)).toBe(k + 2);
    expect(bytes(out).equals(bytes(ref))).toBe(true);
    sameTensors(`${out}.train.safetensors`, `${ref}.train.safetensors`);
  });

  it("REL-SIGNAL-LONG-STEP: a signal during a `ptp distill` step of many windows abandons the step at once (its sequences run on worker threads; the main thread only waits): the state before it is saved, exit 130", async () => {
    await dataset();
    const out = join(tmp, "long-step.safetensors");
    // One step of 16 sequences x 4096 windows takes tens of seconds; the signal comes as it starts.
    const r = await runChild(["bin/ptp.js", ...distillArgs(out, "--windows", "4096", "--batch", "16", "--threads", "2")], { when: /Ctrl-C saves/, signals: ["SIGINT"], delayMs: 300 });
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toMatch(/SIGINT received; interrupted at step 0; checkpoint saved/);
    expect(stepOf(`${out}.train.safetensors`)).toBe(0);
  });

  it("REL-SIGNAL-TRAIN: SIGTERM to a running `ptp train` saves a checkpoint and exits 143; --resume then matches an uninterrupted run", async () => {
    const corpus = join(tmp, "corpus.txt");
    writeFileSync(corpus, Array.from({ length: 40 }, (_, i) => `the cat ${i % 3 === 0 ? "sat" : "ran"} on the mat and the dog ${i % 2 ? "slept" : "barked"}.`).join("\n") + "\n");
    const args = (out: string, ...extra: string[]) => ["train", "--corpus", corpus, "--char-vocab", join(tmp, `${out}.tok`), "--out", join(tmp, out), "--dim", "16", "--layers", "1", "--heads", "2", "--hidden", "32", "--seq-len", "16", "--batch", "2", "--steps", "1000000", "--eval-every", "0", ...extra];
    const r = await runChild(["bin/ptp.js", ...args("t-sig.bin")], { when: /Ctrl-C saves/, signals: ["SIGTERM"], delayMs: 300 });
    expect(r.code, r.stderr).toBe(143);
    const k = stepOf(join(tmp, "t-sig.bin.train.safetensors"));
    expectExit(await runCli(...args("t-ref.bin", "--stop-after", String(k + 2))), 130);
    expectExit(await runCli(...args("t-sig.bin", "--resume", "--stop-after", "2")), 130);
    expect(bytes(join(tmp, "t-sig.bin")).equals(bytes(join(tmp, "t-ref.bin")))).toBe(true);
  });

  it("REL-SIGNAL-TRAIN-STARTUP: SIGINT to `ptp train` after it wrote --char-vocab but before its loop runs (the corpus still being encoded) exits 130 saying so and removes that vocab, so --resume starts the run", async () => {
    // Long enough that encoding it takes a second or more after the vocab is written.
    const corpus = join(tmp, "big-corpus.txt");
    const line = (i: number) => `the cat number ${i} ${i % 3 === 0 ? "sat" : "ran"} on the mat while the dog ${i % 2 ? "slept" : "barked"} at the moon.`;
    writeFileSync(corpus, Array.from({ length: 200_000 }, (_, i) => line(i)).join("\n") + "\n");
    const vocab = join(tmp, "startup.tok");
    const args = ["train", "--corpus", corpus, "--char-vocab", vocab, "--out", join(tmp, "startup.bin"), "--dim", "16", "--layers", "1", "--heads", "2", "--hidden", "32", "--seq-len", "16", "--batch", "2", "--steps", "1000000", "--eval-every", "0"];
    const r = await runChild(["bin/ptp.js", ...args], { when: /wrote a character tokenizer/, signals: ["SIGINT"], delayMs: 0 });
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toContain("ptp: SIGINT received; stopped");
    expect(r.stderr).toContain(`train: removed ${vocab}, which this interrupted run had written`);
    expect(existsSync(vocab)).toBe(false);
    expectExit(await runCli(...args, "--resume", "--stop-after", "1"), 130);
    expect(stepOf(join(tmp, "startup.bin.train.safetensors"))).toBe(1);
  });

  it("REL-SIGNAL-TRAIN-LONG-STEP: `ptp train` runs a step's windows on worker threads while the main thread awaits them: a signal during a long step abandons it at once, the state before it saved; a run of such steps stopped and resumed matches an uninterrupted one", async () => {
    const corpus = join(tmp, "corpus-long.txt");
    writeFileSync(corpus, Array.from({ length: 400 }, (_, i) => `the cat ${i % 3 === 0 ? "sat" : "ran"} on the mat and the dog ${i % 2 ? "slept" : "barked"}.`).join("\n") + "\n");
    const args = (out: string, batch: string, ...extra: string[]) => [
      "train",
      "--corpus",
      corpus,
      "--char-vocab",
      join(tmp, `${out}.tok`),
      "--out",
      join(tmp, out),
      "--dim",
      "16",
      "--layers",
      "1",
      "--heads",
      "2",
      "--hidden",
      "32",
      "--seq-len",
      "128",
      "--batch",
      batch,
      "--steps",
      "1000000",
      "--eval-every",
      "0",
      ...extra,
    ];
    // 2048 windows of 128 tokens: seconds a step.
    const r = await runChild(["bin/ptp.js", ...args("t-long.bin", "2048")], { when: /Ctrl-C saves/, signals: ["SIGINT"], delayMs: 300 });
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toMatch(/SIGINT received; interrupted at step 0; checkpoint saved/);
    expect(stepOf(join(tmp, "t-long.bin.train.safetensors"))).toBe(0);
    // 256 windows a step. Stopped after one step and resumed for one (on another thread count), as two steps in one run.
    expectExit(await runCli(...args("t-parts-ref.bin", "256", "--stop-after", "2")), 130);
    expectExit(await runCli(...args("t-parts.bin", "256", "--stop-after", "1")), 130);
    expectExit(await runCli(...args("t-parts.bin", "256", "--resume", "--stop-after", "1", "--threads", "1")), 130);
    expect(bytes(join(tmp, "t-parts.bin")).equals(bytes(join(tmp, "t-parts-ref.bin")))).toBe(true);
    sameTensors(join(tmp, "t-parts.bin.train.safetensors"), join(tmp, "t-parts-ref.bin.train.safetensors"));
  });

  it("REL-SIGNAL-EVAL-DISTILL: SIGINT during a `ptp distill` evaluation stops it within a prompt, its progress shown and no figures printed; --resume evaluates that step first and matches an uninterrupted run bit for bit", async () => {
    await dataset();
    const prompts = join(tmp, "eval-prompts.txt");
    writeFileSync(prompts, Array.from({ length: 150 }, (_, i) => `Once upon a time ${i}`).join("\n") + "\n");
    const args = (out: string, ...extra: string[]) => distillArgs(out, "--tokenizer", TOK_512, "--eval-prompts", prompts, "--eval-count", "150", "--eval-steps", "40", "--eval-every", "2", ...extra);
    const out = join(tmp, "sig-eval.safetensors"),
      ref = join(tmp, "ref-eval.safetensors");
    // The signal comes during the evaluation of the starting point (150 prompts), which follows the Ctrl-C line.
    const r = await runChild(["bin/ptp.js", ...args(out)], { when: /Ctrl-C saves/, signals: ["SIGINT"] });
    expect(r.code, r.stderr).toBe(130);
    const done = Number(/distill eval \[[#-]+\] (\d+)\/150/.exec(r.stderr)?.[1]);
    expect(done).toBeLessThan(150);
    expect(r.stderr).not.toMatch(/step 0 {2}accepted/);
    expect(r.stderr).toMatch(/SIGINT received; interrupted at step 0 during its evaluation .*; checkpoint saved/);
    expect(existsSync(`${out}.log.jsonl`) ? readFileSync(`${out}.log.jsonl`, "utf8") : "").toBe("");
    const resumed = await runCli(...args(out, "--resume", "--stop-after", "2"));
    expect(resumed.code, resumed.stderr).toBe(130);
    expect(resumed.stderr).toMatch(/step 0 {2}accepted/);
    expectExit(await runCli(...args(ref, "--stop-after", "2")), 130);
    expect(bytes(out).equals(bytes(ref))).toBe(true);
    sameTensors(`${out}.train.safetensors`, `${ref}.train.safetensors`);
    const evals = (path: string) =>
      readFileSync(`${path}.log.jsonl`, "utf8")
        .trim()
        .split("\n")
        .map((l) => {
          const { step, accepted } = JSON.parse(l);
          return { step, accepted };
        });
    expect(evals(out)).toEqual(evals(ref));
    expect(evals(out).map((e) => e.step)).toEqual([0, 2]);
  });

  it("REL-KILL9-DISTILL: after kill -9 at a random moment, --resume continues from the last checkpoint and matches an uninterrupted run", async () => {
    await dataset();
    for (const delayMs of [150, 450]) {
      const out = join(tmp, `k9-${delayMs}.safetensors`),
        ref = join(tmp, `k9ref-${delayMs}.safetensors`);
      const r = await runChild(["bin/ptp.js", ...distillArgs(out, "--eval-every", "5")], { when: /Ctrl-C saves/, signals: ["SIGKILL"], delayMs });
      expect(r.signal).toBe("SIGKILL");
      const k = existsSync(`${out}.train.safetensors`) ? stepOf(`${out}.train.safetensors`) : 0;
      expect(k % 5).toBe(0);
      expectExit(await runCli(...distillArgs(ref, "--eval-every", "5", "--stop-after", String(k + 3))), 130);
      const resumed = await runCli(...distillArgs(out, "--eval-every", "5", "--resume", "--stop-after", "3"));
      expect(resumed.code, resumed.stderr).toBe(130);
      expect(bytes(out).equals(bytes(ref))).toBe(true);
      sameTensors(`${out}.train.safetensors`, `${ref}.train.safetensors`);
    }
  });

  it("REL-KILL-BETWEEN-WRITES: a kill after the checkpoint but before its log line and output (or before the output only) leaves a run --resume completes exactly", async () => {
    await dataset();
    const ref = join(tmp, "kb-ref.safetensors");
    expectExit(await runCli(...distillArgs(ref, "--eval-every", "3", "--stop-after", "6")), 130);
    for (const cut of ["log and output", "output"]) {
      const out = join(tmp, `kb-${cut.length}.safetensors`);
      expectExit(await runCli(...distillArgs(out, "--eval-every", "3", "--stop-after", "3")), 130);
      // What a kill between the writes at step 3 leaves: the step-3 checkpoint, the log without its line, no output.
      const log = readFileSync(`${out}.log.jsonl`, "utf8").trim().split("\n");
      expect(JSON.parse(log.at(-1)!).step).toBe(3);
      if (cut === "log and output")
        writeFileSync(
          `${out}.log.jsonl`,
          log
            .slice(0, -1)
            .map((l) => l + "\n")
            .join(""),
        );
      rmSync(out);
      const resumed = await runCli(...distillArgs(out, "--eval-every", "3", "--resume", "--stop-after", "3"));
      expect(resumed.code, resumed.stderr).toBe(130);
      expect(bytes(out).equals(bytes(ref))).toBe(true);
      sameTensors(`${out}.train.safetensors`, `${ref}.train.safetensors`);
      const steps = (p: string) =>
        readFileSync(`${p}.log.jsonl`, "utf8")
          .trim()
          .split("\n")
          .map((l) => JSON.parse(l).step);
      expect(steps(out)).toEqual(steps(ref));
      expect(steps(out)).toEqual([3, 6]);
    }
  });

  it("REL-SIGNAL-PREGENERATE: SIGINT (SIGTERM) to `ptp pregenerate` exits 130 (143) with the records so far synced; --resume ends byte-identical to an uninterrupted run", async () => {
    await dataset();
    const out = join(tmp, "pg-sig.ptpd"),
      ref = join(tmp, "pg-ref.ptpd");
    const big = (o: string, ...extra: string[]) => pregenArgs(o, "--samples", "40", "--backend", "js", ...extra);
    expectExit(await runCli(...big(ref)), 0);
    const r = await runChild(["bin/ptp.js", ...big(out)], { when: /records/, signals: ["SIGINT"] });
    expect(r.code, r.stderr).toBe(130);
    // SIGTERM: the same stop, with the shell's code for it (143).
    const t = await runChild(["bin/ptp.js", ...big(out, "--resume")], { when: /records/, signals: ["SIGTERM"] });
    expect(t.code, t.stderr).toBe(143);
    const resumed = await runCli(...big(out, "--resume"));
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(bytes(out).equals(bytes(ref))).toBe(true);
    // kill -9 mid-run: the torn last record is truncated on --resume, and the file still ends byte-identical.
    const killed = join(tmp, "pg-kill9.ptpd");
    const k = await runChild(["bin/ptp.js", ...big(killed)], { when: /records/, signals: ["SIGKILL"], delayMs: 20 });
    expect(k.signal).toBe("SIGKILL");
    const again = await runCli(...big(killed, "--resume"));
    expect(again.code, again.stderr).toBe(0);
    expect(bytes(killed).equals(bytes(ref))).toBe(true);
  });

  it("REL-SIGNAL-SYNTH: Ctrl-C while `ptp synth` generates a million stories stops it within a story, saying so (exit 130), leaving no file (whole, partial or temporary)", async () => {
    const dir = mkdtempSync(join(tmp, "synth-"));
    const r = await runChild(["bin/ptp.js", "synth", "--out", join(dir, "c.txt"), "--stories", "1000000", "--tokenizer-out", join(dir, "t.bin"), "--prompts-out", join(dir, "p.txt")], { when: /synth: generating/, signals: ["SIGINT"] });
    expectExit(r, 130);
    expect(r.stderr).toMatch(/\nsynth: interrupted \(SIGINT\); nothing was written\n$/);
    expect(r.stderr).not.toMatch(/1000000\/1000000/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it("REL-SIGNAL-HOLD: a signal during the work of holdSignals (synth's final write of its files together) is acted on once the work is done, never halfway", async () => {
    const r = await runChild(["test/fixtures/hold-child.ts"], { when: /working/, signals: ["SIGINT", "SIGTERM"], gapMs: 20 });
    expect(r.signal, r.stderr).toBeNull();
    expect(r.stderr).toBe("working\ndone\nheld SIGINT\n");
  });

  it.each([
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const)("REL-SIGNAL-PREPARE: %s during the synchronous preparation of withSignalsCaught (`ptp convert`, `export-peft`, `synth` before their writes) is seen once the part in progress ends: one line says so, exit %i, nothing written", async (signal, code) => {
    const dir = mkdtempSync(join(tmp, "prepare-"));
    const r = await runChild(["test/fixtures/prepare-child.ts", join(dir, "out.txt")], { when: /working/, signals: [signal] });
    expectExit(r, code);
    expect(r.stderr).toBe(`working\nchild: interrupted (${signal}); nothing was written\n`);
    expect(readdirSync(dir)).toEqual([]);
  });

  it("REL-SIGNAL-GENERATE: Ctrl-C stops `ptp generate --prompts` between model calls: exit 130, one line naming the prompts printed, which are exactly the first lines of an uninterrupted run", async () => {
    const prompts = join(tmp, "long-batch.txt");
    const lines = Array.from({ length: 400 }, (_, i) => `Once ${i}`);
    writeFileSync(prompts, lines.join("\n") + "\n");
    const args = (file: string) => ["generate", "--model", TEACHER, "--tokenizer", TOK_512, "--prompts", file, "--steps", "60", "--seed", "1", "--no-stop", "--backend", "js"];
    const r = await runChild(["bin/ptp.js", ...args(prompts)], { when: /prompts decoded/, signals: ["SIGINT"] });
    expectExit(r, 130);
    const done = Number(/\nptp generate: interrupted \(SIGINT\) after (\d+) of 400 prompts\n$/.exec(r.stderr)?.[1]);
    expect(done, r.stderr).toBeGreaterThanOrEqual(16);
    expect(done).toBeLessThan(400);
    expect(r.stderr).not.toMatch(/400\/400 prompts decoded|tokens\/s/);
    // Prompt i uses seed + i and batches decode alike: the first `done` prompts alone print the same lines.
    const first = join(tmp, "long-batch-first.txt");
    writeFileSync(first, lines.slice(0, done).join("\n") + "\n");
    const ref = await runCli(...args(first));
    expectExit(ref, 0);
    expect(r.stdout).toBe(ref.stdout);
  });

  it.each([
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const)("REL-SIGNAL-GENERATE-AR: %s stops a streaming `ptp generate` between model calls: the line is ended, one line says how many tokens were printed, exit %i; the text is exactly an uninterrupted run's first tokens", async (signal, code) => {
    const args = (steps: number) => ["generate", "--model", STORIES_260K, "--tokenizer", TOK_512, "--steps", String(steps), "--seed", "7", "--no-stop", "--backend", "js"];
    const r = await runChild(["bin/ptp.js", ...args(0)], { whenStdout: /\S/, signals: [signal], delayMs: 30 });
    expectExit(r, code);
    const n = Number(new RegExp(`^ptp generate: interrupted \\(${signal}\\) after (\\d+) tokens?\\n$`).exec(r.stderr)?.[1]);
    expect(n, r.stderr).toBeGreaterThan(0);
    expect(n).toBeLessThan(511);
    expect(r.stdout.endsWith("\n")).toBe(true);
    // The prompt is BOS alone (position 0): --steps n runs positions 0 .. n - 1, so n tokens, exactly those printed.
    const ref = await runCli(...args(n));
    expectExit(ref, 0);
    expect(r.stdout).toBe(ref.stdout);
  });
});

describe("ptp demo stops on a signal", () => {
  it("REL-SIGNAL-DEMO: Ctrl-C during the demo's decodes stops it between model calls (exit 130, one line naming the prompts printed, no summary), and during --scale between two decodes (no partial table)", async () => {
    const demo = ["bin/ptp.js", "demo", "--model", STORIES_260K, "--tokenizer", TOK_512, "--no-color"];
    const r = await runChild([...demo, "--steps", "0"], { whenStdout: /\[1\] /, signals: ["SIGINT"] });
    expectExit(r, 130);
    const n = Number(/^ptp demo: interrupted \(SIGINT\) after (\d) of 4 prompts\n$/m.exec(r.stderr)?.[1]);
    expect(n, r.stderr).toBeLessThan(4);
    // What was printed is whole prompts, each checked against AR.
    expect(r.stdout.match(/equals AR: yes\n/g)?.length ?? 0).toBe(n);
    expect(r.stdout).not.toMatch(/overall:/);

    const scaled = await runChild([...demo, "--scale", "--scale-shapes", "15M"], { when: /--scale 15M: widening/, signals: ["SIGTERM"] });
    expectExit(scaled, 143);
    expect(scaled.stderr).toMatch(/\nptp demo: interrupted \(SIGTERM\) after all 4 prompts, during --scale \(its table is printed only whole\)\n$/);
    expect(scaled.stdout).toMatch(/overall: 4 prompts/);
    expect(scaled.stdout).not.toMatch(/\| shape \|/);
  });
});

describe("the loop's signal handling (a library run in a child process)", () => {
  const child = (mode: string) => {
    const dir = mkdtempSync(join(tmp, `loop-${mode}-`));
    return { dir, args: ["test/fixtures/loop-child.ts", dir, mode] };
  };

  it("REL-SIGNAL-ONE: one SIGINT during a long step: the step finishes, a checkpoint is saved, exit 130", async () => {
    const { dir, args } = child("sleep");
    const r = await runChild(args, { when: /step 1\n/, signals: ["SIGINT"] });
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toMatch(/SIGINT received; interrupted at step 2; checkpoint saved/);
    expect(stepOf(join(dir, "ckpt.safetensors"))).toBe(2);
  });

  it("REL-SIGNAL-TWICE: a second Ctrl-C exits 130 at once, without waiting to save, saying so and what the last checkpoint is", async () => {
    const { dir, args } = child("sleep");
    const r = await runChild(args, { when: /step 1\n/, signals: ["SIGINT", "SIGINT"], gapMs: 20 });
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).not.toMatch(/checkpoint saved/);
    expect(r.stderr).toMatch(/child: second SIGINT; exiting at once, without saving \(this run has written no checkpoint yet\)\n$/);
    expect(existsSync(join(dir, "ckpt.safetensors"))).toBe(false);
    // A resumed run names the checkpoint it continues (a second run, stopped by one Ctrl-C, wrote it).
    const saved = child("sleep");
    expect((await runChild(saved.args, { when: /step 1\n/, signals: ["SIGINT"] })).code).toBe(130);
    const k = stepOf(join(saved.dir, "ckpt.safetensors"));
    const again = await runChild([...saved.args, "resume"], { when: new RegExp(`step ${k + 1}\n`), signals: ["SIGINT", "SIGINT"], gapMs: 20 });
    expect(again.code, again.stderr).toBe(130);
    expect(again.stderr).toContain(`child: second SIGINT; exiting at once, without saving (the last checkpoint is ${join(saved.dir, "ckpt.safetensors")}, at step ${k})`);
    expect(stepOf(join(saved.dir, "ckpt.safetensors"))).toBe(k);
  });

  it("REL-SIGNAL-EVAL: a SIGINT during an evaluation abandons it within the part in progress, with its progress shown and no figures; the state of its step is saved, and --resume evaluates that step first and matches an uninterrupted run", async () => {
    const { dir, args } = child("eval");
    // The evaluation after step 2 (steps 0 and 1 have run): the signal comes during its first part.
    const r = await runChild(args, { when: /step 1\neval 0\n/, signals: ["SIGINT"] });
    expect(r.code, r.stderr).toBe(130);
    const after = r.stderr.slice(r.stderr.indexOf("step 1\neval 0\n"));
    expect(after).not.toContain("eval 1\n");
    expect(after).toMatch(/child eval \[#+-+\] 1\/3 /);
    expect(after).not.toMatch(/child: step 2 /);
    expect(after).toMatch(/SIGINT received; interrupted at step 2 during its evaluation .*; checkpoint saved/);
    expect(stepOf(join(dir, "ckpt.safetensors"))).toBe(2);
    // Resumed for 3 steps (to step 5), it ends as a run never interrupted: params, moments, and the evaluations logged.
    const resumed = await runChild([...args, "resume", "stop-after=3"]);
    expect(resumed.code, resumed.stderr).toBe(130);
    expect(resumed.stderr).toMatch(/resumed from .* at step 2 [\s\S]*child: step 2 {2}w /);
    const ref = child("eval");
    expect((await runChild([...ref.args, "stop-after=5"])).code).toBe(130);
    expect(readFileSync(join(dir, "out.txt"), "utf8")).toBe(readFileSync(join(ref.dir, "out.txt"), "utf8"));
    sameTensors(join(dir, "ckpt.safetensors"), join(ref.dir, "ckpt.safetensors"));
    const evals = (d: string) =>
      readFileSync(join(d, "log.jsonl"), "utf8")
        .trim()
        .split("\n")
        .map((l) => {
          const { step, w } = JSON.parse(l);
          return { step, w };
        });
    expect(evals(dir).map((e) => e.step)).toEqual([0, 2, 4]);
    expect(evals(dir)).toEqual(evals(ref.dir));
  });

  it("REL-SIGNAL-ASYNC: a signal during an asynchronous step that never ends abandons it and saves the state before it", async () => {
    const { dir, args } = child("hang");
    const r = await runChild(args, { when: /step 0\n/, signals: ["SIGTERM"], timeoutMs: 30000 });
    expect(r.code, r.stderr).toBe(143);
    expect(r.stderr).toMatch(/SIGTERM received; interrupted at step 0; checkpoint saved/);
    expect(stepOf(join(dir, "ckpt.safetensors"))).toBe(0);
  });
});
