/**
 * Tensor helpers over any {@linkcode Backend}: creation, upload, views (`rows`, `reshape`) and
 * reads. A view costs nothing: kernels take element offsets in their parameters, so a view of
 * rows inside a larger buffer (a KV cache, a stacked embedding table) is just another offset.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { OptionError } from "../errors.ts";
import {
  type Backend,
  type Dtype,
  DTYPE_BYTES,
  isQuantized,
  QUANT_LAYOUTS,
  type Tensor,
} from "./backend.ts";

/** The number of elements of a shape. */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Bytes of a tensor's offset unit: an element, or a u32 word for quantized layouts.
 *
 * @example
 * ```ts ignore
 * const start = t.offset * offsetBytes(t.dtype);
 * ```
 */
export function offsetBytes(dtype: Dtype): number {
  return isQuantized(dtype) ? 4 : DTYPE_BYTES[dtype];
}

/**
 * Bytes a tensor of `shape` and `dtype` occupies (quantized: whole rows of blocks; a vector is
 * one row).
 *
 * @throws {OptionError} A quantized shape that is not a matrix of whole blocks per row.
 *
 * @example
 * ```ts ignore
 * byteSize([1024, 1024], "q8_0"); // 1024 rows of 16 · 17 words
 * ```
 */
export function byteSize(shape: readonly number[], dtype: Dtype): number {
  if (!isQuantized(dtype)) return numel(shape) * DTYPE_BYTES[dtype];
  // A vector is one row.
  const matrix = shape.length === 1 ? [1, shape[0]] : shape;
  return matrix[0] * rowUnits(matrix, dtype) * 4;
}

/** Offset units (elements, or words for quantized layouts) from one row to the next. */
function rowUnits(shape: readonly number[], dtype: Dtype): number {
  const rest = shape.slice(1);
  if (!isQuantized(dtype)) return numel(rest);
  const { weights, words } = QUANT_LAYOUTS[dtype];
  if (rest.length !== 1 || rest[0] % weights !== 0) {
    throw new OptionError(
      `Cannot lay out a ${dtype} tensor of shape [${shape}]: it needs [rows, k] with k % ${weights} == 0`,
    );
  }
  return (rest[0] / weights) * words;
}

/**
 * A view of rows `[start, start + count)` of the first dimension of `t`.
 *
 * @example
 * ```ts ignore
 * const cache: Tensor = …; // (maxLen, dModel)
 * const next = rows(cache, pos, 1); // (1, dModel) at row pos
 * ```
 */
export function rows(t: Tensor, start: number, count: number): Tensor {
  const [n, ...rest] = t.shape;
  if (start < 0 || count < 0 || start + count > n) {
    throw new OptionError(
      `Cannot view rows [${start}, ${start + count}) of a tensor with ${n} rows`,
    );
  }
  return {
    buffer: t.buffer,
    dtype: t.dtype,
    shape: [count, ...rest],
    offset: t.offset + start * rowUnits(t.shape, t.dtype),
  };
}

/** The same elements with another shape (same element count; quantized: same row length). */
export function reshape(t: Tensor, shape: readonly number[]): Tensor {
  if (numel(shape) !== numel(t.shape) || byteSize(shape, t.dtype) !== byteSize(t.shape, t.dtype)) {
    throw new OptionError(`Cannot reshape [${t.shape}] to [${shape}]: element counts differ`);
  }
  return { ...t, shape };
}

/**
 * Creates a zero-filled tensor.
 *
 * @example
 * ```ts ignore
 * const x = createTensor(backend, [17, 1024], "f32", "x");
 * ```
 */
export function createTensor(
  backend: Backend,
  shape: readonly number[],
  dtype: Dtype,
  label: string,
): Tensor {
  const buffer = backend.createBuffer(byteSize(shape, dtype), label);
  return { buffer, dtype, shape, offset: 0 };
}

