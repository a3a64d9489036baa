/**
 * `layerNorm`: PyTorch's LayerNorm over the last dimension, in f32, with an affine weight and
 * bias; Vocos's AdaLayerNorm is the same with the weight and bias taken from one row of its
 * per-bandwidth scale and shift tables (pass `rows(table, bandwidthId, 1)` views).
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { KernelSpec, Recorder, Tensor } from "../backends/backend.ts";
import { numel } from "../backends/tensor.ts";
import { expectDtype, expectShape, weightType } from "./_check.ts";
import type { OpKernel } from "./_kernels.ts";

const LAYER_NORM: KernelSpec = {
  shader: "layer_norm",
  bindings: ["write", "read", "read", "read"],
  params: ["u32", "u32", "f32", "u32", "u32", "u32", "u32"],
};

/** The kernels `layerNorm` may dispatch, for warming at load (`kernelUses`). */
export const LAYER_NORM_KERNELS: readonly OpKernel[] = [{ spec: LAYER_NORM }];

/**
 * Records y = (x − mean) / sqrt(var + eps) · w + b per row (biased variance).
 *
 * @param rec The recorder.
 * @param y Output (R, D), f32, another buffer than `x`.
 * @param x Input (R, D), f32.
 * @param w Weight: D elements (any shape, e.g. a `[1, D]` row view of a table), f16 or f32.
 * @param b Bias: D elements, same dtype as `w`.
 * @param eps Added to the variance (Vocos: 1e-6).
 *
 * @example
 * ```ts ignore
 * layerNorm(rec, h, x, rows(scale, bandwidthId, 1), rows(shift, bandwidthId, 1), 1e-6);
 * ```
 */
export function layerNorm(
  rec: Recorder,
  y: Tensor,
  x: Tensor,
  w: Tensor,
  b: Tensor,
  eps: number,
): void {
  const op = "layerNorm";
  const [rows, d] = x.shape;
  expectShape(op, "x", x, [-1, -1]);
  expectShape(op, "y", y, [rows, d]);
  expectDtype(op, "x", x, "f32");
  expectDtype(op, "y", y, "f32");
  const weights = weightType(op, "w", w);
  expectDtype(op, "b", b, weights);
  for (const [name, t] of [["w", w], ["b", b]] as const) {
    if (numel(t.shape) !== d) expectShape(op, name, t, [d]);
  }
  const params = [rows, d, eps, x.offset, y.offset, w.offset, b.offset];
  rec.dispatch(LAYER_NORM, [y, x, w, b], params, [rows], { weights });
}
