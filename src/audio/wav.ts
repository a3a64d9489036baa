/**
 * WAV (RIFF/WAVE) reading and writing on the CPU. Reads integer PCM of 8 (unsigned), 16, 24 and
 * 32 bits and IEEE float of 32 and 64 bits, any channel count and sample rate, in the plain or
 * the WAVE_FORMAT_EXTENSIBLE layout, skipping chunks it does not need; samples come back as
 * float32 per channel, integers scaled by 2^(bits−1) as soundfile and torchaudio do. Writes
 * 16-bit PCM or 32-bit float. Anything malformed or unsupported is a {@linkcode FormatError} that
 * says what was found. One leniency, as libsndfile and ffmpeg allow it: a data chunk whose size is
 * unset (0xFFFFFFFF or 0, as streaming writers leave it) or runs past the end of the file is read
 * up to the end, and the result says so in its `warnings`.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { FormatError, type FormatErrorDetails, OptionError } from "../errors.ts";

/**
 * Decoded audio: one float32 array per channel and the sample rate.
 *
 * @example
 * ```ts
 * import type { WavAudio } from "@valle/core";
 * const silence: WavAudio = { sampleRate: 24000, channels: [new Float32Array(24000)] };
 * ```
 */
export interface WavAudio {
  /** Samples per second. */
  readonly sampleRate: number;
  /** One array per channel, all the same length. */
  readonly channels: readonly Float32Array[];
}

/**
 * Something {@linkcode decodeWav} read leniently: what it found, where, and what it did.
 *
 * @example
 * ```ts
 * import type { WavWarning } from "@valle/core";
 * const w: WavWarning = { message: "data chunk cut short", offset: 36 };
 * ```
 */
export interface WavWarning extends FormatErrorDetails {
  /** What was found and what was done about it. */
  readonly message: string;
}

/**
 * A decoded WAV file: its audio, and the warnings about what was read leniently (empty for a
 * well-formed file).
 *
 * @example
 * ```ts
 * import { decodeWav, encodeWav } from "@valle/core";
 * const wav = decodeWav(encodeWav(new Float32Array(8), 8000));
 * console.assert(wav.warnings.length === 0);
 * ```
 */
export interface DecodedWav extends WavAudio {
  /** Leniencies, in the order met; show them to the user (the audio may be incomplete). */
  readonly warnings: readonly WavWarning[];
}

/**
 * The sample rates accepted: every audio and ultrasound rate in use (8 kHz telephony to 768 kHz
 * bat recorders, and the odd low-rate sensor file), while a corrupt header's rate (0, 4294967295)
 * is refused before it sizes any buffer.
 */
const RATES = { min: 1, max: 1_000_000 } as const;

const PCM = 1;
const FLOAT = 3;
const EXTENSIBLE = 0xfffe;
/** The GUID of KSDATAFORMAT_SUBTYPE_* after its first two bytes (the format code). */
const GUID_TAIL = [0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xaa, 0, 0x38, 0x9b, 0x71];

/**
 * Decodes a WAV file.
 *
 * @param bytes The file.
 * @param file The file's name in error messages.
 * @returns The sample rate, the channels as float32, and warnings about what was read leniently
 * (a data chunk size that is unset or runs past the end of the file, a partial last frame).
 * @throws {FormatError} Not a RIFF/WAVE file, a missing or truncated `fmt ` chunk, no `data`
 * chunk, a sample rate outside 1 Hz – 1 MHz, or an unsupported encoding (compressed formats, other
 * sample sizes).
 *
 * @example
 * ```ts
 * import { decodeWav, encodeWav } from "@valle/core";
 * const bytes = encodeWav([new Float32Array([0.5, -0.5])], 16000, { format: "float32" });
 * const wav = decodeWav(bytes);
 * console.assert(wav.sampleRate === 16000 && wav.channels[0][1] === -0.5);
 * ```
 */
