import { defineConfig } from "vitest/config";

// Tests run in forked Node processes started with relaxed SIMD enabled, so the
// FMA build of the WASM kernels is exercised on Node 20 (where it is behind a
// flag); tests that need the plain SIMD build ask for it explicitly.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // One scratch folder per run, removed at the end (test/global-tmp.ts).
    globalSetup: ["test/global-tmp.ts"],
    pool: "forks",
    execArgv: ["--experimental-wasm-relaxed-simd"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // The JSON report is what .ci/run counts for its closing line.
    reporters: ["default", "json"],
    outputFile: { json: "test-results.json" },
  },
});
