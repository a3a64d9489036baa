/**
 * How pieces are batched: the default number generated together ({@linkcode defaultBatchSize}:
 * as many as the run state of one batch holds in a memory budget, AR holding every row's prompt,
 * phonemes and `maxSeconds` of frames at once, and no buffer over the backend's binding limit, at
 * most {@linkcode MAX_DEFAULT_BATCH}), and which pieces go together ({@linkcode batchGroups}: a
 * stream speaks its first piece alone).
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { Backend } from "../backends/backend.ts";
import type { ValleConfig } from "../models/valle/config.ts";
import { largestRunStateBuffer, runStateBytes } from "../models/valle/state.ts";

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
  const widest = largestRunStateBuffer(config, positions + 1).bytes;
  const byBinding = Math.floor(backend.maxBindingBytes / widest);
  return Math.max(1, Math.min(MAX_DEFAULT_BATCH, byBudget, byBinding));
}

/**
 * The batches of a synthesis, in order: `size` items at a time, except that a stream (`firstAlone`)
 * generates its first item alone before batching the rest.
 *
 * Why: a batch comes out only once all its rows are through every stage. AR rows stop at
 * different steps, but NAR-len and the NAR levels run the rows packed in one pass, and NAR-len's
 * rows all take the same steps, so yielding rows as they finish would not bring the first piece
 * forward with the default NAR-len model; and those passes are compute-bound on the CPU, so a
 * default batch of 4 put its first audio out after 35.6 s where the piece alone took 9.8 s (issue 16).
 * Speaking the first piece alone makes time to first audio that of `batchSize: 1`, and gives up
 * only that piece's share of the batching gain (its AR steps are not shared); the rest are batched
 * while it plays. Measured on the CPU backend (2 threads, full-size random weights, 4 sentences
 * of at most 1 s, AR + NAR; CPU time, best of 3, on a loaded machine): first audio 52.6 s batched
 * with the others, 20.6 s alone, 20.1 s with `batchSize: 1`; the whole text 55.4 s streamed,
 * 50.0 s in full batches, 66.1 s one by one. So calls that wait for every piece (`synthesize`,
 * `synthesizeBatch`) keep full batches.
 *
 * @param items The pieces, in order.
 * @param size Pieces per batch (≥ 1).
 * @param firstAlone Whether the first piece is generated alone (streaming).
 * @returns The batches, non-empty, covering `items` in order.
 *
 * @example
 * ```ts
 * import { batchGroups } from "./batch_size.ts";
 * console.assert(batchGroups([0, 1, 2, 3], 4, true).join(" | ") === "0 | 1,2,3");
 * console.assert(batchGroups([0, 1, 2, 3], 4, false).join(" | ") === "0,1,2,3");
 * ```
 */
export function batchGroups<T>(items: readonly T[], size: number, firstAlone: boolean): T[][] {
  const head = firstAlone ? Math.min(1, items.length) : 0;
  const groups = head ? [items.slice(0, head)] : [];
  for (let first = head; first < items.length; first += size) {
    groups.push(items.slice(first, first + size));
  }
  return groups;
}
