/**
 * Vocos's weights under their original state-dict names (`feature_extractor.codebook_weights`,
 * `backbone.*`, `head.*`, as in the released `pytorch_model.bin`), checked against the
 * configuration and uploaded: convolution weights reordered for the kernels, and the ISTFT head's
 * inverse-DFT basis built from `head.istft.window` in float64. The codebook size and count come
 * from the shape of `feature_extractor.codebook_weights` (and the paired EnCodec's, when given),
 * since `config.yaml` does not state them.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { type WeightProblem, WeightsError } from "../../errors.ts";
import type { Tensor } from "../../backends/backend.ts";
import { uploadTensor } from "../../backends/tensor.ts";
import type { Backend } from "../../backends/backend.ts";
import { f32ToF16 } from "../../io/dtype.ts";
import type { WeightSource } from "../../io/weights.ts";
import { convWeightLayout } from "../../ops/conv1d.ts";
import { istftBasis } from "../../ops/istft.ts";
import { codebooksForBandwidth, type EncodecConfig } from "../encodec/config.ts";
import type { VocosCodebooks, VocosConfig } from "./config.ts";

/** A LayerNorm: the (rows, dim) weight and bias tables (one row unless adaptive). */
export interface NormWeights {
  readonly weight: Tensor;
  readonly bias: Tensor;
}

/** One ConvNeXt block. */
export interface ConvNextWeights {
  /** (dim, 7). */
  readonly dwWeight: Tensor;
  readonly dwBias: Tensor;
  readonly norm: NormWeights;
  /** (intermediate, dim). */
  readonly pw1Weight: Tensor;
  readonly pw1Bias: Tensor;
  /** (dim, intermediate). */
  readonly pw2Weight: Tensor;
  readonly pw2Bias: Tensor;
  /** (dim), when the model has layer scale. */
  readonly gamma?: Tensor;
}

/** Everything a Vocos model runs with, on the GPU. */
export interface VocosWeights {
  /** (count · bins, inputChannels), f32: codeword j of codebook q is row q·bins + j. */
  readonly codebooks: Tensor;
  /** (dim, 7, inputChannels). */
  readonly embedWeight: Tensor;
  readonly embedBias: Tensor;
  readonly norm: NormWeights;
  readonly blocks: readonly ConvNextWeights[];
  readonly finalNorm: NormWeights;
  /** (n_fft + 2, dim). */
  readonly headWeight: Tensor;
  readonly headBias: Tensor;
  /** (n_fft), f32. */
  readonly window: Tensor;
  /** (n_fft, n_fft + 2), f32: windowed inverse real DFT. */
  readonly basis: Tensor;
}

/** Options of {@linkcode loadVocosWeights}. */
export interface VocosWeightsOptions {
  /**
   * Storage type of convolution, linear and norm weights (codebooks, window and basis stay f32).
   */
  dtype: "f16" | "f32";
  /** The paired EnCodec: the codebook size and count are taken from it and checked. */
  encodec?: EncodecConfig;
}

/**
 * Checks every tensor the configuration needs, reads the codebook sizes, then uploads them.
 *
 * @param backend The device.
 * @param source The checkpoint (original Vocos names).
 * @param config The configuration.
 * @param options Storage type, paired EnCodec.
 * @returns The codebook sizes and the weights.
 * @throws {WeightsError} Every missing or mis-shaped tensor at once, a block beyond `num_layers`,
 * codebooks that fit no codebook size or conflict with the paired EnCodec's, or a frame other
 * than the paired EnCodec's.
 *
 * @example
 * ```ts ignore
 * const { codebooks, weights } = loadVocosWeights(backend, source, parseVocosConfig(), {
 *   dtype: "f32",
 * });
 * ```
 */
