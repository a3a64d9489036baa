/**
 * CPU oracles of the quantized kernels (src/quant/FORMATS.md §5), from the formats:
 *
 * - the integer block math of the CPU backend and of the WebGPU GEMMs with
 *   packed_4x8_integer_dot_product, exactly: activations quantized per 32-block the same way
 *   (dx = max|x| / 127, xq = nearest-even(x · (1/dx)), float32), integer block sums, and each
 *   block's float term formed with the same products in float32; the terms are summed in float64
 *   and their absolute sum returned, since the kernels add them in another (lane, tile) order;
 * - the other WebGPU kernels: the dequantized weights times the float activations (`linear` of
 *   ops.ts with `dequantizeDeviceWords`).
 *
 * {@linkcode checkLinearQuant} checks a kernel's output against the one of its arithmetic.
 */

import type { QuantDtype } from "../../src/backends/backend.ts";
import { fromDeviceWords } from "../../src/quant/device.ts";
import { scaleMinK4 } from "../../src/quant/q4_k.ts";
import { f16ToF32 } from "../../src/io/dtype.ts";
import { assertClose } from "../_helpers.ts";
import { linear } from "./ops.ts";

const f = Math.fround;

/** Round to nearest, ties to even (WebAssembly's `f32.nearest`). */
function nearestEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Activation rows quantized per 32-block as wasm/quant.h does. */
export function quantizeActivations(
  x: Float32Array,
  k: number,
): { xq: Int8Array; dx: Float32Array; sums: Int32Array } {
  const blocks = x.length / 32;
  const xq = new Int8Array(x.length);
  const dx = new Float32Array(blocks);
  const sums = new Int32Array(blocks);
  if (k % 32 !== 0) throw new Error(`k ${k} is not whole blocks`);
  for (let b = 0; b < blocks; b++) {
    let amax = 0;
    for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(x[32 * b + i]));
    const d = f(amax / 127);
    const id = d !== 0 ? f(1 / d) : 0;
    let sum = 0;
    for (let i = 0; i < 32; i++) {
      const q = nearestEven(f(x[32 * b + i] * id));
      xq[32 * b + i] = q;
      sum += q;
    }
    dx[b] = d;
    sums[b] = sum;
  }
  return { xq, dx, sums };
}

/** The per-block float terms of one output, as the CPU kernel forms them. */
function blockTerms(
  dtype: QuantDtype,
  blocks: Uint8Array,
  row: number,
  k: number,
  act: { xq: Int8Array; dx: Float32Array; sums: Int32Array },
  xRow: number,
): number[] {
  const terms: number[] = [];
  const nb = k / 32;
  if (dtype === "q8_0") {
    const rowBytes = nb * 34;
    for (let b = 0; b < nb; b++) {
      const at = row * rowBytes + b * 34;
      const dw = f16ToF32(Uint16Array.of(blocks[at] | (blocks[at + 1] << 8)))[0];
      let isum = 0;
      for (let i = 0; i < 32; i++) {
        const q = (blocks[at + 2 + i] << 24) >> 24;
        isum += q * act.xq[xRow * k + 32 * b + i];
      }
      terms.push(f(isum * f(dw * act.dx[xRow * nb + b])));
    }
    return terms;
  }
  const rowBytes = (k / 256) * 144;
  for (let s = 0; s < k / 256; s++) {
    const at = row * rowBytes + s * 144;
    const [d, dmin] = f16ToF32(
      Uint16Array.of(blocks[at] | (blocks[at + 1] << 8), blocks[at + 2] | (blocks[at + 3] << 8)),
    );
    const scales = blocks.subarray(at + 4, at + 16);
    for (let j = 0; j < 8; j++) {
      const [sc, m] = scaleMinK4(scales, j);
      const b = s * 8 + j;
      let isum = 0;
      for (let i = 0; i < 32; i++) {
        const q = (blocks[at + 16 + 32 * (j >> 1) + i] >> (4 * (j & 1))) & 15;
        isum += q * act.xq[xRow * k + 32 * b + i];
      }
      const dsc = f(d * sc);
      const dmm = f(dmin * m);
      const inner = f(f(dsc * isum) - f(dmm * act.sums[xRow * nb + b]));
      terms.push(f(act.dx[xRow * nb + b] * inner));
    }
  }
  return terms;
}

/**
 * y (M, N) = x (M, K) · wᵀ (+ b) with w in a device layout, by the CPU backend's block math.
 * Returns the result and, per output, the sum of the absolute block terms (the scale of the
 * rounding that a different summation order can cause).
 */
export function linearQuantCpu(
  dtype: QuantDtype,
  x: Float32Array,
  words: Uint32Array,
  b: ArrayLike<number> | undefined,
  m: number,
  n: number,
  k: number,
): { y: Float64Array; scale: Float64Array } {
  const blocks = fromDeviceWords(dtype, words);
  const act = quantizeActivations(x, k);
  const y = new Float64Array(m * n);
  const scale = new Float64Array(m * n);
  for (let r = 0; r < m; r++) {
    for (let j = 0; j < n; j++) {
      let acc = 0;
      let abs = 0;
      for (const t of blockTerms(dtype, blocks, j, k, act, r)) {
        acc += t;
        abs += Math.abs(t);
      }
      y[r * n + j] = acc + (b ? b[j] : 0);
      scale[r * n + j] = abs;
    }
  }
  return { y, scale };
}

/**
 * Checks y = x · wᵀ (+ b) (+ base) of a quantized `linear` against the oracle of its arithmetic:
 * with `integer`, the block math above, allowing only the float32 roundings a different order of
 * adding the block terms can cause (an activation level one off is far outside); else the
 * dequantized weights times the float activations.
 */
export function checkLinearQuant(
  got: ArrayLike<number>,
  integer: boolean,
  dtype: QuantDtype,
  x: Float32Array,
  w: { words: Uint32Array; values: Float32Array },
  b: Float32Array | undefined,
  [m, n, k]: readonly [number, number, number],
  base?: Float32Array,
): void {
  if (!integer) {
    const expected = linear(x, w.values, b, m, n, k).map((v, i) => v + (base?.[i] ?? 0));
    assertClose(got, expected, { atol: 1e-4, rtol: 1e-4 });
    return;
  }
  const { y, scale } = linearQuantCpu(dtype, x, w.words, b, m, n, k);
  // Block terms summed in another order: a few float32 roundings of their absolute sum.
  const blocks = k / 32;
  for (let i = 0; i < y.length; i++) {
    const expected = y[i] + (base?.[i] ?? 0);
    const allowed = (blocks + 8) * 2 ** -24 * (scale[i] + Math.abs(expected)) + 1e-7;
    if (!(Math.abs(got[i] - expected) <= allowed)) {
      throw new Error(`output ${i}: ${got[i]} vs ${expected} (allowed ${allowed})`);
    }
  }
}
