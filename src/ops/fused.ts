/**
 * Fused decode-step ops: each replaces a chain of the plain ops with one dispatch for the few
 * rows of a decode step (the AR loop is bound by dispatch count, not arithmetic):
 *
 * - {@linkcode normLinear}: RMSNorm + linear (+ residual add), e.g. the final norm and a head;
 * - {@linkcode qkvRope}: RMSNorm + Q/K/V projections + RoPE + KV-cache append;
 * - {@linkcode gateUpGelu}: RMSNorm + gate/up projections + exact GELU gate.
 *
 * They need the model width to be a multiple of 4 (4-wide loads) and, for float projections, the
 * weights stacked in one buffer ([3d, d] for Q/K/V, [2F, d] for gate/up): create it once and
 * write each part into its rows (`writeTensor(backend, rows(stacked, d, d), k)`). Quantized
 * projections (`q8_0`, `q4_k`, each in its own tensor) have their own kernels, which compute on
 * the CPU backend exactly what the op chain computes, and on WebGPU with
 * `packed_4x8_integer_dot_product` the same up to summation order (int8 activations: their
 * `integerDot` kernels): {@linkcode normLinear} takes a quantized weight, {@linkcode gateUpGelu}
 * the two projections, and {@linkcode qkRope} Q and K (V is a `normLinear` into the cache: one
 * kernel for all three would bind more storage buffers than WebGPU guarantees).
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
  type Recorder,
  type Tensor,
} from "../backends/backend.ts";
import type { OpKernel } from "./_kernels.ts";
import { expectDtype, expectShape, weightType } from "./_check.ts";

const NORM_LINEAR: KernelSpec = {
  shader: "norm_linear",
  bindings: ["write", "read", "read", "read", "read"],
  params: ["u32", "u32", "u32", "u32", "u32", "u32", "u32", "u32", "u32", "f32"],
};
const QKV_ROPE: KernelSpec = {
  shader: "qkv_rope",
  bindings: ["write", "write", "write", "read", "read", "read", "read", "read"],
  params: ["u32", "u32", "u32", "u32", "u32", "u32", "u32", "u32", "u32", "u32", "f32"],
};
const GATE_UP_GELU: KernelSpec = {
  shader: "gate_up_gelu",
  bindings: ["write", "read", "read", "read"],
  params: ["u32", "u32", "u32", "u32", "u32", "f32"],
};
const NORM_LINEAR_Q: KernelSpec = {
  shader: "norm_linear_q",
  bindings: ["write", "read", "read", "read", "read"],
  params: ["u32", "u32", "u32", "u32", "u32", "u32", "u32", "u32", "u32", "f32", "u32"],
  integerDot: "norm_linear_q_dp4a",
};
const QK_ROPE_Q: KernelSpec = {
  shader: "qk_rope_q",
  bindings: ["write", "write", "read", "read", "read", "read", "read", "read"],
  params: ["u32", "u32", "u32", "u32", "u32", "u32", "u32", "u32", "u32", "f32", "u32"],
  integerDot: "qk_rope_q_dp4a",
};
const GATE_UP_GELU_Q: KernelSpec = {
  shader: "gate_up_gelu_q",
  bindings: ["write", "read", "read", "read", "read"],
  params: ["u32", "u32", "u32", "u32", "u32", "f32", "u32"],
  integerDot: "gate_up_gelu_q_dp4a",
};

/** The kernels the fused decode ops may dispatch, for warming at load (`kernelUses`). */
export const FUSED_KERNELS: readonly OpKernel[] = [
  { spec: NORM_LINEAR },
  { spec: QKV_ROPE },
  { spec: GATE_UP_GELU },
  ...[NORM_LINEAR_Q, QK_ROPE_Q, GATE_UP_GELU_Q].map((spec) => ({
    spec,
    quant: ["q8_0", "q4_k"] as const,
  })),
];

/**
 * The layout code of a quantized projection of rows of `k` (0 q8_0, 1 q4_k; the kernels' layout
 * parameters), checked to start at its row 0 (`atStart`) and to hold whole blocks.
 */
