// A small static file server for dist-web/ on 127.0.0.1. With `isolate`
// (the default) every response carries the headers that make the page
// cross-origin isolated, which browsers require before worker threads may
// share memory (SharedArrayBuffer, shared WebAssembly.Memory):
//   Cross-Origin-Opener-Policy: same-origin
//   Cross-Origin-Embedder-Policy: require-corp
import { closeSync, createReadStream, fstatSync, openSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { extname, join, normalize, sep } from "node:path";

export const ISOLATION_HEADERS = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp",
  "Cross-Origin-Resource-Policy": "same-origin",
};

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json",
  ".wasm": "application/wasm",
  ".bin": "application/octet-stream",
  ".safetensors": "application/octet-stream",
};

/** Starts serving `root`; resolves to { server, url } once listening (port 0: any free port). */
export function startWebServer({ root, port = 8080, isolate = true }) {
  const server = createServer((req, res) => {
    const headers = { "Cache-Control": "no-store", ...(isolate ? ISOLATION_HEADERS : {}) };
    let path;
    try {
      path = decodeURIComponent(new URL(req.url ?? "/", "http://localhost").pathname);
    } catch {
      // A malformed percent-escape (/%zz) is the client's error, not the server's end.
      res.writeHead(400, { ...headers, "Content-Type": "text/plain" }).end("bad request: malformed percent-encoding in the path\n");
      return;
    }
    const file = normalize(join(root, path.endsWith("/") ? `${path}index.html` : path));
    const text = (status, body, extra = {}) => res.writeHead(status, { ...headers, "Content-Type": "text/plain", ...extra }).end(body);
    // Opened before any header is sent, so a file that cannot be read is an error response, never a crash.
    let fd = -1,
      size = -1,
      status = 404;
    if (file.startsWith(root + sep) || file === root) {
      try {
        // Only a regular file is opened (a named pipe would block the open).
        if (statSync(file).isFile()) {
          fd = openSync(file, "r");
          size = fstatSync(fd).size;
        }
      } catch (e) {
        // EACCES: there but not readable (403); anything else but "not found" is the server's (500).
        status = e.code === "EACCES" || e.code === "EPERM" ? 403 : e.code === "ENOENT" || e.code === "ENOTDIR" || e.code === "EISDIR" ? 404 : 500;
      }
    }
    if (size < 0 || (req.method !== "GET" && req.method !== "HEAD")) {
      if (fd >= 0) closeSync(fd);
      if (size >= 0) text(405, "GET only\n", { Allow: "GET, HEAD" });
      else text(status, status === 404 ? `not found: ${path}\n` : status === 403 ? `forbidden: ${path}\n` : `cannot read: ${path}\n`);
      return;
    }
    res.writeHead(200, { ...headers, "Content-Type": TYPES[extname(file)] ?? "application/octet-stream", "Content-Length": size });
    if (req.method === "HEAD") {
      closeSync(fd);
      res.end();
      return;
    }
    // A read that fails midway (the file truncated, a disk error) ends this response, not the server.
    createReadStream(file, { fd })
      .on("error", () => res.destroy())
      .pipe(res);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve({ server, url: `http://127.0.0.1:${server.address().port}/` }));
  });
}
