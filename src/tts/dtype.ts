/**
 * The VALL-E weight storage `Valle.load` uses when none is asked for. On the CPU backend it is q8:
 * a decode step reads every weight once, so 8.5 bits per weight instead of 16 make an AR step
 * about 2.5× faster (and NAR passes a little), for a mean KL of ~5e-4 from f16 on the full-size
 * model (README, Quantized weights), and quantizing at load takes about a second. q4 is faster
 * still per step but ten times further from f16 (KL ~3e-2) and takes seconds more to quantize.
 * On WebGPU the weights stay as the file stores them: the GPU kernels over quantized weights are
 * not tuned yet, and a GPU reads f16 fast. A GGUF file keeps what it stores, and an explicit
 * `precision` ("f16", "f32") keeps float weights.
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { Backend, Precision } from "../backends/backend.ts";
import type { ValleDtype } from "../models/valle/quant_policy.ts";

/** What `Valle.load` stores the weights as, and why when it is not the file's own precision. */
export interface DefaultDtype {
  /** The dtype asked for, the default one, or undefined: as the file stores them. */
  dtype?: ValleDtype;
  /** Why, for the backend line of progress reports, when the default quantizes. */
  reason?: string;
}

/**
 * Resolves the weight storage of a load.
 *
 * @param backend Where the model runs.
 * @param options The dtype and precision asked for.
 * @param gguf Whether the model file is a GGUF (pre-quantized).
 * @returns The dtype, and the reason when it is a default other than the file's precision.
 *
 * @example
 * ```ts ignore
 * const { dtype, reason } = defaultDtype(cpu, {}, false); // "q8", "the CPU default: …"
 * ```
 */
export function defaultDtype(
  backend: Backend,
  options: { dtype?: ValleDtype; precision?: Precision },
  gguf: boolean,
): DefaultDtype {
  if (options.dtype !== undefined) return { dtype: options.dtype };
  const floatAsked = options.precision === "f16" || options.precision === "f32";
  if (backend.kind !== "cpu" || gguf || floatAsked) return {};
  return {
    dtype: "q8",
    reason: "the CPU default (decoding reads half the bytes of f16, mean KL ~5e-4 from it; " +
      "dtype f16 keeps the file's weights)",
  };
}
