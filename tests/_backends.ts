/**
 * Backend test harness: every kernel and model test runs on both backends, WebGPU (lavapipe here,
 * one shared device per test module so each pipeline compiles once) and the CPU (WebAssembly, two
 * threads; both builds of its kernels: relaxed SIMD, the default where the host has it, and plain
 * SIMD128, what hosts without relaxed SIMD run), against the same CPU oracles. Nothing is
 * skipped: no adapter is a failure.
 */

import type { Backend, BackendKind, Tensor } from "../src/backends/backend.ts";
import { createCpuBackend } from "../src/backends/cpu/backend.ts";
import { uploadTensor } from "../src/backends/tensor.ts";
import { type Gpu, requestGpu } from "../src/backends/webgpu/device.ts";
import { f16ToF32, f32ToF16 } from "../src/io/dtype.ts";

/** The backends every backend test runs on. */
export const BACKENDS: readonly BackendKind[] = ["webgpu", "cpu"];

/** The backends of {@linkcode backendTest}: each kind, and the CPU's plain SIMD128 build too. */
const VARIANTS = ["webgpu", "cpu", "cpu simd128"] as const;
type Variant = typeof VARIANTS[number];

/** Threads of the tests' CPU backend (more than one, so that work splitting is exercised). */
export const TEST_THREADS = 2;

const shared = new Map<Variant, Promise<Backend>>();

/**
 * `VALLE_TEST_GPU=baseline`: the WebGPU tests run on a device with the spec's default limits
 * (128 MiB per binding, 16 KiB of workgroup memory) and no optional feature (no `shader-f16`:
 * f32 weights), what the weakest WebGPU implementation offers, instead of the adapter's raised
 * limits and features. `deno task test` runs the kernel and model tests this way too.
 */
export const BASELINE_GPU = Deno.env.get("VALLE_TEST_GPU") === "baseline";

/** A device of the spec's defaults: no raised limit, no optional feature. */
async function baselineGpu(): Promise<Gpu> {
  const adapter = await navigator.gpu?.requestAdapter();
  if (!adapter) throw new Error("VALLE_TEST_GPU=baseline: no WebGPU adapter");
  return await requestGpu({ device: await adapter.requestDevice({ label: "valle.baseline" }) });
}

/** The module's shared backend of `kind` (f16 weights where supported). */
export function testBackend(kind: Variant): Promise<Backend> {
  let backend = shared.get(kind);
  if (!backend) {
    backend = kind === "webgpu"
      ? BASELINE_GPU ? baselineGpu() : requestGpu()
      : createCpuBackend({ threads: TEST_THREADS, relaxedSimd: kind === "cpu" });
    shared.set(kind, backend);
  }
  return backend;
}

/** The module's shared WebGPU device. */
export function testGpu(): Promise<Gpu> {
  return testBackend("webgpu") as Promise<Gpu>;
}

function register<B extends Backend>(
  name: string,
  backend: () => Promise<B>,
  fn: (backend: B) => Promise<void> | void,
): void {
  Deno.test({
    name,
    // The backend outlives single tests.
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      const b = await backend();
      await fn(b);
      b.assertHealthy();
    },
  });
}

/**
 * Registers a test once per backend, named "<name> [<kind>]" (WebGPU only on a
 * {@linkcode BASELINE_GPU}: the CPU runs are the same as without it).
 */
export function backendTest(name: string, fn: (backend: Backend) => Promise<void> | void): void {
  for (const kind of BASELINE_GPU ? ["webgpu" as const] : VARIANTS) {
    register(`${name} [${kind}]`, () => testBackend(kind), fn);
  }
}

/** A WebGPU device that refuses packed_4x8_integer_dot_product, shared by the module. */
let refusing: Promise<Gpu> | undefined;

/**
 * Registers a test of quantized kernels as {@linkcode backendTest} does and, with `floatGpu`, also
 * on a WebGPU device created with `requestGpu({ integerDot: false })`: their float-activation
 * kernels, what a device without packed_4x8_integer_dot_product runs.
 */
export function quantTest(
  name: string,
  fn: (backend: Backend) => Promise<void>,
  floatGpu: boolean,
): void {
  backendTest(name, fn);
  if (floatGpu) register(`${name} [webgpu, integerDot false]`, refusingGpu, fn);
}

/** The module's WebGPU device that refuses the integer kernels. */
async function refusingGpu(): Promise<Gpu> {
  const gpu = await (refusing ??= requestGpu({ integerDot: false }));
  if (gpu.features.integerDot) throw new Error("requestGpu({ integerDot: false }) kept it");
  return gpu;
}

/**
 * Whether the quantized kernels run the integer block math on this backend (src/quant/FORMATS.md
 * §5): the CPU's, and WebGPU's where WGSL has packed_4x8_integer_dot_product.
 */
export function integerMath(backend: Backend): boolean {
  return backend.kind === "cpu" || (backend as Gpu).features.integerDot;
}

/** Registers a test of WebGPU itself (devices, pipelines, timestamp queries). */
export function gpuTest(name: string, fn: (gpu: Gpu) => Promise<void> | void): void {
  register(name, testGpu, fn);
}

/**
 * The weight precisions every kernel test runs: both (lavapipe and the CPU have f16), f32 only on
 * a {@linkcode BASELINE_GPU}.
 */
export const WEIGHT_DTYPES: readonly ("f32" | "f16")[] = BASELINE_GPU ? ["f32"] : ["f32", "f16"];

/**
 * Uploads weights as `dtype`. Returns the tensor and the values the backend actually holds
 * (f16-rounded for "f16"), which is what the CPU oracle must use.
 */
export function uploadWeights(
  backend: Backend,
  values: Float32Array,
  shape: readonly number[],
  dtype: "f16" | "f32",
  label: string,
): { tensor: Tensor; values: Float32Array } {
  if (dtype === "f32") {
    return { tensor: uploadTensor(backend, values, shape, "f32", label), values };
  }
  if (!backend.supportsF16) {
    throw new Error(
      `${label}: "${backend.description}" lacks shader-f16 (install mesa-vulkan-drivers so Deno uses Vulkan lavapipe)`,
    );
  }
  const bits = f32ToF16(values);
  return { tensor: uploadTensor(backend, bits, shape, "f16", label), values: f16ToF32(bits) };
}
