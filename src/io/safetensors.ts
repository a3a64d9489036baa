/**
 * Reads and writes safetensors files: an 8-byte little-endian header length, a UTF-8 JSON header
 * naming each tensor's dtype, shape and byte range, then the raw little-endian data. Tensors are
 * views into one buffer holding the file; nothing is copied unless a conversion or a misaligned
 * view needs it. This module does not upload to the GPU, nor map checkpoint keys to model roles.
 *
 * Every malformed file is reported as a {@linkcode FormatError} naming the file and, where there
 * is one, the tensor. Gaps between tensors and bytes after the last one are allowed; overlapping
 * tensors are not. Typed views assume a little-endian platform, as every WebGPU platform is.
 *
 * Only web APIs are used, except that {@linkcode readSafetensors} reads a plain file path with
 * `Deno.open` when it runs in Deno. In a browser such a path is fetched relative to the page.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { FormatError, type FormatErrorDetails } from "../errors.ts";
import { bf16ToF32, type Dtype, DTYPE_SIZES, f16ToF32, f32ToF16 } from "./dtype.ts";
import { type ByteSource, filler, openByteSource } from "./source.ts";

export * from "./dtype.ts";

/** The largest header accepted (the reference implementation allows 100 MB). */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;
/** The first buffer for a header of a stream of unknown size; it doubles as bytes arrive. */
const HEADER_STEP = 64 * 1024;
const UTF8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Where one tensor lives in a safetensors file.
 *
 * @example
 * ```ts
 * import { parseSafetensors, serializeSafetensors } from "@valle/core/safetensors";
 * const w = { dtype: "F32", shape: [2], data: new Float32Array(2) } as const;
 * const file = serializeSafetensors({ w });
 * const info = parseSafetensors(file).info("w");
 * console.assert(info.byteLength === 8);
 * ```
 */
export interface TensorInfo {
  /** The checkpoint key, verbatim. */
  readonly name: string;
  /** The element type. */
  readonly dtype: Dtype;
  /** The dimensions, outermost first; `[]` for a scalar. */
  readonly shape: readonly number[];
  /** Where the tensor's first byte is, counted from the start of the file. */
  readonly byteOffset: number;
  /** The tensor's size in bytes: the product of `shape` times the dtype's size. */
  readonly byteLength: number;
}

/**
 * Options of {@linkcode parseSafetensors}.
 *
 * @example
 * ```ts
 * import type { ParseSafetensorsOptions } from "@valle/core/safetensors";
 * const options: ParseSafetensorsOptions = { source: "model.sft" };
 * ```
 */
export interface ParseSafetensorsOptions {
  /** The name error messages give the file (a path, URL or label); `"<bytes>"` by default. */
  source?: string;
}

/**
 * Options of {@linkcode readSafetensors}.
 *
 * @example
 * ```ts
 * import type { ReadSafetensorsOptions } from "@valle/core/safetensors";
 * const options: ReadSafetensorsOptions = {
 *   signal: AbortSignal.timeout(60_000),
 *   onProgress: (loaded, total) => console.log(loaded, total),
 * };
 * ```
 */
export interface ReadSafetensorsOptions extends ParseSafetensorsOptions {
  /** Stops the read; the promise then rejects with the signal's reason. */
  signal?: AbortSignal;
  /**
   * Called as bytes arrive with the number read so far and the file size, when the source
   * tells it (a file, a Blob, a response with a Content-Length).
   */
  onProgress?: (loaded: number, total: number | undefined) => void;
}

/**
 * Anything {@linkcode readSafetensors} reads: a file path or URL, bytes already in memory, a Blob,
 * a fetch Response or a byte stream.
 *
 * @example
 * ```ts
 * import type { SafetensorsSource } from "@valle/core/safetensors";
 * const source: SafetensorsSource = new URL("https://example.com/model.sft");
 * ```
 */
export type SafetensorsSource =
  | string
  | URL
  | Uint8Array
  | ArrayBuffer
  | Blob
  | Response
  | ReadableStream<Uint8Array>;

