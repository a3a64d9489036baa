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
import type { KernelSpec, Recorder, Tensor } from "../../backends/backend.ts";
import { createTensor, numel, readBytes, uploadTensor } from "../../backends/tensor.ts";
import type { Backend } from "../../backends/backend.ts";
import { grid1d } from "../../ops/_grid.ts";
import { expectDtype, expectShape } from "../../ops/_check.ts";
import type { OpKernel } from "../../ops/_kernels.ts";

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
  if (stats.offset !== 0) {
    throw new OptionError("Cannot record cfg: stats must start at element 0 of its buffer");
  }
  if (n < 2 || !Number.isFinite(options.strength) || !Number.isFinite(options.rescale)) {
    throw new OptionError(
      `Cannot record cfg: ${n} logits, strength ${options.strength}, rescale ${options.rescale}`,
    );
  }
  rec.dispatch(
    CFG_STATS,
    [stats, cond, uncond],
    [n, cond.offset, uncond.offset, options.strength, options.rescale, 1 - options.rescale],
    [1],
  );
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
  const stats = createTensor(backend, [8], "f32", "valle.cfg.stats");
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
