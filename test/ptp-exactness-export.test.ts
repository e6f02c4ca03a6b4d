import { describe, expect, it } from "vitest";
import type { Buffer } from "../src/backends/backend.js";
import { JsBackend } from "../src/backends/js/index.js";
import { runPtpExactness } from "../src/ptp/exactness.js";

/**
 * PTP-EXACTNESS-EXPORT: PTP's exactness property as a library function
 * (runPtpExactness) passes on the built-in backends and catches a backend
 * that is not batch-invariant.
 */

/** Logits one float32 step off whenever a call has several rows: fine for AR, fatal for verification. */
class BatchDependent extends JsBackend {
  override matmul(y: Buffer, x: Buffer, w: Buffer, M: number, K: number, N: number): void {
    super.matmul(y, x, w, M, K, N);
    if (M > 1)
      this.upload(
        y,
        this.download(y).map((v) => Math.fround(v * (1 + 2 ** -10))),
      );
  }
}

describe("runPtpExactness", () => {
  it.each(["js", "wasm"])("PTP-EXACTNESS-EXPORT: %s passes both checks", async (name) => {
    const report = await runPtpExactness(name, { runs: 4, seed: 3 });
    expect(report.checks.map((c) => c.id)).toEqual(["decoders-equal-ar", "decoders-equal-ar-edges"]);
    for (const c of report.checks) expect(c.failure, c.id).toBeUndefined();
    expect(report.passed).toBe(true);
  });

  it("PTP-EXACTNESS-CATCHES: a backend whose rows depend on the batch fails", async () => {
    const report = await runPtpExactness(new BatchDependent(), { runs: 6, seed: 3 });
    expect(report.passed).toBe(false);
    expect(report.checks.find((c) => !c.passed)!.failure).toMatch(/AR gave/);
  });
});
