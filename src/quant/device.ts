/**
 * The device layouts of quantized weights (`FORMATS.md` §3) and the conversions between them and
 * GGUF blocks: `q8_0` repacks each pair of Q8_0 blocks into 17 aligned words (the two f16 scales
 * in word 0, then the 2 × 32 int8), `q4_k` is the Q4_K super-block as stored (36 words).
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { QuantDtype } from "../backends/backend.ts";
import type { GgufType } from "../io/gguf.ts";
import { dequantizeQ4K, quantizeQ4K } from "./q4_k.ts";
import { dequantizeQ8_0, Q8_0_BYTES, quantizeQ8_0 } from "./q8_0.ts";

/** The GGUF block type behind each device layout. */
export const GGUF_TYPE: Readonly<Record<QuantDtype, GgufType>> = { q8_0: "Q8_0", q4_k: "Q4_K" };

/**
 * Device words of a quantized matrix from its GGUF blocks (rows of whole device blocks).
 *
 * @param dtype The layout.
 * @param blocks The GGUF blocks, row after row.
 * @returns The words to upload.
 *
 * @example
 * ```ts
 * import { toDeviceWords } from "./device.ts";
 * import { quantizeQ8_0 } from "./q8_0.ts";
 * console.assert(toDeviceWords("q8_0", quantizeQ8_0(new Float32Array(64))).length === 17);
 * ```
 */
export function toDeviceWords(dtype: QuantDtype, blocks: Uint8Array): Uint32Array<ArrayBuffer> {
  if (dtype === "q4_k") return new Uint32Array(blocks.slice().buffer);
  const pairs = blocks.length / (2 * Q8_0_BYTES);
  const out = new Uint32Array(pairs * 17);
  const bytes = new Uint8Array(out.buffer);
  for (let p = 0; p < pairs; p++) {
    const a = 2 * p * Q8_0_BYTES;
    const b = a + Q8_0_BYTES;
    const at = p * 68;
    bytes[at] = blocks[a];
    bytes[at + 1] = blocks[a + 1];
    bytes[at + 2] = blocks[b];
    bytes[at + 3] = blocks[b + 1];
    bytes.set(blocks.subarray(a + 2, b), at + 4);
    bytes.set(blocks.subarray(b + 2, b + Q8_0_BYTES), at + 36);
  }
  return out;
}

/**
 * GGUF blocks from device words: the inverse of {@linkcode toDeviceWords}.
 *
 * @example
 * ```ts
 * import { fromDeviceWords } from "./device.ts";
 * console.assert(fromDeviceWords("q8_0", new Uint32Array(17)).length === 68);
 * ```
 */
export function fromDeviceWords(dtype: QuantDtype, words: Uint32Array): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(words.buffer, words.byteOffset, words.byteLength);
  if (dtype === "q4_k") return bytes.slice();
  const pairs = words.length / 17;
  const out = new Uint8Array(pairs * 2 * Q8_0_BYTES);
  for (let p = 0; p < pairs; p++) {
    const at = p * 68;
    const a = 2 * p * Q8_0_BYTES;
    const b = a + Q8_0_BYTES;
    out[a] = bytes[at];
    out[a + 1] = bytes[at + 1];
    out[b] = bytes[at + 2];
    out[b + 1] = bytes[at + 3];
    out.set(bytes.subarray(at + 4, at + 36), a + 2);
    out.set(bytes.subarray(at + 36, at + 68), b + 2);
  }
  return out;
}

/**
 * Quantizes float32 values to GGUF blocks of a layout's type.
 *
 * @example
 * ```ts
 * import { quantizeBlocks } from "./device.ts";
 * console.assert(quantizeBlocks("q4_k", new Float32Array(256)).length === 144);
 * ```
 */
export function quantizeBlocks(dtype: QuantDtype, values: Float32Array): Uint8Array<ArrayBuffer> {
  return dtype === "q8_0" ? quantizeQ8_0(values) : quantizeQ4K(values);
}

/**
 * Dequantizes device words to float32 values (what the WebGPU kernels compute with).
 *
 * @example
 * ```ts
 * import { dequantizeDeviceWords } from "./device.ts";
 * console.assert(dequantizeDeviceWords("q4_k", new Uint32Array(36)).length === 256);
 * ```
 */
export function dequantizeDeviceWords(
  dtype: QuantDtype,
  words: Uint32Array,
): Float32Array<ArrayBuffer> {
  const blocks = fromDeviceWords(dtype, words);
  return dtype === "q8_0" ? dequantizeQ8_0(blocks) : dequantizeQ4K(blocks);
}
