/**
 * GEMV and GEMM at the VALL-E model's shapes: µs per call, GB/s (bytes moved) and GFLOP/s, for
 * f16 and f32 weights and the quantized layouts q8_0 and q4_k (random blocks), with the
 * activations' arithmetic: f32, or int8 where the kernel quantizes them (the CPU's quantized
 * kernels, WebGPU's quantized GEMMs with `GpuFeatures.integerDot`). A GEMV (M = 1) cycles through
 * copies of its weight totalling at least 64 MB, so that it reads them from memory as a decode step
 * does, not from the caches. Also the bytes a full attention pass moves with a workgroup per query
 * (the former kernel) and per tile of queries (flash attention). Part of `deno task bench`
 * (bench/run.ts).
 */

import {
  createTensor,
  destroyTensors,
  rows as tensorRows,
  uploadTensor,
} from "../src/backends/tensor.ts";
import type { Backend, QuantDtype, Tensor } from "../src/backends/backend.ts";
import { Gpu } from "../src/backends/webgpu/device.ts";
import { GEMV_MAX_ROWS, linear } from "../src/ops/linear.ts";
import {
  attention,
  attentionPartialsSize,
  attentionPassBytes,
  attentionTileQueries,
} from "../src/ops/attention.ts";
import { toDeviceWords } from "../src/quant/device.ts";
import { timeWork } from "./_report.ts";
import { randomBlocks } from "./random_quantized.ts";

/** [out, in]: attention projections, MLP gate/up, MLP down, the AR head. */
const SHAPES: [number, number][] = [[1024, 1024], [4096, 1024], [1024, 4096], [1025, 1024]];

/** Bytes of weights a GEMV streams through (more than the caches hold). */
const STREAM_BYTES = 64e6;

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

/** The device words of an (n, k) weight of `dtype` (the speed does not depend on the values). */
function weightData(
  dtype: KernelDtype,
  n: number,
  k: number,
): Uint16Array | Float32Array | Uint32Array {
  if (dtype === "f16") return new Uint16Array(n * k).fill(0x2c00);
  if (dtype === "f32") return new Float32Array(n * k).fill(0.0625);
  return toDeviceWords(dtype, randomBlocks(dtype, n * k, 0.0625, n + k));
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
      const data = weightData(dtype, n, k);
      const copies = counts.includes(1) ? Math.ceil(STREAM_BYTES / data.byteLength) : 1;
      const ws: Tensor[] = [];
      for (let i = 0; i < copies; i++) ws.push(uploadTensor(backend, data, [n, k], dtype, "w"));
      for (const m of counts) {
        const x = uploadTensor(backend, new Float32Array(m * k).fill(1), [m, k], "f32", "x");
        const y = createTensor(backend, [m, n], "f32", "y");
        const rec = backend.createRecorder();
        const count = m === 1
          ? Math.max(iterations, copies)
          : Math.max(2, Math.ceil(iterations / 10));
        const time = await timeWork(backend, count, (c) => {
          for (let i = 0; i < c; i++) linear(rec, y, x, m === 1 ? ws[i % copies] : ws[0]);
          rec.submit();
        });
        const bytes = data.byteLength + 4 * (m * k + m * n);
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
      for (const w of ws) w.buffer.destroy();
    }
  }
  return results;
}

/** Bytes one attention pass moves, per query and tiled. */
export interface AttentionTrafficRow extends Record<string, string | number> {
  pass: string;
  "MB, a workgroup per query": number;
  "MB, tiled": number;
  "queries per tile": number;
}

/**
 * The bytes of a full attention pass of `rows` queries over as many keys at the model's shape
 * (16 heads of 64), causal and bidirectional, with the former and the tiled kernel
 * ({@linkcode attentionPassBytes}).
 */
export function attentionTraffic(rows: number): AttentionTrafficRow[] {
  const [heads, headDim] = [16, 64];
  const tile = attentionTileQueries(headDim);
  return [true, false].map((causal) => {
    const shape = { queries: rows, keys: rows, heads, headDim, causal };
    return {
      pass: `${rows}×${rows}, ${heads}×${headDim}, ${causal ? "causal" : "bidirectional"}`,
      "MB, a workgroup per query": +(attentionPassBytes(shape, 1) / 1e6).toFixed(1),
      "MB, tiled": +(attentionPassBytes(shape, tile) / 1e6).toFixed(1),
      "queries per tile": tile,
    };
  });
}

/** One timed attention call. */
export interface AttentionRow extends Record<string, string | number> {
  attention: string;
  "µs": number;
  "GFLOP/s": number;
}

/**
 * Times attention at the model's shape (16 heads of 64): a causal full pass of `rows` queries
 * over as many keys, and a decode step of one query over `rows` keys (split over workgroups on
 * WebGPU, as the model runs it). FLOPs: 4 · heads · headDim per query and key seen (scores and
 * weighted sums).
 *
 * @param backend The device.
 * @param rows Queries and keys of the full pass.
 * @param iterations Decode steps timed (full passes: a tenth, at least 2).
 */
export async function benchAttention(
  backend: Backend,
  rows: number,
  iterations: number,
): Promise<AttentionRow[]> {
  const [heads, headDim] = [16, 64];
  const width = heads * headDim;
  const fill = (n: number) => Float32Array.from({ length: n * width }, (_, i) => Math.sin(i));
  const q = uploadTensor(backend, fill(rows), [rows, width], "f32", "q");
  const k = uploadTensor(backend, fill(rows), [rows, width], "f32", "k");
  const v = uploadTensor(backend, fill(rows), [rows, width], "f32", "v");
  const out = createTensor(backend, [rows, width], "f32", "out");
  const partials = createTensor(backend, [attentionPartialsSize(heads, headDim, 1)], "f32", "p");
  const rec = backend.createRecorder();
  const results: AttentionRow[] = [];
  try {
    for (
      const [what, queries] of [[`full pass ${rows}×${rows}, causal`, rows], [
        `decode step, 1 query × ${rows} keys`,
        1,
      ]] as const
    ) {
      const count = queries === 1 ? iterations : Math.max(2, Math.ceil(iterations / 10));
      const options = { heads, headDim, kvLen: rows, causal: true };
      const qRows = rows === queries ? q : tensorRows(q, rows - 1, 1);
      const outRows = rows === queries ? out : tensorRows(out, 0, 1);
      const time = await timeWork(backend, count, (c) => {
        for (let i = 0; i < c; i++) {
          attention(rec, outRows, qRows, k, v, queries === 1 ? { ...options, partials } : options);
        }
        rec.submit();
      });
      // Causal: query i sees kvLen − queries + i + 1 keys.
      const seen = queries * (rows - queries) + queries * (queries + 1) / 2;
      results.push({
        attention: what,
        "µs": Math.round(time * 1000),
        "GFLOP/s": +((4 * width * seen) / time / 1e6).toFixed(2),
      });
    }
  } finally {
    rec.destroy();
    destroyTensors({ q, k, v, out, partials });
  }
  return results;
}
