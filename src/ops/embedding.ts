/**
 * `embeddingSum`: input embeddings as sums of rows of stacked tables (VALL-E sums one row per RVQ
 * level; a plain lookup is the one-term case).
 *
 * This module is browser compatible.
 *
 * @module
 */

import { OptionError } from "../errors.ts";
import type { KernelSpec, Recorder, Tensor } from "../backends/backend.ts";
import type { OpKernel } from "./_kernels.ts";
import { expectDtype, expectShape, weightType } from "./_check.ts";

const BINDINGS = ["write", "read", "read"] as const;
const PARAMS = ["u32", "u32", "u32", "u32", "u32", "u32"] as const;
const EMBEDDING_SUM: KernelSpec = { shader: "embedding_sum", bindings: BINDINGS, params: PARAMS };
const EMBEDDING_SUM_Q8_0: KernelSpec = {
  shader: "embedding_sum_q8_0",
  bindings: BINDINGS,
  params: PARAMS,
};

/** The kernels `embeddingSum` may dispatch, for warming at load (`kernelUses`). */
export const EMBEDDING_KERNELS: readonly OpKernel[] = [
  { spec: EMBEDDING_SUM },
  { spec: EMBEDDING_SUM_Q8_0, quant: ["q8_0"] },
];

/** The id that marks an empty term in {@linkcode embeddingSum}. */
export const NO_ROW = 0xffffffff;

/**
 * Records out[r] (+)= Σ_t table[ids[r, t]]. Ids are absolute rows of `table`; {@linkcode NO_ROW}
 * skips a term.
 *
 * @param rec The recorder.
 * @param out Output (R, D), f32.
 * @param ids Row ids (R, T), u32.
 * @param table Stacked tables (rows, D), f16, f32 or `q8_0` (D % 64 == 0), starting at element 0
 * of its buffer.
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
  const grid = [Math.ceil(d / 256), rows] as const;
  if (table.dtype === "q8_0") {
    if (d % 64 !== 0 || table.offset !== 0) {
      throw new OptionError(
        `Cannot record ${op}: a q8_0 table needs D % 64 == 0 at offset 0; got D ${d}, offset ${table.offset}`,
      );
    }
    rec.dispatch(EMBEDDING_SUM_Q8_0, [out, ids, table], params, grid);
    return;
  }
  rec.dispatch(EMBEDDING_SUM, [out, ids, table], params, grid, {
    weights: weightType(op, "table", table),
  });
}
