/**
 * One training step, recorded: the packed batch embedded, every block forward (keeping only the
 * residual stream at block boundaries), each item's head and cross-entropy over its scored rows,
 * then every block backward (recomputing its inside), the LoRA gradients summed into the flat
 * gradient vector; and the optimizer update (gradient norm, clipping, AdamW), all on the device.
 * One readback per step brings the per-row loss statistics and the gradient norm.
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { Backend, Recorder, Tensor } from "../backends/backend.ts";
import { rows, writeTensor } from "../backends/tensor.ts";
import type { ValleBase } from "../models/valle/model.ts";
import { adamw, clipFactor, sumSquares } from "../ops/adamw.ts";
import { crossEntropy } from "../ops/cross_entropy.ts";
import { embeddingSum } from "../ops/embedding.ts";
import { linear } from "../ops/linear.ts";
import { linearBackward } from "../ops/linear_backward.ts";
import { rmsNorm } from "../ops/norm.ts";
import { rmsNormBackward } from "../ops/norm_backward.ts";
import type { PackedBatch } from "./batch.ts";
import { blockBackward, type BlockContext, blockForward } from "./block.ts";
import type { LoraLayout } from "./lora_params.ts";
import type { TrainState } from "./state.ts";

/**
 * Writes a packed batch's rows into the state (queue writes, before the step is recorded).
 *
 * @param backend The device.
 * @param state The training buffers (capacity ≥ batch rows).
 * @param batch The batch.
 */
export function uploadBatch(backend: Backend, state: TrainState, batch: PackedBatch): void {
  const n = batch.rows;
  writeTensor(backend, rows(state.ids, 0, n), batch.ids);
  writeTensor(backend, rows(state.positions, 0, n), batch.positions);
  writeTensor(backend, rows(state.spans, 0, n), batch.spans);
  writeTensor(backend, rows(state.keyQueries, 0, n), batch.keyQueries);
  writeTensor(backend, rows(state.labels, 0, n), batch.labels);
  writeTensor(backend, rows(state.weights, 0, n), batch.weights);
}

/** The logits view of each item, one after another in `state.logits`. */
function itemLogits(
  model: Pick<ValleBase, "config" | "weights">,
  state: TrainState,
  batch: PackedBatch,
): Tensor[] {
  let at = state.logits.offset;
  return batch.items.map((item) => {
    const outputs = model.weights.heads[item.head].weight.shape[0];
    const t: Tensor = { ...state.logits, shape: [item.readLength, outputs], offset: at };
    at += item.readLength * outputs;
    return t;
  });
}

/** Options of {@linkcode recordStep}. */
export interface StepOptions {
  /** Record the backward pass. Default true (false: an evaluation pass, without dropout). */
  backward?: boolean;
  /**
   * Dropout on the LoRA branches' inputs (upstream's `LoRALinear.dropout`): the probability and
   * the micro-batch's seed. Default none.
   */
  dropout?: { p: number; seed: number };
}

/**
 * Records the forward pass, the loss and (unless `backward` is false) the backward pass of an
 * uploaded batch. Gradients are added to `state.grads` (cleared by the optimizer step), so
 * micro-batches accumulate; `state.stats` holds each scored row's weighted loss and top-10 hit.
 *
 * @param rec The recorder.
 * @param model The frozen model.
 * @param state The training buffers.
 * @param lora The LoRA layout of `state.params`.
 * @param batch The uploaded batch.
 * @param options Backward pass or not, LoRA dropout.
 */
