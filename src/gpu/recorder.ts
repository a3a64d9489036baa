/**
 * {@linkcode Recorder}: records many dispatches into one command encoder and one compute pass, and
 * submits them together (one `queue.submit` per step). Kernel parameters are appended to a CPU
 * staging area at the device's uniform-offset alignment and uploaded with a single `writeBuffer`
 * just before the submit; each dispatch binds them through a dynamic offset. Nothing is created
 * per dispatch once pipelines and bind groups are cached.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { GpuError, OptionError } from "../errors.ts";
import type { Gpu } from "./device.ts";
import { type Kernel, KernelCache } from "./kernels.ts";
import type { Profiler } from "./profiler.ts";
import { DTYPE_BYTES, type GpuTensor, numel } from "./tensor.ts";

/** Options for a {@linkcode Recorder}. */
export interface RecorderOptions {
  /** Label of the command buffers, shown in GPU debuggers. */
  label?: string;
  /**
   * Bytes of parameter space per submit (each dispatch takes one aligned slot, usually 256
   * bytes). When full, the recorder submits what it has and continues. Default 256 KiB.
   */
  paramsCapacity?: number;
  /** Time every dispatch with timestamp queries (one compute pass per dispatch). */
  profiler?: Profiler;
}

/** Records dispatches and copies for one step of GPU work. */
export class Recorder {
  /** The device this recorder records for. */
  readonly gpu: Gpu;
  #gpu: Gpu;
  #label: string;
  #encoder?: GPUCommandEncoder;
  #pass?: GPUComputePassEncoder;
  #paramsBuffer: GPUBuffer;
  #paramsGroup: GPUBindGroup;
  #staging: ArrayBuffer;
  #view: DataView;
  #used = 0;
  #align: number;
  #profiler?: Profiler;
  #maxGroups: number;
  /** What the open pass has bound, to skip redundant calls. */
  #pipeline?: GPUComputePipeline;
  #group?: GPUBindGroup;

