/**
 * Node built-ins for the few file-path and thread conveniences, fetched at
 * call time with process.getBuiltinModule (Node 20.16+) instead of a static
 * `node:` import, so that every module stays loadable in a browser: there the
 * conveniences throw a clear error and the byte-level APIs do the work.
 */

interface NodeProcess {
  getBuiltinModule?: (id: string) => unknown;
  versions?: { node?: string };
}

function nodeProcess(): NodeProcess | undefined {
  return (globalThis as { process?: NodeProcess }).process;
}

/** True when running on Node.js (not in a browser or a Web Worker). */
export function isNode(): boolean {
  return typeof nodeProcess()?.versions?.node === "string";
}

/**
 * The Node built-in module `id` (e.g. "node:fs"). `what` names the
 * convenience that needs it and `instead` what to use in a browser, for the
 * error thrown where there is no Node.
 */
export function nodeBuiltin<T>(id: string, what: string, instead: string): T {
  const p = nodeProcess();
  const mod = p?.getBuiltinModule?.(id);
  if (mod === undefined) {
    throw new Error(p?.versions?.node ? `${what} needs Node.js 20.16 or newer (process.getBuiltinModule), this is Node ${p.versions.node}` : `${what} needs Node.js (${id}); in a browser ${instead}`);
  }
  return mod as T;
}
