/**
 * EnCodec's configuration in the Hugging Face `config.json` layout (`EncodecConfig`), its 24 kHz
 * defaults, and the derived constants (hop length, frame rate, codebooks per bandwidth). Only
 * the causal, weight-normed, unnormalized, unchunked family (the 24 kHz model and any widths,
 * ratios, kernels, dilations, residual or LSTM layer counts and codebook sizes around it) is
 * accepted; the 48 kHz model's group norm, normalization and segmenting are refused by name.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { type WeightProblem, WeightsError } from "../../errors.ts";

/**
 * The fields of a Hugging Face EnCodec `config.json` this port reads (snake_case, as in the file).
 * Missing fields take the `facebook/encodec_24khz` values.
 *
 * @example
 * ```ts
 * import type { EncodecConfigJson } from "@valle/core";
 * const tiny: EncodecConfigJson = { num_filters: 4, hidden_size: 8, codebook_dim: 8 };
 * ```
 */
export interface EncodecConfigJson {
  /** Sample rate in Hz. */
  sampling_rate?: number;
  /** Audio channels (1). */
  audio_channels?: number;
  /** Width of the first convolution; doubles at every down-sampling. */
  num_filters?: number;
  /** Up-sampling ratios of the decoder; the encoder uses them reversed. */
  upsampling_ratios?: number[];
  /** Residual blocks per resolution. */
  num_residual_layers?: number;
  /** Kernel of the first convolution. */
  kernel_size?: number;
  /** Kernel of the last convolution. */
  last_kernel_size?: number;
  /** Kernel of the first convolution of each residual block. */
  residual_kernel_size?: number;
  /** Dilation growth across the residual blocks of one resolution. */
  dilation_growth_rate?: number;
  /** Width reduction inside residual blocks. */
  compress?: number;
  /** LSTM layers in the encoder and in the decoder. */
  num_lstm_layers?: number;
  /** Latent dimension. */
  hidden_size?: number;
  /** Codeword dimension (must equal hidden_size: no projections). */
  codebook_dim?: number;
  /** Codewords per codebook (a power of two). */
  codebook_size?: number;
  /** Bandwidths in kbps; the largest sets the number of codebooks. */
  target_bandwidths?: number[];
  /** Causal convolutions (must be true). */
  use_causal_conv?: boolean;
  /** Padding mode (must be "reflect"). */
  pad_mode?: string;
  /** Normalization (must be "weight_norm"). */
  norm_type?: string;
  /** RMS normalization of the input (must be false). */
  normalize?: boolean;
  /** Share of a transposed convolution's padding trimmed on the right. */
  trim_right_ratio?: number;
  /** 1×1 convolution shortcut in residual blocks (else identity). */
  use_conv_shortcut?: boolean;
  /** Segment length in seconds (must be null: the whole signal is one frame). */
  chunk_length_s?: number | null;
}

/** A validated EnCodec configuration (camelCase), with derived constants. */
export interface EncodecConfig {
  /** Sample rate in Hz. */
  readonly sampleRate: number;
  /** Width of the first convolution. */
  readonly numFilters: number;
  /** Up-sampling ratios of the decoder (the encoder uses them reversed). */
  readonly ratios: readonly number[];
  /** Residual blocks per resolution. */
  readonly residualLayers: number;
  /** Kernel of the first convolution. */
  readonly kernelSize: number;
  /** Kernel of the last convolution. */
  readonly lastKernelSize: number;
  /** Kernel of the first convolution of a residual block. */
  readonly residualKernelSize: number;
  /** Dilation growth across residual blocks. */
  readonly dilationGrowth: number;
  /** Width reduction inside residual blocks. */
  readonly compress: number;
  /** LSTM layers. */
  readonly lstmLayers: number;
  /** Latent and codeword dimension. */
  readonly dim: number;
  /** Codewords per codebook. */
  readonly bins: number;
  /** Bandwidths in kbps. */
  readonly bandwidths: readonly number[];
  /** Share of a transposed convolution's padding trimmed on the right. */
  readonly trimRightRatio: number;
  /** Whether residual shortcuts are 1×1 convolutions. */
  readonly convShortcut: boolean;
  /** Samples per frame: the product of the ratios. */
  readonly hopLength: number;
  /** Frames per second: ceil(sampleRate / hopLength). */
  readonly frameRate: number;
  /** Codebooks of the model: floor(1000 · max bandwidth / (frameRate · 10)), as Hugging Face. */
  readonly numQuantizers: number;
}

/**
 * The `facebook/encodec_24khz` configuration.
 *
 * @example
 * ```ts
 * import { ENCODEC_24KHZ } from "@valle/core";
 * console.assert(ENCODEC_24KHZ.upsampling_ratios?.join() === "8,5,4,2");
 * ```
 */
export const ENCODEC_24KHZ: Readonly<EncodecConfigJson> = Object.freeze({
  sampling_rate: 24000,
  audio_channels: 1,
  num_filters: 32,
  upsampling_ratios: [8, 5, 4, 2],
  num_residual_layers: 1,
  kernel_size: 7,
  last_kernel_size: 7,
  residual_kernel_size: 3,
  dilation_growth_rate: 2,
  compress: 2,
  num_lstm_layers: 2,
  hidden_size: 128,
  codebook_dim: 128,
  codebook_size: 1024,
  target_bandwidths: [1.5, 3, 6, 12, 24],
  use_causal_conv: true,
  pad_mode: "reflect",
  norm_type: "weight_norm",
  normalize: false,
  trim_right_ratio: 1,
  use_conv_shortcut: true,
  chunk_length_s: null,
});

