/**
 * pykakasi's dictionaries (v2.3.0, built from its `src/data/` as its `kakasidict.py` builds them),
 * unpacked from the generated `_dictionary.ts` on first use.
 *
 * The packed form (written by `tools/gen_kakasi.ts`) is text, one item per line:
 *
 * 1. the itaiji table: pairs of code points, variant then standard form;
 * 2. the half-width katakana table: space-separated entries, each the half-width katakana (one
 *    character, or two with a voiced-sound mark) followed by its full-width katakana;
 * 3. the readings that depend on the text before the word: tab-separated entries, each
 *    `word reading before…`;
 * 4. the characters pykakasi has words beginning with that no word below begins with (their
 *    words all contain an itaiji);
 * 5. n words, sorted by UTF-16 code units, each as one character `!` + k (k: the code units it
 *    shares with the word before) followed by the rest of it;
 * 6. n readings of those words, in the same order: an empty line for a reading that
 *    `composeReading` (./word_list.ts) gives, else coded like the words, against the last
 *    non-empty line.
 *
 * That text is stored in a byte code where hiragana (U+3040–U+309F) take one byte: `00`–`7F` ASCII,
 * `80`–`DF` U+3040 + (byte − 0x80), `E0 hi lo` any other BMP code unit, `E1 b1 b2 b3` a code point
 * above U+FFFF; then gzipped and base64-encoded.
 *
 * This component is GPL-3.0-or-later (pykakasi's licence, data included): see
 * LICENSES/pykakasi.txt.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { gunzipBase64 } from "../../io/gunzip.ts";
import { WordList } from "./word_list.ts";

/** A reading that applies only after certain text. */
export interface ContextualReading {
  /** The reading, in hiragana. */
  reading: string;
  /** The texts (the segment just before the word) after which it applies. */
  before: readonly string[];
}

/** pykakasi's dictionaries, as the converter uses them. */
export interface KakasiDictionary {
  /** Words → the reading each takes wherever it stands (words with an itaiji are left out). */
  words: WordList;
  /** Word → readings that take precedence after certain text, in order. */
  contextual: ReadonlyMap<string, readonly ContextualReading[]>;
  /** Variant kanji (itaiji) → its standard form, as code points. */
  itaiji: ReadonlyMap<number, number>;
  /** Half-width katakana (one character, or two with a voiced-sound mark) → full-width. */
  halfWidth: ReadonlyMap<string, string>;
  /** The characters pykakasi has words beginning with (left-out words included). */
  initials: ReadonlySet<string>;
}

/** Decodes the byte code described in the module documentation into UTF-16 code units. */
function decodeUnits(bytes: Uint8Array): Uint16Array {
  const units = new Uint16Array(bytes.length);
  let n = 0;
  for (let i = 0; i < bytes.length;) {
    const b = bytes[i++];
    if (b < 0x80) units[n++] = b;
    else if (b < 0xe0) units[n++] = 0x3040 + b - 0x80;
    else if (b === 0xe0) units[n++] = (bytes[i++] << 8) | bytes[i++];
    else {
      const code = ((bytes[i++] << 16) | (bytes[i++] << 8) | bytes[i++]) - 0x10000;
      units[n++] = 0xd800 + (code >> 10);
      units[n++] = 0xdc00 + (code & 0x3ff);
    }
  }
  return units.subarray(0, n);
}

/** Where each line of `units` starts, then `units.length + 1` (as if a line break ended it). */
function lineStarts(units: Uint16Array): Uint32Array {
  let count = 1;
  for (const unit of units) if (unit === 0x0a) count++;
  const starts = new Uint32Array(count + 1);
  let line = 1;
  for (let i = 0; i < units.length; i++) if (units[i] === 0x0a) starts[line++] = i + 1;
  starts[count] = units.length + 1;
  return starts;
}

/**
 * Parses the packed dictionary (gunzipped bytes).
 *
 * @param bytes The byte-coded text described in the module documentation.
 * @returns The dictionary.
 */
export function parseDictionary(bytes: Uint8Array): KakasiDictionary {
  const units = decodeUnits(bytes);
  const lines = lineStarts(units);
  const utf16 = new TextDecoder("utf-16le");
  const [itaijiLine, halfWidthLine, contextualLine, initialsLine] = [0, 1, 2, 3].map((i) =>
    utf16.decode(units.subarray(lines[i], lines[i + 1] - 1))
  );
  const itaiji = new Map<number, number>();
  const itaijiCodes = Array.from(itaijiLine, (c) => c.codePointAt(0)!);
  for (let i = 0; i < itaijiCodes.length; i += 2) itaiji.set(itaijiCodes[i], itaijiCodes[i + 1]);
  const halfWidth = new Map<string, string>();
  for (const entry of halfWidthLine.split(" ")) halfWidth.set(entry.slice(0, -1), entry.slice(-1));
  const contextual = new Map<string, ContextualReading[]>();
  for (const entry of contextualLine ? contextualLine.split("\t") : []) {
    const [word, reading, ...before] = entry.split(" ");
    contextual.set(word, [...contextual.get(word) ?? [], { reading, before }]);
  }
  const words = new WordList(units, lines, 4, (lines.length - 1 - 4) / 2);
  const initials = new Set([...initialsLine, ...words.initials()]);
  return { words, contextual, itaiji, halfWidth, initials };
}

let loading: Promise<KakasiDictionary> | undefined;

/**
 * Unpacks the bundled dictionary the first time it is called and returns that same dictionary
 * afterwards.
 *
 * @returns The dictionary.
 *
 * @example
 * ```ts
 * import { loadKakasiDictionary } from "./dictionary.ts";
 * const dictionary = await loadKakasiDictionary();
 * console.assert(dictionary.words.reading("東京") === "とうきょう");
 * ```
 */
export function loadKakasiDictionary(): Promise<KakasiDictionary> {
  loading ??= import("./_dictionary.ts").then(async ({ DICTIONARY }) =>
    parseDictionary(await gunzipBase64(DICTIONARY))
  ).catch((error) => {
    loading = undefined;
    throw error;
  });
  return loading;
}
