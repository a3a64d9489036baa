/**
 * Browser entry for the text front end: phonemizes one sentence per language with the bundled
 * espeak-ng phonemizer and returns the strings, for comparison with Deno's output
 * (`TEXT_PAGE_EXPECTED`). espeak-ng 1.51 and the Japanese dictionary come inside the bundle: the
 * page fetches nothing.
 */

import { createEspeakPhonemizer } from "../../src/text/espeak.ts";
import type { Language } from "../../src/text/languages.ts";

/** One sentence per language. */
export const TEXT_PAGE_SENTENCES: Readonly<Record<Language, string>> = {
  en: "Once again, excellent work.",
  ja: "私は学生です。",
  de: "Der Zug fährt um acht Uhr ab.",
  fr: "Bonjour, comment allez-vous ?",
  zh: "我喜欢吃苹果。",
  ko: "안녕하세요, 만나서 반갑습니다.",
};

/** What Deno gives for each sentence; the page must return the same in Chromium. */
export const TEXT_PAGE_EXPECTED: Readonly<Record<Language, string>> = {
  en: "wˈʌns ɐɡˈɛn, ˈɛksələnt wˈɜːk.",
  ja: "wˌätäɕˌihäɡˌäkɯᵝsˌe̞idˈe̞sɯᵝ",
  de: "dɛɾ tsˈuːk fˈɛːɾt ʊm ˈaxt ˈuːɾ ˈap.",
  fr: "bɔ̃ʒˈuʁ, kɔmˌɑ̃ alˈevˈu ?",
  zh: "wˈoˉ ɕˈiˉ χˈuaˇn ts.hˈi._ phˈiɜŋ kˈuoˉ",
  ko: "ˈɐnnjʌŋhˌɐsejˌo, mˈɐnnɐsˌʌpˈɐnqɐps-ˌɯpnidˌɐ.",
};

/** Phonemizes every sentence; resolves to `{ language: phonemes }`. */
export default async function (): Promise<Record<string, string>> {
  const espeak = createEspeakPhonemizer();
  const out: Record<string, string> = {};
  for (const [language, text] of Object.entries(TEXT_PAGE_SENTENCES)) {
    out[language] = await espeak.phonemize(text, language as Language);
  }
  return out;
}
