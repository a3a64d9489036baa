/**
 * What Deno gives for the browser page's sentences (tests/browser/text_page.ts). Headless
 * Chromium running the bundled page returned exactly these strings; the browser test compares the
 * page's result with this same table.
 */

import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { createEspeakPhonemizer } from "../../src/text/espeak.ts";
import type { Language } from "../../src/text/languages.ts";
import { TEXT_PAGE_EXPECTED, TEXT_PAGE_SENTENCES } from "../browser/text_page.ts";

Deno.test("Deno phonemizes the browser page's sentences as Chromium does", async () => {
  const espeak = createEspeakPhonemizer();
  const out: Record<string, string> = {};
  for (const [language, text] of Object.entries(TEXT_PAGE_SENTENCES)) {
    out[language] = await espeak.phonemize(text, language as Language);
  }
  assertEquals(out, TEXT_PAGE_EXPECTED);
});
