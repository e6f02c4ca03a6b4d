/**
 * A text corpus for `ptp train`: one document per line (UTF-8), blank lines
 * skipped, read line by line and hashed as it streams (a resume must train
 * on the same corpus, so the digest is stored with the checkpoint).
 */
import { createHash } from "node:crypto";
import { MAX_FILE_BYTES, readLines } from "../io/errors.js";

/** A corpus is at most 2 GiB, a document (line) at most 256 MiB (a JavaScript string holds at most about 512 M characters). */
export const CORPUS_LIMITS = { maxBytes: MAX_FILE_BYTES, maxLine: 256 * 2 ** 20 };

/** What a corpus file is, as errors name it. */
export const CORPUS_WHAT = "a text corpus, one document per line";

/** The corpus at `path`: its non-empty lines and the SHA-256 of its bytes. At least `minDocuments` documents, else an Error naming the file. */

export function readCorpus(path: string, minDocuments = 1): { documents: string[]; sha256: string } {
  const digest = createHash("sha256"),
    documents: string[] = [];
  readLines(
    path,
    CORPUS_WHAT,
    CORPUS_LIMITS,
    (line) => void (line.trim() !== "" && documents.push(line)),
    (chunk) => digest.update(chunk),
  );
  if (documents.length < minDocuments) throw new Error(`${path}: needs at least ${minDocuments} non-empty line${minDocuments === 1 ? "" : "s"} (documents), found ${documents.length}`);
  return { documents, sha256: digest.digest("hex") };
}
