import { writeBytesAtomically } from "../io/atomic-write.js";
import { writeCharTokenizer } from "../io/char-tokenizer.js";
import { generateStories, heldOutSeed, storyPrompt } from "../data/synthetic.js";
import { describeFlags, parseFlags, UsageError, defineFlags } from "./args.js";
import type { Io } from "./io.js";
import { checkOutputs, forceFlag } from "./output-files.js";

const MAX_SEED = 0xffffffff;
/**
 * The most stories (and held-out prompts) one run makes: about 325 MB of
 * corpus, built in memory as one string (V8's limit is about 512 MiB).
 */
export const MAX_STORIES = 1_000_000;

export const synthFlags = defineFlags({
  out: { kind: "string", value: "FILE", help: "where to write the corpus: one story per line" },
  stories: { kind: "int", value: "N", help: `stories in the corpus (at most ${MAX_STORIES})`, default: 10000, max: MAX_STORIES },
  seed: { kind: "int", value: "S", help: `seed of the corpus (0..${MAX_SEED})`, default: 1 },
  "tokenizer-out": { kind: "string", value: "FILE", help: "also write a character-level tokenizer.bin built from the corpus" },
  "prompts-out": { kind: "string", value: "FILE", help: "also write held-out prompts: the first K words of stories from another seed, one per line" },
  "prompt-count": { kind: "int", value: "N", help: `number of held-out prompts (default 64, at most ${MAX_STORIES})`, max: MAX_STORIES },
  "prompt-words": { kind: "int", value: "K", help: "words per held-out prompt (default 4)" },
  "prompt-seed": { kind: "int", value: "S", help: "seed of the held-out stories; must differ from --seed (default: derived from --seed)" },
  ...forceFlag,
});

export const synthUsage = `usage: ptp synth [--out FILE] [--stories N] [--seed S] [--tokenizer-out FILE]
                 [--prompts-out FILE --prompt-count N --prompt-words K --prompt-seed S] [--force]

Generate the project's synthetic children's-story corpus (a seeded grammar:
characters, places, a want, a problem, a helper, a moral), deterministic for
a seed; optionally a character-level tokenizer for it and held-out prompts
from stories of a different seed. At least one of --out, --tokenizer-out,
--prompts-out is needed.

${describeFlags(synthFlags)}`;

export async function synthCommand(argv: readonly string[], io: Io): Promise<number> {
  const f = parseFlags(argv, synthFlags);
  if (f.out === undefined && f["tokenizer-out"] === undefined && f["prompts-out"] === undefined) {
    throw new UsageError("nothing to write: give --out, --tokenizer-out and/or --prompts-out");
  }
  const seedOk = (v: number) => v >= 0 && v <= MAX_SEED;
  if (!seedOk(f.seed)) throw new UsageError(`--seed must be in 0..${MAX_SEED}, got ${f.seed}`);
  if (f.stories < 1) throw new UsageError(`--stories must be a positive integer, got ${f.stories}`);
  const promptFlagGiven = f["prompt-count"] !== undefined || f["prompt-words"] !== undefined || f["prompt-seed"] !== undefined;
  if (promptFlagGiven && f["prompts-out"] === undefined) throw new UsageError("--prompt-count, --prompt-words and --prompt-seed go with --prompts-out");
  const promptCount = f["prompt-count"] ?? 64,
    promptWords = f["prompt-words"] ?? 4;
  if (promptCount < 1) throw new UsageError(`--prompt-count must be a positive integer, got ${promptCount}`);
  if (promptWords < 1) throw new UsageError(`--prompt-words must be a positive integer, got ${promptWords}`);
  const promptSeed = f["prompt-seed"] ?? heldOutSeed(f.seed);
  if (!seedOk(promptSeed)) throw new UsageError(`--prompt-seed must be in 0..${MAX_SEED}, got ${promptSeed}`);
  if (promptSeed === f.seed) throw new UsageError(`--prompt-seed must differ from --seed (${f.seed}): held-out prompts come from other stories`);
  const outputs = (["out", "tokenizer-out", "prompts-out"] as const).flatMap((k) => {
    const path = f[k];
    return path === undefined ? [] : [{ flag: `--${k}`, path }];
  });
  checkOutputs(outputs, { force: f.force });

  const encoder = new TextEncoder();
  if (f.out !== undefined || f["tokenizer-out"] !== undefined) {
    const stories = generateStories(f.stories, f.seed);
    const corpus = stories.join("\n") + "\n";
    if (f.out !== undefined) {
      const bytes = encoder.encode(corpus);
      writeBytesAtomically(f.out, bytes);
      io.stderr(`wrote ${f.out}: ${stories.length} stories, ${bytes.length} bytes, seed ${f.seed}\n`);
    }
    if (f["tokenizer-out"] !== undefined) {
      const vocabSize = writeCharTokenizer(f["tokenizer-out"], corpus);
      io.stderr(`wrote ${f["tokenizer-out"]}: character-level tokenizer, vocab size ${vocabSize} (3 special, 256 byte, ${vocabSize - 259} characters)\n`);
    }
  }
  if (f["prompts-out"] !== undefined) {
    const prompts = generateStories(promptCount, promptSeed).map((s) => storyPrompt(s, promptWords));
    writeBytesAtomically(f["prompts-out"], encoder.encode(prompts.join("\n") + "\n"));
    io.stderr(`wrote ${f["prompts-out"]}: ${prompts.length} prompts of ${promptWords} words, seed ${promptSeed}\n`);
  }
  return 0;
}
