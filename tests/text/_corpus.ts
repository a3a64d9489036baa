/** The G2P golden corpus (shared/golden/phonemes/corpus.json, made by the original pipeline). */

import type { Language } from "../../src/text/languages.ts";
import { readFixture } from "../_helpers.ts";

/** One corpus entry. */
export interface CorpusEntry {
  id: string;
  lang: Language;
  espeak_voice: string;
  tags: string[];
  text: string;
  /** ja only: pykakasi's hiragana, what upstream hands to espeak. */
  kana?: string;
  /** `null` where upstream raises (empty text). */
  phonemes: string | null;
}

/** All 368 entries, in file order. */
export const CORPUS: CorpusEntry[] = JSON.parse(
  new TextDecoder().decode(await readFixture("text_phoneme_corpus.json")),
);
