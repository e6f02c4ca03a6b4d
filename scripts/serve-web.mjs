// npm run web [-- --port N] [-- --no-isolation]: serves dist-web/ (built by
// npm run build:web) on 127.0.0.1 with the COOP/COEP headers threads need;
// --no-isolation leaves them out (the page then runs on one thread).
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { startWebServer } from "./web-server.mjs";

const usage = "usage: npm run web [-- --port N] [-- --no-isolation]";
let values;
try {
  ({ values } = parseArgs({ options: { port: { type: "string", default: "8080" }, "no-isolation": { type: "boolean", default: false } } }));
} catch (e) {
  console.error(`web: ${e.message.split("\n")[0]} (${usage})`);
  process.exit(2);
}
// Plain decimal digits only: Number() would read "" as 0 (any port), " 80" as 80 and 0x1F90 as 8080.
const port = /^[0-9]{1,5}$/.test(values.port) ? Number(values.port) : Number.NaN;
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`web: --port must be an integer from 0 to 65535, got ${values.port}`);
  process.exit(2);
}
const root = join(dirname(fileURLToPath(import.meta.url)), "..", "dist-web");
if (!existsSync(join(root, "index.html"))) {
  console.error(`web: ${root}/index.html is missing; run npm run build:web first`);
  process.exit(1);
}
let url;
try {
  ({ url } = await startWebServer({ root, port, isolate: !values["no-isolation"] }));
} catch (e) {
  const why = e.code === "EADDRINUSE" ? `port ${port} is in use (choose another with --port N, or 0 for any free port)` : e.code === "EACCES" ? `no permission to listen on port ${port}` : e.message;
  console.error(`web: cannot serve on 127.0.0.1:${port}: ${why}`);
  process.exit(1);
}
console.log(`serving ${root} at ${url}${values["no-isolation"] ? " (not cross-origin isolated: one thread)" : " (cross-origin isolated: threads on)"}; Ctrl-C stops`);
