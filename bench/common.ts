/** What the bench scripts share: reading `--name value` flags and taking medians. */

const argv = process.argv.slice(2);

/** The value after `name` (e.g. "--steps") on the command line, else `fallback`; a flag without a value is an error. */
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
  const s = [...xs].sort((a, b) => a - b), m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
