/**
 * `rmsNormBackward`: the input gradient of `rmsNorm` (./norm.ts), its weight frozen.
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { KernelSpec, Recorder, Tensor } from "../backends/backend.ts";
import { expectDtype, expectSeparate, expectShape, weightType } from "./_check.ts";
import type { OpKernel } from "./_kernels.ts";

const RMS_NORM_BACKWARD: KernelSpec = {
  shader: "rms_norm_backward",
  bindings: ["write", "read", "read", "read"],
  params: ["u32", "u32", "f32", "u32", "u32", "u32", "u32", "u32"],
};

/** The kernels `rmsNormBackward` may dispatch, for warming (`kernelUses`). */
export const NORM_BACKWARD_KERNELS: readonly OpKernel[] = [{ spec: RMS_NORM_BACKWARD }];

/** Options of {@linkcode rmsNormBackward}. */
export interface RmsNormBackwardOptions {
  /** Add the gradient to what `dx` holds (dx += ∂L/∂x), e.g. the residual stream's gradient. */
  accumulate?: boolean;
}

/**
 * Records dx = ∂L/∂x (or dx += ∂L/∂x) of y = x / sqrt(mean(x²) + eps) · w per row, given
 * dy = ∂L/∂y: with r = 1 / sqrt(mean(x²) + eps) and g = dy ⊙ w,
 * dx = r · g − x · r³ · (g · x) / D.
 *
 * @param rec The recorder.
 * @param dx Output (R, D), f32, in a buffer of its own.
 * @param dy Gradient of the output (R, D), f32.
 * @param x The forward input (R, D), f32.
 * @param w The forward weight (D), f16 or f32 (frozen: no gradient).
 * @param eps As in the forward (LLaMA: 1e-6).
 * @param options `accumulate` into `dx`.
 *
 * @example
 * ```ts ignore
 * rmsNormBackward(rec, dResidual, dh, x, weights.inputLayernorm, 1e-6, { accumulate: true });
 * ```
 */
export function rmsNormBackward(
  rec: Recorder,
  dx: Tensor,
  dy: Tensor,
  x: Tensor,
  w: Tensor,
  eps: number,
  options: RmsNormBackwardOptions = {},
): void {
  const op = "rmsNormBackward";
  expectShape(op, "x", x, [-1, -1]);
  const [rows, d] = x.shape;
  expectShape(op, "dy", dy, [rows, d]);
  expectShape(op, "dx", dx, [rows, d]);
  expectShape(op, "w", w, [d]);
  for (const [name, t] of [["x", x], ["dy", dy], ["dx", dx]] as const) {
    expectDtype(op, name, t, "f32");
  }
  expectSeparate(op, [["dx", dx]], [["dy", dy], ["x", x], ["w", w]]);
  const params = [
    rows,
    d,
    eps,
    options.accumulate ? 1 : 0,
    dx.offset,
    dy.offset,
    x.offset,
    w.offset,
  ];
  rec.dispatch(RMS_NORM_BACKWARD, [dx, dy, x, w], params, [rows], {
    weights: weightType(op, "w", w),
  });
}
