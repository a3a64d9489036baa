/**
 * The whole text front end in one call: split the text, pick each piece's languages (detected per
 * piece for `"auto"`), phonemize and tokenize each piece, and check what the model can take. Also
 * {@linkcode phonemize}, the single-utterance convenience. The backends live elsewhere.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { OptionError } from "../errors.ts";
import { detectLanguage } from "./detect.ts";
import { createEspeakPhonemizer } from "./espeak.ts";
import { type Language, LANGUAGES, parseLanguage } from "./languages.ts";
import type { Phonemizer } from "./phonemizer.ts";
import { type SplitMode, splitText } from "./split.ts";
import { tokenizePhonemes } from "./tokenizer.ts";

/** The most phoneme tokens one piece may have by default (about 20 s of English speech). */
export const DEFAULT_MAX_TOKENS = 256;

/** The espeak-ng phonemizer used when no other is given; it loads on first use. */
const defaultPhonemizer: Phonemizer = createEspeakPhonemizer();

/** A language, or `"auto"` to detect it per piece. */
export type LanguageChoice = Language | "auto";

/** One piece of text, ready for the model. */
export interface TextPiece {
  /** The piece as it was in the input. */
  text: string;
  /** The language the piece was phonemized in. */
  textLanguage: Language;
  /** The language whose token the model gets (its accent). */
  language: Language;
  /** The model's id for `language`. */
  languageId: number;
  /** The phoneme string. */
  phonemes: string;
  /** The phoneme token ids, wrapped in 1 … 2. */
  tokens: number[];
}

/** Options of {@linkcode prepareText}. */
export interface PrepareTextOptions {
  /** The language token (accent) the model gets; `"auto"` (default) detects it per piece. */
  language?: LanguageChoice;
  /** The language the text is read in; `"auto"` detects it per piece. Default: `language`. */
  textLanguage?: LanguageChoice;
  /** How to cut the text: `"sentences"` (default), `"lines"`, or `"none"` for one piece. */
  split?: SplitMode | "none";
  /** The phonemizer (default: espeak-ng, see `createEspeakPhonemizer`; `ipaPassthrough` for IPA). */
  phonemizer?: Phonemizer;
  /** The most tokens one piece may have (default {@linkcode DEFAULT_MAX_TOKENS}). */
  maxTokens?: number;
}

function parseChoice(value: string, what: string): LanguageChoice {
  return value === "auto" ? "auto" : parseLanguage(value, what);
}

/**
 * Phonemizes one utterance as upstream VALL-E's `g2p.encode(text, language)` does.
 *
 * @param text The text; it is not split.
 * @param language Its language, or `"auto"` (default) to detect it.
 * @param phonemizer The backend (default: espeak-ng).
 * @returns The phoneme string; `""` for blank text.
 * @throws {OptionError} When `language` is unknown or `text` is empty.
 *
 * @example The model's own sample sentence
 * ```ts
 * import { phonemize } from "@valle/core";
 * const ipa = await phonemize("Once again, excellent work.", "en");
 * console.assert(ipa === "wˈʌns ɐɡˈɛn, ˈɛksələnt wˈɜːk.");
 * ```
 */
export async function phonemize(
  text: string,
  language: LanguageChoice = "auto",
  phonemizer: Phonemizer = defaultPhonemizer,
): Promise<string> {
  const choice = parseChoice(language, "language");
  return await phonemizer.phonemize(text, choice === "auto" ? await detectLanguage(text) : choice);
}

/**
 * Turns text into the pieces the model speaks one after another: each piece phonemized and
 * tokenized separately. Unlike upstream, `language: "auto"` sets each piece's language token to
 * the detected language (upstream detects per piece but keeps the token of the first call).
 *
 * @param text The text to speak.
 * @param options Languages, splitting, phonemizer and length limit.
 * @returns One entry per non-blank piece.
 * @throws {OptionError} When a language or `split` is unknown, the text is blank, a piece
 *   phonemizes to nothing, or a piece has more than `maxTokens` tokens.
 *
 * @example
 * ```ts
 * import { prepareText } from "@valle/core";
 * const [first, second] = await prepareText("Hello there. Guten Tag!", { language: "auto" });
 * console.assert(first.language === "en" && second.language === "de" && second.languageId === 2);
 * ```
 */
export async function prepareText(
  text: string,
  options: PrepareTextOptions = {},
): Promise<TextPiece[]> {
  const language = parseChoice(options.language ?? "auto", "language");
  const textLanguage = parseChoice(options.textLanguage ?? language, "textLanguage");
  const { split = "sentences", phonemizer = defaultPhonemizer } = options;
  const maxTokens = options.maxTokens ?? DEFAULT_MAX_TOKENS;
  if (!(Number.isInteger(maxTokens) && maxTokens > 2)) {
    throw new OptionError(
      `Cannot prepare text: maxTokens is ${maxTokens}, expected an integer > 2`,
    );
  }
  const locale = language !== "auto" ? language : textLanguage !== "auto" ? textLanguage : "en";
  const pieces = split === "none"
    ? [text].filter((t) => t.trim())
    : splitText(text, { by: split, locale });
  if (!pieces.length) {
    throw new OptionError(
      `Cannot prepare text: it is blank (${text.length} characters), expected some words`,
    );
  }
  const out: TextPiece[] = [];
  for (const [i, piece] of pieces.entries()) {
    const detected = language === "auto" || textLanguage === "auto"
      ? await detectLanguage(piece)
      : undefined;
    const pieceLanguage = language === "auto" ? detected! : language;
    const pieceTextLanguage = textLanguage === "auto" ? detected! : textLanguage;
    const phonemes = await phonemizer.phonemize(piece, pieceTextLanguage);
    const where = `piece ${i + 1} of ${pieces.length} (${JSON.stringify(piece.slice(0, 40))})`;
    if (!phonemes.trim()) {
      throw new OptionError(
        `Cannot prepare ${where}: it phonemizes to nothing in ${pieceTextLanguage}, ` +
          `expected at least one phoneme`,
      );
    }
    const tokens = tokenizePhonemes(phonemes);
    if (tokens.length > maxTokens) {
      // Advice in the caller's own options: `synthesize()` takes `split` but not `maxTokens`.
      const split = options.split === undefined || options.split === "sentences"
        ? ""
        : ' (split: "sentences")';
      const raise = options.maxTokens === undefined ? "" : " or raise maxTokens";
      throw new OptionError(
        `Cannot prepare ${where}: it has ${tokens.length} tokens, expected at most ${maxTokens}; ` +
          `split the text into shorter sentences${split}${raise}`,
      );
    }
    out.push({
      text: piece,
      textLanguage: pieceTextLanguage,
      language: pieceLanguage,
      languageId: LANGUAGES[pieceLanguage].id,
      phonemes,
      tokens,
    });
  }
  return out;
}
