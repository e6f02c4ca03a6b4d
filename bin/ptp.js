#!/usr/bin/env node
// The `ptp` command. Relaxed SIMD (the FMA build of the WASM kernels) is
// behind a flag on Node 20; switch it on before any WASM module compiles.
// Where the runtime refuses, the plain SIMD build is used instead, and
// PTP_NO_RELAXED_FLAG=1 keeps the flag off (as in the library, detect.ts).
import v8 from "node:v8";

if (!process.execArgv.includes("--experimental-wasm-relaxed-simd") && process.env.PTP_NO_RELAXED_FLAG !== "1") {
  try {
    v8.setFlagsFromString("--experimental-wasm-relaxed-simd");
  } catch {
    // not accepted by this runtime: the backend falls back to plain SIMD
  }
}
// The WASM kernels compiled straight to optimized code, not first to V8's
// baseline tier: on two threads a worker ran its first chunks baseline code and
// the first ~100 tokens of a 15M decode at 520-580 tok/s against ~1000 after
// (docs/BENCHMARKS.md, the cold first pass). Same results (both tiers compile
// the same wasm); PTP_LIFTOFF=1, or a --liftoff/--no-liftoff of your own, keeps V8's default.
if (!process.execArgv.some((a) => /^--(no-)?liftoff$/.test(a)) && process.env.PTP_LIFTOFF !== "1") {
  try {
    v8.setFlagsFromString("--no-liftoff");
  } catch {
    // not accepted by this runtime: the default tiers
  }
}
// A reader that stops early (`ptp generate ... | head`) closes the pipe: stop
// quietly, as other command-line tools do, with the shell's code for SIGPIPE.
// Any other failed write (a full disk, /dev/full) is one line and exit 1.
for (const [name, stream] of [
  ["standard output", process.stdout],
  ["standard error", process.stderr],
]) {
  stream.on("error", (e) => {
    if (e.code === "EPIPE") process.exit(141);
    if (stream !== process.stderr) {
      try {
        process.stderr.write(`ptp: cannot write to ${name}: ${e.code ?? e.message}${e.code === "ENOSPC" ? " (no space left on the device)" : ""}\n`);
      } catch {
        // stderr is gone too: the exit code says it
      }
    }
    process.exit(1);
  });
}
const { main } = await import("../dist/cli/main.js");
const code = await main(process.argv.slice(2));
process.exitCode = code;
// Stopped by Ctrl-C or SIGTERM (130, 143): the checkpoint is saved; exit now
// rather than wait for abandoned work (a step in flight on a worker) to finish.
if (code === 130 || code === 143) process.exit(code);
