/**
 * A small seeded random generator (mulberry32) for the places that need reproducible draws on the
 * CPU: language detection's random walks, and the training data's splits and prompt draws.
 *
 * This module is browser compatible.
 *
 * @module
 */

/**
 * mulberry32: a generator of numbers in [0, 1) from a 32-bit seed; the same seed gives the same
 * sequence.
 *
 * @param seed Any number; its low 32 bits are used.
 * @returns A function that returns the next number in [0, 1).
 *
 * @example
 * ```ts
 * import { mulberry32 } from "./_random.ts";
 * const a = mulberry32(7);
 * const b = mulberry32(7);
 * console.assert(a() === b() && a() < 1);
 * ```
 */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    let t = (state = (state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
