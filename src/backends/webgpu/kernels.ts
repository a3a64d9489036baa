/**
 * Kernel compilation and the per-device caches of pipelines, layouts and bind groups.
 *
 * A kernel is one WGSL file of `shaders/` (entry point `main`). Its source is assembled as the
 * file's `requires` directives + precision header + `_common.wgsl` + the workgroup reductions
 * (`_lanes.wgsl`, or `_lanes_subgroups.wgsl` on a device with `GpuFeatures.subgroups`) + the
 * rest of the file, and
 * specialised by the weight type `W` and by `override` constants. A spec's `integerDot` kernel
 * replaces its `shader` on a device with `GpuFeatures.integerDot`. Every kernel binds its tensors
 * at `@group(0)` (outputs first, then inputs) and one uniform `Params` struct at
 * `@group(1) @binding(0)` through a dynamic offset into the recorder's parameter buffer.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { GpuError } from "../../errors.ts";
import type { BindingAccess, KernelSpec, KernelUse, KernelVariant } from "../backend.ts";
import type { Gpu } from "./device.ts";
import { type ShaderName, WGSL } from "./_wgsl.ts";

/** A compiled kernel, ready to be dispatched by a recorder. */
export interface Kernel {
  /** The spec it was compiled from. */
  readonly spec: KernelSpec;
  /**
   * The cache key, also the pipeline label: `shader.weights{.name=value}`, where `shader` is the
   * WGSL file compiled (`spec.integerDot` where the device runs it).
   */
  readonly key: string;
  /** The compute pipeline. */
  readonly pipeline: GPUComputePipeline;
  /** The `@group(0)` layout. */
  readonly layout: GPUBindGroupLayout;
}

/**
 * A node of the bind-group cache: one level per binding, keyed weakly by the buffer, so that a
 * group lives only as long as every buffer it binds (buffers of a disposed model, or of a run
 * state that grew, take their groups with them).
 */
interface BindGroupNode {
  next: WeakMap<GPUBuffer, BindGroupNode>;
  group?: GPUBindGroup;
}

/** Byte size of one `Params` field; the struct is a run of 4-byte scalars. */
const PARAM_BYTES = 4;

/**
 * The size of the `Params` binding every dispatch sees: the largest struct a kernel may declare.
 * It is not the device's `minUniformBufferOffsetAlignment` (64 on some devices, where `sample`'s
 * parameters alone take 92 bytes).
 */
export const PARAMS_BINDING_BYTES = 256;

/** Compiles kernels once per device and caches layouts, pipelines and bind groups. */
export class KernelCache {
  #gpu: Gpu;
  #kernels = new Map<string, Kernel>();
  #bySpec = new WeakMap<KernelSpec, Partial<Record<"f16" | "f32", Kernel>>>();
  #layouts = new Map<string, GPUBindGroupLayout>();
  #bindGroups = new WeakMap<GPUBindGroupLayout, BindGroupNode>();
  /**
   * Pipelines compiled so far: `sync` by `get` at a dispatch (the recording thread waits for the
   * compiler), `async` ahead of time by `warm`.
   */
  readonly compiles: { sync: number; async: number } = { sync: 0, async: 0 };
  /** The `@group(1)` layout shared by every kernel: one uniform with a dynamic offset. */
  readonly paramsLayout: GPUBindGroupLayout;

