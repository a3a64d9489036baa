/**
 * Multi-head scaled dot-product attention over a key/value sequence that may be a KV cache:
 * S query rows attend to the first `kvLen` key rows, causally (query i sees keys up to
 * `qStart + i`) or bidirectionally; or, for packed sequences (the rows of a batch side by side in one
 * buffer), each query over its own span of keys given by a table.
 *
 * On WebGPU a pass runs as flash attention (`shaders/attention.wgsl`: a workgroup per tile of
 * queries of one head, key and value tiles in workgroup memory shared by the tile's queries), or,
 * for decode steps given a scratch of partial results, as flash-decoding (`attention_split.wgsl`
 * then `attention_combine.wgsl`: each query's keys split over many workgroups). The CPU backend
 * runs its one blocked kernel (`wasm/attention.c`) for both.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { OptionError } from "../errors.ts";
import type { KernelSpec, Recorder, Tensor } from "../backends/backend.ts";
import { expectDtype, expectShape } from "./_check.ts";
import type { OpKernel } from "./_kernels.ts";

const ATTENTION: KernelSpec = {
  shader: "attention",
  bindings: ["write", "read", "read", "read", "read"],
  params: [
    "u32", // s
    "u32", // kv_len
    "u32", // q_start
    "u32", // heads
    "u32", // head_dim
    "u32", // causal
    "f32", // scale
    "u32", // q_off
    "u32", // q_stride
    "u32", // k_off
    "u32", // v_off
    "u32", // kv_stride
    "u32", // o_off
    "u32", // o_stride
    "u32", // spans_on
    "u32", // spans_off
  ],
};

/** Split decoding's first half (WebGPU only): partial results of chunks of each query's keys. */
const ATTENTION_SPLIT: KernelSpec = {
  shader: "attention_split",
  bindings: ["write", "read", "read", "read", "read"],
  // As ATTENTION's, with o_off and o_stride replaced by part_off and splits.
  params: ATTENTION.params,
};

/** Split decoding's second half (WebGPU only): the partial results merged. */
const ATTENTION_COMBINE: KernelSpec = {
  shader: "attention_combine",
  bindings: ["write", "read"],
  params: ["u32", "u32", "u32", "u32", "u32", "u32"], // heads, head_dim, splits, part_off, o_off, o_stride
};

/** The kernels `attention` may dispatch, for warming at load (`kernelUses`). */
export const ATTENTION_KERNELS: readonly OpKernel[] = [{ spec: ATTENTION }, {
  spec: ATTENTION_SPLIT,
}, { spec: ATTENTION_COMBINE }];

/**
 * Chunks split decoding cuts each query's keys into, one workgroup each: a decode step over 16
 * heads runs 16 · 16 workgroups however few its queries.
 */
export const ATTENTION_SPLITS = 16;

/** The most queries a pass may have to be split (the queries {@linkcode attentionPartialsSize} holds by default). */
export const MAX_SPLIT_QUERIES = 64;

/**
 * Elements (f32) of the `partials` scratch of split decoding for passes of up to `queries`
 * queries: `(head_dim + 2)` per query, head and chunk.
 *
 * @param heads Number of heads.
 * @param headDim Elements per head.
 * @param queries Queries of the largest split pass. Default {@linkcode MAX_SPLIT_QUERIES}.
 * @returns The element count.
 *
 * @example
 * ```ts
 * import { attentionPartialsSize } from "@valle/core/backends";
 * console.assert(attentionPartialsSize(16, 64, 1) === 16 * 16 * 66);
 * ```
 */
export function attentionPartialsSize(
  heads: number,
  headDim: number,
  queries: number = MAX_SPLIT_QUERIES,
): number {
  return queries * heads * ATTENTION_SPLITS * (headDim + 2);
}

/**
 * Queries per workgroup of the tiled (flash) attention kernel: one thread per 64 dimensions of
 * a query, 64 threads (64 queries for a head of at most 64 dimensions).
 *
 * @param headDim Elements per head (at most 256).
 * @returns The queries of a tile.
 *
 * @example
 * ```ts
 * import { attentionTileQueries } from "@valle/core/backends";
 * console.assert(attentionTileQueries(64) === 64 && attentionTileQueries(256) === 16);
 * ```
 */
