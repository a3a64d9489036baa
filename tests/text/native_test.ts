/**
 * The phonemizer formatting (src/text/punctuation.ts) over Debian's native espeak-ng 1.51, the
 * engine the corpus was made with, called through FFI the way Python's phonemizer calls it. It
 * matches all 368 entries (Japanese from pykakasi's hiragana), so every mismatch in
 * `corpus_test.ts` comes from the npm espeak-ng build or the hiragana conversion, not from the
 * formatting. Needs Debian's `libespeak-ng1` 1.51 (`deno task test` installs it as root; CI does).
 */

import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { LANGUAGES, mapPinyinTones } from "../../src/text/languages.ts";
import { phonemizeLikePhonemizer } from "../../src/text/punctuation.ts";
import { CORPUS } from "./_corpus.ts";

const LIBRARY = "/usr/lib/x86_64-linux-gnu/libespeak-ng.so.1.1.51";

/** `EspeakWrapper.text_to_phonemes`: UTF-8 text, IPA with `_` between phones, until consumed. */
function nativeEspeak(): (voice: string, chunk: string) => Promise<string> {
  try {
    Deno.statSync(LIBRARY);
  } catch {
    throw new Error(
      `${LIBRARY} is missing: apt-get install libespeak-ng1 (Debian 12, espeak-ng 1.51)`,
    );
  }
  const lib = Deno.dlopen(LIBRARY, {
    espeak_Initialize: { parameters: ["i32", "i32", "pointer", "i32"], result: "i32" },
    espeak_SetVoiceByName: { parameters: ["buffer"], result: "i32" },
    espeak_TextToPhonemes: { parameters: ["buffer", "i32", "i32"], result: "pointer" },
  });
  lib.symbols.espeak_Initialize(0x02, 0, null, 0);
  const encoder = new TextEncoder();
  let current = "";
  return (voice, chunk) => {
    if (voice !== current) lib.symbols.espeak_SetVoiceByName(encoder.encode(`${voice}\0`));
    current = voice;
    const text = encoder.encode(`${chunk}\0`);
    const pointer = new BigUint64Array([
      BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(text))),
    ]);
    const clauses: string[] = [];
    while (pointer[0] !== 0n) {
      const result = lib.symbols.espeak_TextToPhonemes(new Uint8Array(pointer.buffer), 1, 0x5f02);
      const clause = result ? new Deno.UnsafePointerView(result).getCString() : "";
      if (clause) clauses.push(clause);
    }
    return Promise.resolve(clauses.join(" "));
  };
}

Deno.test({
  name: "phonemizer formatting over native espeak-ng 1.51 reproduces all 368 corpus entries",
  async fn() {
    const espeak = nativeEspeak();
    const mismatched: string[] = [];
    for (const entry of CORPUS) {
      const voice = LANGUAGES[entry.lang].espeakVoice;
      const text = entry.lang === "ja" ? entry.kana! : entry.text;
      const raw = await phonemizeLikePhonemizer(text, (chunk) => espeak(voice, chunk));
      const phonemes = raw !== undefined && entry.lang === "zh" ? mapPinyinTones(raw) : raw;
      if (phonemes !== (entry.phonemes ?? undefined)) mismatched.push(entry.id);
    }
    assertEquals(mismatched, []);
  },
});
