/**
 * Japanese → hiragana against pykakasi 2.3.0 (revision 6404101b, dictionaries built by its own
 * `kakasidict.py`), which upstream runs: every Japanese corpus entry's `kana` field, and focused
 * cases whose expected strings were produced by running that pykakasi, not written by hand.
 */

import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { createHiraganaConverter, toHiragana } from "../../src/text/japanese.ts";
import { CORPUS } from "./_corpus.ts";

/** [text, pykakasi's hiragana, what it shows]. */
const CASES: readonly (readonly [string, string, string])[] = [
  ["", "", "empty text"],
  ["カタカナ", "かたかな", "katakana"],
  ["コーヒー", "こーひー", "the long-vowel mark stays"],
  ["ヴァイオリン", "ゔぁいおりん", "ヴ and small katakana"],
  ["ヷヸ・", "ヷヸ・", "ヷ–ヺ and ・ stay katakana"],
  ["ｶﾞｷﾞｸﾞ", "がぎぐ", "half-width katakana with voiced marks"],
  ["ｺｰﾋｰ", "こ゜ひ゜", "half-width ｰ becomes ゜ (ー shifted like a katakana)"],
  ["ﾊﾟﾝ", "ははん", "half-width ﾟ has no class: dropped, segment emitted twice"],
  [`${"ｱ".repeat(31)}ｶﾞｷ`, `${"あ".repeat(31)}かき`, "ｶﾞ split by the 32-character window"],
  [`${"ｱ".repeat(32)}ｲｳ`, `${"あ".repeat(32)}う`, "half-width kana ending a window eats one"],
  ["國語", "こくご", "itaiji 國 read as 国"],
  ["舘", "かん", "itaiji 舘 read as 館"],
  ["漢\ufe00字", "かんじ", "a variation selector after a kanji"],
  ["葛\u{e0100}城", "かつらぎ", "an ideographic variation selector inside a word"],
  ["愛くるしい", "あいくるしい", "okurigana from a dictionary letter ending"],
  ["書かない", "かかない", "okurigana"],
  ["美しかった", "うつくしかった", "okurigana, adjective"],
  ["日本", "にっぽん", "the first reading listed wins"],
  ["日本語", "にほんご", "the longest word wins over 日本 + 語"],
  ["東京都庁", "とうきょうとちょう", "a compound"],
  ["今日は", "こんにちは", "longest match over 今日 + は"],
  ["色", "いろ", "色 on its own"],
  ["そん色", "そんしょく", "色 after そん: a reading that depends on the segment before"],
  ["髙橋", "", "unknown kanji: dropped with the character after it"],
  ["丂あい", "い", "unknown kanji before kana"],
  [
    "一行目\n二行目",
    "いちぎょうめいちぎょうめにぎょうめ",
    "newline: dropped, line 1 emitted twice",
  ],
  ["あ\tい", "ああい", "tab"],
  ["こんにちは😀世界", "こんにちはこんにちはせかい", "a character above U+FFFF"],
  ["＝；", "", "full-width ＝ and ； have no class"],
  ["「東京」、大阪。", "「とうきょう」、おおさか。", "CJK punctuation passes through"],
  ["VALL-Eは2023年に発表された。", "VALL-Eは2023ねんにはっぴょうされた。", "ASCII passes through"],
  ["ＡＢＣ１２３", "ＡＢＣ１２３", "full-width letters and digits pass through"],
  ["Ωμέγα", "Ωμέγα", "Greek passes through"],
  ["ヽヾゝゞ", "ゝゞ", "ヽヾ have no class, ゝゞ are symbols"],
  ["〆切", "〆せつ", "〆 is a symbol"],
];

Deno.test("toHiragana gives pykakasi's hiragana for every Japanese corpus entry", async () => {
  const japanese = CORPUS.filter((entry) => entry.lang === "ja");
  const results = await Promise.all(japanese.map(async (e) => [e.id, await toHiragana(e.text)]));
  assertEquals(results, japanese.map((entry) => [entry.id, entry.kana]));
  assertEquals(results.length, 61);
});

Deno.test("toHiragana reproduces pykakasi on focused cases", async () => {
  const results = await Promise.all(
    CASES.map(async ([text, , what]) => [what, await toHiragana(text)]),
  );
  assertEquals(results, CASES.map(([, kana, what]) => [what, kana]));
});

Deno.test("createHiraganaConverter gives converters that read as toHiragana does", async () => {
  const [a, b] = [createHiraganaConverter(), createHiraganaConverter()];
  assertEquals(await a("私は学生です。"), "わたしはがくせいです。");
  assertEquals(await b("私は学生です。"), await toHiragana("私は学生です。"));
});
