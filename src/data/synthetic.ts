/**
 * A synthetic story grammar written for this project: short children's
 * stories from templates and word lists, for training the small demo
 * teacher from nothing.
 *
 * Every story follows one plot: an opening that introduces a hero (name,
 * kind, pronoun), a setting, a want, a problem, a helper who fixes it, and
 * a moral. The hero's and the helper's names recur, pronouns agree with
 * them, articles agree with the next word, and each quest keeps its own
 * object and colour throughout, so a small model can learn the structure
 * and long stretches are predictable (which is what PTP exploits).
 *
 * Output is plain ASCII, one story per line, 150..400 characters;
 * generation is deterministic for a seed (Mulberry32).
 */
import { Mulberry32, seed32 } from "../util/prng.js";

export const MIN_STORY_LENGTH = 150;
export const MAX_STORY_LENGTH = 400;

type Gender = "f" | "m";

interface Character {
  name: string;
  gender: Gender;
  /** girl, boy, cat, ... */
  kind: string;
  adjective: string;
}

const GIRLS = ["Lily", "Mia", "Sue", "Anna", "Emma", "Zoe", "Lucy", "Amy", "Ella", "Rose", "Kim", "Nora"];
const BOYS = ["Tom", "Ben", "Max", "Sam", "Tim", "Leo", "Jack", "Bob", "Finn", "Joe", "Dan", "Ned"];
const ANIMALS = ["cat", "dog", "bunny", "bear", "fox", "duck", "frog", "bird", "mouse", "owl", "pig", "lamb"];
const ADJECTIVES = ["little", "happy", "shy", "brave", "curious", "kind", "small", "silly", "old", "young"];
const COLORS = ["red", "blue", "green", "yellow", "pink", "purple", "orange", "white"];
const SAD = ["sad", "upset", "worried", "scared"];
const HAPPY = ["happy", "glad", "proud", "thankful"];
const TIMES = ["sunny day", "warm morning", "windy afternoon", "quiet evening", "bright day"];
const MORALS = ["friends help each other", "it is good to share", "you should never give up", "kindness makes everyone happy", "it is brave to ask for help", "working together is best"];

/** Pronoun forms; {he} {him} {his} and capitalised {He} {His} in templates. */
const PRONOUNS: Record<Gender, { he: string; him: string; his: string }> = {
  f: { he: "she", him: "her", his: "her" },
  m: { he: "he", him: "him", his: "his" },
};

/**
 * One quest: where it happens, what the hero wants, what goes wrong, what
 * the hero says about it, and how the helper fixes it. Placeholders:
 * {H} hero's name, {F} helper's name, {he}/{him}/{his} the hero's pronouns
 * ({fhe}/{fhim}/{fhis} the helper's), {color} the quest's colour.
 */
interface Quest {
  place: string;
  /** Where the hero lives, for "who lived ..." openings. */
  home: string;
  want: string;
  problem: string;
  complaint: string;
  fix: string;
}