/**
 * Creates a tensor holding `data`. For `"f16"` pass the f16 bit patterns as a `Uint16Array`.
 *
 * @example
 * ```ts ignore
 * const w = uploadTensor(backend, new Float32Array(64), [8, 8], "f32", "w");
 * ```
 */
export function uploadTensor(
  backend: Backend,
  data: Float32Array | Uint16Array | Uint32Array | Int32Array,
  shape: readonly number[],
  dtype: Dtype,
  label: string,
): Tensor {
  const t = createTensor(backend, shape, dtype, label);
  backend.write(t, data);
  return t;
}

/**
 * Writes `data` into `t` from its first element, in queue order (see `Backend.write`). For
 * `"f16"` pass the f16 bit patterns as a `Uint16Array`.
 *
 * @example
 * ```ts ignore
 * writeTensor(backend, state.positions, positions);
 * ```
 */
export function writeTensor(
  backend: Backend,
  t: Tensor,
  data: Float32Array | Uint16Array | Uint32Array | Int32Array,
): void {
  backend.write(t, data);
}

/** Bytes written between two pauses of an {@linkcode UploadPacer}. */
export const UPLOAD_YIELD_BYTES = 64 << 20;

/**
 * Paces a long upload: after every {@linkcode UPLOAD_YIELD_BYTES} written it yields to the event
 * loop once, so that a browser tab loading a model stays responsive.
 *
 * @example
 * ```ts ignore
 * const pacer = new UploadPacer();
 * for (const [t, data] of tensors) {
 *   writeTensor(backend, t, data);
 *   await pacer.wrote(data.byteLength);
 * }
 * ```
 */
export class UploadPacer {
  #since = 0;

  /**
   * Counts bytes written; resolves at once, or after a pause when enough were written since the
   * last one.
   *
   * @param bytes Bytes just written.
   */
  async wrote(bytes: number): Promise<void> {
    this.#since += bytes;
    if (this.#since < UPLOAD_YIELD_BYTES) return;
    this.#since = 0;
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}

/**
 * Reads several tensors after the work submitted so far, with one wait.
 *
 * @returns One `ArrayBuffer` per tensor holding exactly its elements.
 *
 * @example
 * ```ts ignore
 * const [logits, tokens] = await readBytes(backend, [logitsTensor, tokenTensor]);
 * ```
 */
export function readBytes(backend: Backend, tensors: readonly Tensor[]): Promise<ArrayBuffer[]> {
  return backend.read(tensors);
}

/**
 * Reads an f32 tensor (after the work submitted so far).
 *
 * @example
 * ```ts ignore
 * const values = await readF32(backend, y);
 * ```
 */
export async function readF32(backend: Backend, t: Tensor): Promise<Float32Array> {
  expectReadable(t, "f32");
  const [bytes] = await backend.read([t]);
  return new Float32Array(bytes);
}

/**
 * Reads a u32 tensor (after the work submitted so far).
 *
 * @example
 * ```ts ignore
 * const ids = await readU32(backend, tokens);
 * ```
 */
export async function readU32(backend: Backend, t: Tensor): Promise<Uint32Array> {
  expectReadable(t, "u32");
  const [bytes] = await backend.read([t]);
  return new Uint32Array(bytes);
}

function expectReadable(t: Tensor, dtype: Dtype): void {
  if (t.dtype !== dtype) {
    throw new OptionError(`Cannot read "${t.buffer.label}" as ${dtype}: it holds ${t.dtype}`);
  }
}

/**
 * Frees the buffer of every tensor reachable from `owner` through objects and arrays: the tensors
 * of a model's weights or run state, whatever their nesting. Buffers shared by several tensors
 * are freed once.
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
    if (isTensor(value)) {
      if (!seen.has(value.buffer)) value.buffer.destroy();
      seen.add(value.buffer);
    } else if (!ArrayBuffer.isView(value)) {
      for (const child of Object.values(value)) visit(child);
    }
  };
  visit(owner);
}

function isTensor(value: object): value is Tensor {
  return "buffer" in value && "dtype" in value && "shape" in value && "offset" in value;
}
