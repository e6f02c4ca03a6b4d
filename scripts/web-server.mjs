// A small static file server for dist-web/ on 127.0.0.1. With `isolate`
// (the default) every response carries the headers that make the page
// cross-origin isolated, which browsers require before worker threads may
// share memory (SharedArrayBuffer, shared WebAssembly.Memory):
//   Cross-Origin-Opener-Policy: same-origin
//   Cross-Origin-Embedder-Policy: require-corp
import { createReadStream, statSync } from "node:fs";
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
    let size = -1;
    if (file.startsWith(root + sep) || file === root) {
      try {
        const st = statSync(file);
        if (st.isFile()) size = st.size;
      } catch {
        // not found
      }
    }
    if (size < 0 || (req.method !== "GET" && req.method !== "HEAD")) {
      res.writeHead(size < 0 ? 404 : 405, { ...headers, "Content-Type": "text/plain" }).end(size < 0 ? `not found: ${path}\n` : "GET only\n");
      return;
    }
    res.writeHead(200, { ...headers, "Content-Type": TYPES[extname(file)] ?? "application/octet-stream", "Content-Length": size });
    if (req.method === "HEAD") res.end();
    else createReadStream(file).pipe(res);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve({ server, url: `http://127.0.0.1:${server.address().port}/` }));
  });
}
