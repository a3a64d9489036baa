/**
 * In-place elementwise `add` and `mul` with y broadcast over x (y's length divides x's).
 *
 * This module is browser compatible.
 *
 * @module
 */

import { OptionError } from "../errors.ts";
import type { KernelSpec, Recorder, Tensor } from "../backends/backend.ts";
import { numel } from "../backends/tensor.ts";
import { grid1d } from "./_grid.ts";
import { expectDtype, weightType } from "./_check.ts";
import type { OpKernel } from "./_kernels.ts";

const PARAMS = ["u32", "u32", "u32", "u32"] as const;
const ADD: KernelSpec = { shader: "add", bindings: ["write", "read"], params: PARAMS };
const MUL: KernelSpec = { shader: "mul", bindings: ["write", "read"], params: PARAMS };

/** The kernels the elementwise ops may dispatch, for warming at load (`kernelUses`). */
export const ELEMENTWISE_KERNELS: readonly OpKernel[] = [{ spec: ADD }, { spec: MUL }];

function broadcast(op: string, x: Tensor, y: Tensor): [number, number] {
  const n = numel(x.shape);
  const m = numel(y.shape);
  if (m === 0 || n % m !== 0) {
    throw new OptionError(`Cannot record ${op}: [${y.shape}] does not broadcast over [${x.shape}]`);
  }
  return [n, m];
}

/**
 * Records x += y (y repeated over x).
 *
 * @example
 * ```ts ignore
 * add(rec, residual, attnOut);
 * ```
 */
export function add(rec: Recorder, x: Tensor, y: Tensor): void {
  expectDtype("add", "x", x, "f32");
  expectDtype("add", "y", y, "f32");
  const [n, m] = broadcast("add", x, y);
  rec.dispatch(
    ADD,
    [x, y],
    [n, m, x.offset, y.offset],
    grid1d(Math.ceil(n / 256)),
  );
}

/**
 * Records x *= y (y repeated over x; y may be f16 or f32 weights).
 *
 * @example
 * ```ts ignore
 * mul(rec, x, layerScale);
 * ```
 */
export function mul(rec: Recorder, x: Tensor, y: Tensor): void {
  expectDtype("mul", "x", x, "f32");
  const [n, m] = broadcast("mul", x, y);
  rec.dispatch(MUL, [x, y], [n, m, x.offset, y.offset], grid1d(Math.ceil(n / 256)), {
    weights: weightType("mul", "y", y),
  });
}
