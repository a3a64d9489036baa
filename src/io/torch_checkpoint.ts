/**
 * Reads PyTorch zip checkpoints (`torch.save` since 1.6, e.g. a `pytorch_model.bin`) without
 * executing them: the zip archive holds `<name>/data.pkl`, a pickle of the state dict whose
 * tensors point through persistent ids to raw little-endian storages `<name>/data/<key>`. The
 * pickle goes through the restricted unpickler of `pickle.ts`, which accepts only tensor
 * rebuilds. Legacy (pre-1.6, non-zip) checkpoints and TorchScript archives are not supported.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { FormatError } from "../errors.ts";
import { bf16ToF32, type Dtype, DTYPE_SIZES, f16ToF32 } from "./dtype.ts";
import { isTensor, PickleDict, type TorchTensorRef, unpickleTorch } from "./pickle.ts";
import { isZip, readZipDirectory, readZipEntry } from "./zip.ts";

export { isZip };

/** What {@linkcode TorchCheckpoint.info} tells about a tensor. */
export interface TorchTensorInfo {
  /** The state-dict key, verbatim. */
  readonly name: string;
  /** The element type of its storage. */
  readonly dtype: Dtype;
  /** The dimensions. */
  readonly shape: readonly number[];
}

/**
 * The tensors of a PyTorch zip checkpoint's state dict.
 *
 * @example
 * ```ts ignore
 * const ckpt = await parseTorchCheckpoint(await Deno.readFile("pytorch_model.bin"));
 * console.log(ckpt.names.length, ckpt.info("head.out.weight").shape);
 * ```
 */
export class TorchCheckpoint {
  /** The file's name in error messages. */
  readonly source: string;
  /** The tensor names, in state-dict order. */
  readonly names: readonly string[];
  #tensors: Map<string, TorchTensorRef>;
  #storages: Map<string, Uint8Array>;

  /**
   * Wraps tensors whose storages are already read; use {@linkcode parseTorchCheckpoint}.
   *
   * @param source The file's name in error messages.
   * @param tensors The tensors by name.
   * @param storages The storage bytes by key.
   */
  constructor(
    source: string,
    tensors: Map<string, TorchTensorRef>,
    storages: Map<string, Uint8Array>,
  ) {
    this.source = source;
    this.names = [...tensors.keys()];
    this.#tensors = tensors;
    this.#storages = storages;
  }

  /** Whether the state dict has a tensor of that name. */
  has(name: string): boolean {
    return this.#tensors.has(name);
  }

  /**
   * The dtype and shape of a tensor.
   *
   * @throws {FormatError} No tensor has that name.
   */
  info(name: string): TorchTensorInfo {
    const t = this.#get(name);
    return { name, dtype: t.storage.dtype, shape: t.shape };
  }

  /**
   * A tensor's values as float32, row-major (strided tensors are gathered; integer and boolean
   * storages are converted).
   *
   * @throws {FormatError} No tensor has that name.
   */
  toFloat32(name: string): Float32Array {
    const t = this.#get(name);
    const all = storageValues(this.#storages.get(t.storage.key)!, t.storage.dtype);
    const n = t.shape.reduce((a, b) => a * b, 1);
    let step = 1;
    let contiguous = true;
    for (let d = t.shape.length - 1; d >= 0; d--) {
      if (t.shape[d] !== 1 && t.stride[d] !== step) contiguous = false;
      step *= t.shape[d];
    }
    if (contiguous) return Float32Array.from(all.slice(t.offset, t.offset + n));
    const out = new Float32Array(n);
    const index = new Array(t.shape.length).fill(0);
    for (let i = 0; i < n; i++) {
      let at = t.offset;
      for (let d = 0; d < index.length; d++) at += index[d] * t.stride[d];
      out[i] = all[at];
      for (let d = index.length - 1; d >= 0; d--) {
        if (++index[d] < t.shape[d]) break;
        index[d] = 0;
      }
    }
    return out;
  }

  #get(name: string): TorchTensorRef {
    const t = this.#tensors.get(name);
    if (!t) {
      throw new FormatError(`Cannot read tensor "${name}" of "${this.source}": no such tensor`, {
        file: this.source,
        entry: name,
      });
    }
    return t;
  }
}

