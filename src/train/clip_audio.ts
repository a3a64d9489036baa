/**
 * A training clip's audio as the codec takes it, and the fingerprint its codes are cached under:
 * the SHA-256 of the file's bytes (or of the samples and their rate). Multichannel audio is
 * averaged, as upstream's preprocessing (`emb/process.py`) does before encoding, then resampled.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { checkFiniteSamples } from "../audio/finite.ts";
import { averageChannels, resample } from "../audio/resample.ts";
import { decodeWav, type WavAudio } from "../audio/wav.ts";
import { OptionError } from "../errors.ts";
import { sha256Hex } from "../io/download.ts";
import { readAllBytes } from "../io/source.ts";
import type { AudioInput } from "../tts/reference.ts";
import { sourceName } from "../tts/sources.ts";

/** A clip's audio, ready to encode. */
export interface ClipAudio {
  /** Mono samples at the codec's rate. */
  samples: Float32Array;
  /** SHA-256 (hex) of the file's bytes, or of the samples and their rate. */
  sha256: string;
}

/** Options of {@linkcode readClipAudio}. */
export interface ReadClipAudioOptions {
  /** The codec's sample rate (24000). */
  sampleRate: number;
  /** The clip's name in messages where the audio has no path or URL. Default "clip". */
  label?: string;
  /** Aborts reading. */
  signal?: AbortSignal;
  /** Told what was read leniently (a WAV file cut short). Default: `console.warn`. */
  onWarning?: (message: string) => void;
}

/**
 * Reads a clip's audio as mono samples at `sampleRate`, with the fingerprint of what was given.
 *
 * @param input The clip's audio.
 * @param options The codec's rate, a label, an abort signal.
 * @returns The samples and their fingerprint.
 * @throws {FormatError} A file that is missing, unreadable or not a WAV file this library reads.
 * @throws {OptionError} No samples, a sample that is not finite, or an invalid rate.
 *
 * @example
 * ```ts
 * import { readClipAudio } from "./clip_audio.ts";
 * const audio = await readClipAudio(
 *   { samples: new Float32Array(4800).fill(0.1), sampleRate: 48000 },
 *   { sampleRate: 24000 },
 * );
 * console.assert(audio.samples.length === 2400 && audio.sha256.length === 64);
 * ```
 */
export async function readClipAudio(
  input: AudioInput,
  options: ReadClipAudioOptions,
): Promise<ClipAudio> {
  const { sampleRate, signal, onWarning = console.warn } = options;
  let audio: WavAudio;
  let sha256: string;
  let label = options.label ?? "clip";
  if (typeof input === "object" && ("channels" in input || "samples" in input)) {
    audio = "channels" in input
      ? input
      : { sampleRate: input.sampleRate, channels: [input.samples] };
    sha256 = await sha256Hex(sampleBytes(audio));
  } else {
    label = sourceName(input, label);
    const bytes = await readAllBytes(input, { label, kind: "WAV", signal });
    sha256 = await sha256Hex(bytes);
    const wav = decodeWav(bytes, label);
    for (const warning of wav.warnings) onWarning(`Reading WAV "${label}": ${warning.message}`);
    audio = wav;
  }
  if (audio.channels.length === 0 || audio.channels[0].length === 0) {
    throw new OptionError(`Cannot use ${label} for training: it has no samples`);
  }
  checkFiniteSamples(audio.channels, `use ${label} for training`);
  if (audio.channels.some((c) => c.length !== audio.channels[0].length)) {
    throw new OptionError(
      `Cannot use ${label} for training: its channels have different lengths ` +
        `[${audio.channels.map((c) => c.length)}]`,
    );
  }
  const samples = resample(averageChannels(audio.channels), audio.sampleRate, sampleRate);
  return { samples, sha256 };
}

/** The rate (f64), the channel count (u32) and every channel's float32 bytes, in one buffer. */
function sampleBytes(audio: WavAudio): Uint8Array<ArrayBuffer> {
  const length = audio.channels.reduce((n, c) => n + c.byteLength, 12);
  const bytes = new Uint8Array(length);
  const view = new DataView(bytes.buffer);
  view.setFloat64(0, audio.sampleRate, true);
  view.setUint32(8, audio.channels.length, true);
  let at = 12;
  for (const c of audio.channels) {
    bytes.set(new Uint8Array(c.buffer, c.byteOffset, c.byteLength), at);
    at += c.byteLength;
  }
  return bytes;
}
