/**
 * Reference audio for voice cloning: WAV bytes, a path or URL to a WAV file, a Blob, or samples
 * with their rate, turned into the mono 24 kHz signal EnCodec encodes (upstream's channel rule:
 * two channels keep channel 0; more are averaged; then the windowed-sinc resampler).
 *
 * This module is browser compatible.
 *
 * @module
 */

import { checkFiniteSamples } from "../audio/finite.ts";
import { toMono } from "../audio/resample.ts";
import { decodeWav, type WavAudio } from "../audio/wav.ts";
import { OptionError } from "../errors.ts";
import { readAllBytes } from "../io/source.ts";
import { type FileSource, sourceName } from "./sources.ts";

/** A reference clip: a WAV file (path, URL, bytes, Blob) or decoded samples. */
export type AudioInput = FileSource | WavAudio | { samples: Float32Array; sampleRate: number };

/**
 * Reads a reference clip as mono samples at `sampleRate`.
 *
 * @param input The clip.
 * @param sampleRate The codec's rate (24000).
 * @param signal Aborts reading.
 * @param onWarning Told what was read leniently (a WAV file cut short, see `decodeWav`), each
 * message starting with the file's name. Default: `console.warn`.
 * @returns Mono samples.
 * @throws {FormatError} The file is not a WAV file this library reads.
 * @throws {OptionError} The samples are empty, one is not finite (NaN, ±Infinity) or the rate is
 * invalid.
 *
 * @example
 * ```ts
 * import { readReference } from "@valle/core";
 * const mono = await readReference({ samples: new Float32Array(4800), sampleRate: 48000 }, 24000);
 * console.assert(mono.length === 2400);
 * ```
 */
export async function readReference(
  input: AudioInput,
  sampleRate: number,
  signal?: AbortSignal,
  onWarning: (message: string) => void = console.warn,
): Promise<Float32Array> {
  let audio: WavAudio;
  let label = "reference audio";
  if (typeof input === "object" && "channels" in input) audio = input;
  else if (typeof input === "object" && "samples" in input) {
    audio = { sampleRate: input.sampleRate, channels: [input.samples] };
  } else {
    label = sourceName(input, label);
    const wav = decodeWav(await readAllBytes(input, { label, kind: "WAV", signal }), label);
    for (const warning of wav.warnings) onWarning(`Reading WAV "${label}": ${warning.message}`);
    audio = wav;
  }
  checkFiniteSamples(audio.channels, `use ${label} as a reference`);
  const mono = toMono(audio.channels, audio.sampleRate, sampleRate);
  if (mono.length === 0) {
    throw new OptionError(`Cannot use ${label} as a reference: it has no samples`);
  }
  return mono;
}
