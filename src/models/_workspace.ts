/**
 * Named scratch buffers of a codec that grow on demand: `tensor(name, shape)` views a buffer of
 * at least that size, replacing it by a larger pooled one when needed. GPU work is ordered on the
 * queue, so a replaced buffer can go back to the device's pool at once (commands already recorded
 * keep their own reference); nothing is destroyed while work may still use it.
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { Gpu } from "../gpu/device.ts";
import { DTYPE_BYTES, type GpuDtype, type GpuTensor, numel } from "../gpu/tensor.ts";

/** Scratch buffers by name. */
export class Workspace {
  #gpu: Gpu;
  #buffers = new Map<string, GPUBuffer>();

  /**
   * Creates an empty workspace.
   *
   * @param gpu The device whose buffer pool backs it.
   */
  constructor(gpu: Gpu) {
    this.#gpu = gpu;
  }

  /** A tensor of `shape` at the start of buffer `name`, grown when too small. */
  tensor(name: string, shape: readonly number[], dtype: GpuDtype = "f32"): GpuTensor {
    const bytes = Math.max(4, numel(shape) * DTYPE_BYTES[dtype]);
    let buffer = this.#buffers.get(name);
    if (!buffer || buffer.size < bytes) {
      if (buffer) this.#gpu.buffers.release(buffer);
      buffer = this.#gpu.buffers.acquire(bytes);
      this.#buffers.set(name, buffer);
    }
    return { buffer, dtype, shape, offset: 0 };
  }

  /** Returns every buffer to the device's pool. */
  release(): void {
    for (const buffer of this.#buffers.values()) this.#gpu.buffers.release(buffer);
    this.#buffers.clear();
  }
}
