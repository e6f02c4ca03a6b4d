import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { readCheckpoint } from "../src/io/checkpoint.js";
import { hfTensors } from "../src/io/hf-checkpoint.js";
import { serializeSafetensors, readSafetensors, type SafeTensor } from "../src/io/safetensors.js";
import { LINEAR_NAMES, linearShape } from "../src/model/weights.js";
import { readStudent, serializeStudent } from "../src/ptp/files/adapter-file.js";
import { randomStudent } from "../src/ptp/init.js";
import { readPeftStudent, studentToPeft, writePeftStudent } from "../src/ptp/files/peft.js";
import type { Student } from "../src/ptp/student-weights.js";
import { teacherChecksum } from "../src/ptp/files/teacher-checksum.js";
import { formatError, runCli, STORIES_260K, tinyCheckpoint, TOK_512 } from "./helpers.js";

const tmp = mkdtempSync(join(tmpdir(), "ptp-peft-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let counter = 0;
const fresh = (): string => join(tmp, `p${counter++}`);

const MODULES: Record<string, string> = { wq: "self_attn.q_proj", wk: "self_attn.k_proj", wv: "self_attn.v_proj", wo: "self_attn.o_proj", w1: "mlp.gate_proj", w2: "mlp.down_proj", w3: "mlp.up_proj" };

describe("PEFT folders", () => {
  it("PEFT-ROUNDTRIP: student -> PEFT folder -> student is bit-identical (every variant and aux kind)", () => {
    fc.assert(
      fc.property(tinyCheckpoint, fc.constantFrom("O" as const, "C" as const), fc.constantFrom({ kind: "bits" as const }, { kind: "anchors" as const }, { kind: "digits" as const, digits: 5 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 1000 }), (teacher, variant, aux, rank, seed) => {
        const student = randomStudent(teacher, teacherChecksum(teacher), { variant, rank, alpha: 3.5, aux, window: 7, seed });
        const dir = fresh();
        writePeftStudent(dir, student, { baseModel: "some/base" });
        const back = readPeftStudent(dir);
        expect(Buffer.from(serializeStudent(back)).equals(Buffer.from(serializeStudent(student)))).toBe(true);
      }),
      { numRuns: 30 },
    );
  });

  it("PEFT-NAMES: PEFT's tensor names, shapes and adapter_config.json; merging the LoRA into the HF teacher equals the HF form of the merged llama2.c model", () => {
    const teacher = readCheckpoint(STORIES_260K);
    const c = teacher.config;
    const student = randomStudent(teacher, teacherChecksum(teacher), { variant: "O", rank: 3, alpha: 6, aux: { kind: "anchors" }, window: 8, seed: 5 });
    const dir = fresh();
    writePeftStudent(dir, student, { baseModel: "stories260K" });
    const cfg = JSON.parse(readFileSync(join(dir, "adapter_config.json"), "utf8"));
    expect(cfg).toMatchObject({ peft_type: "LORA", r: 3, lora_alpha: 6, base_model_name_or_path: "stories260K", use_rslora: false, bias: "none" });
    expect([...cfg.target_modules].sort()).toEqual(["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]);
    expect(cfg.ptp).toMatchObject({ variant: "O", aux_kind: "anchors", window: 8, gate: "auxiliary-slots", teacher_checksum: teacherChecksum(teacher) });
    const file = readSafetensors(join(dir, "adapter_model.safetensors"));
    expect(JSON.parse(Buffer.from(file.tensors.get("ptp.config")!.data as Uint8Array).toString("utf8"))).toEqual(cfg.ptp);
    expect(file.tensors.get("u_embed.embedding.weight")!.shape).toEqual([3, c.dim]);
    const hfTeacher = hfTensors(teacher);
    // a merged llama2.c model W + (alpha/r) B A, converted to HF ...
    const scale = 6 / 3;
    const merged = structuredClone(teacher);
    for (let l = 0; l < c.nLayers; l++) {
      for (const name of LINEAR_NAMES) {
        const [out, inp] = linearShape(c, name);
        const { A, B } = student.weights.layers[l][name];
        const W = merged.weights.layers[l][name];
        for (let o = 0; o < out; o++)
          for (let i = 0; i < inp; i++) {
            let s = 0;
            for (let k = 0; k < 3; k++) s += B[o * 3 + k] * A[k * inp + i];
            W[o * inp + i] = Math.fround(W[o * inp + i] + Math.fround(scale * s));
          }
      }
    }
    const hfMerged = hfTensors(merged);
    // ... equals PEFT's merge of the exported LoRA into the HF teacher
    for (let l = 0; l < c.nLayers; l++) {
      for (const name of LINEAR_NAMES) {
        const [out, inp] = linearShape(c, name);
        const key = `model.layers.${l}.${MODULES[name]}.weight`;
        const A = file.tensors.get(`base_model.model.${key.replace(/\.weight$/, "")}.lora_A.weight`)!;
        const B = file.tensors.get(`base_model.model.${key.replace(/\.weight$/, "")}.lora_B.weight`)!;
        expect(A.shape).toEqual([3, inp]);
        expect(B.shape).toEqual([out, 3]);
        const W = hfTeacher.get(key)!.data,
          want = hfMerged.get(key)!.data;
        let differing = 0;
        for (let o = 0; o < out; o++)
          for (let i = 0; i < inp; i++) {
            let s = 0;
            for (let k = 0; k < 3; k++) s += B.data[o * 3 + k] * A.data[k * inp + i];
            if (!Object.is(Math.fround(W[o * inp + i] + Math.fround(scale * s)), want[o * inp + i])) differing++;
          }
        expect(differing, key).toBe(0);
      }
    }
  });
});

async function generateJson(...args: string[]) {
  const r = await runCli("generate", "--tokenizer", TOK_512, "--prompt", "Once upon a time", "--steps", "40", "--temperature", "0.8", "--seed", "3", "--backend", "wasm", "--json", ...args);
  expect(r.code, r.stderr).toBe(0);
  const out = JSON.parse(r.stdout);
  expect(out.stats.equalsAR).toBe(true);
  return { tokens: out.tokens, text: out.text, calls: out.stats.modelCalls, histogram: out.stats.acceptedHistogram };
}

describe("PEFT folders in decoding", () => {
  const student = join(tmp, "student.safetensors");
  const hfTeacher = join(tmp, "stories-hf");

  it("PEFT-DECODE: `ptp export-peft` then `generate --student DIR` decodes exactly as the adapter file (same tokens, calls, accepted counts)", async () => {
    expect((await runCli("random-student", "--model", STORIES_260K, "--rank", "4", "--variant", "O", "--aux", "anchors", "--out", student, "--seed", "9")).code).toBe(0);
    const dir = fresh();
    const r = await runCli("export-peft", student, "--out", dir, "--base-model", "stories260K");
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(join(dir, "adapter_model.safetensors"))).toBe(true);
    const again = await runCli("export-peft", student, "--out", dir);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already exists/);
    const a = await generateJson("--model", STORIES_260K, "--student", student);
    const b = await generateJson("--model", STORIES_260K, "--student", dir);
    expect(b).toEqual(a);
    const info = JSON.parse((await runCli("inspect", dir, "--json")).stdout);
    expect(info.kind).toBe("student");
    expect(info.config).toEqual(readStudent(student).config);
  });

  it("PEFT-REFERENCE: a folder in the reference code's naming (Lightning/PEFT keys, u_embed anchors, no PTP settings) loads with its HF teacher and decodes exactly", async () => {
    expect((await runCli("convert", "--model", STORIES_260K, "--to", "hf", "--out", hfTeacher)).code).toBe(0);
    // The reference code's students have no hybrid slot input.
    const plain = `${fresh()}.safetensors`;
    expect((await runCli("random-student", "--model", STORIES_260K, "--rank", "4", "--variant", "O", "--aux", "anchors", "--slot-input", "aux", "--out", plain, "--seed", "9")).code).toBe(0);
    const ours: Student = readStudent(plain);
    const c = ours.config;
    const t = c.teacherShape;
    // What the reference's adapter-only state dict holds, written by hand: HF-order q/k rows for B.
    const hs = t.dim / t.nHeads;
    const toHf = (B: Float32Array, heads: number): Float32Array => {
      const out = new Float32Array(B.length);
      for (let h = 0; h < heads; h++)
        for (let i = 0; i < hs / 2; i++)
          for (let b = 0; b < 2; b++) {
            out.set(B.subarray((h * hs + 2 * i + b) * c.rank, (h * hs + 2 * i + b + 1) * c.rank), (h * hs + b * (hs / 2) + i) * c.rank);
          }
      return out;
    };
    const tensors: Record<string, SafeTensor> = {};
    ours.weights.layers.forEach((layer, l) => {
      for (const name of LINEAR_NAMES) {
        const [out, inp] = linearShape(t, name);
        const key = `model.model.base_model.model.model.layers.${l}.${MODULES[name]}`;
        let B = layer[name].B;
        if (name === "wq") B = toHf(B, t.nHeads);
        if (name === "wk") B = toHf(B, t.nKvHeads);
        tensors[`${key}.lora_A.default.weight`] = { dtype: "F32", shape: [c.rank, inp], data: layer[name].A };
        tensors[`${key}.lora_B.default.weight`] = { dtype: "F32", shape: [out, c.rank], data: B };
      }
    });
    tensors["model.u_adapter.embedding.weight"] = { dtype: "F32", shape: [3, t.dim], data: ours.weights.aux.anchors! };
    const dir = fresh();
    mkdirSync(dir);
    writeFileSync(join(dir, "adapter_model.safetensors"), serializeSafetensors(tensors));
    writeFileSync(
      join(dir, "adapter_config.json"),
      JSON.stringify({
        peft_type: "LORA",
        task_type: "CAUSAL_LM",
        r: c.rank,
        lora_alpha: c.alpha,
        target_modules: ["q_proj", "v_proj", "k_proj", "o_proj", "up_proj", "down_proj", "gate_proj"],
        lora_dropout: 0.0,
        bias: "none",
        use_rslora: false,
        use_dora: false,
        fan_in_fan_out: false,
        modules_to_save: null,
        base_model_name_or_path: "stories260K-hf",
        rank_pattern: {},
        alpha_pattern: {},
      }),
    );
    // without its teacher it cannot know the shape
    expect(formatError(() => readPeftStudent(dir), join(dir, "adapter_config.json")).message).toMatch(/no "ptp" settings/);
    const teacher = readCheckpoint(STORIES_260K);
    const loaded = readPeftStudent(dir, { teacher: { checkpoint: teacher, checksum: teacherChecksum(teacher) }, window: c.window });
    expect(Buffer.from(serializeStudent(loaded)).equals(Buffer.from(serializeStudent(ours)))).toBe(true);
    const a = await generateJson("--model", STORIES_260K, "--student", plain);
    const b = await generateJson("--model", hfTeacher, "--student", dir, "--window", String(c.window));
    expect(b).toEqual(a);
    // export-peft with its teacher turns it into our layout, PTP settings included
    const ours2 = fresh();
    expect((await runCli("export-peft", dir, "--out", ours2)).code).toBe(1);
    const r = await runCli("export-peft", dir, "--model", hfTeacher, "--out", ours2);
    expect(r.code, r.stderr).toBe(0);
    const again = readPeftStudent(ours2);
    expect(again.config).toMatchObject({ variant: "O", window: 16, rank: c.rank, alpha: c.alpha, teacherChecksum: c.teacherChecksum });
    // INSPECT-PEFT-REFERENCE: inspect reads it with its teacher (--model), names the missing config of a folder holding only
    // the weights, and refuses --model for anything but a PEFT folder.
    expect((await runCli("inspect", dir)).code).toBe(1);
    const info = JSON.parse((await runCli("inspect", dir, "--model", hfTeacher, "--json")).stdout);
    expect(info.kind).toBe("student");
    expect(info.config).toMatchObject({ variant: "O", rank: c.rank, teacherChecksum: c.teacherChecksum });
    const weightsOnly = fresh();
    mkdirSync(weightsOnly);
    writeFileSync(join(weightsOnly, "adapter_model.safetensors"), readFileSync(join(dir, "adapter_model.safetensors")));
    const missing = await runCli("inspect", weightsOnly);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(join(weightsOnly, "adapter_config.json"));
    const notPeft = await runCli("inspect", STORIES_260K, "--model", hfTeacher);
    expect(notPeft.code).toBe(2);
    expect(notPeft.stderr.split("\n")[0]).toBe(`ptp inspect: --model goes with a PEFT folder (the teacher of one without ptp settings); ${STORIES_260K} is not one`);
  });

  it("PEFT-REFERENCE-SUBSET: modules left out of target_modules get zero LoRA (the teacher's own outputs), and the binary u-embedding under its old name loads", () => {
    const teacher = readCheckpoint(STORIES_260K);
    const checksum = teacherChecksum(teacher);
    const s = randomStudent(teacher, checksum, { variant: "O", rank: 2, aux: { kind: "bits" }, seed: 4 });
    const { tensors } = studentToPeft(s);
    const subset: Record<string, SafeTensor> = {};
    for (const [k, v] of Object.entries(tensors)) {
      if (k.includes("v_proj") || k.includes("k_proj") || k.includes("q_proj")) subset[k.replace(".weight", ".default.weight")] = v;
    }
    subset["u_adapter.u_adapter.weight"] = tensors["u_embed.u_adapter.weight"];
    subset["u_adapter.u_adapter.bias"] = tensors["u_embed.u_adapter.bias"];
    const dir = fresh();
    mkdirSync(dir);
    writeFileSync(join(dir, "adapter_model.safetensors"), serializeSafetensors(subset));
    writeFileSync(join(dir, "adapter_config.json"), JSON.stringify({ peft_type: "LORA", r: 2, lora_alpha: 8, target_modules: ["q_proj", "k_proj", "v_proj"] }));
    const loaded = readPeftStudent(dir, { teacher: { checkpoint: teacher, checksum } });
    expect(loaded.config).toMatchObject({ variant: "O", aux: { kind: "bits" }, window: 16, rank: 2, alpha: 8 });
    for (let l = 0; l < loaded.weights.layers.length; l++) {
      for (const name of LINEAR_NAMES) {
        const got = loaded.weights.layers[l][name],
          want = s.weights.layers[l][name];
        if (name === "wq" || name === "wk" || name === "wv") {
          expect(Array.from(got.A)).toEqual(Array.from(want.A));
          expect(Array.from(got.B)).toEqual(Array.from(want.B));
        } else {
          expect(got.A.every((x) => x === 0) && got.B.every((x) => x === 0)).toBe(true);
        }
      }
    }
    expect(Array.from(loaded.weights.aux.weight!)).toEqual(Array.from(s.weights.aux.weight!));
  });

  it("PEFT-CONFIG-CHECKS: adapter_config.json must be a regular file (a FIFO or /dev/zero never hangs the read); the ptp settings' version, checksum, teacher shape and layers_to_transform are checked before any loop over layers", () => {
    const teacher = readCheckpoint(STORIES_260K);
    const s = randomStudent(teacher, teacherChecksum(teacher), { variant: "O", rank: 2, aux: { kind: "anchors" }, seed: 1 });
    const { tensors, config } = studentToPeft(s);
    const folder = (edit: (c: Record<string, unknown>) => void, special?: "fifo" | "zero"): string => {
      const dir = fresh();
      mkdirSync(dir);
      writeFileSync(join(dir, "adapter_model.safetensors"), serializeSafetensors(tensors));
      const cfg = join(dir, "adapter_config.json");
      if (special === "fifo") execFileSync("mkfifo", [cfg]);
      else if (special === "zero") symlinkSync("/dev/zero", cfg);
      else {
        const c = structuredClone(config);
        edit(c);
        writeFileSync(cfg, JSON.stringify(c));
      }
      return dir;
    };
    const started = performance.now();
    for (const special of ["fifo", "zero"] as const) {
      const dir = folder(() => {}, special);
      expect(formatError(() => readPeftStudent(dir), join(dir, "adapter_config.json")).message).toMatch(/is not a regular file/);
    }
    const ptp = (c: Record<string, unknown>) => c.ptp as Record<string, unknown>;
    const shape = (c: Record<string, unknown>) => ptp(c).teacher_shape as Record<string, unknown>;
    const cases: [(c: Record<string, unknown>) => void, RegExp][] = [
      [(c) => (ptp(c).format_version = "9"), /"ptp.format_version" must be "1", found "9"/],
      [(c) => delete ptp(c).teacher_checksum, /"ptp.teacher_checksum" must be the teacher's checksum \(a hex string\), found undefined/],
      [(c) => (ptp(c).teacher_checksum = { a: 1 }), /"ptp.teacher_checksum" must be/],
      [(c) => ((shape(c).nLayers = 1e7), (c.layers_to_transform = [0])), /"ptp.teacher_shape" is not a model shape: nLayers must be <= 4096, got 10000000/],
      [(c) => (shape(c).nLayers = 1.5), /"ptp.teacher_shape" is not a model shape: nLayers must be a positive integer, got 1.5/],
      [(c) => (c.layers_to_transform = "x"), /"layers_to_transform" must be null or a list of distinct layer indices in \[0, 5\), found "x"/],
      [(c) => (c.layers_to_transform = [0, 0]), /"layers_to_transform" must be null or a list of distinct layer indices/],
      [(c) => (c.layers_to_transform = [7]), /"layers_to_transform" must be null or a list of distinct layer indices in \[0, 5\)/],
    ];
    for (const [edit, message] of cases) {
      const dir = folder(edit);
      expect(formatError(() => readPeftStudent(dir), join(dir, "adapter_config.json")).message).toMatch(message);
    }
    expect(performance.now() - started).toBeLessThan(10_000);
    // PEFT-TARGETS-AGREE: the config says which pairs the adapter holds, and the "ptp" settings agree with their
    // copy in the "ptp.config" tensor; a folder whose files disagree is refused, never read one way or the other.
    const agree: [(c: Record<string, unknown>) => void, string, RegExp][] = [
      [(c) => (c.target_modules = ["q_proj"]), "adapter_model.safetensors", /tensor "base_model\.model\.model\.layers\.0\.self_attn\.k_proj\.lora_A\.weight" is for k_proj, which target_modules leaves out/],
      [(c) => (c.layers_to_transform = [0]), "adapter_model.safetensors", /tensor "base_model\.model\.model\.layers\.1\.self_attn\.q_proj\.lora_A\.weight" is for layer 1, which layers_to_transform leaves out/],
      [(c) => (c.target_modules = []), "adapter_config.json", /"target_modules" is empty/],
      [(c) => delete c.ptp, "adapter_config.json", /has no "ptp" settings, but the weights hold the "ptp.config" tensor/],
      [(c) => (ptp(c).window = 3), "adapter_config.json", /"ptp" settings differ from their copy in the weights' "ptp.config" tensor: window 3 here, \d+ there/],
    ];
    for (const [edit, file, message] of agree) {
      const dir = folder(edit);
      expect(formatError(() => readPeftStudent(dir, { teacher: { checkpoint: teacher, checksum: teacherChecksum(teacher) } }), join(dir, file)).message).toMatch(message);
    }
    // A byte-order mark is UTF-8 and is read past, as in every other JSON file.
    const bom = folder(() => {});
    writeFileSync(join(bom, "adapter_config.json"), "\ufeff" + JSON.stringify(config));
    expect(readPeftStudent(bom).config.rank).toBe(2);
  });

  it("PEFT-ERRORS: unsupported settings, unknown, missing or mis-shaped tensors and other u-embeddings are refused by name", () => {
    const teacher = readCheckpoint(STORIES_260K);
    const checksum = teacherChecksum(teacher);
    const s = randomStudent(teacher, checksum, { variant: "O", rank: 2, aux: { kind: "anchors" }, seed: 1 });
    const make = (editConfig: (c: Record<string, unknown>) => void, editTensors: (t: Record<string, SafeTensor>) => void = () => {}): string => {
      const { tensors, config } = studentToPeft(s);
      editConfig(config);
      editTensors(tensors);
      const dir = fresh();
      mkdirSync(dir);
      writeFileSync(join(dir, "adapter_model.safetensors"), serializeSafetensors(tensors));
      writeFileSync(join(dir, "adapter_config.json"), JSON.stringify(config));
      return dir;
    };
    const cfgCases: [(c: Record<string, unknown>) => void, RegExp][] = [
      [(c) => (c.use_dora = true), /"use_dora"/],
      [(c) => (c.use_rslora = true), /"use_rslora"/],
      [(c) => (c.bias = "all"), /"bias"/],
      [(c) => (c.rank_pattern = { q_proj: 4 }), /"rank_pattern"/],
      [(c) => (c.modules_to_save = ["lm_head"]), /"modules_to_save"/],
      [(c) => (c.peft_type = "IA3"), /peft_type "IA3"/],
      [(c) => (c.target_modules = ["q_proj", "lm_head"]), /target_modules \["lm_head"\]/],
      [(c) => (c.r = 0), /"r" must be a positive integer/],
      [(c) => (c.task_type = "SEQ_CLS"), /"task_type": "SEQ_CLS" is not supported .*"CAUSAL_LM"/],
      [(c) => (c.lora_dropout = 1.5), /"lora_dropout": 1.5 is not supported \(expected a number in \[0, 1\)/],
      [(c) => (c.lora_alpha = 1e308), /"lora_alpha" must be a number in \[0.001, 10000\], found 1e\+308/],
      [(c) => (c.lora_dropout = "0.1"), /"lora_dropout"/],
      [(c) => (c.base_model_name_or_path = 42), /"base_model_name_or_path": 42 is not supported/],
      [(c) => (c.inference_mode = "yes"), /"inference_mode"/],
    ];
    for (const [edit, message] of cfgCases) {
      const dir = make(edit);
      expect(formatError(() => readPeftStudent(dir), join(dir, "adapter_config.json")).message).toMatch(message);
    }
    const w = (dir: string) => join(dir, "adapter_model.safetensors");
    let dir = make(
      () => {},
      (t) => delete t["base_model.model.model.layers.0.mlp.up_proj.lora_B.weight"],
    );
    expect(formatError(() => readPeftStudent(dir), w(dir)).message).toMatch(/lora_A and lora_B must both be present/);
    dir = make(
      () => {},
      (t) => (t["base_model.model.lm_head.lora_A.weight"] = { dtype: "F32", shape: [1], data: new Float32Array(1) }),
    );
    expect(formatError(() => readPeftStudent(dir), w(dir)).message).toMatch(/unexpected tensor "base_model.model.lm_head.lora_A.weight"/);
    dir = make(
      () => {},
      (t) => (t["u_embed.embedding.weight"] = { dtype: "F32", shape: [2, 64], data: new Float32Array(128) }),
    );
    expect(formatError(() => readPeftStudent(dir), w(dir)).message).toMatch(/has shape \[2, 64\], expected \[3, 64\]/);
    // reference folders (no PTP settings) with u-embeddings this library does not implement
    const teacherOpt = { teacher: { checkpoint: teacher, checksum } };
    dir = make(
      (c) => delete c.ptp,
      (t) => {
        delete t["ptp.config"];
        t["u_embed.embedding.bias"] = { dtype: "F32", shape: [64], data: new Float32Array(64) };
      },
    );
    expect(formatError(() => readPeftStudent(dir, teacherOpt), w(dir)).message).toMatch(/has a bias: a linear feature embedding \(sawtooth or quarter_cos\)/);
    dir = make(
      (c) => delete c.ptp,
      (t) => {
        delete t["ptp.config"];
        t["u_embed.embedding.weight"] = { dtype: "F32", shape: [32, 64], data: new Float32Array(32 * 64) };
      },
    );
    expect(formatError(() => readPeftStudent(dir, teacherOpt), w(dir)).message).toMatch(/only the 3-anchor linear interpolation/);
    // a PEFT student for another teacher
    const r = readPeftStudent(make(() => {}));
    expect(r.config.teacherChecksum).toBe(checksum);
  });
});
