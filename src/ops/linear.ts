/**
 * `linear`: y = x · wᵀ + b with PyTorch's `[out, in]` weight layout. Picks the GEMV kernel for a
 * few rows (decode steps) and the tiled GEMM otherwise.
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { KernelSpec } from "../gpu/kernels.ts";
import type { Recorder } from "../gpu/recorder.ts";
import type { GpuTensor } from "../gpu/tensor.ts";
import { expectDtype, expectShape, weightType } from "./_check.ts";

const BINDINGS = ["write", "read", "read", "read"] as const;
const PARAMS = ["u32", "u32", "u32", "u32", "u32", "u32", "u32", "u32"] as const;
const GEMV: KernelSpec = { shader: "gemv", bindings: BINDINGS, params: PARAMS };
const GEMM: KernelSpec = { shader: "gemm", bindings: BINDINGS, params: PARAMS };

/** Rows up to which the GEMV kernel beats the tiled GEMM. */
const GEMV_MAX_ROWS = 4;

/**
 * Records y = x · wᵀ (+ b).
 *
 * @param rec The recorder.
 * @param y Output (M, N), f32.
 * @param x Input (M, K), f32.
 * @param w Weight (N, K), f16 or f32.
 * @param b Optional bias (N), same dtype as `w`.
 *
 * @example
 * ```ts ignore
 * linear(rec, q, h, weights.qProj);
 * ```
 */
export function linear(
  rec: Recorder,
  y: GpuTensor,
  x: GpuTensor,
  w: GpuTensor,
  b?: GpuTensor,
): void {
  const op = "linear";
  const [n, k] = w.shape;
  const m = x.shape[0];
  const weights = weightType(op, "w", w);
  expectShape(op, "w", w, [-1, -1]);
  expectShape(op, "x", x, [-1, k]);
  expectShape(op, "y", y, [m, n]);
  expectDtype(op, "x", x, "f32");
  expectDtype(op, "y", y, "f32");
  if (b) {
    expectShape(op, "b", b, [n]);
    expectDtype(op, "b", b, weights);
  }
  const gemv = m <= GEMV_MAX_ROWS;
  const kernel = rec.gpu.kernels.get(gemv ? GEMV : GEMM, { weights });
  const bias = b ?? w;
  const params = [m, n, k, x.offset, y.offset, w.offset, bias.offset, b ? 1 : 0];
  const grid: [number, number] = gemv
    ? [Math.ceil(n / 4), m]
    : [Math.ceil(n / 64), Math.ceil(m / 64)];
  rec.dispatch(kernel, [y, x, w, bias], params, grid);
}
