/**
 * Prints the WebGPU adapter @valle/core would use and runs one kernel on it (a 1024×1024
 * matrix-vector product with f16 weights when available), checked against the CPU.
 *
 *   deno run -A examples/gpu_info.ts
 */

import { createTensor, readF32, uploadTensor } from "../src/backends/tensor.ts";
import { requestGpu } from "../src/backends/webgpu/device.ts";
import { linear } from "../src/ops/linear.ts";
import { f16ToF32, f32ToF16 } from "../src/io/dtype.ts";

const gpu = await requestGpu();
console.log(
  `adapter   ${gpu.adapter.description || gpu.adapter.vendor}${
    gpu.adapter.software ? " (software)" : ""
  }`,
);
console.log(
  `features  shader-f16 ${gpu.features.f16}, timestamp-query ${gpu.features.timestamps}, subgroups ${gpu.features.subgroups}`,
);
console.log(
  `limits    storage binding ${gpu.device.limits.maxStorageBufferBindingSize / 2 ** 20} MiB, ` +
    `workgroup memory ${gpu.device.limits.maxComputeWorkgroupStorageSize / 1024} KiB`,
);

const n = 1024;
const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
const w = Float32Array.from({ length: n * n }, (_, i) => Math.cos(i % 977) / 32);
const weights = gpu.weightDtype === "f16"
  ? uploadTensor(gpu, f32ToF16(w), [n, n], "f16", "w")
  : uploadTensor(gpu, w, [n, n], "f32", "w");
const stored = gpu.weightDtype === "f16" ? f16ToF32(f32ToF16(w)) : w;
const y = createTensor(gpu, [1, n], "f32", "y");
const rec = gpu.createRecorder();
const start = performance.now();
linear(rec, y, uploadTensor(gpu, x, [1, n], "f32", "x"), weights);
rec.submit();
const got = await readF32(gpu, y);
const ms = performance.now() - start;

let maxError = 0;
for (let r = 0; r < n; r++) {
  let acc = 0;
  for (let c = 0; c < n; c++) acc += x[c] * stored[r * n + c];
  maxError = Math.max(maxError, Math.abs(acc - got[r]));
}
console.log(
  `kernel    linear 1×${n}×${n} (${gpu.weightDtype} weights): max |GPU − CPU| = ${
    maxError.toExponential(2)
  }, ${ms.toFixed(1)} ms incl. compile`,
);
gpu.destroy();
if (maxError > 1e-3) Deno.exit(1);
