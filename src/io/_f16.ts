/**
 * Portable IEEE 754 half-precision conversions on raw bits, for runtimes without a native
 * `Float16Array`. {@linkcode ./dtype.ts} picks these or the native type; tests check that both
 * agree on every input. Nothing here is part of the public API.
 *
 * This module is browser compatible.
 *
 * @module
 */

let f16Table: Uint32Array | undefined;

/** The float32 bit pattern of every float16 bit pattern, built on first use (256 KiB). */
function f16ToF32Table(): Uint32Array {
  if (f16Table) return f16Table;
  const table = new Uint32Array(65536);
  const scratch = new Float32Array(1);
  const scratchBits = new Uint32Array(scratch.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exponent = (h >>> 10) & 0x1f;
    const mantissa = h & 0x3ff;
    if (exponent === 0) {
      // Zero or subnormal: mantissa × 2^-24 is exact in float32.
      scratch[0] = mantissa * 2 ** -24;
      table[h] = (sign | scratchBits[0]) >>> 0;
    } else if (exponent === 31) {
      // Infinity or NaN, keeping the NaN payload.
      table[h] = (sign | 0x7f800000 | (mantissa << 13)) >>> 0;
    } else {
      // Normal: rebias the exponent from 15 to 127.
      table[h] = (sign | ((exponent + 112) << 23) | (mantissa << 13)) >>> 0;
    }
  }
  return (f16Table = table);
}

/**
 * Widens float16 bit patterns to float32 values by table lookup. Exact: every float16 value is
 * a float32 value.
 */
export function f16ToF32(bits: Uint16Array): Float32Array<ArrayBuffer> {
  const table = f16ToF32Table();
  const out = new Uint32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = table[bits[i]];
  return new Float32Array(out.buffer);
}

/** Rounds one float32 bit pattern to the nearest float16 bit pattern, ties to even. */
function f32BitsToF16(f: number): number {
  const sign = (f >>> 16) & 0x8000;
  const abs = f & 0x7fffffff;
  // Infinity stays infinity; NaN stays a quiet NaN with the top of its payload.
  if (abs >= 0x7f800000) {
    return sign | (abs > 0x7f800000 ? 0x7e00 | ((abs >>> 13) & 0x3ff) : 0x7c00);
  }
  // 65520 = 65504 + half an ulp: the tie rounds to the even neighbour, which is infinity.
  if (abs >= 0x477ff000) return sign | 0x7c00;
  if (abs >= 0x38800000) {
    // Normal float16 (|x| >= 2^-14): add just under half an ulp, plus one when the kept
    // mantissa is odd, so that the truncation below rounds to nearest, ties to even. A carry
    // out of the mantissa correctly bumps the exponent.
    const odd = (abs >>> 13) & 1;
    return sign | ((abs - 0x38000000 + 0xfff + odd) >>> 13);
  }
  // |x| <= 2^-25 rounds to zero (2^-25 itself is a tie between 0 and 2^-24; zero is even).
  if (abs <= 0x33000000) return sign;
  // Subnormal float16: the value is m × 2^(e - 150), in units of 2^-24 that is m >> (126 - e).
  const exponent = abs >>> 23;
  const mantissa = (abs & 0x7fffff) | 0x800000;
  const shift = 126 - exponent;
  const half = 1 << (shift - 1);
  const rest = mantissa & ((half << 1) - 1);
  let h = mantissa >>> shift;
  if (rest > half || (rest === half && (h & 1) === 1)) h++;
  // h may round up to 0x400, which is exactly the smallest normal float16.
  return sign | h;
}

/**
 * Rounds float32 values to float16 bit patterns: round to nearest, ties to even, overflow to
 * infinity, gradual underflow to subnormals.
 */
export function f32ToF16(values: Float32Array): Uint16Array<ArrayBuffer> {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < bits.length; i++) out[i] = f32BitsToF16(bits[i]);
  return out;
}