  /**
   * Creates the caches of one device.
   *
   * @param gpu The device owner.
   */
  constructor(gpu: Gpu) {
    this.#gpu = gpu;
    this.paramsLayout = gpu.device.createBindGroupLayout({
      label: "valle.params",
      entries: [{
        binding: 0,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: "uniform", hasDynamicOffset: true },
      }],
    });
  }

  /**
   * Returns the compiled kernel for `spec` and `variant`, compiling it on first use. Compilation
   * errors surface as a {@linkcode GpuError} from the next `Gpu.assertHealthy()` (and so from the
   * next submit), naming the kernel and the compiler's messages.
   */
  get(spec: KernelSpec, variant: KernelVariant = {}): Kernel {
    const weights = variant.weights ?? this.#gpu.weightDtype;
    // Fast path of the decode loop: no constants, looked up by spec identity and weight type.
    if (!variant.constants) {
      const hit = this.#bySpec.get(spec)?.[weights];
      if (hit) return hit;
    }
    const plan = this.#plan(spec, variant);
    const cached = this.#kernels.get(plan.key);
    if (cached) return this.#remember(spec, cached, variant, plan.weights);
    const device = this.#gpu.device;
    device.pushErrorScope("validation");
    const { module, descriptor, layout } = this.#compileInputs(plan);
    const pipeline = device.createComputePipeline(descriptor);
    this.compiles.sync++;
    device.popErrorScope().then(async (error) => {
      if (!error) return;
      this.#gpu.fail(await compileError(plan.key, error.message, module));
    });
    const kernel: Kernel = { spec, key: plan.key, pipeline, layout };
    this.#kernels.set(plan.key, kernel);
    return this.#remember(spec, kernel, variant, plan.weights);
  }

  /**
   * Compiles kernels ahead of their first {@linkcode KernelCache.get}, concurrently, with
   * `createComputePipelineAsync` (no stall of the thread that records). Kernels already compiled,
   * or listed twice, are compiled once.
   *
   * @param uses The kernels and variants.
   * @param onProgress Called as each compile finishes, with the number done and the total.
   * @throws {GpuError} The first kernel that fails to compile, named, with the compiler's messages.
   */
  async warm(
    uses: readonly KernelUse[],
    onProgress?: (done: number, total: number) => void,
  ): Promise<void> {
    const plans = new Map<string, { spec: KernelSpec; plan: KernelPlan }>();
    for (const { spec, variant = {} } of uses) {
      const plan = this.#plan(spec, variant);
      if (!this.#kernels.has(plan.key) && !plans.has(plan.key)) plans.set(plan.key, { spec, plan });
    }
    let done = 0;
    const device = this.#gpu.device;
    onProgress?.(0, plans.size);
    await Promise.all([...plans.values()].map(async ({ spec, plan }) => {
      // Each compile is bracketed by its own error scope (synchronously, before any await), so
      // that an error, whether a rejection or a scope's, names its kernel; none goes uncaptured.
      device.pushErrorScope("validation");
      const { module, descriptor, layout } = this.#compileInputs(plan);
      const compiling = device.createComputePipelineAsync(descriptor);
      const scope = device.popErrorScope();
      let pipeline: GPUComputePipeline;
      try {
        pipeline = await compiling;
      } catch (error) {
        await scope.catch(() => {});
        throw await compileError(plan.key, (error as Error).message, module);
      }
      const error = await scope;
      if (error) throw await compileError(plan.key, error.message, module);
      this.compiles.async++;
      this.#kernels.set(plan.key, { spec, key: plan.key, pipeline, layout });
      onProgress?.(++done, plans.size);
    }));
  }

  /**
   * Returns a bind group for `kernel` over `bindings`, creating it on first use. Bind groups
   * are cached per buffer set, so a decode loop over fixed buffers creates none after step 1.
   */
  bindGroup(kernel: Kernel, buffers: readonly GPUBuffer[]): GPUBindGroup {
    // A trie keyed by the layout, then by each buffer in binding order.
    let node: BindGroupNode | undefined = this.#bindGroups.get(kernel.layout);
    if (!node) {
      node = { next: new WeakMap() };
      this.#bindGroups.set(kernel.layout, node);
    }
    for (const buffer of buffers) {
      let next: BindGroupNode | undefined = node.next.get(buffer);
      if (!next) {
        next = { next: new WeakMap() };
        node.next.set(buffer, next);
      }
      node = next;
    }
    node.group ??= this.#gpu.device.createBindGroup({
      label: kernel.key,
      layout: kernel.layout,
      entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
    return node.group;
  }

  /** Byte size of `spec`'s `Params` struct. */
  static paramsSize(spec: KernelSpec): number {
    return spec.params.length * PARAM_BYTES;
  }

  /** The key, source and layout of a kernel variant; throws where it cannot compile here. */
  #plan(spec: KernelSpec, variant: KernelVariant): KernelPlan {
    const weights = variant.weights ?? this.#gpu.weightDtype;
    const constants = variant.constants ?? {};
    const shader = spec.integerDot && this.#gpu.features.integerDot ? spec.integerDot : spec.shader;
    const key = kernelKey(shader, weights, constants);
    if (KernelCache.paramsSize(spec) > PARAMS_BINDING_BYTES) {
      throw new GpuError(
        `Cannot compile kernel "${key}": its ${spec.params.length} parameters exceed the ` +
          `${PARAMS_BINDING_BYTES}-byte parameter binding`,
      );
    }
    if (weights === "f16" && !this.#gpu.features.f16) {
      throw new GpuError(`Cannot compile kernel "${key}": the device lacks "shader-f16"`);
    }
    return { key, shader, weights, constants, bindings: spec.bindings };
  }

  /** The shader module and pipeline descriptor of a plan, and its `@group(0)` layout. */
  #compileInputs(plan: KernelPlan): {
    module: GPUShaderModule;
    descriptor: GPUComputePipelineDescriptor;
    layout: GPUBindGroupLayout;
  } {
    const device = this.#gpu.device;
    const layout = this.#layout(plan.bindings);
    const code = kernelSource(plan.shader, plan.weights, this.#gpu.features.subgroups);
    const module = device.createShaderModule({ label: plan.key, code });
    const descriptor = {
      label: plan.key,
      layout: device.createPipelineLayout({
        label: plan.key,
        bindGroupLayouts: [layout, this.paramsLayout],
      }),
      compute: { module, entryPoint: "main", constants: plan.constants },
    };
    return { module, descriptor, layout };
  }

  /** Files a kernel without constants under its spec, for the fast path of `get`. */
  #remember(
    spec: KernelSpec,
    kernel: Kernel,
    variant: KernelVariant,
    weights: "f16" | "f32",
  ): Kernel {
    if (!variant.constants) {
      const bySpec = this.#bySpec.get(spec) ?? {};
      bySpec[weights] = kernel;
      this.#bySpec.set(spec, bySpec);
    }
    return kernel;
  }

  #layout(bindings: readonly BindingAccess[]): GPUBindGroupLayout {
    const signature = bindings.map((b) => (b === "write" ? "w" : "r")).join("");
    let layout = this.#layouts.get(signature);
    if (!layout) {
      layout = this.#gpu.device.createBindGroupLayout({
        label: `valle.${signature}`,
        entries: bindings.map((access, binding) => ({
          binding,
          visibility: GPUShaderStage.COMPUTE,
          buffer: { type: access === "write" ? "storage" : "read-only-storage" },
        })),
      });
      this.#layouts.set(signature, layout);
    }
    return layout;
  }
}