const QUESTS: Quest[] = [
  {
    place: "park",
    home: "near a big park",
    want: "to fly {his} {color} kite high in the sky",
    problem: "the wind pulled the {color} kite into a tall tree",
    complaint: "My kite is stuck in the tree",
    fix: "{F} climbed up the tree and got the {color} kite down",
  },
  {
    place: "beach",
    home: "by the sea",
    want: "to build a big sand castle with a {color} flag",
    problem: "a big wave came and washed the castle away",
    complaint: "The wave took my castle",
    fix: "{F} helped {him} build a new castle, far from the water",
  },
  {
    place: "forest",
    home: "at the edge of a forest",
    want: "to find the biggest pine cone in the woods",
    problem: "{he} got lost among the tall trees",
    complaint: "I do not know the way home",
    fix: "{F} knew the way and showed {him} the path home",
  },
  {
    place: "garden",
    home: "in a house with a garden",
    want: "to grow a pretty {color} flower",
    problem: "the {color} flower did not grow at all",
    complaint: "My flower will not grow",
    fix: "{F} showed {him} how to give the flower water and sun",
  },
  {
    place: "farm",
    home: "on a farm",
    want: "to ride the old brown horse",
    problem: "the horse ran away into the big field",
    complaint: "The horse ran away from me",
    fix: "{F} called the horse with a sweet carrot, and it came back",
  },
  {
    place: "lake",
    home: "near a lake",
    want: "to sail {his} little {color} boat",
    problem: "the {color} boat floated too far away",
    complaint: "My boat is too far away",
    fix: "{F} swam out and pushed the {color} boat back to the shore",
  },
  {
    place: "kitchen",
    home: "in a cozy house",
    want: "to bake a cake for {his} mom",
    problem: "{he} dropped all the eggs on the floor",
    complaint: "I broke all the eggs",
    fix: "{F} brought more eggs, and they baked the cake together",
  },
  {
    place: "school",
    home: "near the school",
    want: "to draw a picture of the sun",
    problem: "{his} yellow crayon broke in two",
    complaint: "My crayon is broken",
    fix: "{F} shared {fhis} crayons with {him}",
  },
  {
    place: "hill",
    home: "at the foot of a hill",
    want: "to find a shiny {color} rock",
    problem: "it began to rain and the path got wet and slippery",
    complaint: "I cannot climb the hill in the rain",
    fix: "{F} held {his} hand, and they found the {color} rock together",
  },
  {
    place: "town",
    home: "in a little town",
    want: "to buy a {color} ball at the toy shop",
    problem: "{he} lost {his} coins on the way",
    complaint: "I lost my coins",
    fix: "{F} helped {him} look, and they found the coins under a bench",
  },
];

/** The random choices of the grammar, all drawn from one Mulberry32 stream. */
class Chooser {
  constructor(private readonly rng: Mulberry32) {}

