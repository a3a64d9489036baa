/**
 * {@linkcode Vocos}: the Vocos vocoder (EnCodec variant) on the GPU. Codes become summed EnCodec
 * codewords, a ConvNeXt backbone conditioned on the bandwidth id (AdaLayerNorm) turns them into
 * per-frame log-magnitude and phase, and an inverse STFT with "same" padding and exact window
 * envelope normalization turns those into audio at 24 kHz.
 *
 * Long inputs are decoded in chunks of frames with enough context on both sides (the
 * backbone's reach plus the ISTFT's overlap, from the configuration) for every output sample to
 * equal the unchunked result exactly.
 *
 * mirrors vocos/pretrained.py: Vocos.decode, codes_to_features; vocos/models.py: VocosBackbone;
 * vocos/heads.py: ISTFTHead; vocos/spectral_ops.py: ISTFT(padding="same")
 *
 * This module is browser compatible.
 *
 * @module
 */

import { OptionError } from "../../errors.ts";
import type { KernelUse } from "../../backends/backend.ts";
import { kernelUses, type OpKernel } from "../../ops/_kernels.ts";
import { ACTIVATION_KERNELS } from "../../ops/activation.ts";
import { CONV1D_KERNELS } from "../../ops/conv1d.ts";
import { DEPTHWISE_CONV1D_KERNELS } from "../../ops/depthwise_conv1d.ts";
import { ELEMENTWISE_KERNELS } from "../../ops/elementwise.ts";
import { EMBEDDING_KERNELS } from "../../ops/embedding.ts";
import { ISTFT_KERNELS } from "../../ops/istft.ts";
import { LAYER_NORM_KERNELS } from "../../ops/layer_norm.ts";
import { LINEAR_KERNELS } from "../../ops/linear.ts";
import type { Profiler, Recorder, Tensor } from "../../backends/backend.ts";
import { destroyTensors, readBytes, rows } from "../../backends/tensor.ts";
import type { Backend } from "../../backends/backend.ts";
import { openWeights, type WeightsInput } from "../../io/weights.ts";
import { gelu } from "../../ops/activation.ts";
import { conv1d } from "../../ops/conv1d.ts";
import { depthwiseConv1d } from "../../ops/depthwise_conv1d.ts";
import { add, mul } from "../../ops/elementwise.ts";
import { istftOverlapAdd, istftSpectrum } from "../../ops/istft.ts";
import { layerNorm } from "../../ops/layer_norm.ts";
import { linear } from "../../ops/linear.ts";
import type { EncodecConfig } from "../encodec/config.ts";
import {
  type AudioCodes,
  checkCodes,
  chunkFrames,
  recordCodewordSum,
  Workspace,
} from "../_codec.ts";
import { Lifetime } from "../_lifetime.ts";
import {
  parseVocosConfig,
  type VocosCodebooks,
  type VocosConfig,
  type VocosConfigJson,
} from "./config.ts";
import { loadVocosWeights, type NormWeights, type VocosWeights } from "./weights.ts";

/** LayerNorm epsilon of every Vocos norm. */
const EPS = 1e-6;

/** Options of {@linkcode Vocos.load}. */
export interface VocosLoadOptions {
  /** The model's `config.yaml` as an object; default `charactr/vocos-encodec-24khz`. */
  config?: VocosConfigJson;
  /**
   * The configuration of the EnCodec whose codes this Vocos decodes (`encodec.config`): the
   * codebook size and frame rate are taken from it, and `feature_extractor.codebook_weights` must
   * have the shape of its first codebooks. Without it, the codebook size is the one that fits the
   * shape of `feature_extractor.codebook_weights`.
   */
  encodec?: EncodecConfig;
  /**
   * Storage type of the backbone and head weights. Default `"f32"`: with f16 weights the golden
   * vocos-tiny audio moves by ~2e-3, 100 times the reference tolerance of 2e-5.
   */
  weights?: "f32" | "f16";
  /** Frames per chunk for long inputs; default: as many as the binding limit allows, ≤ 1500. */
  chunkFrames?: number;
  /** The weights' name in error messages, when they are bytes. */
  label?: string;
  /** Times every kernel of every call (for benchmarks; see `Profiler.collect`). */
  profiler?: Profiler;
}

