/**
 * {@linkcode Speech}: what synthesis returns: the samples at 24 kHz, the codes and phonemes of
 * every piece, and WAV/Blob export.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { encodeWav, type EncodeWavOptions } from "../audio/wav.ts";
import type { GeneratedCodes } from "../models/valle/inputs.ts";

/** One piece of the text (a sentence, a line), as it was spoken. */
export interface SpeechPiece {
  /** Index of the piece in the text. */
  index: number;
  /** Pieces in the text. */
  count: number;
  /** The piece's text. */
  text: string;
  /** Its phonemes (IPA). */
  phonemes: string;
  /** The model's language id it was spoken with. */
  languageId: number;
  /** The generated codes, frame-major (frames × RVQ levels). */
  codes: GeneratedCodes;
  /** Which path produced level 0. */
  modality: "ar+nar" | "nar-len";
  /** The piece's audio. */
  samples: Float32Array;
  /** Samples per second (24000). */
  sampleRate: number;
}

/**
 * Synthesized speech.
 *
 * @example
 * ```ts
 * import { Speech } from "@valle/core";
 * const speech = new Speech(new Float32Array(2400), 24000, []);
 * console.assert(speech.duration === 0.1 && speech.toWav().length === 44 + 4800);
 * ```
 */
export class Speech {
  /** Mono samples. */
  readonly samples: Float32Array;
  /** Samples per second. */
  readonly sampleRate: number;
  /** Every piece of the text, in order. */
  readonly pieces: readonly SpeechPiece[];

  /**
   * Wraps samples and the pieces they were made from.
   *
   * @param samples Mono samples.
   * @param sampleRate Samples per second.
   * @param pieces The pieces, in order.
   */
  constructor(samples: Float32Array, sampleRate: number, pieces: readonly SpeechPiece[]) {
    this.samples = samples;
    this.sampleRate = sampleRate;
    this.pieces = pieces;
  }

  /** Length in seconds. */
  get duration(): number {
    return this.samples.length / this.sampleRate;
  }

  /** The phonemes of every piece, space-separated. */
  get phonemes(): string {
    return this.pieces.map((p) => p.phonemes).join(" ");
  }

  /**
   * The audio as a WAV file (16-bit PCM by default, or float32).
   *
   * @param options The sample format.
   * @returns The file's bytes.
   */
  toWav(options?: EncodeWavOptions): Uint8Array {
    return encodeWav(this.samples, this.sampleRate, options);
  }

  /**
   * The audio as a WAV Blob, e.g. for an `<audio>` element or a download link.
   *
   * @param options The sample format.
   * @returns A Blob of type `audio/wav`.
   */
  toBlob(options?: EncodeWavOptions): Blob {
    return new Blob([this.toWav(options) as Uint8Array<ArrayBuffer>], { type: "audio/wav" });
  }
}

/** Milliseconds of the raised-cosine fade at each junction between pieces. */
const FADE_MS = 5;

/**
 * Concatenates piece audio without clicks: each internal junction gets a short raised-cosine
 * fade out and in (5 ms), so the waveform meets at zero instead of jumping; `pauseSeconds` of
 * silence may be put between pieces.
 *
 * @example
 * ```ts
 * import { joinPieces } from "@valle/core";
 * const joined = joinPieces([new Float32Array(480).fill(1), new Float32Array(480).fill(-1)], 24000);
 * console.assert(joined.length === 960 && joined[479] === 0 && joined[480] === 0);
 * ```
 */
export function joinPieces(
  pieces: readonly Float32Array[],
  sampleRate: number,
  pauseSeconds = 0,
): Float32Array {
  const pause = Math.round(pauseSeconds * sampleRate);
  const total = pieces.reduce((n, p) => n + p.length, 0) + pause * Math.max(0, pieces.length - 1);
  const out = new Float32Array(total);
  const fade = Math.round((FADE_MS / 1000) * sampleRate);
  let at = 0;
  pieces.forEach((piece, i) => {
    out.set(piece, at);
    const n = Math.min(fade, Math.floor(piece.length / 2));
    for (let k = 0; k < n; k++) {
      const gain = 0.5 - 0.5 * Math.cos((Math.PI * k) / n); // 0 → 1
      if (i > 0) out[at + k] *= gain;
      if (i < pieces.length - 1) out[at + piece.length - 1 - k] *= gain;
    }
    at += piece.length + pause;
  });
  return out;
}
