/**
 * GGUF files (llama.cpp's weight format, versions 2 and 3): a reader that checks every tensor's
 * type, shape and byte range against the file before handing out views, and a writer. Tensors
 * of types F32, F16, BF16, Q8_0 and Q4_K are read; any other ggml type is refused by name. Shapes
 * are given outermost first, as PyTorch writes them (GGUF stores `ne` innermost first).
 *
 * Only web APIs are used, except that {@linkcode readGguf} reads a plain file path with
 * `Deno.open` when it runs in Deno.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { FormatError, type FormatErrorDetails } from "../errors.ts";
import { dequantizeQ4K, Q4_K_BLOCK, Q4_K_BYTES } from "../quant/q4_k.ts";
import { dequantizeQ8_0, Q8_0_BLOCK, Q8_0_BYTES } from "../quant/q8_0.ts";
import { bf16ToF32, f16ToF32, f32ToF16 } from "./dtype.ts";
import type { ReadSafetensorsOptions, SafetensorsSource } from "./safetensors.ts";
import { readAllBytes } from "./source.ts";

/**
 * A tensor type this library reads from GGUF files.
 *
 * @example
 * ```ts
 * import type { GgufType } from "./gguf.ts";
 * const type: GgufType = "Q4_K";
 * ```
 */
export type GgufType = "F32" | "F16" | "BF16" | "Q8_0" | "Q4_K";

/** ggml's id, block length (elements) and block size (bytes) of each readable type. */
export const GGUF_TYPES: Readonly<
  Record<GgufType, { readonly id: number; readonly block: number; readonly bytes: number }>
> = {
  F32: { id: 0, block: 1, bytes: 4 },
  F16: { id: 1, block: 1, bytes: 2 },
  Q8_0: { id: 8, block: Q8_0_BLOCK, bytes: Q8_0_BYTES },
  Q4_K: { id: 12, block: Q4_K_BLOCK, bytes: Q4_K_BYTES },
  BF16: { id: 30, block: 1, bytes: 2 },
};

/** Names of ggml types this reader refuses, for messages. */
const OTHER_TYPES: Readonly<Record<number, string>> = {
  2: "Q4_0",
  3: "Q4_1",
  6: "Q5_0",
  7: "Q5_1",
  9: "Q8_1",
  10: "Q2_K",
  11: "Q3_K",
  13: "Q5_K",
  14: "Q6_K",
  15: "Q8_K",
  24: "I8",
  25: "I16",
  26: "I32",
  27: "I64",
  28: "F64",
};

const MAGIC = 0x46554747; // "GGUF", little-endian
const DEFAULT_ALIGNMENT = 32;
const UTF8 = new TextDecoder("utf-8", { fatal: true });

/**
 * A metadata value: integers and floats as numbers (64-bit integers beyond 2^53 as bigints),
 * booleans, strings, and arrays of these.
 *
 * @example
 * ```ts
 * import type { GgufValue } from "./gguf.ts";
 * const value: GgufValue = ["a", "b"];
 * ```
 */
export type GgufValue = number | bigint | boolean | string | readonly GgufValue[];

/** Where one tensor is in a GGUF file. */
export interface GgufTensorInfo {
  /** Its name, verbatim. */
  readonly name: string;
  /** Its type. */
  readonly type: GgufType;
  /** Its shape, outermost first (the reverse of GGUF's `ne`). */
  readonly shape: readonly number[];
  /** Offset of its data from the start of the file. */
  readonly byteOffset: number;
  /** Size of its data. */
  readonly byteLength: number;
}

/** A GGUF file held in memory, checked. */
export class Gguf {
  /** The file's name in error messages. */
  readonly source: string;
  /** The format version (2 or 3). */
  readonly version: number;
  /** The key-value metadata, in file order. */
  readonly metadata: ReadonlyMap<string, GgufValue>;
  /** Tensor names in file order. */
  readonly names: readonly string[];
  #bytes: Uint8Array;
  #tensors: Map<string, GgufTensorInfo>;

  /**
   * Parses and checks a whole file; tensor data stays in `bytes` (views, no copies).
   *
   * @param bytes The file.
   * @param source Its name in error messages.
   * @throws {FormatError} Naming the tensor (or key) and the byte offset of the problem.
   */
  constructor(bytes: Uint8Array, source = "<bytes>") {
    this.source = source;
    this.#bytes = bytes;
    const parsed = parse(bytes, source);
    this.version = parsed.version;
    this.metadata = parsed.metadata;
    this.#tensors = new Map(parsed.tensors.map((t) => [t.name, t]));
    this.names = parsed.tensors.map((t) => t.name);
  }

