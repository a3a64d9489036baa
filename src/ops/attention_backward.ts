/**
 * The input gradients of `attention` (./attention.ts) over packed sequences (training): several items
 * side by side in one sequence, each self-attention over its own rows, causal or bidirectional per
 * item, given as per-row key spans.
 *
 * Two passes, as flash-attention 2's backward: a query-major one (`attention_backward_dq`: dq,
 * recomputing each row's softmax statistics, which it leaves in a scratch tensor), then a key-major
 * one (`attention_backward_dkv`: dk and dv), each a workgroup per tile of rows of one head with the
 * other operand's rows staged in workgroup memory; no atomics. The CPU backend runs their twins in
 * `wasm/attention_backward.c`.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { OptionError } from "../errors.ts";
import type { KernelSpec, ParamType, Recorder, Tensor } from "../backends/backend.ts";
import { expectDtype, expectSeparate, expectShape } from "./_check.ts";
import type { OpKernel } from "./_kernels.ts";

/**
 * The parameter words of both passes: s, heads, head_dim, scale, then (offset, stride) of q, k,
 * v, dout and of two more tensors (out and dq; dk and dv), the table's and the scratch's offsets.
 */
const PARAMS: readonly ParamType[] = ["u32", "u32", "u32", "f32", ...new Array(14).fill("u32")];

const ATTENTION_BACKWARD_DQ: KernelSpec = {
  shader: "attention_backward_dq",
  bindings: ["write", "write", "read", "read", "read", "read", "read", "read"],
  params: PARAMS,
};

const ATTENTION_BACKWARD_DKV: KernelSpec = {
  shader: "attention_backward_dkv",
  bindings: ["write", "write", "read", "read", "read", "read", "read", "read"],
  params: PARAMS,
};

/** The kernels `attentionBackward` dispatches, for warming (`kernelUses`). */
export const ATTENTION_BACKWARD_KERNELS: readonly OpKernel[] = [
  { spec: ATTENTION_BACKWARD_DQ },
  { spec: ATTENTION_BACKWARD_DKV },
];

/**
 * Elements (32-bit) of the `scratch` of {@linkcode attentionBackward} for `s` rows: each row's
 * softmax statistics per head (three words) and its key range (two words).
 *
 * @param s Rows of the packed sequence.
 * @param heads Number of heads.
 * @returns The element count.
 *
 * @example
 * ```ts
 * import { attentionBackwardScratchSize } from "@valle/core/backends";
 * console.assert(attentionBackwardScratchSize(10, 16) === 10 * (3 * 16 + 2));
 * ```
 */
export function attentionBackwardScratchSize(s: number, heads: number): number {
  return s * (3 * heads + 2);
}

/** An item of a packed training sequence: its rows, and whether its attention is causal. */
export interface PackedItem {
  /** Rows of the item (its queries and keys). */
  rows: number;
  /** Causal (row r sees the item's rows up to r) or bidirectional (the whole item). */
  causal: boolean;
}

/**
 * The tables of a sequence of packed items, side by side in order: `spans` for
 * `attention` and {@linkcode attentionBackward} (row i: first key, key count) and `keyQueries`
 * for the latter (key j: first query, query count), two words per row.
 *
 * @param items The items in order.
 * @returns The two tables, (S, 2) each.
 *
 * @example
 * ```ts
 * import { packedAttentionTables } from "@valle/core/backends";
 * const { spans, keyQueries } = packedAttentionTables([
 *   { rows: 2, causal: true },
 *   { rows: 1, causal: false },
 * ]);
 * console.assert(spans.join() === "0,1,0,2,2,1" && keyQueries.join() === "0,2,1,1,2,1");
 * ```
 */
export function packedAttentionTables(
  items: readonly PackedItem[],
): { spans: Uint32Array; keyQueries: Uint32Array } {
  const total = items.reduce((sum, item) => sum + item.rows, 0);
  const spans = new Uint32Array(2 * total);
  const keyQueries = new Uint32Array(2 * total);
  let at = 0;
  for (const { rows, causal } of items) {
    for (let r = 0; r < rows; r++) {
      spans.set([at, causal ? r + 1 : rows], 2 * (at + r));
      keyQueries.set(causal ? [at + r, rows - r] : [at, rows], 2 * (at + r));
    }
    at += rows;
  }
  return { spans, keyQueries };
}

/** Shape and masking of an {@linkcode attentionBackward} call. */
export interface AttentionBackwardOptions {
  /** Number of heads. */
  heads: number;
  /** Elements per head: a multiple of 4, at most 256. */
  headDim: number;
  /** Score scale, as the forward's. Default `1 / sqrt(headDim)`. */
  scale?: number;
  /**
   * (S, 2) u32, as the forward's: row i's queries attend to keys `[spans[i][0], spans[i][0] +
   * spans[i][1])`.
   */
  spans: Tensor;
  /**
   * (S, 2) u32, the transpose of `spans`: key row j may be seen by query rows `[keyQueries[j][0],
   * keyQueries[j][0] + keyQueries[j][1])`, each of which counts only if its own span holds j (so
   * a range may be wider than the queries that see the key, never narrower). For an item of rows
   * `[a, a + n)`: `[a, n]` bidirectional, `[j, a + n − j]` causal ({@linkcode packedAttentionTables}).
   */
  keyQueries: Tensor;
  /** Column where the first head starts in rows of `q` and `dq`. Default 0. */
  qColumn?: number;
  /** Column where the first head starts in rows of `k` and `dk`. Default 0. */
  kColumn?: number;
  /** Column where the first head starts in rows of `v` and `dv`. Default 0. */
  vColumn?: number;
}

