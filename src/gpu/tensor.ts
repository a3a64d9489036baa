/**
 * {@linkcode GpuTensor}: a typed, shaped view of a GPU buffer, the only tensor abstraction of the
 * library. Ops read shapes from it at record time and pass element offsets to kernels, so a view
 * of rows inside a larger buffer (a KV cache, a stacked embedding table) costs nothing.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { OptionError } from "../errors.ts";

/** Element type of a GPU tensor. */
export type GpuDtype = "f32" | "f16" | "u32" | "i32";

/** A shaped view of (part of) a GPU buffer. */
export interface GpuTensor {
  /** The buffer holding the elements. */
  readonly buffer: GPUBuffer;
  /** The element type. */
  readonly dtype: GpuDtype;
  /** Logical shape, row-major. */
  readonly shape: readonly number[];
  /** Element offset of the first element inside `buffer`. */
  readonly offset: number;
}

/** Bytes per element of each dtype. */
export const DTYPE_BYTES: Readonly<Record<GpuDtype, number>> = { f32: 4, f16: 2, u32: 4, i32: 4 };

/** The number of elements of a shape. */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * A view of rows `[start, start + count)` of the first dimension of `t`.
 *
 * @example
 * ```ts ignore
 * const cache: GpuTensor = …; // (maxLen, dModel)
 * const next = rows(cache, pos, 1); // (1, dModel) at row pos
 * ```
 */
export function rows(t: GpuTensor, start: number, count: number): GpuTensor {
  const [n, ...rest] = t.shape;
  if (start < 0 || count < 0 || start + count > n) {
    throw new OptionError(
      `Cannot view rows [${start}, ${start + count}) of a tensor with ${n} rows`,
    );
  }
  return {
    buffer: t.buffer,
    dtype: t.dtype,
    shape: [count, ...rest],
    offset: t.offset + start * numel(rest),
  };
}

/** The same elements with another shape (same element count). */
export function reshape(t: GpuTensor, shape: readonly number[]): GpuTensor {
  if (numel(shape) !== numel(t.shape)) {
    throw new OptionError(`Cannot reshape [${t.shape}] to [${shape}]: element counts differ`);
  }
  return { ...t, shape };
}