  /** Whether a tensor exists. */
  has(name: string): boolean {
    return this.#tensors.has(name);
  }

  /**
   * Type, shape and byte range of a tensor.
   *
   * @throws {FormatError} No tensor of that name.
   */
  info(name: string): GgufTensorInfo {
    const info = this.#tensors.get(name);
    if (!info) {
      throw formatError(this.source, `no tensor "${name}"`, {
        entry: name,
        expected: "a tensor of the file",
        found: "nothing",
      });
    }
    return info;
  }

  /** A tensor's raw bytes, in its type's block layout (a view into the file). */
  bytes(name: string): Uint8Array {
    const { byteOffset, byteLength } = this.info(name);
    return this.#bytes.subarray(byteOffset, byteOffset + byteLength);
  }

  /** A string metadata value, or undefined when the key is absent or not a string. */
  string(key: string): string | undefined {
    const value = this.metadata.get(key);
    return typeof value === "string" ? value : undefined;
  }

  /** A tensor's values as float32 (quantized types dequantized). */
  toFloat32(name: string): Float32Array {
    const { type } = this.info(name);
    const bytes = this.bytes(name);
    switch (type) {
      case "F32": {
        const copy = bytes.slice();
        return new Float32Array(copy.buffer);
      }
      case "F16":
        return f16ToF32(halves(bytes));
      case "BF16":
        return bf16ToF32(halves(bytes));
      case "Q8_0":
        return dequantizeQ8_0(bytes);
      case "Q4_K":
        return dequantizeQ4K(bytes);
    }
  }

  /** A tensor's values as float16 bits (F16 as stored, other types converted). */
  toFloat16(name: string): Uint16Array {
    if (this.info(name).type === "F16") return halves(this.bytes(name));
    return f32ToF16(this.toFloat32(name));
  }
}

/** A copy of little-endian 16-bit words. */
function halves(bytes: Uint8Array): Uint16Array {
  return new Uint16Array(bytes.slice().buffer);
}

/** One tensor given to {@linkcode serializeGguf}. */
export interface GgufTensorData {
  /** Its type. */
  type: GgufType;
  /** Its shape, outermost first. */
  shape: readonly number[];
  /** Its data in the type's layout (blocks for quantized types, little-endian values otherwise). */
  bytes: Uint8Array;
}

/**
 * Parses a GGUF file held in memory.
 *
 * @param bytes The whole file.
 * @param source The file's name in error messages.
 * @returns The checked file.
 * @throws {FormatError} A bad magic or version, truncated metadata or tensor data, an unknown
 * tensor type, a shape that is not whole blocks, overlapping tensors, a tensor count that does
 * not match the file: each naming the tensor or key and the byte offset.
 *
 * @example
 * ```ts
 * import { parseGguf, serializeGguf } from "./gguf.ts";
 * const bytes = serializeGguf({ w: { type: "F32", shape: [2], bytes: new Uint8Array(8) } }, {});
 * console.assert(parseGguf(bytes).info("w").shape[0] === 2);
 * ```
 */
export function parseGguf(bytes: Uint8Array, source?: string): Gguf {
  return new Gguf(bytes, source);
}

/**
 * Reads a GGUF file from a path, URL, Blob, Response, stream or bytes (whole, into memory).
 *
 * @param source Where to read it from.
 * @param options An abort signal, a progress callback, and the file's name for error messages
 * (the same options as `readSafetensors`).
 * @returns The checked file.
 * @throws {FormatError} See {@linkcode parseGguf}; or the file cannot be read.
 *
 * @example
 * ```ts ignore
 * const gguf = await readGguf("valle-q4.gguf");
 * ```
 */
export async function readGguf(
  source: SafetensorsSource,
  options: ReadSafetensorsOptions = {},
): Promise<Gguf> {
  const { signal, onProgress } = options;
  const label = options.source ?? (typeof source === "string" ? source : "<gguf>");
  const bytes = await readAllBytes(source, { signal, onProgress, label, kind: "GGUF" });
  if (source instanceof Uint8Array || source instanceof ArrayBuffer) {
    options.onProgress?.(bytes.length, bytes.length);
  }
  return new Gguf(bytes, label);
}

/** Whether bytes start with the GGUF magic. */
export function isGguf(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x47 && bytes[1] === 0x47 && bytes[2] === 0x55 &&
    bytes[3] === 0x46;
}