/** The gradients {@linkcode attentionBackward} writes. */
export interface AttentionGrads {
  /** ∂L/∂q (S, ·), f32, written. */
  dq: Tensor;
  /** ∂L/∂k (S, ·), f32, written. */
  dk: Tensor;
  /** ∂L/∂v (S, ·), f32, written. */
  dv: Tensor;
}

/**
 * Records the gradients of `attention`'s out = softmax(scale · q kᵀ + mask) v with respect to q, k and v, for
 * every head, given dOut = ∂L/∂out and the forward's out: with P the attention weights,
 * D_i = dOut_i · out_i and dS_ij = P_ij (dOut_i · v_j − D_i),
 * dq_i = scale Σ_j dS_ij k_j, dk_j = scale Σ_i dS_ij q_i, dv_j = Σ_i P_ij dOut_i.
 * The sequence is self-attention over its S rows (queries and keys alike), masked per row by
 * `spans`. A row whose span is empty gets dq = 0.
 *
 * The gradients are written (not added), into buffers other than the inputs' and the scratch's
 * (`dq`, `dk` and `dv` may share one, e.g. a fused dqkv); q, k and v may be columns of one buffer.
 *
 * @param rec The recorder.
 * @param grads dq, dk and dv.
 * @param dOut ∂L/∂out (S, ≥ heads·headDim), f32.
 * @param q Query rows (S, ·), f32, as the forward's (after RoPE).
 * @param k Key rows (S, ·), f32.
 * @param v Value rows (S, ·), f32.
 * @param out The forward's output (S, ≥ heads·headDim), f32.
 * @param scratch f32, at least {@linkcode attentionBackwardScratchSize}`(S, heads)` elements,
 * overwritten.
 * @param options Heads, spans and their transpose, columns.
 * @throws {OptionError} A tensor of the wrong shape or type, heads that do not fit its rows, or
 * an output sharing a buffer with an input.
 *
 * @example
 * ```ts ignore
 * attentionBackward(rec, { dq, dk, dv }, dAtt, q, k, v, att, scratch, {
 *   heads: 16,
 *   headDim: 64,
 *   spans,
 *   keyQueries,
 * });
 * ```
 */
export function attentionBackward(
  rec: Recorder,
  grads: AttentionGrads,
  dOut: Tensor,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  out: Tensor,
  scratch: Tensor,
  options: AttentionBackwardOptions,
): void {
  const op = "attentionBackward";
  const { heads, headDim, spans, keyQueries, qColumn = 0, kColumn = 0, vColumn = 0 } = options;
  const { dq, dk, dv } = grads;
  const s = q.shape[0];
  const width = heads * headDim;
  if (headDim % 4 !== 0 || headDim < 4 || headDim > 256) {
    throw new OptionError(
      `Cannot record ${op}: head dim ${headDim} is not a multiple of 4 in [4, 256]`,
    );
  }
  const rowsOf = [
    ["q", q, qColumn],
    ["k", k, kColumn],
    ["v", v, vColumn],
    ["dOut", dOut, 0],
    ["out", out, 0],
    ["dq", dq, qColumn],
    ["dk", dk, kColumn],
    ["dv", dv, vColumn],
  ] as const;
  for (const [name, t, column] of rowsOf) {
    expectShape(op, name, t, [s, -1]);
    expectDtype(op, name, t, "f32");
    if (column + width > t.shape[1]) {
      throw new OptionError(
        `Cannot record ${op}: ${name} rows of ${
          t.shape[1]
        } cannot hold ${heads}×${headDim} from column ${column}`,
      );
    }
  }
  for (const [name, t] of [["spans", spans], ["keyQueries", keyQueries]] as const) {
    expectShape(op, name, t, [s, 2]);
    expectDtype(op, name, t, "u32");
  }
  expectShape(op, "scratch", scratch, [-1]);
  expectDtype(op, "scratch", scratch, "f32");
  const size = attentionBackwardScratchSize(s, heads);
  if (scratch.shape[0] < size) {
    throw new OptionError(
      `Cannot record ${op}: scratch of ${scratch.shape[0]} elements cannot hold ${size}`,
    );
  }
  const inputs = [["q", q], ["k", k], ["v", v], ["dOut", dOut]] as const;
  expectSeparate(op, [["dq", dq], ["scratch", scratch]], [...inputs, ["out", out], [
    "spans",
    spans,
  ]]);
  expectSeparate(op, [["dk", dk], ["dv", dv]], [...inputs, ["scratch", scratch], [
    "keyQueries",
    keyQueries,
  ]]);
  const scale = options.scale ?? 1 / Math.sqrt(headDim);
  const at = (t: Tensor, column: number) => [t.offset + column, t.shape[1]];
  const words = [
    s,
    heads,
    headDim,
    scale,
    ...at(q, qColumn),
    ...at(k, kColumn),
    ...at(v, vColumn),
    ...at(dOut, 0),
  ];
  rec.dispatch(
    ATTENTION_BACKWARD_DQ,
    [dq, scratch, q, k, v, dOut, out, spans],
    [...words, ...at(out, 0), ...at(dq, qColumn), spans.offset, scratch.offset],
    [Math.ceil(s / tileRows(headDim)), heads],
  );
  rec.dispatch(
    ATTENTION_BACKWARD_DKV,
    [dk, dv, q, k, v, dOut, scratch, keyQueries],
    [...words, ...at(dk, kColumn), ...at(dv, vColumn), keyQueries.offset, scratch.offset],
    [Math.ceil(s / tileRows(headDim)), heads],
  );
}

/** Rows of a workgroup's tile in both passes: 64 threads, one per 32 dimensions of a row. */
function tileRows(headDim: number): number {
  return Math.floor(64 / Math.ceil(headDim / 32));
}
