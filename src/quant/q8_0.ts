/**
 * GGUF `Q8_0`: blocks of 32 weights, each an f16 scale `d` and 32 int8 `q`, w = d · q (34 bytes
 * per block, as ggml's `block_q8_0`). Quantized as llama.cpp's `quantize_row_q8_0_ref` does, in
 * strict float32: d = amax / 127, q = round(x / d) (halves away from zero), d stored as f16.
 * See `FORMATS.md`.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { f16ToF32, f32ToF16 } from "../io/dtype.ts";

/** Weights per Q8_0 block. */
export const Q8_0_BLOCK = 32;
/** Bytes per Q8_0 block: the f16 scale, then 32 int8. */
export const Q8_0_BYTES = 34;

const f = Math.fround;

/** Rounds half away from zero, as C's `roundf`. */
function roundAway(v: number): number {
  return v < 0 ? -Math.floor(-v + 0.5) : Math.floor(v + 0.5);
}

/**
 * Quantizes rows of float32 values to Q8_0 blocks.
 *
 * @param x The values, a whole number of blocks (32 each).
 * @returns The blocks, `x.length / 32 · 34` bytes.
 *
 * @example
 * ```ts
 * import { quantizeQ8_0 } from "./q8_0.ts";
 * const block = quantizeQ8_0(Float32Array.from({ length: 32 }, (_, i) => i - 16));
 * console.assert(block[2] === 256 - 127); // q[0] = round(-16 / (16 / 127)) = -127
 * ```
 */
export function quantizeQ8_0(x: Float32Array): Uint8Array<ArrayBuffer> {
  if (x.length % Q8_0_BLOCK !== 0) {
    throw new RangeError(`Cannot quantize ${x.length} values to Q8_0: not a multiple of 32`);
  }
  const blocks = x.length / Q8_0_BLOCK;
  const out = new Uint8Array(blocks * Q8_0_BYTES);
  const view = new DataView(out.buffer);
  const scales = new Float32Array(blocks);
  for (let b = 0; b < blocks; b++) {
    const at = b * Q8_0_BLOCK;
    let amax = 0;
    for (let j = 0; j < Q8_0_BLOCK; j++) amax = Math.max(amax, Math.abs(x[at + j]));
    const d = f(amax / 127);
    const id = d !== 0 ? f(1 / d) : 0;
    scales[b] = d;
    for (let j = 0; j < Q8_0_BLOCK; j++) {
      out[b * Q8_0_BYTES + 2 + j] = roundAway(f(x[at + j] * id)) & 0xff;
    }
  }
  const bits = f32ToF16(scales);
  for (let b = 0; b < blocks; b++) view.setUint16(b * Q8_0_BYTES, bits[b], true);
  return out;
}

/**
 * Dequantizes Q8_0 blocks: w = d · q, exact in float32.
 *
 * @param blocks The blocks (34 bytes each).
 * @returns 32 values per block.
 *
 * @example
 * ```ts
 * import { dequantizeQ8_0, quantizeQ8_0 } from "./q8_0.ts";
 * const x = Float32Array.from({ length: 32 }, (_, i) => i - 16);
 * console.assert(Math.abs(dequantizeQ8_0(quantizeQ8_0(x))[0] + 16) < 0.01);
 * ```
 */
export function dequantizeQ8_0(blocks: Uint8Array): Float32Array<ArrayBuffer> {
  const count = Math.floor(blocks.length / Q8_0_BYTES);
  const view = new DataView(blocks.buffer, blocks.byteOffset, blocks.byteLength);
  const bits = new Uint16Array(count);
  for (let b = 0; b < count; b++) bits[b] = view.getUint16(b * Q8_0_BYTES, true);
  const scales = f16ToF32(bits);
  const out = new Float32Array(count * Q8_0_BLOCK);
  for (let b = 0; b < count; b++) {
    for (let j = 0; j < Q8_0_BLOCK; j++) {
      out[b * Q8_0_BLOCK + j] = scales[b] * view.getInt8(b * Q8_0_BYTES + 2 + j);
    }
  }
  return out;
}
