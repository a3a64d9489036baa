/**
 * GGUF `Q4_K`: super-blocks of 256 weights in 8 sub-blocks of 32, 144 bytes each (ggml's
 * `block_q4_K`): f16 `d`, f16 `dmin`, 12 bytes of 6-bit sub-block scales and mins, 128 bytes of
 * 4-bit `q`; w = d · sc · q − dmin · m. Weights 64c..64c+31 are the low nibbles of bytes
 * 32c..32c+31 of `qs`, weights 64c+32..64c+63 their high nibbles.
 *
 * Quantized with the algorithm of llama.cpp's `quantize_row_q4_K_ref`: per sub-block a weighted
 * least-squares search for scale and min (`make_qkx2_quants`, 21 candidate scales), then the
 * 6-bit codes of the scales and mins relative to the super-block's largest, then every weight
 * requantized against the coded values. Every operation is rounded to float32, as C does
 * without contraction. See `FORMATS.md`.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { f16ToF32, f32ToF16 } from "../io/dtype.ts";

/** Weights per Q4_K super-block. */
export const Q4_K_BLOCK = 256;
/** Bytes per Q4_K super-block. */
export const Q4_K_BYTES = 144;

const SUB = 32;
const f = Math.fround;

/** llama.cpp's `nearest_int`: round to nearest, ties to even, in float32 (|v| < 2^22). */
function nearestInt(v: number): number {
  return f(v + 12582912) - 12582912;
}

/** Scratch of {@linkcode searchScaleMin}: x − min of the sub-block, for the current min. */
const shifted = new Float32Array(SUB);

/**
 * The `make_qkx2_quants` search over the sub-block `x[at .. at + 32)` with weights `w`: writes its
 * levels to `levels[to ..]` and returns [scale, −min].
 */
function searchScaleMin(
  x: Float32Array,
  at: number,
  w: Float32Array,
  levels: Uint8Array,
  to: number,
  aux: Uint8Array,
): [number, number] {
  const nmax = 15;
  const rmin = -1;
  const rdelta = f(0.1);
  const steps = 20;
  let min = x[at];
  let max = x[at];
  let sumW = w[0];
  let sumX = f(sumW * x[at]);
  for (let i = 1; i < SUB; i++) {
    const xi = x[at + i];
    if (xi < min) min = xi;
    if (xi > max) max = xi;
    sumW = f(sumW + w[i]);
    sumX = f(sumX + f(w[i] * xi));
  }
  if (min > 0) min = 0;
  if (max === min) {
    levels.fill(0, to, to + SUB);
    return [0, -min];
  }
  const range = f(max - min);
  let iscale = f(nmax / range);
  let scale = f(1 / iscale);
  let bestError = 0;
  for (let i = 0; i < SUB; i++) shifted[i] = x[at + i] - min;
  for (let i = 0; i < SUB; i++) {
    const l = clampLevel(nearestInt(f(iscale * shifted[i])), nmax);
    levels[to + i] = l;
    const diff = f(f(f(scale * l) + min) - x[at + i]);
    bestError = f(bestError + f(w[i] * f(diff * diff)));
  }
  for (let is = 0; is <= steps; is++) {
    iscale = f(f(f(rmin + f(rdelta * is)) + nmax) / range);
    let sumL = 0;
    let sumL2 = 0;
    let sumXL = 0;
    for (let i = 0; i < SUB; i++) {
      const l = clampLevel(nearestInt(f(iscale * shifted[i])), nmax);
      aux[i] = l;
      const wl = f(w[i] * l);
      sumL = f(sumL + wl);
      sumL2 = f(sumL2 + f(wl * l));
      sumXL = f(sumXL + f(wl * x[at + i]));
    }
    const det = f(f(sumW * sumL2) - f(sumL * sumL));
    if (!(det > 0)) continue;
    let thisScale = f(f(f(sumW * sumXL) - f(sumX * sumL)) / det);
    let thisMin = f(f(f(sumL2 * sumX) - f(sumL * sumXL)) / det);
    if (thisMin > 0) {
      thisMin = 0;
      thisScale = f(sumXL / sumL2);
    }
    let error = 0;
    for (let i = 0; i < SUB; i++) {
      const diff = f(f(f(thisScale * aux[i]) + thisMin) - x[at + i]);
      error = f(error + f(w[i] * f(diff * diff)));
    }
    if (error < bestError) {
      levels.set(aux, to);
      bestError = error;
      scale = thisScale;
      if (thisMin !== min) {
        min = thisMin;
        for (let i = 0; i < SUB; i++) shifted[i] = x[at + i] - min;
      }
    }
  }
  return [scale, -min];
}

function clampLevel(l: number, nmax: number): number {
  return l < 0 ? 0 : l > nmax ? nmax : l;
}

/**
 * The 6-bit scale and min of sub-block `j` from a super-block's 12 scale bytes (llama.cpp's
 * `get_scale_min_k4`).
 *
 * @example
 * ```ts
 * import { scaleMinK4 } from "./q4_k.ts";
 * const bytes = new Uint8Array(12);
 * bytes[0] = 5; bytes[4] = 7;
 * console.assert(scaleMinK4(bytes, 0)[0] === 5 && scaleMinK4(bytes, 0)[1] === 7);
 * ```
 */
export function scaleMinK4(scales: ArrayLike<number>, j: number): [number, number] {
  if (j < 4) return [scales[j] & 63, scales[j + 4] & 63];
  return [
    (scales[j + 4] & 0xf) | ((scales[j - 4] >> 6) << 4),
    (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4),
  ];
}