export function recordStep(
  rec: Recorder,
  model: Pick<ValleBase, "config" | "weights">,
  state: TrainState,
  lora: LoraLayout,
  batch: PackedBatch,
  options: StepOptions = {},
): void {
  const { config, weights } = model;
  const { backward = true } = options;
  const count = batch.rows;
  const dropout = backward ? options.dropout : undefined;
  const ctx: BlockContext = { rec, config, state, lora, count, dropout };
  const eps = config.rmsEps;
  rec.clear(rows(state.stats, 0, count));
  embeddingSum(rec, rows(state.xs[0], 0, count), rows(state.ids, 0, count), weights.embeddings);
  weights.layers.forEach((w, l) => {
    blockForward(ctx, w, l);
    rec.submit();
  });

  const top = state.xs[config.nLayers];
  if (backward) rec.clear(rows(state.dx, 0, count));
  const logits = itemLogits(model, state, batch);
  batch.items.forEach((item, i) => {
    const at = (t: Tensor) => rows(t, item.readStart, item.readLength);
    const head = weights.heads[item.head];
    rmsNorm(rec, at(state.h), at(top), weights.norm, eps);
    linear(rec, logits[i], at(state.h), head.weight, head.bias);
    crossEntropy(rec, logits[i], at(state.stats), logits[i], at(state.labels), at(state.weights));
    if (!backward) return;
    linearBackward(rec, at(state.dh), logits[i], head.weight);
    rmsNormBackward(rec, at(state.dx), at(state.dh), at(top), weights.norm, eps);
  });
  if (!backward) return;
  for (let l = config.nLayers - 1; l >= 0; l--) {
    rec.submit();
    // The last block's activations are still there from the forward pass: not recomputed.
    blockBackward(ctx, weights.layers[l], l, l === config.nLayers - 1);
  }
}

/** AdamW and clipping settings of {@linkcode recordOptimizerStep}. */
export interface OptimizerSettings {
  /** Learning rate. */
  learningRate: number;
  /** AdamW β1 (upstream 0.9). */
  beta1: number;
  /** AdamW β2 (upstream 0.96). */
  beta2: number;
  /** AdamW ε (upstream 1e-7). */
  eps: number;
  /** Decoupled weight decay (upstream 0.01). */
  weightDecay: number;
  /** Gradient clipping: the total L2 norm (upstream 1.0). */
  maxGradNorm: number;
}

/**
 * Records the optimizer update over the summed gradients: their total norm, the clipping factor
 * `min(1, maxGradNorm / (norm + 1e-6))`, AdamW on the clipped gradients, then clears them.
 *
 * @param rec The recorder.
 * @param state The training buffers.
 * @param settings Learning rate, betas, ε, decay and clipping.
 * @param step The update's number, from 1 (AdamW's bias correction).
 */
export function recordOptimizerStep(
  rec: Recorder,
  state: TrainState,
  settings: OptimizerSettings,
  step: number,
): void {
  rec.clear(state.sumSquares);
  sumSquares(rec, state.sumSquares, state.grads, { partials: state.partials });
  clipFactor(rec, state.clip, state.sumSquares, settings.maxGradNorm);
  adamw(rec, state.params, state.grads, state.m1, state.m2, state.clip, {
    lr: settings.learningRate,
    beta1: settings.beta1,
    beta2: settings.beta2,
    eps: settings.eps,
    weightDecay: settings.weightDecay,
    step,
  });
  rec.clear(state.grads);
}

/** The loss of a batch, as upstream reports it. */
export interface BatchLoss {
  /** Mean over the scored items of each item's mean cross-entropy (upstream's `loss.nll`). */
  loss: number;
  /** Mean over the scored items of each item's top-10 accuracy (upstream's `acc`). */
  accuracy: number;
  /** Each item's mean cross-entropy (NaN for an item with no scored row). */
  itemLosses: number[];
  /** Scored rows. */
  tokens: number;
}

/**
 * The loss of a batch from its rows' statistics (`state.stats` as read back).
 *
 * @param batch The batch.
 * @param stats (rows, 2): each row's weighted loss and top-10 hit.
 */
export function batchLoss(batch: PackedBatch, stats: Float32Array): BatchLoss {
  const itemLosses: number[] = [];
  let [loss, accuracy, scoredItems, tokens] = [0, 0, 0, 0];
  for (const item of batch.items) {
    let [nll, hits] = [0, 0];
    for (let r = item.readStart; r < item.readStart + item.readLength; r++) {
      if (batch.weights[r] === 0) continue;
      nll += stats[2 * r] / batch.weights[r];
      hits += stats[2 * r + 1];
    }
    if (item.scored === 0) {
      itemLosses.push(NaN);
      continue;
    }
    itemLosses.push(nll / item.scored);
    loss += nll / item.scored;
    accuracy += hits / item.scored;
    scoredItems++;
    tokens += item.scored;
  }
  return {
    loss: scoredItems ? loss / scoredItems : NaN,
    accuracy: scoredItems ? accuracy / scoredItems : NaN,
    itemLosses,
    tokens,
  };
}
