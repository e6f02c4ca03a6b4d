#!/usr/bin/env node
// Plot accepted tokens per call against training steps (or, with --minutes,
// training minutes) from the metrics logs that `ptp distill` / `ptp train`
// write (JSON lines with "step", "minutes" and "accepted"), as a
// self-contained SVG. Several logs give several curves.
// An existing OUT.svg is replaced only with --force.
// usage: node scripts/plot-accepted.mjs [--minutes] [--force] OUT.svg LABEL=LOG.jsonl [LABEL=LOG.jsonl ...]
import { checkInputs, loadLib, parseScriptArgs, runScript, ScriptUsageError } from "./script-cli.mjs";

const NAME = "plot-accepted";
const USAGE = "usage: node scripts/plot-accepted.mjs [--minutes] [--force] OUT.svg LABEL=LOG.jsonl [LABEL=LOG.jsonl ...]";
const WHAT = 'a metrics log (JSON lines with "step", "minutes" and "accepted")';
const lib = await loadLib(NAME);
await runScript(NAME, USAGE, lib, () => {
  const { values, positionals } = parseScriptArgs(process.argv.slice(2), { minutes: { type: "boolean" }, force: { type: "boolean" } }, USAGE);
  const [out, ...series] = positionals;
  if (out === undefined) throw new ScriptUsageError("missing OUT.svg");
  if (!/\.svg$/i.test(out)) throw new ScriptUsageError(`OUT.svg ${JSON.stringify(out)} does not end in .svg (the output comes first, then LABEL=LOG.jsonl pairs)`);
  if (series.length === 0) throw new ScriptUsageError("missing LABEL=LOG.jsonl (at least one log to plot)");
  const logs = series.map((s) => {
    const at = s.indexOf("=");
    if (at < 0) throw new ScriptUsageError(`${JSON.stringify(s)} is not LABEL=LOG.jsonl (no "=")`);
    const label = s.slice(0, at),
      path = s.slice(at + 1);
    if (label.trim() === "") throw new ScriptUsageError(`${JSON.stringify(s)} has an empty LABEL`);
    if (path === "") throw new ScriptUsageError(`${JSON.stringify(s)} has an empty LOG path`);
    return { label, path };
  });
  const xKey = values.minutes ? "minutes" : "step";
  checkInputs(
    lib,
    logs.map((l) => l.path),
    WHAT,
  );
  lib.checkOutputs([{ flag: "OUT.svg", path: out }], { inputs: logs.map((l) => ({ flag: `the log of ${JSON.stringify(l.label)}`, path: l.path })), force: values.force });
  const curves = logs.map(({ label, path }) => ({ label, points: readPoints(path, xKey) }));
  lib.writeBytesAtomically(out, new TextEncoder().encode(svg(curves, values.minutes)));
  console.error(`wrote ${out}: ${curves.map((c) => `${c.label} (${c.points.length} points)`).join(", ")}`);
});

/**
 * The (x, accepted) points of a metrics log: lines without "accepted" (or
 * without the x key) are left out; a line that is not a JSON object, or
 * whose values are not finite non-negative numbers, is an error naming the
 * file and line, except a torn last line (no newline: a log still being
 * written), which is left out with a note.
 */
function readPoints(path, xKey) {
  const points = [];
  let bad,
    lastLine = 0,
    lastByte = 10;
  lib.readLines(
    path,
    WHAT,
    { maxBytes: lib.MAX_FILE_BYTES, maxLine: 1 << 20 },
    (line, n) => {
      lastLine = n;
      if (line.trim() === "" || bad !== undefined) return;
      let r;
      try {
        r = JSON.parse(line);
      } catch {
        bad = { n, why: "is not JSON", nul: line.includes("\0") };
        return;
      }
      if (typeof r !== "object" || r === null || Array.isArray(r)) {
        bad = { n, why: "is not a JSON object" };
        return;
      }
      if (r.accepted === undefined || r[xKey] === undefined) return;
      for (const key of ["accepted", xKey]) {
        if (typeof r[key] !== "number" || !Number.isFinite(r[key]) || r[key] < 0) {
          bad = { n, why: `has "${key}": ${typeof r[key] === "number" ? r[key] : lib.quote(r[key], 40)}, expected a finite number >= 0` };
          return;
        }
      }
      points.push([r[xKey], r.accepted]);
    },
    (chunk) => (lastByte = chunk[chunk.length - 1]),
  );
  if (bad !== undefined) {
    if (bad.n > 1 && bad.n === lastLine && lastByte !== 10 && !bad.nul) console.error(`${NAME}: ${path}: leaving out line ${bad.n}, which ${bad.why} and has no newline (a log still being written?)`);
    else throw new lib.FileFormatError(path, `line ${bad.n} ${bad.why} (expected ${WHAT})`);
  }
  if (points.length === 0) throw new lib.FileFormatError(path, `no lines with "accepted" and "${xKey}" (expected ${WHAT})`);
  return points;
}

/** The largest of many numbers (Math.max(...xs) overflows the stack on a long log). */
function maxOf(xs) {
  let m = -Infinity;
  for (const x of xs) m = Math.max(m, x);
  return m;
}

function svg(curves, byMinutes) {
  const W = 640,
    H = 400,
    L = 60,
    R = 20,
    T = 40,
    B = 50;
  const xs = curves.flatMap((c) => c.points.map((p) => p[0])),
    ys = curves.flatMap((c) => c.points.map((p) => p[1]));
  const xMax = Math.max(maxOf(xs), 1),
    yMax = Math.max(Math.ceil(maxOf(ys) + 0.5), 2);
  const px = (x) => L + (x / xMax) * (W - L - R),
    py = (y) => H - B - ((y - 1) / (yMax - 1)) * (H - T - B);
  const colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f"];
  const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;");
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="14">Accepted tokens per call vs training ${byMinutes ? "minutes" : "steps"}</text>`,
  ];
  for (let y = 1; y <= yMax; y += yMax > 6 ? 2 : 0.5) {
    parts.push(`<line x1="${L}" x2="${W - R}" y1="${py(y)}" y2="${py(y)}" stroke="#ddd"/>`, `<text x="${L - 6}" y="${py(y) + 4}" text-anchor="end">${y}</text>`);
  }
  for (let i = 0; i <= 5; i++) {
    const x = byMinutes ? Math.round(((xMax * i) / 5) * 10) / 10 : Math.round((xMax * i) / 5);
    parts.push(`<text x="${px(x)}" y="${H - B + 18}" text-anchor="middle">${x}</text>`);
  }
  parts.push(
    `<line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="black"/>`,
    `<line x1="${L}" x2="${L}" y1="${T}" y2="${H - B}" stroke="black"/>`,
    `<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">${byMinutes ? "training minutes" : "optimizer steps"}</text>`,
    `<text x="16" y="${(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 16 ${(T + H - B) / 2})">accepted tokens per call</text>`,
  );
  curves.forEach((c, i) => {
    const col = colours[i % colours.length];
    parts.push(`<polyline fill="none" stroke="${col}" stroke-width="2" points="${c.points.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(" ")}"/>`);
    for (const [x, y] of c.points) parts.push(`<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="3" fill="${col}"/>`);
    parts.push(`<rect x="${L + 12}" y="${T + 8 + 18 * i}" width="12" height="12" fill="${col}"/>`, `<text x="${L + 30}" y="${T + 18 + 18 * i}">${esc(c.label)}</text>`);
  });
  parts.push("</svg>\n");
  return parts.join("\n");
}
