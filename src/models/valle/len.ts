/**
 * Duration prediction (the "len" task, valle-spec §5.2): decimal digits of the frame count,
 * generated greedily after a leading 0 until the stop digit 10, at most 10 iterations, through the
 * duration head with a causal mask. It is the AR decoding loop with the `len_emb` table.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { decode } from "./ar.ts";
import { assembleSequence } from "./inputs.ts";
import type { Conditioning } from "./nar.ts";
import type { ValleContext } from "./pass.ts";
import { phaseBoundary, type ProgressOptions } from "./progress.ts";
import { resolveSamplerOptions, STREAM } from "./sampler.ts";

/** The duration digits and the number they spell. */
export interface Duration {
  /** The len segment after the loop: 0, the predicted digits, and 10 when the stop came. */
  digits: Int32Array;
  /** The digits (without the stop) read as a decimal number: frames at 75 per second. */
  frames: number;
}

/** The original's iteration limit and stop digit. */
const MAX_DIGITS = 10;
const STOP = 10;

/**
 * Runs the duration loop (the sequence needs `prefix + 11` positions of state capacity). Progress
 * (phase "duration", 10 steps) comes when the digits are read, and an abort takes effect there.
 *
 * @example
 * ```ts ignore
 * const { frames } = await predictDuration(ctx, { phonemes, language: 0, prompt });
 * ```
 */
export async function predictDuration(
  ctx: ValleContext,
  c: Conditioning,
  progress: ProgressOptions = {},
): Promise<Duration> {
  const { config, weights } = ctx.model;
  const seq = assembleSequence(config, weights.layout, {
    ...c,
    mode: "len",
    responseFrames: 1 + MAX_DIGITS,
  });
  const run = await decode(ctx, {
    seq,
    initial: [0],
    maxSteps: MAX_DIGITS,
    stopToken: STOP,
    sampler: resolveSamplerOptions({ temperature: 0 }),
    seed: 0,
    stream: STREAM.len,
    checkEvery: MAX_DIGITS,
    boundary: phaseBoundary(progress, "duration", MAX_DIGITS),
  });
  return readDuration(run.sampled);
}

/** The duration spelled by the digits a duration loop sampled (after its leading 0). */
export function readDuration(sampled: ArrayLike<number>): Duration {
  const digits = Int32Array.from([0, ...Array.from(sampled)]);
  const text = Array.from(digits).filter((d) => d !== STOP).join("");
  return { digits, frames: Number(text) };
}

/** The duration loop's settings: digits at most, and the stop digit. */
export const DURATION_DIGITS: { readonly max: number; readonly stop: number } = {
  max: MAX_DIGITS,
  stop: STOP,
};

/** Frames needed by {@linkcode predictDuration} beyond the conditioning. */
export const DURATION_FRAMES: number = 1 + MAX_DIGITS;
