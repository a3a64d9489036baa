/**
 * `rmsNorm`: LLaMA's RMSNorm in f32, y = x / sqrt(mean(x²) + eps) · w, per row.
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { KernelSpec, Recorder, Tensor } from "../backends/backend.ts";
import { expectDtype, expectShape, weightType } from "./_check.ts";
import type { OpKernel } from "./_kernels.ts";

const RMS_NORM: KernelSpec = {
  shader: "rms_norm",
  bindings: ["write", "read", "read"],
  params: ["u32", "u32", "f32", "u32", "u32"],
};

/** The kernels `rmsNorm` may dispatch, for warming at load (`kernelUses`). */
export const NORM_KERNELS: readonly OpKernel[] = [{ spec: RMS_NORM }];

/**
 * Records y = RMSNorm(x) · w over the last dimension.
 *
 * @param rec The recorder.
 * @param y Output (R, D), f32 (a different buffer from `x`).
 * @param x Input (R, D), f32.
 * @param w Weight (D), f16 or f32, starting at element 0 of its buffer.
 * @param eps Added to the mean square (LLaMA: 1e-6).
 *
 * @example
 * ```ts ignore
 * rmsNorm(rec, h, x, weights.inputLayernorm, 1e-6);
 * ```
 */
export function rmsNorm(
  rec: Recorder,
  y: Tensor,
  x: Tensor,
  w: Tensor,
  eps: number,
): void {
  const op = "rmsNorm";
  const [rows, d] = x.shape;
  expectShape(op, "x", x, [-1, -1]);
  expectShape(op, "y", y, [rows, d]);
  expectShape(op, "w", w, [d]);
  expectDtype(op, "x", x, "f32");
  expectDtype(op, "y", y, "f32");
  rec.dispatch(RMS_NORM, [y, x, w], [rows, d, eps, x.offset, y.offset], [rows], {
    weights: weightType(op, "w", w),
  });
}
