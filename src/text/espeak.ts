/**
 * The bundled {@linkcode Phonemizer}: espeak-ng 1.51, the engine and data Debian 12 ships and
 * VALL-E's phoneme corpus was made with, compiled to WebAssembly and packed into the library (see
 * `espeak151/`), driven exactly as VALL-E's `g2p.encode` drives it through Python's phonemizer.
 * Japanese goes through hiragana first, Mandarin tone digits are remapped. Nothing is loaded until
 * the first call to `phonemize`.
 *
 * The espeak-ng component is GPL-3.0-or-later (see `espeak151/LICENSE`).
 *
 * This module is browser compatible.
 *
 * @module
 */

import { OptionError } from "../errors.ts";
import { loadEspeak151 } from "./espeak151/engine.ts";
import { toHiragana } from "./japanese.ts";
import { type Language, LANGUAGES, mapPinyinTones } from "./languages.ts";
import type { Phonemizer } from "./phonemizer.ts";
import { phonemizeLikePhonemizer } from "./punctuation.ts";

/** Options of {@linkcode createEspeakPhonemizer}. */
export interface EspeakOptions {
  /** Converts Japanese text to hiragana before espeak (default: {@linkcode toHiragana}). */
  hiragana?: (text: string) => Promise<string>;
}

/**
 * Creates the espeak-ng {@linkcode Phonemizer}. It produces what VALL-E's `g2p.encode(text,
 * language)` produces (phonemizer 3.3 espeak backend, `preserve_punctuation=True`,
 * `with_stress=True`, `strip=True`): punctuation `;:,.!?¡¿—…"«»“”(){}[]` kept verbatim with its
 * surrounding whitespace, stress marks kept, language-switch flags such as `(en)…(fr)` kept.
 * The engine and its data (about 2 MB packed) load on the first call of any espeak phonemizer,
 * not here, and are shared by all of them.
 *
 * @param options How Japanese becomes hiragana.
 * @returns A phonemizer; it throws {@linkcode OptionError} for empty text, as upstream does.
 *
 * @example Phonemize the model's sample sentence
 * ```ts
 * import { createEspeakPhonemizer } from "@valle/core";
 * const espeak = createEspeakPhonemizer();
 * const ipa = await espeak.phonemize("Once again, excellent work.", "en");
 * console.assert(ipa === "wˈʌns ɐɡˈɛn, ˈɛksələnt wˈɜːk.");
 * ```
 */
export function createEspeakPhonemizer(options: EspeakOptions = {}): Phonemizer {
  const hiragana = options.hiragana ?? toHiragana;
  return {
    async phonemize(text: string, language: Language): Promise<string> {
      const espeak = await loadEspeak151();
      const input = language === "ja" ? await hiragana(text) : text;
      const voice = LANGUAGES[language].espeakVoice;
      // phonemizer keeps espeak's non-empty clause results, joined with " ".
      const convert = (chunk: string) =>
        Promise.resolve(espeak.textToPhonemes(voice, chunk).filter((clause) => clause).join(" "));
      const phonemes = await phonemizeLikePhonemizer(input, convert);
      if (phonemes === undefined) {
        throw new OptionError(`Cannot phonemize: text is empty, expected at least one character`);
      }
      return language === "zh" ? mapPinyinTones(phonemes) : phonemes;
    },
  };
}
