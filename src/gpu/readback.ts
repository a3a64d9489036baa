/**
 * GPU → CPU readback through pooled MAP_READ staging buffers. Every await here costs a round
 * trip (about 10 ms in Deno, whose `mapAsync` polls on a 10 ms timer), so decode loops avoid it:
 * read many tensors in one call, and only when the CPU needs the values.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { OptionError } from "../errors.ts";
import type { Gpu } from "./device.ts";
import { DTYPE_BYTES, type GpuTensor, numel } from "./tensor.ts";

/**
 * Copies the elements of several tensors to the CPU with one submit and one wait. Pending GPU work
 * is ordered before the copies, so call this after `Recorder.submit()`.
 *
 * @returns One `ArrayBuffer` per tensor holding exactly its elements.
 * @throws {GpuError} When an earlier GPU error was reported (see `Gpu.assertHealthy`).
 *
 * @example
 * ```ts ignore
 * const [logits] = await readBytes(gpu, [logitsTensor]);
 * console.log(new Float32Array(logits)[0]);
 * ```
 */
export async function readBytes(gpu: Gpu, tensors: readonly GpuTensor[]): Promise<ArrayBuffer[]> {
  gpu.assertHealthy();
  const encoder = gpu.device.createCommandEncoder({ label: "valle.readback" });
  const copies = tensors.map((t) => {
    const start = t.offset * DTYPE_BYTES[t.dtype];
    const length = numel(t.shape) * DTYPE_BYTES[t.dtype];
    const alignedStart = start - (start % 4);
    const alignedLength = Math.ceil((start + length - alignedStart) / 4) * 4;
    if (alignedStart + alignedLength > t.buffer.size) {
      throw new OptionError(
        `Cannot read [${t.shape}] at element ${t.offset} of "${t.buffer.label}": past its end`,
      );
    }
    const staging = gpu.readbacks.acquire(alignedLength);
    encoder.copyBufferToBuffer(t.buffer, alignedStart, staging, 0, alignedLength);
    return { staging, skip: start - alignedStart, length, alignedLength };
  });
  gpu.device.queue.submit([encoder.finish()]);
  gpu.stats.submits++;
  gpu.stats.readbacks++;
  await Promise.all(copies.map((c) => c.staging.mapAsync(GPUMapMode.READ, 0, c.alignedLength)));
  gpu.assertHealthy();
  return copies.map((c) => {
    const out = c.staging.getMappedRange(0, c.alignedLength).slice(c.skip, c.skip + c.length);
    c.staging.unmap();
    gpu.readbacks.release(c.staging);
    return out;
  });
}

/**
 * Reads an f32 tensor.
 *
 * @example
 * ```ts ignore
 * const values = await readF32(gpu, y);
 * ```
 */
export async function readF32(gpu: Gpu, t: GpuTensor): Promise<Float32Array> {
  expectDtype(t, "f32");
  const [bytes] = await readBytes(gpu, [t]);
  return new Float32Array(bytes);
}

/**
 * Reads a u32 tensor.
 *
 * @example
 * ```ts ignore
 * const ids = await readU32(gpu, tokens);
 * ```
 */
export async function readU32(gpu: Gpu, t: GpuTensor): Promise<Uint32Array> {
  expectDtype(t, "u32");
  const [bytes] = await readBytes(gpu, [t]);
  return new Uint32Array(bytes);
}

function expectDtype(t: GpuTensor, dtype: GpuTensor["dtype"]): void {
  if (t.dtype !== dtype) {
    throw new OptionError(`Cannot read "${t.buffer.label}" as ${dtype}: it holds ${t.dtype}`);
  }
}
