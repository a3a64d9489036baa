/**
 * GPU buffer usages, and the pool of MAP_READ staging buffers for readback, reused by
 * power-of-two size class.
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { Gpu } from "./device.ts";

/** Usage of every tensor buffer: bindable as storage, copyable both ways. */
export const TENSOR_USAGE: number = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC |
  GPUBufferUsage.COPY_DST;

/** Rounds a byte size up to WebGPU's 4-byte copy granularity (and at least 4). */
export function alignSize(bytes: number): number {
  return Math.max(4, Math.ceil(bytes / 4) * 4);
}

/**
 * A pool of buffers of one usage, reused by power-of-two size class (the MAP_READ staging
 * buffers of readback, `gpu.readbacks`).
 */
export class BufferPool {
  #gpu: Gpu;
  #usage: number;
  #label: string;
  #free = new Map<number, GPUBuffer[]>();
  #all = new Set<GPUBuffer>();

  /**
   * Creates an empty pool.
   *
   * @param gpu The device that owns the buffers.
   * @param usage The usage of every buffer of the pool.
   * @param label The buffers' label prefix.
   */
  constructor(gpu: Gpu, usage: number, label: string) {
    this.#gpu = gpu;
    this.#usage = usage;
    this.#label = label;
  }

  /** A buffer of at least `bytes` bytes (rounded up to a power of two, at least 256). */
  acquire(bytes: number): GPUBuffer {
    const size = 2 ** Math.ceil(Math.log2(Math.max(bytes, 256)));
    const buffer = this.#free.get(size)?.pop() ??
      this.#gpu.createGpuBuffer({ label: `${this.#label}.${size}`, size, usage: this.#usage });
    this.#all.add(buffer);
    return buffer;
  }

  /** Returns a buffer from {@linkcode BufferPool.acquire} (unmapped) for reuse. */
  release(buffer: GPUBuffer): void {
    const list = this.#free.get(buffer.size) ?? [];
    list.push(buffer);
    this.#free.set(buffer.size, list);
  }

  /** Destroys the buffers not in use (released ones); models call it when disposed. */
  trim(): void {
    for (const list of this.#free.values()) {
      for (const buffer of list) {
        buffer.destroy();
        this.#all.delete(buffer);
      }
    }
    this.#free.clear();
  }

  /** Destroys every buffer the pool created. */
  destroy(): void {
    for (const buffer of this.#all) buffer.destroy();
    this.#all.clear();
    this.#free.clear();
  }
}
