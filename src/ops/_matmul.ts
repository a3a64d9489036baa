/**
 * The general GEMM kernel (`shaders/matmul.wgsl`, `wasm/matmul.c`) that `matmul` and
 * `linearBackward` record: c (+)= alpha · op(a) · op(b), with b f32, f16 or a quantized weight.
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { KernelSpec, Recorder, Tensor } from "../backends/backend.ts";
import type { OpKernel } from "./_kernels.ts";

const MATMUL: KernelSpec = {
  shader: "matmul",
  bindings: ["write", "read", "read"],
  params: ["u32", "u32", "u32", "u32", "u32", "u32", "u32", "u32", "u32", "f32", "u32"],
};

/** The kernels `matmul` (and `linearBackward`) may dispatch, for warming at load (`kernelUses`). */
export const MATMUL_KERNELS: readonly OpKernel[] = [{ spec: MATMUL }];

/** The kernel's codes for the type of b. */
const B_TYPES = { f32: 0, f16: 1, q8_0: 2, q4_k: 3 } as const;

/** One GEMM: sizes and transposes of the operands, already checked by the op. */
export interface MatmulCall {
  /** Rows of c and op(a). */
  m: number;
  /** Columns of c and op(b). */
  n: number;
  /** The summed dimension. */
  k: number;
  /** a is stored (K, M). */
  transA: boolean;
  /** b is stored (N, K) (float b only). */
  transB: boolean;
  /** The factor of the product. */
  alpha: number;
  /** Add to c. */
  accumulate: boolean;
}

/** Records c (+)= alpha · op(a) · op(b) (nothing when c is empty). */
export function recordMatmul(
  rec: Recorder,
  c: Tensor,
  a: Tensor,
  b: Tensor,
  call: MatmulCall,
): void {
  const { m, n, k } = call;
  if (m === 0 || n === 0) return;
  const bType = B_TYPES[b.dtype as keyof typeof B_TYPES];
  rec.dispatch(MATMUL, [c, a, b], [
    m,
    n,
    k,
    a.offset,
    b.offset,
    c.offset,
    call.transA ? 1 : 0,
    call.transB ? 1 : 0,
    bType,
    call.alpha,
    call.accumulate ? 1 : 0,
  ], [Math.ceil(n / 64), Math.ceil(m / 64)]);
}
