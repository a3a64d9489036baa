/**
 * GPU buffer creation, upload and pooling. Uploads go through `queue.writeBuffer` (never
 * `mappedAtCreation`, which can hang Deno on device destruction, denoland/deno#24798).
 *
 * This module is browser compatible.
 *
 * @module
 */

import { OptionError } from "../errors.ts";
import type { Gpu } from "./device.ts";
import { DTYPE_BYTES, type GpuDtype, type GpuTensor, numel } from "./tensor.ts";

/** Usage of every tensor buffer: bindable as storage, copyable both ways. */
export const TENSOR_USAGE: number = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC |
  GPUBufferUsage.COPY_DST;

/** Rounds a byte size up to WebGPU's 4-byte copy granularity (and at least 4). */
export function alignSize(bytes: number): number {
  return Math.max(4, Math.ceil(bytes / 4) * 4);
}

/**
 * Creates a zero-filled tensor.
 *
 * @example
 * ```ts ignore
 * const x = createTensor(gpu, [17, 1024], "f32", "x");
 * ```
 */
export function createTensor(
  gpu: Gpu,
  shape: readonly number[],
  dtype: GpuDtype,
  label: string,
): GpuTensor {
  const buffer = gpu.createBuffer({
    label,
    size: alignSize(numel(shape) * DTYPE_BYTES[dtype]),
    usage: TENSOR_USAGE,
  });
  return { buffer, dtype, shape, offset: 0 };
}

/**
 * Creates a tensor holding `data`. For `"f16"` pass the f16 bit patterns as a `Uint16Array`.
 *
 * @example
 * ```ts ignore
 * const w = uploadTensor(gpu, new Float32Array(64), [8, 8], "f32", "w");
 * ```
 */
export function uploadTensor(
  gpu: Gpu,
  data: Float32Array | Uint16Array | Uint32Array | Int32Array,
  shape: readonly number[],
  dtype: GpuDtype,
  label: string,
): GpuTensor {
  const t = createTensor(gpu, shape, dtype, label);
  writeTensor(gpu, t, data);
  return t;
}

/**
 * Writes `data` into `t` starting at its first element. WebGPU copies whole 4-byte words, so an
 * f16 write of odd length is padded, which is only allowed when it ends the buffer.
 */
export function writeTensor(
  gpu: Gpu,
  t: GpuTensor,
  data: Float32Array | Uint16Array | Uint32Array | Int32Array,
): void {
  let bytes = new Uint8Array(data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
  const offset = t.offset * DTYPE_BYTES[t.dtype];
  const padded = alignSize(bytes.byteLength);
  if (offset % 4 !== 0 || (padded !== bytes.byteLength && offset + padded !== t.buffer.size)) {
    throw new OptionError(
      `Cannot write ${data.length} ${t.dtype} elements at element ${t.offset} of "${t.buffer.label}": ` +
        "writes must cover whole 4-byte words",
    );
  }
  if (padded !== bytes.byteLength) {
    const copy = new Uint8Array(padded);
    copy.set(bytes);
    bytes = copy;
  }
  gpu.device.queue.writeBuffer(t.buffer, offset, bytes);
}

/**
 * Destroys every GPU buffer reachable from `owner` through objects and arrays: the tensors of a
 * model's weights or run state, whatever their nesting. Buffers shared by several tensors are
 * destroyed once.
 *
 * @example
 * ```ts ignore
 * destroyTensors({ x, layers: [{ w, b }] });
 * ```
 */
export function destroyTensors(owner: unknown): void {
  const seen = new Set<unknown>();
  const visit = (value: unknown) => {
    if (typeof value !== "object" || value === null || seen.has(value)) return;
    seen.add(value);
    if (value instanceof GPUBuffer) value.destroy();
    else for (const child of Object.values(value)) visit(child);
  };
  visit(owner);
}

/**
 * A pool of buffers of one usage, reused by power-of-two size class: storage buffers for
 * temporaries (`gpu.buffers`), MAP_READ staging buffers for readback (`gpu.readbacks`).
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
      this.#gpu.createBuffer({ label: `${this.#label}.${size}`, size, usage: this.#usage });
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
