import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { closest } from "../src/cli/args.js";
import { ROOT, runCli } from "./helpers.js";

describe("CLI hints", () => {
  it("CLI-VERSION: ptp --version prints the package version", async () => {
    const version = JSON.parse(readFileSync(`${ROOT}/package.json`, "utf8")).version;
    for (const flag of ["--version", "-V"]) {
      const r = await runCli(flag);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(`ptp-ts ${version}\n`);
    }
  });

  it("CLI-USAGE-SHORT: a usage error prints the one-line error, the synopsis and a hint to --help, not the whole help page", async () => {
    const r = await runCli("generate", "--model", "m.bin", "--steps", "many");
    expect(r.code).toBe(2);
    const lines = r.stderr.trimEnd().split("\n");
    expect(lines).toHaveLength(3);
    expect(lines[0]).toBe('ptp generate: --steps must be a number, got "many"');
    expect(lines[1]).toMatch(/^usage: ptp generate /);
    expect(lines[2]).toBe("Run 'ptp generate --help' for all options.");
  });

  it("CLI-DID-YOU-MEAN: a misspelt flag or command gets the closest name; far-off names get none", async () => {
    const flag = await runCli("generate", "--temprature", "1");
    expect(flag.code).toBe(2);
    expect(flag.stderr.split("\n")[0]).toBe("ptp generate: unknown flag --temprature (did you mean --temperature?)");
    const command = await runCli("conver", "--model", "x");
    expect(command.code).toBe(2);
    expect(command.stderr).toMatch(/unknown command "conver" \(did you mean convert\?\)/);
    const far = await runCli("generate", "--zzzzzzzz", "1");
    expect(far.stderr.split("\n")[0]).toBe("ptp generate: unknown flag --zzzzzzzz");
    expect(closest("seed", ["steps", "seed", "student"])).toBe("seed");
    expect(closest("top_k", ["top-k", "top-p"])).toBe("top-k");
    expect(closest("q", ["model", "steps"])).toBeUndefined();
  });
});
