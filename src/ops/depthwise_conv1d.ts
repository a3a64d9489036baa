/**
 * `depthwiseConv1d`: a depthwise (groups = channels) 1-D convolution with zero padding over
 * time-major activations, as in Vocos's ConvNeXt blocks.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { OptionError } from "../errors.ts";
import type { KernelSpec, Recorder, Tensor } from "../backends/backend.ts";
import { grid1d } from "./_grid.ts";
import { expectDtype, expectShape, weightType } from "./_check.ts";
import type { OpKernel } from "./_kernels.ts";

const DEPTHWISE_CONV1D: KernelSpec = {
  shader: "depthwise_conv1d",
  bindings: ["write", "read", "read", "read"],
  params: ["u32", "u32", "u32", "u32", "u32", "u32"],
};

/** The kernels `depthwiseConv1d` may dispatch, for warming at load (`kernelUses`). */
export const DEPTHWISE_CONV1D_KERNELS: readonly OpKernel[] = [{ spec: DEPTHWISE_CONV1D }];

/**
 * Records y[t, c] = b[c] + Σ_j w[c, j] · x[t + j − pad, c] (zeros outside the input), the
 * output as long as the input ("same" padding: taps = 2·pad + 1).
 *
 * @param rec The recorder.
 * @param y Output (L, C), f32, another buffer than `x`.
 * @param x Input (L, C), f32.
 * @param w Weight (C, taps) (PyTorch's `[C, 1, taps]`), f16 or f32, at element 0 of its buffer.
 * @param b Bias (C), same dtype, at element 0 of its buffer.
 *
 * @example
 * ```ts ignore
 * depthwiseConv1d(rec, h, x, block.dwconvWeight, block.dwconvBias); // taps 7, pad 3
 * ```
 */
export function depthwiseConv1d(
  rec: Recorder,
  y: Tensor,
  x: Tensor,
  w: Tensor,
  b: Tensor,
): void {
  const op = "depthwiseConv1d";
  const [len, ch] = x.shape;
  const taps = w.shape[1];
  expectShape(op, "x", x, [-1, -1]);
  expectShape(op, "y", y, [len, ch]);
  expectShape(op, "w", w, [ch, -1]);
  if (taps % 2 !== 1) {
    throw new OptionError(`Cannot record ${op}: ${taps} taps, expected an odd number`);
  }
  expectShape(op, "b", b, [ch]);
  expectDtype(op, "x", x, "f32");
  expectDtype(op, "y", y, "f32");
  const weights = weightType(op, "w", w);
  expectDtype(op, "b", b, weights);
  const params = [len, ch, taps, (taps - 1) / 2, x.offset, y.offset];
  rec.dispatch(DEPTHWISE_CONV1D, [y, x, w, b], params, grid1d(Math.ceil((len * ch) / 256)), {
    weights,
  });
}
