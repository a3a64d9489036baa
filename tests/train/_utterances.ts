/**
 * Synthetic utterances of the tiny model for training tests: random codes and phonemes, several
 * speakers, so that items get prompts from other clips.
 */

import { mulberry32 } from "../../src/_random.ts";
import type { Utterance } from "../../src/train/utterance.ts";

/**
 * `count` utterances of 6..13 frames over `speakers` speakers, codes below `audioTokens`.
 *
 * @param count How many.
 * @param seed Seeds the codes and phonemes.
 * @param speakers Speakers, taken in turn.
 * @param audioTokens Codes per level.
 * @param levels RVQ levels.
 */
export function randomUtterances(
  count: number,
  seed: number,
  speakers = 2,
  audioTokens = 1024,
  levels = 8,
): Utterance[] {
  const random = mulberry32(seed);
  return Array.from({ length: count }, (_, i) => {
    const frames = 6 + Math.floor(random() * 8);
    return {
      name: `clip${i}`,
      speaker: `speaker${i % speakers}`,
      language: "en" as const,
      languageId: 0,
      text: "",
      ipa: "",
      phonemes: Uint16Array.from(
        [1, ...Array.from({ length: 3 + i % 4 }, () => 3 + Math.floor(random() * 200)), 2],
      ),
      codes: Int16Array.from({ length: frames * levels }, () => Math.floor(random() * audioTokens)),
      frames,
      levels,
    };
  });
}
