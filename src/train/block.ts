/**
 * One LLaMA block of a training pass, forward and backward, with the LoRA unmerged: every adapted
 * projection computes y = x · Wᵀ + s · (x · Aᵀ) · Bᵀ (s = alpha / rank) over the frozen base
 * weight (f16, f32 or quantized), as upstream's `LoRALinear` does with dropout off. The forward
 * pass mirrors `src/models/valle/forward.ts`'s plain op chain (pre-norm attention with RoPE over
 * packed spans, gated GELU MLP); the backward pass recomputes the block's inside from the residual
 * stream that entered it, then walks back through it, adding the LoRA factors' gradients into the
 * flat gradient vector and leaving the gradient of the block's input in `state.dx`.
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { Recorder, Tensor } from "../backends/backend.ts";
import { rows } from "../backends/tensor.ts";
import type { ValleConfig } from "../models/valle/config.ts";
import type { ValleLayerWeights } from "../models/valle/weights.ts";
import { attention } from "../ops/attention.ts";
import { attentionBackward } from "../ops/attention_backward.ts";
import { dropout } from "../ops/dropout.ts";
import { linear } from "../ops/linear.ts";
import { linearBackward } from "../ops/linear_backward.ts";
import { matmul } from "../ops/matmul.ts";
import { geluMul, geluMulBackward } from "../ops/mlp.ts";
import { rmsNorm } from "../ops/norm.ts";
import { rmsNormBackward } from "../ops/norm_backward.ts";
import { rope } from "../ops/rope.ts";
import { LORA_MODULES, type LoraLayout, type LoraModule, type LoraSlot } from "./lora_params.ts";
import type { TrainState } from "./state.ts";

/** What a block's recording needs. */
export interface BlockContext {
  /** The recorder. */
  readonly rec: Recorder;
  /** The model. */
  readonly config: ValleConfig;
  /** The training buffers. */
  readonly state: TrainState;
  /** The LoRA layout. */
  readonly lora: LoraLayout;
  /** Rows of the batch. */
  readonly count: number;
  /**
   * Dropout on each adapted projection's input to its LoRA branch (upstream's
   * `LoRALinear.dropout`): the probability and the micro-batch's seed, from which each module
   * of each block draws its own mask. Absent: none (evaluation).
   */
  readonly dropout?: { readonly p: number; readonly seed: number };
}

/** The base weight each adapted module adds to. */
const BASE: Readonly<Record<LoraModule, keyof ValleLayerWeights>> = {
  q_proj: "qProj",
  v_proj: "vProj",
  o_proj: "oProj",
  gate_proj: "gateProj",
  up_proj: "upProj",
  down_proj: "downProj",
};

/** A view of the flat vector `flat` at a factor's offset. */
function factor(flat: Tensor, at: number, shape: [number, number]): Tensor {
  return { buffer: flat.buffer, dtype: "f32", shape, offset: flat.offset + at };
}

/**
 * The LoRA branch's input: x itself, or x with dropout into `state.drop` (the mask of block `l`'s
 * module, redrawn the same by the backward pass).
 */
function loraInput(ctx: BlockContext, l: number, module: LoraModule, x: Tensor): Tensor {
  if (!ctx.dropout || ctx.dropout.p === 0) return x;
  const dropped: Tensor = { ...ctx.state.drop, shape: x.shape };
  dropout(ctx.rec, dropped, x, { p: ctx.dropout.p, seed: moduleSeed(ctx.dropout.seed, l, module) });
  return dropped;
}

/** The dropout seed of module `module` of block `l` in a micro-batch seeded `seed`. */
function moduleSeed(seed: number, l: number, module: LoraModule): number {
  const id = l * LORA_MODULES.length + LORA_MODULES.indexOf(module);
  return (Math.imul(seed ^ 0x5bd1e995, 0x27d4eb2d) + Math.imul(id + 1, 0x165667b1)) >>> 0;
}

/** The slot of module `module` in block `l`. */
function slotOf(lora: LoraLayout, l: number, module: LoraModule): LoraSlot {
  return lora.slots[l * LORA_MODULES.length + LORA_MODULES.indexOf(module)];
}

/**
 * Records y = x · Wᵀ + s · (x · Aᵀ) · Bᵀ for module `module` of block `l`, keeping x · Aᵀ in
 * `state.t` for the backward pass; with `y` null, only x · Aᵀ.
 */
