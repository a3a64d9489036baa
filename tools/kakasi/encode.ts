/**
 * Packs pykakasi's dictionaries into the byte-coded text that `src/text/kakasi/dictionary.ts`
 * documents and parses (before gzip).
 */

import type { ContextualReading } from "../../src/text/kakasi/dictionary.ts";
import { composeReading, SHARED_PREFIX_BASE } from "../../src/text/kakasi/word_list.ts";

/** The dictionaries to pack (the fields of `KakasiDictionary`, words as a map). */
export interface Dictionary {
  /** Word → the reading it takes wherever it stands. */
  readings: ReadonlyMap<string, string>;
  /** Word → readings that take precedence after certain text, in order. */
  contextual: ReadonlyMap<string, readonly ContextualReading[]>;
  /** Variant kanji (itaiji) → its standard form, as code points. */
  itaiji: ReadonlyMap<number, number>;
  /** Half-width katakana (one character, or two with a voiced-sound mark) → full-width. */
  halfWidth: ReadonlyMap<string, string>;
  /** The characters pykakasi has words beginning with (left-out words included). */
  initials: ReadonlySet<string>;
}

/** `text` coded against `previous`: the length of their common start as one character, the rest. */
function share(text: string, previous: string): string {
  let k = 0;
  while (k < text.length && k < previous.length && text[k] === previous[k]) k++;
  return String.fromCharCode(SHARED_PREFIX_BASE + k) + text.slice(k);
}

/** The byte code: hiragana one byte, ASCII one byte, other BMP three, the rest four. */
function encodeText(text: string): Uint8Array<ArrayBuffer> {
  const bytes: number[] = [];
  for (const char of text) {
    const code = char.codePointAt(0)!;
    if (code < 0x80) bytes.push(code);
    else if (code >= 0x3040 && code < 0x30a0) bytes.push(0x80 + code - 0x3040);
    else if (code < 0x10000) bytes.push(0xe0, code >> 8, code & 0xff);
    else bytes.push(0xe1, code >> 16, (code >> 8) & 0xff, code & 0xff);
  }
  return new Uint8Array(bytes);
}

/**
 * Packs a dictionary. Readings that {@linkcode composeReading} gives back are left out.
 *
 * @param dictionary The dictionary; its words contain no line break, tab or space and its readings
 *   are not empty.
 * @returns The packed bytes.
 */
export function packDictionary(dictionary: Dictionary): Uint8Array<ArrayBuffer> {
  const itaiji = [...dictionary.itaiji].map(([a, b]) => String.fromCodePoint(a, b)).join("");
  const halfWidth = [...dictionary.halfWidth].map(([half, full]) => half + full).join(" ");
  const contextual = [...dictionary.contextual].flatMap(([word, list]) =>
    list.map(({ reading, before }) => [word, reading, ...before].join(" "))
  ).join("\t");
  const words = [...dictionary.readings.keys()].sort();
  const covered = new Set(words.map((word) => word[0]));
  const initials = [...dictionary.initials].filter((char) => !covered.has(char)).join("");
  const wordLines: string[] = [];
  const readingLines: string[] = [];
  let previousReading = "";
  words.forEach((word, i) => {
    wordLines.push(share(word, words[i - 1] ?? ""));
    const reading = dictionary.readings.get(word)!;
    if (composeReading(word, (part) => dictionary.readings.get(part)) === reading) {
      readingLines.push("");
    } else {
      readingLines.push(share(reading, previousReading));
      previousReading = reading;
    }
  });
  return encodeText(
    [itaiji, halfWidth, contextual, initials, ...wordLines, ...readingLines].join("\n"),
  );
}