/** Intermediate results {@linkcode VocosDecodeOptions.onStage} can observe. */
export type VocosStage = "features" | "backbone" | "head";

/** Options of {@linkcode Vocos.decode}. */
export interface VocosDecodeOptions {
  /**
   * Bandwidth id (AdaLayerNorm row); default: the id whose codebook count equals the codes'
   * (0–3 ↔ 2, 4, 8, 16 codebooks for the released model; see `Vocos.codebooks`).
   */
  bandwidthId?: number;
  /**
   * Debugging hook, called after the run with the summed codewords (`features`, (T, C)), the
   * backbone output (`backbone`, (T, dim)) and the head output before exp/clip (`head`,
   * (T, n_fft + 2)). Forces a single chunk.
   */
  onStage?: (stage: VocosStage, values: Float32Array, shape: readonly number[]) => void;
}

/** The kernels Vocos may dispatch (encoding and decoding), for warming at load. */
const VOCOS_KERNELS: readonly OpKernel[] = [
  ...ACTIVATION_KERNELS,
  ...CONV1D_KERNELS,
  ...DEPTHWISE_CONV1D_KERNELS,
  ...ELEMENTWISE_KERNELS,
  ...EMBEDDING_KERNELS,
  ...ISTFT_KERNELS,
  ...LAYER_NORM_KERNELS,
  ...LINEAR_KERNELS,
];

/**
 * Vocos on the GPU.
 *
 * @example
 * ```ts ignore
 * import { Vocos, requestGpu } from "@valle/core";
 * const backend = await requestGpu();
 * const vocos = await Vocos.load(backend, await Deno.readFile("pytorch_model.bin"));
 * const audio = await vocos.decode(codes); // 8 codebooks → bandwidth id 2; 320 samples per frame
 * ```
 */
export class Vocos {
  /** The device. */
  readonly backend: Backend;
  /** The validated configuration. */
  readonly config: VocosConfig;
  /** The codebook size and counts, read from the weights. */
  readonly codebooks: VocosCodebooks;
  /** Frames per chunk of long inputs. */
  readonly chunkFrames: number;
  #weights: VocosWeights;
  #ws: Workspace;
  /** Frames of context each side of a chunk. */
  #context: number;
  #rec: Recorder;
  #life = new Lifetime("Vocos model");
  /** The float type of its weights. */
  #float: "f16" | "f32";

  private constructor(
    backend: Backend,
    config: VocosConfig,
    loaded: { codebooks: VocosCodebooks; weights: VocosWeights },
    options: VocosLoadOptions,
  ) {
    this.backend = backend;
    this.config = config;
    this.codebooks = loaded.codebooks;
    this.#weights = loaded.weights;
    this.#float = options.weights ?? "f32";
    this.#ws = new Workspace(backend);
    this.#rec = backend.createRecorder({ label: "vocos.decode", profiler: options.profiler });
    const { nFft, hopLength: hop } = config;
    const pad = (nFft - hop) / 2;
    // Frames whose window covers some sample of frame a: a − ⌊(n_fft − 1 − pad) / hop⌋ …
    // a + ⌊(hop − 1 + pad) / hop⌋; the backbone reaches 3 frames per convolution.
    const istft = Math.max(Math.floor((nFft - 1 - pad) / hop), Math.floor((hop - 1 + pad) / hop));
    this.#context = istft + 3 * (1 + config.numLayers);
    this.chunkFrames = chunkFrames(backend, {
      requested: options.chunkFrames,
      bytesPerFrame: 4 * Math.max(nFft + 2, config.intermediateDim),
      context: 2 * this.#context,
      minimum: 1,
    });
  }

