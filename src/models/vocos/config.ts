/**
 * Vocos's configuration in the layout of its `config.yaml` (`feature_extractor` /
 * `backbone` / `head`, each with `class_path` and `init_args`; pass the parsed YAML or the
 * equivalent JSON), the `charactr/vocos-encodec-24khz` defaults, and the derived constants. Only
 * the EnCodec variant is accepted: `EncodecFeatures` over EnCodec 24 kHz codebooks, a
 * `VocosBackbone` of ConvNeXt blocks, an `ISTFTHead` with "same" padding.
 *
 * The codebook size and count are not in `config.yaml` (upstream takes them from the EnCodec
 * model): {@linkcode VocosCodebooks} are read from the weights when they load.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { type WeightProblem, WeightsError } from "../../errors.ts";

/**
 * One section of `config.yaml`.
 *
 * @example
 * ```ts
 * import type { VocosSection } from "@valle/core";
 * const head: VocosSection = { class_path: "vocos.heads.ISTFTHead", init_args: { n_fft: 1280 } };
 * ```
 */
export interface VocosSection {
  /** The Python class, e.g. `vocos.models.VocosBackbone`. */
  class_path?: string;
  /** Its constructor arguments (snake_case, as in the file). */
  init_args?: Record<string, unknown>;
}

/**
 * Vocos's `config.yaml` as an object; missing sections or arguments take the
 * `charactr/vocos-encodec-24khz` values.
 *
 * @example
 * ```ts
 * import type { VocosConfigJson } from "@valle/core";
 * const config: VocosConfigJson = { backbone: { init_args: { dim: 32, num_layers: 2 } } };
 * ```
 */
export interface VocosConfigJson {
  /** `vocos.feature_extractors.EncodecFeatures`: `encodec_model`, `bandwidths`. */
  feature_extractor?: VocosSection;
  /** `vocos.models.VocosBackbone`: `input_channels`, `dim`, `intermediate_dim`, `num_layers`, … */
  backbone?: VocosSection;
  /** `vocos.heads.ISTFTHead`: `dim`, `n_fft`, `hop_length`, `padding`. */
  head?: VocosSection;
}

/** A validated Vocos configuration (camelCase). */
export interface VocosConfig {
  /** Bandwidths in kbps, by bandwidth id. */
  readonly bandwidths: readonly number[];
  /** Codeword dimension (the backbone's input channels). */
  readonly inputChannels: number;
  /** Backbone width. */
  readonly dim: number;
  /** ConvNeXt hidden width. */
  readonly intermediateDim: number;
  /** ConvNeXt blocks. */
  readonly numLayers: number;
  /** Rows of the AdaLayerNorm tables, or 0 for plain LayerNorms. */
  readonly adanormEmbeddings: number;
  /** Whether blocks scale their output by `gamma`. */
  readonly layerScale: boolean;
  /** FFT size of the ISTFT. */
  readonly nFft: number;
  /** Samples per frame. */
  readonly hopLength: number;
  /** Sample rate of the output (EnCodec 24 kHz's). */
  readonly sampleRate: number;
  /** EnCodec frames per second: ceil(sampleRate / hopLength). */
  readonly frameRate: number;
}

/**
 * The EnCodec codebooks a Vocos checkpoint holds (`feature_extractor.codebook_weights` stacks
 * them), as read from the weights and, when given, its EnCodec.
 */
export interface VocosCodebooks {
  /** Codewords per codebook. */
  readonly bins: number;
  /** Codebooks stacked in `feature_extractor.codebook_weights`. */
  readonly count: number;
  /**
   * Codebooks used at each bandwidth id: max(1, floor(1000 · kbps / (log2(bins) · frame rate))),
   * at most `count`.
   */
  readonly perBandwidth: readonly number[];
}

const SAMPLE_RATE = 24000;

/**
 * The `charactr/vocos-encodec-24khz` `config.yaml`.
 *
 * @example
 * ```ts
 * import { VOCOS_ENCODEC_24KHZ } from "@valle/core";
 * console.assert(VOCOS_ENCODEC_24KHZ.head?.init_args?.n_fft === 1280);
 * ```
 */
export const VOCOS_ENCODEC_24KHZ: Readonly<VocosConfigJson> = Object.freeze({
  feature_extractor: {
    class_path: "vocos.feature_extractors.EncodecFeatures",
    init_args: {
      encodec_model: "encodec_24khz",
      bandwidths: [1.5, 3.0, 6.0, 12.0],
      train_codebooks: false,
    },
  },
  backbone: {
    class_path: "vocos.models.VocosBackbone",
    init_args: {
      input_channels: 128,
      dim: 384,
      intermediate_dim: 1152,
      num_layers: 8,
      adanorm_num_embeddings: 4,
    },
  },
  head: {
    class_path: "vocos.heads.ISTFTHead",
    init_args: { dim: 384, n_fft: 1280, hop_length: 320, padding: "same" },
  },
});

