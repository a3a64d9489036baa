/**
 * What `modality: "auto"` means for a model on a backend. Upstream's rule is NAR-len whenever the
 * model has it; NAR-len costs two full passes over the whole sequence per demasking step (50 by
 * default), which a GPU does in milliseconds and a CPU in seconds. So where full passes are costly
 * (the CPU backend, a software WebGPU adapter) "auto" speaks AR + NAR instead, and says why.
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { Backend } from "../backends/backend.ts";
import { Gpu } from "../backends/webgpu/device.ts";
import type { ValleModel } from "../models/valle/model.ts";

/** The modality `"auto"` resolves to, and why. */
export interface AutoModality {
  /** What runs. */
  modality: "ar+nar" | "nar-len";
  /** Why, for the backend line of progress reports. */
  reason: string;
}

/**
 * Resolves `modality: "auto"` for `model` on `backend`.
 *
 * @param backend Where the model runs.
 * @param model The loaded model (whether it has NAR-len).
 * @returns The modality and the reason.
 *
 * @example
 * ```ts ignore
 * const { modality, reason } = autoModality(valle.backend, valle.model);
 * ```
 */
export function autoModality(backend: Backend, model: ValleModel): AutoModality {
  const { config } = model;
  if (!config.hasNarLen || config.name === "ar+nar") {
    return { modality: "ar+nar", reason: "the model has no NAR-len" };
  }
  if (backend.kind === "cpu") {
    return {
      modality: "ar+nar",
      reason: "NAR-len's full passes are slow on the CPU; ask for nar-len to use it anyway",
    };
  }
  if (backend instanceof Gpu && backend.adapter.software) {
    return {
      modality: "ar+nar",
      reason:
        "NAR-len's full passes are slow on a software adapter; ask for nar-len to use it anyway",
    };
  }
  return { modality: "nar-len", reason: "as upstream on a GPU" };
}
