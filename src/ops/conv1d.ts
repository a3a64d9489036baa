/**
 * `conv1d` and `convTranspose1d` over time-major activations `(L, C)`, both on one implicit-GEMM
 * kernel (shaders/conv1d.wgsl; layers of at most 4 output channels use its row-per-thread
 * schedule). Padding is explicit (zero, or PyTorch reflect with EnCodec's
 * short-input rule), ELU can be applied to the input as it is read, and the result can be added
 * to `y` (a residual). Weights use the kernel's own layouts, made once at load time by
 * {@linkcode convWeightLayout} and {@linkcode convTransposeWeightLayout}.
 *
 * A transposed convolution with kernel k and stride s is computed as s ordinary convolutions,
 * one per output phase r = t mod s: y[q·s + r] = Σ_m x[q − m] · W[r + m·s], so no scatter and no
 * atomics are needed.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { OptionError } from "../errors.ts";
import type { KernelSpec, Recorder, Tensor } from "../backends/backend.ts";
import { grid1d } from "./_grid.ts";
import type { OpKernel } from "./_kernels.ts";
import { expectDtype, expectShape, weightType } from "./_check.ts";

const CONV1D: KernelSpec = {
  shader: "conv1d",
  bindings: ["write", "read", "read", "read"],
  params: [
    "u32", // m
    "u32", // n
    "u32", // cin
    "u32", // taps
    "u32", // in_len
    "u32", // stride
    "i32", // dilation
    "i32", // pad_left
    "u32", // reflect_len
    "u32", // x_off
    "u32", // y_off
    "u32", // w_off
    "u32", // b_off
    "u32", // w_phase
    "u32", // out_stride
    "i32", // out_start
    "u32", // out_rows
    "u32", // flags
  ],
};

/** Layers with at most this many output channels use conv1d.wgsl's row-per-thread schedule. */
const NARROW = 4;

/**
 * The kernels `conv1d` may dispatch, for warming at load (`kernelUses`): one per output tile
 * width `NT` (0 for the narrow kernel of `NARROW` outputs or fewer).
 */
export const CONV1D_KERNELS: readonly OpKernel[] = [0, 16, 32, 64].map((nt) => ({
  spec: CONV1D,
  constants: { NT: nt },
}));

const FLAG_ELU = 1;
const FLAG_ACCUMULATE = 2;
const FLAG_BIAS = 4;

/** How the input of a {@linkcode conv1d} is padded. */
export interface Conv1dOptions {
  /** Stride. Default 1. */
  stride?: number;
  /** Dilation. Default 1. */
  dilation?: number;
  /** Padding before the first sample. Default 0. */
  padLeft?: number;
  /** Padding after the last sample. Default 0. */
  padRight?: number;
  /**
   * `"zero"` (default), or `"reflect"`: PyTorch's reflect padding, with EnCodec's rule for short
   * inputs (a signal no longer than its padding is first extended with zeros, reflected, and
   * trimmed back).
   */
  padMode?: "zero" | "reflect";
  /** Apply ELU (alpha 1) to the input as it is read. */
  elu?: boolean;
  /** Add the result to `y` instead of overwriting it. */
  accumulate?: boolean;
}

/**
 * The output length of a convolution: floor((L + padLeft + padRight − dilation·(k − 1) − 1) / stride) + 1.
 *
 * @example
 * ```ts
 * import { conv1dLength } from "@valle/core/backends";
 * console.assert(conv1dLength(10, 4, { stride: 2, padLeft: 2 }) === 5);
 * ```
 */
export function conv1dLength(length: number, taps: number, options: Conv1dOptions = {}): number {
  const { stride = 1, dilation = 1, padLeft = 0, padRight = 0 } = options;
  const span = dilation * (taps - 1) + 1;
  return Math.floor((length + padLeft + padRight - span) / stride) + 1;
}

/**
 * Records y (+)= conv1d(act(pad(x)), w) + b.
 *
 * @param rec The recorder.
 * @param y Output (Lout, Cout), f32, Lout = {@linkcode conv1dLength}.
 * @param x Input (L, Cin), f32, in another buffer than `y`.
 * @param w Weight (Cout, taps, Cin) from {@linkcode convWeightLayout}, f16 or f32.
 * @param b Optional bias (Cout), same dtype as `w`.
 * @param options Stride, dilation, padding, fused ELU, accumulation.
 *
 * @example
 * ```ts ignore
 * conv1d(rec, y, x, w, b, { padLeft: 6, padMode: "reflect" }); // EnCodec's causal k = 7 conv
 * ```
 */
