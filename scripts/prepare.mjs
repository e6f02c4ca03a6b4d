// npm's "prepare" hook. In a clone (asconfig.json and the dev dependencies
// present) it builds the WASM kernels and compiles TypeScript; in an
// installed copy of the published package, which ships dist/ and build/
// already built, there is nothing to do.
import { existsSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const isClone = existsSync(`${root}/asconfig.json`) && existsSync(`${root}/node_modules/assemblyscript`);
if (!isClone) {
  console.log("ptp-ts: prebuilt package, no build needed");
} else {
  const run = spawnSync("npm", ["run", "build"], { cwd: root, stdio: "inherit", shell: process.platform === "win32" });
  process.exit(run.status ?? 1);
}
