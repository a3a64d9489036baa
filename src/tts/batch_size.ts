/**
 * The default number of pieces generated together: as many as the run state of one batch holds
 * in a memory budget (AR holds every row's prompt, phonemes and `maxSeconds` of frames at once),
 * and no buffer over the backend's binding limit, at most {@linkcode MAX_DEFAULT_BATCH}.
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { Backend } from "../backends/backend.ts";
import type { ValleConfig } from "../models/valle/config.ts";
import { runStateBytes } from "../models/valle/state.ts";

/** Run-state bytes a default batch may take. */
export const BATCH_BUDGET_BYTES = 2 ** 30;

/**
 * The largest default batch. Measured with `bench/batch.ts` on the CPU backend (2 threads, the
 * released model's shape, a shared machine): an AR step of 1, 4, 8 and 16 rows took 50, 54, 180
 * and 186 ms (20, 73, 44 and 86 frames/s): up to 4 rows a step runs the single-row kernels, above
 * that GEMMs that cost more than they save at these row counts on the CPU.
 */
export const MAX_DEFAULT_BATCH = 4;

/**
 * The default batch size for rows of up to `positions` sequence positions each.
 *
 * @param backend Where the model runs (its binding limit).
 * @param config The model.
 * @param positions Positions of one row's longest sequence (prompt, phonemes, frames).
 * @returns Between 1 and {@linkcode MAX_DEFAULT_BATCH}.
 *
 * @example
 * ```ts ignore
 * const size = defaultBatchSize(valle.backend, valle.model.config, prompt.frames + 100 + 900);
 * ```
 */
export function defaultBatchSize(backend: Backend, config: ValleConfig, positions: number): number {
  const byBudget = Math.floor(BATCH_BUDGET_BYTES / runStateBytes(config, positions + 1));
  // The widest buffers per position: the MLP activations and the two logits rows.
  const widest = 4 *
    Math.max(config.dFf, 2 * Math.max(config.nAudio + 1, config.nPhn, config.nLen));
  const byBinding = Math.floor(backend.maxBindingBytes / (widest * (positions + 1)));
  return Math.max(1, Math.min(MAX_DEFAULT_BATCH, byBudget, byBinding));
}
