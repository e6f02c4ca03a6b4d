import { sha256 } from "@noble/hashes/sha2";
import { bytesToHex } from "@noble/hashes/utils";
import { checkCheckpoint, type Checkpoint } from "../../model/weights.js";

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Feeds the float32 little-endian bytes of an array to the hash (a view, no copy, on little-endian hosts). */
type Hash = ReturnType<typeof sha256.create>;

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
 * A fingerprint of a teacher: the SHA-256 hex digest of its 7 header ints
 * (dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, seqLen) as int32
 * little-endian, a byte 1/0 for a shared/separate classifier, then every
 * weight array in llama2.c v0 order (token embedding; rmsAtt of all layers,
 * then wq, wk, wv, wo, rmsFfn, w1, w2, w3 likewise; rmsFinal; the classifier
 * when separate) as float32 little-endian bytes. It does not depend on the
 * file format the teacher was loaded from (v0 or v1, RoPE tables excluded).
 * The same code (a pure-JS SHA-256) runs in Node and in browsers.
 */
export function teacherChecksum(ckpt: Checkpoint): string {
  // Its config and every tensor's length (as Transformer checks them): a checkpoint missing one has no checksum.
  checkCheckpoint(ckpt, "teacherChecksum");
  const c = ckpt.config;
  const w = ckpt.weights;
  const hash = sha256.create();
  const header = new Uint8Array(29);
  const dv = new DataView(header.buffer);
  [c.dim, c.hiddenDim, c.nLayers, c.nHeads, c.nKvHeads, c.vocabSize, c.seqLen].forEach((v, i) => dv.setInt32(4 * i, v, true));
  header[28] = c.sharedClassifier ? 1 : 0;
  hash.update(header);
  updateFloats(hash, w.tokenEmbedding);
  for (const field of ["rmsAtt", "wq", "wk", "wv", "wo", "rmsFfn", "w1", "w2", "w3"] as const) {
    for (const layer of w.layers) updateFloats(hash, layer[field]);
  }
  updateFloats(hash, w.rmsFinal);
  if (!c.sharedClassifier) updateFloats(hash, w.wcls);
  return bytesToHex(hash.digest());
}
