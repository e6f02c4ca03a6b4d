/**
 * Which WorkerSpawner new thread pools use when none is passed: Node's
 * worker_threads (node-worker.ts) unless an entry point installs another
 * (the browser entry installs Web Workers, web-workers.ts).
 */
import { spawnNodeWorker } from "./node-worker.js";
import type { WorkerSpawner } from "./threads.js";

let installed: WorkerSpawner | undefined;

/** Sets how new thread pools start their workers by default. */
export function setWorkerSpawner(s: WorkerSpawner): void {
  installed = s;
}

/** The spawner new pools use when none is passed. */
export function defaultWorkerSpawner(): WorkerSpawner {
  return installed ?? spawnNodeWorker;
}
