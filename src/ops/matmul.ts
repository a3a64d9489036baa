/**
 * `matmul`: the general f32 GEMM of training, c (+)= alpha · op(a) · op(b) with either operand
 * transposed: the LoRA products t = x · Aᵀ and y += s · t · Bᵀ, and their gradients dB = s · dYᵀ · t,
 * dA = dtᵀ · x, dx += dt · A. Register-tiled on WebGPU, packed panels and SIMD tiles on threads on
 * the CPU; every output's sum runs over k in order whatever the number of rows, so rows computed in
 * chunks give the same bits as rows computed together.
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { Recorder, Tensor } from "../backends/backend.ts";
import { OptionError } from "../errors.ts";
import { expectDtype, expectShape } from "./_check.ts";
import { recordMatmul } from "./_matmul.ts";

export { MATMUL_KERNELS } from "./_matmul.ts";

/** Options of {@linkcode matmul}. */
export interface MatmulOptions {
  /** a is stored (K, M): op(a) = aᵀ. */
  transA?: boolean;
  /** b is stored (N, K): op(b) = bᵀ. */
  transB?: boolean;
  /** The factor of the product (default 1). */
  alpha?: number;
  /** Add the product to what c holds. */
  accumulate?: boolean;
}

/**
 * Records c (+)= alpha · op(a) · op(b): op(a) (M, K), op(b) (K, N), c (M, N); all f32 2-D views
 * (offsets honoured; a view's rows are contiguous with row stride = its shape[1]).
 *
 * @param rec The recorder.
 * @param c Output (M, N), f32 (a different buffer from a and b).
 * @param a (M, K), or (K, M) with `transA`, f32.
 * @param b (K, N), or (N, K) with `transB`, f32.
 * @param options Transposes, alpha, accumulation.
 * @throws {OptionError} Shapes that do not chain, or a dtype other than f32.
 *
 * @example
 * ```ts ignore
 * matmul(rec, t, x, loraA, { transB: true }); // t = x · Aᵀ
 * matmul(rec, dB, dY, t, { transA: true, alpha: scale, accumulate: true }); // dB += s · dYᵀ · t
 * ```
 */
export function matmul(
  rec: Recorder,
  c: Tensor,
  a: Tensor,
  b: Tensor,
  options: MatmulOptions = {},
): void {
  const op = "matmul";
  const { transA = false, transB = false, alpha = 1, accumulate = false } = options;
  for (const [name, t] of [["c", c], ["a", a], ["b", b]] as const) {
    expectShape(op, name, t, [-1, -1]);
    expectDtype(op, name, t, "f32");
  }
  const [m, k] = transA ? [a.shape[1], a.shape[0]] : a.shape;
  const [kb, n] = transB ? [b.shape[1], b.shape[0]] : b.shape;
  if (kb !== k) {
    throw new OptionError(
      `Cannot record ${op}: op(a) of a [${a.shape}] has ${k} columns, op(b) of b [${b.shape}] ` +
        `has ${kb} rows`,
    );
  }
  expectShape(op, "c", c, [m, n]);
  recordMatmul(rec, c, a, b, { m, n, k, transA, transB, alpha, accumulate });
}
