import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import * as core from "../src/index.js";
import { createBackend } from "../src/backends/registry.js";
import { ropeAngle as coreRopeAngle } from "../src/util/rope-angle.js";
import { ADDON_PATH, cudaStatus, loadAddon, registerCudaBackend, ropeAngle } from "../packages/backend-cuda/index.js";
import { ROOT, rng } from "./helpers.js";

/**
 * CUDA-PLUGIN: the CUDA backend plug-in (packages/backend-cuda) builds and
 * loads wherever nvcc exists, reports "no device" without crashing on a
 * machine without a GPU or driver, and registers with the core registry.
 * Its numerical conformance is test/backend-conformance.test.ts.
 */

const nvcc = spawnSync("bash", ["-c", "command -v nvcc"], { encoding: "utf8" }).status === 0;

describe("CUDA plug-in registration", () => {
  it('CUDA-PLUGIN: registerCudaBackend adds "cuda" to the core registry; createBackend gives a backend or a clear error', async () => {
    registerCudaBackend(core);
    expect(core.listBackends()).toContain("cuda");
    const status = cudaStatus();
    if (status.built && status.deviceCount > 0) {
      const b = await createBackend("cuda");
      expect(b.name).toBe("cuda");
      b.dispose?.();
    } else if (status.built) {
      await expect(createBackend("cuda")).rejects.toThrow(/^no CUDA device: /);
    } else {
      await expect(createBackend("cuda")).rejects.toThrow(/npm run build:cuda/);
    }
  });

  it("CUDA-PLUGIN: a missing addon file is reported with the build command, not thrown", () => {
    const r = loadAddon(resolve(ROOT, "packages/backend-cuda/build/does-not-exist.node"));
    expect(r.addon).toBeNull();
    expect(r.error).toMatch(/npm run build:cuda/);
    expect(cudaStatus(resolve(ROOT, "packages/backend-cuda/build/does-not-exist.node"))).toMatchObject({ built: false, deviceCount: 0 });
  });

  it("CUDA-PLUGIN: the plug-in's RoPE angle is the core's recipe, bit for bit", () => {
    const r = rng(9);
    for (let t = 0; t < 2000; t++) {
      const hs = 2 * (1 + Math.floor(r() * 64)),
        i = 2 * Math.floor(r() * (hs / 2)),
        pos = Math.floor(r() * 40000);
      const theta = t % 2 ? 10000 : 500000;
      expect(Object.is(ropeAngle(pos, i, hs, theta), coreRopeAngle(pos, i, hs, theta))).toBe(true);
    }
  });
});

describe.skipIf(!nvcc)(nvcc ? "CUDA addon build (nvcc found)" : "CUDA addon build: skipped — nvcc not found on PATH", () => {
  it("CUDA-PLUGIN: npm run build:cuda has produced build/ptp_cuda.node (built here if missing), and it loads", () => {
    if (!existsSync(ADDON_PATH)) execFileSync("bash", [resolve(ROOT, "packages/backend-cuda/build.sh")], { stdio: "pipe", timeout: 300_000 });
    expect(existsSync(ADDON_PATH)).toBe(true);
    const { addon, error } = loadAddon();
    expect(error).toBeNull();
    expect(typeof addon!.deviceCount).toBe("function");
  });

  it("CUDA-PLUGIN: deviceCount() and deviceName() answer without crashing the process, GPU or not", () => {
    // In a child process, so an abort inside the CUDA runtime would show as a signal here.
    const script = `const a = require(${JSON.stringify(ADDON_PATH)}); console.log(JSON.stringify({ count: a.deviceCount(), name: a.deviceName(), probe: a.probe() }));`;
    const run = spawnSync(process.execPath, ["-e", script], { encoding: "utf8" });
    expect(run.signal).toBeNull();
    expect(run.status).toBe(0);
    const res = JSON.parse(run.stdout.trim()) as { count: number; name: string; probe: { count: number; reason: string } };
    expect(Number.isInteger(res.count) && res.count >= 0).toBe(true);
    expect(res.probe.count).toBe(res.count);
    if (res.count === 0) {
      expect(res.name).toMatch(/^no CUDA device \(cudaGetDeviceCount/);
      expect(res.probe.reason.length).toBeGreaterThan(0);
    }
  });

  it('CUDA-PLUGIN: without a device, createBackend("cuda") throws "no CUDA device: <reason>"', async () => {
    const status = cudaStatus();
    if (status.deviceCount > 0) return; // a GPU machine: the conformance suite runs instead
    registerCudaBackend(core);
    await expect(createBackend("cuda")).rejects.toThrow(/^no CUDA device: cudaGetDeviceCount/);
  });
});