/**
 * Parses a PyTorch zip checkpoint held in memory. A dict with a `state_dict` entry (Lightning
 * checkpoints) is unwrapped; entries that are not tensors are ignored.
 *
 * @param bytes The file.
 * @param options The file's name for error messages.
 * @returns The checkpoint's tensors.
 * @throws {FormatError} Not a PyTorch zip checkpoint, a forbidden pickle global or opcode, a
 * missing or short storage, or a big-endian file.
 *
 * @example
 * ```ts ignore
 * const ckpt = await parseTorchCheckpoint(bytes, { source: "pytorch_model.bin" });
 * const window = ckpt.toFloat32("head.istft.window");
 * ```
 */
export async function parseTorchCheckpoint(
  bytes: Uint8Array,
  options: { source?: string } = {},
): Promise<TorchCheckpoint> {
  const file = options.source ?? "<bytes>";
  const fail = (what: string, details: Record<string, string> = {}): never => {
    throw new FormatError(`Cannot read PyTorch checkpoint "${file}": ${what}`, {
      file,
      ...details,
    });
  };
  if (!isZip(bytes)) fail("not a zip archive (legacy torch.save files are not supported)");
  const entries = readZipDirectory(bytes, file);
  const pickles = entries.filter((e) => /^[^/]+\/data\.pkl$/.test(e.name));
  if (pickles.length !== 1) {
    fail(`found ${pickles.length} "<name>/data.pkl" records, expected 1`);
  }
  const prefix = pickles[0].name.slice(0, -"data.pkl".length);
  const byName = new Map(entries.map((e) => [e.name, e]));
  const byteorder = byName.get(`${prefix}byteorder`);
  if (byteorder) {
    const order = new TextDecoder().decode(await readZipEntry(bytes, byteorder, file));
    if (order !== "little") fail(`byte order is "${order}", expected "little"`);
  }
  let root = unpickleTorch(await readZipEntry(bytes, pickles[0], file), file);
  if (root instanceof PickleDict && root.entries.get("state_dict") instanceof PickleDict) {
    root = root.entries.get("state_dict");
  }
  if (!(root instanceof PickleDict)) fail("the pickle does not hold a dict");
  const tensors = new Map<string, TorchTensorRef>();
  for (const [name, value] of (root as PickleDict).entries) {
    if (typeof name === "string" && isTensor(value)) tensors.set(name, value);
  }
  if (tensors.size === 0) fail("the state dict holds no tensors");
  const storages = new Map<string, Uint8Array>();
  for (const t of tensors.values()) {
    const { key, dtype, numel } = t.storage;
    if (storages.has(key)) continue;
    const entry = byName.get(`${prefix}data/${key}`);
    if (!entry) fail(`storage "data/${key}" is missing`, { entry: `${prefix}data/${key}` });
    const data = await readZipEntry(bytes, entry!, file);
    const expected = numel * DTYPE_SIZES[dtype];
    if (data.length < expected) {
      fail(`storage "data/${key}" has ${data.length} bytes, expected ${expected}`, {
        entry: entry!.name,
        expected: `${expected} bytes`,
        found: `${data.length} bytes`,
      });
    }
    storages.set(key, data);
  }
  return new TorchCheckpoint(file, tensors, storages);
}

type TypedNumbers =
  | Float64Array
  | Float32Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint8Array;

/** Every element of a storage as numbers, in a typed array indexable by element. */
function storageValues(bytes: Uint8Array, dtype: Dtype): TypedNumbers {
  const size = DTYPE_SIZES[dtype];
  const aligned = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  const { buffer, byteOffset } = aligned;
  const n = Math.floor(aligned.byteLength / size);
  switch (dtype) {
    case "F64":
      return new Float64Array(buffer, byteOffset, n);
    case "F32":
      return new Float32Array(buffer, byteOffset, n);
    case "F16":
      return f16ToF32(new Uint16Array(buffer, byteOffset, n));
    case "BF16":
      return bf16ToF32(new Uint16Array(buffer, byteOffset, n));
    case "I64": {
      const v = new BigInt64Array(buffer, byteOffset, n);
      return Float64Array.from(v, (x) => Number(x));
    }
    case "I32":
      return new Int32Array(buffer, byteOffset, n);
    case "I16":
      return new Int16Array(buffer, byteOffset, n);
    case "I8":
      return new Int8Array(buffer, byteOffset, n);
    default:
      return new Uint8Array(buffer, byteOffset, n);
  }
}
