import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { runChild } from "./child.js";
import { lastFlagWins } from "./flag-args.js";
import { exitedPid, pregenFixture, ROOT, runCli } from "./helpers.js";

// One run per output: OUT.lock (src/io/output-lock.ts). Real child processes run bin/ptp.js (the built dist/).
const { tmp, TEACHER, DATA, pregenArgs, dataset } = pregenFixture("ptp-lock-");

// Steps far beyond what a test runs: a run ends by a signal, --stop-after or a smaller --steps.
const distillArgs = (out: string, ...extra: string[]) => lastFlagWins(["distill", "--model", TEACHER, "--dataset", DATA, "--out", out, "--rank", "4", "--window", "4", "--windows", "4", "--batch", "2", "--steps", "1000000", "--warmup", "2", "--eval-every", "0", "--backend", "wasm", ...extra]);

const BUSY = (out: string, pid: number) => new RegExp(`^ptp \\w+: ${out.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} is being written by another ptp process \\(pid ${pid}, started [^)]+\\); wait for it to finish or stop it \\(.*\\.lock\\)\\n$`);

// A failed test leaves no run going on (their --steps are endless).
const children = new Set<ChildProcess>();
afterEach(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  children.clear();
});

/** A running `ptp ...` child, once `ready` (its stderr matches `when`, or OUT.lock exists when `when` is a path). */
function start(args: readonly string[], when: RegExp | string): { child: ChildProcess; ready: Promise<void>; exited: Promise<{ code: number | null; stderr: string }> } {
  const child = spawn(process.execPath, [join(ROOT, "bin/ptp.js"), ...args], { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"] });
  children.add(child);
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
  const exited = new Promise<{ code: number | null; stderr: string }>((res) => child.on("exit", (code) => res({ code, stderr })));
  const ready = new Promise<void>((res, rej) => {
    const poll = setInterval(() => {
      if (typeof when === "string" ? existsSync(when) : when.test(stderr)) {
        clearInterval(poll);
        res();
      }
    }, 20);
    setTimeout(() => rej(new Error(`child not ready after 30 s; stderr:\n${stderr}`)), 30_000);
    void exited.then(() => {
      clearInterval(poll);
      rej(new Error(`child exited before it was ready; stderr:\n${stderr}`));
    });
  });
  return { child, ready, exited };
}

describe("one ptp run per output (OUT.lock)", () => {
  it("CLI-LOCK-BUSY: a second `distill --resume` on the --out of a running distill exits 1 with one line naming its pid; the first, stopped by SIGINT, leaves no lock and resumes", async () => {
    await dataset();
    const out = join(tmp, "busy.safetensors");
    const first = start(distillArgs(out), /Ctrl-C saves/);
    await first.ready;
    const lock = JSON.parse(readFileSync(`${out}.lock`, "utf8")) as { pid: number; command: string };
    expect(lock.pid).toBe(first.child.pid);
    expect(lock.command).toMatch(/^ptp distill --model /);
    const second = await runCli(...distillArgs(out, "--resume", "--stop-after", "1"));
    expect(second.code, second.stderr).toBe(1);
    expect(second.stderr).toMatch(BUSY(out, first.child.pid!));
    expect(existsSync(`${out}.lock`)).toBe(true); // the first run's lock is left alone
    first.child.kill("SIGINT");
    const r = await first.exited;
    expect(r.code, r.stderr).toBe(130);
    expect(existsSync(`${out}.lock`)).toBe(false);
    const resumed = await runCli(...distillArgs(out, "--resume", "--stop-after", "1"));
    expect(resumed.code, resumed.stderr).toBe(130);
    expect(resumed.stderr).toMatch(/resumed from /);
    expect(existsSync(`${out}.lock`)).toBe(false);
  });

  it("CLI-LOCK-BUSY-TRAIN: a second `ptp train` (with --force) on the --out of a running train exits 1 with one line", async () => {
    const corpus = join(tmp, "corpus.txt");
    writeFileSync(corpus, Array.from({ length: 40 }, (_, i) => `the cat ${i % 3 === 0 ? "sat" : "ran"} on the mat and the dog ${i % 2 ? "slept" : "barked"}.`).join("\n") + "\n");
    const out = join(tmp, "t-busy.bin");
    const args = (...extra: string[]) => lastFlagWins(["train", "--corpus", corpus, "--char-vocab", `${out}.tok`, "--out", out, "--dim", "16", "--layers", "1", "--heads", "2", "--hidden", "32", "--seq-len", "16", "--batch", "2", "--steps", "1000000", "--eval-every", "0", ...extra]);
    const first = start(args(), /Ctrl-C saves/);
    await first.ready;
    const second = await runCli(...args("--force", "--steps", "2"));
    expect(second.code, second.stderr).toBe(1);
    expect(second.stderr).toMatch(BUSY(out, first.child.pid!));
    first.child.kill("SIGTERM");
    expect((await first.exited).code).toBe(143);
    expect(existsSync(`${out}.lock`)).toBe(false);
  });

  it("CLI-LOCK-BUSY-SHARED: a second run with another --out but the checkpoint, log (given or next to its --out) or --char-vocab a running run writes exits 1 with one line naming that file; nothing of the first is touched", async () => {
    await dataset();
    const out = join(tmp, "shared-a.safetensors"),
      ckpt = join(tmp, "shared.train.safetensors"),
      log = join(tmp, "shared.log.jsonl");
    const first = start(distillArgs(out, "--checkpoint", ckpt, "--log", log), /Ctrl-C saves/);
    await first.ready;
    for (const [flag, path] of [
      ["--checkpoint", ckpt],
      ["--log", log],
    ]) {
      const second = await runCli(...distillArgs(join(tmp, `shared-b${flag}.safetensors`), flag, path, "--force", "--stop-after", "1"));
      expect(second.code, second.stderr).toBe(1);
      expect(second.stderr).toMatch(BUSY(path, first.child.pid!));
    }
    first.child.kill("SIGINT");
    expect((await first.exited).code).toBe(130);
    for (const p of [out, ckpt, log]) expect(existsSync(`${p}.lock`)).toBe(false);
    expect((await runCli(...distillArgs(out, "--checkpoint", ckpt, "--log", log, "--resume", "--stop-after", "1"))).code).toBe(130);
    // train: the --char-vocab of a running run.
    const corpus = join(tmp, "corpus-shared.txt");
    writeFileSync(corpus, Array.from({ length: 40 }, (_, i) => `the cat ${i % 3 === 0 ? "sat" : "ran"} on the mat.`).join("\n") + "\n");
    const vocab = join(tmp, "shared.tok");
    const trainArgs = (o: string, ...extra: string[]) => lastFlagWins(["train", "--corpus", corpus, "--char-vocab", vocab, "--out", o, "--dim", "16", "--layers", "1", "--heads", "2", "--hidden", "32", "--seq-len", "16", "--batch", "2", "--steps", "1000000", "--eval-every", "0", ...extra]);
    const t1 = start(trainArgs(join(tmp, "shared-t1.bin")), /Ctrl-C saves/);
    await t1.ready;
    const t2 = await runCli(...trainArgs(join(tmp, "shared-t2.bin"), "--force", "--steps", "2"));
    expect(t2.code, t2.stderr).toBe(1);
    expect(t2.stderr).toMatch(BUSY(vocab, t1.child.pid!));
    // The first run's checkpoint at its default place (next to its --out) is locked too.
    const t1Checkpoint = join(tmp, "shared-t1.bin.train.safetensors");
    const t3 = await runCli(...trainArgs(join(tmp, "shared-t3.bin"), "--char-vocab", join(tmp, "shared3.tok"), "--checkpoint", t1Checkpoint, "--force", "--steps", "2"));
    expect(t3.code, t3.stderr).toBe(1);
    expect(t3.stderr).toMatch(BUSY(t1Checkpoint, t1.child.pid!));
    t1.child.kill("SIGINT");
    expect((await t1.exited).code).toBe(130);
  });

  it("CLI-LOCK-BUSY-PREGENERATE: a second `pregenerate --resume` on the --out of a running one exits 1 with one line; SIGINT then leaves no lock", async () => {
    const out = join(tmp, "pg-busy.ptpd");
    const first = start(pregenArgs(out, "--samples", "400", "--backend", "js"), `${out}.lock`);
    await first.ready;
    const second = await runCli(...pregenArgs(out, "--samples", "400", "--backend", "js", "--resume"));
    expect(second.code, second.stderr).toBe(1);
    expect(second.stderr).toMatch(BUSY(out, first.child.pid!));
    first.child.kill("SIGINT");
    const r = await first.exited;
    expect(r.code === 130 || r.code === 0, r.stderr).toBe(true);
    expect(existsSync(`${out}.lock`)).toBe(false);
  });

  it("CLI-LOCK-STALE: a lock of a process that has exited, or an old empty one, is replaced with a note on stderr and the run proceeds; a fresh empty one counts as held; a file of that name that is not a lock is kept and the run refused", async () => {
    await dataset();
    const out = join(tmp, "stale.safetensors");
    const pid = await exitedPid();
    writeFileSync(`${out}.lock`, `${JSON.stringify({ pid, started: "2020-01-01T00:00:00.000Z", command: "ptp distill" })}\n`);
    const r = await runCli(...distillArgs(out, "--steps", "2"));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`ptp distill: replacing the stale lock ${out}.lock of pid ${pid} (started 2020-01-01T00:00:00.000Z), which is no longer running\n`);
    expect(existsSync(`${out}.lock`)).toBe(false);

    // An empty lock (cut between its creation and its line): held while young, replaced once old.
    const garbled = join(tmp, "garbled.safetensors");
    writeFileSync(`${garbled}.lock`, "");
    const fresh = await runCli(...distillArgs(garbled, "--steps", "2"));
    expect(fresh.code, fresh.stderr).toBe(1);
    expect(fresh.stderr).toMatch(/is being written by another ptp process \(its lock is being created\)/);
    utimesSync(`${garbled}.lock`, new Date(0), new Date(0));
    const old = await runCli(...distillArgs(garbled, "--steps", "2"));
    expect(old.code, old.stderr).toBe(0);
    expect(old.stderr).toContain(`ptp distill: replacing the stale lock ${garbled}.lock, which is empty\n`);
    // A file of the lock's name that is not a lock is somebody's: kept, and the run refused.
    const users = join(tmp, "users.safetensors");
    writeFileSync(`${users}.lock`, "\x00\x01 my notes");
    utimesSync(`${users}.lock`, new Date(0), new Date(0));
    const refused = await runCli(...distillArgs(users, "--steps", "2"));
    expect(refused.code, refused.stderr).toBe(1);
    expect(refused.stderr).toContain(`${users}.lock exists and is not a ptp lock (a JSON line with a "pid"); it was left as it is`);
    expect(readFileSync(`${users}.lock`, "utf8")).toBe("\x00\x01 my notes");
    expect(existsSync(users)).toBe(false);
    expect(existsSync(`${garbled}.lock`)).toBe(false);
  });

  it("CLI-LOCK-RELEASED: no OUT.lock remains after a normal run, an error found after the lock, a SIGINT, a second Ctrl-C, or SIGTERM before the run handles signals", async () => {
    await dataset();
    const out = join(tmp, "released.safetensors");
    const done = await runCli(...distillArgs(out, "--steps", "2"));
    expect(done.code, done.stderr).toBe(0);
    expect(existsSync(`${out}.lock`)).toBe(false);
    // A dataset that is not one is read after the lock is taken.
    const bad = join(tmp, "bad.ptpd"),
      badOut = join(tmp, "bad-out.safetensors");
    writeFileSync(bad, "not a dataset");
    const failed = await runCli(...distillArgs(badOut, "--dataset", bad));
    expect(failed.code, failed.stderr).toBe(1);
    expect(failed.stderr).toContain(bad);
    expect(existsSync(`${badOut}.lock`)).toBe(false);
    for (const [name, signals] of [
      ["sigint", ["SIGINT"]],
      ["twice", ["SIGINT", "SIGINT"]],
    ] as const) {
      const o = join(tmp, `released-${name}.safetensors`);
      const r = await runChild(["bin/ptp.js", ...distillArgs(o)], { when: /Ctrl-C saves/, signals, gapMs: 5 });
      expect(r.code, r.stderr).toBe(130);
      expect(existsSync(`${o}.lock`), name).toBe(false);
    }
    // SIGTERM while a command holds the lock and nothing else handles signals (a run still loading its model).
    const early = join(tmp, "released-early.safetensors");
    const script = `const { acquireOutputLock } = await import(${JSON.stringify(pathToFileURL(join(ROOT, "dist/io/output-lock.js")).href)}); acquireOutputLock(${JSON.stringify(early)}, "ptp test"); console.error("locked"); setInterval(() => {}, 1000);`;
    const holder = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "ignore", "pipe"] });
    children.add(holder);
    await new Promise<void>((res) => holder.stderr.on("data", (d: Buffer) => d.toString().includes("locked") && res()));
    expect(existsSync(`${early}.lock`)).toBe(true);
    holder.kill("SIGTERM");
    const code = await new Promise((res) => holder.on("exit", (c, sig) => res(c ?? sig)));
    expect(code).toBe(143);
    expect(existsSync(`${early}.lock`)).toBe(false);
  });
});
