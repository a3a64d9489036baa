/**
 * The languages the model knows: its language-token ids (valle-spec §9.3), the espeak-ng voice each
 * one is phonemized with (upstream `coerce_language` plus the voice phonemizer selects for it), and
 * Mandarin's tone-digit mapping. It holds no phonemizer.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { OptionError } from "../errors.ts";

/** A language the model knows, by its VALL-E code. */
export type Language = "en" | "ja" | "de" | "fr" | "zh" | "ko";

/** What the text front end knows about one language. */
export interface LanguageInfo {
  /** The model's language-token id (`lang` embedding row). */
  readonly id: number;
  /** The language code upstream hands to phonemizer (`en-us`, `cmn-latn-pinyin`, …). */
  readonly espeakLanguage: string;
  /** The espeak-ng voice phonemizer selects for that code (`espeak_SetVoiceByName`). */
  readonly espeakVoice: string;
}

/**
 * Every language the model knows, in id order.
 *
 * @example Look up the language token of German
 * ```ts
 * import { LANGUAGES } from "@valle/core";
 * console.assert(LANGUAGES.de.id === 2 && LANGUAGES.zh.espeakLanguage === "cmn-latn-pinyin");
 * ```
 */
export const LANGUAGES: Readonly<Record<Language, LanguageInfo>> = {
  en: { id: 0, espeakLanguage: "en-us", espeakVoice: "gmw/en-US" },
  ja: { id: 1, espeakLanguage: "ja", espeakVoice: "jpx/ja" },
  de: { id: 2, espeakLanguage: "de", espeakVoice: "gmw/de" },
  fr: { id: 3, espeakLanguage: "fr-fr", espeakVoice: "roa/fr" },
  zh: { id: 4, espeakLanguage: "cmn-latn-pinyin", espeakVoice: "sit/cmn-Latn-pinyin" },
  ko: { id: 5, espeakLanguage: "ko", espeakVoice: "ko" },
};

const CODES = Object.keys(LANGUAGES) as Language[];

/**
 * Checks that `value` is a language the model knows and returns it typed.
 *
 * @param value The code to check, e.g. from user input.
 * @param what What the code is for, used in the error message (e.g. `"language"`).
 * @returns `value` as a {@linkcode Language}.
 * @throws {OptionError} When `value` is not one of `en ja de fr zh ko`.
 *
 * @example
 * ```ts
 * import { parseLanguage } from "@valle/core";
 * console.assert(parseLanguage("fr", "language") === "fr");
 * ```
 */
export function parseLanguage(value: string, what: string): Language {
  if ((CODES as string[]).includes(value)) return value as Language;
  throw new OptionError(
    `Cannot use ${what} ${JSON.stringify(value)}: expected one of ${CODES.join(", ")}`,
  );
}

const TONE_MARKS: Readonly<Record<string, string>> = { 1: "ˇ", 2: "ˉ", 3: "ˊ", 4: "ˋ", 5: "_" };

/**
 * Replaces every pinyin tone digit 1–5 in espeak's Mandarin output by the marks the model was
 * trained with (`1→ˇ 2→ˉ 3→ˊ 4→ˋ 5→_`), over the whole string as upstream `g2p.encode` does.
 *
 * @param phonemes espeak `cmn-latn-pinyin` output.
 * @returns The string with tone digits replaced.
 *
 * @example
 * ```ts
 * import { mapPinyinTones } from "@valle/core";
 * console.assert(mapPinyinTones("nˈi2 χˈɑu2") === "nˈiˉ χˈɑuˉ");
 * ```
 */
export function mapPinyinTones(phonemes: string): string {
  return phonemes.replace(/[1-5]/g, (digit) => TONE_MARKS[digit]);
}
