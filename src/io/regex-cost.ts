/**
 * Which regular expressions a tokenizer.json may run. A Split or Replace
 * step's { "Regex": text } is run by JavaScript's backtracking engine over
 * the whole prompt, and some shapes make backtracking grow exponentially
 * (`(a+)+$`, `(a|aa)*$`) or as a high power of the text's length
 * (`\s*\s*\s*$`): a prompt of a few hundred characters then never finishes,
 * and a synchronous regex cannot be interrupted. So a pattern is refused
 * where it
 * - repeats a group that itself repeats something or holds alternatives
 *   (the exponential shapes),
 * - chains more than two unbounded repetitions in one branch, or after two
 *   still needs something to match (`\s*\s*!`, `.*.*=`): where that fails,
 *   every split of the text between the two is tried at every start, n^3
 *   in all (a*a*a*b took 50 s on 1000 characters, \s*\s*! minutes on
 *   10,000), or
 * - uses a backreference (which no backtracking bound covers).
 * Every published Llama, GPT-2, GPT-4-style and DeepSeek pattern passes:
 * their branches hold at most two repetitions, none of a group, and after
 * a second only optional parts (`\s*[\r\n]+`, `[\p{Lu}]*[\p{Ll}]+(?i:'s)?`).
 *
 * This reads the pattern's shape, not its meaning, so it may refuse a safe
 * pattern of these shapes; what it lets through is at most quadratic in
 * the text (one repetition, or two ending a branch, tried from every
 * start): Llama 3's own `\s*[\r\n]+` takes about 60 ms on 10,000 spaces
 * here, so about 6 s on 100,000.
 */

/** The most unbounded repetitions one branch may chain. */
export const MAX_CHAINED_REPEATS = 2;

interface Shape {
  /** Chained unbounded repetitions along the worst branch. */
  degree: number;
  /** It holds a repetition. */
  repeats: boolean;
  /** It holds alternatives (a |). */
  branches: boolean;
}

const PLAIN: Shape = { degree: 0, repeats: false, branches: false };