/**
 * One tensor to write with {@linkcode serializeSafetensors}.
 *
 * @example
 * ```ts
 * import type { TensorData } from "@valle/core/safetensors";
 * const bias: TensorData = { dtype: "F32", shape: [3], data: new Float32Array([1, 2, 3]) };
 * ```
 */
export interface TensorData {
  /** The element type `data` holds. */
  dtype: Dtype;
  /** The dimensions, outermost first. */
  shape: readonly number[];
  /**
   * The elements, row-major: any view whose byte length is the product of `shape` times the
   * dtype's size.
   */
  data: ArrayBufferView;
}

/**
 * A parsed safetensors file: the tensor table, the `__metadata__` strings, and views of the data.
 * Views returned by {@linkcode Safetensors.prototype.bytes} and, when no conversion is needed, by
 * the `to*` methods share memory with the file; copy them before writing to them.
 *
 * @example
 * ```ts
 * import { Safetensors, serializeSafetensors } from "@valle/core/safetensors";
 * const file = serializeSafetensors(
 *   { "layer.weight": { dtype: "F16", shape: [2], data: new Uint16Array([0x3c00, 0x4000]) } },
 *   { format: "pt" },
 * );
 * const st = new Safetensors(file, { source: "tiny.sft" });
 * console.assert(st.names[0] === "layer.weight" && st.metadata.format === "pt");
 * console.assert(st.toFloat32("layer.weight")[1] === 2);
 * ```
 */
export class Safetensors {
  /** The file's name in error messages. */
  readonly source: string;
  /** The `__metadata__` map of the header; empty when the file has none. */
  readonly metadata: Readonly<Record<string, string>>;
  /** The tensor names, in the order of their data in the file. */
  readonly names: readonly string[];
  /** The total size of all tensors' data in bytes. */
  readonly byteLength: number;
  #bytes: Uint8Array;
  #tensors: Map<string, TensorInfo>;

  /**
   * Parses a whole file held in memory, the same as {@linkcode parseSafetensors}.
   *
   * @param bytes The file; tensor views point into it.
   * @param options The file's name for error messages.
   * @throws {FormatError} The file is not a valid safetensors file.
   */
  constructor(bytes: Uint8Array, options: ParseSafetensorsOptions = {}) {
    const source = options.source ?? "<bytes>";
    const headerSize = headerLength(bytes, source, bytes.length);
    const header = parseHeader(
      bytes.subarray(8, 8 + headerSize),
      source,
      bytes.length - 8 - headerSize,
    );
    this.source = source;
    this.metadata = header.metadata;
    this.names = Object.freeze(header.tensors.map((t) => t.name));
    this.byteLength = header.tensors.reduce((sum, t) => sum + t.byteLength, 0);
    this.#bytes = bytes;
    this.#tensors = new Map(header.tensors.map((t) => [t.name, t]));
  }

  /**
   * Tells whether the file holds a tensor.
   *
   * @param name The checkpoint key.
   * @returns Whether there is a tensor of that name.
   *
   * @example
   * ```ts
   * import { parseSafetensors, serializeSafetensors } from "@valle/core/safetensors";
   * const st = parseSafetensors(serializeSafetensors({}));
   * console.assert(!st.has("sep"));
   * ```
   */
  has(name: string): boolean {
    return this.#tensors.has(name);
  }

  /**
   * Describes one tensor.
   *
   * @param name The checkpoint key.
   * @returns Its dtype, shape and place in the file.
   * @throws {FormatError} The file has no tensor of that name.
   *
   * @example
   * ```ts
   * import { parseSafetensors, serializeSafetensors } from "@valle/core/safetensors";
   * const st = parseSafetensors(
   *   serializeSafetensors({ sep: { dtype: "F32", shape: [4], data: new Float32Array(4) } }),
   * );
   * console.assert(st.info("sep").shape[0] === 4);
   * ```
   */
  info(name: string): TensorInfo {
    const info = this.#tensors.get(name);
    if (info) return info;
    throw formatError(this.source, `tensor "${name}" is not in the file`, {
      entry: name,
      expected: `a tensor named "${name}"`,
      found: `${this.#tensors.size} other tensors`,
    });
  }

