/**
 * Progress reports and cancellation of the long calls. The loops call a {@linkcode Boundary}
 * where they already wait for the GPU (the AR stop check, a NAR-len step or NAR level that has
 * finished), never adding a readback for it; the boundary checks the abort signal first, so an
 * aborted call stops there, with nothing recorded and left unsubmitted.
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { Backend } from "../../backends/backend.ts";

/**
 * A fence that a loop waits on one iteration later (the GPU works on the next step meanwhile).
 * It is marked handled at once: when the loop stops before awaiting it (an abort, or the device
 * lost while the previous fence was awaited), its rejection must not be an unhandled one, which
 * would end a Deno process; awaiting it still throws.
 *
 * @param backend The device.
 * @returns Its fence for the work submitted so far.
 */
export function pipelinedFence(backend: Backend): Promise<void> {
  const fence = backend.fence();
  fence.catch(() => {});
  return fence;
}

/** The phases of a generation call. */
export type VallePhase = "duration" | "level0" | "nar";

/** One progress report. */
export interface ValleProgress {
  /** "duration" (NAR-len's length prediction), "level0" (AR or NAR-len) or "nar" (levels ≥ 1). */
  phase: VallePhase;
  /**
   * Units finished on the GPU: duration digits, AR tokens, NAR-len steps, NAR levels. The last
   * report of a phase has `step === steps` (an AR run that stops early jumps there).
   */
  step: number;
  /** Units the phase takes at most: 10 digits, `maxSteps`, demasking steps, levels to run. */
  steps: number;
  /** Batched calls, AR and duration phases: rows of the batch still decoding. */
  running?: number;
}

/** Progress and cancellation options of the generation calls. */
export interface ProgressOptions {
  /** Called when a chunk of AR tokens, a NAR-len step or a NAR level has finished on the GPU. */
  onProgress?: (progress: ValleProgress) => void;
  /**
   * Aborting stops the call at the next boundary (AR stop check, NAR-len step, NAR level) and
   * rejects it with the signal's reason; the model stays usable.
   */
  signal?: AbortSignal;
}

/**
 * Called by a loop with the units finished so far; throws the abort reason when the signal was
 * aborted. Loops call it only when everything they recorded has been submitted.
 */
export type Boundary = (done: number, running?: number) => void;

/**
 * The boundary of one phase: abort check, then the progress report.
 *
 * @example
 * ```ts
 * import { phaseBoundary } from "./progress.ts";
 * const seen: number[] = [];
 * const boundary = phaseBoundary({ onProgress: (p) => seen.push(p.step) }, "nar", 7);
 * boundary(1);
 * console.assert(seen[0] === 1);
 * ```
 */
export function phaseBoundary(
  options: ProgressOptions,
  phase: VallePhase,
  steps: number,
): Boundary {
  return (done, running) => {
    options.signal?.throwIfAborted();
    const report: ValleProgress = { phase, step: done, steps };
    if (running !== undefined) report.running = running;
    options.onProgress?.(report);
  };
}
