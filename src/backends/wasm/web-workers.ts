/**
 * The wasm backend's thread pool on Web Workers (browsers): each worker is a
 * classic worker made from a Blob of WORKER_BODY, and gets the compiled
 * module, the shared WebAssembly.Memory and the control block in its first
 * message. Sharing memory needs a cross-origin isolated page (COOP/COEP
 * headers); createWasmBackend falls back to one thread elsewhere.
 */
import { WORKER_BODY, type WorkerSpawner } from "./threads.js";

interface WebWorker {
  postMessage(data: unknown): void;
  addEventListener(type: "error", listener: (event: { message?: string }) => void): void;
  terminate(): void;
}

interface WebWorkerGlobals {
  Worker?: new (url: string, options?: { name?: string }) => WebWorker;
  URL: { createObjectURL(blob: Blob): string };
}

const SOURCE = `"use strict";
${WORKER_BODY}
self.onmessage = (event) => {
  self.onmessage = null;
  const { module, memory, ctrl } = event.data;
  ptpWorkerMain(module, memory, ctrl);
};
`;

let sourceUrl: string | undefined;

/** Starts pool workers as Web Workers; throws where the runtime has none. */
export const webWorkerSpawner: WorkerSpawner = (data, onFail) => {
  const g = globalThis as unknown as WebWorkerGlobals;
  if (typeof g.Worker !== "function") throw new Error("wasm backend threads: this runtime has no Web Workers; use threads: 1");
  sourceUrl ??= g.URL.createObjectURL(new Blob([SOURCE], { type: "text/javascript" }));
  const w = new g.Worker(sourceUrl, { name: "ptp-wasm-thread" });
  w.postMessage(data);
  w.addEventListener("error", (e) => onFail(new Error(`wasm backend: a Web Worker thread failed: ${e.message ?? "unknown error"}`)));
  return { terminate: () => w.terminate() };
};
