/**
 * Classifier-free guidance as the original applies it (vall_e/samplers.py: cfg_logits):
 * z = u + (c − u) · w, rescaled by φ · std(c) / std(z) + (1 − φ) with the unbiased std over the
 * WHOLE response slice (one scalar per utterance, not per row). Two kernels: `cfg_stats` (means,
 * stds and factor, as two-stage reductions over up to {@linkcode CFG_GROUPS} workgroups: three
 * dispatches) and `cfg_apply` (in place over c).
 *
 * This module is browser compatible.
 *
 * @module
 */

import { OptionError } from "../../errors.ts";
import type { KernelSpec, Recorder, Tensor } from "../../backends/backend.ts";
import { createTensor, numel, readBytes, uploadTensor } from "../../backends/tensor.ts";
import type { Backend } from "../../backends/backend.ts";
import { grid1d } from "../../ops/_grid.ts";
import { expectDtype, expectShape } from "../../ops/_check.ts";
import type { OpKernel } from "../../ops/_kernels.ts";

const CFG_STATS: KernelSpec = {
  shader: "cfg_stats",
  bindings: ["write", "read", "read"],
  params: ["u32", "u32", "u32", "f32", "f32", "f32", "u32", "u32", "u32"],
};

/** Workgroups the statistics' first stages run on at most (the second stage folds one each). */
export const CFG_GROUPS = 256;

/** Words of the statistics tensor: {@linkcode CFG_STAT} values, then the partial sums. */
export const CFG_STATS_WORDS = 8 + 4 * CFG_GROUPS;

const CFG_APPLY: KernelSpec = {
  shader: "cfg_apply",
  bindings: ["write", "read", "read"],
  params: ["u32", "u32", "u32", "f32"],
};

/** The kernels classifier-free guidance may dispatch, for warming at load (`kernelUses`). */
export const CFG_KERNELS: readonly OpKernel[] = [{ spec: CFG_STATS }, { spec: CFG_APPLY }];

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
 * @param stats ({@linkcode CFG_STATS_WORDS}) f32: receives {@linkcode CFG_STAT} values (the
 * words after them are the partial sums).
 * @param options Strength and rescale.
 *
 * @example
 * ```ts ignore
 * cfg(rec, condLogits, nullLogits, state.cfgStats, { strength: 2.5, rescale: 0.75 });
 * ```
 */
export function cfg(
  rec: Recorder,
  cond: Tensor,
  uncond: Tensor,
  stats: Tensor,
  options: CfgOptions,
): void {
  const op = "cfg";
  expectShape(op, "uncond", uncond, cond.shape);
  expectDtype(op, "cond", cond, "f32");
  expectDtype(op, "uncond", uncond, "f32");
  expectDtype(op, "stats", stats, "f32");
  const n = numel(cond.shape);
  expectShape(op, "stats", stats, [CFG_STATS_WORDS]);
  if (stats.offset !== 0) {
    throw new OptionError("Cannot record cfg: stats must start at element 0 of its buffer");
  }
  if (n < 2 || !Number.isFinite(options.strength) || !Number.isFinite(options.rescale)) {
    throw new OptionError(
      `Cannot record cfg: ${n} logits, strength ${options.strength}, rescale ${options.rescale}`,
    );
  }
  // Chunks of whole 256-element blocks, as few as keep the groups within CFG_GROUPS.
  const chunk = 256 * Math.ceil(n / (256 * CFG_GROUPS));
  const groups = Math.ceil(n / chunk);
  const params = [n, cond.offset, uncond.offset, options.strength, options.rescale];
  for (const phase of [0, 1, 2]) {
    rec.dispatch(
      CFG_STATS,
      [stats, cond, uncond],
      [...params, 1 - options.rescale, phase, groups, chunk],
      [phase === 2 ? 1 : groups],
    );
  }
  rec.dispatch(
    CFG_APPLY,
    [cond, uncond, stats],
    [n, cond.offset, uncond.offset, options.strength],
    grid1d(Math.ceil(n / 256)),
  );
}

/** The result of {@linkcode guideLogits}. */
export interface GuidedLogits {
  /** The guided (and rescaled) logits. */
  logits: Float32Array;
  /** Unbiased std of the conditional logits over the whole slice. */
  stdCond: number;
  /** Unbiased std of u + (c − u) · w before rescaling. */
  stdGuided: number;
  /** The rescale factor (1 without rescale). */
  factor: number;
}

/**
 * Runs {@linkcode cfg} once on logits given from the CPU (for debugging and checks; the loops
 * call `cfg` on logits that stay on the GPU). Creates and frees its own buffers.
 *
 * @example
 * ```ts ignore
 * const { logits, factor } = await guideLogits(backend, cond, uncond, { strength: 2.5, rescale: 0.75 });
 * ```
 */
export async function guideLogits(
  backend: Backend,
  cond: Float32Array,
  uncond: Float32Array,
  options: CfgOptions,
): Promise<GuidedLogits> {
  if (cond.length !== uncond.length) {
    throw new OptionError(
      `Cannot apply CFG: ${cond.length} conditional and ${uncond.length} unconditional logits`,
    );
  }
  const c = uploadTensor(backend, cond, [cond.length], "f32", "valle.cfg.cond");
  const u = uploadTensor(backend, uncond, [uncond.length], "f32", "valle.cfg.uncond");
  const stats = createTensor(backend, [CFG_STATS_WORDS], "f32", "valle.cfg.stats");
  const rec = backend.createRecorder({ label: "valle.cfg" });
  cfg(rec, c, u, stats, options);
  rec.submit();
  const [out, st] = await readBytes(backend, [c, stats]);
  rec.destroy();
  for (const t of [c, u, stats]) t.buffer.destroy();
  const s = new Float32Array(st);
  return {
    logits: new Float32Array(out),
    stdCond: s[CFG_STAT.stdCond],
    stdGuided: s[CFG_STAT.stdGuided],
    factor: s[CFG_STAT.factor],
  };
}
