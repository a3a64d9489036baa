/**
 * The whole G2P corpus through the shipped phonemizer (espeak-ng 1.51 built to WebAssembly from
 * Debian's source and data, Japanese read into hiragana by the port of pykakasi 2.3.0 over its
 * bundled dictionaries), compared with what the original Python pipeline (phonemizer 3.3 + Debian
 * espeak-ng 1.51 + pykakasi) produced. Every mismatch would be listed below with its cause; the
 * test fails if the set changes either way. There are none: every entry matches, as it does over
 * the native library (`native_test.ts`), pykakasi's quirks included (ja-051: the newline dropped
 * and the first line read twice). `japanese_test.ts` checks the hiragana itself.
 */

import { deepStrictEqual as assertEquals, rejects } from "node:assert/strict";
import { OptionError } from "../../src/errors.ts";
import { createEspeakPhonemizer } from "../../src/text/espeak.ts";
import { CORPUS, type CorpusEntry } from "./_corpus.ts";

/** Every entry whose phonemes differ from the reference, and why. */
const MISMATCHES: Readonly<Record<string, string>> = {};

/** Exact matches per language. */
const EXPECTED_RATES: Readonly<Record<string, string>> = {
  en: "65/65",
  de: "60/60",
  fr: "61/61",
  ja: "61/61",
  zh: "61/61",
  ko: "60/60",
};

async function run(entries: CorpusEntry[]) {
  const espeak = createEspeakPhonemizer();
  const counts: Record<string, [number, number]> = {};
  const mismatched: string[] = [];
  for (const entry of entries) {
    const count = counts[entry.lang] ??= [0, 0];
    count[1]++;
    if (entry.phonemes === null) {
      await rejects(espeak.phonemize(entry.text, entry.lang), OptionError, entry.id);
      count[0]++;
      continue;
    }
    const phonemes = await espeak.phonemize(entry.text, entry.lang);
    if (phonemes === entry.phonemes) count[0]++;
    else mismatched.push(entry.id);
  }
  const rates = Object.fromEntries(Object.entries(counts).map(([k, [ok, n]]) => [k, `${ok}/${n}`]));
  return { rates, mismatched };
}

Deno.test("espeak phonemizer reproduces the corpus at the reported rates", async () => {
  const { rates, mismatched } = await run(CORPUS);
  assertEquals(mismatched, Object.keys(MISMATCHES));
  assertEquals(rates, EXPECTED_RATES);
});
