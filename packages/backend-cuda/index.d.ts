// Types of ptp-backend-cuda (index.js). Self-contained on purpose: the plug-in
// does not depend on the core package at build time; the caller passes the
// core module in (registerCudaBackend(core)).

export type DType = "f32" | "i32" | "u8";
export type HostArray = Float32Array | Int32Array | Uint8Array;

/** An opaque handle to a device buffer (structurally the core's Buffer). */
export interface CudaBuffer {
  readonly dtype: DType;
  readonly length: number;
}

/** What the plug-in needs from the core package ("ptp-ts"). */
export interface CoreModule {
  registerBackend(name: string, factory: (options: any) => any): void;
  BackendError?: new (backend: string, message: string) => Error;
}

export interface CudaOptions {
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

/** The Backend interface of ptp-ts (spec/backend.md) on a CUDA device. */
export declare class CudaBackend {
  private constructor();
  readonly name: string;
  readonly description: string;
  readonly liveBuffers: number;
  alloc(length: number, dtype?: DType): CudaBuffer;
  upload(buf: CudaBuffer, data: HostArray, offset?: number): void;
  download(buf: CudaBuffer, offset?: number, length?: number): Float32Array;
  free(buf: CudaBuffer): void;
  matmul(y: CudaBuffer, x: CudaBuffer, w: CudaBuffer, M: number, K: number, N: number): void;
  rmsnorm(y: CudaBuffer, x: CudaBuffer, weight: CudaBuffer, M: number, D: number, eps: number): void;
  rope(x: CudaBuffer, positions: CudaBuffer, M: number, nHeads: number, headSize: number, theta: number): void;
  attention(out: CudaBuffer, q: CudaBuffer, keys: CudaBuffer, values: CudaBuffer, mask: CudaBuffer | null, M: number, nKeys: number, nHeads: number, nKvHeads: number, headSize: number): void;
  swiglu(y: CudaBuffer, gate: CudaBuffer, up: CudaBuffer, n: number): void;
  add(y: CudaBuffer, x: CudaBuffer, n: number): void;
  embedding(y: CudaBuffer, table: CudaBuffer, ids: CudaBuffer, M: number, D: number): void;
  softmax(x: CudaBuffer, M: number, N: number): void;
  copy(dst: CudaBuffer, dstOffset: number, src: CudaBuffer, srcOffset: number, n: number): void;
  synchronize(): void;
  dispose(): void;
}

export declare function createCudaBackend(core: CoreModule, options?: CudaOptions): Promise<CudaBackend>;
export declare function registerCudaBackend(core: CoreModule, name?: string): void;
export declare const register: typeof registerCudaBackend;
