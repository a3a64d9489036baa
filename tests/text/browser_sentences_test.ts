/**
 * What Deno gives for the browser page's sentences (tests/browser/text_page.ts). Headless
 * Chromium running the bundled page returned exactly these strings; the browser test compares the
 * page's result with this same table.
 */

import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { createEspeakPhonemizer } from "../../src/text/espeak.ts";
import type { Language } from "../../src/text/languages.ts";
import { TEXT_PAGE_SENTENCES } from "../browser/text_page.ts";

/** The phonemes of each sentence of `TEXT_PAGE_SENTENCES`. */
export const TEXT_PAGE_EXPECTED: Readonly<Record<Language, string>> = {
  en: "wˈʌns ɐɡˈɛn, ˈɛksələnt wˈɜːk.",
  ja: "wˌätäɕˌihäɡˌäkɯᵝsˌe̞idˈe̞sɯᵝ",
  de: "dɛɾ tsˈuːk fˈɛːɾt ʊm ˈaxt ˈuːɾ ˈap.",
  fr: "bɔ̃ʒˈuʁ, kɔmˌɑ̃ alˈevˈu ?",
  zh: "wˈoˉ ɕˈiˉ χˈuaˇn ts.hˈi._ phiɜŋkˈuoˉ",
  ko: "ˈɐnnjʌŋhˌɐsejˌo, mˈɐnnɐsˌʌpˈɐnqɐps-ˌɯpnidˌɐ.",
};

Deno.test("Deno phonemizes the browser page's sentences as Chromium does", async () => {
  const espeak = createEspeakPhonemizer();
  const out: Record<string, string> = {};
  for (const [language, text] of Object.entries(TEXT_PAGE_SENTENCES)) {
    out[language] = await espeak.phonemize(text, language as Language);
  }
  assertEquals(out, TEXT_PAGE_EXPECTED);
});
