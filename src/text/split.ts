/**
 * Splits long text into the pieces that are phonemized and spoken one at a time, as upstream's
 * `sentence_split` does: by sentences (upstream uses NLTK punkt, this module `Intl.Segmenter`) or
 * by lines. It does not phonemize.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { OptionError } from "../errors.ts";

/** How {@linkcode splitText} cuts text. */
export type SplitMode = "sentences" | "lines";

/** Options of {@linkcode splitText}. */
export interface SplitOptions {
  /** `"sentences"` (default) or `"lines"` (at each newline). */
  by?: SplitMode;
  /** The BCP 47 locale for sentence rules (default `"en"`). */
  locale?: string;
}

/** Titles after which a period does not end the sentence (punkt knows them, ICU does not). */
const TITLE = /(?:^|\s)(?:Mr|Mrs|Ms|Dr|Prof|St|Jr|Sr|Hr|Fr|Mme|Mlle|M)\.\s*$/u;

/**
 * Words that end in a period without ending the sentence, lowercased (the common ones of punkt's
 * English abbreviation list). Words with an inner period (`e.g.`, `p.m.`, `U.S.`) count too.
 */
const ABBREVIATIONS = new Set(
  [
    "mr mrs ms dr prof st jr sr hr fr mme mlle vs etc approx cf al fig no vol inc ltd co corp dept",
    "est gen gov sen rep rev sgt capt col lt ave blvd jan feb mar apr jun jul aug sep sept oct nov",
    "dec z.b usw bzw ca",
  ].join(" ").split(" "),
);

/**
 * A period (with closing quotes or brackets) then spaces before a lowercase letter or a digit:
 * ICU's rules never end a sentence there (`"i went home. then i slept."` is one sentence to
 * `Intl.Segmenter`), punkt does unless the word before is an abbreviation, an initial, a number or
 * an ellipsis.
 */
const LOWERCASE_START = /(\S*)\.[)\]"'”’»]*(\s+)(?=[\p{Ll}\p{Nd}])/gu;

/** Whether a period after `word` (the text before it, up to a space) leaves the sentence going. */
function continuesAfter(word: string): boolean {
  const bare = word.replace(/^[(\["'“‘«]+/u, "");
  return bare === "" || // a lone period
    /^\p{L}$/u.test(bare) || // an initial
    /[.\d]$/u.test(bare) || // an ellipsis or a number
    /\p{L}\.\p{L}/u.test(bare) || // e.g, p.m, U.S
    ABBREVIATIONS.has(bare.toLowerCase());
}

/** `sentence` cut where punkt ends a sentence before a lowercase word and ICU does not. */
function splitBeforeLowercase(sentence: string): string[] {
  const pieces: string[] = [];
  let start = 0;
  for (const match of sentence.matchAll(LOWERCASE_START)) {
    if (continuesAfter(match[1])) continue;
    const end = match.index + match[0].length - match[2].length;
    pieces.push(sentence.slice(start, end));
    start = end;
  }
  pieces.push(sentence.slice(start));
  return pieces;
}

/**
 * Splits `text` into non-blank pieces.
 *
 * Sentences follow `Intl.Segmenter`, with two rules that keep upstream's behaviour: a sentence
 * whose end is followed by a straight double quote (`"Stop!" he said`) continues, because
 * upstream hides `"` from the splitter; a period after a title such as `Dr.` does not end it;
 * a period before a lowercase word or a digit ends it, as in punkt, unless the word before is an
 * abbreviation (`etc.`, `e.g.`), an initial, a number or an ellipsis.
 * Pieces are trimmed. Lines are cut at `\n` (or `\r\n`) and kept as they are. Blank pieces are
 * dropped in both modes.
 *
 * @param text The text to split.
 * @param options The mode and locale.
 * @returns The pieces, in order.
 * @throws {OptionError} When `by` is neither `"sentences"` nor `"lines"`.
 *
 * @example
 * ```ts
 * import { splitText } from "@valle/core";
 * const pieces = splitText('He said "Hi." Then he left. Dr. Smith stayed.');
 * console.assert(pieces.length === 2 && pieces[1] === "Dr. Smith stayed.");
 * ```
 */
export function splitText(text: string, options: SplitOptions = {}): string[] {
  const { by = "sentences", locale = "en" } = options;
  if (by === "lines") return text.split(/\r?\n/).filter((line) => line.trim());
  if (by !== "sentences") {
    throw new OptionError(
      `Cannot split text by ${JSON.stringify(by)}: expected "sentences" or "lines"`,
    );
  }
  const pieces: string[] = [];
  let pending = "";
  for (const { segment } of new Intl.Segmenter(locale, { granularity: "sentence" }).segment(text)) {
    pending += segment;
    if (/"\s*$/u.test(pending) || TITLE.test(pending)) continue;
    pieces.push(pending);
    pending = "";
  }
  pieces.push(pending);
  return pieces.flatMap(splitBeforeLowercase).map((piece) => piece.trim()).filter((piece) => piece);
}
