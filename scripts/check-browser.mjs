// Fails (exit 1) when a `node:` import is reachable from the browser entry src/browser.ts.
import { checkBrowserGraph } from "./browser-graph.mjs";

try {
  await checkBrowserGraph("src/browser.ts");
  console.log("check:browser: src/browser.ts reaches no node: imports");
} catch (e) {
  console.error(`check:browser: ${e.message}`);
  process.exit(1);
}