  int(n: number): number {
    return Math.floor(this.rng.nextFloat() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
  chance(p: number): boolean {
    return this.rng.nextFloat() < p;
  }

  character(exclude?: string): Character {
    const gender: Gender = this.chance(0.5) ? "f" : "m";
    let name: string;
    do name = this.pick(gender === "f" ? GIRLS : BOYS);
    while (name === exclude);
    const kind = this.chance(0.5) ? (gender === "f" ? "girl" : "boy") : this.pick(ANIMALS);
    return { name, gender, kind, adjective: this.pick(ADJECTIVES) };
  }
}

/** "a" or "an", agreeing with the next word. */
function article(word: string): string {
  return /^[aeiou]/i.test(word) ? "an" : "a";
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function fill(template: string, hero: Character, helper: Character, color: string): string {
  const h = PRONOUNS[hero.gender],
    f = PRONOUNS[helper.gender];
  const values: Record<string, string> = {
    H: hero.name,
    F: helper.name,
    he: h.he,
    him: h.him,
    his: h.his,
    He: capitalize(h.he),
    His: capitalize(h.his),
    fhe: f.he,
    fhim: f.him,
    fhis: f.his,
    color,
  };
  return template.replace(/\{(\w+)\}/g, (whole, key: string) => {
    const v = values[key];
    if (v === undefined) throw new Error(`synthetic grammar: unknown placeholder ${whole}`);
    return v;
  });
}

/** One story, drawing from `c`; may fall outside the length bounds (the caller redraws). */
function draft(c: Chooser): string {
  const hero = c.character();
  const helper = c.character(hero.name);
  const quest = c.pick(QUESTS);
  const color = c.pick(COLORS);
  const sad = c.pick(SAD),
    happy = c.pick(HAPPY);
  const t = (template: string) => fill(template, hero, helper, color);
  const described = `${article(hero.adjective)} ${hero.adjective} ${hero.kind}`;
  const sentences: string[] = [];

  // Setting: the opening introduces the hero and, in some forms, the place.
  switch (c.int(4)) {
    case 0:
      sentences.push(`Once upon a time, there was ${described} named ${hero.name}.`);
      sentences.push(t(`One day, {he} went to the ${quest.place}.`));
      break;
    case 1:
      sentences.push(`One ${c.pick(TIMES)}, ${described} named ${hero.name} went to the ${quest.place}.`);
      break;
    case 2:
      sentences.push(`${hero.name} was ${described} who lived ${quest.home}.`);
      break;
    default:
      sentences.push(`There once was ${described} called ${hero.name}.`);
  }

  // Want, problem, feeling.
  sentences.push(t(`{H} wanted ${quest.want}.`));
  sentences.push(capitalize(t(`but ${quest.problem}.`)));
  if (c.chance(0.6)) sentences.push(c.chance(0.5) ? t(`{H} felt ${sad}.`) : t(`{He} began to cry.`));

  // The helper arrives, maybe talks, and fixes it.
  const helperDescribed = `${article(helper.adjective)} ${helper.adjective} ${helper.kind}`;
  sentences.push(c.chance(0.5) ? `Then ${helperDescribed} named ${helper.name} came by.` : t(`Then {his} friend {F} came.`));
  if (c.chance(0.35)) sentences.push(t(`"Why are you ${sad}, {H}?" asked {F}. "${quest.complaint}," said {H}.`));
  else if (c.chance(0.3)) sentences.push(t(`"I can help you," said {F}.`));
  sentences.push(capitalize(t(`${quest.fix}.`)));
  if (c.chance(0.5)) sentences.push(c.chance(0.5) ? t(`{H} was so ${happy}!`) : t(`"Thank you, {F}!" said {H}.`));

  // Moral.
  const moral = c.pick(MORALS);
  switch (c.int(3)) {
    case 0:
      sentences.push(`From that day on, ${hero.name} knew that ${moral}.`);
      break;
    case 1:
      sentences.push(`${hero.name} learned that ${moral}.`);
      break;
    default:
      sentences.push(`${hero.name} and ${helper.name} were best friends.`);
  }
  return agreeArticles(sentences.join(" "));
}

/** Makes every "a"/"an" agree with the word after it (templates put colours and adjectives after fixed articles). */
function agreeArticles(text: string): string {
  return text.replace(/\b(a|an|A|An) (?=(\w+))/g, (_whole, art: string, word: string) => {
    const fixed = article(word);
    return (art[0] === "A" ? capitalize(fixed) : fixed) + " ";
  });
}

/**
 * `count` stories, one string each (no newlines), deterministic for `seed`
 * (reduced to 32 bits). Drafts outside MIN..MAX_STORY_LENGTH are redrawn
 * from the same stream, so the result still depends on the seed only.
 * `onStory(done)`, if given, is called after each story (for progress).
 */
export function generateStories(count: number, seed: number, onStory?: (done: number) => void): string[] {
  if (!Number.isInteger(count) || count < 0) throw new RangeError(`generateStories: count must be a non-negative integer, got ${count}`);
  if (onStory !== undefined && typeof onStory !== "function") throw new TypeError(`generateStories: onStory must be a function (done) => void, got ${typeof onStory}`);
  const next = storyStream(seed, "generateStories: seed");
  const stories: string[] = [];
  while (stories.length < count) {
    stories.push(next());
    onStory?.(stories.length);
  }
  return stories;
}

/**
 * The stories of generateStories(count, seed), one per call, without end
 * (generateStories takes the first `count`): for a caller that pauses
 * between them (`ptp synth` lets Ctrl-C be seen). The seed is checked now.
 */
export function storyStream(seed: number, where = "storyStream: seed"): () => string {
  const c = new Chooser(new Mulberry32(seed32(seed, where)));
  return () => {
    for (;;) {
      const story = draft(c);
      if (story.length >= MIN_STORY_LENGTH && story.length <= MAX_STORY_LENGTH) return story;
    }
  };
}

/** The first `words` words of a story (split on spaces), for prompts. */
export function storyPrompt(story: string, words: number): string {
  if (typeof story !== "string") throw new TypeError(`storyPrompt: story must be a string, got ${story === null ? "null" : typeof story}`);
  if (!Number.isInteger(words) || words < 0) throw new RangeError(`storyPrompt: words must be a non-negative integer, got ${String(words)}`);
  return story.split(" ").slice(0, words).join(" ");
}

/**
 * The seed of held-out stories for a training seed: a fixed bijection of
 * the 32-bit seed that never maps a seed to itself, so held-out prompts
 * come from a stream the corpus was not drawn from.
 */
export function heldOutSeed(seed: number): number {
  return (seed32(seed, "heldOutSeed: seed") ^ 0x5bd1e995) >>> 0;
}
