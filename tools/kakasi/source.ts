/**
 * Reads pykakasi's dictionary sources (`tools/kakasi/data/`, copies of pykakasi's `src/data/`) into
 * the tables its `kakasidict.py` builds from them at install time:
 *
 * - the kanji dictionary (`kakasidict.utf8`, `unidict_noun.utf8`, `unidict_adj.utf8`, in that
 *   order): `reading word [context…]` lines; a reading ending in an ASCII letter stands for one
 *   entry per kana that letter may begin (`あいくるしk 愛くるし` gives `愛くるしか`,
 *   `愛くるしき`, …), with that kana appended to both sides;
 * - the variant kanji (itaiji) table, `standard variant` lines, and the half-width katakana table,
 *   `full-width half-width` lines, both with Python string escapes.
 *
 * Lines starting with `;;` are comments. Large sources are stored gzipped (`.gz`).
 */

import { gunzipSync } from "node:zlib";

const DATA = new URL("./data/", import.meta.url);

/** The kanji dictionary's sources, in the order pykakasi reads them. */
const KANJI_SOURCES = ["kakasidict.utf8.gz", "unidict_noun.utf8.gz", "unidict_adj.utf8"];

/** One reading of a word: the reading, and the texts it must follow (`null`: any). */
export type SourceReading = readonly [reading: string, before: readonly string[] | null];

/**
 * The kana an okurigana letter at the end of a reading stands for (kakasidict.py's table):
 * `k` → か ゕ き く け ゖ こ っ, and so on. A letter not listed yields no entry.
 */
const OKURIGANA: Readonly<Record<string, string>> = {
  a: "あぁっわゎ",
  i: "いぃっゐ",
  u: "うぅっ",
  e: "えぇっゑ",
  o: "おぉっ",
  k: "かゕきくけゖこっ",
  g: "がぎぐげごっ",
  s: "さしすせそっ",
  z: "ざじずぜぞっ",
  j: "ざじずぜぞっ",
  t: "たちつてとっ",
  d: "だぢづでどっ",
  c: "ちっ",
  n: "なにぬねのん",
  h: "はひふへほっ",
  b: "ばびぶべぼっ",
  f: "ふっ",
  p: "ぱぴぷぺぽっ",
  m: "まみむめも",
  y: "やゃゆゅよょ",
  r: "らりるれろ",
  l: "らりるれろ",
  w: "わゐゑゎをっ",
  v: "ゔ",
};

/** A source file as text, gunzipped when its name ends in `.gz`. */
async function readSource(name: string): Promise<string> {
  const bytes = await Deno.readFile(new URL(name, DATA));
  return new TextDecoder().decode(name.endsWith(".gz") ? gunzipSync(bytes) : bytes);
}

/** The lines of a source that are not comments or blank, trimmed. */
function entries(text: string): string[] {
  return text.split("\n").map((line) => line.trim()).filter((line) =>
    line !== "" && !line.startsWith(";;")
  );
}

/** Replaces the `\uXXXX` and `\UXXXXXXXX` escapes the sources use; any other escape is an error. */
function unescape(line: string): string {
  return line.replace(/\\(?:u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|.?)/g, (escape, u, U) => {
    if (!u && !U) throw new Error(`Cannot read the escape ${escape} in ${JSON.stringify(line)}`);
    return String.fromCodePoint(parseInt(u ?? U, 16));
  });
}

/** `a b` lines (after unescaping) as a map b → a. */
async function readPairs(name: string): Promise<Map<string, string>> {
  const pairs = new Map<string, string>();
  for (const line of entries(await readSource(name))) {
    const fields = unescape(line).split(" ");
    if (fields.length !== 2) throw new Error(`Cannot read ${name} line ${JSON.stringify(line)}`);
    pairs.set(fields[1], fields[0]);
  }
  return pairs;
}

/** The itaiji table: variant character → its standard form. */
export function readItaiji(): Promise<Map<string, string>> {
  return readPairs("itaijidict.utf8");
}

/** The half-width table: half-width katakana (with its voiced mark, if any) → full-width. */
export function readHalfWidth(): Promise<Map<string, string>> {
  return readPairs("halfkana.utf8");
}

/**
 * The kanji dictionary: word → its readings, in source order (okurigana letters expanded).
 *
 * @returns Every word, in order of first appearance.
 */
export async function readKanjiDictionary(): Promise<Map<string, SourceReading[]>> {
  const words = new Map<string, SourceReading[]>();
  const add = (word: string, reading: string, before: string[] | null) => {
    const list = words.get(word);
    if (list) list.push([reading, before]);
    else words.set(word, [[reading, before]]);
  };
  for (const name of KANJI_SOURCES) {
    for (const line of entries(await readSource(name))) {
      const [reading, word, ...before] = line.split(" ");
      if (!word) throw new Error(`Cannot read ${name} line ${JSON.stringify(line)}`);
      const context = before.length > 0 ? before : null;
      const last = reading.codePointAt(reading.length - 1)!;
      if (last > 0x7a) add(word, reading, context);
      else {
        const stem = reading.slice(0, -1);
        for (const kana of OKURIGANA[reading.at(-1)!] ?? "") add(word + kana, stem + kana, context);
      }
    }
  }
  return words;
}
