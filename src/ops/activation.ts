/**
 * Standalone activations of the codecs: `elu` (EnCodec; out of place, since the convolutions
 * usually apply it as they read their input) and `gelu` (Vocos's ConvNeXt, exact erf form, in
 * place).
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { KernelSpec, Recorder, Tensor } from "../backends/backend.ts";
import { numel } from "../backends/tensor.ts";
import { grid1d } from "./_grid.ts";
import { expectDtype, expectShape } from "./_check.ts";
import type { OpKernel } from "./_kernels.ts";

const ELU: KernelSpec = {
  shader: "elu",
  bindings: ["write", "read"],
  params: ["u32", "u32", "u32"],
};
const GELU: KernelSpec = { shader: "gelu", bindings: ["write"], params: ["u32", "u32"] };

/** The kernels the activations may dispatch, for warming at load (`kernelUses`). */
export const ACTIVATION_KERNELS: readonly OpKernel[] = [{ spec: ELU }, { spec: GELU }];

/**
 * Records y = ELU(x) with alpha 1 (x if x > 0, else exp(x) − 1).
 *
 * @param rec The recorder.
 * @param y Output, f32, same shape as `x`, another buffer.
 * @param x Input, f32.
 *
 * @example
 * ```ts ignore
 * elu(rec, y, x);
 * ```
 */
export function elu(rec: Recorder, y: Tensor, x: Tensor): void {
  expectDtype("elu", "x", x, "f32");
  expectDtype("elu", "y", y, "f32");
  expectShape("elu", "y", y, x.shape);
  const n = numel(x.shape);
  rec.dispatch(
    ELU,
    [y, x],
    [n, y.offset, x.offset],
    grid1d(Math.ceil(n / 256)),
  );
}

/**
 * Records x = GELU(x) in place, 0.5·x·(1 + erf(x/√2)).
 *
 * @param rec The recorder.
 * @param x Input and output, f32.
 *
 * @example
 * ```ts ignore
 * gelu(rec, hidden);
 * ```
 */
export function gelu(rec: Recorder, x: Tensor): void {
  expectDtype("gelu", "x", x, "f32");
  const n = numel(x.shape);
  rec.dispatch(GELU, [x], [n, x.offset], grid1d(Math.ceil(n / 256)));
}
