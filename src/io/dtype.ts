/**
 * Element types of safetensors files and the float conversions needed to feed them to a GPU:
 * float16 and bfloat16 bits to float32, and float32 to float16 bits. It does not read files;
 * see {@linkcode ./safetensors.ts}.
 *
 * Float16 conversions use the native `Float16Array` where the runtime has one and an exact
 * portable fallback otherwise; both give the same bits (a NaN stays a NaN, its payload may
 * differ).
 *
 * This module is browser compatible.
 *
 * @module
 */

import * as portable from "./_f16.ts";

/**
 * A safetensors element type. Multi-byte types are little-endian in the file.
 *
 * @example
 * ```ts
 * import type { Dtype } from "@valle/core/safetensors";
 * const dtype: Dtype = "F16";
 * ```
 */
export type Dtype = "F64" | "F32" | "F16" | "BF16" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";

/**
 * The size in bytes of one element of each {@linkcode Dtype}.
 *
 * @example
 * ```ts
 * import { DTYPE_SIZES } from "@valle/core/safetensors";
 * console.assert(DTYPE_SIZES.BF16 === 2);
 * ```
 */
export const DTYPE_SIZES: Readonly<Record<Dtype, number>> = Object.freeze({
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
});

/** The native `Float16Array`, where the runtime has one. */
const NativeFloat16Array: typeof Float16Array | undefined = globalThis.Float16Array;

/**
 * Widens float16 values, given as their raw bits, to float32. Exact.
 *
 * @param bits Float16 bit patterns, as read from an `F16` tensor.
 * @returns A new array of the same length.
 *
 * @example
 * ```ts
 * import { f16ToF32 } from "@valle/core/safetensors";
 * const x = f16ToF32(new Uint16Array([0x3c00, 0xc000, 0x7c00]));
 * console.assert(x[0] === 1 && x[1] === -2 && x[2] === Infinity);
 * ```
 */
export function f16ToF32(bits: Uint16Array): Float32Array<ArrayBuffer> {
  if (!NativeFloat16Array) return portable.f16ToF32(bits);
  return new Float32Array(new NativeFloat16Array(bits.buffer, bits.byteOffset, bits.length));
}

/**
 * Widens bfloat16 values, given as their raw bits, to float32. Exact: a bfloat16 is the top
 * half of a float32.
 *
 * @param bits Bfloat16 bit patterns, as read from a `BF16` tensor.
 * @returns A new array of the same length.
 *
 * @example
 * ```ts
 * import { bf16ToF32 } from "@valle/core/safetensors";
 * const x = bf16ToF32(new Uint16Array([0x3f80, 0xc040]));
 * console.assert(x[0] === 1 && x[1] === -3);
 * ```
 */
export function bf16ToF32(bits: Uint16Array): Float32Array<ArrayBuffer> {
  const out = new Uint32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = bits[i] << 16;
  return new Float32Array(out.buffer);
}

/**
 * Rounds float32 values to float16 bits: round to nearest, ties to even; magnitudes from 65520
 * up become infinity, tiny ones become subnormals or zero, NaN stays NaN.
 *
 * @param values The values to convert.
 * @returns A new array of float16 bit patterns, ready to upload as an `f16` GPU buffer.
 *
 * @example
 * ```ts
 * import { f32ToF16 } from "@valle/core/safetensors";
 * const bits = f32ToF16(new Float32Array([1, 65520, 2 ** -24]));
 * console.assert(bits[0] === 0x3c00 && bits[1] === 0x7c00 && bits[2] === 0x0001);
 * ```
 */
export function f32ToF16(values: Float32Array): Uint16Array<ArrayBuffer> {
  if (!NativeFloat16Array) return portable.f32ToF16(values);
  return new Uint16Array(new NativeFloat16Array(values).buffer);
}
