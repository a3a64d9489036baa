/**
 * Which VALL-E weight is stored how under each `dtype` (the table of `src/quant/FORMATS.md` §4):
 * under `q8` every matrix is Q8_0; under `q4` the transformer projections are Q4_K except
 * `v_proj`, and the heads and embedding tables stay Q8_0. Norms and biases are never quantized.
 * A matrix whose rows do not fit a layout falls back (Q4_K to Q8_0, Q8_0 to float).
 *
 * This module is browser compatible.
 *
 * @module
 */

import { checkChoice } from "../../_options.ts";
import { OptionError } from "../../errors.ts";
import { QUANT_LAYOUTS, type QuantDtype } from "../../backends/backend.ts";

/**
 * How a VALL-E model's weights are stored on the device: float (`"f32"`, `"f16"`) or quantized
 * (`"q8"`: 8.5 bits per weight, `"q4"`: mostly 4.5; see `src/quant/FORMATS.md`).
 *
 * @example
 * ```ts
 * import type { ValleDtype } from "@valle/core/valle";
 * const dtype: ValleDtype = "q8";
 * ```
 */
export type ValleDtype = "f32" | "f16" | "q8" | "q4";

/** Every {@linkcode ValleDtype}, for option checks. */
export const VALLE_DTYPES: readonly ValleDtype[] = ["f32", "f16", "q8", "q4"];

/** What a matrix is to the policy. */
export type MatrixRole = "projection" | "v_proj" | "head" | "table";

/**
 * The device layout of a matrix with rows of `k` under a quantized dtype, or undefined (float).
 *
 * @example
 * ```ts ignore
 * quantLayout("projection", "q4", 1024); // "q4_k"
 * quantLayout("v_proj", "q4", 1024); // "q8_0"
 * quantLayout("head", "q8", 32); // undefined: rows of 32 are not whole 64-blocks
 * ```
 */
export function quantLayout(
  role: MatrixRole,
  dtype: "q8" | "q4",
  k: number,
): QuantDtype | undefined {
  if (dtype === "q4" && role === "projection" && k % QUANT_LAYOUTS.q4_k.weights === 0) {
    return "q4_k";
  }
  return k % QUANT_LAYOUTS.q8_0.weights === 0 ? "q8_0" : undefined;
}

/**
 * Checks the weight storage options before anything is read: `dtype` is one of
 * {@linkcode VALLE_DTYPES}, and a float `dtype` agrees with a float `precision`.
 *
 * @throws {OptionError} Naming the option and what was expected.
 *
 * @example
 * ```ts ignore
 * checkDtype({ dtype: "q4", precision: "auto" }); // passes
 * ```
 */
export function checkDtype(options: { dtype?: unknown; precision?: unknown }): void {
  const { dtype, precision } = options;
  if (dtype === undefined) return;
  checkChoice("load weights", "dtype", dtype, VALLE_DTYPES);
  if ((dtype === "f16" || dtype === "f32") && (precision === "f16" || precision === "f32")) {
    if (dtype !== precision) {
      throw new OptionError(
        `Cannot load weights: dtype is "${dtype}" but precision is "${precision}"; give one of them`,
      );
    }
  }
}
