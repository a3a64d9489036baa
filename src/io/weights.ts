/**
 * The read-only view of a checkpoint that model loaders need (names, shapes, float32 values),
 * and {@linkcode openWeights}, which turns bytes, files or URLs into one: a safetensors file, or
 * a PyTorch zip checkpoint (`pytorch_model.bin`) read by the restricted unpickler of
 * `torch_checkpoint.ts`. This module does not map keys to model roles.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { readSafetensors, type SafetensorsSource } from "./safetensors.ts";
import { isZip, parseTorchCheckpoint } from "./torch_checkpoint.ts";

/**
 * A parsed checkpoint: what `Safetensors` and `TorchCheckpoint` both offer.
 *
 * @example
 * ```ts
 * import { parseSafetensors, serializeSafetensors } from "@valle/core/safetensors";
 * import type { WeightSource } from "@valle/core";
 * const bytes = serializeSafetensors({ w: { dtype: "F32", shape: [1], data: new Float32Array(1) } });
 * const weights: WeightSource = parseSafetensors(bytes);
 * console.assert(weights.info("w").shape[0] === 1);
 * ```
 */
export interface WeightSource {
  /** The file's name in error messages. */
  readonly source: string;
  /** Every tensor name, verbatim. */
  readonly names: readonly string[];
  /** Whether a tensor exists. */
  has(name: string): boolean;
  /** A tensor's shape (throws a `FormatError` for an unknown name). */
  info(name: string): { readonly shape: readonly number[] };
  /** A tensor's values as float32 (throws a `FormatError` for an unknown name). */
  toFloat32(name: string): Float32Array;
}

/**
 * Weights as a loader accepts them: a parsed checkpoint, or anything `readSafetensors` reads. Bytes
 * (`Uint8Array`, `ArrayBuffer`) may also hold a PyTorch zip checkpoint.
 *
 * @example
 * ```ts
 * import type { WeightsInput } from "@valle/core";
 * const input: WeightsInput = new URL("https://example.com/model.safetensors");
 * ```
 */
export type WeightsInput = WeightSource | SafetensorsSource;

/**
 * Opens weights: returns a parsed checkpoint as is, parses bytes as a PyTorch zip checkpoint when
 * they start with a zip signature and as safetensors otherwise, and reads any other source
 * (path, URL, Blob, Response, stream) as safetensors.
 *
 * @param input The weights.
 * @param label The file's name in error messages, for bytes.
 * @returns A checkpoint view.
 * @throws {FormatError} The bytes are not a valid safetensors file or an acceptable checkpoint.
 *
 * @example
 * ```ts
 * import { openWeights, serializeSafetensors } from "@valle/core";
 * const bytes = serializeSafetensors({ w: { dtype: "F32", shape: [2], data: new Float32Array(2) } });
 * const weights = await openWeights(bytes);
 * console.assert(weights.has("w"));
 * ```
 */
export async function openWeights(input: WeightsInput, label?: string): Promise<WeightSource> {
  if (isWeightSource(input)) return input;
  if (input instanceof ArrayBuffer || input instanceof Uint8Array) {
    const bytes = input instanceof Uint8Array ? input : new Uint8Array(input);
    if (isZip(bytes)) return await parseTorchCheckpoint(bytes, { source: label });
  }
  return await readSafetensors(input, { source: label });
}

function isWeightSource(input: WeightsInput): input is WeightSource {
  return typeof input === "object" && input !== null && "toFloat32" in input &&
    "names" in input;
}
