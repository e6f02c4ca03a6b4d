// The browser module graph check: bundles an entry for the browser with
// esbuild and lists every `node:` (or bare Node built-in) import reachable
// from it, with the file that imports it. Used by check-browser.mjs,
// build-web.mjs and the tests.
import { builtinModules } from "node:module";
import * as esbuild from "esbuild";

const BUILTINS = new Set(builtinModules);

/** True for "node:fs", "fs", "fs/promises", ... */
export function isNodeBuiltin(path) {
  return path.startsWith("node:") || BUILTINS.has(path) || BUILTINS.has(path.split("/")[0]);
}

/**
 * Node imports reachable from `entryPoints` (esbuild options may add e.g.
 * stdin), as strings "importer imports node:fs". Empty when the graph is clean.
 */
export async function nodeImportsOf(options) {
  const found = [];
  const plugin = {
    name: "find-node-imports",
    setup(build) {
      build.onResolve({ filter: /.*/ }, (args) => {
        if (args.kind === "entry-point" || !isNodeBuiltin(args.path)) return undefined;
        found.push(`${args.importer || "<stdin>"} imports ${args.path}`);
        return { path: args.path, external: true };
      });
    },
  };
  await esbuild.build({ bundle: true, platform: "browser", format: "esm", write: false, logLevel: "silent", ...options, plugins: [plugin] });
  return found;
}

/** Throws an error naming every Node import reachable from the browser entry. */
export async function checkBrowserGraph(entry) {
  const found = await nodeImportsOf({ entryPoints: [entry] });
  if (found.length > 0) {
    throw new Error(`${entry}: the browser entry's module graph must be free of Node built-ins, but:\n  ${found.join("\n  ")}`);
  }
}
