/**
 * CPU oracle of Vocos (EnCodec variant) in float64, from the PyTorch semantics of codec-spec.md
 * §5: summed codewords, VocosBackbone (embed conv, AdaLayerNorm, ConvNeXt blocks, final
 * LayerNorm), ISTFTHead with "same" padding. Time-major like the GPU's; weights keep PyTorch's
 * layouts and names.
 */

import { codebookSum, conv1d, depthwiseConv1d, istftHead, layerNorm } from "./codec.ts";
import { gelu } from "./erf.ts";
import { linear } from "./ops.ts";

/** The sizes the oracle needs (the checkpoint has AdaLayerNorms and layer scale). */
export interface VocosOracleConfig {
  /** Codeword dimension (backbone input channels). */
  inputChannels: number;
  dim: number;
  intermediateDim: number;
  numLayers: number;
  hopLength: number;
  /** Codewords per codebook of `feature_extractor.codebook_weights`. */
  bins: number;
}

/**
 * Decodes codes (K, T) at a bandwidth id: the summed codewords (T, C) and T · hop samples.
 * `w` gives the checkpoint's tensors by name.
 */
export function vocosDecode(
  w: (name: string) => Float32Array,
  c: VocosOracleConfig,
  codes: { codes: ArrayLike<number>; nQ: number; frames: number },
  bandwidthId: number,
): { features: Float64Array; audio: Float64Array } {
  const { dim } = c;
  const { frames } = codes;
  const features = codebookSum(
    codes.codes,
    codes.nQ,
    frames,
    w("feature_extractor.codebook_weights"),
    c.bins,
    c.inputChannels,
  );
  const row = (name: string) => w(name).subarray(bandwidthId * dim, (bandwidthId + 1) * dim);
  const adaNorm = (x: ArrayLike<number>, prefix: string) =>
    layerNorm(x, dim, row(`${prefix}.scale.weight`), row(`${prefix}.shift.weight`), 1e-6);
  const embed = conv1d(
    features,
    frames,
    w("backbone.embed.weight"),
    w("backbone.embed.bias"),
    [dim, c.inputChannels, 7],
    { padLeft: 3, padRight: 3 },
  ).y;
  let x = adaNorm(embed, "backbone.norm");
  for (let i = 0; i < c.numLayers; i++) {
    const p = `backbone.convnext.${i}`;
    const h = depthwiseConv1d(x, frames, dim, w(`${p}.dwconv.weight`), w(`${p}.dwconv.bias`), 7);
    const u = linear(
      adaNorm(h, `${p}.norm`),
      w(`${p}.pwconv1.weight`),
      w(`${p}.pwconv1.bias`),
      frames,
      c.intermediateDim,
      dim,
    ).map(gelu);
    const y = linear(
      u,
      w(`${p}.pwconv2.weight`),
      w(`${p}.pwconv2.bias`),
      frames,
      dim,
      c.intermediateDim,
    );
    const gamma = w(`${p}.gamma`);
    x = x.map((v, j) => v + gamma[j % dim] * y[j]);
  }
  x = layerNorm(
    x,
    dim,
    w("backbone.final_layer_norm.weight"),
    w("backbone.final_layer_norm.bias"),
    1e-6,
  );
  const window = w("head.istft.window");
  const head = linear(x, w("head.out.weight"), w("head.out.bias"), frames, window.length + 2, dim);
  return { features, audio: istftHead(head, frames, window, c.hopLength) };
}
