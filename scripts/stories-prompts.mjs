#!/usr/bin/env node
// Training and held-out prompts for distilling a TinyStories student: the
// first sentence of each paragraph of a TinyStories text. Paragraphs
// [0, split) give training prompts, the rest held-out ones; a held-out
// prompt whose text is also a training prompt is dropped, so no held-out
// prompt is ever seen in training.
// An existing output file is replaced only with --force.
// usage: node scripts/stories-prompts.mjs [--force] CORPUS TRAIN_OUT HELDOUT_OUT [SPLIT=1000]
import { existsSync, readFileSync, writeFileSync } from "node:fs";

const args = process.argv.slice(2);
const force = args[0] === "--force";
const [corpus, trainOut, heldOut, splitArg] = force ? args.slice(1) : args;
if (!corpus || !trainOut || !heldOut) {
  console.error("usage: node scripts/stories-prompts.mjs [--force] CORPUS TRAIN_OUT HELDOUT_OUT [SPLIT=1000]");
  process.exit(2);
}
for (const out of [trainOut, heldOut]) {
  if (!force && existsSync(out)) {
    console.error(`stories-prompts: ${out} exists; pass --force to replace it`);
    process.exit(1);
  }
}
const split = Number(splitArg ?? 1000);
const firstSentence = (p) =>
  (
    p
      .replace(/\s+/g, " ")
      .trim()
      .match(/^.*?[.!?](?=\s|$)/)?.[0] ?? ""
  ).trim();
const sentences = readFileSync(corpus, "utf8")
  .split(/\n\s*\n/)
  .map(firstSentence)
  .filter((s) => s.length >= 10 && s.length <= 200);
const train = [...new Set(sentences.slice(0, split))];
const seen = new Set(train);
const held = [...new Set(sentences.slice(split))].filter((s) => !seen.has(s));
writeFileSync(trainOut, train.join("\n") + "\n");
writeFileSync(heldOut, held.join("\n") + "\n");
console.error(`${train.length} training prompts -> ${trainOut}, ${held.length} held-out prompts -> ${heldOut}`);
