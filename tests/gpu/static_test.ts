/**
 * Every kernel within what any WebGPU device offers: each WGSL file compiles, with its default
 * `override` constants, into a pipeline on a device created with the spec's default limits (256
 * invocations per workgroup, 8 storage buffers per stage) and no optional feature, where pipeline
 * creation validates them; its workgroup memory, counted from its declarations, is within 16 KiB
 * (which Deno's wgpu does not validate); and its parameters fit the parameter binding. Hardware
 * devices may offer more, but none offers less.
 */

import assert from "node:assert/strict";
import { type ShaderName, WGSL } from "../../src/backends/webgpu/_wgsl.ts";
import { kernelSource, PARAMS_BINDING_BYTES } from "../../src/backends/webgpu/kernels.ts";
import { compilePipeline, KERNEL_NAMES as SHADERS } from "../_compile.ts";

Deno.test({
  name: "every kernel compiles into a pipeline within the WebGPU default limits, in f32",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const adapter = await navigator.gpu.requestAdapter();
    assert.ok(adapter, "a WebGPU adapter (lavapipe: mesa-vulkan-drivers)");
    const device = await adapter.requestDevice({ label: "valle.static" });
    try {
      const compile = (label: string, code: string) => compilePipeline(device, label, code);
      // The control: a kernel over a limit is refused, so the check below is a real one. (Deno
      // 2.9's wgpu does not check workgroup memory at pipeline creation: the next test does.)
      const over = await compile(
        "over",
        "@compute @workgroup_size(512)\nfn main(@builtin(local_invocation_index) i: u32) {}",
      );
      assert.ok(over, "512 invocations are refused on a default-limits device");
      const failures: string[] = [];
      await Promise.all(SHADERS.map(async (shader) => {
        const problem = await compile(shader, kernelSource(shader, "f32"));
        if (problem) failures.push(`${shader}: ${problem}`);
      }));
      assert.deepEqual(failures, [], failures.join("\n"));
    } finally {
      device.destroy();
    }
  },
});

Deno.test("every kernel's parameters fit the parameter binding", () => {
  for (const shader of SHADERS) {
    const params = WGSL[shader].match(/struct Params \{([^}]*)\}/);
    if (!params) continue;
    const fields = params[1].split(",").filter((f) => f.includes(":")).length;
    assert.ok(4 * fields <= PARAMS_BINDING_BYTES, `${shader}: ${fields} parameters`);
  }
});

/** Bytes of a WGSL type in workgroup memory (arrays: element size, a vec3's padded to 16). */
const TYPE_BYTES: Record<string, number> = {
  f32: 4,
  u32: 4,
  i32: 4,
  vec2f: 8,
  vec2u: 8,
  vec3u: 16,
  vec3f: 16,
  vec4f: 16,
  vec4u: 16,
  "vec4<W>": 16,
};

/** Workgroup bytes a kernel declares, with its constants and overrides at their defaults. */
function workgroupBytes(shader: ShaderName): number {
  const code = `${WGSL._common}\n${WGSL[shader]}`.replace(/\/\/.*$/gm, "");
  const values = new Map<string, number>();
  const evaluate = (expression: string): number => {
    const js = expression.replace(/\b(\d+)[ui]\b/g, "$1").replace(/\b(u32|i32)\(/g, "(")
      .replace(/[A-Za-z_]\w*/g, (name) => {
        const value = values.get(name);
        if (value === undefined) throw new Error(`${shader}: cannot evaluate "${expression}"`);
        return String(value);
      });
    return Math.floor(new Function(`return (${js});`)());
  };
  for (
    const [, name, expression] of code.matchAll(
      /(?:const|override) (\w+)\s*(?::\s*\w+)?\s*=\s*([^;]+);/g,
    )
  ) {
    try {
      values.set(name, evaluate(expression));
    } catch {
      // A function-local or non-numeric constant; sizes that need it fail below.
    }
  }
  let bytes = 0;
  for (const [, type] of code.matchAll(/var<workgroup>\s+\w+\s*:\s*([^;]+);/g)) {
    const array = type.match(/^array<(.+),\s*([^,>]+)>$/);
    const element = (array ? array[1] : type).trim();
    const size = TYPE_BYTES[element];
    assert.ok(size, `${shader}: workgroup type ${element}`);
    bytes += size * (array ? evaluate(array[2]) : 1);
  }
  return bytes;
}

Deno.test("every kernel's workgroup memory is within the default 16 KiB", () => {
  const over = SHADERS.map((shader) => [shader, workgroupBytes(shader)] as const)
    .filter(([, bytes]) => bytes > 16384);
  assert.deepEqual(over, []);
  // The counting itself: the tiled attention's K and V tiles, 64 vec4 each.
  assert.ok(workgroupBytes("attention") >= 2 * 64 * 16);
});
