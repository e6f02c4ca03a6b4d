// The page: settings in, text and stats out. The engine runs in a Web Worker
// (engine-worker.ts); URL parameters (prompt, decoder, temperature, seed,
// steps, window, budget, threads; autorun=0 to wait for Run) prefill the settings.
import { PAGE_DECODERS, type FromWorker, type ModelFiles, type RunSettings, type RunStats, type ToWorker } from "./protocol.js";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const form = $<HTMLFormElement>("settings");
const text = $("text");
const runButton = $<HTMLButtonElement>("run");
const params = new URLSearchParams(location.search);

const decoderSelect = $<HTMLSelectElement>("decoder");
for (const d of PAGE_DECODERS) decoderSelect.add(new Option(d, d));
for (const name of ["prompt", "decoder", "temperature", "seed", "steps", "window", "budget"]) {
  const v = params.get(name);
  if (v !== null) ($(name) as HTMLInputElement).value = v;
}
// Absent: the backend's default (the cores, at most its limit).
const threadsParam = params.get("threads");
const threads = threadsParam === null ? undefined : Number(threadsParam);

const worker = new Worker(new URL("./engine-worker.js", import.meta.url), { type: "module", name: "ptp-engine" });
const send = (m: ToWorker, transfer: Transferable[] = []) => worker.postMessage(m, transfer);
// A worker that fails to load or dies would otherwise leave the page "loading" for good.
worker.onerror = (e) => {
  runButton.disabled = true;
  setStatus(`error: the engine worker failed${e.message ? `: ${e.message}` : ""} (reload the page)`, true);
};
worker.onmessageerror = () => setStatus("error: a message from the engine worker could not be read", true);

let decoder = new TextDecoder();
let chunkIndex = 0;
let autorun = params.get("autorun") !== "0"; // the demo runs once on opening, unless autorun=0

function setStatus(s: string, error = false): void {
  $("status").textContent = s;
  $("status").classList.toggle("error", error);
  document.body.dataset.state = error ? "error" : s;
}

function span(bytes: Uint8Array, cls: string): void {
  const el = document.createElement("span");
  el.className = cls;
  el.textContent = decoder.decode(bytes, { stream: true });
  text.append(el);
}

function settings(): RunSettings {
  const num = (id: string) => Number(($(id) as HTMLInputElement).value);
  return {
    prompt: $<HTMLInputElement>("prompt").value,
    decoder: decoderSelect.value as RunSettings["decoder"],
    temperature: num("temperature"),
    seed: ($("seed") as HTMLInputElement).value.trim(),
    steps: num("steps"),
    window: num("window"),
    budget: num("budget"),
  };
}

function showStats(s: RunStats): void {
  const equal = $("equal");
  equal.textContent = s.equal ? "yes" : "no";
  equal.className = s.equal ? "yes" : "no";
  const ratio = (a: number, b: number) => (b > 0 ? (a / b).toFixed(2) : "n/a");
  $("calls").textContent = `${s.calls} (AR: ${s.arCalls}; ${ratio(s.arCalls, s.calls)}x fewer)`;
  $("accepted").textContent = `${s.meanAccepted.toFixed(2)} (mean over ${s.generated} tokens)`;
  $("threaded").textContent = String(s.threadedCalls);
  $("speed").textContent = `${s.tokensPerSecond.toFixed(0)} with ${s.decoder}, ${s.arTokensPerSecond.toFixed(0)} with AR (speedup ${ratio(s.tokensPerSecond, s.arTokensPerSecond)}x)`;
  const hist = $("histogram");
  hist.replaceChildren();
  const max = Math.max(1, ...s.acceptedHistogram);
  s.acceptedHistogram.forEach((count, accepted) => {
    if (accepted === 0) return;
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.style.height = `${(100 * count) / max}%`;
    bar.title = `${count} calls accepted ${accepted} token${accepted === 1 ? "" : "s"}`;
    const label = document.createElement("span");
    label.textContent = String(accepted);
    bar.append(label);
    hist.append(bar);
  });
  (window as unknown as { ptpResult: RunStats }).ptpResult = s;
}