/**
 * Writes a GGUF (version 3) file: the metadata (strings, booleans, and numbers written as uint32,
 * which must be integers in range), then the tensors in the given order, each aligned to 32 bytes.
 *
 * @param tensors The tensors by name (at most 63 bytes of UTF-8 each, as ggml requires).
 * @param metadata Key-value pairs.
 * @returns The file.
 * @throws {TypeError} A name too long, a shape that is not whole blocks, data of the wrong size,
 * a number that is not a uint32.
 *
 * @example
 * ```ts
 * import { serializeGguf } from "./gguf.ts";
 * const file = serializeGguf({}, { "general.architecture": "valle" });
 * console.assert(file.length > 24);
 * ```
 */
export function serializeGguf(
  tensors: Record<string, GgufTensorData>,
  metadata: Record<string, string | number | boolean>,
): Uint8Array<ArrayBuffer> {
  const out = new Writer();
  out.u32(MAGIC);
  out.u32(3);
  const entries = Object.entries(tensors);
  out.u64(entries.length);
  out.u64(Object.keys(metadata).length);
  for (const [key, value] of Object.entries(metadata)) {
    out.string(key);
    if (typeof value === "string") {
      out.u32(8);
      out.string(value);
    } else if (typeof value === "boolean") {
      out.u32(7);
      out.u8(value ? 1 : 0);
    } else {
      if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
        throw new TypeError(`Cannot write GGUF metadata "${key}": ${value} is not a uint32`);
      }
      out.u32(4);
      out.u32(value);
    }
  }
  let offset = 0;
  const placed: { bytes: Uint8Array; offset: number }[] = [];
  for (const [name, { type, shape, bytes }] of entries) {
    const { id, block, bytes: blockBytes } = GGUF_TYPES[type];
    const inner = shape.length ? shape[shape.length - 1] : 1;
    const count = shape.reduce((a, b) => a * b, 1);
    if (new TextEncoder().encode(name).length > 63) {
      throw new TypeError(`Cannot write GGUF tensor "${name}": names are at most 63 bytes`);
    }
    if (inner % block !== 0 || bytes.length !== (count / block) * blockBytes) {
      throw new TypeError(
        `Cannot write GGUF tensor "${name}": ${type} [${shape}] needs rows of whole ${block}-blocks ` +
          `and ${(count / block) * blockBytes} bytes, got ${bytes.length}`,
      );
    }
    out.string(name);
    out.u32(shape.length);
    for (let i = shape.length - 1; i >= 0; i--) out.u64(shape[i]);
    out.u32(id);
    out.u64(offset);
    placed.push({ bytes, offset });
    offset = align(offset + bytes.length, DEFAULT_ALIGNMENT);
  }
  const start = align(out.length, DEFAULT_ALIGNMENT);
  const file = new Uint8Array(start + offset);
  file.set(out.bytes());
  for (const t of placed) file.set(t.bytes, start + t.offset);
  return file;
}

