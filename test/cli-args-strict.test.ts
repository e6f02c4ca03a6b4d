import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseFlags, UsageError } from "../src/cli/args.js";
import { MAX_ALPHA, MIN_ALPHA } from "../src/ptp/student-weights.js";
import { readStudent } from "../src/ptp/files/adapter-file.js";
import { lastFlagWins } from "./flag-args.js";
import { runCli, STORIES_260K } from "./helpers.js";

const tmp = mkdtempSync(join(tmpdir(), "ptp-args-strict-"));

/** The first line of a usage error (exit 2, nothing on stdout). */
async function usageLine(...argv: string[]): Promise<string> {
  const r = await runCli(...argv);
  expect(r.code, r.stderr).toBe(2);
  expect(r.stdout).toBe("");
  return r.stderr.split("\n")[0];
}

describe("CLI-REPEATED-FLAG: a flag given twice is a usage error", () => {
  it("CLI-REPEATED-FLAG: `random-model --seed=5 --seed=6` and `generate --json --json=false` exit 2 with one line naming the flag and both values, before any file is touched", async () => {
    const out = join(tmp, "twice.bin");
    expect(await usageLine("random-model", "--shape", "260K", "--out", out, "--seed=5", "--seed=6")).toBe("ptp random-model: --seed given twice (5 and 6); give it once");
    expect(existsSync(out)).toBe(false);
    expect(await usageLine("generate", "--json", "--json=false")).toBe("ptp generate: --json given twice (true and false); give it once");
    // The same value twice, or the two spellings (--flag value, --flag=value), are refused too.
    expect(await usageLine("random-model", "--shape", "260K", "--out", out, "--seed", "5", "--seed=5")).toBe("ptp random-model: --seed given twice (5 and 5); give it once");
    expect(await usageLine("random-model", "--shape", "260K", "--shape", "15M", "--out", out)).toBe("ptp random-model: --shape given twice (260K and 15M); give it once");
    // A value that is not one plain word is quoted, and a long one cut, so the message stays one line.
    const prompt = `Once upon a time\n${"x".repeat(100)}`;
    expect(await usageLine("generate", "--model", STORIES_260K, "--prompt", prompt, "--prompt=The cat")).toBe(`ptp generate: --prompt given twice (${JSON.stringify(`${prompt.slice(0, 37)}...`)} and "The cat"); give it once`);
    expect(existsSync(out)).toBe(false);
  });

  it("CLI-REPEATED-FLAG: parseFlags refuses a repeat unless the flag is declared repeatable (then the last value counts)", () => {
    const specs = { n: { kind: "int", help: "" }, b: { kind: "bool", help: "" }, r: { kind: "string", help: "", repeatable: true } } as const;
    expect(() => parseFlags(["--n", "1", "--n", "2"], specs)).toThrow(new UsageError("--n given twice (1 and 2); give it once"));
    expect(() => parseFlags(["--b", "--b"], specs)).toThrow(new UsageError("--b given twice (true and true); give it once"));
    expect(() => parseFlags(["--b=false", "--b"], specs)).toThrow(/--b given twice \(false and true\)/);
    // A missing or malformed value is reported as such, not as a repeat.
    expect(() => parseFlags(["--n", "1", "--n"], specs)).toThrow(/--n needs a value/);
    expect(parseFlags(["--r", "a", "--r", "b", "--n", "3"], specs)).toEqual({ b: false, n: 3, r: "b" });
  });

  it("CLI-FLAG-OWN-NAMES: an Object.prototype member (--constructor, --toString, --__proto__) is an unknown flag, not a silently accepted one", async () => {
    const out = join(tmp, "proto.bin");
    for (const name of ["constructor", "toString", "__proto__", "hasOwnProperty"]) {
      expect(await usageLine("random-model", "--shape", "260K", "--out", out, `--${name}`, "5")).toMatch(new RegExp(`^ptp random-model: unknown flag --${name}`));
    }
    expect(existsSync(out)).toBe(false);
  });

  it("lastFlagWins (the tests' helper) keeps each flag once, at its last occurrence with its value", () => {
    expect(lastFlagWins(["distill", "--steps", "4", "--resume", "--rank=2", "--steps", "8", "--rank", "3", "--json"])).toEqual(["distill", "--resume", "--steps", "8", "--rank", "3", "--json"]);
  });
});

describe("CLI-RANDOM-BOUNDS: random-student --alpha keeps the LoRA scale finite and sane", () => {
  const rs = (alpha: string, out = join(tmp, "rs.safetensors")) => ["random-student", "--model", STORIES_260K, "--rank", "2", "--variant", "C", "--out", out, "--force", "--alpha", alpha];

  it("CLI-RANDOM-BOUNDS: --alpha outside [MIN_ALPHA, MAX_ALPHA] (1e300, 1e-300, 0, -1) exits 2 naming the flag and the range; the ends are accepted", async () => {
    expect([MIN_ALPHA, MAX_ALPHA]).toEqual([0.001, 10000]);
    for (const alpha of ["1e300", "10001", "1e-300", "0.0009", "0", "-1"]) {
      expect(await usageLine(...rs(alpha, join(tmp, "refused.safetensors")))).toBe(`ptp random-student: --alpha must be in [0.001, 10000], got ${alpha}`);
    }
    expect(existsSync(join(tmp, "refused.safetensors"))).toBe(false);
    for (const alpha of ["0.001", "10000"]) {
      const out = join(tmp, `alpha-${alpha}.safetensors`);
      const r = await runCli(...rs(alpha, out));
      expect(r.code, r.stderr).toBe(0);
      expect(readStudent(out).config.alpha).toBe(Number(alpha));
    }
  });
});
