/**
 * The buffers of a training run, allocated once for a row capacity and a LoRA layout: the packed
 * batch's inputs, the residual stream at every block boundary (the only activations kept between
 * the forward and the backward pass: each block's inside is recomputed during the backward pass),
 * one block's activations and gradients, the logits of the scored rows, and the LoRA's
 * parameters, gradients and AdamW moments as flat vectors.
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { Backend, Tensor } from "../backends/backend.ts";
import { createTensor, destroyTensors } from "../backends/tensor.ts";
import { OptionError } from "../errors.ts";
import type { ValleConfig } from "../models/valle/config.ts";
import { SUM_SQUARES_PARTIALS } from "../ops/adamw.ts";
import { attentionBackwardScratchSize } from "../ops/attention_backward.ts";
import { createRopeTable } from "../ops/rope.ts";
import type { LoraLayout } from "./lora_params.ts";

/** The widest head: the AR's 1,024 codes and the stop token. */
function widestHead(config: ValleConfig): number {
  return config.nAudio + 1;
}

/** The buffers of one training run. */
export interface TrainState {
  /** Rows a batch may pack. */
  readonly capacity: number;
  /** Embedding ids (capacity, terms) u32. */
  readonly ids: Tensor;
  /** Position ids (capacity) u32. */
  readonly positions: Tensor;
  /** Key span of each query (capacity, 2) u32. */
  readonly spans: Tensor;
  /** Candidate queries of each key (capacity, 2) u32. */
  readonly keyQueries: Tensor;
  /** Label of each row (capacity) u32. */
  readonly labels: Tensor;
  /** Loss weight of each row (capacity) f32. */
  readonly weights: Tensor;
  /** Per row: weighted loss and top-10 hit (capacity, 2) f32. */
  readonly stats: Tensor;
  /** The residual stream entering each block, and after the last: (nLayers + 1) × (capacity, d). */
  readonly xs: readonly Tensor[];
  /** Normed rows (capacity, d). */
  readonly h: Tensor;
  /** Queries after RoPE (capacity, d). */
  readonly q: Tensor;
  /** Keys after RoPE (capacity, d). */
  readonly k: Tensor;
  /** Values (capacity, d). */
  readonly v: Tensor;
  /** Attention output (capacity, d). */
  readonly att: Tensor;
  /** The residual stream between attention and MLP (capacity, d). */
  readonly mid: Tensor;
  /** Gate and up projections before the activation (capacity, dFf) each. */
  readonly g: Tensor;
  /** Up projection (capacity, dFf). */
  readonly u: Tensor;
  /** gelu(g) ⊙ u (capacity, dFf). */
  readonly m: Tensor;
  /** x · Aᵀ of each adapted projection of a block (capacity, rank), in `LORA_MODULES` order. */
  readonly t: readonly Tensor[];
  /** Gradient of the residual stream (capacity, d). */
  readonly dx: Tensor;
  /** Gradient of normed rows (capacity, d). */
  readonly dh: Tensor;
  /** Gradients of q, k, v and the attention output (capacity, d) each. */
  readonly dq: Tensor;
  /** Gradient of k. */
  readonly dk: Tensor;
  /** Gradient of v. */
  readonly dv: Tensor;
  /** Gradient of the attention output. */
  readonly datt: Tensor;
  /** Gradients of g, u and m (capacity, dFf) each. */
  readonly dg: Tensor;
  /** Gradient of u. */
  readonly du: Tensor;
  /** Gradient of m. */
  readonly dm: Tensor;
  /** A LoRA branch's input after dropout, then its gradient (capacity · max(d, dFf)) f32. */
  readonly drop: Tensor;
  /** Gradient of a projection's x · Aᵀ (capacity, rank). */
  readonly dt: Tensor;
  /** Logits of the scored rows, item after item (capacity · widest head) f32. */
  readonly logits: Tensor;
  /** Attention backward's per-row statistics. */
  readonly attentionScratch: Tensor;
  /** RoPE angles for positions below the capacity. */
  readonly rope: Tensor;
  /** LoRA parameters (layout.size) f32. */
  readonly params: Tensor;
  /** Their gradients, summed over micro-batches until the optimizer step. */
  readonly grads: Tensor;
  /** AdamW first moments. */
  readonly m1: Tensor;
  /** AdamW second moments. */
  readonly m2: Tensor;
  /** Σ grad² (1) f32. */
  readonly sumSquares: Tensor;
  /** The clipping factor (1) f32. */
  readonly clip: Tensor;
  /** The first pass of the gradient norm (`SUM_SQUARES_PARTIALS`) f32. */
  readonly partials: Tensor;
}

