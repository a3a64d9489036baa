/**
 * GEMV and GEMM at the VALL-E model's shapes: µs per call, GB/s (bytes moved) and GFLOP/s, for
 * f16 and f32 weights. Part of `deno task bench` (bench/run.ts).
 */

import { createTensor, uploadTensor } from "../src/backends/tensor.ts";
import type { Backend } from "../src/backends/backend.ts";
import { linear } from "../src/ops/linear.ts";
import { timeWork } from "./_report.ts";

/** [out, in]: attention projections, MLP gate/up, MLP down, the AR head. */
const SHAPES: [number, number][] = [[1024, 1024], [4096, 1024], [1024, 4096], [1025, 1024]];

/** One measured kernel call. */
export interface KernelRow extends Record<string, string | number> {
  kernel: string;
  weights: string;
  "M×N×K": string;
  "µs": number;
  "GB/s": number;
  "GFLOP/s": number;
}

/** Times `linear` at each shape for M = 1 (GEMV) and M = `rows` (GEMM). */
export async function benchKernels(
  backend: Backend,
  rows: number,
  iterations: number,
): Promise<KernelRow[]> {
  const dtypes = backend.supportsF16 ? ["f16", "f32"] as const : ["f32"] as const;
  const results: KernelRow[] = [];
  for (const dtype of dtypes) {
    for (const [n, k] of SHAPES) {
      const w = dtype === "f16"
        ? uploadTensor(backend, new Uint16Array(n * k).fill(0x2c00), [n, k], "f16", "w")
        : uploadTensor(backend, new Float32Array(n * k).fill(0.0625), [n, k], "f32", "w");
      for (const m of [1, rows]) {
        const x = uploadTensor(backend, new Float32Array(m * k).fill(1), [m, k], "f32", "x");
        const y = createTensor(backend, [m, n], "f32", "y");
        const rec = backend.createRecorder();
        const count = m === 1 ? iterations : Math.max(2, Math.ceil(iterations / 10));
        const ms = await timeWork(backend, count, (c) => {
          for (let i = 0; i < c; i++) linear(rec, y, x, w);
          rec.submit();
        });
        const bytes = n * k * (dtype === "f16" ? 2 : 4) + 4 * (m * k + m * n);
        results.push({
          kernel: m === 1 ? "gemv" : "gemm",
          weights: dtype,
          "M×N×K": `${m}×${n}×${k}`,
          "µs": Math.round(ms * 1000),
          "GB/s": +(bytes / ms / 1e6).toFixed(2),
          "GFLOP/s": +((2 * m * n * k) / ms / 1e6).toFixed(2),
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
