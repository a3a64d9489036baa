/**
 * Every kernel a training run may dispatch (the forward ops of a block and its backward twins, the
 * heads' cross-entropy and the optimizer), compiled before the first step so that a WebGPU run
 * does not stall on a pipeline compile in its first step.
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { Backend, KernelUse, Tensor } from "../backends/backend.ts";
import { weightKinds } from "../models/valle/kernels.ts";
import type { ValleWeights } from "../models/valle/weights.ts";
import { kernelUses, type OpKernel } from "../ops/_kernels.ts";
import { ADAMW_KERNELS } from "../ops/adamw.ts";
import { ATTENTION_KERNELS } from "../ops/attention.ts";
import { ATTENTION_BACKWARD_KERNELS } from "../ops/attention_backward.ts";
import { CROSS_ENTROPY_KERNELS } from "../ops/cross_entropy.ts";
import { DROPOUT_KERNELS } from "../ops/dropout.ts";
import { EMBEDDING_KERNELS } from "../ops/embedding.ts";
import { LINEAR_KERNELS } from "../ops/linear.ts";
import { MATMUL_KERNELS } from "../ops/matmul.ts";
import { MLP_BACKWARD_KERNELS, MLP_KERNELS } from "../ops/mlp.ts";
import { NORM_KERNELS } from "../ops/norm.ts";
import { NORM_BACKWARD_KERNELS } from "../ops/norm_backward.ts";
import { ROPE_KERNELS } from "../ops/rope.ts";

/** The kernels of a training step (`matmul` also serves `linearBackward`). */
export const TRAIN_KERNELS: readonly OpKernel[] = [
  ...ADAMW_KERNELS,
  ...ATTENTION_KERNELS,
  ...ATTENTION_BACKWARD_KERNELS,
  ...CROSS_ENTROPY_KERNELS,
  ...DROPOUT_KERNELS,
  ...EMBEDDING_KERNELS,
  ...LINEAR_KERNELS,
  ...MATMUL_KERNELS,
  ...MLP_KERNELS,
  ...MLP_BACKWARD_KERNELS,
  ...NORM_KERNELS,
  ...NORM_BACKWARD_KERNELS,
  ...ROPE_KERNELS,
];

/** The weight tensors of a model. */
function* weightTensors(weights: ValleWeights): Iterable<Tensor> {
  yield weights.embeddings;
  yield weights.norm;
  for (const layer of weights.layers) {
    for (const t of Object.values(layer)) if (t) yield t;
  }
  for (const head of weights.heads) {
    yield head.weight;
    if (head.bias) yield head.bias;
  }
}

/**
 * The kernel variants a training run over `weights` may dispatch on `backend`.
 *
 * @param backend The device.
 * @param weights The frozen model's weights.
 */
export function trainKernelUses(backend: Backend, weights: ValleWeights): KernelUse[] {
  return kernelUses(TRAIN_KERNELS, weightKinds(backend, weightTensors(weights)));
}
