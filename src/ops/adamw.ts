/**
 * The optimizer step of LoRA training over one flat f32 buffer of parameters (every factor packed
 * together): `adamw` (PyTorch's `torch.optim.AdamW`, with the gradient scaled by a factor on the
 * device), and the global-norm clipping of `torch.nn.utils.clip_grad_norm_` as two device-side
 * steps, `sumSquares` (the squared norm, accumulated over buffers) and `clipFactor`, so that no
 * value is read back between the backward pass and the update.
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

const ADAMW: KernelSpec = {
  shader: "adamw",
  bindings: ["write", "read", "write", "write", "read"],
  params: [
    ...["u32", "u32", "u32", "u32", "u32", "u32"] as const,
    ...["f32", "f32", "f32", "f32", "f32", "f32", "f32", "f32"] as const,
  ],
};
const SUM_SQUARES: KernelSpec = {
  shader: "sum_squares",
  bindings: ["write", "read"],
  params: ["u32", "u32", "u32", "u32", "u32", "u32"],
};
const CLIP_FACTOR: KernelSpec = {
  shader: "clip_factor",
  bindings: ["write", "read"],
  params: ["u32", "u32", "f32"],
};

/** The kernels `adamw`, `sumSquares` and `clipFactor` may dispatch, for warming (`kernelUses`). */
export const ADAMW_KERNELS: readonly OpKernel[] = [
  { spec: ADAMW },
  { spec: SUM_SQUARES },
  { spec: CLIP_FACTOR },
];

/**
 * Elements of the `partials` scratch of {@linkcode sumSquares}: the most chunks its first pass
 * writes.
 */
export const SUM_SQUARES_PARTIALS = 512;
/** The fewest elements a chunk of the first pass holds. */
const MIN_CHUNK = 4096;

/** The hyperparameters and step of {@linkcode adamw} (upstream: betas 0.9 / 0.96, eps 1e-7, decay 0.01). */
export interface AdamWOptions {
  /** Learning rate. */
  lr: number;
  /** Decay of the first moment. */
  beta1: number;
  /** Decay of the second moment. */
  beta2: number;
  /** Added to the denominator. */
  eps: number;
  /** Decoupled weight decay (p ← p − lr · weightDecay · p). */
  weightDecay: number;
  /** The step number, 1-based (bias corrections 1 − β^step). */
  step: number;
}

/** Throws unless `t` is a 1-D f32 tensor of `n` elements. */
function expectVector(op: string, name: string, t: Tensor, n: number): void {
  expectShape(op, name, t, [n]);
  expectDtype(op, name, t, "f32");
}

/**
 * Records one AdamW step over p with PyTorch's `torch.optim.AdamW` semantics: with g = grad ·
 * gradScale[0], p ← p · (1 − lr · wd), then m ← β1 m + (1 − β1) g, v ← β2 v + (1 − β2) g², and
 * p ← p − lr / (1 − β1^step) · m / (√v / √(1 − β2^step) + eps). The step's scalars are formed in
 * float64 and rounded to f32 once, as PyTorch passes its Python floats to the tensor ops.
 *
 * @param rec The recorder.
 * @param p The parameters (n) f32, updated.
 * @param g The gradients (n) f32 (read only: not scaled in place).
 * @param m The first moments (n) f32 (zeros before step 1), updated.
 * @param v The second moments (n) f32 (zeros before step 1), updated.
 * @param gradScale A one-element f32 tensor: the factor of the gradients (e.g. `clipFactor`'s).
 * @param options Hyperparameters and the step number.
 * @throws {OptionError} Shapes or dtypes that do not match, or a step below 1.
 *
 * @example
 * ```ts ignore
 * adamw(rec, params, grads, m, v, scale, { lr: 3.25e-4, beta1: 0.9, beta2: 0.96, eps: 1e-7, weightDecay: 0.01, step });
 * ```
 */