/**
 * Bytes a training state of `capacity` rows takes for a model and a LoRA layout.
 *
 * @param config The model.
 * @param layout The LoRA layout.
 * @param capacity Rows.
 */
export function trainStateBytes(config: ValleConfig, layout: LoraLayout, capacity: number): number {
  const { dModel: d, dFf: f, nLevels, nLayers } = config;
  // ids, positions, spans, key queries, labels, weights, stats; the residual stream at every
  // block boundary, six activations and six gradients of width d, three of each of width dFf,
  // the dropout scratch, seven of the rank's width, and the logits.
  const words = nLevels + 9 + (nLayers + 13) * d + 6 * f + Math.max(d, f) + 7 * layout.rank +
    widestHead(config);
  return 4 * capacity * words + 4 * 4 * layout.size + 4 * (2 + SUM_SQUARES_PARTIALS) +
    4 * attentionBackwardScratchSize(capacity, config.nHeads);
}

/**
 * Allocates the buffers of a training run.
 *
 * @param backend The device.
 * @param config The model.
 * @param layout The LoRA layout.
 * @param capacity Rows a batch may pack.
 * @throws {OptionError} A capacity below 1, or a buffer above the backend's binding limit (naming
 * it and the option to lower).
 */
export function createTrainState(
  backend: Backend,
  config: ValleConfig,
  layout: LoraLayout,
  capacity: number,
): TrainState {
  if (!Number.isInteger(capacity) || capacity < 1) {
    throw new OptionError(`Training capacity is ${capacity} rows, expected a positive integer`);
  }
  const { dModel: d, dFf: f, nLayers, nLevels, nHeads, headDim, ropeTheta } = config;
  const widest = Math.max(capacity * Math.max(widestHead(config), f), layout.size) * 4;
  if (widest > backend.maxBindingBytes) {
    throw new OptionError(
      `A training batch of ${capacity} rows needs a ${widest}-byte buffer, above this backend's ` +
        `binding limit of ${backend.maxBindingBytes} bytes: lower maxRows (or the LoRA rank)`,
    );
  }
  const created: Tensor[] = [];
  const make = (shape: number[], dtype: "f32" | "u32", label: string) => {
    const t = createTensor(backend, shape, dtype, `train.${label}`);
    created.push(t);
    return t;
  };
  const f32 = (shape: number[], label: string) => make(shape, "f32", label);
  const u32 = (shape: number[], label: string) => make(shape, "u32", label);
  const rows = (width: number, label: string) => f32([capacity, width], label);
  try {
    const rope = createRopeTable(backend, headDim, ropeTheta, capacity);
    created.push(rope);
    const state: TrainState = {
      capacity,
      ids: u32([capacity, nLevels], "ids"),
      positions: u32([capacity], "positions"),
      spans: u32([capacity, 2], "spans"),
      keyQueries: u32([capacity, 2], "keyQueries"),
      labels: u32([capacity], "labels"),
      weights: f32([capacity], "weights"),
      stats: rows(2, "stats"),
      xs: Array.from({ length: nLayers + 1 }, (_, l) => rows(d, `x${l}`)),
      h: rows(d, "h"),
      q: rows(d, "q"),
      k: rows(d, "k"),
      v: rows(d, "v"),
      att: rows(d, "att"),
      mid: rows(d, "mid"),
      g: rows(f, "g"),
      u: rows(f, "u"),
      m: rows(f, "m"),
      t: Array.from({ length: 6 }, (_, i) => rows(layout.rank, `t${i}`)),
      dx: rows(d, "dx"),
      dh: rows(d, "dh"),
      dq: rows(d, "dq"),
      dk: rows(d, "dk"),
      dv: rows(d, "dv"),
      datt: rows(d, "datt"),
      dg: rows(f, "dg"),
      du: rows(f, "du"),
      dm: rows(f, "dm"),
      drop: f32([capacity * Math.max(d, f)], "drop"),
      dt: rows(layout.rank, "dt"),
      logits: f32([capacity * widestHead(config)], "logits"),
      attentionScratch: f32([attentionBackwardScratchSize(capacity, nHeads)], "attention"),
      rope,
      params: f32([layout.size], "lora"),
      grads: f32([layout.size], "grads"),
      m1: f32([layout.size], "adam.m"),
      m2: f32([layout.size], "adam.v"),
      sumSquares: f32([1], "sumSquares"),
      clip: f32([1], "clip"),
      partials: f32([SUM_SQUARES_PARTIALS], "partials"),
    };
    return state;
  } catch (e) {
    destroyTensors(created);
    throw e;
  }
}
