/**
 * Every kernel a VALL-E model may dispatch in a generation (decode, prefill, NAR, NAR-len,
 * classifier-free guidance, sampling), the list {@linkcode ValleModel.warm} compiles at load.
 * A kernel missing here is compiled at its first dispatch instead (`tests/gpu/warm_test.ts`
 * counts those).
 *
 * This module is browser compatible.
 *
 * @module
 */

import {
  type Backend,
  isQuantized,
  type KernelUse,
  type QuantDtype,
  type Tensor,
} from "../../backends/backend.ts";
import { kernelUses, type OpKernel, type WeightKinds } from "../../ops/_kernels.ts";
import { ATTENTION_KERNELS } from "../../ops/attention.ts";
import { EMBEDDING_KERNELS } from "../../ops/embedding.ts";
import { FUSED_KERNELS } from "../../ops/fused.ts";
import { LINEAR_KERNELS } from "../../ops/linear.ts";
import { MLP_KERNELS } from "../../ops/mlp.ts";
import { NORM_KERNELS } from "../../ops/norm.ts";
import { ROPE_KERNELS } from "../../ops/rope.ts";
import { SCATTER_KERNELS } from "../../ops/scatter.ts";
import { CFG_KERNELS } from "./cfg.ts";
import { FEED_KERNELS } from "./forward.ts";
import { DEMASK_KERNELS } from "./nar_len.ts";
import { SAMPLE_KERNELS } from "./sampler.ts";

/** The kernels of a VALL-E generation (LoRA merges, compiled when a LoRA is set, excepted). */
export const VALLE_KERNELS: readonly OpKernel[] = [
  ...ATTENTION_KERNELS,
  ...EMBEDDING_KERNELS,
  ...FUSED_KERNELS,
  ...LINEAR_KERNELS,
  ...MLP_KERNELS,
  ...NORM_KERNELS,
  ...ROPE_KERNELS,
  ...SCATTER_KERNELS,
  ...CFG_KERNELS,
  ...FEED_KERNELS,
  ...DEMASK_KERNELS,
  ...SAMPLE_KERNELS,
];

/**
 * The weight types of a model over `tensors` on `backend`: the backend's weight type and the
 * float types of the tensors, and their quantized layouts.
 *
 * @param backend The device.
 * @param tensors The model's weight tensors.
 */
export function weightKinds(backend: Backend, tensors: Iterable<Tensor>): WeightKinds {
  const floats = new Set<"f16" | "f32">([backend.weightDtype]);
  const quants = new Set<QuantDtype>();
  for (const { dtype } of tensors) {
    if (isQuantized(dtype)) quants.add(dtype);
    else if (dtype === "f16" || dtype === "f32") floats.add(dtype);
  }
  return { floats, quants };
}

/**
 * The kernel variants a VALL-E model over `tensors` may dispatch on `backend`: every kernel of
 * {@linkcode VALLE_KERNELS} for the backend's weight type and the float types of the tensors,
 * the quantized ones for the tensors' layouts.
 *
 * @param backend The device.
 * @param tensors The model's weight tensors.
 */
export function valleKernelUses(backend: Backend, tensors: Iterable<Tensor>): KernelUse[] {
  return kernelUses(VALLE_KERNELS, weightKinds(backend, tensors));
}
