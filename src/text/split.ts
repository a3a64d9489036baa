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
 * Splits `text` into non-blank pieces.
 *
 * Sentences follow `Intl.Segmenter`, with two rules that keep upstream's behaviour: a sentence
 * whose end is followed by a straight double quote (`"Stop!" he said`) continues, because
 * upstream hides `"` from the splitter; a period after a title such as `Dr.` does not end it.
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
  return pieces.map((piece) => piece.trim()).filter((piece) => piece);
}
