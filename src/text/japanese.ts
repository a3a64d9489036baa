/**
 * Japanese text → hiragana, the form upstream sends to espeak-ng: a port of what upstream runs,
 * pykakasi 2.3.0 (`"".join(r["hira"] for r in pykakasi.kakasi().convert(text))`), over pykakasi's
 * own dictionaries, which are bundled (about 1.2 MB of the package, unpacked on the first
 * conversion). Kanji take the reading of the longest dictionary word at their place, katakana
 * become hiragana, ASCII and symbols pass through, and pykakasi's quirks are kept (see
 * `kakasi/convert.ts`).
 *
 * This module is browser compatible.
 *
 * @module
 */

import { kakasiHiragana } from "./kakasi/convert.ts";
import { loadKakasiDictionary } from "./kakasi/dictionary.ts";

/**
 * Creates a Japanese → hiragana converter. The bundled dictionary is unpacked on the first call
 * (of any converter), so creating one costs nothing; they all give the same results. There are no
 * options: the former `dictionary` option (where kuromoji's dictionary was) is gone, the
 * dictionary being part of the package.
 *
 * @returns The converter: text → the hiragana pykakasi gives for it.
 *
 * @example
 * ```ts
 * import { createHiraganaConverter } from "@valle/core";
 * const toHiragana = createHiraganaConverter();
 * console.assert(await toHiragana("私は学生です。") === "わたしはがくせいです。");
 * ```
 */
export function createHiraganaConverter(): (text: string) => Promise<string> {
  return async (text) => kakasiHiragana(text, await loadKakasiDictionary());
}

/**
 * Converts Japanese text to hiragana as upstream does (see {@linkcode createHiraganaConverter}).
 *
 * @param text Japanese text, in any mix of kanji, kana and other characters.
 * @returns The text in hiragana.
 *
 * @example
 * ```ts
 * import { toHiragana } from "@valle/core";
 * console.assert(await toHiragana("東京") === "とうきょう");
 * console.assert(await toHiragana("一行目\n二行目") === "いちぎょうめいちぎょうめにぎょうめ");
 * ```
 */
export const toHiragana: (text: string) => Promise<string> = createHiraganaConverter();
