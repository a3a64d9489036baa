/// <reference lib="dom" />
/**
 * Turns a reference clip (a chosen file or a recording) into samples: WAV through the library's
 * decoder (so the page hears exactly what Deno would from the same file), anything else the
 * browser can decode (MP3, Ogg, WebM/Opus, AAC, FLAC…) through Web Audio.
 */

import { decodeWav, FormatError, ValleError, type WavAudio } from "../../mod.ts";

/** EnCodec's rate: the browser decodes straight to it, so nothing is resampled twice. */
const CODEC_RATE = 24000;

/**
 * Decodes an audio file.
 *
 * @param file The file or recording.
 * @param name Its name, for messages.
 * @returns The sample rate and every channel (the library picks or mixes channels itself).
 * @throws {ValleError} The browser cannot decode it.
 *
 * @example
 * ```ts ignore
 * const voice = await decodeAudioFile(input.files[0], input.files[0].name);
 * await valle.synthesize("Hello.", { reference: voice });
 * ```
 */
export async function decodeAudioFile(file: Blob, name: string): Promise<WavAudio> {
  const bytes = new Uint8Array(await file.arrayBuffer());
  if (isWav(bytes)) {
    try {
      return decodeWav(bytes, name);
    } catch (e) {
      // A WAV encoding the library does not read (e.g. A-law): the browser may.
      if (!(e instanceof FormatError)) throw e;
    }
  }
  let audio: AudioBuffer;
  try {
    audio = await new OfflineAudioContext(1, 1, CODEC_RATE).decodeAudioData(bytes.buffer);
  } catch (e) {
    throw new ValleError(
      `Cannot read ${name}: the browser cannot decode it (${(e as Error).message}), expected audio`,
    );
  }
  const channels = Array.from(
    { length: audio.numberOfChannels },
    (_, c) => audio.getChannelData(c),
  );
  return { sampleRate: audio.sampleRate, channels };
}

/** The RIFF/WAVE signature. */
function isWav(bytes: Uint8Array): boolean {
  const text = new TextDecoder().decode(bytes.subarray(0, 12));
  return text.startsWith("RIFF") && text.endsWith("WAVE");
}