function align(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/** A growing little-endian byte buffer. */
class Writer {
  #buf = new Uint8Array(1024);
  #view = new DataView(this.#buf.buffer);
  length = 0;

  #room(n: number): number {
    if (this.length + n > this.#buf.length) {
      const grown = new Uint8Array(2 * (this.length + n));
      grown.set(this.#buf);
      this.#buf = grown;
      this.#view = new DataView(grown.buffer);
    }
    const at = this.length;
    this.length += n;
    return at;
  }
  u8(v: number): void {
    this.#buf[this.#room(1)] = v;
  }
  u32(v: number): void {
    const at = this.#room(4); // may replace the view
    this.#view.setUint32(at, v, true);
  }
  u64(v: number): void {
    const at = this.#room(8);
    this.#view.setBigUint64(at, BigInt(v), true);
  }
  string(s: string): void {
    const bytes = new TextEncoder().encode(s);
    this.u64(bytes.length);
    const at = this.#room(bytes.length);
    this.#buf.set(bytes, at);
  }
  bytes(): Uint8Array {
    return this.#buf.subarray(0, this.length);
  }
}

/** A bounds-checked little-endian reader that names what it was reading when it runs out. */
class Reader {
  at = 0;
  #view: DataView;
  constructor(readonly bytes: Uint8Array, readonly file: string) {
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  need(n: number, what: string, entry?: string): number {
    if (this.at + n > this.bytes.length) {
      throw formatError(
        this.file,
        `file ends after ${this.bytes.length} bytes, inside ${what}`,
        {
          entry,
          offset: this.at,
          expected: `${n} more bytes at byte ${this.at}`,
          found: `${this.bytes.length - this.at}`,
        },
      );
    }
    const at = this.at;
    this.at += n;
    return at;
  }
  u8(what: string, entry?: string): number {
    return this.#view.getUint8(this.need(1, what, entry));
  }
  u32(what: string, entry?: string): number {
    return this.#view.getUint32(this.need(4, what, entry), true);
  }
  u64(what: string, entry?: string): number {
    const at = this.at;
    const v = this.#view.getBigUint64(this.need(8, what, entry), true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw formatError(this.file, `${what} is ${v}, past any file this reader holds`, {
        entry,
        offset: at,
        expected: "a count or size below 2^53",
        found: `${v}`,
      });
    }
    return Number(v);
  }
  string(what: string, entry?: string): string {
    const start = this.at;
    const n = this.u64(`${what} (length)`, entry);
    const at = this.need(n, what, entry);
    try {
      return UTF8.decode(this.bytes.subarray(at, at + n));
    } catch (e) {
      throw formatError(this.file, `${what} is not UTF-8`, {
        entry,
        offset: start,
        expected: "UTF-8 text",
        found: `${n} other bytes`,
      }, e);
    }
  }
  value(type: number, key: string, depth = 0): GgufValue {
    const what = `the value of "${key}"`;
    const v = this.#view;
    switch (type) {
      case 0:
        return v.getUint8(this.need(1, what, key));
      case 1:
        return v.getInt8(this.need(1, what, key));
      case 2:
        return v.getUint16(this.need(2, what, key), true);
      case 3:
        return v.getInt16(this.need(2, what, key), true);
      case 4:
        return v.getUint32(this.need(4, what, key), true);
      case 5:
        return v.getInt32(this.need(4, what, key), true);
      case 6:
        return v.getFloat32(this.need(4, what, key), true);
      case 7:
        return v.getUint8(this.need(1, what, key)) !== 0;
      case 8:
        return this.string(what, key);
      case 10:
        return small(v.getBigUint64(this.need(8, what, key), true));
      case 11:
        return small(v.getBigInt64(this.need(8, what, key), true));
      case 12:
        return v.getFloat64(this.need(8, what, key), true);
      case 9: {
        const start = this.at;
        const inner = this.u32(what, key);
        const n = this.u64(what, key);
        if (depth > 8 || n > this.bytes.length - this.at) {
          throw formatError(this.file, `${what} is an array of ${n} elements`, {
            entry: key,
            offset: start,
            expected: "an array that fits in the file",
            found: `${n} elements of type ${inner}`,
          });
        }
        const out: GgufValue[] = [];
        for (let i = 0; i < n; i++) out.push(this.value(inner, key, depth + 1));
        return out;
      }
      default:
        throw formatError(this.file, `${what} has unknown type ${type}`, {
          entry: key,
          offset: this.at - 4,
          expected: "a GGUF value type (0 to 12)",
          found: `${type}`,
        });
    }
  }
}

function small(v: bigint): number | bigint {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(v)
    : v;
}

function typeById(id: number): GgufType | undefined {
  return (Object.keys(GGUF_TYPES) as GgufType[]).find((t) => GGUF_TYPES[t].id === id);
}