/**
 * Validates a `config.json` (missing fields take the 24 kHz values) and derives the constants.
 *
 * @param json The parsed `config.json`, or nothing for `facebook/encodec_24khz`.
 * @param file The config's name in error messages.
 * @returns The configuration.
 * @throws {WeightsError} Every field that is invalid or outside the supported family.
 *
 * @example
 * ```ts
 * import { parseEncodecConfig } from "@valle/core";
 * const config = parseEncodecConfig();
 * console.assert(config.hopLength === 320 && config.frameRate === 75 && config.numQuantizers === 32);
 * ```
 */
export function parseEncodecConfig(
  json: EncodecConfigJson = {},
  file = "config.json",
): EncodecConfig {
  const c = { ...ENCODEC_24KHZ, ...json };
  const problems: WeightProblem[] = [];
  const check = (field: string, ok: boolean, expected: string, value: unknown) => {
    if (!ok) {
      problems.push({ tensor: field, expected, found: JSON.stringify(value) ?? "undefined" });
    }
  };
  const positive = (field: keyof EncodecConfigJson) => {
    const v = c[field];
    check(field, Number.isInteger(v) && (v as number) > 0, "a positive integer", v);
    return v as number;
  };
  const sampleRate = positive("sampling_rate");
  const numFilters = positive("num_filters");
  const residualLayers = positive("num_residual_layers");
  const kernelSize = positive("kernel_size");
  const lastKernelSize = positive("last_kernel_size");
  const residualKernelSize = positive("residual_kernel_size");
  const dilationGrowth = positive("dilation_growth_rate");
  const compress = positive("compress");
  const lstmLayers = positive("num_lstm_layers");
  const dim = positive("hidden_size");
  const bins = positive("codebook_size");
  const ratios = c.upsampling_ratios;
  check(
    "upsampling_ratios",
    Array.isArray(ratios) && ratios.length > 0 && ratios.every((r) => Number.isInteger(r) && r > 0),
    "a list of positive integers",
    ratios,
  );
  const bandwidths = c.target_bandwidths;
  check(
    "target_bandwidths",
    Array.isArray(bandwidths) && bandwidths.length > 0 && bandwidths.every((b) => b > 0),
    "a list of positive numbers",
    bandwidths,
  );
  check("codebook_size", (bins & (bins - 1)) === 0, "a power of two", bins);
  check(
    "codebook_dim",
    c.codebook_dim === dim,
    `${dim} (hidden_size: no projections)`,
    c.codebook_dim,
  );
  check("audio_channels", c.audio_channels === 1, "1", c.audio_channels);
  check(
    "use_causal_conv",
    c.use_causal_conv === true,
    "true (the 24 kHz family)",
    c.use_causal_conv,
  );
  check("pad_mode", c.pad_mode === "reflect", '"reflect"', c.pad_mode);
  check("norm_type", c.norm_type === "weight_norm", '"weight_norm"', c.norm_type);
  check("normalize", c.normalize === false, "false", c.normalize);
  check("chunk_length_s", c.chunk_length_s == null, "null (no segmenting)", c.chunk_length_s);
  const trim = c.trim_right_ratio;
  check("trim_right_ratio", typeof trim === "number" && trim >= 0 && trim <= 1, "in [0, 1]", trim);
  if (problems.length > 0) throw new WeightsError(file, problems);
  const hopLength = ratios!.reduce((a, b) => a * b, 1);
  const frameRate = Math.ceil(sampleRate / hopLength);
  const numQuantizers = Math.floor((1000 * Math.max(...bandwidths!)) / (frameRate * 10));
  return {
    sampleRate,
    numFilters,
    ratios: [...ratios!],
    residualLayers,
    kernelSize,
    lastKernelSize,
    residualKernelSize,
    dilationGrowth,
    compress,
    lstmLayers,
    dim,
    bins,
    bandwidths: [...bandwidths!],
    trimRightRatio: trim!,
    convShortcut: c.use_conv_shortcut !== false,
    hopLength,
    frameRate,
    numQuantizers,
  };
}

/**
 * Codebooks used at a bandwidth: max(1, floor(1000 · kbps / (log2(bins) · frameRate))), as the
 * original and Hugging Face quantizers compute it (and Vocos's `EncodecFeatures`, for its own
 * bandwidths).
 *
 * @param config The codebook size and frame rate (an EnCodec configuration, or just those two).
 * @param kbps The bandwidth.
 * @returns The number of codebooks, before any cap by the codebooks a model has.
 *
 * @example
 * ```ts
 * import { codebooksForBandwidth, parseEncodecConfig } from "@valle/core";
 * console.assert(codebooksForBandwidth(parseEncodecConfig(), 6) === 8);
 * ```
 */
export function codebooksForBandwidth(
  config: Pick<EncodecConfig, "bins" | "frameRate">,
  kbps: number,
): number {
  return Math.max(1, Math.floor((kbps * 1000) / (Math.log2(config.bins) * config.frameRate)));
}