export function conv1d(
  rec: Recorder,
  y: Tensor,
  x: Tensor,
  w: Tensor,
  b: Tensor | undefined,
  options: Conv1dOptions = {},
): void {
  const op = "conv1d";
  const { stride = 1, dilation = 1, padLeft = 0, padRight = 0, padMode = "zero" } = options;
  expectShape(op, "w", w, [-1, -1, -1]);
  const [cout, taps, cin] = w.shape;
  const length = x.shape[0];
  const outLength = conv1dLength(length, taps, options);
  if (outLength < 1 || stride < 1 || dilation < 1 || padLeft < 0 || padRight < 0) {
    throw new OptionError(
      `Cannot record ${op}: input length ${length} with ${taps} taps, stride ${stride}, ` +
        `dilation ${dilation} and padding ${padLeft}+${padRight} gives no output`,
    );
  }
  expectShape(op, "x", x, [-1, cin]);
  expectShape(op, "y", y, [outLength, cout]);
  let reflectLength = 0;
  if (padMode === "reflect") {
    const maxPad = Math.max(padLeft, padRight);
    reflectLength = length <= maxPad ? maxPad + 1 : length;
  }
  record(rec, y, x, w, b, {
    m: outLength,
    inLength: length,
    stride,
    dilation,
    padLeft,
    reflectLength,
    phases: 1,
    outStride: 1,
    outStart: 0,
    flags: flags(options),
  });
}

/** Options of {@linkcode convTranspose1d}. */
export interface ConvTranspose1dOptions {
  /** Stride (the upsampling factor). */
  stride: number;
  /** Output samples dropped at the start of the full output (EnCodec causal: 0). */
  trimLeft?: number;
  /** Apply ELU (alpha 1) to the input as it is read. */
  elu?: boolean;
}

/**
 * Records y = convTranspose1d(act(x), w) + b, keeping full-output samples
 * [trimLeft, trimLeft + Lout) where Lout is `y`'s length (EnCodec: Lin · stride).
 *
 * @param rec The recorder.
 * @param y Output (Lout, Cout), f32.
 * @param x Input (Lin, Cin), f32, in another buffer than `y`.
 * @param w Weight (stride, Cout, taps, Cin) from {@linkcode convTransposeWeightLayout}.
 * @param b Optional bias (Cout), same dtype as `w`.
 * @param options Stride, left trim, fused ELU.
 *
 * @example
 * ```ts ignore
 * convTranspose1d(rec, y, x, w, b, { stride: 8, elu: true }); // EnCodec decoder upsampling
 * ```
 */
export function convTranspose1d(
  rec: Recorder,
  y: Tensor,
  x: Tensor,
  w: Tensor,
  b: Tensor | undefined,
  options: ConvTranspose1dOptions,
): void {
  const op = "convTranspose1d";
  const { stride, trimLeft = 0 } = options;
  expectShape(op, "w", w, [stride, -1, -1, -1]);
  const [, cout, taps, cin] = w.shape;
  const [outLength] = y.shape;
  expectShape(op, "x", x, [-1, cin]);
  expectShape(op, "y", y, [-1, cout]);
  const fullLength = (x.shape[0] - 1) * stride + taps * stride;
  if (outLength < 1 || trimLeft < 0 || trimLeft + outLength > fullLength) {
    throw new OptionError(
      `Cannot record ${op}: output samples [${trimLeft}, ${trimLeft + outLength}) are outside ` +
        `the ${fullLength} samples an input of length ${x.shape[0]} gives`,
    );
  }
  record(rec, y, x, w, b, {
    m: Math.floor((outLength - 1 + trimLeft) / stride) + 1,
    inLength: x.shape[0],
    stride: 1,
    dilation: -1,
    padLeft: 0,
    reflectLength: 0,
    phases: stride,
    outStride: stride,
    outStart: -trimLeft,
    flags: flags(options),
  });
}

