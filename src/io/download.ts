/**
 * Downloads of model files with progress, integrity checks and a persistent cache. A cached entry
 * is used only after its size and SHA-256 match what was recorded when it was stored (and what the
 * caller expects, when known); a partial or corrupt entry is deleted and fetched again. Without a
 * network and without a good cached copy, the error says which URL to download and where to put
 * the file.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { DownloadError } from "../errors.ts";
import { type CacheMeta, defaultCache, type FileCache } from "./cache.ts";

/** A file that can be downloaded, with what is known about it in advance. */
export interface RemoteFile {
  /** Cache key, a relative path such as `ecker/vall-e/ar+nar-len-llama-8.sft`. */
  name: string;
  /** Where to download it from. */
  url: string;
  /** Expected size in bytes, when known. */
  size?: number;
  /** Expected SHA-256 (lowercase hex), when known. */
  sha256?: string;
}

/** Progress of one file, reported while it downloads (or once, when it came from the cache). */
export interface DownloadProgress {
  /** The file's cache key. */
  file: string;
  /** Bytes received so far. */
  loaded: number;
  /** Total bytes, when known. */
  total?: number;
  /** True when the bytes came from the cache. */
  cached: boolean;
}

/** Options for {@linkcode fetchFile}. */
export interface FetchFileOptions {
  /** Where to cache; `false` disables caching. Default: {@linkcode defaultCache}. */
  cache?: FileCache | false;
  /** Called as bytes arrive. */
  onProgress?: (progress: DownloadProgress) => void;
  /** Aborts the download. */
  signal?: AbortSignal;
}

/**
 * Returns the bytes of `file`, from the cache when a verified copy is there, else downloaded,
 * verified and cached.
 *
 * @param file What to fetch and what it must be.
 * @param options Cache, progress callback and abort signal.
 * @returns The file's bytes (one copy in memory).
 * @throws {DownloadError} When the download fails or the bytes do not match the expected size or
 * SHA-256; the message names the URL and where to put a manually downloaded copy.
 *
 * @example
 * ```ts ignore
 * import { fetchFile } from "@valle/core";
 * const bytes = await fetchFile({ name: "demo/model.sft", url: "https://example.com/model.sft" });
 * ```
 */
export async function fetchFile(
  file: RemoteFile,
  options: FetchFileOptions = {},
): Promise<Uint8Array<ArrayBuffer>> {
  const cache = options.cache === false ? undefined : options.cache ?? defaultCache();
  const entry = await cache?.get(file.name);
  if (entry) {
    if (await verifies(entry.bytes, entry.meta, file)) {
      options.onProgress?.({
        file: file.name,
        loaded: entry.bytes.length,
        total: entry.bytes.length,
        cached: true,
      });
      return entry.bytes;
    }
    await cache!.delete(file.name);
  }
  const { bytes, headerSha256 } = await download(file, cache, options);
  const sha256 = await sha256Hex(bytes);
  const expected = file.sha256 ?? headerSha256;
  if (expected && expected !== sha256) {
    throw new DownloadError(
      `Cannot use ${file.url}: its SHA-256 is ${sha256}, expected ${expected} (corrupted download)`,
      file.url,
    );
  }
  await cache?.put(file.name, bytes, { url: file.url, size: bytes.length, sha256 });
  return bytes;
}

async function verifies(bytes: Uint8Array<ArrayBuffer>, meta: CacheMeta, file: RemoteFile) {
  if (bytes.length !== meta.size || (file.size !== undefined && bytes.length !== file.size)) {
    return false;
  }
  const sha256 = await sha256Hex(bytes);
  return sha256 === meta.sha256 && (file.sha256 === undefined || sha256 === file.sha256);
}

/** SHA-256 of `bytes`, lowercase hex. */
export async function sha256Hex(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Hugging Face sends the git-LFS SHA-256 of a file as its (linked) ETag. */
function lfsSha256(headers: Headers): string | undefined {
  const etag = (headers.get("x-linked-etag") ?? headers.get("etag") ?? "").replace(/^W\/|"/g, "");
  return /^[0-9a-f]{64}$/.test(etag) ? etag : undefined;
}

async function download(
  file: RemoteFile,
  cache: FileCache | undefined,
  { onProgress, signal }: FetchFileOptions,
): Promise<{ bytes: Uint8Array<ArrayBuffer>; headerSha256?: string }> {
  const where = cache
    ? `download it yourself and save it as ${cache.locate(file.name)}`
    : "download it yourself and pass its path";
  let response: Response;
  try {
    response = await fetch(file.url, { signal });
  } catch (cause) {
    signal?.throwIfAborted();
    throw new DownloadError(
      `Cannot download ${file.name} from ${file.url} (${cause}): ${where}`,
      file.url,
      { cause },
    );
  }
  if (!response.ok || !response.body) {
    await response.body?.cancel();
    throw new DownloadError(
      `Cannot download ${file.name}: ${file.url} answered HTTP ${response.status}: ${where}`,
      file.url,
    );
  }
  const header = response.headers.get("content-length");
  const length = header !== null && !response.headers.has("content-encoding")
    ? Number(header)
    : undefined;
  const total = file.size ?? length;
  let buffer = new Uint8Array(total ?? 1 << 20);
  let loaded = 0;
  const reader = response.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (loaded + value.length > buffer.length) {
        if (total !== undefined) {
          throw new DownloadError(
            `Cannot use ${file.url}: it sent more than the expected ${total} bytes`,
            file.url,
          );
        }
        const grown = new Uint8Array(Math.max(2 * buffer.length, loaded + value.length));
        grown.set(buffer.subarray(0, loaded));
        buffer = grown;
      }
      buffer.set(value, loaded);
      loaded += value.length;
      onProgress?.({ file: file.name, loaded, total, cached: false });
    }
  } catch (cause) {
    signal?.throwIfAborted();
    if (cause instanceof DownloadError) throw cause;
    throw new DownloadError(
      `Cannot download ${file.name}: the connection to ${file.url} broke after ${loaded} bytes: ${where}`,
      file.url,
      { cause },
    );
  } finally {
    reader.releaseLock();
  }
  if (total !== undefined && loaded !== total) {
    throw new DownloadError(
      `Cannot use ${file.url}: received ${loaded} bytes, expected ${total} (incomplete download)`,
      file.url,
    );
  }
  // Shrinks in place where the engine can (no second copy of the file).
  const bytes = total === undefined ? new Uint8Array(buffer.buffer.transfer(loaded)) : buffer;
  return { bytes, headerSha256: lfsSha256(response.headers) };
}
