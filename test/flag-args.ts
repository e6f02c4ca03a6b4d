/**
 * Command lines for tests whose helpers give default flags that a test may
 * override: the CLI refuses a flag given twice (CLI-REPEATED-FLAG), so a
 * helper's `[...defaults, ...extra]` goes through lastFlagWins.
 */

/**
 * `args` with each flag kept once, at its last occurrence (its value with
 * it): the arguments before the first flag (the command) stay first. A
 * flag's value is its `=value` part, else the next argument where that does
 * not start with "--"; so a bare bool flag must not be followed by a
 * positional argument (the helpers that use this take none).
 */
export function lastFlagWins(args: readonly string[]): string[] {
  const groups: { name?: string; parts: string[] }[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (!a.startsWith("--")) {
      groups.push({ parts: [a] });
      continue;
    }
    const eq = a.indexOf("=");
    const parts = [a];
    if (eq < 0 && i + 1 < args.length && !args[i + 1].startsWith("--")) parts.push(args[++i]);
    groups.push({ name: eq < 0 ? a.slice(2) : a.slice(2, eq), parts });
  }
  const last = new Map<string, number>();
  groups.forEach((g, i) => g.name !== undefined && last.set(g.name, i));
  return groups.filter((g, i) => g.name === undefined || last.get(g.name) === i).flatMap((g) => g.parts);
}

/** `args` without the flags `names` (and their values), read as lastFlagWins reads them: for a helper's default that a test's case must not give. */
export function withoutFlags(args: readonly string[], ...names: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const name = a.startsWith("--") ? a.slice(2).split("=")[0] : undefined;
    if (name === undefined || !names.includes(name)) {
      out.push(a);
      continue;
    }
    if (!a.includes("=") && i + 1 < args.length && !args[i + 1].startsWith("--")) i++;
  }
  return out;
}
