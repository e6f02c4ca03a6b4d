// The demo page in a real headless Chromium (Debian's `chromium`, driven by
// puppeteer-core): for a fixed prompt and seed, the page's text and tokens
// equal the Node CLI's token for token, with single-call and with AR, both
// cross-origin isolated (worker threads on a shared WASM memory) and not (one
// thread, with a note). Skipped, saying why, where no Chromium is installed;
// .ci/run installs it. PTP_CHROMIUM overrides the browser path.
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import type { Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import puppeteer, { type Browser } from "puppeteer-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readCheckpoint } from "../src/io/checkpoint.js";
import { teacherChecksum } from "../src/ptp/files/teacher-checksum.js";
import { ROOT, runCli } from "./helpers.js";

function findChromium(): string | undefined {
  if (process.env.PTP_CHROMIUM) return process.env.PTP_CHROMIUM;
  for (const name of ["chromium", "chromium-browser"]) {
    try {
      return execFileSync("which", [name], { encoding: "utf8" }).trim() || undefined;
    } catch {
      // not on PATH
    }
  }
  return undefined;
}

const CHROMIUM = findChromium();
const REQUIRED = process.env.PTP_BROWSER_TEST === "required"; // set by .ci/run
if (!CHROMIUM && !REQUIRED) console.warn("browser-page.test.ts: SKIPPED, no chromium on PATH (apt-get install chromium, or set PTP_CHROMIUM)");

if (!CHROMIUM && REQUIRED) {
  it("the demo page in headless Chromium: has a Chromium to run in", () => {
    expect.fail("PTP_BROWSER_TEST=required but no chromium is on PATH (apt-get install chromium, or set PTP_CHROMIUM)");
  });
}

const PROMPT = "One sunny day, a little girl named Lily";
const SEED = 7;
const STEPS = 160;
const TEMPERATURE = 0.8;
const THREADS = 2;
const DEMO = join(ROOT, "demo");
const SHOTS = mkdtempSync(join(tmpdir(), "ptp-browser-"));

interface PageResult {
  state: string;
  status: string;
  text: string;
  equal: string;
  backend: string;
  stats: { tokens: number[]; arTokens: number[]; equal: boolean; threadedCalls: number; calls: number; arCalls: number; generated: number };
  chunks: number;
  checksum: string;
}

/** What the test reads from the page (evaluated there; this project's TypeScript has no DOM types). */
const PAGE_STATE = `({
  state: document.body.dataset.state,
  status: document.getElementById("status").textContent,
  text: document.getElementById("text").textContent,
  equal: document.getElementById("equal").textContent,
  backend: document.getElementById("backend").textContent,
  stats: window.ptpResult,
  chunks: document.querySelectorAll("#text .c0, #text .c1").length,
  checksum: window.ptpInfo.checksum,
})`;

/** The Node CLI's output (text and tokens) for the demo models and a decoder. */
async function nodeOutput(decoder: "single-call" | "ar", seed: string = String(SEED)): Promise<{ text: string; tokens: number[] }> {
  const args = ["generate", "--model", join(DEMO, "teacher.bin"), "--tokenizer", join(DEMO, "tok.bin"), "--student", join(DEMO, "student.safetensors"), "--decoder", decoder, "--prompt", PROMPT, "--steps", String(STEPS), "--temperature", String(TEMPERATURE), "--seed", seed, "--threads", "1"];
  const plain = await runCli(...args);
  expect(plain.code, plain.stderr).toBe(0);
  const json = await runCli(...args, "--json");
  expect(json.code, json.stderr).toBe(0);
  const parsed = JSON.parse(json.stdout) as { outputs: { tokens: number[]; text: string }[] };
  const tokens = parsed.outputs[0].tokens;
  // The plain output is the text and a newline.
  expect(plain.stdout.endsWith("\n")).toBe(true);
  const text = plain.stdout.slice(0, -1);
  expect(parsed.outputs[0].text).toBe(text);
  return { text, tokens };
}

describe.skipIf(!CHROMIUM)("BACKEND-BROWSER: the demo page in headless Chromium", () => {
  let browser: Browser;
  const servers: Record<"isolated" | "plain", { server: Server; url: string }> = {} as never;
  const reference: Partial<Record<"single-call" | "ar", { text: string; tokens: number[] }>> = {};

  beforeAll(async () => {
    execFileSync(process.execPath, [join(ROOT, "scripts/build-web.mjs")], { cwd: ROOT, stdio: "pipe" });
    const { startWebServer } = (await import(join(ROOT, "scripts/web-server.mjs"))) as {
      startWebServer(o: { root: string; port: number; isolate: boolean }): Promise<{ server: Server; url: string }>;
    };
    servers.isolated = await startWebServer({ root: join(ROOT, "dist-web"), port: 0, isolate: true });
    servers.plain = await startWebServer({ root: join(ROOT, "dist-web"), port: 0, isolate: false });
    browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
    reference["single-call"] = await nodeOutput("single-call");
    reference.ar = await nodeOutput("ar");
  });

  afterAll(async () => {
    await browser?.close();
    for (const s of Object.values(servers)) s?.server.close();
  });

  async function runPage(mode: "isolated" | "plain", decoder: "single-call" | "ar", seed: string = String(SEED)): Promise<PageResult> {
    const page = await browser.newPage();
    const log: string[] = [];
    page.on("console", (m) => log.push(`console.${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => log.push(`pageerror: ${String(e)}`));
    try {
      await page.setViewport({ width: 1100, height: 900 });
      const q = new URLSearchParams({ prompt: PROMPT, decoder, seed, steps: String(STEPS), temperature: String(TEMPERATURE), threads: String(THREADS), autorun: "1" });
      await page.goto(`${servers[mode].url}?${q}`);
      await page.waitForFunction('["done", "error"].includes(document.body.dataset.state)', { timeout: 100_000 });
      const shot = join(SHOTS, `page-${mode}-${decoder}.png`);
      await page.screenshot({ path: shot, fullPage: true });
      console.log(`browser-page.test.ts: screenshot ${shot}`);
      return (await page.evaluate(PAGE_STATE)) as PageResult;
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${log.join("\n")}`);
    } finally {
      await page.close();
    }
  }

  for (const mode of ["isolated", "plain"] as const) {
    for (const decoder of ["single-call", "ar"] as const) {
      it(`${mode === "isolated" ? "threaded (cross-origin isolated)" : "single-thread (not isolated)"}, ${decoder}: the page's text equals the Node CLI's token for token`, async () => {
        const r = await runPage(mode, decoder);
        expect(r.state, r.status).toBe("done");
        const ref = reference[decoder]!;
        expect(r.stats.tokens).toEqual(ref.tokens);
        expect(r.stats.arTokens).toEqual(reference.ar!.tokens);
        expect(r.text).toBe(ref.text);
        expect(r.equal).toBe("yes");
        // The teacher checksum is the same digest in the browser as in Node.
        expect(r.checksum).toBe(teacherChecksum(readCheckpoint(join(DEMO, "teacher.bin"))));
        expect(r.stats.equal).toBe(true);
        expect(r.stats.generated).toBeGreaterThan(0);
        // Every accepted chunk is highlighted: one span per call that accepted tokens.
        expect(r.chunks).toBeGreaterThan(0);
        if (decoder === "ar") expect(r.stats.calls).toBe(r.stats.arCalls);
        else expect(r.stats.calls).toBeLessThan(r.stats.arCalls);
        if (mode === "isolated") {
          expect(r.backend).toContain(`${THREADS} threads (cross-origin isolated)`);
          if (decoder === "single-call") expect(r.stats.threadedCalls).toBeGreaterThan(0);
        } else {
          expect(r.backend).toContain("1 thread");
          expect(r.backend).toContain("not cross-origin isolated");
          expect(r.stats.threadedCalls).toBe(0);
        }
      });
    }
  }
  it("BACKEND-BROWSER-INPUTS: a seed past 2^53 is read exactly (the CLI's text); garbage model files show an error naming the file and keep the loaded model", async () => {
    const big = "9007199254740993"; // 2^53 + 1: a JavaScript number would read 2^53
    const ref = await nodeOutput("ar", big);
    const r = await runPage("plain", "ar", big);
    expect(r.state, r.status).toBe("done");
    expect(r.stats.tokens).toEqual(ref.tokens);
    expect(r.stats.tokens).not.toEqual((await nodeOutput("ar", "9007199254740992")).tokens);

    const garbage = mkdtempSync(join(tmpdir(), "ptp-garbage-"));
    const teacher = join(garbage, "model.bin"),
      tok = join(garbage, "tok.bin");
    writeFileSync(teacher, "not a checkpoint at all\n");
    writeFileSync(tok, "not a tokenizer either\n");
    const page = await browser.newPage();
    try {
      await page.goto(`${servers.plain.url}?${new URLSearchParams({ prompt: PROMPT, decoder: "ar", seed: String(SEED), steps: "80", autorun: "0" })}`);
      await page.waitForFunction('document.body.dataset.state === "ready"', { timeout: 100_000 });
      const picker = await page.$("#picker");
      await (picker as unknown as { uploadFile(...paths: string[]): Promise<void> }).uploadFile(teacher, tok);
      await page.waitForFunction('document.body.dataset.state === "error"', { timeout: 100_000 });
      const status = (await page.evaluate('document.getElementById("status").textContent')) as string;
      expect(status).toMatch(/^error: model\.bin: /);
      // The demo model is still loaded: Run decodes with it.
      await page.evaluate('document.getElementById("settings").requestSubmit()');
      await page.waitForFunction('["done", "error"].includes(document.body.dataset.state)', { timeout: 100_000 });
      const after = (await page.evaluate(PAGE_STATE)) as PageResult;
      expect(after.state, after.status).toBe("done");
      expect(after.stats.generated, JSON.stringify({ text: after.text, status: after.status, tokens: after.stats.tokens })).toBeGreaterThan(0);
    } finally {
      await page.close();
    }
  });
});
