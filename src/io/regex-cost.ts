/**
 * Which regular expressions a tokenizer.json may run. A Split or Replace
 * step's { "Regex": text } is run by JavaScript's backtracking engine over
 * the whole prompt, and some shapes make backtracking grow exponentially
 * (`(a+)+$`, `(a|aa)*$`) or as a high power of the text's length
 * (`\s*\s*\s*$`): a prompt of a few hundred characters then never finishes,
 * and a synchronous regex cannot be interrupted. So a pattern is refused
 * where it
 * - repeats a group that itself repeats something or holds alternatives
 *   (the exponential shapes), or
 * - chains more than two unbounded repetitions in one branch (n^3 and up
 *   per match, and a match is tried at every position),
 * or uses a backreference (which no backtracking bound covers). Every
 * published Llama, GPT-2, GPT-4-style and DeepSeek pattern passes: their
 * branches hold at most two repetitions, none of a group.
 *
 * This reads the pattern's shape, not its meaning, so it may refuse a safe
 * pattern of these shapes; it does not bound every pattern's cost (two
 * chained repetitions are still n^2 on a hostile prompt).
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

  const alternation = (): Shape => {
    const first = sequence();
    let { degree, repeats, branches } = first;
    while (source[i] === "|") {
      i++;
      const next = sequence();
      degree = Math.max(degree, next.degree);
      repeats ||= next.repeats;
      branches = true;
    }
    return { degree, repeats, branches };
  };

  const sequence = (): Shape => {
    let degree = 0;
    let repeats = false;
    let branches = false;
    while (i < n && source[i] !== "|" && source[i] !== ")") {
      const start = i;
      const atom = atomAt();
      const q = quantifier();
      if (q === "repeat") {
        if (atom.repeats || atom.branches) refuse(`it repeats a group that ${atom.repeats ? "itself repeats" : "holds alternatives"} (${source.slice(start, i)}): matching can take exponential time`);
        degree += 1;
        repeats = true;
      } else {
        degree += atom.degree;
        repeats ||= atom.repeats;
      }
      branches ||= atom.branches;
      if (degree > MAX_CHAINED_REPEATS) refuse(`one branch chains more than ${MAX_CHAINED_REPEATS} unbounded repetitions (at ${source.slice(start, i)}): matching can take time growing as a power of the text's length`);
    }
    return { degree, repeats, branches };
  };

  const atomAt = (): Shape => {
    const c = source[i];
    if (c === "(") {
      i++;
      skipGroupPrefix();
      const inner = alternation();
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
  const quantifier = (): "none" | "once" | "repeat" => {
    const c = source[i];
    let kind: "none" | "once" | "repeat" = "none";
    if (c === "*" || c === "+") {
      i++;
      kind = "repeat";
    } else if (c === "?") {
      i++;
      kind = "once";
    } else if (c === "{") {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(source.slice(i));
      if (!m) return "none";
      i += m[0].length;
      const most = m[2] === undefined ? Number(m[1]) : m[3] === "" ? Number.POSITIVE_INFINITY : Number(m[3]);
      kind = most >= 2 ? "repeat" : "once";
    }
    if (kind !== "none" && (source[i] === "?" || source[i] === "+")) i++;
    return kind;
  };

  try {
    while (i < n) {
      alternation();
      if (source[i] === ")") i++; // an unbalanced ) (BLOOM's pattern, rewritten by the library): read on
    }
  } catch (err) {
    if (err instanceof Refused) return err.message;
    throw err;
  }
  return undefined;
}
