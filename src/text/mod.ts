/**
 * The text front end: text → phonemes (espeak-ng in JS/WASM, formatted exactly as VALL-E's Python
 * pipeline formats it) → the model's phoneme tokens, with sentence splitting, per-sentence
 * language detection and the model's language ids.
 *
 * This module is browser compatible.
 *
 * @example Prepare text for the model
 * ```ts
 * import { prepareText } from "@valle/core";
 * const [piece] = await prepareText("Once again, excellent work.", { language: "en" });
 * console.assert(piece.phonemes === "wˈʌns ɐɡˈɛn, ˈɛksələnt wˈɜːk." && piece.languageId === 0);
 * ```
 *
 * @module
 */

export { detectLanguage } from "./detect.ts";
export { createEspeakPhonemizer, type EspeakOptions } from "./espeak.ts";
export { createHiraganaConverter, toHiragana } from "./japanese.ts";
export {
  type Language,
  type LanguageInfo,
  LANGUAGES,
  mapPinyinTones,
  parseLanguage,
} from "./languages.ts";
export { ipaPassthrough, type Phonemizer } from "./phonemizer.ts";
export {
  DEFAULT_MAX_TOKENS,
  type LanguageChoice,
  phonemize,
  prepareText,
  type PrepareTextOptions,
  type TextPiece,
} from "./prepare.ts";
export { type SplitMode, type SplitOptions, splitText } from "./split.ts";
export { tokenizePhonemes } from "./tokenizer.ts";
