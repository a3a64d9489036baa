/**
 * `loraMerge`: adds a LoRA's low-rank update to a weight in place (w += scale · B · A), or blends a
 * dense replacement into it (w = (1 − s) · w + s · d), computed in f32 and stored in the weight's
 * own precision. See `src/models/valle/LORA.md` for the layouts it serves.
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { KernelSpec, Recorder, Tensor } from "../backends/backend.ts";
import { numel } from "../backends/tensor.ts";
import { OptionError } from "../errors.ts";
import { expectDtype, expectShape, weightType } from "./_check.ts";
import { grid1d } from "./_grid.ts";
import type { OpKernel } from "./_kernels.ts";

const LORA_MERGE: KernelSpec = {
  shader: "lora_merge",
  bindings: ["write", "read", "read"],
  params: ["u32", "u32", "u32", "u32", "u32", "u32", "f32", "f32"],
};

/** The kernels the LoRA merge may dispatch, for warming at load (`kernelUses`). */
export const LORA_KERNELS: readonly OpKernel[] = [{ spec: LORA_MERGE }];

/**
 * Records w += scale · (B · A), the product read in w's element order: B (rows, rank) · A (rank,
 * cols) with rows · cols = the elements of w (LoRALinear's (out, in), or ParameterizedLoRA's
 * (in, out) viewed as (out, in)). Summed over the rank in order, in f32.
 *
 * @param rec The recorder.
 * @param w The weight, f16 or f32, updated in place (any shape; a view is fine).
 * @param a `lora_A` (rank, cols), f32.
 * @param b `lora_B` (rows, rank), f32.
 * @param scale strength · alpha / rank.
 * @throws {OptionError} Factors of rank 0, or whose product does not have w's element count;
 * nothing is recorded then.
 *
 * @example
 * ```ts ignore
 * loraMerge(rec, weights.layers[0].qProj, a, b, strength * alpha / rank);
 * ```
 */
export function loraMerge(rec: Recorder, w: Tensor, a: Tensor, b: Tensor, scale: number): void {
  const op = "loraMerge";
  const [rank, cols] = a.shape;
  expectShape(op, "a", a, [-1, -1]);
  expectShape(op, "b", b, [-1, rank]);
  expectDtype(op, "a", a, "f32");
  expectDtype(op, "b", b, "f32");
  if (rank < 1) {
    throw new OptionError(
      `Cannot record ${op}: a [${a.shape}] has rank ${rank}, expected at least 1`,
    );
  }
  const n = numel(w.shape);
  if (b.shape[0] * cols !== n) {
    throw new OptionError(
      `Cannot record ${op}: b [${b.shape}] · a [${a.shape}] has ${b.shape[0] * cols} elements, ` +
        `w [${w.shape}] has ${n}`,
    );
  }
  dispatch(rec, w, a, b, [n, cols, rank, w.offset, a.offset, b.offset, 1, scale]);
}

/**
 * Records w = (1 − s) · w + s · d elementwise, in f32: a dense replacement (an embedding table
 * saved with a LoRA) applied with strength s; s = 1 stores d exactly as the weight type rounds it.
 *
 * @param rec The recorder.
 * @param w The weight, f16 or f32, updated in place.
 * @param d The replacement, f32, with w's element count.
 * @param strength s.
 *
 * @example
 * ```ts ignore
 * blendWeight(rec, rows(weights.embeddings, layout.phn, nPhn), replacement, 1);
 * ```
 */
export function blendWeight(rec: Recorder, w: Tensor, d: Tensor, strength: number): void {
  const op = "blendWeight";
  expectDtype(op, "d", d, "f32");
  const n = numel(w.shape);
  if (numel(d.shape) !== n) {
    throw new OptionError(`Cannot record ${op}: d [${d.shape}] does not match w [${w.shape}]`);
  }
  dispatch(rec, w, d, d, [n, 1, 0, w.offset, d.offset, d.offset, 1 - strength, strength]);
}

function dispatch(rec: Recorder, w: Tensor, a: Tensor, b: Tensor, params: number[]): void {
  const weights = weightType("loraMerge", "w", w);
  rec.dispatch(LORA_MERGE, [w, a, b], params, grid1d(Math.ceil(params[0] / 256)), { weights });
}
