/**
 * The split of utterances into a training set and a held-out evaluation set, the same for the
 * same seed. Utterances are visited in a seeded shuffle, and one goes to evaluation only when its
 * speaker keeps at least two in training (upstream's `min_utterances`), so every training item
 * still draws its prompt from another clip of its speaker. Draw a held-out item's prompt from the
 * training set: `samplePrompt(item, split.train)`.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { checkRanges } from "../_options.ts";
import { mulberry32 } from "../_random.ts";
import type { Utterance } from "./utterance.ts";

/** Options of {@linkcode splitUtterances}. */
export interface SplitUtterancesOptions {
  /** The share held out, when `evalCount` is not given: `round(share · n)`. Default 0.1. */
  evalFraction?: number;
  /** How many to hold out (fewer when speakers cannot spare them). */
  evalCount?: number;
  /** Seeds the shuffle. Default 0. */
  seed?: number;
}

/** Training and evaluation utterances, each in the order given. */
export interface UtteranceSplit {
  /** The utterances trained on. */
  train: Utterance[];
  /** The utterances held out. */
  eval: Utterance[];
}

const RANGES = {
  evalFraction: { min: 0, max: 1 },
  evalCount: { integer: true, min: 0 },
  seed: { integer: true },
} as const;

/** Fewest training utterances a speaker keeps (upstream's `min_utterances` default). */
const MIN_TRAIN_PER_SPEAKER = 2;

/**
 * Splits utterances into training and held-out evaluation sets, deterministically by seed.
 *
 * @param utterances The prepared utterances.
 * @param options How many to hold out, and the seed.
 * @returns The two sets, each in the order given.
 * @throws {OptionError} Options out of range.
 *
 * @example
 * ```ts
 * import { splitUtterances } from "./split.ts";
 * const u = (name: string) => ({
 *   name, speaker: "me", language: "en" as const, languageId: 0, text: "", ipa: "",
 *   phonemes: Uint16Array.of(1, 2), codes: new Int16Array(8), frames: 1, levels: 8,
 * });
 * const { train, eval: held } = splitUtterances([u("a"), u("b"), u("c"), u("d")], { evalCount: 1 });
 * console.assert(train.length === 3 && held.length === 1);
 * ```
 */
export function splitUtterances(
  utterances: readonly Utterance[],
  options: SplitUtterancesOptions = {},
): UtteranceSplit {
  const { evalFraction = 0.1, seed = 0 } = options;
  checkRanges("split the utterances", { ...options, evalFraction, seed }, RANGES);
  const wanted = options.evalCount ?? Math.round(evalFraction * utterances.length);
  const left = new Map<string, number>();
  for (const u of utterances) left.set(u.speaker, (left.get(u.speaker) ?? 0) + 1);
  const order = utterances.map((_, i) => i);
  const random = mulberry32(seed);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const held = new Set<number>();
  for (const i of order) {
    if (held.size >= wanted) break;
    const speaker = utterances[i].speaker;
    if (left.get(speaker)! <= MIN_TRAIN_PER_SPEAKER) continue;
    left.set(speaker, left.get(speaker)! - 1);
    held.add(i);
  }
  return {
    train: utterances.filter((_, i) => !held.has(i)),
    eval: utterances.filter((_, i) => held.has(i)),
  };
}
