/**
 * The training data's two shapes: {@linkcode TrainingClip}, what a user gives (a voice clip and
 * its transcript), and {@linkcode Utterance}, what training reads (EnCodec codes and phoneme
 * token ids, upstream's `resps` and `phns`).
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { Language } from "../text/languages.ts";
import type { AudioInput } from "../tts/reference.ts";

/**
 * One voice clip with its transcript.
 *
 * @example
 * ```ts
 * import type { TrainingClip } from "./utterance.ts";
 * const clip: TrainingClip = { name: "hello", audio: "hello.wav", text: "Hello there.", language: "en" };
 * ```
 */
export interface TrainingClip {
  /** Names the clip in reports and in prompt sampling; unique per speaker. */
  name: string;
  /**
   * The audio: a WAV file (path in Deno, URL, bytes, Blob) or samples with their rate, any
   * channel count (averaged, as upstream's preprocessing does) and rate (resampled).
   */
  audio: AudioInput;
  /** What is said in it. */
  text: string;
  /** Its language (`en ja de fr zh ko`). Default: the option's, else detected from the text. */
  language?: string;
  /** Whose voice it is: prompts are drawn from the same speaker's other clips. Default "speaker". */
  speaker?: string;
}

/**
 * A clip ready for training: the codes of its audio and the token ids of its transcript.
 *
 * @example
 * ```ts
 * import type { Utterance } from "./utterance.ts";
 * const u: Utterance = {
 *   name: "a", speaker: "me", language: "en", languageId: 0, text: "Hi.", ipa: "hˈaɪ.",
 *   phonemes: Uint16Array.of(1, 5, 2), codes: new Int16Array(8 * 75), frames: 75, levels: 8,
 * };
 * ```
 */
export interface Utterance {
  /** The clip's name. */
  name: string;
  /** The speaker. */
  speaker: string;
  /** The language the transcript was phonemized in. */
  language: Language;
  /** The model's id for `language` (the `lang` token). */
  languageId: number;
  /** The transcript. */
  text: string;
  /** The transcript's phonemes (IPA), as the text front end gives them. */
  ipa: string;
  /** Phoneme token ids, `1 … 2` (BOS … EOS), as the model's tokenizer gives them. */
  phonemes: Uint16Array;
  /** EnCodec codes, frame-major: the code of level q at frame t is `codes[t · levels + q]`. */
  codes: Int16Array;
  /** Frames (75 per second). */
  frames: number;
  /** RVQ levels per frame (the model's, 8). */
  levels: number;
}