  /**
   * The raw little-endian bytes of one tensor, without copying.
   *
   * @param name The checkpoint key.
   * @returns A view into the file.
   * @throws {FormatError} The file has no tensor of that name.
   *
   * @example
   * ```ts
   * import { parseSafetensors, serializeSafetensors } from "@valle/core/safetensors";
   * const st = parseSafetensors(
   *   serializeSafetensors({ ids: { dtype: "U8", shape: [2], data: new Uint8Array([7, 9]) } }),
   * );
   * console.assert(st.bytes("ids")[1] === 9);
   * ```
   */
  bytes(name: string): Uint8Array {
    const { byteOffset, byteLength } = this.info(name);
    return this.#bytes.subarray(byteOffset, byteOffset + byteLength);
  }

  /**
   * One tensor's elements as float32, from any dtype. An aligned `F32` tensor is returned
   * without copying. `F64` and `I64` values are rounded to the nearest float32, `BOOL` is 0 or 1.
   *
   * @param name The checkpoint key.
   * @returns The elements, row-major.
   * @throws {FormatError} The file has no tensor of that name.
   *
   * @example
   * ```ts
   * import { parseSafetensors, serializeSafetensors } from "@valle/core/safetensors";
   * const st = parseSafetensors(
   *   serializeSafetensors({ x: { dtype: "I16", shape: [2], data: new Int16Array([-3, 5]) } }),
   * );
   * console.assert(st.toFloat32("x")[0] === -3);
   * ```
   */
  toFloat32(name: string): Float32Array {
    const info = this.info(name);
    switch (info.dtype) {
      case "F32":
        return this.#view(info, Float32Array);
      case "F16":
        return f16ToF32(this.#view(info, Uint16Array));
      case "BF16":
        return bf16ToF32(this.#view(info, Uint16Array));
      case "I64":
        return Float32Array.from(this.#view(info, BigInt64Array), Number);
      default:
        return new Float32Array(this.#view(info, NUMBER_ARRAYS[info.dtype]));
    }
  }

  /**
   * One tensor's elements as float16 bit patterns, ready for an `f16` GPU buffer. An aligned
   * `F16` tensor is returned without copying; other dtypes are converted through float32 and
   * rounded to nearest, ties to even (so `F64` is rounded twice).
   *
   * @param name The checkpoint key.
   * @returns The float16 bits, row-major.
   * @throws {FormatError} The file has no tensor of that name.
   *
   * @example
   * ```ts
   * import { parseSafetensors, serializeSafetensors } from "@valle/core/safetensors";
   * const st = parseSafetensors(
   *   serializeSafetensors({ x: { dtype: "F32", shape: [1], data: new Float32Array([1]) } }),
   * );
   * console.assert(st.toFloat16("x")[0] === 0x3c00);
   * ```
   */
  toFloat16(name: string): Uint16Array {
    const info = this.info(name);
    if (info.dtype === "F16") return this.#view(info, Uint16Array);
    return f32ToF16(this.toFloat32(name));
  }

  /**
   * One integer tensor's elements as int32. An aligned `I32` tensor is returned without copying.
   *
   * @param name The checkpoint key.
   * @returns The elements, row-major.
   * @throws {FormatError} The file has no tensor of that name, its dtype is a float type, or an
   * `I64` element is outside the int32 range.
   *
   * @example
   * ```ts
   * import { parseSafetensors, serializeSafetensors } from "@valle/core/safetensors";
   * const codes = new BigInt64Array([1n, 1023n]);
   * const st = parseSafetensors(
   *   serializeSafetensors({ codes: { dtype: "I64", shape: [2], data: codes } }),
   * );
   * console.assert(st.toInt32("codes")[1] === 1023);
   * ```
   */
  toInt32(name: string): Int32Array {
    const info = this.info(name);
    switch (info.dtype) {
      case "I32":
        return this.#view(info, Int32Array);
      case "I64":
        return this.#int64ToInt32(info);
      case "I16":
      case "I8":
      case "U8":
      case "BOOL":
        return new Int32Array(this.#view(info, NUMBER_ARRAYS[info.dtype]));
      default:
        throw formatError(
          this.source,
          `tensor "${name}" has dtype ${info.dtype}, expected an integer dtype`,
          {
            entry: name,
            offset: info.byteOffset,
            expected: "I64, I32, I16, I8, U8 or BOOL",
            found: info.dtype,
          },
        );
    }
  }

  /** Narrows I64 elements to int32, checking each fits: its high word is its low word's sign. */
  #int64ToInt32(info: TensorInfo): Int32Array {
    const words = this.#view(info, Int32Array); // (numel, 2): low word, high word
    const out = new Int32Array(words.length / 2);
    for (let i = 0; i < out.length; i++) {
      const low = words[2 * i];
      const high = words[2 * i + 1];
      if (high !== low >> 31) {
        const value = (BigInt(high) << 32n) | BigInt(low >>> 0);
        throw formatError(
          this.source,
          `tensor "${info.name}" element ${i} is ${value}, expected a value in the int32 range`,
          {
            entry: info.name,
            offset: info.byteOffset + 8 * i,
            expected: "-2147483648 to 2147483647",
            found: `${value}`,
          },
        );
      }
      out[i] = low;
    }
    return out;
  }

  /** A typed view of a tensor's bytes: zero-copy when aligned, over a copy otherwise. */
  #view<T>(info: TensorInfo, type: TypedArrayType<T>): T {
    const length = info.byteLength / type.BYTES_PER_ELEMENT;
    const offset = this.#bytes.byteOffset + info.byteOffset;
    if (offset % type.BYTES_PER_ELEMENT === 0) return new type(this.#bytes.buffer, offset, length);
    const copy = this.#bytes.slice(info.byteOffset, info.byteOffset + info.byteLength);
    return new type(copy.buffer, 0, length);
  }
}

/** A typed array constructor, as used to view a tensor. */
interface TypedArrayType<T> {
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): T;
  readonly BYTES_PER_ELEMENT: number;
}

/** The typed array that holds each dtype's elements as numbers (float16 kinds as raw bits). */
const NUMBER_ARRAYS: Readonly<Record<Exclude<Dtype, "I64">, TypedArrayType<ArrayLike<number>>>> = {
  F64: Float64Array,
  F32: Float32Array,
  F16: Uint16Array,
  BF16: Uint16Array,
  I32: Int32Array,
  I16: Int16Array,
  I8: Int8Array,
  U8: Uint8Array,
  BOOL: Uint8Array,
};

/**
 * Parses a safetensors file held in memory, without copying: tensor views point into `bytes`.
 *
 * @param bytes The whole file.
 * @param options The file's name for error messages.
 * @returns The parsed file.
 * @throws {FormatError} The file is not a valid safetensors file.
 *
 * @example
 * ```ts
 * import { parseSafetensors, serializeSafetensors } from "@valle/core/safetensors";
 * const w = { dtype: "F32", shape: [2], data: new Float32Array([1, 2]) } as const;
 * const bytes = serializeSafetensors({ w });
 * const st = parseSafetensors(bytes, { source: "w.safetensors" });
 * console.assert(st.toFloat32("w")[1] === 2);
 * ```
 */
export function parseSafetensors(
  bytes: Uint8Array,
  options?: ParseSafetensorsOptions,
): Safetensors {
  return new Safetensors(bytes, options);
}

/**
 * Reads a safetensors file from a path, URL, Blob, Response, stream or bytes. Only one copy of
 * the file is ever held: the header is read and checked first, then one buffer of the right size
 * is allocated and filled as the data arrives.
 *
 * Strings starting with `http:`, `https:`, `file:`, `blob:` or `data:` are fetched, as are URL
 * objects. Other strings are file paths, read with `Deno.open` in Deno and fetched relative to
 * the page in a browser.
 *
 * @param source Where to read the file from.
 * @param options An abort signal, a progress callback, and the file's name for error messages.
 * @returns The parsed file.
 * @throws {FormatError} The file is malformed or truncated, or the server answered an HTTP error.
 *
 * @example
 * ```ts ignore
 * import { readSafetensors } from "@valle/core/safetensors";
 * const st = await readSafetensors("https://example.com/valle/model.sft", {
 *   onProgress: (loaded, total) => console.log(`${loaded} / ${total ?? "?"} bytes`),
 * });
 * console.log(st.names.length, st.metadata.config);
 * ```
 */
export async function readSafetensors(
  source: SafetensorsSource,
  options: ReadSafetensorsOptions = {},
): Promise<Safetensors> {
  const { signal, onProgress } = options;
  signal?.throwIfAborted();
  if (source instanceof ArrayBuffer || source instanceof Uint8Array) {
    const bytes = source instanceof ArrayBuffer ? new Uint8Array(source) : source;
    const st = new Safetensors(bytes, { source: options.source ?? "<bytes>" });
    onProgress?.(bytes.length, bytes.length);
    return st;
  }
  const input = await openByteSource(source, {
    label: options.source,
    kind: "safetensors",
    signal,
  });
  const close = () => input.close();
  signal?.addEventListener("abort", close, { once: true });
  try {
    return await readFrom(input, options);
  } catch (e) {
    signal?.throwIfAborted();
    throw e;
  } finally {
    signal?.removeEventListener("abort", close);
    await input.close();
  }
}

/**
 * Writes tensors and metadata as a safetensors file. The layout is deterministic: the header
 * lists `__metadata__` first, then the tensors in data order, larger dtypes first and by name
 * within a dtype size, so that every tensor is aligned to its element size. The header is padded
 * with spaces to a multiple of 8 bytes.
 *
 * @param tensors The tensors by checkpoint key.
 * @param metadata Strings to store as `__metadata__`.
 * @returns The file.
 * @throws {TypeError} A dtype is unknown, a shape is not a list of non-negative integers, or a
 * tensor's data does not have the size its shape and dtype call for.
 *
 * @example
 * ```ts
 * import { serializeSafetensors } from "@valle/core/safetensors";
 * const file = serializeSafetensors(
 *   { sep: { dtype: "F32", shape: [2], data: new Float32Array([0.5, -1]) } },
 *   { format: "pt" },
 * );
 * console.assert(file.length % 8 === 0);
 * ```
 */
export function serializeSafetensors(
  tensors: Record<string, TensorData>,
  metadata?: Record<string, string>,
): Uint8Array<ArrayBuffer> {
  const entries = Object.entries(tensors).map(([name, tensor]) => checkTensorData(name, tensor));
  entries.sort((a, b) =>
    DTYPE_SIZES[b.dtype] - DTYPE_SIZES[a.dtype] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
  );
  const fields: string[] = [];
  if (metadata) {
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== "string") {
        throw new TypeError(
          `Cannot serialize safetensors: metadata "${key}" is ${
            describe(value)
          }, expected a string`,
        );
      }
    }
    fields.push(`"__metadata__":${JSON.stringify(metadata)}`);
  }
  let dataLength = 0;
  for (const { name, dtype, shape, bytes } of entries) {
    const offsets = [dataLength, dataLength + bytes.length];
    fields.push(
      `${JSON.stringify(name)}:${JSON.stringify({ dtype, shape, data_offsets: offsets })}`,
    );
    dataLength += bytes.length;
  }
  const json = new TextEncoder().encode(`{${fields.join(",")}}`);
  const headerSize = Math.ceil(json.length / 8) * 8;
  const file = new Uint8Array(8 + headerSize + dataLength);
  new DataView(file.buffer).setBigUint64(0, BigInt(headerSize), true);
  file.set(json, 8);
  file.fill(0x20, 8 + json.length, 8 + headerSize);
  let offset = 8 + headerSize;
  for (const { bytes } of entries) {
    file.set(bytes, offset);
    offset += bytes.length;
  }
  return file;
}

/** Checks one tensor given to {@linkcode serializeSafetensors} and takes its bytes. */
function checkTensorData(
  name: string,
  { dtype, shape, data }: TensorData,
): { name: string; dtype: Dtype; shape: readonly number[]; bytes: Uint8Array } {
  const fail = (problem: string) =>
    new TypeError(`Cannot serialize safetensors: tensor "${name}" ${problem}`);
  if (name === "__metadata__") throw fail("has a reserved name");
  if (!Object.hasOwn(DTYPE_SIZES, dtype)) {
    throw fail(`has dtype ${show(dtype)}, expected one of ${Object.keys(DTYPE_SIZES).join(", ")}`);
  }
  if (!isShape(shape)) {
    throw fail(`has shape ${show(shape)}, expected an array of non-negative integers`);
  }
  if (!ArrayBuffer.isView(data)) throw fail(`has data ${describe(data)}, expected a typed array`);
  const expected = numel(shape) * DTYPE_SIZES[dtype];
  if (data.byteLength !== expected) {
    throw fail(
      `has ${data.byteLength} bytes of data, expected ${expected} (shape ${
        show(shape)
      } of ${dtype})`,
    );
  }
  return {
    name,
    dtype,
    shape,
    bytes: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  };
}

/**
 * Reads a file from a source: the length prefix and header first, checked before the one
 * buffer for the whole file is allocated and filled.
 */
async function readFrom(
  input: ByteSource,
  { signal, onProgress }: ReadSafetensorsOptions,
): Promise<Safetensors> {
  const { label, size } = input;
  const fill = filler(input, { signal, onProgress });

  const prefix = new Uint8Array(8);
  const headerSize = headerLength(prefix.subarray(0, await fill(prefix)), label, size);
  // With no size to check the length against, grow the header buffer as bytes arrive, so that a
  // bogus length in a short stream cannot allocate up to 100 MiB.
  let header = new Uint8Array(
    size === undefined ? Math.min(headerSize, HEADER_STEP) : headerSize,
  );
  let got = await fill(header);
  while (got === header.length && got < headerSize) {
    const grown = new Uint8Array(Math.min(headerSize, 2 * header.length));
    grown.set(header);
    header = grown;
    got += await fill(header.subarray(got));
  }
  if (got < headerSize) {
    throw formatError(
      label,
      `file ends after ${8 + got} bytes, inside the ${headerSize}-byte header`,
      {
        offset: 8 + got,
        expected: `${8 + headerSize} bytes or more`,
        found: `${8 + got} bytes`,
      },
    );
  }

  const { tensors, dataEnd } = parseHeader(
    header,
    label,
    size === undefined ? undefined : size - 8 - headerSize,
  );
  const dataStart = 8 + headerSize;
  let file: Uint8Array;
  try {
    file = new Uint8Array(dataStart + dataEnd);
  } catch (e) {
    throw formatError(label, `cannot allocate ${dataStart + dataEnd} bytes for the file`, {
      expected: "a size this runtime can allocate",
      found: `${dataStart + dataEnd} bytes`,
    }, e);
  }
  file.set(prefix);
  file.set(header, 8);
  const dataGot = await fill(file.subarray(dataStart));
  if (dataGot < dataEnd) {
    const end = dataStart + dataGot;
    const cut = tensors.find((t) => t.byteOffset + t.byteLength > end) as TensorInfo;
    throw formatError(
      label,
      `file ends after ${end} bytes, inside tensor "${cut.name}" (expected ${dataStart + dataEnd})`,
      {
        entry: cut.name,
        offset: end,
        expected: `${dataStart + dataEnd} bytes or more`,
        found: `${end} bytes`,
      },
    );
  }
  // The header is parsed again here; it is small next to the data.
  return new Safetensors(file, { source: label });
}

/** Reads and checks the 8-byte header length, before anything is allocated for the header. */
function headerLength(prefix: Uint8Array, file: string, fileSize: number | undefined): number {
  if (prefix.length < 8) {
    throw formatError(file, `file is ${prefix.length} bytes, expected at least 8`, {
      offset: 0,
      expected: "at least 8 bytes",
      found: `${prefix.length} bytes`,
    });
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  const fail = (problem: string, expected: string) =>
    formatError(file, `header length is ${n} bytes, ${problem}`, {
      offset: 0,
      expected,
      found: `${n} bytes`,
    });
  if (n === 0n) throw fail('expected at least 2 ("{}")', "at least 2 bytes");
  if (fileSize !== undefined && n > BigInt(fileSize - 8)) {
    throw fail(`but only ${fileSize - 8} bytes follow the length`, `at most ${fileSize - 8} bytes`);
  }
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw fail(
      `expected at most ${MAX_HEADER_BYTES} (100 MiB)`,
      `at most ${MAX_HEADER_BYTES} bytes`,
    );
  }
  return Number(n);
}

/** A checked header: metadata, tensors in data order, and where the last tensor ends. */
interface Header {
  metadata: Readonly<Record<string, string>>;
  tensors: TensorInfo[];
  /** The end of the last tensor, counted from the start of the data section. */
  dataEnd: number;
}

/**
 * Decodes and checks a header.
 *
 * @param bytes The header's bytes, after the length prefix.
 * @param file The file's name for error messages.
 * @param dataSize The size of the data section, when known.
 */
function parseHeader(bytes: Uint8Array, file: string, dataSize: number | undefined): Header {
  let json: unknown;
  try {
    json = JSON.parse(UTF8.decode(bytes));
  } catch (e) {
    const utf8 = !(e instanceof SyntaxError);
    throw formatError(file, `header is not valid ${utf8 ? "UTF-8" : `JSON (${e.message})`}`, {
      offset: 8,
      expected: "a UTF-8 JSON object",
      found: utf8 ? "invalid UTF-8" : "invalid JSON",
    }, e);
  }
  if (!isObject(json)) {
    throw formatError(file, `header is ${describe(json)}, expected a JSON object`, {
      offset: 8,
      expected: "a JSON object",
      found: describe(json),
    });
  }
  const metadata = checkMetadata(file, json.__metadata__);
  const dataStart = 8 + bytes.length;
  const tensors = Object.entries(json)
    .filter(([name]) => name !== "__metadata__")
    .map(([name, entry]) => checkEntry(file, name, entry, dataStart, dataSize))
    .sort((a, b) => a.byteOffset - b.byteOffset || a.byteLength - b.byteLength);

  // Sorted by start, two tensors overlap when one starts before the furthest end so far.
  let last: TensorInfo | undefined;
  for (const t of tensors) {
    if (t.byteLength === 0) continue;
    if (last && t.byteOffset < last.byteOffset + last.byteLength) {
      throw formatError(
        file,
        `tensor "${t.name}" data_offsets ${
          offsets(t, dataStart)
        } overlap tensor "${last.name}" data_offsets ${offsets(last, dataStart)}`,
        {
          entry: t.name,
          offset: t.byteOffset,
          expected: `begin >= ${last.byteOffset + last.byteLength - dataStart}`,
          found: `begin ${t.byteOffset - dataStart}`,
        },
      );
    }
    if (!last || t.byteOffset + t.byteLength > last.byteOffset + last.byteLength) last = t;
  }
  return {
    metadata,
    tensors,
    dataEnd: last ? last.byteOffset + last.byteLength - dataStart : 0,
  };
}

/** Checks `__metadata__`: absent or null, or an object of strings. */
function checkMetadata(file: string, metadata: unknown): Readonly<Record<string, string>> {
  if (metadata === undefined || metadata === null) return Object.freeze({});
  const fail = (found: string) =>
    formatError(file, `__metadata__ ${found}, expected an object of strings`, {
      entry: "__metadata__",
      offset: 8,
      expected: "an object of strings",
      found,
    });
  if (!isObject(metadata)) throw fail(`is ${describe(metadata)}`);
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value !== "string") throw fail(`value "${key}" is ${describe(value)}`);
  }
  return Object.freeze(metadata as Record<string, string>);
}