  /**
   * Loads Vocos weights: a safetensors file with the original key names, or the official
   * `pytorch_model.bin` as bytes (read by a restricted unpickler that only rebuilds tensors).
   *
   * @param backend The device.
   * @param weights The checkpoint.
   * @param options Configuration, weight precision, chunk size.
   * @returns The vocoder.
   * @throws {WeightsError} An invalid configuration, missing or mis-shaped tensors, or codebooks
   * of another size or count than the paired EnCodec's.
   * @throws {FormatError} The file cannot be parsed, or its pickle names a forbidden global.
   *
   * @example
   * ```ts ignore
   * const vocos = await Vocos.load(backend, await Deno.readFile("pytorch_model.bin"));
   * ```
   */
  static async load(
    backend: Backend,
    weights: WeightsInput,
    options: VocosLoadOptions = {},
  ): Promise<Vocos> {
    const source = await openWeights(weights, options.label);
    const config = parseVocosConfig(options.config);
    const loaded = loadVocosWeights(backend, source, config, {
      dtype: options.weights ?? "f32",
      encodec: options.encodec,
    });
    return new Vocos(backend, config, loaded, options);
  }

  /**
   * The kernel variants this model may dispatch, for {@linkcode Backend.warm}.
   */
  kernels(): KernelUse[] {
    const floats = [this.backend.weightDtype, "f32", this.#float] as const;
    return kernelUses(VOCOS_KERNELS, { floats, quants: [] });
  }

  /**
   * Compiles every kernel the model may dispatch ahead of its first call (WebGPU; nothing to do
   * on the CPU).
   *
   * @param onProgress Called as compiles finish, with the number done and the total.
   * @throws {GpuError} A kernel that fails to compile, named.
   */
  async warm(onProgress?: (done: number, total: number) => void): Promise<void> {
    this.#life.check();
    await this.backend.warm(this.kernels(), onProgress);
  }

  /**
   * Decodes EnCodec codes into audio at 24 kHz.
   *
   * @param codes Codes of the codebook count of one bandwidth id (or any count up to the model's
   * with an explicit `bandwidthId`), values in [0, bins).
   * @param options Bandwidth id, debugging hook.
   * @returns hopLength · frames samples.
   * @throws {OptionError} Codes out of range, or no bandwidth id for their codebook count.
   *
   * @example
   * ```ts ignore
   * const audio = await vocos.decode({ codes, nQ: 8, frames: 150 }); // 48000 samples
   * ```
   */
  decode(codes: AudioCodes, options: VocosDecodeOptions = {}): Promise<Float32Array> {
    return this.#life.run(() =>
      this.#ws.during(async () => {
        const id = this.#bandwidthId(codes, options.bandwidthId);
        const c = this.config;
        const hop = c.hopLength;
        const total = codes.frames;
        const chunk = options.onStage ? total : this.chunkFrames;
        const out = new Float32Array(total * hop);
        const rec = this.#rec;
        const stages: [VocosStage, Tensor][] = [];
        for (let a = 0, n = 0; a < total; a += n) {
          n = Math.min(chunk, total - a);
          const w0 = Math.max(0, a - this.#context);
          const w1 = Math.min(total, a + n + this.#context);
          const frames = w1 - w0;
          const features = this.#features(rec, codes, w0, frames);
          const x = this.#backbone(rec, features, id);
          const head = this.#ws.tensor("head", [frames, c.nFft + 2]);
          linear(rec, head, x, this.#weights.headWeight, this.#weights.headBias);
          if (options.onStage) {
            stages.push(["features", features], ["backbone", x]);
            const copy = this.#ws.tensor("head.copy", head.shape);
            rec.copy(head, copy);
            stages.push(["head", copy]);
          }
          istftSpectrum(rec, head);
          const windows = this.#ws.tensor("frames", [frames, c.nFft]);
          linear(rec, windows, head, this.#weights.basis);
          const audio = this.#ws.tensor("audio", [n * hop]);
          istftOverlapAdd(rec, audio, windows, this.#weights.window, {
            hop,
            pad: (c.nFft - hop) / 2,
            totalFrames: total,
            firstFrame: w0,
            firstSample: a * hop,
          });
          rec.submit();
          const got = await readBytes(this.backend, [audio, ...stages.map(([, t]) => t)]);
          out.set(new Float32Array(got[0]), a * hop);
          stages.forEach(([stage, t], i) =>
            options.onStage!(stage, new Float32Array(got[i + 1]), t.shape)
          );
        }
        return out;
      })
    );
  }

  /**
   * Frees the weights, the scratch buffers and the device's pooled buffers no call is using. A
   * decode already called finishes first; later calls fail with a `GpuError`.
   *
   * @returns Resolves once everything is freed (at once when no decode is running).
   */
  dispose(): Promise<void> {
    return this.#life.dispose(() => {
      this.#ws.release();
      this.#rec.destroy();
      destroyTensors(this.#weights);
      this.backend.trim();
    });
  }

