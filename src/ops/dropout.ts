/**
 * `dropout`: y (+)= mask ⊙ x / (1 − p) with a mask drawn from (seed, element index) by an integer
 * hash, the same on every backend, so a backward pass redraws its forward pass's mask from the
 * seed instead of storing it. LoRA training drops each adapted projection's input (upstream's
 * `LoRALinear.dropout`).
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { KernelSpec, Recorder, Tensor } from "../backends/backend.ts";
import { numel } from "../backends/tensor.ts";
import { OptionError } from "../errors.ts";
import { expectDtype, expectShape } from "./_check.ts";
import { grid1d } from "./_grid.ts";
import type { OpKernel } from "./_kernels.ts";

const DROPOUT: KernelSpec = {
  shader: "dropout",
  bindings: ["write", "read"],
  params: ["u32", "u32", "u32", "u32", "u32", "u32", "f32"],
};

/** The kernels `dropout` may dispatch, for warming (`kernelUses`). */
export const DROPOUT_KERNELS: readonly OpKernel[] = [{ spec: DROPOUT }];

/** Options of {@linkcode dropout}. */
export interface DropoutOptions {
  /** The probability that an element is dropped, in [0, 1). */
  p: number;
  /** Seeds the mask (a 32-bit integer); the same seed gives the same mask. */
  seed: number;
  /** Add to what y holds (the backward pass into a gradient). Default false. */
  accumulate?: boolean;
}

/**
 * Whether element `i` is kept by the mask of `seed` at probability `p`: what the kernels draw.
 *
 * @example
 * ```ts
 * import { dropoutKeeps } from "./dropout.ts";
 * const kept = Array.from({ length: 1000 }, (_, i) => dropoutKeeps(7, 0.25, i)).filter(Boolean);
 * console.assert(kept.length > 700 && kept.length < 800);
 * ```
 */
export function dropoutKeeps(seed: number, p: number, i: number): boolean {
  return lowbias32((i ^ lowbias32(seed >>> 0)) >>> 0) >= threshold(p);
}

/**
 * Records y (+)= mask ⊙ x / (1 − p), element by element over the views' elements in order.
 *
 * @param rec The recorder.
 * @param y Output, f32 (a buffer apart from x's).
 * @param x Input, f32, with y's shape.
 * @param options Probability, seed, accumulation.
 * @throws {OptionError} A probability outside [0, 1), a seed that is not a 32-bit unsigned
 * integer, or tensors of other shapes or types.
 *
 * @example
 * ```ts ignore
 * dropout(rec, dropped, h, { p: 0.1, seed: 42 });
 * ```
 */
export function dropout(rec: Recorder, y: Tensor, x: Tensor, options: DropoutOptions): void {
  const op = "dropout";
  const { p, seed, accumulate = false } = options;
  expectDtype(op, "y", y, "f32");
  expectDtype(op, "x", x, "f32");
  expectShape(op, "x", x, y.shape);
  if (!(p >= 0 && p < 1)) throw new OptionError(`Cannot record ${op}: p is ${p}, expected [0, 1)`);
  if (!(Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff)) {
    throw new OptionError(
      `Cannot record ${op}: seed is ${seed}, expected a 32-bit unsigned integer`,
    );
  }
  const n = numel(y.shape);
  rec.dispatch(
    DROPOUT,
    [y, x],
    [n, y.offset, x.offset, seed, threshold(p), accumulate ? 1 : 0, 1 / (1 - p)],
    grid1d(Math.ceil(n / 256)),
  );
}

/** The mask's threshold: elements whose hash is below it are dropped. */
function threshold(p: number): number {
  return Math.min(0xffffffff, Math.round(p * 2 ** 32));
}

/** Chris Wellons' lowbias32, as the kernels compute it. */
function lowbias32(v: number): number {
  let h = v >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d) >>> 0;
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}
