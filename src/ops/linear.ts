/**
 * `linear`: y = x · wᵀ + b with PyTorch's `[out, in]` weight layout, optionally added to y (a
 * residual connection for free). Picks a GEMV kernel for a few rows (decode steps) and the
 * register-tiled GEMM otherwise (4-wide loads for both when K and the offsets allow; the GEMM's
 * bits are the same either way), each for float (f16/f32) weights or for a quantized layout
 * (`q8_0`, `q4_k`: `src/quant/FORMATS.md`), whose bias stays float. A quantized GEMM runs in
 * integer arithmetic on int8 activations on the CPU, and on WebGPU where WGSL has
 * `packed_4x8_integer_dot_product` (its `_dp4a` kernels, GEMV and GEMM alike, so a decode step
 * rounds as a pass does); other WebGPU devices dequantize the weights and multiply float
 * activations.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { OptionError } from "../errors.ts";
import {
  isQuantized,
  type KernelSpec,
  QUANT_LAYOUTS,
  type QuantDtype,
  type Recorder,
  type Tensor,
} from "../backends/backend.ts";
import type { OpKernel } from "./_kernels.ts";
import { expectDtype, expectShape, weightType } from "./_check.ts";

const BINDINGS = ["write", "read", "read", "read"] as const;
const PARAMS = ["u32", "u32", "u32", "u32", "u32", "u32", "u32", "u32", "u32"] as const;
const GEMV: KernelSpec = { shader: "gemv", bindings: BINDINGS, params: PARAMS };
const GEMV_VEC4: KernelSpec = { shader: "gemv_vec4", bindings: BINDINGS, params: PARAMS };
const GEMM: KernelSpec = { shader: "gemm", bindings: BINDINGS, params: PARAMS };
const GEMM_VEC4: KernelSpec = { shader: "gemm_vec4", bindings: BINDINGS, params: PARAMS };
/**
 * The float GEMMs' workgroup (WGSL `override`s): WX × WY threads of 8 × 8 outputs each, a tile of
 * 8 WY rows × 8 WX columns. 8 × 8 fits every device's defaults (10 KiB of workgroup memory).
 */
const GEMM_THREADS = { WX: 8, WY: 8 } as const;
/** The GEMV and GEMM kernels of each quantized layout. */
const QUANTIZED: Readonly<Record<QuantDtype, { gemv: KernelSpec; gemm: KernelSpec }>> = {
  q8_0: {
    gemv: {
      shader: "gemv_q8_0",
      bindings: BINDINGS,
      params: PARAMS,
      integerDot: "gemv_q8_0_dp4a",
    },
    gemm: {
      shader: "gemm_q8_0",
      bindings: BINDINGS,
      params: PARAMS,
      integerDot: "gemm_q8_0_dp4a",
    },
  },
  q4_k: {
    gemv: {
      shader: "gemv_q4_k",
      bindings: BINDINGS,
      params: PARAMS,
      integerDot: "gemv_q4_k_dp4a",
    },
    gemm: {
      shader: "gemm_q4_k",
      bindings: BINDINGS,
      params: PARAMS,
      integerDot: "gemm_q4_k_dp4a",
    },
  },
};

/** Rows up to which `linear` runs a GEMV kernel; more rows run the tiled GEMM. */
export const GEMV_MAX_ROWS = 4;

/** The kernels `linear` may dispatch, for warming at load (`kernelUses`). */
export const LINEAR_KERNELS: readonly OpKernel[] = [
  { spec: GEMV },
  { spec: GEMV_VEC4 },
  { spec: GEMM, constants: GEMM_THREADS },
  { spec: GEMM_VEC4, constants: GEMM_THREADS },
  ...(Object.keys(QUANTIZED) as QuantDtype[]).flatMap((q) => [
    { spec: QUANTIZED[q].gemv, quant: [q] },
    { spec: QUANTIZED[q].gemm, quant: [q] },
  ]),
];

/** Options of {@linkcode linear}. */
export interface LinearOptions {
  /** Add the product to what `y` holds (y += x · wᵀ + b), e.g. a residual stream. */
  accumulate?: boolean;
}

/**
 * Records y = x · wᵀ (+ b), or y += x · wᵀ (+ b) with `accumulate`.
 *
 * @param rec The recorder.
 * @param y Output (M, N), f32.
 * @param x Input (M, K), f32.
 * @param w Weight (N, K): f16 or f32; or `q8_0` / `q4_k` (K a multiple of 64 / 256, x's offset
 * a multiple of 4).
 * @param b Optional bias (N): same dtype as `w`, f16 or f32 for a quantized `w`.
 * @param options `accumulate` into `y`.
 *
 * @example
 * ```ts ignore
 * linear(rec, q, h, weights.qProj);
 * linear(rec, x, att, weights.oProj, undefined, { accumulate: true }); // x += att · oᵀ
 * ```
 */
export function linear(
  rec: Recorder,
  y: Tensor,
  x: Tensor,
  w: Tensor,
  b?: Tensor,
  options: LinearOptions = {},
): void {
  const op = "linear";
  const [n, k] = w.shape;
  const m = x.shape[0];
  const quantized = isQuantized(w.dtype);
  const weights = quantized ? undefined : weightType(op, "w", w);
  expectShape(op, "w", w, [-1, -1]);
  expectShape(op, "x", x, [-1, k]);
  expectShape(op, "y", y, [m, n]);
  expectDtype(op, "x", x, "f32");
  expectDtype(op, "y", y, "f32");
  if (b) {
    expectShape(op, "b", b, [n]);
    if (weights) expectDtype(op, "b", b, weights);
  }
  const bias = b ?? w;
  const params = [
    m,
    n,
    k,
    x.offset,
    y.offset,
    w.offset,
    bias.offset,
    b ? 1 : 0,
    options.accumulate ? 1 : 0,
  ];
  if (isQuantized(w.dtype)) {
    const { weights: block } = QUANT_LAYOUTS[w.dtype];
    if (k % block !== 0 || x.offset % 4 !== 0) {
      throw new OptionError(
        `Cannot record ${op}: a ${w.dtype} weight needs K % ${block} == 0 and x at a 4-aligned ` +
          `offset; got K ${k}, offset ${x.offset}`,
      );
    }
    // The bias keeps a float type, which picks the kernel variant.
    const variant = b ? { weights: weightType(op, "b", b) } : undefined;
    const kernels = QUANTIZED[w.dtype];
    if (m > GEMV_MAX_ROWS) {
      rec.dispatch(kernels.gemm, [y, x, w, bias], params, [
        Math.ceil(n / 64),
        Math.ceil(m / 64),
      ], variant);
    } else {
      rec.dispatch(kernels.gemv, [y, x, w, bias], params, [Math.ceil(n / 8), m], variant);
    }
    return;
  }
  const vec4 = k % 4 === 0 && x.offset % 4 === 0 && w.offset % 4 === 0;
  if (m > GEMV_MAX_ROWS) {
    const { WX, WY } = GEMM_THREADS;
    rec.dispatch(
      vec4 ? GEMM_VEC4 : GEMM,
      [y, x, w, bias],
      params,
      [Math.ceil(n / (8 * WX)), Math.ceil(m / (8 * WY))],
      { weights, constants: GEMM_THREADS },
    );
    return;
  }
  rec.dispatch(
    vec4 ? GEMV_VEC4 : GEMV,
    [y, x, w, bias],
    params,
    [Math.ceil(n / (vec4 ? 8 : 4)), m],
    { weights },
  );
}
