#!/usr/bin/env node
// Training and held-out prompts for distilling a TinyStories student: the
// first sentence of each paragraph of a TinyStories text. Paragraphs
// [0, split) give training prompts, the rest held-out ones; a held-out
// prompt whose text is also a training prompt is dropped, so no held-out
// prompt is ever seen in training.
// An existing output file is replaced only with --force.
// usage: node scripts/stories-prompts.mjs [--force] CORPUS TRAIN HELDOUT [SPLIT=1000]
import { checkInputs, loadLib, parseScriptArgs, runScript, ScriptUsageError } from "./script-cli.mjs";

const NAME = "stories-prompts";
const USAGE = "usage: node scripts/stories-prompts.mjs [--force] CORPUS TRAIN HELDOUT [SPLIT=1000]";
const WHAT = "a UTF-8 text of stories, paragraphs separated by blank lines";
/** Characters of a paragraph's (whitespace-collapsed) text kept: a first sentence of up to 200 is found in them exactly. */
const KEEP = 1000;
const lib = await loadLib(NAME);
await runScript(NAME, USAGE, lib, () => {
  const { values, positionals } = parseScriptArgs(process.argv.slice(2), { force: { type: "boolean" } }, USAGE);
  if (positionals.length < 3) throw new ScriptUsageError(`missing ${["CORPUS", "TRAIN", "HELDOUT"].slice(positionals.length).join(", ")}`);
  if (positionals.length > 4) throw new ScriptUsageError(`too many arguments (${positionals.length}; at most 4)`);
  const [corpus, trainOut, heldOut, splitArg = "1000"] = positionals;
  if (corpus === "") throw new ScriptUsageError("CORPUS must not be empty");
  if (!/^\d+$/.test(splitArg) || !Number.isSafeInteger(Number(splitArg))) throw new ScriptUsageError(`SPLIT must be a whole number of paragraphs (decimal digits), got ${JSON.stringify(splitArg)}`);
  const split = Number(splitArg);
  checkInputs(lib, [corpus], WHAT);
  lib.checkOutputs(
    [
      { flag: "TRAIN", path: trainOut },
      { flag: "HELDOUT", path: heldOut },
    ],
    { inputs: [{ flag: "CORPUS", path: corpus }], force: values.force },
  );
  const sentences = firstSentences(corpus);
  const train = [...new Set(sentences.slice(0, split))];
  const seen = new Set(train);
  const held = [...new Set(sentences.slice(split))].filter((s) => !seen.has(s));
  const found = `${sentences.length} paragraphs with a first sentence of 10 to 200 characters`;
  if (sentences.length === 0) throw new lib.FileFormatError(corpus, `no paragraph has a first sentence of 10 to 200 characters (expected ${WHAT})`);
  if (train.length === 0) throw new ScriptUsageError(`SPLIT ${split} leaves no training prompts (${corpus} has ${found})`);
  if (held.length === 0) throw new lib.FileFormatError(corpus, `has ${found}, so SPLIT ${split} leaves no held-out prompts (a smaller SPLIT gives some)`);
  lib.writeFilesAtomically([
    { path: trainOut, bytes: new TextEncoder().encode(train.join("\n") + "\n") },
    { path: heldOut, bytes: new TextEncoder().encode(held.join("\n") + "\n") },
  ]);
  console.error(`${train.length} training prompts -> ${trainOut}, ${held.length} held-out prompts -> ${heldOut}`);
});

/** The first sentence of a paragraph (its text with whitespace collapsed), or "". */
function firstSentence(p) {
  return (
    p
      .replace(/\s+/g, " ")
      .trim()
      .match(/^.*?[.!?](?=\s|$)/)?.[0] ?? ""
  ).trim();
}

/**
 * The first sentences of 10 to 200 characters of the corpus's paragraphs
 * (split at lines that are empty or white space), in order. The corpus is
 * read line by line, strictly as UTF-8; of each paragraph only its first
 * KEEP characters (whitespace collapsed) are kept, which hold any first
 * sentence short enough to keep, so memory stays bounded whatever the file.
 */
function firstSentences(corpus) {
  const out = [];
  let text = "";
  const end = () => {
    const s = firstSentence(text);
    if (s.length >= 10 && s.length <= 200) out.push(s);
    text = "";
  };
  lib.readLines(corpus, WHAT, { maxBytes: Number.MAX_SAFE_INTEGER, maxLine: 64 << 20 }, (line, n) => {
    // Valid UTF-8 can still be binary (a file of zero bytes): text has no NUL characters.
    if (line.includes("\0")) throw new lib.FileFormatError(corpus, `line ${n} has a NUL byte: a binary file? (expected ${WHAT})`);
    if (line.trim() === "") return end();
    if (text.length < KEEP) text = (text + "\n" + line).replace(/\s+/g, " ").trimStart().slice(0, KEEP);
  });
  end();
  return out;
}
