// Types of ptp-backend-cuda (index.js). The plug-in does not depend on the
// core package at run time (the caller passes the core module in:
// registerCudaBackend(core)); its types derive from the core's Backend
// interface, so the typecheck of the core catches any drift.
import type { Backend, BackendError, BackendOptions, Buffer, DType, HostArray, registerBackend } from "ptp-ts";

export type { DType, HostArray };

/** An opaque handle to a device buffer: the core's Buffer. */
export type CudaBuffer = Buffer;

/** What the plug-in needs from the core package ("ptp-ts"). */
export interface CoreModule {
  registerBackend: typeof registerBackend;
  BackendError?: typeof BackendError;
}

export interface CudaOptions extends BackendOptions {
  /** Which CUDA device (default 0). */
  cudaDevice?: number;
  /** Another addon file (default: build/ptp_cuda.node next to index.js). */
  cudaAddonPath?: string;
  /** An object implementing the addon's functions instead of the native addon (testing the wrapper without a GPU). */
  cudaAddon?: CudaAddon;
  [key: string]: unknown;
}

export interface CudaStatus {
  /** The addon file exists and loads. */
  built: boolean;
  /** CUDA devices the addon sees (0 without a GPU or driver). */
  deviceCount: number;
  deviceName: string | null;
  /** Why there is no usable device ("" when there is one). */
  reason: string;
}

/** The native addon's functions (src/addon.cpp). */
export interface CudaAddon {
  deviceCount(): number;
  deviceName(index?: number): string;
  probe(): { count: number; reason: string };
  init(device?: number): void;
  synchronize(): void;
  alloc(bytes: number): number;
  free(handle: number): void;
  upload(handle: number, byteOffset: number, data: HostArray): void;
  download(handle: number, byteOffset: number, byteLength: number): ArrayBuffer;
  copy(dst: number, dstByteOffset: number, src: number, srcByteOffset: number, bytes: number): void;
  matmul(y: number, x: number, w: number, M: number, K: number, N: number): void;
  rmsnorm(y: number, x: number, g: number, M: number, D: number, eps: number): void;
  rope(x: number, table: number, M: number, nHeads: number, headSize: number): void;
  attention(out: number, q: number, keys: number, values: number, mask: number, M: number, nKeys: number, nHeads: number, nKvHeads: number, headSize: number): void;
  swiglu(y: number, gate: number, up: number, n: number): void;
  add(y: number, x: number, n: number): void;
  embedding(y: number, table: number, ids: number, M: number, D: number): void;
  softmax(x: number, M: number, N: number): void;
  reset(): void;
  liveBuffers(): number;
}

export declare const ADDON_PATH: string;

export declare function loadAddon(path?: string): { path: string; addon: CudaAddon | null; error: string | null };
export declare function cudaStatus(path?: string): CudaStatus;
export declare function ropeAngle(pos: number, i: number, headSize: number, theta: number): number;

/** The Backend interface of ptp-ts (spec/backend.md) on a CUDA device, with the plug-in's extras. */
export declare class CudaBackend implements Backend {
  private constructor();
  readonly name: string;
  readonly description: string;
  /** Device buffers not yet freed. */
  readonly liveBuffers: number;
  alloc: Backend["alloc"];
  upload: Backend["upload"];
  download: Backend["download"];
  free: Backend["free"];
  matmul: Backend["matmul"];
  rmsnorm: Backend["rmsnorm"];
  rope: Backend["rope"];
  attention: Backend["attention"];
  swiglu: Backend["swiglu"];
  add: Backend["add"];
  embedding: Backend["embedding"];
  softmax: Backend["softmax"];
  copy: Backend["copy"];
  /** Wait for the device to finish the queued work. */
  synchronize(): void;
  dispose(): void;
}

export declare function createCudaBackend(core: CoreModule, options?: CudaOptions): Promise<CudaBackend>;
export declare function registerCudaBackend(core: CoreModule, name?: string): void;
export declare const register: typeof registerCudaBackend;
