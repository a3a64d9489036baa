/**
 * Sample-rate conversion as the upstream pipeline does it (torchaudio's `Resample`: windowed-sinc
 * interpolation with a Hann window, 6 zero crossings, cutoff at 0.99 of the lower Nyquist
 * frequency, one polyphase filter bank per gcd-reduced rate pair, kernels computed in float64 and
 * rounded to float32), and the channel rule VALL-E applies before encoding a reference: exactly
 * two channels keep channel 0; more are averaged; one is kept. CPU only.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { OptionError } from "../errors.ts";

/** Zero crossings of the sinc on each side (torchaudio's `lowpass_filter_width`). */
const ZERO_CROSSINGS = 6;
/** Cutoff as a fraction of the lower rate's Nyquist frequency. */
const ROLLOFF = 0.99;

/**
 * Resamples one channel from `fromRate` to `toRate` Hz, returning ceil(L · toRate / fromRate)
 * samples (the input itself when the rates are equal).
 *
 * @param samples The signal.
 * @param fromRate Its sample rate (a positive integer).
 * @param toRate The wanted sample rate (a positive integer).
 * @returns The resampled signal.
 * @throws {OptionError} A rate is not a positive integer.
 *
 * @example
 * ```ts
 * import { resample } from "@valle/core";
 * const out = resample(new Float32Array(441), 44100, 24000);
 * console.assert(out.length === 240);
 * ```
 */
export function resample(samples: Float32Array, fromRate: number, toRate: number): Float32Array {
  for (const rate of [fromRate, toRate]) {
    if (!Number.isInteger(rate) || rate <= 0) {
      throw new OptionError(`Cannot resample: sample rate ${rate}, expected a positive integer`);
    }
  }
  if (fromRate === toRate) return samples;
  const g = gcd(fromRate, toRate);
  const orig = fromRate / g;
  const next = toRate / g;
  const { kernels, width } = sincKernels(orig, next);
  const taps = 2 * width + orig;
  const length = samples.length;
  const outLength = Math.ceil((next * length) / orig);
  const out = new Float32Array(outLength);
  // Output f·next + j = Σ_k x[f·orig + k − width] · kernel_j[k], x zero outside [0, L).
  for (let i = 0; i < outLength; i++) {
    const f = Math.floor(i / next);
    const j = i - f * next;
    const start = f * orig - width;
    const kernel = j * taps;
    let acc = 0;
    const k0 = Math.max(0, -start);
    const k1 = Math.min(taps, length - start);
    for (let k = k0; k < k1; k++) acc += samples[start + k] * kernels[kernel + k];
    out[i] = acc;
  }
  return out;
}

/**
 * torchaudio's `_get_sinc_resample_kernel` for the gcd-reduced rates, `sinc_interp_hann`:
 * (next, 2·width + orig) float32 kernels.
 */
function sincKernels(orig: number, next: number): { kernels: Float32Array; width: number } {
  const base = Math.min(orig, next) * ROLLOFF;
  const width = Math.ceil((ZERO_CROSSINGS * orig) / base);
  const taps = 2 * width + orig;
  const kernels = new Float32Array(next * taps);
  const scale = base / orig;
  for (let j = 0; j < next; j++) {
    for (let k = 0; k < taps; k++) {
      let t = (-j / next + (k - width) / orig) * base;
      t = Math.min(ZERO_CROSSINGS, Math.max(-ZERO_CROSSINGS, t));
      const window = Math.cos((t * Math.PI) / ZERO_CROSSINGS / 2) ** 2;
      const x = t * Math.PI;
      kernels[j * taps + k] = (x === 0 ? 1 : Math.sin(x) / x) * window * scale;
    }
  }
  return { kernels, width };
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/**
 * Turns decoded audio into the mono signal at `targetRate` that EnCodec encodes, as VALL-E
 * prepares a reference: exactly two channels keep channel 0 (not a downmix); three or more are
 * averaged (EnCodec's `convert_audio`); then {@linkcode resample}.
 *
 * @param channels One array per channel, equal lengths.
 * @param sampleRate Their sample rate.
 * @param targetRate The codec's sample rate (24000 for EnCodec 24 kHz).
 * @returns Mono samples at `targetRate`.
 * @throws {OptionError} No channels, channels of different lengths, or a bad rate.
 *
 * @example
 * ```ts
 * import { toMono } from "@valle/core";
 * const left = new Float32Array([1, 1]);
 * const right = new Float32Array([0, 0]);
 * console.assert(toMono([left, right], 24000, 24000)[0] === 1);
 * ```
 */
export function toMono(
  channels: readonly Float32Array[],
  sampleRate: number,
  targetRate: number,
): Float32Array {
  if (channels.length === 0 || channels.some((c) => c.length !== channels[0].length)) {
    throw new OptionError(
      `Cannot convert audio to mono: ${channels.length} channel(s) of lengths ` +
        `[${channels.map((c) => c.length)}], expected at least one, all of the same length`,
    );
  }
  const mono = channels.length > 2 ? averageChannels(channels) : channels[0];
  return resample(mono, sampleRate, targetRate);
}

/**
 * The mean of equal-length channels, sample by sample (EnCodec's `convert_audio` downmix, and
 * upstream's training preprocessing, which averages every multichannel file); one channel is
 * returned as it is.
 *
 * @param channels One array per channel, equal lengths (at least one).
 * @returns The mono samples.
 *
 * @example
 * ```ts
 * import { averageChannels } from "./resample.ts";
 * const mono = averageChannels([new Float32Array([1, 1]), new Float32Array([0, 0])]);
 * console.assert(mono[0] === 0.5);
 * ```
 */
export function averageChannels(channels: readonly Float32Array[]): Float32Array {
  if (channels.length === 1) return channels[0];
  const mono = new Float32Array(channels[0].length);
  for (let i = 0; i < mono.length; i++) {
    let sum = 0;
    for (const c of channels) sum += c[i];
    mono[i] = sum / channels.length;
  }
  return mono;
}