function layoutCode(op: string, name: string, w: Tensor, k: number, atStart: boolean): number {
  if (!isQuantized(w.dtype)) {
    throw new OptionError(`Cannot record ${op}: ${name} is ${w.dtype}, expected q8_0 or q4_k`);
  }
  const block = QUANT_LAYOUTS[w.dtype].weights;
  if (k % block !== 0 || (atStart && w.offset !== 0)) {
    throw new OptionError(
      `Cannot record ${op}: ${name} (${w.dtype}) needs rows of whole ${block}-blocks` +
        (atStart ? " starting at word 0" : "") + `; got rows of ${k}, offset ${w.offset}`,
    );
  }
  return w.dtype === "q4_k" ? 1 : 0;
}

/** Decode steps are a few rows; beyond this the plain GEMM path is the right one. */
const MAX_ROWS = 4;

function checkRows(op: string, x: Tensor, d: number): number {
  expectShape(op, "x", x, [-1, d]);
  expectDtype(op, "x", x, "f32");
  const m = x.shape[0];
  if (d % 4 !== 0 || x.offset % 4 !== 0 || m > MAX_ROWS) {
    throw new OptionError(
      `Cannot record ${op}: needs width % 4 == 0, a 4-aligned row offset and at most ` +
        `${MAX_ROWS} rows; got width ${d}, offset ${x.offset}, ${m} rows`,
    );
  }
  return m;
}

/** Options of {@linkcode normLinear}. */
export interface NormLinearOptions {
  /** RMSNorm epsilon. */
  eps: number;
  /** Bias (N), same dtype as the weight (as the norm weight, for a quantized weight). */
  bias?: Tensor;
  /** Add to what `y` holds. */
  accumulate?: boolean;
}

/**
 * Records y = (RMSNorm(x) · nw) · wᵀ (+ b), or y += … with `accumulate`, for decode rows.
 *
 * @param rec The recorder.
 * @param y Output (M, N), f32.
 * @param x Input (M, K) f32, M ≤ 4, K % 4 == 0.
 * @param nw The norm weight (K).
 * @param w The weight (N, K): the dtype of `nw`, or quantized (`q8_0` K % 64 == 0, `q4_k`
 * K % 256 == 0; the bias then has the dtype of `nw`).
 * @param options Epsilon, bias, accumulate.
 *
 * @example
 * ```ts ignore
 * normLinear(rec, logits, x, weights.norm, weights.heads[0], { eps: 1e-6, bias });
 * ```
 */
export function normLinear(
  rec: Recorder,
  y: Tensor,
  x: Tensor,
  nw: Tensor,
  w: Tensor,
  options: NormLinearOptions,
): void {
  const op = "normLinear";
  const [n, k] = w.shape;
  const m = checkRows(op, x, k);
  const quantized = isQuantized(w.dtype);
  // A quantized weight's bias and norm weight are float: their type picks the variant.
  const weights = weightType(op, quantized ? "nw" : "w", quantized ? nw : w);
  expectShape(op, "w", w, [-1, -1]);
  expectShape(op, "nw", nw, [k]);
  expectDtype(op, "nw", nw, weights);
  expectShape(op, "y", y, [m, n]);
  expectDtype(op, "y", y, "f32");
  const b = options.bias;
  if (b) {
    expectShape(op, "bias", b, [n]);
    expectDtype(op, "bias", b, weights);
  }
  if ((!quantized && w.offset % 4 !== 0) || nw.offset !== 0) {
    throw new OptionError(`Cannot record ${op}: weights must start 4-aligned (norm at 0)`);
  }
  const bias = b ?? (quantized ? nw : w);
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
    options.eps,
  ];
  if (quantized) {
    const layout = layoutCode(op, "w", w, k, false);
    rec.dispatch(NORM_LINEAR_Q, [y, x, nw, w, bias], [...params, layout], [
      Math.ceil(n / 8),
      m,
    ], { weights });
    return;
  }
  rec.dispatch(NORM_LINEAR, [y, x, nw, w, bias], params, [Math.ceil(n / 8), m], { weights });
}

/** Where {@linkcode qkvRope} reads positions and writes keys and values. */
export interface QkvRopeOptions {
  /** Heads; `headDim` = d / heads must be even. */
  heads: number;
  /** RMSNorm epsilon. */
  eps: number;
  /** Position id of each row (M) u32. */
  positions: Tensor;
  /** The rotary table from `createRopeTable`. */
  table: Tensor;
  /** Cache row that row 0 of `x` is written to. */
  kvRow: number;
}