function adapted(
  ctx: BlockContext,
  w: ValleLayerWeights,
  l: number,
  module: LoraModule,
  y: Tensor | null,
  x: Tensor,
  accumulate = false,
): void {
  const { rec, state, lora, count } = ctx;
  const slot = slotOf(lora, l, module);
  const t = rows(state.t[LORA_MODULES.indexOf(module)], 0, count);
  const a = factor(state.params, slot.a, [lora.rank, slot.inFeatures]);
  matmul(rec, t, loraInput(ctx, l, module, x), a, { transB: true });
  if (y === null) return;
  linear(rec, y, x, w[BASE[module]] as Tensor, undefined, { accumulate });
  matmul(rec, y, t, factor(state.params, slot.b, [slot.outFeatures, lora.rank]), {
    transB: true,
    alpha: lora.alpha / lora.rank,
    accumulate: true,
  });
}

/**
 * Records the backward pass of {@linkcode adapted}: adds the factors' gradients (from dy, x and
 * the kept x · Aᵀ) and dx (+)= dy · W + s · (dy · B) · A (that last term through the dropout mask
 * of the forward pass, redrawn).
 */
function adaptedBackward(
  ctx: BlockContext,
  w: ValleLayerWeights,
  l: number,
  module: LoraModule,
  dx: Tensor,
  dy: Tensor,
  x: Tensor,
  accumulate: boolean,
): void {
  const { rec, state, lora, count } = ctx;
  const slot = slotOf(lora, l, module);
  const s = lora.alpha / lora.rank;
  const t = rows(state.t[LORA_MODULES.indexOf(module)], 0, count);
  const dt = rows(state.dt, 0, count);
  const a = factor(state.params, slot.a, [lora.rank, slot.inFeatures]);
  const b = factor(state.params, slot.b, [slot.outFeatures, lora.rank]);
  const ga = factor(state.grads, slot.a, [lora.rank, slot.inFeatures]);
  const gb = factor(state.grads, slot.b, [slot.outFeatures, lora.rank]);
  matmul(rec, gb, dy, t, { transA: true, alpha: s, accumulate: true }); // dB += s · dyᵀ · t
  matmul(rec, dt, dy, b, { alpha: s }); // dt = s · dy · B
  const input = loraInput(ctx, l, module, x);
  matmul(rec, ga, dt, input, { transA: true, accumulate: true }); // dA += dtᵀ · x
  linearBackward(rec, dx, dy, w[BASE[module]] as Tensor, { accumulate });
  if (input === x) {
    matmul(rec, dx, dt, a, { accumulate: true }); // dx += dt · A
    return;
  }
  // dx += mask ⊙ (dt · A) / (1 − p), through the same buffer (the dropped input is used up).
  matmul(rec, input, dt, a);
  dropout(rec, dx, input, {
    p: ctx.dropout!.p,
    seed: moduleSeed(ctx.dropout!.seed, l, module),
    accumulate: true,
  });
}

/** The batch's rows of block `l`'s input and of the activations its passes share. */
function activations(state: TrainState, l: number, count: number) {
  const r = (t: Tensor) => rows(t, 0, count);
  return {
    x: r(state.xs[l]),
    h: r(state.h),
    q: r(state.q),
    k: r(state.k),
    v: r(state.v),
    att: r(state.att),
    mid: r(state.mid),
    g: r(state.g),
    u: r(state.u),
    m: r(state.m),
  };
}

/**
 * Records block `l`'s forward pass from `state.xs[l]`, writing `state.xs[l + 1]` and leaving the
 * block's activations in the state for {@linkcode blockBackward}.
 *
 * @param ctx Recorder, model, state, LoRA and row count.
 * @param w The block's frozen weights.
 * @param l Its index.
 * @param recompute The backward pass's recomputation: `state.xs[l + 1]` is kept already, so the
 * down projection's output is not recomputed (its backward pass needs only its input and
 * x · Aᵀ). Default false.
 */
