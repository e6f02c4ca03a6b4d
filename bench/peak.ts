import { relaxedSimdSupported } from "../src/backends/wasm/detect.js";
import { instantiateBuild, type WasmBuild } from "../src/backends/wasm/index.js";

/**
 * The f32x4 multiply-add peak of one core in GFLOP/s, measured now: the
 * relaxed build's `fmaPeak` kernel runs relaxed_madd (FMA), the plain
 * build's mul + add. Benchmarks print GEMM figures next to it, since only a
 * same-run ratio means much on a noisy machine.
 */
export async function measureFmaPeak(seconds = 0.5): Promise<{ relaxed: number | null; simd: number }> {
  const rate = async (build: WasmBuild) => {
    const k = await instantiateBuild(build);
    const FLOPS_PER_ITER = 12 * 4 * 2; // 12 chains x 4 lanes x (mul + add)
    k.fmaPeak(100_000); // warm-up (tier-up to optimised code)
    let iters = 1_000_000,
      best = 0;
    const deadline = performance.now() + seconds * 1000;
    while (performance.now() < deadline) {
      const t = performance.now();
      k.fmaPeak(iters);
      const dt = (performance.now() - t) / 1000;
      if (dt < 0.02)
        iters *= 2; // too short to time well
      else best = Math.max(best, (iters * FLOPS_PER_ITER) / dt / 1e9);
    }
    return best;
  };
  return { relaxed: relaxedSimdSupported() ? await rate("relaxed") : null, simd: await rate("simd") };
}
