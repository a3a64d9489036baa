/**
 * Fused decode-step ops: each replaces a chain of the plain ops with one dispatch for the few
 * rows of a decode step (the AR loop is bound by dispatch count, not arithmetic):
 *
 * - {@linkcode normLinear}: RMSNorm + linear (+ residual add), e.g. the final norm and a head;
 * - {@linkcode qkvRope}: RMSNorm + Q/K/V projections + RoPE + KV-cache append;
 * - {@linkcode gateUpGelu}: RMSNorm + gate/up projections + exact GELU gate.
 *
 * They need the model width to be a multiple of 4 (4-wide loads) and, for the projections, the
 * weights stacked in one buffer ([3d, d] for Q/K/V, [2F, d] for gate/up): create it once and
 * write each part into its rows (`writeTensor(backend, rows(stacked, d, d), k)`).
 *
 * This module is browser compatible.
 *
 * @module
 */

import { OptionError } from "../errors.ts";
import type { KernelSpec, Recorder, Tensor } from "../backends/backend.ts";
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
  /** Bias (N), same dtype as the weight. */
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
 * @param w The weight (N, K), same dtype as `nw`.
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
  const weights = weightType(op, "w", w);
  expectShape(op, "nw", nw, [k]);
  expectDtype(op, "nw", nw, weights);
  expectShape(op, "y", y, [m, n]);
  expectDtype(op, "y", y, "f32");
  const b = options.bias;
  if (b) {
    expectShape(op, "bias", b, [n]);
    expectDtype(op, "bias", b, weights);
  }
  if (w.offset % 4 !== 0 || nw.offset !== 0) {
    throw new OptionError(`Cannot record ${op}: weights must start 4-aligned (norm at 0)`);
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
    options.eps,
  ];
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
 * @param wGateUp Gate rows then up rows (2F, d), same dtype as `nw`.
 * @param eps RMSNorm epsilon.
 *
 * @example
 * ```ts ignore
 * gateUpGelu(rec, g, x, layer.postAttentionLayernorm, layer.gateUp, 1e-6);
 * ```
 */
export function gateUpGelu(
  rec: Recorder,
  out: Tensor,
  x: Tensor,
  nw: Tensor,
  wGateUp: Tensor,
  eps: number,
): void {
  const op = "gateUpGelu";
  const d = nw.shape[0];
  const m = checkRows(op, x, d);
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