export function adamw(
  rec: Recorder,
  p: Tensor,
  g: Tensor,
  m: Tensor,
  v: Tensor,
  gradScale: Tensor,
  options: AdamWOptions,
): void {
  const op = "adamw";
  expectShape(op, "p", p, [-1]);
  const n = p.shape[0];
  for (const [name, t] of [["p", p], ["g", g], ["m", m], ["v", v]] as const) {
    expectVector(op, name, t, n);
  }
  expectVector(op, "gradScale", gradScale, 1);
  const { lr, beta1, beta2, eps, weightDecay, step } = options;
  if (!Number.isInteger(step) || step < 1) {
    throw new OptionError(`Cannot record ${op}: step ${step} is not a whole number ≥ 1`);
  }
  if (n === 0) return;
  const bc1 = 1 - beta1 ** step;
  const bc2 = 1 - beta2 ** step;
  rec.dispatch(
    ADAMW,
    [p, g, m, v, gradScale],
    [
      n,
      p.offset,
      g.offset,
      m.offset,
      v.offset,
      gradScale.offset,
      1 - lr * weightDecay,
      beta1,
      1 - beta1,
      beta2,
      1 - beta2,
      lr / bc1,
      Math.sqrt(bc2),
      eps,
    ],
    grid1d(Math.ceil(n / 256)),
  );
}

/**
 * Records out[0] (+)= Σ x² over all elements of x (f32; accumulates across calls unless out is
 * cleared). With a `partials` scratch of {@linkcode SUM_SQUARES_PARTIALS} f32 elements, two
 * passes: up to that many workgroups square and sum chunks of x into it, then one sums them into
 * out; without, one workgroup reads all of x (fine for small x). No atomics either way, so the
 * result is the same on every run.
 *
 * @param rec The recorder.
 * @param out A one-element f32 tensor, the running total.
 * @param x Any f32 tensor (all its elements), e.g. the flat gradient buffer.
 * @param options `partials`: scratch for the two-pass reduction (a buffer apart from out and x).
 * @throws {OptionError} A dtype other than f32, an out of more than one element, or partials too
 * small.
 *
 * @example
 * ```ts ignore
 * rec.clear(sumsq);
 * sumSquares(rec, sumsq, grads, { partials });
 * clipFactor(rec, scale, sumsq, 1.0);
 * ```
 */
export function sumSquares(
  rec: Recorder,
  out: Tensor,
  x: Tensor,
  options: { partials?: Tensor } = {},
): void {
  const op = "sumSquares";
  expectVector(op, "out", out, 1);
  expectDtype(op, "x", x, "f32");
  const n = numel(x.shape);
  const { partials } = options;
  if (partials) {
    expectDtype(op, "partials", partials, "f32");
    if (numel(partials.shape) < SUM_SQUARES_PARTIALS) {
      throw new OptionError(
        `Cannot record ${op}: partials [${partials.shape}] holds fewer than ` +
          `${SUM_SQUARES_PARTIALS} elements`,
      );
    }
  }
  if (n === 0) return;
  const chunk = Math.max(MIN_CHUNK, Math.ceil(n / SUM_SQUARES_PARTIALS));
  const groups = Math.ceil(n / chunk);
  if (!partials || groups === 1) {
    rec.dispatch(SUM_SQUARES, [out, x], [n, x.offset, out.offset, n, 1, 1], [1]);
    return;
  }
  rec.dispatch(SUM_SQUARES, [partials, x], [n, x.offset, partials.offset, chunk, 1, 0], [groups]);
  rec.dispatch(SUM_SQUARES, [out, partials], [groups, partials.offset, out.offset, groups, 0, 1], [
    1,
  ]);
}

/**
 * Records scale[0] = min(1, maxNorm / (sqrt(sumsq[0]) + 1e-6)): torch.nn.utils.clip_grad_norm_'s
 * factor, from the squared norm of every gradient ({@linkcode sumSquares}).
 *
 * @param rec The recorder.
 * @param scale A one-element f32 tensor, written (adamw's `gradScale`).
 * @param sumsq A one-element f32 tensor: Σ g² over every gradient.
 * @param maxNorm The largest total L2 norm (upstream: 1.0).
 *
 * @example
 * ```ts ignore
 * clipFactor(rec, scale, sumsq, 1.0);
 * ```
 */
export function clipFactor(rec: Recorder, scale: Tensor, sumsq: Tensor, maxNorm: number): void {
  const op = "clipFactor";
  expectVector(op, "scale", scale, 1);
  expectVector(op, "sumsq", sumsq, 1);
  rec.dispatch(CLIP_FACTOR, [scale, sumsq], [scale.offset, sumsq.offset, maxNorm], [1]);
}
