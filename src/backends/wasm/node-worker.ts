/**
 * The Node way to start a thread-pool worker (node:worker_threads). This is
 * the only platform-specific part of the pool: a browser build passes its own
 * `WorkerSpawner` (a Web Worker running WORKER_BODY) instead.
 */
import { nodeBuiltin } from "../../host/node-builtin.js";
import { WORKER_BODY, type WorkerSpawner } from "./threads.js";

/**
 * The worker program as Node evaluates it (from a string, so it runs the same
 * from src/ and dist/; a dynamic import works whether Node evaluates it as
 * CommonJS or, under --input-type=module, as an ES module).
 */
const NODE_SOURCE = `${WORKER_BODY}
import("node:worker_threads").then(({ workerData }) => ptpWorkerMain(workerData.module, workerData.memory, workerData.ctrl));
`;

export const spawnNodeWorker: WorkerSpawner = (data, onFail) => {
  // Fetched at call time (no static node: import), so the module stays loadable in a browser.
  const { Worker } = nodeBuiltin<typeof import("node:worker_threads")>("node:worker_threads", "wasm backend threads", "install Web Workers with setWorkerSpawner (web-workers.ts)");
  const w = new Worker(NODE_SOURCE, { eval: true, workerData: data });
  // Workers never keep a process alive; dispose() terminates them.
  w.unref();
  w.once("error", (e) => onFail(e instanceof Error ? e : new Error(String(e))));
  w.once("exit", () => onFail(new Error("wasm backend: a worker thread exited")));
  return { terminate: () => void w.terminate() };
};
