/**
 * Vocos's weights under their original state-dict names (`feature_extractor.codebook_weights`,
 * `backbone.*`, `head.*`, as in the released `pytorch_model.bin`), checked against the
 * configuration and uploaded: convolution weights reordered for the kernels, and the ISTFT head's
 * inverse-DFT basis built from `head.istft.window` in float64.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { type WeightProblem, WeightsError } from "../../errors.ts";
import type { Gpu } from "../../gpu/device.ts";
import { uploadTensor } from "../../gpu/buffers.ts";
import type { GpuTensor } from "../../gpu/tensor.ts";
import { f32ToF16 } from "../../io/dtype.ts";
import type { WeightSource } from "../../io/weights.ts";
import { convWeightLayout } from "../../ops/conv1d.ts";
import { istftBasis } from "../../ops/istft.ts";
import type { VocosConfig } from "./config.ts";

/** A LayerNorm: the (rows, dim) weight and bias tables (one row unless adaptive). */
export interface NormWeights {
  readonly weight: GpuTensor;
  readonly bias: GpuTensor;
}

/** One ConvNeXt block. */
export interface ConvNextWeights {
  /** (dim, 7). */
  readonly dwWeight: GpuTensor;
  readonly dwBias: GpuTensor;
  readonly norm: NormWeights;
  /** (intermediate, dim). */
  readonly pw1Weight: GpuTensor;
  readonly pw1Bias: GpuTensor;
  /** (dim, intermediate). */
  readonly pw2Weight: GpuTensor;
  readonly pw2Bias: GpuTensor;
  /** (dim), when the model has layer scale. */
  readonly gamma?: GpuTensor;
}

/** Everything a Vocos model runs with, on the GPU. */
export interface VocosWeights {
  /** (numQ · bins, inputChannels), f32. */
  readonly codebooks: GpuTensor;
  /** (dim, 7, inputChannels). */
  readonly embedWeight: GpuTensor;
  readonly embedBias: GpuTensor;
  readonly norm: NormWeights;
  readonly blocks: readonly ConvNextWeights[];
  readonly finalNorm: NormWeights;
  /** (n_fft + 2, dim). */
  readonly headWeight: GpuTensor;
  readonly headBias: GpuTensor;
  /** (n_fft), f32. */
  readonly window: GpuTensor;
  /** (n_fft, n_fft + 2), f32: windowed inverse real DFT. */
  readonly basis: GpuTensor;
}

/**
 * Checks every tensor the configuration needs, then uploads them.
 *
 * @param gpu The device.
 * @param source The checkpoint (original Vocos names).
 * @param config The configuration.
 * @param dtype Storage type of convolution, linear and norm weights (codebooks, window and basis
 * stay f32).
 * @returns The weights.
 * @throws {WeightsError} Every missing or mis-shaped tensor at once.
 *
 * @example
 * ```ts ignore
 * const weights = loadVocosWeights(gpu, await openWeights(bytes), parseVocosConfig(), "f32");
 * ```
 */
export function loadVocosWeights(
  gpu: Gpu,
  source: WeightSource,
  config: VocosConfig,
  dtype: "f16" | "f32",
): VocosWeights {
  const { inputChannels: d0, dim, intermediateDim: hidden, nFft } = config;
  const numQ = Math.max(...config.codebooksPerBandwidth);
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
  need("feature_extractor.codebook_weights", [numQ * config.bins, d0]);
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
  need("backbone.final_layer_norm.weight", [dim]);
  need("backbone.final_layer_norm.bias", [dim]);
  need("head.out.weight", [nFft + 2, dim]);
  need("head.out.bias", [nFft + 2]);
  need("head.istft.window", [nFft]);
  if (problems.length > 0) throw new WeightsError(source.source, problems);

  const get = (name: string) => values.get(name)!;
  const up = (name: string, shape: readonly number[], v = get(name)) =>
    dtype === "f16"
      ? uploadTensor(gpu, f32ToF16(v), shape, "f16", name)
      : uploadTensor(gpu, v, shape, "f32", name);
  const f32 = (name: string, shape: readonly number[], v = get(name)) =>
    uploadTensor(gpu, v, shape, "f32", name);
  const norm = (prefix: string): NormWeights => {
    const [w, b] = normNames(prefix);
    return { weight: up(w, [rowsOfNorm, dim]), bias: up(b, [rowsOfNorm, dim]) };
  };
  const window = get("head.istft.window");
  return {
    codebooks: f32("feature_extractor.codebook_weights", [numQ * config.bins, d0]),
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
}