export function decodeWav(bytes: Uint8Array, file = "<bytes>"): DecodedWav {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fail = (what: string, details: FormatErrorDetails = {}) => {
    return new FormatError(`Cannot read WAV "${file}": ${what}`, { file, ...details });
  };
  const warnings: WavWarning[] = [];
  const tag = (at: number) => String.fromCharCode(...bytes.subarray(at, at + 4));
  if (bytes.length < 12 || tag(0) !== "RIFF" || tag(8) !== "WAVE") {
    const found = bytes.length < 12 ? `${bytes.length} bytes` : `"${tag(0)}…${tag(8)}"`;
    throw fail(`${found} at the start, expected "RIFF" … "WAVE"`, {
      offset: 0,
      expected: "RIFF/WAVE header",
      found,
    });
  }
  let format:
    | { code: number; channels: number; rate: number; bits: number; align: number }
    | undefined;
  let data: Uint8Array | undefined;
  let at = 12;
  while (at + 8 <= bytes.length) {
    const id = tag(at);
    let size = view.getUint32(at + 4, true);
    const body = at + 8;
    const remain = bytes.length - body;
    const unset = size === 0xffffffff || (size === 0 && format !== undefined && remain > 0);
    if (id === "data" && (unset || size > remain)) {
      const declared = size === 0xffffffff ? "0xFFFFFFFF" : `${size}`;
      const why = unset ? "its size unset, as streaming writers leave it" : "the file is truncated";
      warnings.push({
        message: `the data chunk at byte ${at} declares ${declared} bytes and ${remain} remain ` +
          `(${why}): read the ${remain} bytes to the end of the file`,
        file,
        entry: "data",
        offset: at + 4,
        expected: `${declared} bytes`,
        found: `${remain} bytes`,
      });
      size = remain;
    }
    if (body + size > bytes.length) {
      throw fail(`chunk "${id}" at byte ${at} declares ${size} bytes, only ${remain} remain`, {
        entry: id,
        offset: at,
        expected: `${size} bytes`,
        found: `${remain} bytes`,
      });
    }
    if (id === "fmt ") format = readFormat(view, body, size, fail);
    if (id === "data") data = bytes.subarray(body, body + size);
    if (format && data) break;
    at = body + size + (size % 2);
  }
  if (!format) throw fail('no "fmt " chunk', { expected: '"fmt " chunk', found: "none" });
  if (!data) throw fail('no "data" chunk', { expected: '"data" chunk', found: "none" });
  const { code, channels, rate, bits, align } = format;
  const width = bits / 8;
  const frames = Math.floor(data.length / align);
  const partial = data.length - frames * align;
  if (partial > 0) {
    const offset = data.byteOffset - bytes.byteOffset + frames * align;
    warnings.push({
      message: `the data chunk ends with ${partial} byte(s) of a ${align}-byte frame at byte ` +
        `${offset}: dropped them`,
      file,
      entry: "data",
      offset,
      expected: `a multiple of ${align} bytes`,
      found: `${data.length} bytes`,
    });
  }
  const out = Array.from({ length: channels }, () => new Float32Array(frames));
  const d = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (let f = 0; f < frames; f++) {
    for (let c = 0; c < channels; c++) {
      const p = f * align + c * width;
      let v: number;
      if (code === FLOAT) v = bits === 32 ? d.getFloat32(p, true) : d.getFloat64(p, true);
      else if (bits === 8) v = (d.getUint8(p) - 128) / 128;
      else if (bits === 16) v = d.getInt16(p, true) / 32768;
      else if (bits === 24) v = (d.getUint16(p, true) | (d.getInt8(p + 2) << 16)) / 8388608;
      else v = d.getInt32(p, true) / 2147483648;
      out[c][f] = v;
    }
  }
  return { sampleRate: rate, channels: out, warnings };
}

function readFormat(
  view: DataView,
  at: number,
  size: number,
  fail: (what: string, details?: FormatErrorDetails) => Error,
) {
  if (size < 16) {
    throw fail(`"fmt " chunk has ${size} bytes, expected at least 16`, {
      offset: at,
      expected: "16 bytes",
      found: `${size} bytes`,
    });
  }
  let code = view.getUint16(at, true);
  const channels = view.getUint16(at + 2, true);
  const rate = view.getUint32(at + 4, true);
  const align = view.getUint16(at + 12, true);
  const bits = view.getUint16(at + 14, true);
  if (code === EXTENSIBLE) {
    if (size < 40) {
      throw fail(`WAVE_FORMAT_EXTENSIBLE "fmt " chunk has ${size} bytes, expected 40`, {
        offset: at,
        expected: "40 bytes",
        found: `${size} bytes`,
      });
    }
    code = view.getUint16(at + 24, true);
    const tail = GUID_TAIL.every((b, i) => view.getUint8(at + 26 + i) === b);
    if (!tail) code = -1;
  }
  const supported = (code === PCM && [8, 16, 24, 32].includes(bits)) ||
    (code === FLOAT && (bits === 32 || bits === 64));
  if (!supported) {
    const name = code === PCM ? "PCM" : code === FLOAT ? "float" : `format code ${code}`;
    throw fail(
      `${name} with ${bits} bits per sample is not supported, expected PCM of 8/16/24/32 bits or float of 32/64 bits`,
      { offset: at, expected: "PCM 8/16/24/32 or float 32/64", found: `${name} ${bits}-bit` },
    );
  }
  if (channels === 0 || align !== channels * (bits / 8)) {
    throw fail(
      `${channels} channel(s) at ${rate} Hz with ${align}-byte frames, expected at least one ` +
        `channel and ${channels * (bits / 8)}-byte frames`,
      {
        entry: '"fmt " channels and block align',
        offset: at,
        expected: "consistent channels and block align",
        found: `${channels}/${align}`,
      },
    );
  }
  if (rate < RATES.min || rate > RATES.max) {
    const expected = `${RATES.min} to ${RATES.max} Hz`;
    throw fail(`the "fmt " sample rate at byte ${at + 4} is ${rate} Hz, expected ${expected}`, {
      entry: '"fmt " sample rate',
      offset: at + 4,
      expected,
      found: `${rate} Hz`,
    });
  }
  return { code, channels, rate, bits, align };
}