export function loadVocosWeights(
  backend: Backend,
  source: WeightSource,
  config: VocosConfig,
  options: VocosWeightsOptions,
): { codebooks: VocosCodebooks; weights: VocosWeights } {
  const { inputChannels: d0, dim, intermediateDim: hidden, nFft } = config;
  const problems: WeightProblem[] = [];
  const values = new Map<string, Float32Array>();
  const need = (name: string, shape: readonly number[]) => {
    if (!source.has(name)) {
      problems.push({ tensor: name, expected: `[${shape}]`, found: "missing" });
      return;
    }
    const found = source.info(name).shape;
    if (found.length !== shape.length || found.some((v, i) => v !== shape[i])) {
      problems.push({ tensor: name, expected: `[${shape}]`, found: `[${found}]` });
      return;
    }
    values.set(name, source.toFloat32(name));
  };
  const rowsOfNorm = Math.max(1, config.adanormEmbeddings);
  const normNames = (prefix: string): [string, string] =>
    config.adanormEmbeddings > 0
      ? [`${prefix}.scale.weight`, `${prefix}.shift.weight`]
      : [`${prefix}.weight`, `${prefix}.bias`];
  const normShape = config.adanormEmbeddings > 0 ? [rowsOfNorm, dim] : [dim];
  const codebooks = codebookSizes(source, config, options.encodec, problems);
  if (codebooks) need(CODEBOOKS, [codebooks.count * codebooks.bins, d0]);
  need("backbone.embed.weight", [dim, d0, 7]);
  need("backbone.embed.bias", [dim]);
  for (const n of normNames("backbone.norm")) need(n, normShape);
  for (let i = 0; i < config.numLayers; i++) {
    const p = `backbone.convnext.${i}`;
    need(`${p}.dwconv.weight`, [dim, 1, 7]);
    need(`${p}.dwconv.bias`, [dim]);
    for (const n of normNames(`${p}.norm`)) need(n, normShape);
    need(`${p}.pwconv1.weight`, [hidden, dim]);
    need(`${p}.pwconv1.bias`, [hidden]);
    need(`${p}.pwconv2.weight`, [dim, hidden]);
    need(`${p}.pwconv2.bias`, [dim]);
    if (config.layerScale) need(`${p}.gamma`, [dim]);
  }
  const extra = `backbone.convnext.${config.numLayers}.dwconv.weight`;
  if (source.has(extra)) {
    problems.push({
      tensor: extra,
      expected: `absent (backbone.init_args.num_layers is ${config.numLayers})`,
      found: `[${source.info(extra).shape}]`,
    });
  }
  need("backbone.final_layer_norm.weight", [dim]);
  need("backbone.final_layer_norm.bias", [dim]);
  need("head.out.weight", [nFft + 2, dim]);
  need("head.out.bias", [nFft + 2]);
  need("head.istft.window", [nFft]);
  if (problems.length > 0) throw new WeightsError(source.source, problems);

  const get = (name: string) => values.get(name)!;
  const up = (name: string, shape: readonly number[], v = get(name)) =>
    options.dtype === "f16"
      ? uploadTensor(backend, f32ToF16(v), shape, "f16", name)
      : uploadTensor(backend, v, shape, "f32", name);
  const f32 = (name: string, shape: readonly number[], v = get(name)) =>
    uploadTensor(backend, v, shape, "f32", name);
  const norm = (prefix: string): NormWeights => {
    const [w, b] = normNames(prefix);
    return { weight: up(w, [rowsOfNorm, dim]), bias: up(b, [rowsOfNorm, dim]) };
  };
  const window = get("head.istft.window");
  const { bins, count } = codebooks!;
  const weights: VocosWeights = {
    codebooks: f32(CODEBOOKS, [count * bins, d0]),
    embedWeight: up(
      "backbone.embed.weight",
      [dim, 7, d0],
      convWeightLayout(get("backbone.embed.weight"), [dim, d0, 7]),
    ),
    embedBias: up("backbone.embed.bias", [dim]),
    norm: norm("backbone.norm"),
    blocks: Array.from({ length: config.numLayers }, (_, i) => {
      const p = `backbone.convnext.${i}`;
      return {
        dwWeight: up(`${p}.dwconv.weight`, [dim, 7]),
        dwBias: up(`${p}.dwconv.bias`, [dim]),
        norm: norm(`${p}.norm`),
        pw1Weight: up(`${p}.pwconv1.weight`, [hidden, dim]),
        pw1Bias: up(`${p}.pwconv1.bias`, [hidden]),
        pw2Weight: up(`${p}.pwconv2.weight`, [dim, hidden]),
        pw2Bias: up(`${p}.pwconv2.bias`, [dim]),
        gamma: config.layerScale ? up(`${p}.gamma`, [dim]) : undefined,
      };
    }),
    finalNorm: {
      weight: up("backbone.final_layer_norm.weight", [1, dim]),
      bias: up("backbone.final_layer_norm.bias", [1, dim]),
    },
    headWeight: up("head.out.weight", [nFft + 2, dim]),
    headBias: up("head.out.bias", [nFft + 2]),
    window: f32("head.istft.window", [nFft]),
    basis: f32("head.istft.basis", [nFft, nFft + 2], istftBasis(window)),
  };
  return { codebooks: codebooks!, weights };
}

