/**
 * `linearBackward`: the gradient of `linear` (y = x · wᵀ) with respect to its input, dx = dy · w,
 * through a frozen weight in any of `linear`'s types: f16 or f32, or `q8_0` / `q4_k` blocks
 * (`src/quant/FORMATS.md`), dequantized into the GEMM's tile as they are loaded (the same tiled
 * kernel as `matmul`, so the same row-count-independent rounding).
 *
 * This module is browser compatible.
 *
 * @module
 */

import { isQuantized, QUANT_LAYOUTS, type Recorder, type Tensor } from "../backends/backend.ts";
import { OptionError } from "../errors.ts";
import { expectDtype, expectShape } from "./_check.ts";
import type { OpKernel } from "./_kernels.ts";
import { MATMUL_KERNELS, recordMatmul } from "./_matmul.ts";

/** The kernels `linearBackward` may dispatch, for warming at load (`kernelUses`). */
export const LINEAR_BACKWARD_KERNELS: readonly OpKernel[] = MATMUL_KERNELS;

/**
 * Records dx (+)= dy · w: dy (M, N) f32, w (N, K) as `linear` takes it (f16 or f32, or q8_0 / q4_k
 * blocks, see src/quant/FORMATS.md), dx (M, K) f32.
 *
 * @param rec The recorder.
 * @param dx The input gradient (M, K), f32 (a different buffer from dy and w).
 * @param dy The output gradient (M, N), f32.
 * @param w The weight (N, K): f16, f32, q8_0 (K % 64 == 0) or q4_k (K % 256 == 0).
 * @param options `accumulate` into dx (dx += dy · w), e.g. when x feeds several layers.
 * @throws {OptionError} Shapes that do not match, or an unsupported dtype.
 *
 * @example
 * ```ts ignore
 * linearBackward(rec, dh, dq, weights.qProj);
 * linearBackward(rec, dh, dk, weights.kProj, { accumulate: true });
 * ```
 */
export function linearBackward(
  rec: Recorder,
  dx: Tensor,
  dy: Tensor,
  w: Tensor,
  options: { accumulate?: boolean } = {},
): void {
  const op = "linearBackward";
  expectShape(op, "w", w, [-1, -1]);
  expectDtype(op, "w", w, "f16", "f32", "q8_0", "q4_k");
  const [n, k] = w.shape;
  const m = dy.shape[0];
  expectShape(op, "dy", dy, [-1, n]);
  expectShape(op, "dx", dx, [m, k]);
  expectDtype(op, "dy", dy, "f32");
  expectDtype(op, "dx", dx, "f32");
  if (isQuantized(w.dtype) && k % QUANT_LAYOUTS[w.dtype].weights !== 0) {
    throw new OptionError(
      `Cannot record ${op}: a ${w.dtype} weight needs K % ${
        QUANT_LAYOUTS[w.dtype].weights
      } == 0, got w [${w.shape}]`,
    );
  }
  recordMatmul(rec, dx, dy, w, {
    m,
    n: k,
    k: n,
    transA: false,
    transB: false,
    alpha: 1,
    accumulate: options.accumulate ?? false,
  });
}
