/**
 * GEMV and GEMM at the VALL-E model's shapes: µs per call, GB/s (bytes moved) and GFLOP/s, for
 * f16 and f32 weights and the quantized layouts q8_0 and q4_k (random blocks), with the
 * activations' arithmetic: f32, or int8 where the kernel quantizes them (the CPU's quantized
 * kernels, WebGPU's quantized GEMMs with `GpuFeatures.integerDot`). Part of `deno task bench`
 * (bench/run.ts).
 */

import { createTensor, uploadTensor } from "../src/backends/tensor.ts";
import { type Backend, QUANT_LAYOUTS, type QuantDtype } from "../src/backends/backend.ts";
import { Gpu } from "../src/backends/webgpu/device.ts";
import { GEMV_MAX_ROWS, linear } from "../src/ops/linear.ts";
import { toDeviceWords } from "../src/quant/device.ts";
import { timeWork } from "./_report.ts";
import { randomBlocks } from "./random_quantized.ts";

/** [out, in]: attention projections, MLP gate/up, MLP down, the AR head. */
const SHAPES: [number, number][] = [[1024, 1024], [4096, 1024], [1024, 4096], [1025, 1024]];

/** One measured kernel call. */
export interface KernelRow extends Record<string, string | number> {
  kernel: string;
  weights: string;
  activations: string;
  "M×N×K": string;
  "µs": number;
  "GB/s": number;
  "GFLOP/s": number;
}

/** A weight type of the kernels timed. */
export type KernelDtype = "f16" | "f32" | QuantDtype;

/** A weight (n, k) of `dtype`, and its bytes. */
function weight(backend: Backend, dtype: KernelDtype, n: number, k: number) {
  if (dtype === "f16") {
    return uploadTensor(backend, new Uint16Array(n * k).fill(0x2c00), [n, k], "f16", "w");
  }
  if (dtype === "f32") {
    return uploadTensor(backend, new Float32Array(n * k).fill(0.0625), [n, k], "f32", "w");
  }
  const words = toDeviceWords(dtype, randomBlocks(dtype, n * k, 0.0625, n + k));
  return uploadTensor(backend, words, [n, k], dtype, "w");
}

/** Bytes per weight of each type (quantized: its device blocks). */
function weightBytes(dtype: KernelDtype): number {
  if (dtype === "f16" || dtype === "f32") return dtype === "f16" ? 2 : 4;
  return 4 * QUANT_LAYOUTS[dtype].words / QUANT_LAYOUTS[dtype].weights;
}

/**
 * Times `linear` at each shape for M = 1 (GEMV) and M = `rows` (GEMM).
 *
 * @param dtypes The weight types (default: f16 where the backend has it, f32, q8_0, q4_k).
 * @param counts The M of each product: 1 (GEMV) and `rows` (GEMM) by default.
 */
export async function benchKernels(
  backend: Backend,
  rows: number,
  iterations: number,
  dtypes: readonly KernelDtype[] = [
    ...backend.supportsF16 ? ["f16" as const] : [],
    "f32",
    "q8_0",
    "q4_k",
  ],
  counts: readonly number[] = [1, rows],
): Promise<KernelRow[]> {
  const results: KernelRow[] = [];
  for (const dtype of dtypes) {
    const quantized = dtype === "q8_0" || dtype === "q4_k";
    for (const [n, k] of SHAPES) {
      const w = weight(backend, dtype, n, k);
      for (const m of counts) {
        const x = uploadTensor(backend, new Float32Array(m * k).fill(1), [m, k], "f32", "x");
        const y = createTensor(backend, [m, n], "f32", "y");
        const rec = backend.createRecorder();
        const count = m === 1 ? iterations : Math.max(2, Math.ceil(iterations / 10));
        const time = await timeWork(backend, count, (c) => {
          for (let i = 0; i < c; i++) linear(rec, y, x, w);
          rec.submit();
        });
        const bytes = n * k * weightBytes(dtype) + 4 * (m * k + m * n);
        const integer = quantized &&
          (!(backend instanceof Gpu) || (backend.features.integerDot && m > GEMV_MAX_ROWS));
        results.push({
          kernel: m === 1 ? "gemv" : "gemm",
          weights: dtype,
          activations: integer ? "int8" : "f32",
          "M×N×K": `${m}×${n}×${k}`,
          "µs": Math.round(time * 1000),
          "GB/s": +(bytes / time / 1e6).toFixed(2),
          "GFLOP/s": +((2 * m * n * k) / time / 1e6).toFixed(2),
        });
        rec.destroy();
        x.buffer.destroy();
        y.buffer.destroy();
      }
      w.buffer.destroy();
    }
  }
  return results;
}
