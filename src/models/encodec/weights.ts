/**
 * EnCodec's layer program and weights: the SEANet encoder and decoder as lists of layers in the
 * Hugging Face order (`encoder.layers.N`, `decoder.layers.N`, same N as the original
 * `encoder.model.N`), each with its weights folded (weight norm, W = g · v / ‖v‖ per output
 * slice, computed in float64 at load), reordered for the kernels and uploaded; and the stacked
 * RVQ codebooks. Both weight-norm spellings are accepted (`weight_g`/`weight_v` and
 * `parametrizations.weight.original0/1`), as are already folded `weight` tensors.
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
import { convTransposeWeightLayout, convWeightLayout } from "../../ops/conv1d.ts";
import { transposeCodebooks } from "../../ops/rvq.ts";
import type { EncodecConfig } from "./config.ts";

/** A causal convolution (reflect padding on the left, plus the "extra" right padding). */
export interface ConvLayer {
  readonly kind: "conv";
  /** Checkpoint prefix, e.g. `encoder.layers.0.conv`. */
  readonly name: string;
  /** (Cout, taps, Cin). */
  readonly w: Tensor;
  /** (Cout). */
  readonly b: Tensor;
  readonly cin: number;
  readonly cout: number;
  readonly taps: number;
  readonly stride: number;
  readonly dilation: number;
  /** (taps − 1)·dilation + 1 − stride. */
  readonly padLeft: number;
}

/** A transposed convolution trimmed as SConvTranspose1d does. */
export interface ConvTransposeLayer {
  readonly kind: "convtr";
  readonly name: string;
  /** (stride, Cout, taps, Cin). */
  readonly w: Tensor;
  /** (Cout). */
  readonly b: Tensor;
  readonly cin: number;
  readonly cout: number;
  readonly stride: number;
  /** ceil(kernel / stride). */
  readonly taps: number;
  /** Samples dropped at the start: (kernel − stride) − ceil((kernel − stride) · trim_right_ratio). */
  readonly trimLeft: number;
}

/** SEANetResnetBlock: shortcut(x) + conv₁(ELU(conv₀(ELU(x)))). */
export interface ResidualLayer {
  readonly kind: "residual";
  readonly name: string;
  /** conv₀ (k = residual_kernel_size, dilated) and conv₁ (k = 1). */
  readonly convs: readonly [ConvLayer, ConvLayer];
  /** The 1×1 shortcut, or none for an identity. */
  readonly shortcut?: ConvLayer;
}

/** ELU (alpha 1). */
export interface EluLayer {
  readonly kind: "elu";
  readonly name: string;
}

/** SLSTM: a stack of LSTM layers plus a skip, LSTM(x) + x. */
export interface LstmLayer {
  readonly kind: "lstm";
  readonly name: string;
  readonly hidden: number;
  readonly layers: readonly {
    /** (4H, 1, In): the input projection as a 1×1 convolution. */
    readonly wih: Tensor;
    /** (4H): b_ih + b_hh. */
    readonly bias: Tensor;
    /** (4H, H). */
    readonly whh: Tensor;
  }[];
}

/** One layer of a SEANet encoder or decoder. */
export type SeanetLayer = ConvLayer | ConvTransposeLayer | ResidualLayer | EluLayer | LstmLayer;

/** Everything an EnCodec model runs with, on the GPU. */
export interface EncodecWeights {
  readonly encoder: readonly SeanetLayer[];
  readonly decoder: readonly SeanetLayer[];
  /** (numQuantizers · bins, dim), f32: codeword j of codebook q is row q·bins + j. */
  readonly codebooks: Tensor;
  /** (numQuantizers, dim, bins), f32: the same, transposed for the nearest-codeword search. */
  readonly codebooksTransposed: Tensor;
}

/**
 * Checks every tensor the configuration needs, then folds, reorders and uploads them.
 *
 * @param backend The device.
 * @param source The checkpoint (Hugging Face names).
 * @param config The configuration.
 * @param dtype Storage type of convolution and LSTM weights (codebooks stay f32).
 * @returns The layer programs and codebooks.
 * @throws {WeightsError} Every missing or mis-shaped tensor at once, and LSTM layers beyond
 * `num_lstm_layers`.
 *
 * @example
 * ```ts ignore
 * const weights = loadEncodecWeights(backend, await openWeights(bytes), parseEncodecConfig(), "f32");
 * ```
 */
