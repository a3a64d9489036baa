/**
 * Byte sources: a file path, a URL, a Blob, a fetch Response or a byte stream, read in order
 * into buffers the caller owns, so that large files (model weights, long recordings) are held in
 * memory once. {@linkcode readAllBytes} reads a whole source into one buffer.
 *
 * Strings starting with `http:`, `https:`, `file:`, `blob:` or `data:` are fetched, as are URL
 * objects. Other strings are file paths, read with `Deno.open` in Deno (the only Deno API used
 * here, feature-detected) and fetched relative to the page in a browser.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { DownloadError, FormatError } from "../errors.ts";

/** Anything a {@linkcode ByteSource} can be opened from. */
export type ByteSourceInput = string | URL | Blob | Response | ReadableStream<Uint8Array>;

/** A source of bytes read in order, with its name and, when known, its size. */
export interface ByteSource {
  /** The name error messages give the file. */
  readonly label: string;
  /** The total size in bytes, when the source tells it. */
  readonly size: number | undefined;
  /** Writes the next bytes into `target`: at least one, or none at the end of the source. */
  read(target: Uint8Array): Promise<number>;
  /** Releases the source; safe to call more than once. */
  close(): Promise<void>;
}

/** Options for opening and reading sources. */
export interface ReadSourceOptions {
  /** The name error messages give the source (default: the path, URL or file name). */
  label?: string;
  /** What the file is, for messages ("Cannot read <kind> …"), e.g. "safetensors". */
  kind?: string;
  /** Stops the read; the promise then rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Called as bytes arrive with the count so far and the total, when known. */
  onProgress?: (loaded: number, total: number | undefined) => void;
}

/** The most bytes asked of a source at once, so that progress and aborts are seen often. */
const READ_CHUNK = 16 * 1024 * 1024;
/** URL schemes that are fetched; other strings are file paths. */
const FETCHED_SCHEMES = /^(?:https?|file|blob|data):/i;

/** The part of the Deno namespace used to read a plain file path. */
interface DenoFiles {
  open(path: string): Promise<{
    stat(): Promise<{ size: number }>;
    read(target: Uint8Array): Promise<number | null>;
    close(): void;
  }>;
}

/**
 * Opens a path, URL, Blob, Response or stream for reading.
 *
 * @param input What to read.
 * @param options Label and abort signal.
 * @returns The open source; close it when done.
 * @throws {FormatError} A file is missing or unreadable, or a server answered with an HTTP
 * error status.
 *
 * @example
 * ```ts ignore
 * const source = await openByteSource("model.sft");
 * const head = new Uint8Array(8);
 * await source.read(head);
 * await source.close();
 * ```
 */
export async function openByteSource(
  input: ByteSourceInput,
  { label, kind, signal }: ReadSourceOptions = {},
): Promise<ByteSource> {
  const what = kind ? `${kind} ` : "";
  if (input instanceof Blob) {
    const name = input instanceof File ? input.name : "<blob>";
    return streamSource(input.stream(), input.size, label ?? name);
  }
  if (input instanceof Response) {
    return responseSource(input, label ?? (input.url || "<response>"), what);
  }
  if (input instanceof ReadableStream) return streamSource(input, undefined, label ?? "<stream>");
  const deno = (globalThis as { Deno?: DenoFiles }).Deno;
  if (typeof input === "string" && !FETCHED_SCHEMES.test(input) && deno) {
    return await fileSource(deno, input, label ?? input, what);
  }
  const url = typeof input === "string" ? new URL(input, globalThis.location?.href) : input;
  let response: Response;
  try {
    response = await fetch(url, { signal });
  } catch (cause) {
    signal?.throwIfAborted();
    const name = label ?? (url.protocol === "data:" ? "<data URL>" : url.href);
    throw new DownloadError(
      `Cannot fetch ${what}${name} (${cause}): check the address and the network, or pass a ` +
        "local copy",
      url.href,
      { cause },
    );
  }
  return responseSource(
    response,
    label ?? (url.protocol === "data:" ? "<data URL>" : url.href),
    what,
  );
}

/**
 * A function that fills a target buffer from `source` (until it is full or the source ends),
 * reading in bounded chunks so that `onProgress` and `signal` are seen often.
 *
 * @example
 * ```ts ignore
 * const fill = filler(source, { onProgress: (n, total) => console.log(n, total) });
 * const got = await fill(new Uint8Array(1024));
 * ```
 */
