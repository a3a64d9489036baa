/**
 * Compiling kernels outside the library's cache, for the checks that every kernel compiles: the
 * static test on a default-limits device (Deno) and the kernel page in Chromium (Tint). Browser
 * compatible.
 */

import { type ShaderName, WGSL } from "../src/backends/webgpu/_wgsl.ts";

/** Every kernel file: all of `shaders/` but the shared functions (the files named `_*`). */
export const KERNEL_NAMES: readonly ShaderName[] = (Object.keys(WGSL) as ShaderName[]).filter(
  (name) => !name.startsWith("_"),
);

/**
 * Compiles `code` into a compute pipeline with an implicit layout, so that the device validates
 * the shader against its limits.
 *
 * @returns Why the device refused it (the first line with text), or undefined when it compiled.
 */
export async function compilePipeline(
  device: GPUDevice,
  label: string,
  code: string,
): Promise<string | undefined> {
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ label, code });
  const pipeline = device.createComputePipelineAsync({
    label,
    layout: "auto",
    compute: { module, entryPoint: "main" },
  }).then(() => undefined, (e: Error) => e.message);
  const [refused, error] = await Promise.all([pipeline, device.popErrorScope()]);
  const why = error?.message ?? refused;
  // Deno's messages start with a newline: the first line with text, and never an empty string.
  return why === undefined ? undefined : why.split("\n").find((l) => l.trim()) ?? "refused";
}
