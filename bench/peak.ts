import { relaxedSimdSupported } from "../src/backends/wasm/detect.js";
import { instantiateBuild, type Kernels, type WasmBuild } from "../src/backends/wasm/index.js";

/**
 * One core's arithmetic peaks, measured now. Benchmarks print GEMM figures
 * and cost floors next to them, since only a same-run ratio means much on a
 * noisy machine.
 */

/** The best rate of `run(iters)` over `seconds`, in units of `perIter` a second (1e9: G/s). */
function bestRate(run: (iters: number) => void, perIter: number, seconds: number): number {
  run(100_000); // warm-up (tier-up to optimised code)
  let iters = 1_000_000,
    best = 0;
  const deadline = performance.now() + seconds * 1000;
  while (performance.now() < deadline) {
    const t = performance.now();
    run(iters);
    const dt = (performance.now() - t) / 1000;
    if (dt < 0.02)
      iters *= 2; // too short to time well
    else best = Math.max(best, (iters * perIter) / dt / 1e9);
  }
  return best;
}

/**
 * The f32x4 multiply-add peak in GFLOP/s: the relaxed build's `fmaPeak`
 * kernel runs relaxed_madd (FMA), the plain build's mul + add.
 */
export async function measureFmaPeak(seconds = 0.5): Promise<{ relaxed: number | null; simd: number }> {
  const rate = async (build: WasmBuild) => {
    const k = await instantiateBuild(build);
    return bestRate((n) => k.fmaPeak(n), 12 * 4 * 2, seconds); // 12 chains x 4 lanes x (mul + add)
  };
  return { relaxed: relaxedSimdSupported() ? await rate("relaxed") : null, simd: await rate("simd") };
}

/**
 * The int8 kernels' peak in G multiply-adds a second: `dotPeak` (twelve
 * chains of i32x4.dot_i16x8_s, 8 multiply-adds each, plus the add into the
 * accumulator), in the build the backend would pick.
 */
export async function measureDotPeak(seconds = 0.5): Promise<number> {
  const k: Kernels = await instantiateBuild(relaxedSimdSupported() ? "relaxed" : "simd");
  return bestRate((n) => k.dotPeak(n), 12 * 8, seconds);
}
