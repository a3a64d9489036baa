/**
 * What the VALL-E loader reads from a weight file, whichever format holds it: a `.sft` /
 * `.safetensors` file (float tensors, the config in `__metadata__.config`) or a GGUF written by
 * `deno task quantize` (Q8_0/Q4_K blocks and float tensors under the same checkpoint keys, the
 * config in `valle.config`; `src/quant/FORMATS.md` §2). {@linkcode readValleFile} tells them
 * apart by the GGUF magic (bytes, Blobs) or a `.gguf` name (paths, URLs).
 *
 * This module is browser compatible.
 *
 * @module
 */

import { Gguf, isGguf, readGguf } from "../../io/gguf.ts";
import {
  readSafetensors,
  type ReadSafetensorsOptions,
  type SafetensorsSource,
} from "../../io/safetensors.ts";
import type { Safetensors } from "../../io/safetensors.ts";

/** A weight file as the VALL-E loader reads it. */
export interface ValleCheckpoint {
  /** The file's name in error messages. */
  readonly source: string;
  /** String metadata: `config` is the exporter's config JSON, when the file has it. */
  readonly metadata: Readonly<Record<string, string | undefined>>;
  /** Whether a tensor exists. */
  has(name: string): boolean;
  /** A tensor's storage type (`F16`, `BF16`, `F32`, `Q8_0`, `Q4_K`, …) and shape. */
  info(name: string): { readonly dtype: string; readonly shape: readonly number[] };
  /** A tensor's values as float32 (quantized blocks dequantized). */
  toFloat32(name: string): Float32Array;
  /** A tensor's values as float16 bits. */
  toFloat16(name: string): Uint16Array;
  /** A quantized tensor's GGUF blocks (`Q8_0` or `Q4_K` tensors only). */
  blocks?(name: string): Uint8Array;
}

/** A file a VALL-E model loads from: a source to read, or a parsed safetensors or GGUF file. */
export type ValleFileInput = SafetensorsSource | Safetensors | Gguf;

/**
 * A GGUF written by `deno task quantize` as a checkpoint: same keys, `valle.config` as the
 * config, raw blocks for the quantized tensors.
 *
 * @example
 * ```ts ignore
 * const checkpoint = ggufCheckpoint(await readGguf("valle-q4.gguf"));
 * ```
 */
export function ggufCheckpoint(gguf: Gguf): ValleCheckpoint {
  return {
    source: gguf.source,
    metadata: { config: gguf.string("valle.config") },
    has: (name) => gguf.has(name),
    info: (name) => {
      const { type, shape } = gguf.info(name);
      return { dtype: type, shape };
    },
    toFloat32: (name) => gguf.toFloat32(name),
    toFloat16: (name) => gguf.toFloat16(name),
    blocks: (name) => gguf.bytes(name),
  };
}

/**
 * Reads a VALL-E weight file: a GGUF when its bytes start with the GGUF magic or its path or URL
 * ends in `.gguf`, safetensors otherwise.
 *
 * @param input A path, URL, bytes, Blob, Response, stream, or a parsed file.
 * @param options Download progress, abort, the file's name for messages.
 * @returns The checkpoint.
 * @throws {FormatError} The file is neither valid safetensors nor valid GGUF.
 *
 * @example
 * ```ts ignore
 * const checkpoint = await readValleFile("valle-q8.gguf");
 * ```
 */
export async function readValleFile(
  input: ValleFileInput,
  options: ReadSafetensorsOptions = {},
): Promise<ValleCheckpoint> {
  if (input instanceof Gguf) return ggufCheckpoint(input);
  if (isParsedSafetensors(input)) return input;
  if (await looksLikeGguf(input)) {
    return ggufCheckpoint(await readGguf(input, options));
  }
  return await readSafetensors(input, options);
}

function isParsedSafetensors(input: ValleFileInput): input is Safetensors {
  return typeof input === "object" && input !== null && "toFloat16" in input &&
    "names" in input;
}

async function looksLikeGguf(input: SafetensorsSource): Promise<boolean> {
  if (input instanceof Uint8Array) return isGguf(input);
  if (input instanceof ArrayBuffer) return isGguf(new Uint8Array(input));
  if (input instanceof Blob) return isGguf(new Uint8Array(await input.slice(0, 4).arrayBuffer()));
  const name = typeof input === "string"
    ? input
    : input instanceof URL
    ? input.pathname
    : input instanceof Response
    ? input.url
    : "";
  return /\.gguf$/i.test(name.replace(/[?#].*$/, ""));
}