/** Parses the header, metadata and tensor infos, and checks every tensor against the file. */
function parse(
  bytes: Uint8Array,
  file: string,
): { version: number; metadata: Map<string, GgufValue>; tensors: GgufTensorInfo[] } {
  const r = new Reader(bytes, file);
  const magic = r.u32("the magic");
  if (magic !== MAGIC) {
    throw formatError(file, "not a GGUF file (bad magic)", {
      offset: 0,
      expected: '"GGUF"',
      found: JSON.stringify(String.fromCharCode(...bytes.subarray(0, 4))),
    });
  }
  const version = r.u32("the version");
  if (version !== 2 && version !== 3) {
    throw formatError(file, `version ${version} is not supported`, {
      offset: 4,
      expected: "version 2 or 3",
      found: `${version}`,
    });
  }
  const tensorCount = r.u64("the tensor count");
  const kvCount = r.u64("the metadata count");
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < kvCount; i++) {
    const key = r.string(`metadata key ${i} of ${kvCount}`);
    const type = r.u32(`the type of "${key}"`, key);
    metadata.set(key, r.value(type, key));
  }
  const alignment = metadata.get("general.alignment") ?? DEFAULT_ALIGNMENT;
  if (typeof alignment !== "number" || alignment < 1 || (alignment & (alignment - 1)) !== 0) {
    throw formatError(file, `general.alignment is ${alignment}`, {
      entry: "general.alignment",
      expected: "a power of two",
      found: `${alignment}`,
    });
  }
  const raw: { name: string; infoAt: number; shape: number[]; typeId: number; offset: number }[] =
    [];
  for (let i = 0; i < tensorCount; i++) {
    const infoAt = r.at;
    // A count larger than the file's infos reads padding or data as the next info: a read past
    // the end, or an empty name (zero padding).
    const miscounted = (cause?: unknown) =>
      formatError(
        file,
        `the header declares ${tensorCount} tensors but the file holds ${i} tensor infos ` +
          `before byte ${infoAt}`,
        { offset: infoAt, expected: `${tensorCount} tensors`, found: `${i}` },
        cause,
      );
    let name: string;
    try {
      name = r.string(`tensor info ${i} of ${tensorCount}`);
    } catch (e) {
      if (!(e instanceof FormatError)) throw e;
      throw miscounted(e);
    }
    if (name === "") throw miscounted();
    const dims = r.u32(`the dimensions of "${name}"`, name);
    if (dims > 4) {
      throw formatError(file, `tensor "${name}" has ${dims} dimensions`, {
        entry: name,
        offset: r.at - 4,
        expected: "at most 4",
        found: `${dims}`,
      });
    }
    const ne: number[] = [];
    for (let d = 0; d < dims; d++) ne.push(r.u64(`the shape of "${name}"`, name));
    const typeId = r.u32(`the type of "${name}"`, name);
    const offset = r.u64(`the offset of "${name}"`, name);
    raw.push({ name, infoAt, shape: ne.reverse(), typeId, offset });
  }
  const dataStart = align(r.at, alignment);
  const tensors: GgufTensorInfo[] = [];
  const names = new Set<string>();
  for (const t of raw) {
    const { name, infoAt, shape, typeId, offset } = t;
    if (names.has(name)) {
      throw formatError(file, `tensor "${name}" appears twice`, {
        entry: name,
        offset: infoAt,
        expected: "unique tensor names",
        found: "a second tensor info",
      });
    }
    names.add(name);
    const type = typeById(typeId);
    if (!type) {
      const known = OTHER_TYPES[typeId];
      throw formatError(
        file,
        `tensor "${name}" has type ${
          known ?? "unknown"
        } (${typeId}), which this reader does not read`,
        {
          entry: name,
          offset: infoAt,
          expected: "F32, F16, BF16, Q8_0 or Q4_K",
          found: known ? `${known} (${typeId})` : `type ${typeId}`,
        },
      );
    }
    const { block, bytes: blockBytes } = GGUF_TYPES[type];
    const inner = shape.length ? shape[shape.length - 1] : 1;
    const count = shape.reduce((a, b) => a * b, 1);
    if (inner % block !== 0) {
      throw formatError(
        file,
        `tensor "${name}" is ${type} with rows of ${inner}, not whole ${block}-blocks`,
        {
          entry: name,
          offset: infoAt,
          expected: `a row length divisible by ${block}`,
          found: `[${shape}]`,
        },
      );
    }
    if (offset % alignment !== 0) {
      throw formatError(file, `tensor "${name}" starts at data offset ${offset}`, {
        entry: name,
        offset: dataStart + offset,
        expected: `a multiple of ${alignment}`,
        found: `${offset}`,
      });
    }
    const byteLength = (count / block) * blockBytes;
    const byteOffset = dataStart + offset;
    if (byteOffset + byteLength > bytes.length) {
      throw formatError(
        file,
        `tensor "${name}" (${type} [${shape}]) needs bytes ${byteOffset} to ` +
          `${byteOffset + byteLength}, the file ends at ${bytes.length}`,
        {
          entry: name,
          offset: byteOffset,
          expected: `${byteLength} bytes of ${type} blocks`,
          found: `${Math.max(0, bytes.length - byteOffset)} bytes`,
        },
      );
    }
    tensors.push({ name, type, shape, byteOffset, byteLength });
  }
  const sorted = [...tensors].sort((a, b) => a.byteOffset - b.byteOffset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1];
    if (sorted[i].byteOffset < prev.byteOffset + prev.byteLength) {
      throw formatError(file, `tensors "${prev.name}" and "${sorted[i].name}" overlap`, {
        entry: sorted[i].name,
        offset: sorted[i].byteOffset,
        expected: `data from byte ${prev.byteOffset + prev.byteLength}`,
        found: `data from byte ${sorted[i].byteOffset}`,
      });
    }
  }
  return { version, metadata, tensors };
}

function formatError(
  file: string,
  problem: string,
  details: Omit<FormatErrorDetails, "file">,
  cause?: unknown,
): FormatError {
  return new FormatError(
    `Cannot read GGUF "${file}": ${problem}` +
      (details.offset === undefined ? "" : ` (byte ${details.offset})`),
    { file, ...details },
    cause === undefined ? undefined : { cause },
  );
}
