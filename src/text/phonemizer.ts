/**
 * The {@linkcode Phonemizer} interface that turns text into the IPA the model reads, so a backend
 * other than the bundled espeak-ng one can be plugged in, and {@linkcode ipaPassthrough} for
 * callers who give IPA directly. No backend lives here.
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { Language } from "./languages.ts";

/** Turns text into the phoneme string the model was trained on. */
export interface Phonemizer {
  /**
   * Phonemizes one utterance.
   *
   * @param text The text, as the user wrote it.
   * @param language The language to read it in.
   * @returns The IPA string, in the format of Python phonemizer's espeak backend.
   */
  phonemize(text: string, language: Language): Promise<string>;
}

/**
 * A {@linkcode Phonemizer} that returns its input unchanged, for text that is already IPA.
 *
 * @example Tokenize IPA without loading espeak
 * ```ts
 * import { ipaPassthrough } from "@valle/core";
 * console.assert(await ipaPassthrough.phonemize("həlˈoʊ", "en") === "həlˈoʊ");
 * ```
 */
export const ipaPassthrough: Phonemizer = {
  phonemize(text: string): Promise<string> {
    return Promise.resolve(text);
  },
};
