/**
 * The adapter check of `bench/gpu/run.sh`: requests the WebGPU adapter the benchmarks would use,
 * prints what it is on stderr and one JSON line on stdout (the adapter summary, its features and
 * the name its results get, `bench/results/<slug>.json`), and fails with a message saying why
 * when it is a software adapter (lavapipe, SwiftShader: a CPU) or lacks `shader-f16` (Deno fell
 * back to OpenGL: the Vulkan driver was not found), unless `--allow-software` is given.
 *
 *   deno run -A bench/gpu/adapter.ts [--allow-software]
 */

import { requestGpu } from "../../src/backends/webgpu/device.ts";
import { slug } from "../_report.ts";

const allowSoftware = Deno.args.includes("--allow-software");
const gpu = await requestGpu();
const { adapter, features } = gpu;
const name = adapter.description || `${adapter.vendor} ${adapter.device}`;
console.error(
  `adapter: ${name} (vendor ${adapter.vendor || "?"}, architecture ${
    adapter.architecture || "?"
  })` +
    `${adapter.software ? ", software" : ""}; shader-f16 ${features.f16}, ` +
    `timestamp-query ${features.timestamps}, subgroups ${features.subgroups}, ` +
    `int8 quantized GEMMs ${features.integerDot}`,
);
console.log(JSON.stringify({ ...adapter, features, slug: slug(gpu.description) }));
gpu.destroy();

const problem = adapter.software
  ? `"${name}" is a software adapter (a CPU), not the GPU: the NVIDIA Vulkan driver was not ` +
    "found or failed to load (see the Vulkan lines of the log)"
  : !features.f16
  ? `"${name}" lacks shader-f16: Deno fell back to OpenGL, so the NVIDIA Vulkan driver was not ` +
    "found or failed to load (see the Vulkan lines of the log)"
  : undefined;
if (problem && !allowSoftware) {
  console.error(`adapter: ${problem}; pass --allow-software to run anyway`);
  Deno.exit(1);
}