/**
 * Validates a Vocos configuration (missing values take the EnCodec 24 kHz model's).
 *
 * @param json The parsed `config.yaml` (or JSON of the same shape), or nothing.
 * @param file The config's name in error messages.
 * @returns The configuration.
 * @throws {WeightsError} Every invalid or unsupported field at once.
 *
 * @example
 * ```ts
 * import { parseVocosConfig } from "@valle/core";
 * const config = parseVocosConfig();
 * console.assert(config.frameRate === 75 && config.bandwidths.join() === "1.5,3,6,12");
 * ```
 */
export function parseVocosConfig(json: VocosConfigJson = {}, file = "config.yaml"): VocosConfig {
  const d = VOCOS_ENCODEC_24KHZ;
  const section = (name: keyof VocosConfigJson) => ({
    class_path: json[name]?.class_path ?? d[name]!.class_path,
    init_args: { ...d[name]!.init_args, ...json[name]?.init_args },
  });
  const fe = section("feature_extractor");
  const bb = section("backbone");
  const hd = section("head");
  const problems: WeightProblem[] = [];
  const check = (field: string, ok: boolean, expected: string, value: unknown) => {
    if (!ok) {
      problems.push({ tensor: field, expected, found: JSON.stringify(value) ?? "undefined" });
    }
  };
  const positive = (name: string, args: Record<string, unknown>, key: string) => {
    const v = args[key];
    check(
      `${name}.init_args.${key}`,
      Number.isInteger(v) && (v as number) > 0,
      "a positive integer",
      v,
    );
    return v as number;
  };
  check(
    "feature_extractor.class_path",
    fe.class_path === "vocos.feature_extractors.EncodecFeatures",
    '"vocos.feature_extractors.EncodecFeatures"',
    fe.class_path,
  );
  check(
    "feature_extractor.init_args.encodec_model",
    fe.init_args.encodec_model === "encodec_24khz",
    '"encodec_24khz"',
    fe.init_args.encodec_model,
  );
  check(
    "backbone.class_path",
    bb.class_path === "vocos.models.VocosBackbone",
    '"vocos.models.VocosBackbone"',
    bb.class_path,
  );
  check(
    "head.class_path",
    hd.class_path === "vocos.heads.ISTFTHead",
    '"vocos.heads.ISTFTHead"',
    hd.class_path,
  );
  check("head.init_args.padding", hd.init_args.padding === "same", '"same"', hd.init_args.padding);
  const bandwidths = fe.init_args.bandwidths as number[];
  check(
    "feature_extractor.init_args.bandwidths",
    Array.isArray(bandwidths) && bandwidths.length > 0 &&
      bandwidths.every((b) => typeof b === "number" && b > 0),
    "a list of positive numbers",
    bandwidths,
  );
  const inputChannels = positive("backbone", bb.init_args, "input_channels");
  const dim = positive("backbone", bb.init_args, "dim");
  const intermediateDim = positive("backbone", bb.init_args, "intermediate_dim");
  const numLayers = positive("backbone", bb.init_args, "num_layers");
  const ada = bb.init_args.adanorm_num_embeddings ?? null;
  check(
    "backbone.init_args.adanorm_num_embeddings",
    ada === null || (Number.isInteger(ada) && (ada as number) > 0),
    "a positive integer or null",
    ada,
  );
  check(
    "feature_extractor.init_args.bandwidths",
    !Number.isInteger(ada) || !Array.isArray(bandwidths) || bandwidths.length <= (ada as number),
    `at most ${ada} bandwidths (backbone.init_args.adanorm_num_embeddings: one norm row each)`,
    bandwidths,
  );
  const scale = bb.init_args.layer_scale_init_value ?? null;
  check(
    "backbone.init_args.layer_scale_init_value",
    scale === null || typeof scale === "number",
    "a number or null",
    scale,
  );
  const headDim = positive("head", hd.init_args, "dim");
  check("head.init_args.dim", headDim === dim, `${dim} (backbone.init_args.dim)`, headDim);
  const nFft = positive("head", hd.init_args, "n_fft");
  const hopLength = positive("head", hd.init_args, "hop_length");
  check(
    "head.init_args.n_fft",
    nFft % 2 === 0 && (nFft - hopLength) % 2 === 0 && nFft >= hopLength,
    "even, ≥ hop_length, n_fft − hop_length even",
    nFft,
  );
  if (problems.length > 0) throw new WeightsError(file, problems);
  return {
    bandwidths: [...bandwidths],
    inputChannels,
    dim,
    intermediateDim,
    numLayers,
    adanormEmbeddings: (ada as number | null) ?? 0,
    // Vocos uses `layer_scale_init_value or 1 / num_layers`; only a negative value drops gamma.
    layerScale: scale === null || (scale as number) >= 0,
    nFft,
    hopLength,
    sampleRate: SAMPLE_RATE,
    frameRate: Math.ceil(SAMPLE_RATE / hopLength),
  };
}
