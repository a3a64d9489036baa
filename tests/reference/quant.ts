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
 * {@linkcode linearQuantOracle} gives the oracle of an arithmetic with the error it allows, and
 * {@linkcode checkLinearQuant} checks a kernel's output against it.
 */

import type { QuantDtype } from "../../src/backends/backend.ts";
import {
  dequantizeDeviceWords,
  fromDeviceWords,
  quantizeBlocks,
  toDeviceWords,
} from "../../src/quant/device.ts";
import { scaleMinK4 } from "../../src/quant/q4_k.ts";
import { f16ToF32 } from "../../src/io/dtype.ts";
import type { Rng } from "../_helpers.ts";
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
 * The oracle of a quantized `linear`'s arithmetic, y = x · wᵀ (+ b) (+ base), and per output the
 * error it allows: with `integer`, the block math above, allowing only the float32 roundings a
 * different order of adding the block terms can cause (an activation level one off is far
 * outside); else the dequantized weights times the float activations, within 1e-4 absolute plus
 * 1e-4 relative.
 */
export function linearQuantOracle(
  integer: boolean,
  dtype: QuantDtype,
  x: Float32Array,
  w: { words: Uint32Array; values: Float32Array },
  b: Float32Array | undefined,
  [m, n, k]: readonly [number, number, number],
  base?: Float32Array,
): { y: Float64Array; allowed: Float64Array } {
  const allowed = new Float64Array(m * n);
  if (!integer) {
    const y = linear(x, w.values, b, m, n, k).map((v, i) => v + (base?.[i] ?? 0));
    for (let i = 0; i < y.length; i++) allowed[i] = 1e-4 + 1e-4 * Math.abs(y[i]);
    return { y, allowed };
  }
  const { y, scale } = linearQuantCpu(dtype, x, w.words, b, m, n, k);
  // Block terms summed in another order: a few float32 roundings of their absolute sum.
  const blocks = k / 32;
  for (let i = 0; i < y.length; i++) {
    y[i] += base?.[i] ?? 0;
    allowed[i] = (blocks + 8) * 2 ** -24 * (scale[i] + Math.abs(y[i])) + 1e-7;
  }
  return { y, allowed };
}

/** Throws unless every `got[i]` is within `allowed[i]` of `expected[i]`. */
export function checkWithin(
  got: ArrayLike<number>,
  { y: expected, allowed }: { y: ArrayLike<number>; allowed: ArrayLike<number> },
  label = "output",
): void {
  if (got.length !== expected.length) {
    throw new Error(`${label}: length ${got.length}, expected ${expected.length}`);
  }
  for (let i = 0; i < expected.length; i++) {
    if (!(Math.abs(got[i] - expected[i]) <= allowed[i])) {
      throw new Error(`${label} ${i}: ${got[i]} vs ${expected[i]} (allowed ${allowed[i]})`);
    }
  }
}

/**
 * Checks y = x · wᵀ (+ b) (+ base) of a quantized `linear` against the oracle of its arithmetic
 * ({@linkcode linearQuantOracle}).
 */
export function checkLinearQuant(
  got: ArrayLike<number>,
  integer: boolean,
  dtype: QuantDtype,
  x: Float32Array,
  w: { words: Uint32Array; values: Float32Array },
  b: Float32Array | undefined,
  shape: readonly [number, number, number],
  base?: Float32Array,
): void {
  checkWithin(got, linearQuantOracle(integer, dtype, x, w, b, shape, base));
}

/** A random weight (N, K) of standard deviation `std`, quantized to a device layout: its words and the values it stands for. */
export function randomQuantWeight(
  rng: Rng,
  dtype: QuantDtype,
  n: number,
  k: number,
  std: number,
): { words: Uint32Array; values: Float32Array } {
  const words = toDeviceWords(dtype, quantizeBlocks(dtype, rng.normals(n * k, std)));
  return { words, values: dequantizeDeviceWords(dtype, words) };
}