/**
 * Records q = RoPE(h · Wqᵀ), K/V cache rows = (RoPE(h · Wkᵀ), h · Wvᵀ) with h = RMSNorm(x) · nw,
 * for decode rows, in one dispatch.
 *
 * @param rec The recorder.
 * @param q Output queries (M, d), f32.
 * @param kCache Key cache (capacity, d), f32; rows `kvRow …` are written.
 * @param vCache Value cache (capacity, d), f32.
 * @param x Residual rows (M, d), M ≤ 4.
 * @param nw The attention norm weight (d).
 * @param wqkv Q, K and V projections stacked (3d, d), same dtype as `nw`.
 * @param options Heads, epsilon, positions, rotary table and cache row.
 *
 * @example
 * ```ts ignore
 * qkvRope(rec, q, kCache, vCache, x, layer.inputLayernorm, layer.qkv, {
 *   heads: 16, eps: 1e-6, positions, table, kvRow: step,
 * });
 * ```
 */
export function qkvRope(
  rec: Recorder,
  q: Tensor,
  kCache: Tensor,
  vCache: Tensor,
  x: Tensor,
  nw: Tensor,
  wqkv: Tensor,
  options: QkvRopeOptions,
): void {
  const op = "qkvRope";
  const d = nw.shape[0];
  const m = checkRows(op, x, d);
  const weights = weightType(op, "wqkv", wqkv);
  const { heads, positions, table, kvRow } = options;
  const headDim = d / heads;
  expectShape(op, "wqkv", wqkv, [3 * d, d]);
  expectDtype(op, "nw", nw, weights);
  expectShape(op, "q", q, [m, d]);
  expectShape(op, "positions", positions, [m]);
  expectShape(op, "table", table, [-1, headDim / 2, 2]);
  expectDtype(op, "positions", positions, "u32");
  for (const [name, t] of [["q", q], ["kCache", kCache], ["vCache", vCache]] as const) {
    expectDtype(op, name, t, "f32");
    expectShape(op, name, t, [-1, d]);
  }
  if (
    !Number.isInteger(headDim) || headDim % 2 !== 0 || kvRow + m > kCache.shape[0] ||
    kvRow + m > vCache.shape[0] || wqkv.offset !== 0 || nw.offset !== 0
  ) {
    throw new OptionError(
      `Cannot record ${op}: ${heads} heads of d ${d}, cache rows ${kvRow}..${kvRow + m} of ` +
        `${kCache.shape[0]}, weights must start at element 0`,
    );
  }
  const params = [
    m,
    d,
    heads,
    headDim,
    x.offset,
    q.offset,
    kCache.offset,
    vCache.offset,
    kvRow,
    positions.offset,
    options.eps,
  ];
  const blocks = Math.ceil(headDim / 2 / 4);
  rec.dispatch(QKV_ROPE, [q, kCache, vCache, x, nw, wqkv, positions, table], params, [
    3 * heads * blocks,
    m,
  ], { weights });
}

/**
 * Records out = gelu(h · Wgateᵀ) ⊙ (h · Wupᵀ) with h = RMSNorm(x) · nw, for decode rows, in one
 * dispatch.
 *
 * @param rec The recorder.
 * @param out Output (M, F), f32.
 * @param x Residual rows (M, d), M ≤ 4.
 * @param nw The MLP norm weight (d).
 * @param wGateUp Gate rows then up rows (2F, d), same dtype as `nw`; or the two projections
 * quantized, [gate (F, d), up (F, d)], each `q8_0` (d % 64 == 0) or `q4_k` (d % 256 == 0).
 * @param eps RMSNorm epsilon.
 *
 * @example
 * ```ts ignore
 * gateUpGelu(rec, g, x, layer.postAttentionLayernorm, layer.gateUp, 1e-6);
 * gateUpGelu(rec, g, x, layer.postAttentionLayernorm, [layer.gateProj, layer.upProj], 1e-6);
 * ```
 */