const CODEBOOKS = "feature_extractor.codebook_weights";

/**
 * The codebook sizes of `feature_extractor.codebook_weights` (count · bins, C): upstream stacks
 * the first count = max(1, ⌊1000 · max kbps / (log2(bins) · frame rate)⌋) codebooks of its
 * EnCodec (fewer when the EnCodec has fewer). With the paired EnCodec, its bins and frame rate
 * give the expected shape (and its frame must be the Vocos's); without it, the one power-of-two
 * bins whose count fits the rows. Appends a problem and returns undefined when the table cannot
 * be read this way.
 */
function codebookSizes(
  source: WeightSource,
  config: VocosConfig,
  encodec: EncodecConfig | undefined,
  problems: WeightProblem[],
): VocosCodebooks | undefined {
  const d0 = config.inputChannels;
  const kbps = Math.max(...config.bandwidths);
  const sizes = (bins: number, count: number, frameRate: number): VocosCodebooks => ({
    bins,
    count,
    perBandwidth: config.bandwidths.map((b) =>
      Math.min(codebooksForBandwidth({ bins, frameRate }, b), count)
    ),
  });
  const fail = (expected: string, found: string) => {
    problems.push({ tensor: CODEBOOKS, expected, found });
    return undefined;
  };
  if (!source.has(CODEBOOKS)) return fail(`[count · bins,${d0}]`, "missing");
  const shape = source.info(CODEBOOKS).shape;
  const [rows, cols] = shape;
  if (encodec) {
    const { bins, dim, frameRate } = encodec;
    if (encodec.hopLength !== config.hopLength || encodec.sampleRate !== config.sampleRate) {
      problems.push({
        tensor: "head.init_args.hop_length",
        expected:
          `${encodec.hopLength} samples at ${encodec.sampleRate} Hz (the paired EnCodec's frame)`,
        found: `${config.hopLength} samples at ${config.sampleRate} Hz`,
      });
    }
    const count = Math.min(codebooksForBandwidth(encodec, kbps), encodec.numQuantizers);
    if (shape.length !== 2 || rows !== count * bins || cols !== dim) {
      return fail(
        `[${count * bins},${dim}] (the paired EnCodec's first ${count} codebooks of ${bins} ` +
          `codewords of ${dim}, quantizer.layers.*.codebook.embed [${bins},${dim}], for the ` +
          `Vocos's highest bandwidth, ${kbps} kbps)`,
        `[${shape}]`,
      );
    }
    return sizes(bins, count, frameRate);
  }
  const frameRate = config.frameRate;
  const fits: VocosCodebooks[] = [];
  for (let bins = 2; shape.length === 2 && bins <= rows; bins *= 2) {
    const count = codebooksForBandwidth({ bins, frameRate }, kbps);
    if (count * bins === rows) fits.push(sizes(bins, count, frameRate));
  }
  if (fits.length === 1) return fits[0];
  const rule = `count = max(1, ⌊1000 · ${kbps} / (log2(bins) · ${frameRate})⌋)`;
  return fail(
    fits.length === 0
      ? `[count · bins,${d0}] with ${rule} for a power-of-two bins, e.g. ` +
        `[${codebooksForBandwidth({ bins: 1024, frameRate }, kbps) * 1024},${d0}] for 1024`
      : `one codebook size, but ${fits.length} fit (${
        fits.map((f) => `${f.count} codebooks of ${f.bins}`).join(", ")
      }): pass the paired EnCodec`,
    `[${shape}]`,
  );
}
