/**
 * The phonemizer formatting (src/text/punctuation.ts) over Debian's native espeak-ng 1.51, the
 * engine the corpus was made with, called through FFI the way Python's phonemizer calls it. It
 * matches all 368 entries (Japanese from pykakasi's hiragana, the corpus's `kana`), as the shipped
 * phonemizer does with its own hiragana in `corpus_test.ts`.
 */

import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { LANGUAGES, mapPinyinTones } from "../../src/text/languages.ts";
import { phonemizeLikePhonemizer } from "../../src/text/punctuation.ts";
import { nativeEspeak } from "./_native_espeak.ts";
import { CORPUS } from "./_corpus.ts";

Deno.test({
  name: "phonemizer formatting over native espeak-ng 1.51 reproduces all 368 corpus entries",
  async fn() {
    const espeak = nativeEspeak();
    const mismatched: string[] = [];
    for (const entry of CORPUS) {
      const voice = LANGUAGES[entry.lang].espeakVoice;
      const text = entry.lang === "ja" ? entry.kana! : entry.text;
      const convert = (chunk: string) =>
        Promise.resolve(espeak(voice, chunk).filter((clause) => clause).join(" "));
      const raw = await phonemizeLikePhonemizer(text, convert);
      const phonemes = raw !== undefined && entry.lang === "zh" ? mapPinyinTones(raw) : raw;
      if (phonemes !== (entry.phonemes ?? undefined)) mismatched.push(entry.id);
    }
    assertEquals(mismatched, []);
  },
});