/** What compiling one kernel variant needs. */
interface KernelPlan {
  key: string;
  shader: ShaderName;
  weights: "f16" | "f32";
  constants: Readonly<Record<string, number>>;
  bindings: readonly BindingAccess[];
}

/** A kernel's compile failure as a GpuError with the compiler's messages. */
async function compileError(
  key: string,
  message: string,
  module: GPUShaderModule,
): Promise<GpuError> {
  const info = await module.getCompilationInfo();
  const messages = info.messages.map((m) => `  ${m.lineNum}:${m.linePos} ${m.message}`);
  return new GpuError(`Cannot compile kernel "${key}": ${message}\n${messages.join("\n")}`);
}

/** A `requires` directive at the start of a line (WGSL wants directives before declarations). */
const REQUIRES = /^requires [^;]+;\n/gm;

/**
 * The full WGSL source of a kernel for a weight type: the kernel file's `requires` directives,
 * the precision header, the shared helpers and workgroup reductions (on subgroups with
 * `subgroups`, which the device must enable), the rest of the kernel file.
 */
export function kernelSource(
  shader: ShaderName,
  weights: "f16" | "f32",
  subgroups = false,
): string {
  const header = (subgroups ? "enable subgroups;\n" : "") +
    (weights === "f16" ? "enable f16;\nalias W = f16;\n" : "alias W = f32;\n");
  const file = WGSL[shader];
  const requires = file.match(REQUIRES)?.join("") ?? "";
  const lanes = subgroups ? WGSL._lanes_subgroups : WGSL._lanes;
  return `${requires}${header}${WGSL._common}\n${lanes}\n${file.replace(REQUIRES, "")}`;
}

function kernelKey(
  shader: string,
  weights: string,
  constants: Readonly<Record<string, number>>,
): string {
  const parts = [shader, weights];
  for (const name of Object.keys(constants).sort()) parts.push(`${name}=${constants[name]}`);
  return parts.join(".");
}