export function loadEncodecWeights(
  backend: Backend,
  source: WeightSource,
  config: EncodecConfig,
  dtype: "f16" | "f32",
): EncodecWeights {
  const problems: WeightProblem[] = [];
  const loader = new Loader(backend, source, dtype, problems);
  const encoder = buildEncoder(loader, config);
  const decoder = buildDecoder(loader, config);
  const tables: Float32Array[] = [];
  for (let q = 0; q < config.numQuantizers; q++) {
    const values = loader.read(`quantizer.layers.${q}.codebook.embed`, [config.bins, config.dim]);
    if (values) tables.push(values);
  }
  if (problems.length > 0) {
    loader.destroy();
    throw new WeightsError(source.source, problems);
  }
  const codebooks = new Float32Array(config.numQuantizers * config.bins * config.dim);
  tables.forEach((t, q) => codebooks.set(t, q * t.length));
  const { numQuantizers: n, bins, dim } = config;
  return {
    encoder,
    decoder,
    codebooks: uploadTensor(backend, codebooks, [n * bins, dim], "f32", "encodec.codebooks"),
    codebooksTransposed: uploadTensor(
      backend,
      transposeCodebooks(codebooks, bins, dim),
      [n, dim, bins],
      "f32",
      "encodec.codebooks.transposed",
    ),
  };
}

function buildEncoder(l: Loader, c: EncodecConfig): SeanetLayer[] {
  const layers: SeanetLayer[] = [];
  const at = (): string => `encoder.layers.${layers.length}`;
  layers.push(l.conv(`${at()}.conv`, 1, c.numFilters, c.kernelSize));
  let width = c.numFilters;
  for (const ratio of [...c.ratios].reverse()) {
    for (let j = 0; j < c.residualLayers; j++) layers.push(l.residual(at(), width, c, j));
    layers.push({ kind: "elu", name: at() });
    layers.push(l.conv(`${at()}.conv`, width, 2 * width, 2 * ratio, ratio));
    width *= 2;
  }
  layers.push(l.lstm(`${at()}.lstm`, width, c.lstmLayers));
  layers.push({ kind: "elu", name: at() });
  layers.push(l.conv(`${at()}.conv`, width, c.dim, c.lastKernelSize));
  return layers;
}

function buildDecoder(l: Loader, c: EncodecConfig): SeanetLayer[] {
  const layers: SeanetLayer[] = [];
  const at = (): string => `decoder.layers.${layers.length}`;
  let width = c.numFilters * 2 ** c.ratios.length;
  layers.push(l.conv(`${at()}.conv`, c.dim, width, c.kernelSize));
  layers.push(l.lstm(`${at()}.lstm`, width, c.lstmLayers));
  for (const ratio of c.ratios) {
    layers.push({ kind: "elu", name: at() });
    layers.push(
      l.convTranspose(`${at()}.conv`, width, width / 2, 2 * ratio, ratio, c.trimRightRatio),
    );
    width /= 2;
    for (let j = 0; j < c.residualLayers; j++) layers.push(l.residual(at(), width, c, j));
  }
  layers.push({ kind: "elu", name: at() });
  layers.push(l.conv(`${at()}.conv`, c.numFilters, 1, c.lastKernelSize));
  return layers;
}

/** Reads, checks, folds and uploads tensors, collecting problems instead of throwing. */
class Loader {
  #backend: Backend;
  #source: WeightSource;
  #dtype: "f16" | "f32";
  #problems: WeightProblem[];
  #uploaded: Tensor[] = [];

  constructor(
    backend: Backend,
    source: WeightSource,
    dtype: "f16" | "f32",
    problems: WeightProblem[],
  ) {
    this.#backend = backend;
    this.#source = source;
    this.#dtype = dtype;
    this.#problems = problems;
  }

  /** A tensor's values if it exists with this shape; otherwise records the problem. */
  read(name: string, shape: readonly number[]): Float32Array | undefined {
    if (!this.#source.has(name)) {
      this.#problems.push({ tensor: name, expected: `[${shape}]`, found: "missing" });
      return undefined;
    }
    const found = this.#source.info(name).shape;
    if (found.length !== shape.length || found.some((d, i) => d !== shape[i])) {
      this.#problems.push({ tensor: name, expected: `[${shape}]`, found: `[${found}]` });
      return undefined;
    }
    return this.#source.toFloat32(name);
  }

