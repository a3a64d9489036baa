/**
 * Rotary position embeddings (rotate-half pairing, as Hugging Face LLaMA and VALL-E use) with a
 * per-token position buffer, so segment-relative positions work.
 *
 * The cos/sin values come from a table computed on the CPU exactly as PyTorch does in float32
 * (inv_freq in f32, angle = f32(pos · inv_freq), then cos/sin rounded to f32): WGSL's own sin/cos
 * are only specified to 2^-11 and positions reach the thousands.
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { KernelSpec, Recorder, Tensor } from "../backends/backend.ts";
import { uploadTensor } from "../backends/tensor.ts";
import type { Backend } from "../backends/backend.ts";
import { grid1d } from "./_grid.ts";
import { OptionError } from "../errors.ts";
import { expectDtype, expectShape } from "./_check.ts";
import type { OpKernel } from "./_kernels.ts";

const ROPE: KernelSpec = {
  shader: "rope",
  bindings: ["write", "read", "read"],
  params: ["u32", "u32", "u32", "u32", "u32", "u32", "u32"],
};

const SPLIT_QKV: KernelSpec = {
  shader: "split_qkv",
  bindings: ["write", "write", "write", "read", "read", "read"],
  params: ["u32", "u32", "u32", "u32", "u32", "u32", "u32", "u32"],
};

/** The kernels `rope` and `splitQkv` may dispatch, for warming at load (`kernelUses`). */
export const ROPE_KERNELS: readonly OpKernel[] = [{ spec: ROPE }, { spec: SPLIT_QKV }];

/**
 * The float32 (cos, sin) pairs PyTorch's LLaMA rotary embedding uses, as a flat array
 * `[position][j][cos, sin]` for j < headDim / 2.
 *
 * @example
 * ```ts
 * import { ropeTable } from "@valle/core/backends";
 * const table = ropeTable(64, 10000, 4);
 * console.assert(table.length === 4 * 32 * 2 && table[0] === 1);
 * ```
 */
export function ropeTable(headDim: number, theta: number, positions: number): Float32Array {
  const half = headDim / 2;
  const f32 = Math.fround;
  const invFreq = new Float32Array(half);
  for (let j = 0; j < half; j++) invFreq[j] = f32(1 / f32(theta ** f32(f32(2 * j) / headDim)));
  const table = new Float32Array(positions * half * 2);
  for (let p = 0; p < positions; p++) {
    for (let j = 0; j < half; j++) {
      const angle = f32(p * invFreq[j]);
      table[(p * half + j) * 2] = Math.cos(angle);
      table[(p * half + j) * 2 + 1] = Math.sin(angle);
    }
  }
  return table;
}

/**
 * Uploads {@linkcode ropeTable} as a tensor `(positions, headDim / 2, 2)` for {@linkcode rope}.
 *
 * @example
 * ```ts ignore
 * const table = createRopeTable(backend, 64, 10000, 8192);
 * ```
 */
export function createRopeTable(
  backend: Backend,
  headDim: number,
  theta: number,
  positions: number,
): Tensor {
  if (headDim % 2 !== 0) {
    throw new OptionError(`Cannot build a rotary table: head dimension ${headDim} is odd`);
  }
  const data = ropeTable(headDim, theta, positions);
  return uploadTensor(backend, data, [positions, headDim / 2, 2], "f32", "valle.rope");
}

/** Layout of the rows {@linkcode rope} rotates. */
export interface RopeOptions {
  /** Heads per row. */
  heads: number;
  /** Elements per head (even). */
  headDim: number;
  /** The column where the first head starts inside a row (e.g. `dModel` for K in a fused QKV row). Default 0. */
  column?: number;
  /**
   * Rotate by −angle instead: undoes the rotation, and is its gradient (a rotation's transpose
   * is its inverse), for the backward pass. Default false.
   */
  inverse?: boolean;
}

