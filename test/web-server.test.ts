// The demo page's local server (scripts/web-server.mjs, scripts/serve-web.mjs)
// against bad requests and bad arguments, without a browser: a malformed
// path is the client's error (400) and the server keeps serving; nothing
// outside its root is served; bad arguments are a one-line usage error.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import type { Server } from "node:http";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "./helpers.js";

/** A request of a raw path (not normalised by a URL parser on the way out). */
function send(url: string, path: string, method: string): Promise<{ status: number; body: string; allow?: string }> {
  return new Promise((resolve, reject) => {
    const { hostname, port } = new URL(url);
    const req = request({ hostname, port, path, method }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, allow: res.headers.allow }));
    });
    req.on("error", reject);
    req.end();
  });
}

const get = (url: string, path: string) => send(url, path, "GET");

describe("WEB-SERVER: bad requests and arguments", () => {
  let server: Server;
  let url: string;
  let root: string;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "web-root-"));
    writeFileSync(join(root, "index.html"), "<p>page</p>\n");
    const { startWebServer } = (await import(join(ROOT, "scripts/web-server.mjs"))) as {
      startWebServer(o: { root: string; port: number }): Promise<{ server: Server; url: string }>;
    };
    ({ server, url } = await startWebServer({ root, port: 0 }));
  });

  afterAll(() => server?.close());

  it("answers a malformed percent-escape with 400 and keeps serving", async () => {
    for (const path of ["/%zz", "/%E0%A4%A", "/a%"]) {
      const r = await get(url, path);
      expect(r.status, path).toBe(400);
      expect(r.body).toMatch(/malformed percent-encoding/);
    }
    const page = await get(url, "/");
    expect(page.status).toBe(200);
    expect(page.body).toBe("<p>page</p>\n");
  });

  it("a named pipe in the root is not served (nor opened: that would block the server); a method other than GET and HEAD is 405 with an Allow header", async () => {
    execFileSync("mkfifo", [join(root, "pipe.html")]);
    expect((await get(url, "/pipe.html")).status).toBe(404);
    const r = await send(url, "/index.html", "POST");
    expect(r.status).toBe(405);
    expect(r.allow).toBe("GET, HEAD");
    expect((await get(url, "/")).status).toBe(200);
  });

  it("serves nothing outside its root", async () => {
    for (const path of ["/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2fetc%2fpasswd"]) {
      expect((await get(url, path)).status, path).toBe(404);
    }
  });

  it("a bad argument is a one-line usage error, exit 2", () => {
    for (const args of [["--bogus"], ["--port"], ["--port", "abc"], ["--port", ""], ["--port", " 80"], ["--port", "0x1F90"], ["--port", "1e4"]]) {
      const r = spawnSync(process.execPath, [join(ROOT, "scripts/serve-web.mjs"), ...args], { encoding: "utf8", timeout: 20_000 });
      expect(r.status, args.join(" ")).toBe(2);
      expect(r.stderr.trim().split("\n"), args.join(" ")).toHaveLength(1);
      expect(r.stderr).toMatch(/^web: /);
      expect(r.stderr).not.toMatch(/\bat \S+ \(|ERR_PARSE_ARGS/);
    }
  });
});
