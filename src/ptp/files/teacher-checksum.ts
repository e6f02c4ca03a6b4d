import { sha256 } from "@noble/hashes/sha2";
import { bytesToHex } from "@noble/hashes/utils";
import { isNode, nodeBuiltin } from "../../host/node-builtin.js";
import { LLAMA2C_NORM_EPS, LLAMA2C_ROPE_THETA } from "../../model/config.js";
import { Transformer, type WeightName } from "../../model/transformer.js";
import { checkCheckpoint, type Checkpoint } from "../../model/weights.js";
import { describeValue } from "../../util/checks.js";

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** A SHA-256 being fed: bytes in, the hex digest out. */
interface Hash {
  update(bytes: Uint8Array): void;
  hex(): string;
}

/**
 * SHA-256 from node:crypto on Node (native, ~9x the pure-JS speed on the
 * benchmark VM: 1.6 GB/s against 180 MB/s, which at 110M is 0.3 s against
 * 2.4 s), else @noble/hashes' pure JS (browsers). The digest is the same.
 */
function newHash(): Hash {
  if (isNode()) {
    const h = nodeBuiltin<typeof import("node:crypto")>("node:crypto", "teacherChecksum", "").createHash("sha256");
    return { update: (b) => void h.update(b), hex: () => h.digest("hex") };
  }
  return pureJsHash();
}

/** @noble/hashes' SHA-256 as a Hash (what browsers use; tests compare it with node:crypto's). */
export function pureJsHash(): Hash {
  const h = sha256.create();
  return { update: (b) => void h.update(b), hex: () => bytesToHex(h.digest()) };
}

function updateFloats(hash: Hash, a: Float32Array): void {
  if (LITTLE_ENDIAN_HOST) {
    hash.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    return;
  }
  const CHUNK = 1 << 16;
  const buf = new Uint8Array(4 * Math.min(CHUNK, a.length));
  const dv = new DataView(buf.buffer);
  for (let start = 0; start < a.length; start += CHUNK) {
    const n = Math.min(CHUNK, a.length - start);
    for (let i = 0; i < n; i++) dv.setFloat32(4 * i, a[start + i], true);
    hash.update(buf.subarray(0, 4 * n));
  }
}

/**
 * A fingerprint of a teacher (its checkpoint, or the Transformer holding its
 * weights, as loadModel makes it): the SHA-256 hex digest of its 7 header ints
 * (dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, seqLen) as int32
 * little-endian, a byte 1/0 for a shared/separate classifier, then every
 * weight array in llama2.c v0 order (token embedding; rmsAtt of all layers,
 * then wq, wk, wv, wo, rmsFfn, w1, w2, w3 likewise; rmsFinal; the classifier
 * when separate) as float32 little-endian bytes; then, only for a teacher
 * whose RMSNorm epsilon or RoPE base is not llama2.c's (1e-5, 10000: a
 * Hugging Face folder may set them), both as float64 little-endian, so two
 * teachers that differ only there differ, and every llama2.c checkpoint
 * keeps the digest it had. It does not depend on the file format the
 * teacher was loaded from (v0 or v1, RoPE tables excluded).
 * A Transformer's weights are read from its backend's buffers (Transformer.
 * withWeightRows), so the digest is the same as its checkpoint's.
 */
export function teacherChecksum(teacher: Checkpoint | Transformer): string {
  return teacherChecksumWith(teacher, newHash());
}

/** teacherChecksum through a given SHA-256 (tests: node:crypto's and the pure-JS one agree). */
export function teacherChecksumWith(teacher: Checkpoint | Transformer, hash: Hash): string {
  if (teacher instanceof Transformer) return checksumOf(teacher.config, hash, (name, layer, use) => teacher.withWeightRows(name, layer, use));
  if (teacher === null || typeof teacher !== "object") throw new TypeError(`teacherChecksum: teacher must be a Checkpoint (readModel) or a Transformer (loadModel), got ${describeValue(teacher)}`);
  // Its config and every tensor's length (as Transformer checks them): a checkpoint missing one has no checksum.
  checkCheckpoint(teacher, "teacherChecksum");
  const w = teacher.weights;
  return checksumOf(teacher.config, hash, (name, layer, use) => use(layer === undefined ? w[name as "tokenEmbedding" | "rmsFinal" | "wcls"] : w.layers[layer][name as keyof (typeof w.layers)[number]]));
}

/** The digest over the header and each weight, in the order teacherChecksum documents; `rows` hands a weight's floats to `use`. */
function checksumOf(c: Checkpoint["config"], hash: Hash, rows: (name: WeightName, layer: number | undefined, use: (a: Float32Array) => void) => void): string {
  const feed = (a: Float32Array): void => updateFloats(hash, a);
  const header = new Uint8Array(29);
  const dv = new DataView(header.buffer);
  [c.dim, c.hiddenDim, c.nLayers, c.nHeads, c.nKvHeads, c.vocabSize, c.seqLen].forEach((v, i) => dv.setInt32(4 * i, v, true));
  header[28] = c.sharedClassifier ? 1 : 0;
  hash.update(header);
  rows("tokenEmbedding", undefined, feed);
  for (const field of ["rmsAtt", "wq", "wk", "wv", "wo", "rmsFfn", "w1", "w2", "w3"] as const) {
    for (let l = 0; l < c.nLayers; l++) rows(field, l, feed);
  }
  rows("rmsFinal", undefined, feed);
  if (!c.sharedClassifier) rows("wcls", undefined, feed);
  if (c.normEps !== LLAMA2C_NORM_EPS || c.ropeTheta !== LLAMA2C_ROPE_THETA) {
    const tail = new DataView(new ArrayBuffer(16));
    tail.setFloat64(0, c.normEps, true);
    tail.setFloat64(8, c.ropeTheta, true);
    hash.update(new Uint8Array(tail.buffer));
  }
  return hash.hex();
}