  /**
   * The effective weight of a weight-normed module: g · v / ‖v‖ with the norm over every dim but
   * the first (`torch._weight_norm(v, g, dim=0)`), or a plain `weight`.
   */
  folded(prefix: string, shape: readonly [number, number, number]): Float32Array | undefined {
    const s = this.#source;
    let g: string | undefined;
    let v: string | undefined;
    if (s.has(`${prefix}.weight_v`) || s.has(`${prefix}.weight_g`)) {
      [g, v] = [`${prefix}.weight_g`, `${prefix}.weight_v`];
    } else if (s.has(`${prefix}.parametrizations.weight.original1`)) {
      [g, v] = [
        `${prefix}.parametrizations.weight.original0`,
        `${prefix}.parametrizations.weight.original1`,
      ];
    } else if (s.has(`${prefix}.weight`)) {
      return this.read(`${prefix}.weight`, shape);
    } else {
      this.#problems.push({
        tensor: `${prefix}.weight_v`,
        expected: `[${shape}] (or .parametrizations.weight.original1, or .weight)`,
        found: "missing",
      });
      return undefined;
    }
    const gv = this.read(g, [shape[0], 1, 1]);
    const vv = this.read(v, shape);
    if (!gv || !vv) return undefined;
    const slice = shape[1] * shape[2];
    const out = new Float32Array(vv.length);
    for (let o = 0; o < shape[0]; o++) {
      let sum = 0;
      for (let i = 0; i < slice; i++) sum += vv[o * slice + i] ** 2;
      const scale = gv[o] / Math.sqrt(sum);
      for (let i = 0; i < slice; i++) out[o * slice + i] = vv[o * slice + i] * scale;
    }
    return out;
  }

  upload(values: Float32Array, shape: readonly number[], label: string): Tensor {
    const t = this.#dtype === "f16"
      ? uploadTensor(this.#backend, f32ToF16(values), shape, "f16", label)
      : uploadTensor(this.#backend, values, shape, "f32", label);
    this.#uploaded.push(t);
    return t;
  }

  /** Frees everything uploaded so far (when loading fails). */
  destroy(): void {
    for (const t of this.#uploaded) t.buffer.destroy();
  }

  conv(name: string, cin: number, cout: number, taps: number, stride = 1, dilation = 1): ConvLayer {
    const shape = [cout, cin, taps] as const;
    const w = this.folded(name, shape) ?? new Float32Array(cout * cin * taps);
    const b = this.read(`${name}.bias`, [cout]) ?? new Float32Array(cout);
    return {
      kind: "conv",
      name,
      w: this.upload(convWeightLayout(w, shape), [cout, taps, cin], `${name}.weight`),
      b: this.upload(b, [cout], `${name}.bias`),
      cin,
      cout,
      taps,
      stride,
      dilation,
      padLeft: (taps - 1) * dilation + 1 - stride,
    };
  }

  convTranspose(
    name: string,
    cin: number,
    cout: number,
    kernel: number,
    stride: number,
    trimRightRatio: number,
  ): ConvTransposeLayer {
    const shape = [cin, cout, kernel] as const;
    const w = this.folded(name, shape) ?? new Float32Array(cin * cout * kernel);
    const b = this.read(`${name}.bias`, [cout]) ?? new Float32Array(cout);
    const taps = Math.ceil(kernel / stride);
    const total = kernel - stride;
    return {
      kind: "convtr",
      name,
      w: this.upload(
        convTransposeWeightLayout(w, shape, stride),
        [stride, cout, taps, cin],
        `${name}.weight`,
      ),
      b: this.upload(b, [cout], `${name}.bias`),
      cin,
      cout,
      stride,
      taps,
      trimLeft: total - Math.ceil(total * trimRightRatio),
    };
  }

  residual(name: string, dim: number, c: EncodecConfig, j: number): ResidualLayer {
    const hidden = Math.floor(dim / c.compress);
    const dilation = c.dilationGrowth ** j;
    return {
      kind: "residual",
      name,
      convs: [
        this.conv(`${name}.block.1.conv`, dim, hidden, c.residualKernelSize, 1, dilation),
        this.conv(`${name}.block.3.conv`, hidden, dim, 1),
      ],
      shortcut: c.convShortcut ? this.conv(`${name}.shortcut.conv`, dim, dim, 1) : undefined,
    };
  }

  lstm(name: string, hidden: number, count: number): LstmLayer {
    const layers = [];
    for (let n = 0; n < count; n++) {
      const wih = this.read(`${name}.weight_ih_l${n}`, [4 * hidden, hidden]) ??
        new Float32Array(4 * hidden * hidden);
      const whh = this.read(`${name}.weight_hh_l${n}`, [4 * hidden, hidden]) ??
        new Float32Array(4 * hidden * hidden);
      const bih = this.read(`${name}.bias_ih_l${n}`, [4 * hidden]) ?? new Float32Array(4 * hidden);
      const bhh = this.read(`${name}.bias_hh_l${n}`, [4 * hidden]) ?? new Float32Array(4 * hidden);
      layers.push({
        wih: this.upload(wih, [4 * hidden, 1, hidden], `${name}.weight_ih_l${n}`),
        bias: this.upload(bih.map((v, i) => v + bhh[i]), [4 * hidden], `${name}.bias_l${n}`),
        whh: this.upload(whh, [4 * hidden, hidden], `${name}.weight_hh_l${n}`),
      });
    }
    // A layer beyond the configured count would otherwise be dropped without a word.
    const extra = `${name}.weight_ih_l${count}`;
    if (this.#source.has(extra)) {
      this.#problems.push({
        tensor: extra,
        expected: `absent (num_lstm_layers is ${count})`,
        found: `[${this.#source.info(extra).shape}]`,
      });
    }
    return { kind: "lstm", name, hidden, layers };
  }
}
