/**
 * Row-wise `softmax` (in place) and `argmax` (first index of the maximum, as `torch.argmax`).
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { KernelSpec, Recorder, Tensor } from "../backends/backend.ts";
import { expectDtype, expectShape } from "./_check.ts";
import type { OpKernel } from "./_kernels.ts";

const SOFTMAX: KernelSpec = {
  shader: "softmax",
  bindings: ["write"],
  params: ["u32", "u32", "u32"],
};
const ARGMAX: KernelSpec = {
  shader: "argmax",
  bindings: ["write", "read"],
  params: ["u32", "u32", "u32", "u32"],
};

/** The kernels `softmax` and `argmax` may dispatch, for warming at load (`kernelUses`). */
export const SOFTMAX_KERNELS: readonly OpKernel[] = [{ spec: SOFTMAX }, { spec: ARGMAX }];

/**
 * Records x[r] = softmax(x[r]) in place for every row.
 *
 * @example
 * ```ts ignore
 * softmax(rec, logits);
 * ```
 */
export function softmax(rec: Recorder, x: Tensor): void {
  expectShape("softmax", "x", x, [-1, -1]);
  expectDtype("softmax", "x", x, "f32");
  const [rows, cols] = x.shape;
  rec.dispatch(SOFTMAX, [x], [rows, cols, x.offset], [rows]);
}

/**
 * Records out[r] = argmax(x[r]) for every row (ties: the smaller index).
 *
 * @example
 * ```ts ignore
 * argmax(rec, token, logits);
 * ```
 */
export function argmax(rec: Recorder, out: Tensor, x: Tensor): void {
  expectShape("argmax", "x", x, [-1, -1]);
  expectDtype("argmax", "x", x, "f32");
  const [rows, cols] = x.shape;
  expectShape("argmax", "out", out, [rows]);
  expectDtype("argmax", "out", out, "u32");
  rec.dispatch(ARGMAX, [out, x], [rows, cols, x.offset, out.offset], [rows]);
}
