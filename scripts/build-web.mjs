// npm run build:web: the static demo page in dist-web/ (serve it with
// `npm run web`, or any static server; threads need the COOP/COEP headers).
// Checks the browser entry's module graph first, bundles the page and its
// engine worker with esbuild, and copies the page, the WASM builds and the
// shipped demo models next to them.
import { copyFileSync, existsSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";
import { checkBrowserGraph } from "./browser-graph.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "dist-web");

await checkBrowserGraph(join(root, "src/browser.ts"));

const copies = [
  ["web/index.html", "index.html"],
  ["web/style.css", "style.css"],
  ["build/ptp-simd.wasm", "ptp-simd.wasm"],
  ["build/ptp-relaxed.wasm", "ptp-relaxed.wasm"],
  ["demo/teacher.bin", "demo/teacher.bin"],
  ["demo/tok.bin", "demo/tok.bin"],
  ["demo/student.safetensors", "demo/student.safetensors"],
];
const missing = copies.map(([from]) => from).filter((f) => !existsSync(join(root, f)));
if (missing.length > 0) {
  console.error(`build:web: missing ${missing.join(", ")} (run npm run build for the .wasm files; scripts/make-demo-models.sh for demo/)`);
  process.exit(1);
}

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, "demo"), { recursive: true });
await esbuild.build({
  entryPoints: { main: join(root, "web/main.ts"), "engine-worker": join(root, "web/engine-worker.ts") },
  outdir: out,
  bundle: true,
  platform: "browser",
  format: "esm",
  target: "es2022",
  sourcemap: true,
  logLevel: "warning",
});
for (const [from, to] of copies) copyFileSync(join(root, from), join(out, to));
console.log(`build:web: wrote ${out}`);
