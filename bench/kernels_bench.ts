/**
 * GEMV and GEMM at the VALL-E model's shapes: GB/s (bytes moved) and GFLOP/s, f16 and f32
 * weights. Prints a table and writes bench/results/kernels-<adapter>.json.
 *
 *   deno task bench:kernels [--rows 256] [--iterations 50]
 */

import { parseArgs } from "node:util";
import { requestGpu } from "../src/gpu/device.ts";
import { createTensor, uploadTensor } from "../src/gpu/buffers.ts";
import { Recorder } from "../src/gpu/recorder.ts";
import { linear } from "../src/ops/linear.ts";
import { adapterSlug, environment, markdownTable, timeGpu } from "./_report.ts";

const { values } = parseArgs({
  options: {
    rows: { type: "string", default: "256" },
    iterations: { type: "string", default: "50" },
  },
});
const gemmRows = Number(values.rows);
const iterations = Number(values.iterations);

/** [out, in]: attention projections, MLP up/gate, MLP down, the AR head. */
const SHAPES: [number, number][] = [[1024, 1024], [4096, 1024], [1024, 4096], [1025, 1024]];

const gpu = await requestGpu();
const dtypes = gpu.features.f16 ? ["f16", "f32"] as const : ["f32"] as const;
const results: Record<string, string | number>[] = [];
for (const dtype of dtypes) {
  for (const [n, k] of SHAPES) {
    const w = dtype === "f16"
      ? uploadTensor(gpu, new Uint16Array(n * k).fill(0x2c00), [n, k], "f16", "w")
      : uploadTensor(gpu, new Float32Array(n * k).fill(0.0625), [n, k], "f32", "w");
    for (const m of [1, gemmRows]) {
      const x = uploadTensor(gpu, new Float32Array(m * k).fill(1), [m, k], "f32", "x");
      const y = createTensor(gpu, [m, n], "f32", "y");
      const rec = new Recorder(gpu);
      const ms = await timeGpu(
        gpu,
        m === 1 ? iterations : Math.max(3, Math.ceil(iterations / 10)),
        (count) => {
          for (let i = 0; i < count; i++) linear(rec, y, x, w);
          rec.submit();
        },
      );
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

const env = environment(gpu);
console.log(
  `adapter: ${gpu.adapter.description || gpu.adapter.vendor} (f16 ${gpu.features.f16})\n`,
);
console.log(markdownTable(results));
const path = `bench/results/kernels-${adapterSlug(gpu)}.json`;
await Deno.writeTextFile(
  path,
  JSON.stringify({ environment: env, gemmRows, iterations, results }, null, 2) + "\n",
);
console.log(`\nwrote ${path}`);
gpu.destroy();