/** Why `source` is refused (see above), or undefined when it is not. */
export function regexCostProblem(source: string): string | undefined {
  let i = 0;
  const n = source.length;
  class Refused extends Error {}
  const refuse = (why: string): never => {
    throw new Refused(why);
  };

  // `enter`: the unbounded repetitions already chained before this point of the branch (a group that is not
  // quantified continues its enclosing branch; a quantified one is a chain of its own).
  const alternation = (enter: number): Shape => {
    const first = sequence(enter);
    let { degree, repeats, branches } = first;
    while (source[i] === "|") {
      i++;
      const next = sequence(enter);
      degree = Math.max(degree, next.degree);
      repeats ||= next.repeats;
      branches = true;
    }
    return { degree, repeats, branches };
  };

  const sequence = (enter: number): Shape => {
    let degree = enter;
    let repeats = false;
    let branches = false;
    while (i < n && source[i] !== "|" && source[i] !== ")") {
      const start = i;
      const inline = source[i] === "(" && quantifierAt(groupEnd(i))[0] === "none";
      const atom = atomAt(inline ? degree : 0);
      const q = quantifier();
      const shown = () => source.slice(start, i);
      if (q === "repeat") {
        if (atom.repeats || atom.branches) refuse(`it repeats a group that ${atom.repeats ? "itself repeats" : "holds alternatives"} (${shown()}): matching can take exponential time`);
        degree += 1;
        repeats = true;
        if (degree > MAX_CHAINED_REPEATS) refuse(`one branch chains more than ${MAX_CHAINED_REPEATS} unbounded repetitions (at ${shown()}): matching can take time growing as a power of the text's length`);
      } else if (inline) {
        degree = atom.degree; // its branches were checked from this branch's chain on
        repeats ||= atom.repeats;
      } else if (q === "once") {
        // An optional part never fails (it matches empty instead): it only extends the chain by its own repetitions.
        degree += atom.degree;
        repeats ||= atom.repeats;
        if (degree > MAX_CHAINED_REPEATS) refuse(`one branch chains more than ${MAX_CHAINED_REPEATS} unbounded repetitions (at ${shown()}): matching can take time growing as a power of the text's length`);
      } else if (degree >= MAX_CHAINED_REPEATS) {
        refuse(`after ${MAX_CHAINED_REPEATS} chained unbounded repetitions, ${shown()} must still match: where it fails, matching takes time growing as the cube of the text's length`);
      }
      branches ||= atom.branches;
    }
    return { degree, repeats, branches };
  };

  const atomAt = (enter: number): Shape => {
    const c = source[i];
    if (c === "(") {
      i++;
      skipGroupPrefix();
      const inner = alternation(enter);
      if (source[i] === ")") i++;
      return inner;
    }
    if (c === "[") {
      skipClass();
      return PLAIN;
    }
    if (c === "\\") {
      skipEscape();
      return PLAIN;
    }
    i++;
    return PLAIN;
  };

  /** The index after the group that opens at `at` (its matching ")"), or the end. */
  const groupEnd = (at: number): number => {
    let depth = 0;
    for (let j = at; j < n; j++) {
      const c = source[j];
      if (c === "\\") j++;
      else if (c === "[") {
        j++;
        if (source[j] === "^") j++;
        while (j < n && source[j] !== "]") j += source[j] === "\\" ? 2 : 1;
      } else if (c === "(") depth++;
      else if (c === ")" && --depth === 0) return j + 1;
    }
    return n;
  };

  // (?:  (?=  (?!  (?<=  (?<!  (?<name>  (?i:  (?i-m:  (?i)
  const skipGroupPrefix = (): void => {
    if (source[i] !== "?") return;
    i++;
    if (source[i] === "=" || source[i] === "!") i++;
    else if (source[i] === "<" && (source[i + 1] === "=" || source[i + 1] === "!")) i += 2;
    else if (source[i] === "<") {
      while (i < n && source[i] !== ">") i++;
      i++;
    } else {
      while (i < n && /[a-zA-Z-]/.test(source[i])) i++;
      if (source[i] === ":") i++;
    }
  };

  // A class ends at the first unescaped ] after its first character.
  const skipClass = (): void => {
    i++;
    if (source[i] === "^") i++;
    while (i < n && source[i] !== "]") {
      if (source[i] === "\\") i++;
      i++;
    }
    i++;
  };

  const skipEscape = (): void => {
    const e = source[i + 1];
    if (e === undefined) {
      i++;
      return;
    }
    if (/[1-9]/.test(e) || (e === "k" && source[i + 2] === "<")) refuse(`it uses a backreference (\\${e}): no bound on its matching time`);
    i += 2;
    if ((e === "p" || e === "P" || e === "u" || e === "x") && source[i] === "{") {
      while (i < n && source[i] !== "}") i++;
      i++;
    }
  };

  // "repeat": *, +, {n,}, {n,m} with m >= 2; "once": ?, {0,1}, {1}; each maybe followed by a lazy ? or possessive +.
  // Returns the kind and the index after it.
  const quantifierAt = (at: number): ["none" | "once" | "repeat", number] => {
    const c = source[at];
    let kind: "none" | "once" | "repeat" = "none";
    let j = at;
    if (c === "*" || c === "+") {
      j++;
      kind = "repeat";
    } else if (c === "?") {
      j++;
      kind = "once";
    } else if (c === "{") {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(source.slice(at, at + 40));
      if (!m) return ["none", at];
      j += m[0].length;
      const most = m[2] === undefined ? Number(m[1]) : m[3] === "" ? Number.POSITIVE_INFINITY : Number(m[3]);
      kind = most >= 2 ? "repeat" : "once";
    }
    if (kind !== "none" && (source[j] === "?" || source[j] === "+")) j++;
    return [kind, j];
  };

  const quantifier = (): "none" | "once" | "repeat" => {
    const [kind, end] = quantifierAt(i);
    i = end;
    return kind;
  };

  try {
    while (i < n) {
      alternation(0);
      if (source[i] === ")") i++; // an unbalanced ) (BLOOM's pattern, rewritten by the library): read on
    }
  } catch (err) {
    if (err instanceof Refused) return err.message;
    throw err;
  }
  return undefined;
}
