/**
 * @valle/core: VALL-E text-to-speech computed on the GPU with WebGPU, for Deno and browsers.
 *
 * @example Parse a safetensors file
 * ```ts
 * import { parseSafetensors, serializeSafetensors } from "@valle/core";
 * const bytes = serializeSafetensors({ w: { dtype: "F32", shape: [2], data: new Float32Array([1, 2]) } });
 * const file = parseSafetensors(bytes);
 * console.assert(file.tensor("w").shape[0] === 2);
 * ```
 *
 * @module
 */

export * from "./src/errors.ts";
