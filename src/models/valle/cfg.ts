/**
 * Classifier-free guidance as the original applies it (vall_e/samplers.py: cfg_logits):
 * z = u + (c − u) · w, rescaled by φ · std(c) / std(z) + (1 − φ) with the unbiased std over the
 * WHOLE response slice (one scalar per utterance, not per row). Two kernels: `cfg_stats` (one
 * workgroup, writes the means, stds and factor) and `cfg_apply` (in place over c).
 *
 * This module is browser compatible.
 *
 * @module
 */

import { OptionError } from "../../errors.ts";
import type { KernelSpec } from "../../gpu/kernels.ts";
import { grid1d, type Recorder } from "../../gpu/recorder.ts";
import { type GpuTensor, numel } from "../../gpu/tensor.ts";
import { expectDtype, expectShape } from "../../ops/_check.ts";

const CFG_STATS: KernelSpec = {
  shader: "cfg_stats",
  bindings: ["write", "read", "read"],
  params: ["u32", "u32", "u32", "f32", "f32", "f32"],
};

const CFG_APPLY: KernelSpec = {
  shader: "cfg_apply",
  bindings: ["write", "read", "read"],
  params: ["u32", "u32", "u32", "f32"],
};

/** Guidance settings. */
export interface CfgOptions {
  /** Guidance strength w; 0 turns CFG off. */
  strength: number;
  /** Rescale φ; ≤ 0 is plain CFG. */
  rescale: number;
}

/** Indices into the statistics tensor that {@linkcode cfg} writes. */
export const CFG_STAT = {
  meanCond: 0,
  stdCond: 1,
  meanGuided: 2,
  stdGuided: 3,
  factor: 4,
} as const;

/**
 * Records cond ← (u + (cond − u) · strength) · factor over the whole slice.
 *
 * @param rec The recorder.
 * @param cond Conditional logits (rows, cols) f32, overwritten with the guided logits.
 * @param uncond Unconditional (null input) logits (rows, cols) f32.
 * @param stats (≥ 5) f32: receives {@linkcode CFG_STAT} values.
 * @param options Strength and rescale.
 *
 * @example
 * ```ts ignore
 * cfg(rec, condLogits, nullLogits, state.cfgStats, { strength: 2.5, rescale: 0.75 });
 * ```
 */
export function cfg(
  rec: Recorder,
  cond: GpuTensor,
  uncond: GpuTensor,
  stats: GpuTensor,
  options: CfgOptions,
): void {
  const op = "cfg";
  expectShape(op, "uncond", uncond, cond.shape);
  expectDtype(op, "cond", cond, "f32");
  expectDtype(op, "uncond", uncond, "f32");
  expectDtype(op, "stats", stats, "f32");
  const n = numel(cond.shape);
  if (n < 2 || !Number.isFinite(options.strength) || !Number.isFinite(options.rescale)) {
    throw new OptionError(
      `Cannot record cfg: ${n} logits, strength ${options.strength}, rescale ${options.rescale}`,
    );
  }
  rec.dispatch(
    rec.gpu.kernels.get(CFG_STATS),
    [stats, cond, uncond],
    [n, cond.offset, uncond.offset, options.strength, options.rescale, 1 - options.rescale],
    [1],
  );
  rec.dispatch(
    rec.gpu.kernels.get(CFG_APPLY),
    [cond, uncond, stats],
    [n, cond.offset, uncond.offset, options.strength],
    grid1d(Math.ceil(n / 256)),
  );
}
