/**
 * `lstmLayer`: the recurrence of one PyTorch `nn.LSTM` layer, one dispatch per time step, all
 * recorded into the same compute pass. The input projection W_ih·x + b_ih + b_hh of every step
 * is computed beforehand by one GEMM (it does not depend on the recurrence), so a step is only
 * the 4H×H mat-vec W_hh·h plus the cell update (shaders/lstm_step.wgsl).
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { KernelSpec, Recorder, Tensor } from "../backends/backend.ts";
import { expectDtype, expectShape, weightType } from "./_check.ts";
import type { OpKernel } from "./_kernels.ts";

const LSTM_STEP: KernelSpec = {
  shader: "lstm_step",
  bindings: ["write", "write", "read", "read"],
  params: ["u32", "u32", "u32", "u32", "u32", "u32"],
};

/** The kernels the LSTM may dispatch, for warming at load (`kernelUses`). */
export const LSTM_KERNELS: readonly OpKernel[] = [{ spec: LSTM_STEP }];

/** Hidden units per workgroup of the step kernel. */
const UNITS = 8;

/**
 * Records the T steps of one LSTM layer.
 *
 * @param rec The recorder.
 * @param hs Hidden states (T + 1, H), f32: row 0 holds the initial state h₀ (zeros, or the last
 * row of the previous chunk); steps write rows 1..T.
 * @param c Cell state (H), f32, updated in place (zeros at the start of a sequence).
 * @param gx Input projections (T, 4H), f32: W_ih·x_t + b_ih + b_hh, gates in PyTorch order
 * i, f, g, o.
 * @param whh Recurrent weight (4H, H), f16 or f32.
 *
 * @example
 * ```ts ignore
 * conv1d(rec, gx, x, wih, bias); // the input projection, a 1×1 convolution
 * lstmLayer(rec, hs, c, gx, whh);
 * ```
 */
export function lstmLayer(
  rec: Recorder,
  hs: Tensor,
  c: Tensor,
  gx: Tensor,
  whh: Tensor,
): void {
  const op = "lstmLayer";
  const [steps, gates] = gx.shape;
  const h = gates / 4;
  const weights = weightType(op, "whh", whh);
  expectShape(op, "gx", gx, [-1, 4 * h]);
  expectShape(op, "whh", whh, [4 * h, h]);
  expectShape(op, "hs", hs, [steps + 1, h]);
  expectShape(op, "c", c, [h]);
  for (const [name, t] of [["hs", hs], ["c", c], ["gx", gx]] as const) {
    expectDtype(op, name, t, "f32");
  }
  const groups = Math.ceil(h / UNITS);
  for (let t = 0; t < steps; t++) {
    rec.dispatch(LSTM_STEP, [hs, c, gx, whh], [h, t, hs.offset, c.offset, gx.offset, whh.offset], [
      groups,
    ], { weights });
  }
}
