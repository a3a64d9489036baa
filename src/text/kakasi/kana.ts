/**
 * Katakana → hiragana the way pykakasi (v2.3.0) turns a segment's kana into its `hira` output,
 * quirks included: it reads the text in windows of 32 characters, and a half-width katakana that
 * ends a window counts as two characters, so the character after the window is lost.
 *
 * This component is GPL-3.0-or-later (pykakasi's licence): see LICENSES/pykakasi.txt.
 *
 * This module is browser compatible.
 *
 * @module
 */

/** How many characters pykakasi hands its katakana converter at a time. */
const WINDOW = 32;

/** Katakana → hiragana distance in the main blocks (ア U+30A2 → あ U+3042). */
const KANA_OFFSET = 0x60;

/** Katakana → hiragana distance in the small kana extensions (U+1B164 → U+1B150). */
const SMALL_KANA_OFFSET = 0x14;

/** The half-width voiced-sound mark's full-width form, kept as it is (not shifted). */
const VOICED_MARK = "\u309b";

/**
 * Converts the katakana run at the start of `chars[start..end)`.
 *
 * @returns The hiragana, and how many characters pykakasi counts as used (one too many when a
 *   half-width katakana ends the window).
 */
function convertRun(
  chars: readonly string[],
  start: number,
  end: number,
  halfWidth: ReadonlyMap<string, string>,
): [string, number] {
  let out = "";
  let x = start;
  while (x < end) {
    const code = chars[x].codePointAt(0)!;
    if (code >= 0x1b164 && code < 0x1b167) out += String.fromCodePoint(code - SMALL_KANA_OFFSET);
    else if (code === 0x1b167) out += "ん";
    else if (code > 0x30a0 && code < 0x30f7) out += String.fromCharCode(code - KANA_OFFSET);
    else if (code >= 0x30f7 && code < 0x30fd) out += chars[x];
    else if (code > 0xff65 && code < 0xff9f) {
      // pykakasi tries two characters first and counts two on a match, even when only one was left.
      let full = halfWidth.get(chars.slice(x, Math.min(x + 2, end)).join(""));
      let width = 2;
      if (full === undefined) [full, width] = [halfWidth.get(chars[x]), 1];
      if (full !== undefined) {
        out += full === VOICED_MARK ? full : String.fromCharCode(full.charCodeAt(0) - KANA_OFFSET);
      }
      x += width;
      continue;
    } else break;
    x++;
  }
  return [out, x - start];
}

/**
 * Katakana → hiragana, as pykakasi converts each segment's reading: full-width and half-width
 * katakana (through `halfWidth`; one it does not list is dropped) and the small kana extensions
 * become hiragana; ヷ–ヺ, ・ and ー stay; everything else passes through.
 *
 * @param text One segment's reading.
 * @param halfWidth Half-width katakana (one character, or two with a voiced-sound mark) →
 *   full-width.
 * @returns The reading in hiragana.
 */
export function katakanaToHiragana(text: string, halfWidth: ReadonlyMap<string, string>): string {
  const chars = Array.from(text);
  let out = "";
  for (let i = 0; i < chars.length;) {
    const [kana, used] = convertRun(chars, i, Math.min(i + WINDOW, chars.length), halfWidth);
    if (used > 0) {
      out += kana;
      i += used;
    } else out += chars[i++];
  }
  return out;
}
