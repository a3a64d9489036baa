/**
 * Row scatter inside one buffer: the batched decode step computes the keys and values of its rows
 * in a scratch block and moves each row to its own region of the KV cache.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { OptionError } from "../errors.ts";
import type { KernelSpec, Recorder, Tensor } from "../backends/backend.ts";
import { grid1d } from "./_grid.ts";
import { expectDtype, expectShape } from "./_check.ts";
import type { OpKernel } from "./_kernels.ts";

const SCATTER_ROWS: KernelSpec = {
  shader: "scatter_rows",
  bindings: ["write", "read"],
  params: ["u32", "u32", "u32", "u32", "u32"],
};

/** The kernels `scatterRows` may dispatch, for warming at load (`kernelUses`). */
export const SCATTER_KERNELS: readonly OpKernel[] = [{ spec: SCATTER_ROWS }];

/**
 * Records `dst[table[i]] = src[i]` for every row i of `src`, where `dst` and `src` are views of
 * the same buffer whose rows must not overlap.
 *
 * @param rec The recorder.
 * @param dst Destination rows (·, width) f32.
 * @param src Source rows (rows, width) f32, in `dst`'s buffer.
 * @param table Destination row of each source row (rows) u32, each below `dst`'s row count.
 * @throws {OptionError} Views of different buffers or widths.
 *
 * @example
 * ```ts ignore
 * scatterRows(rec, state.k[l], rows(state.k[l], scratch, live), kvRows);
 * ```
 */
export function scatterRows(rec: Recorder, dst: Tensor, src: Tensor, table: Tensor): void {
  const op = "scatterRows";
  expectShape(op, "dst", dst, [-1, -1]);
  const [n, width] = src.shape;
  expectShape(op, "src", src, [n, dst.shape[1]]);
  expectShape(op, "table", table, [n]);
  expectDtype(op, "dst", dst, "f32");
  expectDtype(op, "src", src, "f32");
  expectDtype(op, "table", table, "u32");
  if (src.buffer !== dst.buffer) {
    throw new OptionError(`Cannot record ${op}: src and dst must be views of the same buffer`);
  }
  rec.dispatch(
    SCATTER_ROWS,
    [dst, table],
    [n, width, src.offset, dst.offset, table.offset],
    grid1d(Math.ceil((n * width) / 256)),
  );
}