worker.onmessage = (e: MessageEvent<FromWorker>) => {
  const m = e.data;
  switch (m.type) {
    case "loaded":
      (window as unknown as { ptpInfo: typeof m.info }).ptpInfo = m.info;
      $("teacher").textContent = m.info.teacher;
      $("student").textContent = m.info.student;
      $("backend").textContent = `${m.info.backend}, ${m.info.threads} thread${m.info.threads === 1 ? "" : "s"}` + (m.info.crossOriginIsolated ? " (cross-origin isolated)" : "") + (m.info.threadNote ? `; ${m.info.threadNote}` : "");
      runButton.disabled = false;
      setStatus("ready");
      if (autorun) {
        autorun = false;
        form.requestSubmit();
      }
      break;
    case "start":
      decoder = new TextDecoder();
      chunkIndex = 0;
      text.replaceChildren();
      span(m.prompt, "prompt");
      break;
    case "chunk":
      span(m.bytes, `c${chunkIndex++ % 2}`);
      break;
    case "done":
      // The final text from the decoder's own chunks (the same bytes as streamed).
      decoder = new TextDecoder();
      text.replaceChildren();
      span(m.prompt, "prompt");
      m.chunks.forEach((bytes, j) => span(bytes, `c${j % 2}`));
      text.append(decoder.decode());
      showStats(m.stats);
      runButton.disabled = false;
      setStatus("done");
      break;
    case "error":
      runButton.disabled = false;
      setStatus(`error: ${m.message}`, true);
      break;
  }
};

form.addEventListener("submit", (e) => {
  e.preventDefault();
  runButton.disabled = true;
  for (const id of ["equal", "calls", "accepted", "speed"]) $(id).textContent = "…";
  $("equal").className = "";
  setStatus("running");
  send({ type: "run", settings: settings() });
});

function load(files?: ModelFiles): void {
  runButton.disabled = true;
  setStatus("loading");
  send({ type: "load", files, threads }, files ? [files.teacher.bytes, files.tokenizer.bytes, ...(files.student ? [files.student.bytes] : [])] : []);
}

/** Sorts picked or dropped files: .safetensors is the student; of the .bin files, the one named *tok* is the tokenizer. */
async function loadFiles(list: FileList | null): Promise<void> {
  const files = [...(list ?? [])];
  const student = files.find((f) => f.name.endsWith(".safetensors"));
  const bins = files.filter((f) => f.name.endsWith(".bin"));
  const tokenizer = bins.find((f) => /tok/i.test(f.name));
  const teacher = bins.find((f) => f !== tokenizer);
  if (!teacher || !tokenizer) {
    setStatus(`error: expected a checkpoint .bin and a tokenizer .bin (named *tok*), got ${files.map((f) => f.name).join(", ") || "no files"}`, true);
    return;
  }
  const read = async (f: File) => ({ name: f.name, bytes: await f.arrayBuffer() });
  try {
    load({ teacher: await read(teacher), tokenizer: await read(tokenizer), student: student && (await read(student)) });
  } catch (e) {
    // A file too large for memory, or one the browser can no longer read.
    setStatus(`error: could not read the files (${e instanceof Error ? e.message : String(e)})`, true);
  }
}

const drop = $("files");
drop.addEventListener("dragover", (e) => {
  e.preventDefault();
  drop.classList.add("drag");
});
drop.addEventListener("dragleave", () => drop.classList.remove("drag"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("drag");
  void loadFiles(e.dataTransfer?.files ?? null);
});
$<HTMLInputElement>("picker").addEventListener("change", (e) => void loadFiles((e.target as HTMLInputElement).files));
$("demo").addEventListener("click", () => load());

load();
