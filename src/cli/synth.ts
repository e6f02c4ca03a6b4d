import { writeFilesAtomically } from "../io/atomic-write.js";
import { buildCharTokenizer, tokenizerVocabSize } from "../io/char-tokenizer.js";
import { heldOutSeed, storyPrompt, storyStream } from "../data/synthetic.js";
import { runInterruptibly } from "../train/interrupt.js";
import { Progress } from "../util/progress.js";
import { describeFlags, parseFlags, UsageError, defineFlags } from "./args.js";
import { processIo, type Io } from "./io.js";
import { checkOutputs, forceFlag, interruptedBeforeWriting, withSignalsCaught, writeOutputs } from "./output-files.js";

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
--prompts-out is needed. stderr shows the progress; the files are written
together at the end (all or none), so Ctrl-C never leaves a partial one.

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

  return withSignalsCaught(io, "synth", async ({ latch, stopped }) => {
    // Every story is made before anything is written: Ctrl-C until then stops within a few milliseconds, leaving nothing.
    const corpusStories = f.out !== undefined || f["tokenizer-out"] !== undefined ? f.stories : 0,
      promptStories = f["prompts-out"] !== undefined ? promptCount : 0;
    io.stderr(`synth: generating ${[corpusStories ? `${corpusStories} stories (seed ${f.seed})` : "", promptStories ? `${promptStories} held-out prompts (seed ${promptSeed})` : ""].filter((x) => x).join(" and ")}\n`);
    const progress = new Progress({ total: corpusStories + promptStories, unit: "story", label: "synth", stream: { write: (text: string) => io.stderr(text), isTTY: io === processIo && process.stderr.isTTY } });
    const made = await runInterruptibly(
      makeStories(
        [
          [corpusStories, f.seed],
          [promptStories, promptSeed],
        ],
        (n) => progress.update(n),
      ),
      latch,
    );
    if (!made.done) return interruptedBeforeWriting(io, "synth", made.signal);
    const [stories, promptSource] = made.value;
    progress.finish();
    // A prompt is the start of a story: one of all its words (or more) would be the whole story, with nothing left to continue.
    const shortest = promptSource.reduce((m, s) => Math.min(m, s.split(" ").length), Infinity);
    if (promptWords >= shortest) throw new UsageError(`--prompt-words ${promptWords} is not shorter than every held-out story (the shortest has ${shortest} words): a prompt would be a whole story; give at most ${shortest - 1}`);
    const prompts = promptSource.map((s) => storyPrompt(s, promptWords));

    const encoder = new TextEncoder();
    const files: { path: string; bytes: Uint8Array; said: string }[] = [];
    if (corpusStories) {
      const corpus = stories.join("\n") + "\n";
      if (f.out !== undefined) {
        const bytes = encoder.encode(corpus);
        files.push({ path: f.out, bytes, said: `${stories.length} stories, ${bytes.length} bytes, seed ${f.seed}` });
      }
      if (f["tokenizer-out"] !== undefined) {
        io.stderr(`synth: building the character tokenizer of ${corpus.length} characters\n`);
        const bytes = buildCharTokenizer(corpus);
        const vocabSize = tokenizerVocabSize(bytes, f["tokenizer-out"]);
        files.push({ path: f["tokenizer-out"], bytes, said: `character-level tokenizer, vocab size ${vocabSize} (3 special, 256 byte, ${vocabSize - 259} characters)` });
      }
    }
    if (f["prompts-out"] !== undefined) files.push({ path: f["prompts-out"], bytes: encoder.encode(prompts.join("\n") + "\n"), said: `${prompts.length} prompts of ${promptWords} words, seed ${promptSeed}` });
    const built = await stopped();
    if (built !== undefined) return built;
    // All or nothing: no file is replaced unless every one is written; a signal during the writes is acted on once they are in place.
    return await writeOutputs(
      io,
      "synth",
      files.map((file) => file.path).join(", "),
      () => writeFilesAtomically(files),
      () => {
        for (const file of files) io.stderr(`wrote ${file.path}: ${file.said}\n`);
      },
    );
  });
}

/** generateStories(count, seed) for each part in turn, one story per step (so Ctrl-C is seen between them); `onStory` counts the stories of all parts. */
function* makeStories(parts: readonly (readonly [count: number, seed: number])[], onStory: (done: number) => void): Generator<void, string[][], void> {
  let done = 0;
  const all: string[][] = [];
  for (const [count, seed] of parts) {
    const next = storyStream(seed, "generateStories: seed");
    const stories: string[] = [];
    while (stories.length < count) {
      stories.push(next());
      onStory(++done);
      yield;
    }
    all.push(stories);
  }
  return all;
}
