#!/usr/bin/env node
// Plot accepted tokens per call against training steps (or, with --minutes,
// training minutes) from the metrics logs that `ptp distill` / `ptp train`
// write (JSON lines with "step", "minutes" and "accepted"), as a
// self-contained SVG. Several logs give several curves.
// An existing OUT.svg is replaced only with --force.
// usage: node scripts/plot-accepted.mjs [--minutes] [--force] OUT.svg LABEL=LOG.jsonl [LABEL=LOG.jsonl ...]
import { existsSync, readFileSync, writeFileSync, renameSync } from "node:fs";

let argv = process.argv.slice(2);
const flag = (name) => {
  const on = argv.includes(name);
  argv = argv.filter((a) => a !== name);
  return on;
};
const byMinutes = flag("--minutes");
const force = flag("--force");
const [out, ...series] = argv;
const xKey = byMinutes ? "minutes" : "step";
if (!out || series.length === 0 || series.some((s) => !s.includes("="))) {
  console.error("usage: node scripts/plot-accepted.mjs [--minutes] [--force] OUT.svg LABEL=LOG.jsonl [LABEL=LOG.jsonl ...]");
  process.exit(2);
}
if (!force && existsSync(out)) {
  console.error(`plot-accepted: ${out} exists; pass --force to replace it`);
  process.exit(1);
}
const curves = series.map((s) => {
  const [label, path] = [s.slice(0, s.indexOf("=")), s.slice(s.indexOf("=") + 1)];
  const points = readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l))
    .filter((r) => typeof r.accepted === "number" && typeof r[xKey] === "number")
    .map((r) => [r[xKey], r.accepted]);
  if (points.length === 0) throw new Error(`${path}: no lines with "accepted"`);
  return { label, points };
});

const W = 640,
  H = 400,
  L = 60,
  R = 20,
  T = 40,
  B = 50;
const xs = curves.flatMap((c) => c.points.map((p) => p[0])),
  ys = curves.flatMap((c) => c.points.map((p) => p[1]));
const xMax = Math.max(...xs, 1),
  yMax = Math.max(Math.ceil(Math.max(...ys) + 0.5), 2);
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
writeFileSync(out + ".tmp", parts.join("\n"));
renameSync(out + ".tmp", out);
console.error(`wrote ${out}: ${curves.map((c) => `${c.label} (${c.points.length} points)`).join(", ")}`);