export function attentionTileQueries(headDim: number): number {
  return Math.floor(64 / Math.ceil(Math.ceil(headDim / 4) / 16));
}

/** The shape of an attention pass, for {@linkcode attentionPassBytes}. */
export interface AttentionPassShape {
  /** Queries. */
  queries: number;
  /** Keys (causal: query i sees keys up to `keys - queries + i`). */
  keys: number;
  /** Number of heads. */
  heads: number;
  /** Elements per head. */
  headDim: number;
  /** Causal mask. */
  causal: boolean;
}

/**
 * Bytes of f32 queries, keys, values and outputs an attention pass moves between memory and the
 * workgroups when each workgroup takes `tileQueries` consecutive queries of one head and reads
 * the keys and values of their hull once: 1 for the former kernel (a workgroup per query), or
 * {@linkcode attentionTileQueries} for the tiled one. Cache hits are not counted.
 *
 * @param shape The pass.
 * @param tileQueries Queries sharing each key and value read.
 * @returns Bytes moved.
 *
 * @example
 * ```ts
 * import { attentionPassBytes } from "@valle/core/backends";
 * const shape = { queries: 1000, keys: 1000, heads: 16, headDim: 64, causal: false };
 * console.assert(attentionPassBytes(shape, 1) > 60 * attentionPassBytes(shape, 64));
 * ```
 */
export function attentionPassBytes(shape: AttentionPassShape, tileQueries: number): number {
  const { queries, keys, heads, headDim, causal } = shape;
  let keyRows = 0;
  for (let i0 = 0; i0 < queries; i0 += tileQueries) {
    const last = Math.min(queries, i0 + tileQueries) - 1;
    keyRows += causal ? keys - queries + last + 1 : keys;
  }
  // Each key row read is a K row and a V row; each query is read and written once.
  return 4 * heads * headDim * (2 * keyRows + 2 * queries);
}

/** Shape and masking of an {@linkcode attention} call. */
export interface AttentionOptions {
  /** Number of heads. */
  heads: number;
  /** Elements per head (at most 256). */
  headDim: number;
  /** Keys (rows of `k` and `v`) to attend over. */
  kvLen: number;
  /** Causal mask: query i sees keys `j <= qStart + i`. */
  causal: boolean;
  /** Index of the first query inside the key sequence (causal only). Default `kvLen - S`. */
  qStart?: number;
  /** Score scale. Default `1 / sqrt(headDim)`. */
  scale?: number;
  /** Column where the first head starts in rows of `q` (for fused QKV rows). Default 0. */
  qColumn?: number;
  /** Column where the first head starts in rows of `k`. Default 0. */
  kColumn?: number;
  /** Column where the first head starts in rows of `v`. Default 0. */
  vColumn?: number;
  /**
   * Packed sequences: (S, 2) u32, query i attends to keys `[spans[i][0], spans[i][0] +
   * spans[i][1])` (its own row's keys, causal or not as the table says); `causal` and `qStart`
   * are then unused and `kvLen` only bounds the keys. Default: none.
   */
  spans?: Tensor;
  /**
   * Scratch of split decoding, f32 with at least {@linkcode attentionPartialsSize}`(heads,
   * headDim, S)` elements (run state, not per call). Given it, a pass of at most
   * {@linkcode MAX_SPLIT_QUERIES} queries runs on WebGPU as flash-decoding: each query's keys cut
   * into {@linkcode ATTENTION_SPLITS} chunks, a workgroup each, then a dispatch merging their
   * partial results. The CPU backend, whose kernel has no such schedule, does not use it. Default:
   * none (one dispatch, a workgroup per tile of queries).
   */
  partials?: Tensor;
}