export function blockForward(
  ctx: BlockContext,
  w: ValleLayerWeights,
  l: number,
  recompute = false,
): void {
  const { rec, config, state, count } = ctx;
  const r = (t: Tensor) => rows(t, 0, count);
  const { x, h, q, k, v, att, mid, g, u, m } = activations(state, l, count);
  const heads = { heads: config.nHeads, headDim: config.headDim };
  const positions = r(state.positions);
  const eps = config.rmsEps;

  rmsNorm(rec, h, x, w.inputLayernorm, eps);
  adapted(ctx, w, l, "q_proj", q, h);
  linear(rec, k, h, w.kProj);
  adapted(ctx, w, l, "v_proj", v, h);
  rope(rec, q, positions, state.rope, heads);
  rope(rec, k, positions, state.rope, heads);
  attention(rec, att, q, k, v, {
    ...heads,
    kvLen: count,
    causal: false,
    spans: r(state.spans),
  });
  rec.copy(x, mid);
  adapted(ctx, w, l, "o_proj", mid, att, true);

  rmsNorm(rec, h, mid, w.postAttentionLayernorm, eps);
  adapted(ctx, w, l, "gate_proj", g, h);
  adapted(ctx, w, l, "up_proj", u, h);
  rec.copy(g, m);
  geluMul(rec, m, u);
  if (recompute) {
    adapted(ctx, w, l, "down_proj", null, m);
    return;
  }
  const next = r(state.xs[l + 1]);
  rec.copy(mid, next);
  adapted(ctx, w, l, "down_proj", next, m, true);
}

/**
 * Records block `l`'s backward pass: recomputes its forward pass from `state.xs[l]`, then turns
 * `state.dx`, the gradient of the block's output, into the gradient of its input, adding the
 * LoRA factors' gradients into `state.grads`.
 *
 * @param ctx Recorder, model, state, LoRA and row count.
 * @param w The block's frozen weights.
 * @param l Its index.
 * @param fresh The block was the last recorded forward, so its activations are still in the state
 * but for the MLP's normed input in `state.h` (which the heads' norm overwrote): only that is
 * recomputed. Default false.
 */
export function blockBackward(
  ctx: BlockContext,
  w: ValleLayerWeights,
  l: number,
  fresh = false,
): void {
  const { rec, config, state, count } = ctx;
  if (fresh) {
    rmsNorm(
      rec,
      rows(state.h, 0, count),
      rows(state.mid, 0, count),
      w.postAttentionLayernorm,
      config.rmsEps,
    );
  } else blockForward(ctx, w, l, true);
  const r = (t: Tensor) => rows(t, 0, count);
  const { x, h, q, k, v, att, mid, g, u, m } = activations(state, l, count);
  const [dg, du, dm] = [state.dg, state.du, state.dm].map(r);
  const [dx, dh, dq, dk, dv, datt] = [
    state.dx,
    state.dh,
    state.dq,
    state.dk,
    state.dv,
    state.datt,
  ].map(r);
  const heads = { heads: config.nHeads, headDim: config.headDim };
  const eps = config.rmsEps;

  // MLP: x_out = mid + down(gelu(gate(h2)) ⊙ up(h2)), h2 = norm(mid), which `h` holds now.
  adaptedBackward(ctx, w, l, "down_proj", dm, dx, m, false);
  geluMulBackward(rec, dg, du, dm, g, u);
  adaptedBackward(ctx, w, l, "gate_proj", dh, dg, h, false);
  adaptedBackward(ctx, w, l, "up_proj", dh, du, h, true);
  rmsNormBackward(rec, dx, dh, mid, w.postAttentionLayernorm, eps, { accumulate: true });

  // Attention: mid = x + o(attention(rope(q(h1)), rope(k(h1)), v(h1))), h1 = norm(x).
  adaptedBackward(ctx, w, l, "o_proj", datt, dx, att, false);
  attentionBackward(rec, { dq, dk, dv }, datt, q, k, v, att, state.attentionScratch, {
    ...heads,
    spans: r(state.spans),
    keyQueries: r(state.keyQueries),
  });
  const positions = r(state.positions);
  rope(rec, dq, positions, state.rope, { ...heads, inverse: true });
  rope(rec, dk, positions, state.rope, { ...heads, inverse: true });
  rmsNorm(rec, h, x, w.inputLayernorm, eps); // h1
  adaptedBackward(ctx, w, l, "q_proj", dh, dq, h, false);
  linearBackward(rec, dh, dk, w.kProj, { accumulate: true });
  adaptedBackward(ctx, w, l, "v_proj", dh, dv, h, true);
  rmsNormBackward(rec, dx, dh, x, w.inputLayernorm, eps, { accumulate: true });
}
