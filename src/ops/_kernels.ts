/**
 * The kernels an op may dispatch, listed next to its specs, and their expansion into the
 * variants a model warms at load ({@linkcode kernelUses}): each kernel for every float weight type
 * the model holds, quantized kernels only for the layouts it holds.
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { KernelSpec, KernelUse, QuantDtype } from "../backends/backend.ts";

/** A kernel an op may dispatch. */
export interface OpKernel {
  /** The kernel. */
  readonly spec: KernelSpec;
  /** The `override` constants it is dispatched with, if any. */
  readonly constants?: Readonly<Record<string, number>>;
  /** The quantized layouts it serves: needed only by a model holding one of them. */
  readonly quant?: readonly QuantDtype[];
}

/** The weight types a model holds. */
export interface WeightKinds {
  /** Float weight types: the backend's `weightDtype` and those of the model's float tensors. */
  readonly floats: Iterable<"f16" | "f32">;
  /** Quantized layouts among the model's tensors. */
  readonly quants: Iterable<QuantDtype>;
}

/**
 * Expands op kernel lists into the variants to warm: each for every float type (a kernel's
 * weight type is either the backend's default or a tensor's), quantized ones for the model's
 * layouts only. Some variants may never be dispatched; none that is dispatched is missing.
 *
 * @param kernels The kernels of the ops a model uses.
 * @param kinds The weight types it holds.
 */
export function kernelUses(kernels: readonly OpKernel[], kinds: WeightKinds): KernelUse[] {
  const floats = [...new Set(kinds.floats)];
  const quants = new Set(kinds.quants);
  const uses: KernelUse[] = [];
  for (const { spec, constants, quant } of kernels) {
    if (quant && !quant.some((q) => quants.has(q))) continue;
    for (const weights of floats) uses.push({ spec, variant: { weights, constants } });
  }
  return uses;
}
