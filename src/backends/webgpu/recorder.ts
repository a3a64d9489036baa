/**
 * {@linkcode GpuRecorder}: records many dispatches into one command encoder and one compute pass, and
 * submits them together (one `queue.submit` per step). Kernel parameters are appended to a CPU
 * staging area at the device's uniform-offset alignment and uploaded with a single `writeBuffer`
 * just before the submit; each dispatch binds them through a dynamic offset. Nothing is created
 * per dispatch once pipelines and bind groups are cached.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { GpuError, OptionError } from "../../errors.ts";
import type {
  KernelSpec,
  KernelVariant,
  Readback,
  Recorder,
  RecorderOptions,
  Tensor,
  Workgroups,
} from "../backend.ts";
import { byteSize, offsetBytes } from "../tensor.ts";
import type { Gpu } from "./device.ts";
import { KernelCache, PARAMS_BINDING_BYTES } from "./kernels.ts";
import { GpuProfiler } from "./profiler.ts";

/** Dispatches per submit unless the recorder is told otherwise. */
const DEFAULT_CAPACITY = 1024;

/** Copies into pooled MAP_READ buffers, mapped once their command buffer has run. */
class GpuReadback implements Readback {
  #recorder: GpuRecorder;
  #copies: { staging: GPUBuffer; skip: number; length: number; alignedLength: number }[];
  #done = false;
  submitted = false;

  constructor(
    recorder: GpuRecorder,
    copies: { staging: GPUBuffer; skip: number; length: number; alignedLength: number }[],
  ) {
    this.#recorder = recorder;
    this.#copies = copies;
  }

  async result(): Promise<ArrayBuffer[]> {
    if (this.#done) throw new OptionError("Cannot read a readback twice");
    if (!this.submitted) this.#recorder.submit();
    const gpu = this.#recorder.backend;
    gpu.assertHealthy();
    gpu.stats.readbacks++;
    try {
      await Promise.all(this.#copies.map((c) => gpu.mapRead(c.staging, c.alignedLength)));
    } catch (error) {
      this.discard();
      throw error;
    }
    this.#done = true;
    return this.#copies.map((c) => {
      const out = c.staging.getMappedRange(0, c.alignedLength).slice(c.skip, c.skip + c.length);
      c.staging.unmap();
      gpu.readbacks.release(c.staging);
      return out;
    });
  }