  /**
   * Creates a recorder with its own parameter buffer.
   *
   * @param gpu The device to record for.
   * @param options Label, parameter capacity, optional profiler.
   */
  constructor(gpu: Gpu, options: RecorderOptions = {}) {
    this.gpu = gpu;
    this.#gpu = gpu;
    this.#label = options.label ?? "valle.step";
    this.#align = gpu.device.limits.minUniformBufferOffsetAlignment;
    this.#maxGroups = gpu.device.limits.maxComputeWorkgroupsPerDimension;
    const capacity = Math.max(options.paramsCapacity ?? 256 * 1024, this.#align);
    this.#staging = new ArrayBuffer(capacity);
    this.#view = new DataView(this.#staging);
    this.#paramsBuffer = gpu.createBuffer({
      label: `${this.#label}.params`,
      size: capacity,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    this.#paramsGroup = gpu.device.createBindGroup({
      label: `${this.#label}.params`,
      layout: gpu.kernels.paramsLayout,
      entries: [{ binding: 0, resource: { buffer: this.#paramsBuffer, size: this.#align } }],
    });
    this.#profiler = options.profiler;
  }

  /**
   * Records one dispatch of `kernel`.
   *
   * @param kernel A kernel from `gpu.kernels.get(spec)`.
   * @param bindings The `@group(0)` buffers in binding order (tensors bind their whole buffer;
   * their element offsets travel in `params`).
   * @param params The `Params` struct fields in order, typed per `kernel.spec.params`.
   * @param workgroups Workgroup counts in x, y, z.
   */
  dispatch(
    kernel: Kernel,
    bindings: readonly (GpuTensor | GPUBuffer)[],
    params: readonly number[],
    workgroups: readonly [number, number?, number?],
  ): void {
    const spec = kernel.spec;
    if (bindings.length !== spec.bindings.length || params.length !== spec.params.length) {
      throw new OptionError(
        `Cannot dispatch "${kernel.key}": got ${bindings.length} bindings and ` +
          `${params.length} params, expected ${spec.bindings.length} and ${spec.params.length}`,
      );
    }
    const [x, y = 1, z = 1] = workgroups;
    if (x > this.#maxGroups || y > this.#maxGroups || z > this.#maxGroups) {
      throw new OptionError(
        `Cannot dispatch "${kernel.key}": grid [${x}, ${y}, ${z}] exceeds ${this.#maxGroups} ` +
          "workgroups per dimension",
      );
    }
    if (x === 0 || y === 0 || z === 0) return;
    const size = KernelCache.paramsSize(spec);
    if (this.#used + size > this.#staging.byteLength || this.#profiler?.full) this.submit();
    const offset = this.#used;
    const types = spec.params;
    for (let i = 0; i < types.length; i++) {
      const type = types[i];
      if (type === "f32") this.#view.setFloat32(offset + 4 * i, params[i], true);
      else if (type === "i32") this.#view.setInt32(offset + 4 * i, params[i], true);
      else this.#view.setUint32(offset + 4 * i, params[i], true);
    }
    this.#used = offset + Math.ceil(size / this.#align) * this.#align;

    const buffers: GPUBuffer[] = [];
    for (const b of bindings) buffers.push("buffer" in b ? b.buffer : b);
    const group = this.#gpu.kernels.bindGroup(kernel, buffers);
    const pass = this.#beginPass(kernel.key);
    if (this.#pipeline !== kernel.pipeline) pass.setPipeline(kernel.pipeline);
    if (this.#group !== group) pass.setBindGroup(0, group);
    this.#pipeline = kernel.pipeline;
    this.#group = group;
    pass.setBindGroup(1, this.#paramsGroup, [offset]);
    pass.dispatchWorkgroups(x, y, z);
    this.#gpu.stats.dispatches++;
    if (this.#profiler) this.#endPass();
  }

  /** Records a copy of `src`'s elements into `dst` (same dtype and element count). */
  copy(src: GpuTensor, dst: GpuTensor): void {
    const n = numel(src.shape);
    if (src.dtype !== dst.dtype || n !== numel(dst.shape)) {
      throw new OptionError(
        `Cannot copy ${src.dtype}[${src.shape}] into ${dst.dtype}[${dst.shape}]`,
      );
    }
    const bytes = n * DTYPE_BYTES[src.dtype];
    const from = src.offset * DTYPE_BYTES[src.dtype];
    const to = dst.offset * DTYPE_BYTES[dst.dtype];
    if (bytes % 4 || from % 4 || to % 4) {
      throw new OptionError(
        `Cannot copy ${bytes} bytes from byte ${from} to ${to}: not 4-byte aligned`,
      );
    }
    this.#endPass();
    this.#commandEncoder().copyBufferToBuffer(src.buffer, from, dst.buffer, to, bytes);
  }

  /** Records zero-filling of `t` (its byte range must be 4-byte aligned). */
  clear(t: GpuTensor): void {
    const bytes = numel(t.shape) * DTYPE_BYTES[t.dtype];
    const from = t.offset * DTYPE_BYTES[t.dtype];
    if (bytes % 4 || from % 4) {
      throw new OptionError(`Cannot clear ${bytes} bytes at byte ${from}: not 4-byte aligned`);
    }
    this.#endPass();
    this.#commandEncoder().clearBuffer(t.buffer, from, bytes);
  }

  /**
   * Uploads the recorded parameters and submits the recorded work. The recorder can then record
   * the next step.
   *
   * @throws {GpuError} When an earlier GPU error (compile failure, device loss) was reported.
   */
  submit(): void {
    this.#gpu.assertHealthy();
    if (!this.#encoder) return;
    this.#endPass();
    const queue = this.#gpu.device.queue;
    if (this.#used > 0) queue.writeBuffer(this.#paramsBuffer, 0, this.#staging, 0, this.#used);
    this.#profiler?.resolve(this.#encoder);
    queue.submit([this.#encoder.finish()]);
    this.#gpu.stats.submits++;
    this.#encoder = undefined;
    this.#used = 0;
  }

  /** Submits pending work and waits until the GPU has finished it. */
  async finish(): Promise<void> {
    this.submit();
    await this.#gpu.device.queue.onSubmittedWorkDone();
    this.#gpu.assertHealthy();
  }

  /** Frees the parameter buffer. The recorder must not be used afterwards. */
  destroy(): void {
    if (this.#encoder) {
      throw new GpuError("Cannot destroy a recorder with unsubmitted work: call submit() first");
    }
    this.#paramsBuffer.destroy();
  }

  #commandEncoder(): GPUCommandEncoder {
    this.#encoder ??= this.#gpu.device.createCommandEncoder({ label: this.#label });
    return this.#encoder;
  }

  #beginPass(label: string): GPUComputePassEncoder {
    if (this.#pass) return this.#pass;
    const timestampWrites = this.#profiler?.next(label);
    this.#pass = this.#commandEncoder().beginComputePass({ label: this.#label, timestampWrites });
    return this.#pass;
  }

  #endPass(): void {
    this.#pass?.end();
    this.#pass = undefined;
    this.#pipeline = undefined;
    this.#group = undefined;
  }
}

/**
 * Splits `n` workgroups into a grid that respects the per-dimension limit (65535 by default):
 * kernels that accept a 2-D grid index it as `gid.x + gid.y · num_workgroups.x · WG`.
 *
 * @example
 * ```ts ignore
 * rec.dispatch(kernel, [x, y], [n, …], grid1d(Math.ceil(n / 256)));
 * ```
 */
export function grid1d(n: number, limit = 65535): [number, number] {
  if (n <= limit) return [n, 1];
  const y = Math.ceil(n / limit);
  return [Math.ceil(n / y), y];
}
