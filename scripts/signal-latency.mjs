#!/usr/bin/env node
// Time from a signal to the exit of a training run, for docs/RELIABILITY.md:
//   node scripts/signal-latency.mjs SIGINT|SIGTERM DELAY_MS -- bin/ptp.js distill ...
// Starts the command, waits until it says training has begun ("Ctrl-C saves"),
// sends the signal DELAY_MS later, and prints when the checkpoint was saved
// and when the process exited, in ms after the signal, with the exit code.
import { spawn } from "node:child_process";

const [signal, delay, sep, ...command] = process.argv.slice(2);
if (!["SIGINT", "SIGTERM"].includes(signal) || !(Number(delay) >= 0) || sep !== "--" || command.length === 0) {
  process.stderr.write("usage: node scripts/signal-latency.mjs SIGINT|SIGTERM DELAY_MS -- SCRIPT ARGS...\n");
  process.exit(2);
}
const child = spawn(process.execPath, command, { stdio: ["ignore", "ignore", "pipe"] });
let stderr = "",
  sentAt,
  savedAt;
child.stderr.on("data", (d) => {
  stderr += d;
  if (sentAt === undefined && /Ctrl-C saves/.test(stderr)) {
    sentAt = -1;
    setTimeout(() => {
      sentAt = performance.now();
      child.kill(signal);
    }, Number(delay));
  }
  if (sentAt > 0 && savedAt === undefined && /checkpoint saved/.test(stderr)) savedAt = performance.now();
});
child.on("exit", (code, sig) => {
  const ms = (t) => (t === undefined ? "-" : (t - sentAt).toFixed(0));
  process.stdout.write(`${signal}: checkpoint saved after ${ms(savedAt)} ms, exit ${code ?? sig} after ${ms(performance.now())} ms\n`);
});