/** Checks one tensor entry of the header against itself and the data section. */
function checkEntry(
  file: string,
  name: string,
  entry: unknown,
  dataStart: number,
  dataSize: number | undefined,
): TensorInfo {
  const fail = (problem: string, expected: string, found: string, offset = 8) =>
    formatError(file, `tensor "${name}" ${problem}`, { entry: name, offset, expected, found });
  if (!isObject(entry)) {
    const expected = "an object with dtype, shape and data_offsets";
    throw fail(`is ${describe(entry)}, expected ${expected}`, expected, describe(entry));
  }
  const { dtype, shape, data_offsets: range } = entry;
  if (typeof dtype !== "string" || !Object.hasOwn(DTYPE_SIZES, dtype)) {
    const expected = `one of ${Object.keys(DTYPE_SIZES).join(", ")}`;
    throw fail(`has dtype ${show(dtype)}, expected ${expected}`, expected, show(dtype));
  }
  if (!isShape(shape)) {
    const expected = "an array of non-negative integers";
    throw fail(`has shape ${show(shape)}, expected ${expected}`, expected, show(shape));
  }
  if (
    !Array.isArray(range) || range.length !== 2 || !range.every(isIndex) || range[0] > range[1]
  ) {
    const expected = "[begin, end] with 0 <= begin <= end";
    throw fail(`has data_offsets ${show(range)}, expected ${expected}`, expected, show(range));
  }
  const [begin, end] = range as [number, number];
  if (dataSize !== undefined && end > dataSize) {
    throw fail(
      `data_offsets [${begin}, ${end}] exceed the data section (${dataSize} bytes)`,
      `end <= ${dataSize}`,
      `end ${end}`,
      dataStart + begin,
    );
  }
  const byteLength = numel(shape) * DTYPE_SIZES[dtype as Dtype];
  if (end - begin !== byteLength) {
    throw fail(
      `data_offsets [${begin}, ${end}] span ${end - begin} bytes, expected ${byteLength} (shape ${
        show(shape)
      } of ${dtype})`,
      `${byteLength} bytes`,
      `${end - begin} bytes`,
      dataStart + begin,
    );
  }
  return Object.freeze({
    name,
    dtype: dtype as Dtype,
    shape: Object.freeze(shape),
    byteOffset: dataStart + begin,
    byteLength,
  });
}

