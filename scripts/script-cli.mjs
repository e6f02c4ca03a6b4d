// The command-line conventions of `ptp` (src/cli/main.ts) for the scripts
// in this folder: bad arguments are a one-line usage error and exit 2; a
// missing, unreadable or malformed file is a one-line error naming it and
// exit 1; never a stack trace. The file readers and output checks are the
// package's own (dist/, built by `npm run build:ts`).
import { parseArgs } from "node:util";

/** A bad command line (exit 2). */
export class ScriptUsageError extends Error {}

/**
 * Loads the package's file readers and output checks from dist/; a checkout
 * that was never built gets one line saying so instead of a module-not-found
 * stack.
 */
export async function loadLib(name) {
  try {
    const [errors, args, outputs, atomic] = await Promise.all([import("../dist/io/errors.js"), import("../dist/cli/args.js"), import("../dist/cli/output-files.js"), import("../dist/io/atomic-write.js")]);
    return { ...errors, ...args, ...outputs, ...atomic };
  } catch (e) {
    const why = e?.code === "ERR_MODULE_NOT_FOUND" ? "the package is not built (dist/ is missing); run npm run build:ts first" : `cannot load the package from dist/: ${firstLine(e)}`;
    process.stderr.write(`${name}: ${why}\n`);
    process.exit(1);
  }
}

const firstLine = (e) => String(e instanceof Error ? e.message : e).split("\n")[0];

/**
 * Parses `argv` with node:util's parseArgs (strict: an unknown flag, a
 * value given to a switch or a missing value is a usage error), adding -h /
 * --help, which prints the usage and exits 0.
 */
export function parseScriptArgs(argv, options, usage) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { ...options, help: { type: "boolean", short: "h" } }, allowPositionals: true, strict: true });
  } catch (e) {
    // parseArgs's advice on positionals that start with "-" is for another kind of program.
    throw new ScriptUsageError(firstLine(e).replace(/\. To specify a positional argument .*$/, ""));
  }
  if (parsed.values.help) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  return parsed;
}

/**
 * Checks that each input is a regular file that can be opened (a
 * FileFormatError naming it otherwise), before the outputs are checked
 * against the inputs: a missing file or a folder is named as such.
 */
export function checkInputs(lib, inputs, what) {
  for (const path of inputs) lib.readFilePrefix(path, what, 0);
}

/**
 * Runs a script's body; turns its failures into the CLI's exit codes and
 * one-line messages: a usage error (ours or the package's UsageError) is
 * exit 2 with the usage appended, anything else exit 1.
 */
export async function runScript(name, usage, lib, body) {
  try {
    await body();
  } catch (e) {
    const usageError = e instanceof ScriptUsageError || e instanceof lib.UsageError;
    process.stderr.write(usageError ? `${name}: ${firstLine(e)} (${usage})\n` : `${name}: ${firstLine(e)}\n`);
    process.exitCode = usageError ? 2 : 1;
  }
}
