/**
 * GPU test harness: one shared device per test module (lavapipe compiles each pipeline once), and
 * weight upload in both precisions. GPU tests are never skipped: no adapter is a failure.
 */

import { type Gpu, requestGpu } from "../src/gpu/device.ts";
import { uploadTensor } from "../src/gpu/buffers.ts";
import type { GpuTensor } from "../src/gpu/tensor.ts";
import { f16ToF32, f32ToF16 } from "../src/io/dtype.ts";

let shared: Promise<Gpu> | undefined;

/** The module's shared device (f16 weights when the adapter has them). */
export function testGpu(): Promise<Gpu> {
  shared ??= requestGpu();
  return shared;
}

/** The weight precisions every kernel test runs: both, and f16 must exist (lavapipe has it). */
export const WEIGHT_DTYPES = ["f32", "f16"] as const;

/** Registers a GPU test. Resource sanitizers are off: the device outlives single tests. */
export function gpuTest(name: string, fn: (gpu: Gpu) => Promise<void> | void): void {
  Deno.test({
    name,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      const gpu = await testGpu();
      await fn(gpu);
      gpu.assertHealthy();
    },
  });
}

/**
 * Uploads weights as `dtype`. Returns the tensor and the values the GPU actually holds
 * (f16-rounded for "f16"), which is what the CPU oracle must use.
 */
export function uploadWeights(
  gpu: Gpu,
  values: Float32Array,
  shape: readonly number[],
  dtype: "f16" | "f32",
  label: string,
): { tensor: GpuTensor; values: Float32Array } {
  if (dtype === "f32") return { tensor: uploadTensor(gpu, values, shape, "f32", label), values };
  if (!gpu.features.f16) {
    throw new Error(
      `${label}: the adapter "${gpu.adapter.description}" lacks shader-f16 (install mesa-vulkan-drivers so Deno uses Vulkan lavapipe)`,
    );
  }
  const bits = f32ToF16(values);
  return { tensor: uploadTensor(gpu, bits, shape, "f16", label), values: f16ToF32(bits) };
}
