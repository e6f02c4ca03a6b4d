// The browser entry's module graph (no Node built-ins) and the wasm backend's
// browser options, checked in Node.
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { createWasmBackend, threadsUnavailableReason, wasmBuildUrl } from "../src/backends/wasm/index.js";
import { ROOT } from "./helpers.js";

const graph = (await import(join(ROOT, "scripts/browser-graph.mjs"))) as {
  nodeImportsOf(options: object): Promise<string[]>;
  checkBrowserGraph(entry: string): Promise<void>;
};

describe("BACKEND-BROWSER: browser entry", () => {
  it("src/browser.ts reaches no node: import", async () => {
    expect(await graph.nodeImportsOf({ entryPoints: [join(ROOT, "src/browser.ts")] })).toEqual([]);
    await expect(graph.checkBrowserGraph(join(ROOT, "src/browser.ts"))).resolves.toBeUndefined();
  });

  it("the check names a node: import that creeps in, and the file importing it", async () => {
    const found = await graph.nodeImportsOf({
      stdin: { contents: 'export * from "./src/browser.ts"; export { readFileSync } from "node:fs"; export { cpus } from "os";', resolveDir: ROOT, loader: "ts" },
    });
    expect(found).toEqual(["<stdin> imports node:fs", "<stdin> imports os"]);
    // The Node entry reaches the trainers, which write files: not browser-safe.
    await expect(graph.checkBrowserGraph(join(ROOT, "src/index.ts"))).rejects.toThrow(/src\/index\.ts: the browser entry's module graph must be free of Node built-ins, but:\n[\s\S]*src\/train\/.* imports node:/);
  });
});

describe("BACKEND-BROWSER: wasm backend options for browsers", () => {
  const g = globalThis as { crossOriginIsolated?: boolean };
  afterEach(() => {
    delete g.crossOriginIsolated;
  });

  it("falls back to one thread, saying why, where the page is not cross-origin isolated", async () => {
    expect(threadsUnavailableReason()).toBeUndefined();
    g.crossOriginIsolated = false;
    expect(threadsUnavailableReason()).toMatch(/not cross-origin isolated.*Cross-Origin-Opener-Policy: same-origin.*Cross-Origin-Embedder-Policy: require-corp/);
    const b = await createWasmBackend({ threads: 3 });
    expect(b.threads).toBe(1);
    expect(b.threadNote).toBe(threadsUnavailableReason());
    const one = await createWasmBackend({ threads: 1 });
    expect(one.threadNote).toBeUndefined();
    b.dispose();
    one.dispose();
  });

  it("keeps the threads asked for where memory can be shared", async () => {
    const b = await createWasmBackend({ threads: 2 });
    expect(b.threads).toBe(2);
    expect(b.threadNote).toBeUndefined();
    b.dispose();
  });

  it("loads the builds from wasmBaseUrl, and names the URL when they are not there", async () => {
    const base = pathToFileURL(join(ROOT, "build") + "/");
    expect(wasmBuildUrl("simd", base).href).toBe(new URL("ptp-simd.wasm", base).href);
    const b = await createWasmBackend({ wasmBuild: "simd", threads: 1, wasmBaseUrl: base });
    expect(b.build).toBe("simd");
    b.dispose();
    const nowhere = pathToFileURL(join(ROOT, "no-such-dir") + "/");
    await expect(createWasmBackend({ wasmBuild: "simd", threads: 1, wasmBaseUrl: nowhere })).rejects.toThrow(`the WASM build is missing or unreadable at ${new URL("ptp-simd.wasm", nowhere).href}`);
    await expect(createWasmBackend({ threads: 1, wasmBaseUrl: 42 as never })).rejects.toThrow("wasmBaseUrl must be a string or URL, got 42");
  });
});
