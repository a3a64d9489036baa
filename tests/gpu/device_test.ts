import { GpuError } from "../../src/errors.ts";
import type { KernelSpec } from "../../src/backends/backend.ts";
import { createTensor, readBytes, readF32, rows, uploadTensor } from "../../src/backends/tensor.ts";
import { INTEGER_DOT_FEATURE, requestGpu } from "../../src/backends/webgpu/device.ts";
import { add } from "../../src/ops/elementwise.ts";
import { softmax } from "../../src/ops/softmax.ts";
import { gpuTest } from "../_backends.ts";
import { deepStrictEqual, equal, ok, rejects, throws } from "node:assert";

gpuTest(
  "requestGpu() finds an adapter with shader-f16 and raises the limits to the adapter's",
  async (gpu) => {
    console.log(`adapter: ${JSON.stringify(gpu.adapter)}`);
    ok(
      gpu.features.f16,
      `adapter "${gpu.adapter.description}" lacks shader-f16: install mesa-vulkan-drivers so Deno ` +
        "uses Vulkan lavapipe instead of the GL fallback",
    );
    equal(gpu.weightDtype, "f16");
    const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
    for (
      const name of [
        "maxStorageBufferBindingSize",
        "maxBufferSize",
        "maxComputeWorkgroupStorageSize",
      ] as const
    ) {
      equal(gpu.device.limits[name], adapter!.limits[name], name);
    }
  },
);

gpuTest(
  "requestGpu() runs the quantized GEMMs' integer kernels where WGSL lists packed_4x8_integer_dot_product, and not when refused",
  async (gpu) => {
    const features = (navigator.gpu as { wgslLanguageFeatures?: ReadonlySet<string> })
      .wgslLanguageFeatures;
    ok(features?.has(INTEGER_DOT_FEATURE), "Deno 2.9's WGSL (naga 29) lists it on lavapipe");
    ok(gpu.features.integerDot);
    const spec: KernelSpec = {
      shader: "gemm_q8_0",
      bindings: ["write", "read", "read", "read"],
      params: Array(9).fill("u32"),
      integerDot: "gemm_q8_0_dp4a",
    };
    equal(gpu.kernels.get(spec).key, "gemm_q8_0_dp4a.f16");
    const refused = await requestGpu({ integerDot: false });
    equal(refused.features.integerDot, false);
    equal(refused.kernels.get(spec).key, "gemm_q8_0.f16");
    await refused.fence();
    refused.destroy();
  },
);

Deno.test("requestGpu() honours precision: f32 stores weights as f32", async () => {
  const gpu = await requestGpu({ precision: "f32" });
  equal(gpu.weightDtype, "f32");
  gpu.destroy();
});

Deno.test("requestGpu() without WebGPU throws a GpuError that says so", async () => {
  const original = Object.getOwnPropertyDescriptor(globalThis, "navigator")!;
  Object.defineProperty(globalThis, "navigator", { value: {}, configurable: true });
  try {
    await rejects(
      requestGpu(),
      (e: Error) => e instanceof GpuError && /WebGPU is not available/.test(e.message),
    );
  } finally {
    Object.defineProperty(globalThis, "navigator", original);
  }
});

gpuTest(
  "a kernel whose bindings do not match its WGSL fails with a GpuError naming it",
  async () => {
    // A separate device: the failure is sticky by design.
    const gpu = await requestGpu();
    const broken: KernelSpec = { shader: "softmax", bindings: ["read"], params: ["u32"] };
    gpu.kernels.get(broken);
    await gpu.device.queue.onSubmittedWorkDone();
    await new Promise((r) => setTimeout(r, 50));
    throws(
      () => gpu.assertHealthy(),
      (e: Error) => e instanceof GpuError && /softmax\.f16/.test(e.message),
    );
    gpu.destroy();
  },
);

gpuTest(
  "a recorder submits by itself when its parameter space is full, keeping order",
  async (gpu) => {
    const rec = gpu.createRecorder({ capacity: 2 });
    const x = uploadTensor(gpu, new Float32Array(8), [8], "f32", "x");
    const one = uploadTensor(gpu, new Float32Array(8).fill(1), [8], "f32", "one");
    const before = gpu.stats.submits;
    for (let i = 0; i < 10; i++) add(rec, x, one);
    rec.submit();
    ok(gpu.stats.submits - before >= 5, "2 dispatches fit per submit");
    deepStrictEqual([...await readF32(gpu, x)], new Array(8).fill(10));
    rec.destroy();
  },
);

gpuTest("the profiler times each dispatch by kernel", async (gpu) => {
  const profiler = gpu.createProfiler();
  const rec = gpu.createRecorder({ profiler });
  const x = createTensor(gpu, [64, 1000], "f32", "x");
  softmax(rec, x);
  softmax(rec, x);
  rec.submit();
  const times = await profiler.collect();
  equal(times.length, 1);
  equal(times[0].label, "softmax.f16");
  equal(times[0].count, 2);
  ok(times[0].totalMs > 0);
  // In recording order, one entry per dispatch.
  const one = uploadTensor(gpu, new Float32Array(1000), [1000], "f32", "one");
  softmax(rec, x);
  add(rec, one, createTensor(gpu, [1000], "f32", "y"));
  softmax(rec, x);
  rec.submit();
  deepStrictEqual((await profiler.dispatches()).map((d) => d.label), [
    "softmax.f16",
    "add.f16",
    "softmax.f16",
  ]);
  profiler.destroy();
});

gpuTest("readBytes() reads f16 tensors at odd element offsets", async (gpu) => {
  const bits = Uint16Array.from({ length: 10 }, (_, i) => 0x3c00 + i);
  const t = uploadTensor(gpu, bits, [10], "f16", "bits");
  const [bytes] = await readBytes(gpu, [rows(t, 3, 5)]);
  deepStrictEqual([...new Uint16Array(bytes)], [...bits.subarray(3, 8)]);
});

gpuTest("readBytes() refuses a view past the end of its buffer", async (gpu) => {
  const t = createTensor(gpu, [4], "f32", "small");
  await rejects(readBytes(gpu, [{ ...t, offset: 2 }]), /past its end/);
});

gpuTest("Gpu.memory counts the library's buffers and their peak", async () => {
  const gpu = await requestGpu();
  const base = gpu.memory.current;
  const a = createTensor(gpu, [1000], "f32", "a"); // 4000 bytes
  const b = createTensor(gpu, [10], "f16", "b"); // 20 bytes
  equal(gpu.memory.current - base, 4020);
  a.buffer.destroy();
  a.buffer.destroy(); // twice: counted once
  equal(gpu.memory.current - base, 20);
  equal(gpu.memory.peak - base, 4020);
  b.buffer.destroy();
  gpu.destroy();
});
