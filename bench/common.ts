/** What the bench scripts share: reading `--name value` flags and taking medians. */

const argv = process.argv.slice(2);

/** The value after `name` (e.g. "--steps") on the command line, else `fallback`; a flag without a value is an error. */
export function option(name: string, fallback: string): string;
export function option(name: string, fallback?: string): string | undefined;
export function option(name: string, fallback?: string): string | undefined {
  const i = argv.indexOf(name);
  if (i < 0) return fallback;
  const v = argv[i + 1];
  if (v === undefined || v.startsWith("--")) throw new Error(`${name} needs a value`);
  return v;
}

/** Whether the bare flag `name` is on the command line. */
export function has(name: string): boolean {
  return argv.includes(name);
}

/** The median (the mean of the middle two for an even count). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b),
    m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * A Markdown table: "right" pads cells to the column width and right-aligns
 * the columns, "left" pads them left-aligned, "none" leaves them unpadded.
 */
export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[], align: "left" | "right" | "none" = "none"): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const cell = (c: string, i: number) => (align === "right" ? c.padStart(widths[i]) : align === "left" ? c.padEnd(widths[i]) : c);
  const line = (r: readonly string[]) => `| ${r.map(cell).join(" | ")} |`;
  const rule = align === "right" ? `|${widths.map((w) => `${"-".repeat(w + 1)}:`).join("|")}|` : align === "left" ? `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|` : line(header.map(() => "---"));
  return [line(header), rule, ...rows.map(line)].join("\n");
}
