/**
 * Quantizing weights with the CPU backend's C quantizers (`wasm/quantize.c`): the bytes of the
 * TypeScript reference (`q8_0.ts`, `q4_k.ts`), in the device layout, on the backend's threads and
 * many times faster (Q4_K's scale search in JavaScript takes ~0.45 s per million weights).
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { QuantDtype } from "../backends/backend.ts";
import type { CpuBackend } from "../backends/cpu/backend.ts";
import { createTensor, uploadTensor } from "../backends/tensor.ts";

/**
 * Quantizes a matrix of float weights to a device layout on the CPU backend: the same words as
 * `toDeviceWords(layout, quantizeBlocks(layout, values))` (tested), for finite values.
 *
 * @param cpu The CPU backend that runs the quantizer.
 * @param layout `q8_0` (k % 64 == 0) or `q4_k` (k % 256 == 0).
 * @param values The weights, row after row: float32, or float16 bit patterns (as a `.sft` stores
 * them, widened exactly by the kernel).
 * @param rows Rows of the matrix.
 * @param k Row length.
 * @returns The device words.
 *
 * @example
 * ```ts ignore
 * const words = await quantizeOnCpu(cpu, "q4_k", st.toFloat16(key), 4096, 1024);
 * ```
 */
export async function quantizeOnCpu(
  cpu: CpuBackend,
  layout: QuantDtype,
  values: Float32Array | Uint16Array,
  rows: number,
  k: number,
): Promise<Uint32Array<ArrayBuffer>> {
  const src = uploadTensor(
    cpu,
    values,
    [rows, k],
    values instanceof Float32Array ? "f32" : "f16",
    "quantize.values",
  );
  const dst = createTensor(cpu, [rows, k], layout, "quantize.words");
  const rec = cpu.createRecorder({ label: "quantize" });
  try {
    rec.quantize(dst, src);
    const readback = rec.readback([dst]);
    rec.submit();
    const [bytes] = await readback.result();
    return new Uint32Array(bytes);
  } finally {
    rec.destroy();
    src.buffer.destroy();
    dst.buffer.destroy();
  }
}
