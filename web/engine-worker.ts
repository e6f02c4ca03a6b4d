// The engine, in a Web Worker: loads the models from bytes, decodes with the
// chosen decoder (streaming each call's accepted tokens to the page) and
// again with AR on the same u's, and reports the comparison.
import { PtpModel, Tokenizer, Transformer, XorShiftAux, checkStudentMatchesTeacher, chunkBytes, createBackend, decode, parseCheckpoint, parseStudent, teacherChecksum, tokenBytes, type DecodeOptions, type WasmBackend } from "../src/browser.js";
import type { FromWorker, ModelFiles, RunSettings, ToWorker } from "./protocol.js";

interface WorkerScope {
  onmessage: ((e: { data: ToWorker }) => void) | null;
  postMessage(message: FromWorker): void;
  crossOriginIsolated: boolean;
  location: { href: string };
}
const scope = self as unknown as WorkerScope;
const post = (m: FromWorker) => scope.postMessage(m);

/** The shipped demo models, copied next to the page by build:web. */
const DEMO = { teacher: "demo/teacher.bin", tokenizer: "demo/tok.bin", student: "demo/student.safetensors" } as const;

interface Session {
  backend: WasmBackend;
  teacher: Transformer;
  model: PtpModel;
  tokenizer: Tokenizer;
}
let session: Session | undefined;

async function fetchFile(path: string): Promise<{ name: string; bytes: ArrayBuffer }> {
  const url = new URL(`./${path}`, scope.location.href);
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url.href}: HTTP ${res.status} (expected ${path}; run npm run build:web)`);
  return { name: path, bytes: await res.arrayBuffer() };
}

/** Counts loads: only the latest one's session is kept (files dropped while the demo still loads replace it). */
let loads = 0;

async function load(files: ModelFiles | undefined, threads: number | undefined): Promise<void> {
  const id = ++loads;
  // The files are read before the session in use goes: bad files leave it as it was.
  const f = files ?? {
    teacher: await fetchFile(DEMO.teacher),
    tokenizer: await fetchFile(DEMO.tokenizer),
    student: await fetchFile(DEMO.student),
  };
  const checkpoint = parseCheckpoint(new Uint8Array(f.teacher.bytes), f.teacher.name);
  const tokenizer = Tokenizer.fromBytes(new Uint8Array(f.tokenizer.bytes), checkpoint.config.vocabSize, f.tokenizer.name);
  const student = f.student ? parseStudent(new Uint8Array(f.student.bytes), f.student.name) : undefined;
  const checksum = teacherChecksum(checkpoint);
  if (student) checkStudentMatchesTeacher(student, checkpoint, checksum, f.student!.name);
  // The .wasm builds lie next to this worker's bundle.
  const backend = (await createBackend("wasm", { threads, wasmBaseUrl: new URL("./", scope.location.href) })) as WasmBackend;
  await backend.startThreads();
  const teacher = new Transformer(backend, checkpoint);
  const model = new PtpModel(teacher, student);
  const loaded = { backend, teacher, model, tokenizer };
  if (id !== loads) {
    // A later load started meanwhile: it wins.
    dispose(loaded);
    return;
  }
  dispose(session);
  session = loaded;
  // Warm-up (JIT tiers, allocations), so the first timed run pays for none of it.
  const warm = tokenizer.encode("Once", true, false);
  const aux = () => [new XorShiftAux(1n)];
  decode(model, [warm], { decoder: "ar", steps: 48, sampling: { temperature: 1 }, aux: aux() });
  if (student) decode(model, [warm], { decoder: "single-call", steps: 48, sampling: { temperature: 1 }, aux: aux() });
  const c = checkpoint.config,
    s = student?.config;
  post({
    type: "loaded",
    info: {
      teacher: `${f.teacher.name} (dim ${c.dim}, ${c.nLayers} layers, vocab ${c.vocabSize}, seqLen ${c.seqLen}; checksum ${checksum.slice(0, 12)}…)`,
      checksum,
      student: s ? `${f.student!.name} (${s.variant}-PTP, rank ${s.rank}, window ${s.window})` : "none (AR only)",
      backend: backend.description,
      threads: backend.threads,
      threadNote: backend.threadNote,
      crossOriginIsolated: scope.crossOriginIsolated === true,
    },
  });
}

function run(settings: RunSettings): void {
  if (!session) throw new Error("no model loaded");
  const { backend, model, tokenizer } = session;
  if (settings.decoder !== "ar" && !model.student) throw new Error(`decoder ${settings.decoder} needs a student; load one or choose ar`);
  // Exact, as the CLI's --seed (a JavaScript number would round seeds past 2^53).
  if (!/^[0-9]+$/.test(settings.seed) || BigInt(settings.seed) < 1n || BigInt(settings.seed) >= 2n ** 64n) throw new Error(`seed must be an integer from 1 to 2^64 - 1, got ${JSON.stringify(settings.seed)}`);
  const seed = BigInt(settings.seed);
  const prompt = tokenizer.encode(settings.prompt, true, false);
  const common = {
    steps: settings.steps,
    sampling: { temperature: settings.temperature },
    window: settings.window > 0 ? settings.window : undefined,
    budget: settings.budget > 0 ? settings.budget : undefined,
  };
  post({ type: "start", prompt: tokenBytes(tokenizer, prompt, 1, prompt.length) });
  let shown = prompt.length;
  const onCall: DecodeOptions["onCall"] = (tokens) => {
    const t = tokens[0];
    if (t.length === shown) return;
    post({ type: "chunk", bytes: tokenBytes(tokenizer, t, shown, t.length), tokens: t.length - shown });
    shown = t.length;
  };
  const threadedBefore = backend.threadedCalls;
  const ptp = decode(model, [prompt], { ...common, decoder: settings.decoder, aux: [new XorShiftAux(seed)], onCall });
  const threadedCalls = backend.threadedCalls - threadedBefore;
  const ar = decode(model, [prompt], { ...common, decoder: "ar", aux: [new XorShiftAux(seed)] });
  const tokens = ptp.outputs[0],
    arTokens = ar.outputs[0];
  const text = chunkBytes(tokenizer, tokens, ptp.chunks[0]);
  post({
    type: "done",
    prompt: text.prompt,
    chunks: text.chunks,
    stats: {
      decoder: settings.decoder,
      generated: ptp.stats.generatedTokens,
      calls: ptp.stats.modelCalls,
      arCalls: ar.stats.modelCalls,
      meanAccepted: ptp.stats.meanAccepted,
      acceptedHistogram: ptp.stats.acceptedHistogram,
      tokensPerSecond: ptp.stats.tokensPerSecond,
      arTokensPerSecond: ar.stats.tokensPerSecond,
      equal: tokens.length === arTokens.length && tokens.every((t, i) => t === arTokens[i]),
      threadedCalls,
      tokens,
      arTokens,
    },
  });
}

function dispose(s: Session | undefined): void {
  s?.model.dispose();
  s?.teacher.dispose();
  s?.backend.dispose();
}

scope.onmessage = (e) => {
  const m = e.data;
  (async () => {
    if (m.type === "load") await load(m.files, m.threads);
    else run(m.settings);
  })().catch((err: unknown) => post({ type: "error", message: err instanceof Error ? err.message : String(err) }));
};
