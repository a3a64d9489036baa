/**
 * GEMV and GEMM at the VALL-E model's shapes: µs per call, GB/s (bytes moved) and GFLOP/s, for
 * f16 and f32 weights, and on the CPU backend for the quantized layouts q8_0 and q4_k too. A GEMV
 * (M = 1) cycles through copies of its weight totalling at least 64 MB, so that it reads them
 * from memory as a decode step does, not from the caches. Part of `deno task bench`
 * (bench/run.ts).
 */

import { createTensor, uploadTensor } from "../src/backends/tensor.ts";
import type { Backend, Tensor } from "../src/backends/backend.ts";
import { CpuBackend } from "../src/backends/cpu/backend.ts";
import { linear } from "../src/ops/linear.ts";
import { quantizeOnCpu } from "../src/quant/cpu.ts";
import { timeWork } from "./_report.ts";

/** [out, in]: attention projections, MLP gate/up, MLP down, the AR head. */
const SHAPES: [number, number][] = [[1024, 1024], [4096, 1024], [1024, 4096], [1025, 1024]];

/** Bytes of weights a GEMV streams through (more than the caches hold). */
const STREAM_BYTES = 64e6;

/** One measured kernel call. */
export interface KernelRow extends Record<string, string | number> {
  kernel: string;
  weights: string;
  "M×N×K": string;
  "µs": number;
  "GB/s": number;
  "GFLOP/s": number;
}

type WeightDtype = "f16" | "f32" | "q8_0" | "q4_k";

/** The words of an [n, k] weight of `dtype` (a smooth pattern; the speed does not depend on it). */
async function weightData(
  backend: Backend,
  dtype: WeightDtype,
  n: number,
  k: number,
): Promise<Float32Array | Uint16Array | Uint32Array> {
  if (dtype === "f16") return new Uint16Array(n * k).fill(0x2c00);
  const values = Float32Array.from({ length: n * k }, (_, i) => 0.05 * Math.sin(i * 0.61));
  if (dtype === "f32") return values;
  return await quantizeOnCpu(backend as CpuBackend, dtype, values, n, k);
}

/** Times `linear` at each shape for M = 1 (GEMV) and M = `rows` (GEMM). */
export async function benchKernels(
  backend: Backend,
  rows: number,
  iterations: number,
): Promise<KernelRow[]> {
  const dtypes: WeightDtype[] = backend.supportsF16 ? ["f16", "f32"] : ["f32"];
  if (backend instanceof CpuBackend) dtypes.push("q8_0", "q4_k");
  const results: KernelRow[] = [];
  for (const dtype of dtypes) {
    for (const [n, k] of SHAPES) {
      const data = await weightData(backend, dtype, n, k);
      const copies = Math.ceil(STREAM_BYTES / data.byteLength);
      const ws: Tensor[] = [];
      for (let i = 0; i < copies; i++) ws.push(uploadTensor(backend, data, [n, k], dtype, "w"));
      for (const m of [1, rows]) {
        const x = uploadTensor(backend, new Float32Array(m * k).fill(1), [m, k], "f32", "x");
        const y = createTensor(backend, [m, n], "f32", "y");
        const rec = backend.createRecorder();
        const count = m === 1
          ? Math.max(iterations, copies)
          : Math.max(2, Math.ceil(iterations / 10));
        const ms = await timeWork(backend, count, (c) => {
          for (let i = 0; i < c; i++) linear(rec, y, x, m === 1 ? ws[i % copies] : ws[0]);
          rec.submit();
        });
        const bytes = data.byteLength + 4 * (m * k + m * n);
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
      for (const w of ws) w.buffer.destroy();
    }
  }
  return results;
}