/** `[begin, end]` of a tensor, counted from the data section as in the header. */
function offsets(t: TensorInfo, dataStart: number): string {
  return `[${t.byteOffset - dataStart}, ${t.byteOffset + t.byteLength - dataStart}]`;
}

/** A {@linkcode FormatError} whose message starts "Cannot read safetensors "<file>": ". */
function formatError(
  file: string,
  problem: string,
  details: Omit<FormatErrorDetails, "file">,
  cause?: unknown,
): FormatError {
  return new FormatError(
    `Cannot read safetensors "${file}": ${problem}`,
    { file, ...details },
    cause === undefined ? undefined : { cause },
  );
}

/** Whether a JSON value is an object (not null, not an array). */
function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Whether a JSON value can be a size or an offset: a non-negative safe integer. */
function isIndex(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

/** Whether a JSON value is a shape: an array of sizes. */
function isShape(value: unknown): value is number[] {
  return Array.isArray(value) && value.every(isIndex);
}

/** The number of elements of a shape; may exceed 2^53 for absurd shapes, which then mismatch. */
function numel(shape: readonly number[]): number {
  return shape.reduce((product, d) => product * d, 1);
}

/** The kind of a value, for messages: "an array", "null", "a number", … */
function describe(value: unknown): string {
  if (value === null || value === undefined) return `${value}`;
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

/** A value as JSON for messages, shortened to 60 characters. */
function show(value: unknown): string {
  const text = JSON.stringify(value) ?? "nothing";
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