  #bandwidthId(codes: AudioCodes, requested?: number): number {
    const { count, bins, perBandwidth } = this.codebooks;
    checkCodes(codes, count, bins);
    const id = requested ?? perBandwidth.indexOf(codes.nQ);
    if (!Number.isInteger(id) || id < 0 || id >= perBandwidth.length) {
      throw new OptionError(
        `Cannot decode: ${
          requested === undefined ? `${codes.nQ} codebooks match no` : `${requested} is not a`
        } ` +
          `bandwidth id, expected ids 0 to ${perBandwidth.length - 1} for ` +
          `${perBandwidth.join(", ")} codebooks`,
      );
    }
    return id;
  }

  /** Records the summed codewords of frames [first, first + n): (n, C). */
  #features(rec: Recorder, codes: AudioCodes, first: number, n: number): Tensor {
    const features = this.#ws.tensor("features", [n, this.config.inputChannels]);
    recordCodewordSum(
      rec,
      this.#ws,
      features,
      codes,
      first,
      this.#weights.codebooks,
      this.codebooks.bins,
    );
    return features;
  }

  /** Records VocosBackbone: embed conv, norm, ConvNeXt blocks, final LayerNorm: (n, dim). */
  #backbone(rec: Recorder, features: Tensor, id: number): Tensor {
    const w = this.#weights;
    const { dim, intermediateDim } = this.config;
    const n = features.shape[0];
    const h = this.#ws.tensor("h", [n, dim]);
    const x = this.#ws.tensor("x", [n, dim]);
    conv1d(rec, h, features, w.embedWeight, w.embedBias, { padLeft: 3, padRight: 3 });
    this.#norm(rec, x, h, w.norm, id);
    const u = this.#ws.tensor("u", [n, intermediateDim]);
    for (const block of w.blocks) {
      depthwiseConv1d(rec, h, x, block.dwWeight, block.dwBias);
      const normed = this.#ws.tensor("normed", [n, dim]);
      this.#norm(rec, normed, h, block.norm, id);
      linear(rec, u, normed, block.pw1Weight, block.pw1Bias);
      gelu(rec, u);
      linear(rec, h, u, block.pw2Weight, block.pw2Bias);
      if (block.gamma) mul(rec, h, block.gamma);
      add(rec, x, h);
    }
    const y = this.#ws.tensor("backbone", [n, dim]);
    this.#norm(rec, y, x, w.finalNorm, 0);
    return y;
  }

  #norm(rec: Recorder, y: Tensor, x: Tensor, norm: NormWeights, id: number): void {
    const row = norm.weight.shape[0] > 1 ? id : 0;
    layerNorm(rec, y, x, rows(norm.weight, row, 1), rows(norm.bias, row, 1), EPS);
  }
}
