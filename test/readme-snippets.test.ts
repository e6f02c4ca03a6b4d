import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT, SHARED } from "./helpers.js";

/**
 * README-SNIPPETS: every ```ts block of README.md runs as written (a block
 * after `<!-- snippet: continues -->` continues the previous program; one
 * after `<!-- snippet: skip (reason) -->` is left out, with its reason) and
 * typechecks against the package's own exports ("ptp-ts" resolves to this
 * package's dist/, as for a user). Programs run in tmp/readme-run, where
 * "../shared" points at the shared models, so the README's paths hold.
 */

interface Program {
  line: number;
  code: string;
}

function programs(): { run: Program[]; skipped: string[] } {
  const lines = readFileSync(join(ROOT, "README.md"), "utf8").split("\n");
  const run: Program[] = [];
  const skipped: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() !== "```ts") continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && lines[i].trim() !== "```"; i++) body.push(lines[i]);
    let j = start - 1;
    while (j >= 0 && lines[j].trim() === "") j--;
    const marker = lines[j]?.trim() ?? "";
    if (marker.startsWith("<!-- snippet: skip")) skipped.push(`line ${start + 1}: ${marker}`);
    else if (marker === "<!-- snippet: continues -->" && run.length > 0) run[run.length - 1].code += "\n" + body.join("\n");
    else run.push({ line: start + 1, code: body.join("\n") });
  }
  return { run, skipped };
}

describe("README snippets", () => {
  const { run, skipped } = programs();
  const dir = join(ROOT, "tmp", "readme-run");

  it("README-SNIPPETS: the README has library snippets, and only the GPU one is skipped", () => {
    expect(run.length).toBeGreaterThanOrEqual(4);
    expect(skipped).toHaveLength(1);
    expect(skipped[0]).toMatch(/CUDA/);
    expect(existsSync(join(ROOT, "dist/index.js")), "dist/ is built (npm run build)").toBe(true);
  });

  it("README-SNIPPETS: every program typechecks and runs as written", () => {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const shared = join(ROOT, "tmp", "shared");
    if (!existsSync(shared)) symlinkSync(SHARED, shared);
    // The snippets run as from the repository root: demo/ beside them, ../shared above.
    symlinkSync(join(ROOT, "demo"), join(dir, "demo"));
    const files = run.map((p, k) => {
      const file = join(dir, `snippet-${k}-line${p.line}.mts`);
      writeFileSync(file, p.code + "\nexport {};\n");
      return file;
    });
    writeFileSync(join(dir, "tsconfig.json"), JSON.stringify({ compilerOptions: { module: "nodenext", moduleResolution: "nodenext", target: "es2022", strict: true, noEmit: true, skipLibCheck: true, types: ["node"], typeRoots: [join(ROOT, "node_modules/@types")] }, files }));
    const tsc = spawnSync(process.execPath, [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", join(dir, "tsconfig.json")], { encoding: "utf8" });
    expect(tsc.stdout + tsc.stderr, "tsc").toBe("");
    expect(tsc.status).toBe(0);
    for (const file of files) {
      const out = spawnSync(process.execPath, ["--import", "tsx", file], { cwd: dir, encoding: "utf8", env: { ...process.env, NODE_OPTIONS: "" } });
      expect(out.status, `${file}\n${out.stderr}`).toBe(0);
    }
  });

  it("README-SNIPPETS-ROOT: run from the repository root with tsx (tsconfig.json's paths), every ptp-ts entry point is this checkout's src, one copy of each export", () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { exports: Record<string, unknown> };
    const subpaths = Object.keys(pkg.exports)
      .filter((k) => k !== "./package.json" && k !== ".")
      .map((k) => `ptp-ts/${k.slice(2)}`);
    mkdirSync(join(ROOT, "tmp"), { recursive: true });
    const file = join(ROOT, "tmp", "readme-root-check.mts");
    writeFileSync(
      file,
      `import * as root from "ptp-ts";\n` +
        subpaths.map((s, i) => `import * as sub${i} from ${JSON.stringify(s)};`).join("\n") +
        `\nconst subs = [${subpaths.map((_, i) => `sub${i}`).join(", ")}];\n` +
        "let shared = 0;\n" +
        "for (const sub of subs) for (const [name, value] of Object.entries(sub)) if (name in root) { shared++; if ((root as Record<string, unknown>)[name] !== value) throw new Error('two copies of ' + name); }\n" +
        "console.log(shared);\n",
    );
    const out = spawnSync(process.execPath, ["--import", "tsx", file], { cwd: ROOT, encoding: "utf8", env: { ...process.env, NODE_OPTIONS: "" } });
    rmSync(file, { force: true });
    expect(out.stderr).toBe("");
    expect(out.status).toBe(0);
    // The subpaths re-export much of the root: the check compared that many.
    expect(Number(out.stdout.trim())).toBeGreaterThan(20);
  });
});
