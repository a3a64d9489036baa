/**
 * pykakasi's (v2.3.0) `Kakasi.convert`, reduced to the output VALL-E uses: the `hira` of every
 * segment, joined. The text is cut into segments by character class (kana runs, ASCII runs,
 * symbols); a kanji starts a dictionary lookup that takes the longest word with a reading, after
 * replacing itaiji by their standard forms. Every quirk of pykakasi is kept, because upstream's
 * phonemes come from them:
 *
 * - a character of no class (C0 controls such as `\n` and `\t`, U+00A0, `；`, `＝`, `｡`, …) is
 *   dropped, and the segment before it is emitted again with the next one (`一行目\n二行目` →
 *   `いちぎょうめいちぎょうめにぎょうめ`); so is a character in U+F000–U+FFFD or above U+FFFF;
 * - a kanji with no reading is dropped together with the character after it;
 * - a reading can depend on the segment before the word (`色` after `そん`).
 *
 * Where pykakasi raises an IndexError (a variation selector ending the text, and other variation
 * selectors it cannot attach to a word), this drops the selector and reads on.
 *
 * This component is GPL-3.0-or-later (pykakasi's licence, a port of its algorithm): see
 * LICENSES/pykakasi.txt.
 *
 * This module is browser compatible.
 *
 * @module
 */

import {
  isAlpha,
  isCountedSelector,
  isDropped,
  isEndMark,
  isHiragana,
  isKanjiBlock,
  isKatakana,
  isLongMark,
  isSymbol,
  isVariationSelector,
} from "./characters.ts";
import type { KakasiDictionary } from "./dictionary.ts";
import { katakanaToHiragana } from "./kana.ts";

/** The class of the previous character, which decides whether the next one extends a segment. */
type Kind = "kanji" | "katakana" | "hiragana" | "alpha" | "symbol";

/** The text with its itaiji replaced and variation selectors removed, as lookups see it. */
interface Standardized {
  /** The standardized characters. */
  chars: string[];
  /** `offset[i]`: where the original character i falls in `chars` (one entry past the end too). */
  offset: number[];
}

function standardize(chars: readonly string[], itaiji: ReadonlyMap<number, number>): Standardized {
  const out: string[] = [];
  const offset: number[] = [];
  for (const char of chars) {
    offset.push(out.length);
    const code = char.codePointAt(0)!;
    if (isVariationSelector(code)) continue;
    const standard = itaiji.get(code);
    out.push(standard === undefined ? char : String.fromCodePoint(standard));
  }
  offset.push(out.length);
  return { chars: out, offset };
}

/**
 * The longest word at `start` with a reading that applies after `before` (pykakasi's
 * `JConv.convert`), then the length adjusted over variation selectors as pykakasi adjusts it
 * (only when some word begins with the first character, as pykakasi returns early otherwise).
 *
 * @returns The reading and how many original characters it covers (0: no word).
 */
function lookUp(
  chars: readonly string[],
  start: number,
  text: Standardized,
  before: string,
  dictionary: KakasiDictionary,
): [string, number] {
  const base = text.offset[start];
  const available = text.chars.length - base;
  if (available === 0 || !dictionary.initials.has(text.chars[base])) return ["", 0];
  let reading = "";
  let length = 0;
  let word = "";
  const words: string[] = [];
  for (let i = 0; i < available && word.length < dictionary.words.longest; i++) {
    words.push(word += text.chars[base + i]);
  }
  for (let i = words.length - 1; i >= 0 && length === 0; i--) {
    const contextual = dictionary.contextual.get(words[i])?.find((c) => c.before.includes(before));
    const found = contextual?.reading ?? dictionary.words.reading(words[i]);
    if (found !== undefined) [reading, length] = [found, i + 1];
  }
  // pykakasi re-counts the length over the original text, once per removed variation selector.
  const originalLength = chars.length - start;
  const standardAt = (i: number) => text.chars[base + (i < 0 ? available + i : i)];
  for (let removed = originalLength - available; removed > 0; removed--) {
    if (length > originalLength || length - 1 >= available) break;
    if (standardAt(length - 1) !== chars[start + (length - 1 + originalLength) % originalLength]) {
      length++;
    } else if (
      length < originalLength && isCountedSelector(chars[start + length].codePointAt(0)!)
    ) length++;
    else break;
  }
  return [reading, length];
}

/**
 * Converts Japanese text to hiragana as `"".join(r["hira"] for r in pykakasi.kakasi().convert(text))`
 * does.
 *
 * @param text Any text.
 * @param dictionary pykakasi's dictionaries.
 * @returns The hiragana string upstream hands to espeak-ng.
 */
export function kakasiHiragana(text: string, dictionary: KakasiDictionary): string {
  const chars = Array.from(text);
  const standardized = standardize(chars, dictionary.itaiji);
  let out = "";
  let segment = "";
  let reading = "";
  let previous: Kind = "kanji";
  const emit = (kana: string) => out += katakanaToHiragana(kana, dictionary.halfWidth);
  const flush = () => segment && emit(reading);
  const startSegment = (char: string) => {
    flush();
    segment = reading = char;
  };
  const extendOrStart = (char: string, kind: Kind) => {
    if (previous === kind) {
      segment += char;
      reading += char;
    } else startSegment(char);
    previous = kind;
  };
  for (let i = 0; i < chars.length;) {
    const char = chars[i];
    const code = char.codePointAt(0)!;
    if (isEndMark(char)) {
      previous = "symbol";
      startSegment(char);
    } else if (isLongMark(char)) {
      segment += char;
      reading += char;
    } else if (isKatakana(code)) extendOrStart(char, "katakana");
    else if (isHiragana(code)) extendOrStart(char, "hiragana");
    else if (isAlpha(code)) extendOrStart(char, "alpha");
    else if (isSymbol(code)) {
      if (previous === "symbol") {
        flush();
        emit(char);
        segment = reading = "";
      } else startSegment(char);
      previous = "symbol";
    } else if (isKanjiBlock(code) || dictionary.itaiji.has(code) || isVariationSelector(code)) {
      flush();
      const [found, length] = lookUp(chars, i, standardized, segment, dictionary);
      previous = "kanji";
      if (length > 0) {
        segment = chars.slice(i, i + length).join("");
        reading = found;
        i += length;
      } else {
        // An unknown kanji: pykakasi drops it and skips the next character too.
        segment = reading = "";
        i += 2;
      }
      continue;
    } else {
      // Dropped, and the segment stays current: it is emitted again later.
      if (isDropped(code)) previous = "symbol";
      flush();
    }
    i++;
  }
  flush();
  return out;
}
