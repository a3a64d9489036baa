/**
 * Training prompts as upstream's `Dataset.sample_prompts` draws them (training-spec §9.4): codes
 * of *other* utterances of the target's speaker, each cut to its first `trim` frames, joined until
 * there are at least `trim` frames, then cut to `trim`, where `trim = int(U(3, 6) · 75)`. Upstream
 * draws a "similar" utterance with probability `prompt_similar_p` when a similarity index exists;
 * none exists here, so every draw takes the random branch (a uniform choice, repeats possible),
 * after consuming the number upstream's test of that probability consumes.
 *
 * Random numbers come from an injected generator of numbers in [0, 1), in upstream's order: one
 * for the trim length, then per draw one for the similar-utterance test and one for the choice
 * (`floor(r · n)`). Two differences from the Python code, neither changing the rule: the other
 * utterances are taken in the order given (upstream iterates a `set`, whose order depends on
 * string hashing), and Python's `random.choice` draws bits rather than a float.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { checkRanges } from "../_options.ts";
import { OptionError } from "../errors.ts";
import type { Utterance } from "./utterance.ts";

/** Options of {@linkcode samplePrompt}: upstream's `dataset.prompt_*` settings. */
export interface PromptSamplingOptions {
  /** Numbers in [0, 1). Default `Math.random`; pass a seeded one (`mulberry32`) to reproduce. */
  random?: () => number;
  /** The prompt's length range in seconds (`prompt_duration_range`). Default [3, 6]. */
  durationRange?: readonly [number, number];
  /** The most utterances joined (`prompt_max_samples`). Default 3. */
  maxSamples?: number;
  /** Frames per second (`frames_per_second`). Default 75. */
  framesPerSecond?: number;
}

/** A prompt: codes frame-major, as the utterances hold them. */
export interface PromptCodes {
  /** The code of level q at frame t is `data[t · levels + q]`. */
  data: Int16Array;
  /** Frames. */
  frames: number;
  /** Levels per frame. */
  levels: number;
}

const RANGES = {
  maxSamples: { integer: true, min: 1 },
  framesPerSecond: { above: 0 },
} as const;

/**
 * Draws the prompt of one training item from the other utterances of its speaker.
 *
 * @param target The item's utterance (its prompt never includes it, unless it is in `pool` under
 * another name).
 * @param pool The utterances to draw from (all speakers; the target's own are used). For a
 * held-out item, pass the training utterances.
 * @param options The generator and upstream's prompt settings.
 * @returns The prompt, or null when the speaker has at most one utterance in `pool` (upstream
 * trains such an item without a prompt).
 * @throws {OptionError} Options out of range.
 *
 * @example
 * ```ts
 * import { samplePrompt } from "./prompts.ts";
 * const utterance = (name: string, frames: number) => ({
 *   name, speaker: "me", language: "en" as const, languageId: 0, text: "", ipa: "",
 *   phonemes: Uint16Array.of(1, 2), codes: new Int16Array(frames * 8).fill(frames), frames,
 *   levels: 8,
 * });
 * const pool = [utterance("a", 300), utterance("b", 500)];
 * const prompt = samplePrompt(pool[0], pool, { random: () => 0.5 });
 * console.assert(prompt!.frames === 337 && prompt!.data[0] === 500); // int(4.5 · 75), from "b"
 * ```
 */
export function samplePrompt(
  target: Utterance,
  pool: readonly Utterance[],
  options: PromptSamplingOptions = {},
): PromptCodes | null {
  const {
    random = Math.random,
    durationRange = [3, 6],
    maxSamples = 3,
    framesPerSecond = 75,
  } = options;
  checkRanges("sample a prompt", { maxSamples, framesPerSecond }, RANGES);
  const [lo, hi] = durationRange;
  if (!(Number.isFinite(lo) && Number.isFinite(hi) && 0 <= lo && lo <= hi)) {
    throw new OptionError(
      `Cannot sample a prompt: durationRange is [${durationRange}], expected [lo, hi] with ` +
        `0 ≤ lo ≤ hi`,
    );
  }
  const speaker = pool.filter((u) => u.speaker === target.speaker);
  if (new Set(speaker.map((u) => u.name)).size <= 1) return null;
  let choices = speaker.filter((u) => u.name !== target.name);
  if (choices.length === 0) choices = speaker;
  // hi ≤ 0 turns trimming off (upstream's `should_trim = False`): one whole utterance.
  const trim = hi > 0 ? Math.trunc((lo + (hi - lo) * random()) * framesPerSecond) : 0;
  const pieces: Int16Array[] = [];
  let frames = 0;
  for (let i = 0; i < maxSamples; i++) {
    random(); // upstream's `random.random() < prompt_similar_p`: no similarity index here
    const picked = choices[Math.floor(random() * choices.length)];
    const kept = 0 < trim && trim < picked.frames ? trim : picked.frames;
    pieces.push(picked.codes.subarray(0, kept * picked.levels));
    frames += kept;
    if (frames >= trim) break;
  }
  const levels = target.levels;
  const length = 0 < trim && trim < frames ? trim : frames;
  const data = new Int16Array(length * levels);
  let at = 0;
  for (const piece of pieces) {
    const n = Math.min(piece.length, data.length - at);
    data.set(piece.subarray(0, n), at);
    at += n;
  }
  return { data, frames: length, levels };
}
