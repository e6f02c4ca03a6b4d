import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ROOT } from "./helpers.js";

/**
 * PACKAGE-INSTALL: `npm pack` gives a tarball with LICENSE, the built
 * files and subpath exports; installed into a fresh project (offline, from
 * npm's cache, with install scripts enabled: nothing is built there), a
 * typed program using the root and every subpath, a Hugging Face round
 * trip and the exported conformance and exactness suites typechecks and
 * runs.
 */

const work = mkdtempSync(join(tmpdir(), "ptp-pack-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function run(cmd: string, args: string[], cwd: string): string {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8", env: { ...process.env, NODE_OPTIONS: "", npm_config_update_notifier: "false" } });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

const PROGRAM = `
import { createBackend, runBackendConformance, readModel, writeHfCheckpoint, decodeAR, ArrayAux, type ConformanceReport } from "ptp-ts";
import { Transformer, type ModelConfig } from "ptp-ts/model";
import { pick } from "ptp-ts/sampling";
import { randomCheckpoint, readHfCheckpoint, HfTokenizer } from "ptp-ts/io";
import { studentToPeft, randomStudent, teacherChecksum, runPtpExactness } from "ptp-ts/ptp";
import { AdamW, autograd } from "ptp-ts/train";

const config: ModelConfig = { dim: 8, hiddenDim: 12, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 16, seqLen: 16, sharedClassifier: false, normEps: 1e-5, ropeTheta: 10000 };
const ckpt = randomCheckpoint(config, 3);
writeHfCheckpoint("model-hf", ckpt);
const back = readModel("model-hf");
const same = readHfCheckpoint("model-hf").weights.layers[0].wq.every((v, i) => v === ckpt.weights.layers[0].wq[i]);
const backend = await createBackend("wasm");
const a = decodeAR(new Transformer(backend, ckpt), [1], { steps: 8, sampling: { temperature: 1 }, aux: new ArrayAux([0.1, 0.5, 0.9, 0.3, 0.7, 0.2, 0.8]) }).tokens;
const b = decodeAR(new Transformer(backend, back), [1], { steps: 8, sampling: { temperature: 1 }, aux: new ArrayAux([0.1, 0.5, 0.9, 0.3, 0.7, 0.2, 0.8]) }).tokens;
const report: ConformanceReport = await runBackendConformance("wasm", { runs: 2 });
const exact = await runPtpExactness(backend, { runs: 1 });
const peft = studentToPeft(randomStudent(ckpt, teacherChecksum(ckpt), { variant: "O", rank: 2, seed: 1 }));
console.log(JSON.stringify({
  same, tokensEqual: JSON.stringify(a) === JSON.stringify(b), conformance: report.passed, exactness: exact.passed, backend: backend.description,
  pick: pick(0.5, Float32Array.of(0.25, 0.75)), peftTensors: Object.keys(peft.tensors).length,
  hfTokenizer: typeof HfTokenizer.fromJson, adamw: typeof AdamW, tape: typeof autograd.Tape,
}));
`;

describe("the packed package", () => {
  it("PACKAGE-INSTALL: npm pack, install the tarball into a fresh project, run a typed program against it", () => {
    expect(existsSync(join(ROOT, "dist/index.js")), "dist/ is built (npm run build)").toBe(true);
    const packed = JSON.parse(run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", work], ROOT))[0] as { filename: string; files: { path: string }[] };
    const paths = new Set(packed.files.map((f) => f.path));
    for (const p of [
      "LICENSE",
      "package.json",
      "dist/index.js",
      "dist/index.d.ts",
      "dist/io/index.d.ts",
      "dist/model/index.js",
      "dist/ptp/index.js",
      "dist/train/index.js",
      "dist/sampling/index.js",
      "dist/backends/conformance.js",
      "build/ptp-relaxed.wasm",
      "build/ptp-simd.wasm",
      "bin/ptp.js",
      "docs/BENCHMARKS.md",
      "spec/ptp.md",
    ]) {
      expect(paths.has(p), p).toBe(true);
    }
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
    expect(Object.keys(pkg.exports)).toEqual([".", "./browser", "./sampling", "./model", "./ptp", "./train", "./io", "./package.json"]);

    const project = join(work, "consumer");
    run("mkdir", ["-p", project], work);
    writeFileSync(join(project, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }));
    // The runtime dependencies, packed from this clone's node_modules, so the install needs no network.
    const deps = Object.keys(pkg.dependencies).map((name) => {
      const out = JSON.parse(run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", work, join(ROOT, "node_modules", name)], work))[0] as { filename: string };
      return join(work, out.filename);
    });
    run("npm", ["install", "--offline", "--no-audit", "--no-fund", ...deps, join(work, packed.filename)], project);
    const installed = join(project, "node_modules/ptp-ts");
    expect(existsSync(join(installed, "LICENSE"))).toBe(true);
    // the prepare hook of an installed copy builds nothing
    expect(run(process.execPath, [join(installed, "scripts/prepare.mjs")], installed)).toMatch(/no build needed/);
    expect(run(process.execPath, [join(installed, "bin/ptp.js"), "--version"], project).trim()).toBe(`ptp-ts ${pkg.version}`);

    writeFileSync(join(project, "main.mts"), PROGRAM);
    writeFileSync(join(project, "tsconfig.json"), JSON.stringify({ compilerOptions: { module: "nodenext", moduleResolution: "nodenext", target: "es2022", strict: true, outDir: "out", types: ["node"], typeRoots: [join(ROOT, "node_modules/@types")] }, files: ["main.mts"] }));
    run(process.execPath, [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json"], project);
    const result = JSON.parse(run(process.execPath, ["out/main.mjs"], project).trim().split("\n").pop()!);
    expect(result).toEqual({ same: true, tokensEqual: true, conformance: true, exactness: true, backend: "wasm (relaxed SIMD)", pick: 1, peftTensors: expect.any(Number), hfTokenizer: "function", adamw: "function", tape: "function" });
    expect(result.peftTensors).toBe(2 * 7 + 1 + 2); // LoRA pairs of one layer, the bits embedding weight and bias, ptp.config
  });
});