  discard(): void {
    if (this.#done) return;
    this.#done = true;
    for (const c of this.#copies) this.#recorder.backend.readbacks.release(c.staging);
  }
}

/** Records dispatches and copies for one step of GPU work. */
export class GpuRecorder implements Recorder {
  /** The device this recorder records for. */
  readonly backend: Gpu;
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
  #profiler?: GpuProfiler;
  #readbacks: GpuReadback[] = [];
  #maxGroups: number;
  /** What the open pass has bound, to skip redundant calls. */
  #pipeline?: GPUComputePipeline;
  #group?: GPUBindGroup;

  /**
   * Creates a recorder with its own parameter buffer.
   *
   * @param gpu The device to record for.
   * @param options Label, optional profiler.
   */
  constructor(gpu: Gpu, options: RecorderOptions = {}) {
    this.backend = gpu;
    this.#gpu = gpu;
    this.#label = options.label ?? "valle.step";
    this.#align = gpu.device.limits.minUniformBufferOffsetAlignment;
    this.#maxGroups = gpu.device.limits.maxComputeWorkgroupsPerDimension;
    // `capacity` dispatches at the alignment, the last one's binding reaching past its params.
    const capacity = ((options.capacity ?? DEFAULT_CAPACITY) - 1) * this.#align +
      PARAMS_BINDING_BYTES;
    this.#staging = new ArrayBuffer(capacity);
    this.#view = new DataView(this.#staging);
    this.#paramsBuffer = gpu.createGpuBuffer({
      label: `${this.#label}.params`,
      size: capacity,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    this.#paramsGroup = gpu.device.createBindGroup({
      label: `${this.#label}.params`,
      layout: gpu.kernels.paramsLayout,
      entries: [{
        binding: 0,
        resource: { buffer: this.#paramsBuffer, size: PARAMS_BINDING_BYTES },
      }],
    });
    if (options.profiler && !(options.profiler instanceof GpuProfiler)) {
      throw new OptionError("Cannot profile a WebGPU recorder with another backend's profiler");
    }
    this.#profiler = options.profiler;
  }

  /**
   * Records one dispatch.
   *
   * @param spec The kernel (compiled on first use for the variant).
   * @param bindings The `@group(0)` tensors in binding order (each binds its whole buffer; its
   * element offset travels in `params`).
   * @param params The `Params` struct fields in order, typed per `spec.params`.
   * @param workgroups Workgroup counts in x, y, z.
   * @param variant Weight type and `override` constants.
   */
  dispatch(
    spec: KernelSpec,
    bindings: readonly Tensor[],
    params: readonly number[],
    workgroups: Workgroups,
    variant?: KernelVariant,
  ): void {
    const kernel = this.#gpu.kernels.get(spec, variant);
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
    // Every binding is resolved before anything is recorded: a refused one records nothing.
    const buffers: GPUBuffer[] = [];
    for (const b of bindings) buffers.push(this.#gpu.bufferOf(b, kernel.key));
    const group = this.#gpu.kernels.bindGroup(kernel, buffers);
    const size = KernelCache.paramsSize(spec);
    if (this.#used + PARAMS_BINDING_BYTES > this.#staging.byteLength || this.#profiler?.full) {
      this.submit();
    }
    const offset = this.#used;
    const types = spec.params;
    for (let i = 0; i < types.length; i++) {
      const type = types[i];
      if (type === "f32") this.#view.setFloat32(offset + 4 * i, params[i], true);
      else if (type === "i32") this.#view.setInt32(offset + 4 * i, params[i], true);
      else this.#view.setUint32(offset + 4 * i, params[i], true);
    }
    this.#used = offset + Math.ceil(size / this.#align) * this.#align;
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
  copy(src: Tensor, dst: Tensor): void {
    const bytes = byteSize(src.shape, src.dtype);
    if (src.dtype !== dst.dtype || bytes !== byteSize(dst.shape, dst.dtype)) {
      throw new OptionError(
        `Cannot copy ${src.dtype}[${src.shape}] into ${dst.dtype}[${dst.shape}]`,
      );
    }
    const from = src.offset * offsetBytes(src.dtype);
    const to = dst.offset * offsetBytes(dst.dtype);
    if (bytes % 4 || from % 4 || to % 4) {
      throw new OptionError(
        `Cannot copy ${bytes} bytes from byte ${from} to ${to}: not 4-byte aligned`,
      );
    }
    // Resolved before the encoder opens: a refused tensor leaves no (empty) encoder behind.
    const source = this.#gpu.bufferOf(src, "copy");
    const target = this.#gpu.bufferOf(dst, "copy");
    this.#endPass();
    this.#commandEncoder().copyBufferToBuffer(source, from, target, to, bytes);
  }

  /** Records zero-filling of `t` (its byte range must be 4-byte aligned). */
  clear(t: Tensor): void {
    const bytes = byteSize(t.shape, t.dtype);
    const from = t.offset * offsetBytes(t.dtype);
    if (bytes % 4 || from % 4) {
      throw new OptionError(`Cannot clear ${bytes} bytes at byte ${from}: not 4-byte aligned`);
    }
    const buffer = this.#gpu.bufferOf(t, "clear");
    this.#endPass();
    this.#commandEncoder().clearBuffer(buffer, from, bytes);
  }

  /**
   * Records copies of `tensors` into pooled MAP_READ buffers at this point of the stream.
   *
   * @example
   * ```ts ignore
   * const tokens = rec.readback([chunk]);
   * rec.submit();
   * const [bytes] = await tokens.result();
   * ```
   */
  readback(tensors: readonly Tensor[]): Readback {
    // Every tensor is checked before any staging buffer is taken or any copy recorded.
    const sources = tensors.map((t) => {
      const buffer = this.#gpu.bufferOf(t, "read");
      const start = t.offset * offsetBytes(t.dtype);
      const length = byteSize(t.shape, t.dtype);
      const alignedStart = start - (start % 4);
      const alignedLength = Math.ceil((start + length - alignedStart) / 4) * 4;
      if (alignedStart + alignedLength > buffer.size) {
        throw new OptionError(
          `Cannot read [${t.shape}] at element ${t.offset} of "${buffer.label}": past its end`,
        );
      }
      return { buffer, alignedStart, skip: start - alignedStart, length, alignedLength };
    });
    const copies = sources.map(({ buffer, alignedStart, skip, length, alignedLength }) => {
      const staging = this.#gpu.readbacks.acquire(alignedLength);
      this.#endPass();
      this.#commandEncoder().copyBufferToBuffer(buffer, alignedStart, staging, 0, alignedLength);
      return { staging, skip, length, alignedLength };
    });
    const readback = new GpuReadback(this, copies);
    this.#readbacks.push(readback);
    return readback;
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
    for (const readback of this.#readbacks) readback.submitted = true;
    this.#readbacks = [];
  }

  /** Submits pending work and waits until the GPU has finished it. */
  async finish(): Promise<void> {
    this.submit();
    await this.#gpu.fence();
  }

  /**
   * Frees the parameter buffer. The recorder must not be used afterwards. Unsubmitted work is an
   * error, except on a failed or lost device, where it could never run and is dropped.
   */
  destroy(): void {
    if (this.#encoder && this.#gpu.failure === undefined) {
      throw new GpuError("Cannot destroy a recorder with unsubmitted work: call submit() first");
    }
    this.#endPass();
    this.#encoder = undefined;
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
