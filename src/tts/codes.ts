/**
 * Conversions between the two code layouts: the model's frame-major {@linkcode Codes} (frames ×
 * levels, as VALL-E stores `[T, 8]`) and the codecs' codebook-major {@linkcode AudioCodes}
 * (levels × frames, as EnCodec returns `[K, T]`), plus the prompt trim/repeat rule.
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { AudioCodes } from "../models/_codec.ts";
import type { Codes } from "../models/valle/inputs.ts";

/**
 * Codec codes (codebook-major) as model codes (frame-major), keeping the first `levels`
 * codebooks.
 *
 * @example
 * ```ts
 * import { toModelCodes } from "@valle/core";
 * const codes = toModelCodes({ codes: Int32Array.from([1, 2, 3, 4]), nQ: 2, frames: 2 }, 2);
 * console.assert([...codes.data].join() === "1,3,2,4");
 * ```
 */
export function toModelCodes(codes: AudioCodes, levels: number): Codes & { data: Int32Array } {
  const n = Math.min(levels, codes.nQ);
  const data = new Int32Array(codes.frames * n);
  for (let q = 0; q < n; q++) {
    for (let t = 0; t < codes.frames; t++) data[t * n + q] = codes.codes[q * codes.frames + t];
  }
  return { data, frames: codes.frames, levels: n };
}

/**
 * Model codes (frame-major) as codec codes (codebook-major). Codes outside the codebooks (the
 * model's stop/mask id 1024 when a run is cut short) become 0, as upstream does before decoding.
 *
 * @example
 * ```ts
 * import { toAudioCodes } from "@valle/core";
 * const audio = toAudioCodes({ data: [1, 1024, 2, 4], frames: 2, levels: 2 }, 1024);
 * console.assert([...audio.codes].join() === "1,2,0,4");
 * ```
 */
export function toAudioCodes(codes: Codes, bins: number): AudioCodes {
  const { frames, levels } = codes;
  const out = new Int32Array(frames * levels);
  for (let t = 0; t < frames; t++) {
    for (let q = 0; q < levels; q++) {
      const c = codes.data[t * levels + q];
      out[q * frames + t] = c >= 0 && c < bins ? c : 0;
    }
  }
  return { codes: out, nQ: levels, frames };
}

/**
 * Joins prompt clips frame-wise (upstream concatenates the codes of every reference clip) and,
 * with `frames` > 0, repeats the result until it is long enough and keeps the first `frames`
 * (upstream `repeat_extend_audio`, the `input_prompt_length` option).
 *
 * @example
 * ```ts
 * import { joinPrompt } from "@valle/core";
 * const clip = { data: [1, 2, 3], frames: 3, levels: 1 };
 * console.assert([...joinPrompt([clip], 7).data].join() === "1,2,3,1,2,3,1");
 * ```
 */
export function joinPrompt(clips: readonly Codes[], frames = 0): Codes & { data: Int32Array } {
  const levels = Math.min(...clips.map((c) => c.levels));
  const total = clips.reduce((n, c) => n + c.frames, 0);
  const joined = new Int32Array(total * levels);
  let at = 0;
  for (const clip of clips) {
    for (let t = 0; t < clip.frames; t++, at++) {
      for (let q = 0; q < levels; q++) joined[at * levels + q] = clip.data[t * clip.levels + q];
    }
  }
  if (frames <= 0 || total === 0) return { data: joined, frames: total, levels };
  const data = new Int32Array(frames * levels);
  for (let t = 0; t < frames; t++) {
    data.set(joined.subarray((t % total) * levels, (t % total + 1) * levels), t * levels);
  }
  return { data, frames, levels };
}
