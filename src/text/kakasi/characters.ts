/**
 * The character classes pykakasi (v2.3.0) sorts text into, by code point, with its ranges exactly
 * as it tests them, slips included: its Greek ranges end at the wrong constants, so that "symbol"
 * covers everything from U+0391 to U+30A1.
 *
 * This component is GPL-3.0-or-later (pykakasi's licence): see LICENSES/pykakasi.txt.
 *
 * This module is browser compatible.
 *
 * @module
 */

/** Characters that end the current segment and start one of their own. */
const END_MARKS = new Set(")]!,.\u3001\u3002\uff1f\uff10\uff1e\uff1c");

/** Long-vowel marks: they join the current segment, whatever it is (ー ― − ｰ). */
const LONG_MARKS = new Set("\u30fc\u2015\u2212\uff70");

/** Whether `char` ends the current segment and starts one of its own (`、`, `。`, `.` …). */
export function isEndMark(char: string): boolean {
  return END_MARKS.has(char);
}

/** Whether `char` is a long-vowel mark, which joins whatever segment is current. */
export function isLongMark(char: string): boolean {
  return LONG_MARKS.has(char);
}

/** Katakana: full-width ァ–ー, half-width ｦ–ﾞ (not ･ or ﾟ), small kana extensions U+1B164–U+1B167. */
export function isKatakana(code: number): boolean {
  return (code > 0x30a0 && code < 0x30fd) || (code > 0xff65 && code < 0xff9f) ||
    (code >= 0x1b164 && code <= 0x1b167);
}

/** Hiragana: ぁ–ゖ and the small kana extensions U+1B150–U+1B152. */
export function isHiragana(code: number): boolean {
  return (code > 0x3040 && code < 0x3097) || (code >= 0x1b150 && code <= 0x1b152);
}

/** Printable ASCII, space included. */
export function isAlpha(code: number): boolean {
  return code >= 0x20 && code < 0x7f;
}

/**
 * Symbols, which pykakasi passes through: Latin-1 (¡–ÿ), U+0391–U+30A1 (its Greek range, ending at
 * the katakana ァ's code point instead of Ρ's; it holds all its other symbol ranges), full-width
 * ！–：and ＠–～.
 */
export function isSymbol(code: number): boolean {
  return (code >= 0xa1 && code <= 0xff) || (code >= 0x391 && code <= 0x30a1) ||
    (code >= 0xff01 && code <= 0xff1a) || (code >= 0xff20 && code <= 0xff5e);
}

/** The variation selectors pykakasi deletes as itaiji: U+FE00, U+FE01, U+E0100–U+E01EE. */
export function isVariationSelector(code: number): boolean {
  return (code >= 0xfe00 && code <= 0xfe01) || (code >= 0xe0100 && code <= 0xe01ee);
}

/**
 * The variation selectors pykakasi's lookup counts back into a word's length: U+FE00–U+FE02 (its
 * second range, U+E0100 to 0x0E1EF, is empty).
 */
export function isCountedSelector(code: number): boolean {
  return code >= 0xfe00 && code <= 0xfe02;
}

/** Kanji as pykakasi tells them (U+3400–U+DFFF), not counting itaiji and variation selectors. */
export function isKanjiBlock(code: number): boolean {
  return code >= 0x3400 && code < 0xe000;
}

/** The private-use and other high code points pykakasi drops: U+F000–U+FFFD and above U+FFFF. */
export function isDropped(code: number): boolean {
  return (code >= 0xf000 && code <= 0xfffd) || (code >= 0x10000 && code <= 0x10fffd);
}
