import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { closest, defineFlags, describeFlags } from "../src/cli/args.js";
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

  it("CLI-HELP-LAYOUT: every command's --help lists its required flags first, and each flag's help starts at column 27 after at least two spaces, or on the next line when the flag is too long", async () => {
    const top = await runCli("help");
    const commands = [...top.stdout.matchAll(/^ {2}([a-z][a-z-]*) /gm)].map((m) => m[1]);
    expect(commands).toContain("distill");
    const firstRows: Record<string, string[]> = {};
    for (const command of commands) {
      const r = await runCli(command, "--help");
      expect(r.code, command).toBe(0);
      const lines = r.stdout.split("\n");
      const rows: string[] = [];
      for (let i = 0; i < lines.length; i++) {
        if (!lines[i].startsWith("  --")) continue;
        const left = /^ {2}--[^ ]+(?: [^ ]+)?/.exec(lines[i])![0];
        if (lines[i] === left) {
          // too long for the column: the help on the next line, at column 27
          expect(lines[i + 1], `${command}: ${left}`).toMatch(/^ {27}\S/);
          rows.push(`${left} ${lines[++i].trim()}`);
        } else {
          const gap = /^ +/.exec(lines[i].slice(left.length))![0].length;
          expect(gap, `${command}: ${lines[i]}`).toBeGreaterThanOrEqual(2);
          expect(left.length + gap, `${command}: ${lines[i]}`).toBe(27);
          rows.push(lines[i]);
        }
      }
      const firstOptional = rows.findIndex((row) => !row.endsWith("(required)"));
      if (firstOptional >= 0)
        expect(
          rows.slice(firstOptional).filter((row) => row.endsWith("(required)")),
          command,
        ).toEqual([]);
      firstRows[command] = rows.map((row) => /^ {2}(--\S+)/.exec(row)![1]);
    }
    expect(firstRows.distill.slice(0, 3)).toEqual(["--model", "--dataset", "--out"]);
    expect(firstRows.train.slice(0, 2)).toEqual(["--corpus", "--out"]);
    const generate = (await runCli("generate", "--help")).stdout;
    expect(generate).toContain(`\n  --draft-temperature-scale R\n${" ".repeat(27)}C-PTP drafts are picked`);
    // describeFlags itself: declared order within each group; a left column of 25 characters still fits.
    const specs = defineFlags({
      quiet: { kind: "bool", help: "say less" },
      out: { kind: "string", value: "FILE", help: "where to write", required: true },
      "a-rather-long-flag-name": { kind: "int", value: "N", help: "wraps", default: 3 },
      "exactly-fits-xxx": { kind: "string", value: "FILE", help: "fits" },
      model: { kind: "string", value: "FILE", help: "the teacher", required: true },
    });
    expect(describeFlags(specs).split("\n")).toEqual(["  --out FILE               where to write (required)", "  --model FILE             the teacher (required)", "  --quiet                  say less", "  --a-rather-long-flag-name N", `${" ".repeat(27)}wraps (default 3)`, "  --exactly-fits-xxx FILE  fits"]);
  });
});