interface Geometry {
  m: number;
  inLength: number;
  stride: number;
  dilation: number;
  padLeft: number;
  reflectLength: number;
  phases: number;
  outStride: number;
  outStart: number;
  flags: number;
}

function flags(options: { elu?: boolean; accumulate?: boolean }): number {
  return (options.elu ? FLAG_ELU : 0) | (options.accumulate ? FLAG_ACCUMULATE : 0);
}

function record(
  rec: Recorder,
  y: Tensor,
  x: Tensor,
  w: Tensor,
  b: Tensor | undefined,
  g: Geometry,
): void {
  const op = "conv1d";
  const weights = weightType(op, "w", w);
  expectDtype(op, "x", x, "f32");
  expectDtype(op, "y", y, "f32");
  const cout = y.shape[1];
  const [taps, cin] = w.shape.slice(-2);
  if (b) {
    expectShape(op, "b", b, [cout]);
    expectDtype(op, "b", b, weights);
  }
  const bias = b ?? w;
  const narrow = cout <= NARROW;
  const nt = narrow ? 0 : cout <= 16 ? 16 : cout <= 32 ? 32 : 64;
  const params = [
    g.m,
    cout,
    cin,
    taps,
    g.inLength,
    g.stride,
    g.dilation,
    g.padLeft,
    g.reflectLength,
    x.offset,
    y.offset,
    w.offset,
    bias.offset,
    cout * taps * cin,
    g.outStride,
    g.outStart,
    y.shape[0],
    g.flags | (b ? FLAG_BIAS : 0),
  ];
  const grid: [number, number, number] = narrow
    ? [...grid1d(Math.ceil(g.m / 256)), g.phases]
    : [Math.ceil(cout / nt), Math.ceil(g.m / 64), g.phases];
  rec.dispatch(CONV1D, [y, x, w, bias], params, grid, { weights, constants: { NT: nt } });
}

/**
 * Reorders a PyTorch Conv1d weight `[Cout, Cin, k]` into the kernel's `[Cout, k, Cin]`.
 *
 * @example
 * ```ts
 * import { convWeightLayout } from "@valle/core/backends";
 * // Cout 1, Cin 2, k 2: [[a0, a1], [b0, b1]] → [[a0, b0], [a1, b1]]
 * const w = convWeightLayout(new Float32Array([1, 2, 3, 4]), [1, 2, 2]);
 * console.assert(w.join() === "1,3,2,4");
 * ```
 */
export function convWeightLayout(
  w: Float32Array,
  shape: readonly [number, number, number],
): Float32Array {
  const [cout, cin, k] = shape;
  const out = new Float32Array(cout * k * cin);
  for (let o = 0; o < cout; o++) {
    for (let i = 0; i < cin; i++) {
      for (let j = 0; j < k; j++) out[(o * k + j) * cin + i] = w[(o * cin + i) * k + j];
    }
  }
  return out;
}

/**
 * Reorders a PyTorch ConvTranspose1d weight `[Cin, Cout, k]` into the kernel's phase-major
 * `[stride, Cout, taps, Cin]` with taps = ceil(k / stride): entry (r, o, m, i) is
 * W[i, o, r + m·stride], zero past the kernel.
 *
 * @example
 * ```ts
 * import { convTransposeWeightLayout } from "@valle/core/backends";
 * // Cin 1, Cout 1, k 4, stride 2: phase 0 taps W[0], W[2]; phase 1 taps W[1], W[3]
 * const w = convTransposeWeightLayout(new Float32Array([1, 2, 3, 4]), [1, 1, 4], 2);
 * console.assert(w.join() === "1,3,2,4");
 * ```
 */
export function convTransposeWeightLayout(
  w: Float32Array,
  shape: readonly [number, number, number],
  stride: number,
): Float32Array {
  const [cin, cout, k] = shape;
  const taps = Math.ceil(k / stride);
  const out = new Float32Array(stride * cout * taps * cin);
  for (let r = 0; r < stride; r++) {
    for (let o = 0; o < cout; o++) {
      for (let m = 0; m < taps; m++) {
        const tap = r + m * stride;
        if (tap >= k) continue;
        for (let i = 0; i < cin; i++) {
          out[((r * cout + o) * taps + m) * cin + i] = w[(i * cout + o) * k + tap];
        }
      }
    }
  }
  return out;
}
