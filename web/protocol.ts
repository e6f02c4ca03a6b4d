// Messages between the page (main.ts) and the engine worker (engine-worker.ts).

export const PAGE_DECODERS = ["single-call", "verify", "multi-draft", "ar"] as const;
export type PageDecoder = (typeof PAGE_DECODERS)[number];

/** Model files as bytes with their names (for error messages). */
export interface ModelFiles {
  teacher: { name: string; bytes: ArrayBuffer };
  tokenizer: { name: string; bytes: ArrayBuffer };
  student?: { name: string; bytes: ArrayBuffer };
}

export interface RunSettings {
  prompt: string;
  temperature: number;
  /** The u stream's seed, as typed: a decimal integer in [1, 2^64), read exactly (as the CLI's --seed). */
  seed: string;
  decoder: PageDecoder;
  /** 0: the student's window. */
  window: number;
  /** 0: twice the window. */
  budget: number;
  /** Positions to run, prompt included (0: the model's seqLen). */
  steps: number;
}

/** threads: absent for the default (the cores, at most the backend's limit). */
export type ToWorker = { type: "load"; files?: ModelFiles; threads?: number } | { type: "run"; settings: RunSettings };

export interface ModelInfo {
  teacher: string;
  /** teacherChecksum of the teacher (the digest a student records). */
  checksum: string;
  student: string;
  backend: string;
  threads: number;
  /** Why fewer threads run than were asked for, if so. */
  threadNote?: string;
  crossOriginIsolated: boolean;
}

export interface RunStats {
  decoder: PageDecoder;
  generated: number;
  calls: number;
  arCalls: number;
  meanAccepted: number;
  acceptedHistogram: number[];
  tokensPerSecond: number;
  arTokensPerSecond: number;
  equal: boolean;
  /** Matmuls of this run split over worker threads (0 on one thread). */
  threadedCalls: number;
  /** The PTP output's tokens (prompt included) and AR's, for checking. */
  tokens: number[];
  arTokens: number[];
}

export type FromWorker =
  | { type: "loaded"; info: ModelInfo }
  | { type: "start"; prompt: Uint8Array }
  /** One model call's accepted tokens, as printed bytes. */
  | { type: "chunk"; bytes: Uint8Array; tokens: number }
  /** The final text (prompt bytes and each step's chunk) and the stats. */
  | { type: "done"; prompt: Uint8Array; chunks: Uint8Array[]; stats: RunStats }
  | { type: "error"; message: string };