/**
 * Rotates, in place, `heads` heads of each row of `x` by the angle of that row's position (or by
 * its negative, `inverse`: the gradient of the rotation).
 *
 * @param rec The recorder.
 * @param x Rows (S, rowWidth), f32; rotated in place.
 * @param positions Position id per row (S), u32.
 * @param table From {@linkcode createRopeTable}; must cover every position used.
 * @param options Head layout.
 *
 * @example
 * ```ts ignore
 * rope(rec, q, positions, table, { heads: 16, headDim: 64 });
 * rope(rec, dq, positions, table, { heads: 16, headDim: 64, inverse: true }); // backward
 * ```
 */
export function rope(
  rec: Recorder,
  x: Tensor,
  positions: Tensor,
  table: Tensor,
  options: RopeOptions,
): void {
  const op = "rope";
  const { heads, headDim, column = 0, inverse = false } = options;
  const [s, width] = x.shape;
  expectShape(op, "x", x, [-1, -1]);
  expectShape(op, "positions", positions, [s]);
  expectShape(op, "table", table, [-1, headDim / 2, 2]);
  expectDtype(op, "x", x, "f32");
  expectDtype(op, "positions", positions, "u32");
  if (column + heads * headDim > width || headDim % 2 !== 0) {
    throw new OptionError(
      `Cannot record rope: ${heads} heads of ${headDim} from column ${column} do not fit rows of ${width}`,
    );
  }
  const params = [s, heads, headDim, x.offset + column, positions.offset, width, inverse ? 1 : 0];
  rec.dispatch(
    ROPE,
    [x, positions, table],
    params,
    grid1d(Math.ceil((s * heads * headDim) / 512)),
  );
}

/** Head layout of {@linkcode splitQkv}. */
export interface SplitQkvOptions {
  /** Heads of Q, K and V. */
  heads: number;
  /** Elements per head (even). */
  headDim: number;
}

/**
 * Records the split of stacked projection rows [Q | K | V] (one GEMM over the stacked weights)
 * into q ← RoPE(Q), k ← RoPE(K) and v ← V: the bits of {@linkcode rope} on Q and K apart.
 *
 * @param rec The recorder.
 * @param q Queries (S, d) f32, written.
 * @param k Keys (S, d) f32 (e.g. rows of a KV cache), written.
 * @param v Values (S, d) f32, written.
 * @param qkv Stacked rows (S, 3d) f32, d = heads · headDim.
 * @param positions Position id per row (S), u32.
 * @param table From {@linkcode createRopeTable}; must cover every position used.
 * @param options Head layout.
 *
 * @example
 * ```ts ignore
 * linear(rec, qkv, h, layer.qkv);
 * splitQkv(rec, q, rows(kCache, 0, s), rows(vCache, 0, s), qkv, positions, table, {
 *   heads: 16,
 *   headDim: 64,
 * });
 * ```
 */
export function splitQkv(
  rec: Recorder,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  qkv: Tensor,
  positions: Tensor,
  table: Tensor,
  options: SplitQkvOptions,
): void {
  const op = "splitQkv";
  const { heads, headDim } = options;
  const s = qkv.shape[0];
  const d = heads * headDim;
  if (headDim % 2 !== 0) {
    throw new OptionError(`Cannot record ${op}: head dimension ${headDim} is odd`);
  }
  expectShape(op, "qkv", qkv, [s, 3 * d]);
  expectShape(op, "positions", positions, [s]);
  expectShape(op, "table", table, [-1, headDim / 2, 2]);
  expectDtype(op, "qkv", qkv, "f32");
  expectDtype(op, "positions", positions, "u32");
  for (const [name, t] of [["q", q], ["k", k], ["v", v]] as const) {
    expectShape(op, name, t, [s, d]);
    expectDtype(op, name, t, "f32");
  }
  const params = [s, heads, headDim, qkv.offset, q.offset, k.offset, v.offset, positions.offset];
  rec.dispatch(
    SPLIT_QKV,
    [q, k, v, qkv, positions, table],
    params,
    grid1d(Math.ceil((s * heads * headDim) / 512)),
  );
}
