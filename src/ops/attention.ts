/**
 * Multi-head scaled dot-product attention over a key/value sequence that may be a KV cache:
 * S query rows attend to the first `kvLen` key rows, causally (query i sees keys up to
 * `qStart + i`) or bidirectionally; or, for packed sequences (the rows of a batch side by side in one
 * buffer), each query over its own span of keys given by a table.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { OptionError } from "../errors.ts";
import type { KernelSpec, Recorder, Tensor } from "../backends/backend.ts";
import { expectDtype, expectShape } from "./_check.ts";

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
  const params = [
    s,
    kvLen,
    qStart,
    heads,
    headDim,
    causal ? 1 : 0,
    options.scale ?? 1 / Math.sqrt(headDim),
    q.offset + qColumn,
    q.shape[1],
    k.offset + kColumn,
    v.offset + vColumn,
    k.shape[1],
    out.offset,
    out.shape[1],
    spans ? 1 : 0,
    spans ? spans.offset : 0,
  ];
  if (k.shape[1] !== v.shape[1]) {
    throw new OptionError(
      `Cannot record attention: k rows (${k.shape[1]}) and v rows (${v.shape[1]}) differ`,
    );
  }
  // Without spans the table binding is unread: `k` stands in for it.
  rec.dispatch(ATTENTION, [out, q, k, v, spans ?? k], params, [heads, s]);
}
