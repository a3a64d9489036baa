/**
 * The kanji dictionary's words and readings as the packed dictionary stores them: sorted, each
 * line sharing its start with the line before, and readings that {@linkcode composeReading} gives
 * left out. Here each line is made whole again, but the words stay sorted in flat arrays of UTF-16
 * code units (a quarter of a million words and their readings in about 5 MB), found by binary
 * search; a left-out reading is put together when asked for.
 *
 * This component is GPL-3.0-or-later (pykakasi's data): see LICENSES/pykakasi.txt.
 *
 * This module is browser compatible.
 *
 * @module
 */

/** The character that codes "shares 0 code units with the line before" (`!`). */
export const SHARED_PREFIX_BASE = 0x21;

/** Whether a UTF-16 code unit is a hiragana letter (ぁ–ゖ). */
function isHiraganaLetter(code: number): boolean {
  return code >= 0x3041 && code <= 0x3096;
}

/**
 * The reading of `word` put together from its parts: from the left, the longest part shorter than
 * the word that has a reading, or else a hiragana letter as itself. The packed dictionary leaves
 * out every reading this reproduces (about two in five).
 *
 * @param word The word.
 * @param reading The reading of a shorter word, if it has one.
 * @returns The reading, or `undefined` when some character is neither covered nor hiragana.
 */
export function composeReading(
  word: string,
  reading: (part: string) => string | undefined,
): string | undefined {
  let out = "";
  for (let start = 0; start < word.length;) {
    let end = start === 0 ? word.length - 1 : word.length;
    for (; end > start; end--) {
      const part = reading(word.slice(start, end));
      if (part !== undefined) {
        out += part;
        break;
      }
    }
    if (end === start) {
      if (!isHiraganaLetter(word.charCodeAt(start))) return undefined;
      out += word[start];
      end = start + 1;
    }
    start = end;
  }
  return out;
}

/** Lines of code units, shared-prefix coded, made whole into one array. */
interface Expanded {
  /** Every line's code units, one after the other. */
  units: Uint16Array;
  /** Line i is `units[start[i]..start[i + 1])`. */
  start: Uint32Array;
}

/**
 * Undoes the shared-prefix coding of `count` lines of `source` (line i is
 * `source[lines[first + i]..lines[first + i + 1] - 1)`, the last unit being its line break).
 * An empty line stays empty and the next line shares its start with the line before it.
 */
function expand(source: Uint16Array, lines: Uint32Array, first: number, count: number): Expanded {
  const start = new Uint32Array(count + 1);
  for (let i = 0; i < count; i++) {
    const [from, to] = [lines[first + i], lines[first + i + 1] - 1];
    start[i + 1] = start[i] + (to > from ? source[from] - SHARED_PREFIX_BASE + to - from - 1 : 0);
  }
  const units = new Uint16Array(start[count]);
  let previous = 0;
  for (let i = 0; i < count; i++) {
    const [from, to] = [lines[first + i], lines[first + i + 1] - 1];
    if (to === from) continue;
    const shared = source[from] - SHARED_PREFIX_BASE;
    units.copyWithin(start[i], previous, previous + shared);
    units.set(source.subarray(from + 1, to), start[i] + shared);
    previous = start[i];
  }
  return { units, start };
}

/** `word` compared with `units[from..to)`, code unit by code unit (as `Array.prototype.sort`). */
function compare(word: string, units: Uint16Array, from: number, to: number): number {
  const n = Math.min(word.length, to - from);
  for (let k = 0; k < n; k++) {
    const d = word.charCodeAt(k) - units[from + k];
    if (d !== 0) return d;
  }
  return word.length - (to - from);
}

/** The words of the kanji dictionary with the reading each takes wherever it stands. */
export class WordList {
  readonly #words: Expanded;
  readonly #readings: Expanded;
  /** How many words there are. */
  readonly size: number;
  /** The longest word, in UTF-16 code units. */
  readonly longest: number;

  /**
   * Reads the packed words and readings: `2 × count` lines of `source` from line `first` on.
   *
   * @param source The packed dictionary's code units.
   * @param lines Where each line of `source` starts, then `source.length + 1`.
   * @param first The first word's line.
   * @param count How many words.
   */
  constructor(source: Uint16Array, lines: Uint32Array, first: number, count: number) {
    this.#words = expand(source, lines, first, count);
    this.#readings = expand(source, lines, first + count, count);
    this.size = count;
    let longest = 0;
    const { start } = this.#words;
    for (let i = 0; i < count; i++) longest = Math.max(longest, start[i + 1] - start[i]);
    this.longest = longest;
  }

  /** The first code unit of every word, each once. */
  *initials(): Generator<string> {
    const { units, start } = this.#words;
    for (let i = 0; i < this.size; i++) {
      if (i === 0 || units[start[i]] !== units[start[i - 1]]) {
        yield String.fromCharCode(units[start[i]]);
      }
    }
  }

  /**
   * The reading `word` takes wherever it stands.
   *
   * @param word The word.
   * @returns Its reading, or `undefined` when it is not in the list.
   */
  reading(word: string): string | undefined {
    const { units, start } = this.#words;
    let [low, high] = [0, this.size - 1];
    while (low <= high) {
      const mid = (low + high) >>> 1;
      const order = compare(word, units, start[mid], start[mid + 1]);
      if (order > 0) low = mid + 1;
      else if (order < 0) high = mid - 1;
      else {
        const readings = this.#readings;
        const [from, to] = [readings.start[mid], readings.start[mid + 1]];
        if (from === to) return composeReading(word, (part) => this.reading(part));
        return String.fromCharCode(...readings.units.subarray(from, to));
      }
    }
    return undefined;
  }
}