/**
 * Quantizes float32 values to Q4_K super-blocks.
 *
 * @param x The values, a whole number of super-blocks (256 each).
 * @returns The super-blocks, `x.length / 256 · 144` bytes.
 *
 * @example
 * ```ts
 * import { dequantizeQ4K, quantizeQ4K } from "./q4_k.ts";
 * const x = Float32Array.from({ length: 256 }, (_, i) => (i % 16) / 2);
 * console.assert(Math.abs(dequantizeQ4K(quantizeQ4K(x))[3] - 1.5) < 0.01);
 * ```
 */
export function quantizeQ4K(x: Float32Array): Uint8Array<ArrayBuffer> {
  if (x.length % Q4_K_BLOCK !== 0) {
    throw new RangeError(`Cannot quantize ${x.length} values to Q4_K: not a multiple of 256`);
  }
  const blocks = x.length / Q4_K_BLOCK;
  const out = new Uint8Array(blocks * Q4_K_BYTES);
  const levels = new Uint8Array(Q4_K_BLOCK);
  const aux = new Uint8Array(SUB);
  const weights = new Float32Array(SUB);
  const scales = new Float32Array(8);
  const mins = new Float32Array(8);
  const half = new Float32Array(2);
  for (let b = 0; b < blocks; b++) {
    const xb = x.subarray(b * Q4_K_BLOCK, (b + 1) * Q4_K_BLOCK);
    const y = out.subarray(b * Q4_K_BYTES, (b + 1) * Q4_K_BYTES);
    let maxScale = 0;
    let maxMin = 0;
    for (let j = 0; j < 8; j++) {
      const at = b * Q4_K_BLOCK + SUB * j;
      let sumX2 = 0;
      for (let l = 0; l < SUB; l++) sumX2 = f(sumX2 + f(x[at + l] * x[at + l]));
      const avX = f(Math.sqrt(f(sumX2 / SUB)));
      for (let l = 0; l < SUB; l++) weights[l] = f(avX + Math.abs(x[at + l]));
      [scales[j], mins[j]] = searchScaleMin(x, at, weights, levels, SUB * j, aux);
      if (scales[j] > maxScale) maxScale = scales[j];
      if (mins[j] > maxMin) maxMin = mins[j];
    }
    const invScale = maxScale > 0 ? f(63 / maxScale) : 0;
    const invMin = maxMin > 0 ? f(63 / maxMin) : 0;
    const sc = y.subarray(4, 16);
    for (let j = 0; j < 8; j++) {
      const ls = Math.min(63, nearestInt(f(invScale * scales[j])) & 0xff);
      const lm = Math.min(63, nearestInt(f(invMin * mins[j])) & 0xff);
      if (j < 4) {
        sc[j] = ls;
        sc[j + 4] = lm;
      } else {
        sc[j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
        sc[j - 4] |= (ls >> 4) << 6;
        sc[j] |= (lm >> 4) << 6;
      }
    }
    half[0] = f(maxScale / 63);
    half[1] = f(maxMin / 63);
    const bits = f32ToF16(half);
    y[0] = bits[0] & 0xff;
    y[1] = bits[0] >> 8;
    y[2] = bits[1] & 0xff;
    y[3] = bits[1] >> 8;
    const [d, dmin] = f16ToF32(bits);
    for (let j = 0; j < 8; j++) {
      const [s, m] = scaleMinK4(sc, j);
      const dj = f(d * s);
      if (dj === 0) continue;
      const mj = f(dmin * m);
      for (let i = 0; i < SUB; i++) {
        const l = nearestInt(f(f(xb[SUB * j + i] + mj) / dj));
        levels[SUB * j + i] = Math.max(0, Math.min(15, l));
      }
    }
    const qs = y.subarray(16);
    for (let c = 0; c < 4; c++) {
      for (let l = 0; l < SUB; l++) {
        qs[SUB * c + l] = levels[64 * c + l] | (levels[64 * c + l + SUB] << 4);
      }
    }
  }
  return out;
}

/**
 * Dequantizes Q4_K super-blocks: w = (d · sc) · q − dmin · m, in float32, as llama.cpp's
 * `dequantize_row_q4_K`.
 *
 * @param blocks The super-blocks (144 bytes each).
 * @returns 256 values per super-block.
 *
 * @example
 * ```ts
 * import { dequantizeQ4K } from "./q4_k.ts";
 * console.assert(dequantizeQ4K(new Uint8Array(144)).length === 256);
 * ```
 */
export function dequantizeQ4K(blocks: Uint8Array): Float32Array<ArrayBuffer> {
  const count = Math.floor(blocks.length / Q4_K_BYTES);
  const out = new Float32Array(count * Q4_K_BLOCK);
  const bits = new Uint16Array(2);
  for (let b = 0; b < count; b++) {
    const y = blocks.subarray(b * Q4_K_BYTES, (b + 1) * Q4_K_BYTES);
    bits[0] = y[0] | (y[1] << 8);
    bits[1] = y[2] | (y[3] << 8);
    const [d, dmin] = f16ToF32(bits);
    const sc = y.subarray(4, 16);
    for (let j = 0; j < 8; j++) {
      const [s, m] = scaleMinK4(sc, j);
      const dj = f(d * s);
      const mj = f(dmin * m);
      const shift = (j & 1) * 4;
      const qs = 16 + SUB * (j >> 1);
      for (let i = 0; i < SUB; i++) {
        out[b * Q4_K_BLOCK + SUB * j + i] = f(dj * ((y[qs + i] >> shift) & 0xf)) - mj;
      }
    }
  }
  return out;
}
