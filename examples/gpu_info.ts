/**
 * Prints the WebGPU adapter @valle/core would use and runs two kernels on it, each checked
 * against the CPU: a 1024×1024 matrix-vector product with f16 weights when available, and a
 * 64×1024×1024 product with q8_0 weights, which runs in int8 (`dot4I8Packed`) where WGSL lists
 * `packed_4x8_integer_dot_product` and dequantizes the weights otherwise.
 *
 *   deno run -A examples/gpu_info.ts
 */

import { createTensor, readF32, uploadTensor } from "../src/backends/tensor.ts";
import { INTEGER_DOT_FEATURE, requestGpu } from "../src/backends/webgpu/device.ts";
import { linear } from "../src/ops/linear.ts";
import { f16ToF32, f32ToF16 } from "../src/io/dtype.ts";
import { dequantizeDeviceWords, quantizeBlocks, toDeviceWords } from "../src/quant/device.ts";

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
  `wgsl      ${INTEGER_DOT_FEATURE} ${gpu.features.integerDot}: quantized GEMMs ${
    gpu.features.integerDot
      ? "in int8 (gemm_q8_0_dp4a, gemm_q4_k_dp4a)"
      : "dequantize into the tile (gemm_q8_0, gemm_q4_k)"
  }`,
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

// The quantized GEMM: within the float product's rounding, plus with int8 activations half a
// level (dx / 2, dx = max |x| / 127 of the 32-block) per activation.
const m = 64;
const xq = Float32Array.from({ length: m * n }, (_, i) => Math.sin(i * 0.7));
const words = toDeviceWords("q8_0", quantizeBlocks("q8_0", w));
const wq = dequantizeDeviceWords("q8_0", words);
const yq = createTensor(gpu, [m, n], "f32", "yq");
const quantStart = performance.now();
linear(
  rec,
  yq,
  uploadTensor(gpu, xq, [m, n], "f32", "xq"),
  uploadTensor(gpu, words, [n, n], "q8_0", "wq"),
);
rec.submit();
const gotQ = await readF32(gpu, yq);
const quantMs = performance.now() - quantStart;
const halfLevels = Float32Array.from({ length: m * n / 32 }, (_, b) => {
  let amax = 0;
  for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(xq[32 * b + i]));
  return gpu.features.integerDot ? amax / 254 : 0;
});
let worst = 0;
for (let r = 0; r < m; r++) {
  for (let c = 0; c < n; c++) {
    let acc = 0;
    let bound = 1e-4;
    for (let i = 0; i < n; i++) {
      const wi = wq[c * n + i];
      acc += xq[r * n + i] * wi;
      bound += Math.abs(wi) * halfLevels[(r * n + i) >> 5];
    }
    worst = Math.max(worst, Math.abs(acc - gotQ[r * n + c]) / bound);
  }
}
console.log(
  `kernel    linear ${m}×${n}×${n} (q8_0 weights, ${
    gpu.features.integerDot ? "int8" : "f32"
  } activations): |GPU − CPU| at most ${(100 * worst).toFixed(1)}% of its bound, ${
    quantMs.toFixed(1)
  } ms incl. compile`,
);
gpu.destroy();
if (maxError > 1e-3 || !(worst <= 1)) Deno.exit(1);
