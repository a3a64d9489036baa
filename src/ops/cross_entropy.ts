/**
 * `crossEntropy`: fused softmax cross-entropy over rows of logits, the loss, the top-k hit and the
 * gradient with respect to the logits in one pass (upstream's `F.cross_entropy` with
 * `ignore_index = -100`, and torchmetrics' top-10 accuracy, per row; the caller sums and scales).
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { KernelSpec, Recorder, Tensor } from "../backends/backend.ts";
import { OptionError } from "../errors.ts";
import { expectDtype, expectShape } from "./_check.ts";
import { grid1d } from "./_grid.ts";
import type { OpKernel } from "./_kernels.ts";

const CROSS_ENTROPY: KernelSpec = {
  shader: "cross_entropy",
  bindings: ["write", "write", "read", "read"],
  params: ["u32", "u32", "u32", "u32", "u32", "u32", "u32"],
};

/** The kernels `crossEntropy` may dispatch, for warming at load (`kernelUses`). */
export const CROSS_ENTROPY_KERNELS: readonly OpKernel[] = [{ spec: CROSS_ENTROPY }];

/** The label of a row that is not scored (upstream's -100). */
export const IGNORE_LABEL = 0xffffffff;

/** Options of {@linkcode crossEntropy}. */
export interface CrossEntropyOptions {
  /** A row's label counts as a hit when fewer than `topK` logits exceed its logit (default 10). */
  topK?: number;
}

/**
 * For each row r of x (M, V) f32: if labels[r] == IGNORE_LABEL, dx[r] = 0 and stats[r] = [0, 0];
 * else stats[r] = [weights[r] · (logsumexp(x[r]) − x[r][labels[r]]), 1 if labels[r] is among the
 * top-`topK` (default 10) logits else 0] and dx[r] = weights[r] · (softmax(x[r]) −
 * onehot(labels[r])). dx may alias x (in place). labels (M) u32, weights (M) f32, stats (M, 2) f32.
 * A label ≥ V is treated as ignored (upstream maps y ≥ V to -100). The label is among the top k
 * when fewer than k logits are strictly larger than its own (ties count for it).
 *
 * @param rec The recorder.
 * @param dx The gradient (M, V), f32: x itself (the same view), or a buffer apart from x's rows
 * (x is copied into it first).
 * @param stats (M, 2) f32: the weighted loss and the top-k hit of each row (its own buffer).
 * @param x The logits (M, V), f32.
 * @param labels (M) u32.
 * @param weights (M) f32: each row's factor (e.g. 1 / the item's scored rows).
 * @param options `topK`.
 * @throws {OptionError} Shapes or dtypes that do not match, or dx overlapping x elsewhere.
 *
 * @example
 * ```ts ignore
 * crossEntropy(rec, logits, stats, logits, labels, weights); // logits become their gradient
 * ```
 */
export function crossEntropy(
  rec: Recorder,
  dx: Tensor,
  stats: Tensor,
  x: Tensor,
  labels: Tensor,
  weights: Tensor,
  options: CrossEntropyOptions = {},
): void {
  const op = "crossEntropy";
  const { topK = 10 } = options;
  expectShape(op, "x", x, [-1, -1]);
  const [m, v] = x.shape;
  expectShape(op, "dx", dx, [m, v]);
  expectShape(op, "stats", stats, [m, 2]);
  expectShape(op, "labels", labels, [m]);
  expectShape(op, "weights", weights, [m]);
  for (const [name, t] of [["x", x], ["dx", dx], ["stats", stats], ["weights", weights]] as const) {
    expectDtype(op, name, t, "f32");
  }
  expectDtype(op, "labels", labels, "u32");
  if (!Number.isInteger(topK) || topK < 0) {
    throw new OptionError(`Cannot record ${op}: topK ${topK} is not a whole number ≥ 0`);
  }
  if (m === 0 || v === 0) return;
  if (dx.buffer !== x.buffer || dx.offset !== x.offset) {
    if (dx.buffer === x.buffer && Math.abs(dx.offset - x.offset) < m * v) {
      throw new OptionError(
        `Cannot record ${op}: dx (offset ${dx.offset}) overlaps x (offset ${x.offset}) without ` +
          `being x`,
      );
    }
    rec.copy(x, dx);
  }
  rec.dispatch(
    CROSS_ENTROPY,
    [dx, stats, labels, weights],
    [m, v, dx.offset, stats.offset, labels.offset, weights.offset, topK],
    grid1d(m),
  );
}