export function gateUpGelu(
  rec: Recorder,
  out: Tensor,
  x: Tensor,
  nw: Tensor,
  wGateUp: Tensor | readonly [gate: Tensor, up: Tensor],
  eps: number,
): void {
  const op = "gateUpGelu";
  const d = nw.shape[0];
  const m = checkRows(op, x, d);
  if (!("buffer" in wGateUp)) {
    const [gate, up] = wGateUp;
    const weights = weightType(op, "nw", nw);
    const f = gate.shape[0];
    expectShape(op, "gate", gate, [f, d]);
    expectShape(op, "up", up, [f, d]);
    expectShape(op, "out", out, [m, f]);
    expectDtype(op, "out", out, "f32");
    if (nw.offset !== 0) {
      throw new OptionError(`Cannot record ${op}: the norm weight must start at 0`);
    }
    const layouts = layoutCode(op, "gate", gate, d, true) |
      (layoutCode(op, "up", up, d, true) << 1);
    rec.dispatch(
      GATE_UP_GELU_Q,
      [out, x, nw, gate, up],
      [m, f, d, x.offset, out.offset, eps, layouts],
      [Math.ceil(f / 4), m],
      { weights },
    );
    return;
  }
  const weights = weightType(op, "wGateUp", wGateUp);
  const f = wGateUp.shape[0] / 2;
  expectShape(op, "wGateUp", wGateUp, [2 * f, d]);
  expectDtype(op, "nw", nw, weights);
  expectShape(op, "out", out, [m, f]);
  expectDtype(op, "out", out, "f32");
  if (!Number.isInteger(f) || wGateUp.offset !== 0 || nw.offset !== 0) {
    throw new OptionError(`Cannot record ${op}: stacked weight of ${wGateUp.shape[0]} rows at 0`);
  }
  rec.dispatch(GATE_UP_GELU, [out, x, nw, wGateUp], [m, f, d, x.offset, out.offset, eps], [
    Math.ceil(f / 4),
    m,
  ], { weights });
}

/**
 * Records q = RoPE(h · Wqᵀ) and the K cache rows RoPE(h · Wkᵀ), h = RMSNorm(x) · nw, for decode
 * rows over quantized Q and K projections, in one dispatch (V: {@linkcode normLinear} into the V
 * cache rows).
 *
 * @param rec The recorder.
 * @param q Output queries (M, d), f32.
 * @param kCache Key cache (capacity, d), f32; rows `kvRow …` are written.
 * @param x Residual rows (M, d), M ≤ 4.
 * @param nw The attention norm weight (d), f16 or f32.
 * @param wq The Q projection (d, d), `q8_0` (d % 64 == 0) or `q4_k` (d % 256 == 0).
 * @param wk The K projection (d, d), likewise.
 * @param options Heads, epsilon, positions, rotary table and cache row.
 *
 * @example
 * ```ts ignore
 * qkRope(rec, q, kCache, x, layer.inputLayernorm, layer.qProj, layer.kProj, {
 *   heads: 16, eps: 1e-6, positions, table, kvRow: step,
 * });
 * normLinear(rec, rows(vCache, step, 1), x, layer.inputLayernorm, layer.vProj, { eps: 1e-6 });
 * ```
 */
export function qkRope(
  rec: Recorder,
  q: Tensor,
  kCache: Tensor,
  x: Tensor,
  nw: Tensor,
  wq: Tensor,
  wk: Tensor,
  options: QkvRopeOptions,
): void {
  const op = "qkRope";
  const d = nw.shape[0];
  const m = checkRows(op, x, d);
  const weights = weightType(op, "nw", nw);
  const { heads, positions, table, kvRow } = options;
  const headDim = d / heads;
  expectShape(op, "wq", wq, [d, d]);
  expectShape(op, "wk", wk, [d, d]);
  expectShape(op, "q", q, [m, d]);
  expectShape(op, "positions", positions, [m]);
  expectShape(op, "table", table, [-1, headDim / 2, 2]);
  expectDtype(op, "positions", positions, "u32");
  for (const [name, t] of [["q", q], ["kCache", kCache]] as const) {
    expectDtype(op, name, t, "f32");
    expectShape(op, name, t, [-1, d]);
  }
  if (
    !Number.isInteger(headDim) || headDim % 2 !== 0 || kvRow + m > kCache.shape[0] ||
    nw.offset !== 0
  ) {
    throw new OptionError(
      `Cannot record ${op}: ${heads} heads of d ${d}, cache rows ${kvRow}..${kvRow + m} of ` +
        `${kCache.shape[0]}, the norm weight must start at element 0`,
    );
  }
  const layouts = layoutCode(op, "wq", wq, d, true) | (layoutCode(op, "wk", wk, d, true) << 1);
  const params = [
    m,
    d,
    heads,
    headDim,
    x.offset,
    q.offset,
    kCache.offset,
    kvRow,
    positions.offset,
    options.eps,
    layouts,
  ];
  const blocks = Math.ceil(headDim / 2 / 4);
  rec.dispatch(QK_ROPE_Q, [q, kCache, x, nw, wq, wk, positions, table], params, [
    2 * heads * blocks,
    m,
  ], { weights });
}
