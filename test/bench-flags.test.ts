import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT, STORIES_260K, TOK_512 } from "./helpers.js";

/**
 * A bench script run with `args`: its exit code and output. Every case here
 * is refused while the flags are read, before the script loads a model or
 * times anything, so each run takes about a second (the timeout would end a
 * script that had started a benchmark instead).
 */
function bench(script: string, ...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, ["--experimental-wasm-relaxed-simd", "--import", "tsx", resolve(ROOT, "bench", script), ...args], { cwd: ROOT, encoding: "utf8", timeout: 30_000 }, (err, stdout, stderr) => {
      done({ code: err ? (typeof err.code === "number" ? err.code : null) : 0, stdout, stderr });
    });
  });
}

describe("BENCH-FLAGS: bench scripts refuse unknown flags and malformed values (exit 2, one line) before running anything", () => {
  it("BENCH-FLAGS: a misspelt flag, a non-number, a bad list item, a flag given twice and a missing required flag exit 2 naming the script and the flag", async () => {
    // The teacher and proposer flags name files that do not exist: nothing gets far enough to read them.
    const evalFiles = ["--model", "no-model.bin", "--tokenizer", "no-tok.bin", "--student", "no-student.safetensors", "--prompts", "no-prompts.txt"];
    const cases: [string, string[], string][] = [
      ["batch-scaling.ts", ["--thread", "2"], "bench/batch-scaling.ts: unknown flag --thread (did you mean --threads?)"],
      ["ptp-eval.ts", [...evalFiles, "--steps", "abc"], 'bench/ptp-eval.ts: --steps must be a number, got "abc"'],
      ["ptp-eval.ts", [...evalFiles, "--temperatures", "0.7,hot"], 'bench/ptp-eval.ts: --temperatures must be a number, got "hot" (in "0.7,hot")'],
      ["ptp-speedup.ts", ["--reps", "2", "--reps", "3"], "bench/ptp-speedup.ts: --reps given twice (2 and 3); give it once"],
      ["cost-curve.ts", ["--threads", "1,0"], 'bench/cost-curve.ts: --threads must be a positive integer (at most 256), got 0 (in "1,0")'],
      ["gemm-ab.ts", ["--rows", "1"], "bench/gemm-ab.ts: --baseline is required"],
      ["ort-gemm.ts", ["two"], 'bench/ort-gemm.ts: THREADS must be a whole number in [1, 256], got "two"'],
      ["stream-wasm.ts", ["--threads", "0"], "bench/stream-wasm.ts: --threads must be a positive integer (at most 256), got 0"],
    ];
    const results = await Promise.all(cases.map(([script, args]) => bench(script, ...args)));
    results.forEach((r, i) => {
      const [script, args, line] = cases[i];
      expect(r.code, `${script} ${args.join(" ")}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toBe(`${line}\n`);
      expect(r.stdout).toBe("");
    });
  });

  it("BENCH-NOTHING-TO-COUNT: draft-stop and correction-candidates end with a one-line error (exit 1) when their inputs give them nothing to count, instead of printing NaN", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ptp-bench-empty-"));
    const empty = join(dir, "empty.txt"),
      long = join(dir, "long.txt");
    writeFileSync(empty, "\n  \n");
    writeFileSync(long, "Once upon a time there was a little girl named Lily who loved to play\n");
    const model = ["--model", STORIES_260K, "--tokenizer", TOK_512];
    const cases: [string, string[], string][] = [
      ["draft-stop.ts", [...model, "--prompts", empty], `bench/draft-stop.ts: --prompts ${empty} has no non-empty line`],
      ["draft-stop.ts", [...model, "--prompts", long, "--steps", "3"], "bench/draft-stop.ts: no call drafted a token (1 prompts, --steps 3): every prompt fills --steps; pass a larger --steps"],
      ["correction-candidates.ts", [...model, "--student", resolve(ROOT, "demo/stories260K-head.safetensors"), "--prompts", empty], `bench/correction-candidates.ts: --prompts ${empty} has no non-empty line`],
    ];
    const results = await Promise.all(cases.map(([script, args]) => bench(script, ...args)));
    results.forEach((r, i) => {
      const [script, args, line] = cases[i];
      expect(r.code, `${script} ${args.join(" ")}: ${r.stderr}`).toBe(1);
      expect(r.stderr.trim().split("\n").at(-1)).toBe(line);
      expect(r.stdout).not.toMatch(/NaN/);
    });
  });
});
