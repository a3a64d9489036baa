/**
 * Readout: the final RMSNorm and one output head (`classifiers.proj.N`, biased) applied only to
 * the rows whose logits are read (the last position for AR/len/STT, the response rows for NAR and
 * NAR-len), not to the whole sequence as the original does.
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { Recorder, Tensor } from "../../backends/backend.ts";
import { rows } from "../../backends/tensor.ts";
import { linear } from "../../ops/linear.ts";
import { rmsNorm } from "../../ops/norm.ts";
import { normLinear } from "../../ops/fused.ts";
import { fusedRows, type ValleModelParts } from "./forward.ts";
import type { ValleRunState } from "./state.ts";

/**
 * Records logits = head(RMSNorm(x[from .. from + count))) into `out`.
 *
 * @param rec The recorder.
 * @param model Config and weights.
 * @param state The run state; `state.x` holds the pass's residual stream.
 * @param from First row of `state.x` to read.
 * @param head Head index (`classifiers.proj.{head}`).
 * @param out Logits (count, outputs of the head), f32.
 *
 * @example
 * ```ts ignore
 * readout(rec, model, state, seq.readStart, seq.head, rows(logits, 0, seq.readLength));
 * ```
 */
export function readout(
  rec: Recorder,
  model: ValleModelParts,
  state: ValleRunState,
  from: number,
  head: number,
  out: Tensor,
): void {
  const count = out.shape[0];
  const x = rows(state.x, from, count);
  const { weight, bias } = model.weights.heads[head];
  const eps = model.config.rmsEps;
  if (fusedRows(model.config, count) && x.offset % 4 === 0) {
    normLinear(rec, out, x, model.weights.norm, weight, { eps, bias });
    return;
  }
  const h = rows(state.h, 0, count);
  rmsNorm(rec, h, x, model.weights.norm, eps);
  linear(rec, out, h, weight, bias);
}

/** A (rows, head outputs) view of a logits buffer starting at row `row`. */
export function logitRows(
  buffer: Tensor,
  row: number,
  count: number,
  outputs: number,
): Tensor {
  return {
    buffer: buffer.buffer,
    dtype: "f32",
    shape: [count, outputs],
    offset: buffer.offset + row * outputs,
  };
}