/**
 * Records out = softmax(scale · q kᵀ + mask) v for every head.
 *
 * @param rec The recorder.
 * @param out Output rows (S, ≥ heads·headDim), f32.
 * @param q Query rows (S, ·), f32.
 * @param k Key rows (≥ kvLen, ·), f32; `k` and `v` may be views of the same buffer.
 * @param v Value rows (≥ kvLen, ·), f32.
 * @param options Heads, key count and mask.
 *
 * @example
 * ```ts ignore
 * attention(rec, att, q, kCache, vCache, { heads: 16, headDim: 64, kvLen: pos + 1, causal: true });
 * ```
 */
export function attention(
  rec: Recorder,
  out: Tensor,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  options: AttentionOptions,
): void {
  const op = "attention";
  const { heads, headDim, kvLen, causal } = options;
  const s = q.shape[0];
  const width = heads * headDim;
  const { qColumn = 0, kColumn = 0, vColumn = 0 } = options;
  const qStart = options.qStart ?? kvLen - s;
  for (
    const [name, t, column] of [["q", q, qColumn], ["k", k, kColumn], ["v", v, vColumn]] as const
  ) {
    expectShape(op, name, t, [-1, -1]);
    expectDtype(op, name, t, "f32");
    if (column + width > t.shape[1]) {
      throw new OptionError(
        `Cannot record attention: ${name} rows of ${
          t.shape[1]
        } cannot hold ${heads}×${headDim} from column ${column}`,
      );
    }
  }
  expectShape(op, "out", out, [s, -1]);
  expectDtype(op, "out", out, "f32");
  if (headDim > 256 || kvLen > k.shape[0] || kvLen > v.shape[0] || kvLen < 1) {
    throw new OptionError(
      `Cannot record attention: kvLen ${kvLen} with ${
        k.shape[0]
      } key rows, head dim ${headDim} (max 256)`,
    );
  }
  const spans = options.spans;
  if (spans) {
    expectShape(op, "spans", spans, [s, 2]);
    expectDtype(op, "spans", spans, "u32");
  } else if (causal && (qStart < 0 || qStart + s > kvLen)) {
    throw new OptionError(
      `Cannot record attention: queries [${qStart}, ${qStart + s}) exceed ${kvLen} keys`,
    );
  }
  if (k.shape[1] !== v.shape[1]) {
    throw new OptionError(
      `Cannot record attention: k rows (${k.shape[1]}) and v rows (${v.shape[1]}) differ`,
    );
  }
  const scale = options.scale ?? 1 / Math.sqrt(headDim);
  const [qOff, kOff, vOff] = [q.offset + qColumn, k.offset + kColumn, v.offset + vColumn];
  const inputs = [s, kvLen, qStart, heads, headDim, causal ? 1 : 0, scale, qOff, q.shape[1], kOff];
  const spanWords = [spans ? 1 : 0, spans ? spans.offset : 0];
  // Without spans the table binding is unread: `k` stands in for it.
  const table = spans ?? k;
  const partials = s <= MAX_SPLIT_QUERIES ? options.partials : undefined;
  if (partials) {
    expectShape(op, "partials", partials, [-1]);
    expectDtype(op, "partials", partials, "f32");
    const size = attentionPartialsSize(heads, headDim, s);
    if (partials.shape[0] < size) {
      throw new OptionError(
        `Cannot record attention: partials of ${partials.shape[0]} elements cannot hold ${size}`,
      );
    }
  }
  if (partials && rec.backend.kind === "webgpu") {
    const splitParams = [...inputs, vOff, k.shape[1], partials.offset, ATTENTION_SPLITS];
    rec.dispatch(ATTENTION_SPLIT, [partials, q, k, v, table], [...splitParams, ...spanWords], [
      ATTENTION_SPLITS,
      heads,
      s,
    ]);
    const combine = [heads, headDim, ATTENTION_SPLITS, partials.offset, out.offset, out.shape[1]];
    rec.dispatch(ATTENTION_COMBINE, [out, partials], combine, [heads, s]);
    return;
  }
  const params = [...inputs, vOff, k.shape[1], out.offset, out.shape[1], ...spanWords];
  rec.dispatch(ATTENTION, [out, q, k, v, table], params, [
    Math.ceil(s / attentionTileQueries(headDim)),
    heads,
  ]);
}
