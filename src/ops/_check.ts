/**
 * Record-time guards shared by the ops: shape and dtype checks that name the op and both shapes.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { OptionError } from "../errors.ts";
import type { Dtype, Tensor } from "../backends/backend.ts";

/** Throws unless `t` has exactly `shape` (`-1` matches any size). */
export function expectShape(
  op: string,
  name: string,
  t: Tensor,
  shape: readonly number[],
): void {
  const ok = t.shape.length === shape.length && shape.every((d, i) => d < 0 || d === t.shape[i]);
  if (!ok) {
    const want = shape.map((d) => (d < 0 ? "*" : String(d))).join(", ");
    throw new OptionError(
      `Cannot record ${op}: ${name} has shape [${t.shape}], expected [${want}]`,
    );
  }
}

/** Throws unless `t.dtype` is one of `dtypes`. */
export function expectDtype(op: string, name: string, t: Tensor, ...dtypes: Dtype[]): void {
  if (!dtypes.includes(t.dtype)) {
    throw new OptionError(
      `Cannot record ${op}: ${name} is ${t.dtype}, expected ${dtypes.join(" or ")}`,
    );
  }
}

/** The weight type of a weight tensor, for choosing the kernel variant. */
export function weightType(op: string, name: string, t: Tensor): "f16" | "f32" {
  expectDtype(op, name, t, "f16", "f32");
  return t.dtype as "f16" | "f32";
}

/**
 * Throws if a tensor that a dispatch writes shares its buffer with one that it only reads: on
 * WebGPU a buffer bound both writable and read-only in one dispatch is a usage conflict.
 *
 * @param written The written tensors, by name.
 * @param read The read tensors, by name.
 */
export function expectSeparate(
  op: string,
  written: readonly (readonly [string, Tensor])[],
  read: readonly (readonly [string, Tensor])[],
): void {
  for (const [w, tw] of written) {
    for (const [r, tr] of read) {
      if (tw.buffer === tr.buffer) {
        throw new OptionError(
          `Cannot record ${op}: ${w} shares a buffer with ${r}, which it reads`,
        );
      }
    }
  }
}