export function filler(
  source: ByteSource,
  { signal, onProgress }: ReadSourceOptions = {},
): (target: Uint8Array) => Promise<number> {
  let loaded = 0;
  return async (target) => {
    let filled = 0;
    while (filled < target.length) {
      const end = Math.min(target.length, filled + READ_CHUNK);
      const n = await source.read(target.subarray(filled, end));
      signal?.throwIfAborted();
      if (n === 0) break;
      filled += n;
      loaded += n;
      onProgress?.(loaded, source.size);
    }
    return filled;
  };
}

/**
 * Reads a whole source into one buffer (bytes given as bytes are returned as they are). When the
 * size is known the buffer is allocated once; otherwise it grows as data arrives.
 *
 * @param input What to read.
 * @param options Label, abort signal and progress callback.
 * @returns The bytes.
 * @throws {FormatError} A server answered with an HTTP error status.
 *
 * @example
 * ```ts ignore
 * const wav = await readAllBytes("reference.wav");
 * ```
 */
export async function readAllBytes(
  input: ByteSourceInput | Uint8Array | ArrayBuffer,
  options: ReadSourceOptions = {},
): Promise<Uint8Array<ArrayBuffer>> {
  options.signal?.throwIfAborted();
  if (input instanceof ArrayBuffer) return new Uint8Array(input);
  if (input instanceof Uint8Array) return input as Uint8Array<ArrayBuffer>;
  const source = await openByteSource(input, options);
  try {
    const fill = filler(source, options);
    let buffer = new Uint8Array(source.size ?? 1 << 20);
    let length = await fill(buffer);
    while (length === buffer.length && source.size === undefined) {
      const grown = new Uint8Array(2 * buffer.length);
      grown.set(buffer);
      buffer = grown;
      length += await fill(buffer.subarray(length));
    }
    return length === buffer.length ? buffer : buffer.slice(0, length);
  } finally {
    await source.close();
  }
}

/** Reads a plain file path in Deno, straight into the caller's buffers. */
async function fileSource(
  deno: DenoFiles,
  path: string,
  label: string,
  what: string,
): Promise<ByteSource> {
  let file: Awaited<ReturnType<DenoFiles["open"]>>;
  try {
    file = await deno.open(path);
  } catch (e) {
    const reason = (e as Error).name === "NotFound" ? "no such file" : (e as Error).message;
    throw new FormatError(`Cannot read ${what}"${label}": ${reason}`, {
      file: label,
      expected: "a readable file",
      found: reason,
    }, { cause: e });
  }
  let open = true;
  const close = () => {
    if (open) file.close();
    open = false;
    return Promise.resolve();
  };
  try {
    const { size } = await file.stat();
    return { label, size, read: async (target) => (await file.read(target)) ?? 0, close };
  } catch (e) {
    await close();
    throw e;
  }
}

/** Reads a fetch response's body, after checking its status. */
function responseSource(response: Response, label: string, what: string): ByteSource {
  if (!response.ok) {
    response.body?.cancel().catch(() => {});
    const status = `HTTP ${response.status} ${response.statusText}`.trim();
    throw new FormatError(
      `Cannot read ${what}"${label}": server answered ${status}, expected a 2xx status`,
      {
        file: label,
        expected: "HTTP 2xx",
        found: status,
      },
    );
  }
  // Content-Length counts encoded bytes when the body is compressed, so it is only a size when
  // there is no Content-Encoding.
  const length = response.headers.get("content-length");
  const size = length !== null && /^\d+$/.test(length) && !response.headers.has("content-encoding")
    ? Number(length)
    : undefined;
  return streamSource(response.body ?? new Blob().stream(), size, label);
}

/** Reads a byte stream; a chunk longer than the caller's buffer is split, its rest kept. */
function streamSource(
  stream: ReadableStream<Uint8Array>,
  size: number | undefined,
  label: string,
): ByteSource {
  const reader = stream.getReader();
  let rest: Uint8Array = new Uint8Array(0);
  return {
    label,
    size,
    async read(target) {
      while (rest.length === 0) {
        const { done, value } = await reader.read();
        if (done) return 0;
        if (!(value instanceof Uint8Array)) {
          throw new TypeError(
            `Cannot read "${label}": stream chunk is ${
              value === null ? "null" : typeof value
            }, expected a Uint8Array`,
          );
        }
        rest = value;
      }
      const n = Math.min(rest.length, target.length);
      target.set(rest.subarray(0, n));
      rest = rest.subarray(n);
      return n;
    },
    close: () => reader.cancel().catch(() => {}),
  };
}