/** Options of {@linkcode encodeWav}. */
export interface EncodeWavOptions {
  /**
   * `"pcm16"` (default): 16-bit integers, samples clipped to [−1, 1] and scaled by 32767;
   * `"float32"`: IEEE float, unclipped.
   */
  format?: "pcm16" | "float32";
}

/**
 * Encodes channels as a WAV file (plain PCM or float layout, interleaved).
 *
 * @param channels One array per channel (a single array is mono), all the same length.
 * @param sampleRate Samples per second.
 * @param options The sample format.
 * @returns The file's bytes.
 * @throws {OptionError} No channels, unequal lengths, a bad rate or a file over 4 GiB.
 *
 * @example
 * ```ts
 * import { encodeWav } from "@valle/core";
 * const bytes = encodeWav(new Float32Array(24000), 24000);
 * console.assert(bytes.length === 44 + 48000);
 * ```
 */
export function encodeWav(
  channels: Float32Array | readonly Float32Array[],
  sampleRate: number,
  options: EncodeWavOptions = {},
): Uint8Array {
  const list = channels instanceof Float32Array ? [channels] : channels;
  const float = options.format === "float32";
  const frames = list[0]?.length ?? 0;
  if (list.length === 0 || list.some((c) => c.length !== frames)) {
    throw new OptionError(
      `Cannot encode WAV: ${list.length} channel(s) of lengths [${list.map((c) => c.length)}], ` +
        "expected at least one, all of the same length",
    );
  }
  const width = float ? 4 : 2;
  const dataBytes = frames * list.length * width;
  if (!Number.isInteger(sampleRate) || sampleRate <= 0 || dataBytes > 0xffffffff - 100) {
    throw new OptionError(
      `Cannot encode WAV: ${sampleRate} Hz and ${dataBytes} bytes of samples, expected a ` +
        "positive integer rate and under 4 GiB",
    );
  }
  const header = float ? 58 : 44;
  const out = new Uint8Array(header + dataBytes);
  const v = new DataView(out.buffer);
  const ascii = (at: number, s: string) =>
    [...s].forEach((ch, i) => (out[at + i] = ch.charCodeAt(0)));
  ascii(0, "RIFF");
  v.setUint32(4, out.length - 8, true);
  ascii(8, "WAVE");
  ascii(12, "fmt ");
  v.setUint32(16, float ? 18 : 16, true);
  v.setUint16(20, float ? FLOAT : PCM, true);
  v.setUint16(22, list.length, true);
  v.setUint32(24, sampleRate, true);
  v.setUint32(28, sampleRate * list.length * width, true);
  v.setUint16(32, list.length * width, true);
  v.setUint16(34, width * 8, true);
  let at = 36;
  if (float) {
    v.setUint16(36, 0, true); // cbSize
    ascii(38, "fact");
    v.setUint32(42, 4, true);
    v.setUint32(46, frames, true);
    at = 50;
  }
  ascii(at, "data");
  v.setUint32(at + 4, dataBytes, true);
  let p = at + 8;
  for (let f = 0; f < frames; f++) {
    for (const c of list) {
      if (float) v.setFloat32(p, c[f], true);
      else v.setInt16(p, Math.round(Math.max(-1, Math.min(1, c[f])) * 32767), true);
      p += width;
    }
  }
  return out;
}
