/**
 * `embeddingSum`: input embeddings as sums of rows of stacked tables (VALL-E sums one row per RVQ
 * level; a plain lookup is the one-term case).
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { KernelSpec, Recorder, Tensor } from "../backends/backend.ts";
import { expectDtype, expectShape, weightType } from "./_check.ts";

const EMBEDDING_SUM: KernelSpec = {
  shader: "embedding_sum",
  bindings: ["write", "read", "read"],
  params: ["u32", "u32", "u32", "u32", "u32", "u32"],
};

/** The id that marks an empty term in {@linkcode embeddingSum}. */
export const NO_ROW = 0xffffffff;

/**
 * Records out[r] (+)= Σ_t table[ids[r, t]]. Ids are absolute rows of `table`; {@linkcode NO_ROW}
 * skips a term.
 *
 * @param rec The recorder.
 * @param out Output (R, D), f32.
 * @param ids Row ids (R, T), u32.
 * @param table Stacked tables (rows, D), f16 or f32, starting at element 0 of its buffer.
 * @param accumulate Add to `out` instead of overwriting it.
 *
 * @example
 * ```ts ignore
 * embeddingSum(rec, x, ids, weights.embeddings);
 * ```
 */
export function embeddingSum(
  rec: Recorder,
  out: Tensor,
  ids: Tensor,
  table: Tensor,
  accumulate = false,
): void {
  const op = "embeddingSum";
  const [rows, terms] = ids.shape;
  const d = table.shape[1];
  expectShape(op, "ids", ids, [-1, -1]);
  expectShape(op, "table", table, [-1, -1]);
  expectShape(op, "out", out, [rows, d]);
  expectDtype(op, "ids", ids, "u32");
  expectDtype(op, "out", out, "f32");
  const params = [rows, d, terms, accumulate ? 1 : 0, out.offset, ids.offset];
  rec.dispatch(EMBEDDING_SUM, [out, ids, table], params, [Math.ceil(d / 256), rows], {
    weights: weightType(op, "table", table),
  });
}
