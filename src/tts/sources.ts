/**
 * Where the model files come from: the upstream releases on Hugging Face by default, or a path,
 * URL, bytes or Blob given by the caller. Remote files go through the download cache
 * ({@linkcode fetchFile}): fetched once with progress, verified (size, SHA-256 from Hugging Face's
 * ETag), and reused; local files are read as they are.
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { FileCache } from "../io/cache.ts";
import { type DownloadProgress, fetchFile, type RemoteFile } from "../io/download.ts";
import { readAllBytes } from "../io/source.ts";

/** A file the caller gives: a path, a URL (http(s), file, blob, data), bytes or a Blob. */
export type FileSource = string | URL | Uint8Array | ArrayBuffer | Blob;

const HF = "https://huggingface.co";

/**
 * The released files used when no other is given: VALL-E `ar+nar-len-llama-8` (ecker/vall-e),
 * EnCodec 24 kHz (facebook/encodec_24khz, its built-in configuration) and Vocos
 * (charactr/vocos-encodec-24khz, the official `pytorch_model.bin`).
 */
export const DEFAULT_FILES: Readonly<Record<"model" | "codec" | "vocoder", RemoteFile>> = Object
  .freeze({
    model: {
      name: "ecker/vall-e/ar+nar-len-llama-8.sft",
      url: `${HF}/ecker/vall-e/resolve/main/models/ckpt/ar+nar-len-llama-8/ckpt/fp32.sft`,
    },
    codec: {
      name: "facebook/encodec_24khz/model.safetensors",
      url: `${HF}/facebook/encodec_24khz/resolve/main/model.safetensors`,
    },
    vocoder: {
      name: "charactr/vocos-encodec-24khz/pytorch_model.bin",
      url: `${HF}/charactr/vocos-encodec-24khz/resolve/main/pytorch_model.bin`,
    },
  });

/** Options of {@linkcode loadFile}. */
export interface LoadFileOptions {
  /** Cache for remote files; `false` disables it. Default: the platform's cache. */
  cache?: FileCache | false;
  /** Download progress. */
  onProgress?: (progress: DownloadProgress) => void;
  /** Aborts the download. */
  signal?: AbortSignal;
}

/**
 * The bytes of `source`, or of `fallback` when no source is given. http(s) URLs are downloaded
 * through the cache; paths, file/blob/data URLs, Blobs and bytes are read directly.
 *
 * @param source What the caller gave, if anything.
 * @param fallback The released file to use otherwise.
 * @param options Cache, progress and abort signal.
 * @returns The file's bytes.
 * @throws {DownloadError} A download failed or did not verify (the message says where to put a
 * manually downloaded copy).
 *
 * @example
 * ```ts ignore
 * const bytes = await loadFile(undefined, DEFAULT_FILES.model, { onProgress: console.log });
 * ```
 */
export async function loadFile(
  source: FileSource | undefined,
  fallback: RemoteFile,
  options: LoadFileOptions = {},
): Promise<Uint8Array<ArrayBuffer>> {
  if (source === undefined) return await fetchFile(fallback, options);
  const url = remoteUrl(source);
  if (url) {
    return await fetchFile({ name: cacheKey(url), url: url.href }, options);
  }
  const name = sourceName(source, "<bytes>");
  return await readAllBytes(source, {
    label: name,
    signal: options.signal,
    onProgress: (loaded, total) =>
      options.onProgress?.({ file: name, loaded, total, cached: true }),
  });
}

/**
 * The URL of a source that is downloaded (an http or https URL, as a string or a URL); undefined
 * for sources that are read as they are (paths, file/blob/data URLs, bytes, Blobs).
 *
 * @example
 * ```ts
 * import { remoteUrl } from "./sources.ts";
 * console.assert(remoteUrl("https://example.com/model.sft")?.host === "example.com");
 * console.assert(remoteUrl("model.sft") === undefined);
 * ```
 */
export function remoteUrl(source: FileSource): URL | undefined {
  if (typeof source === "string") return /^https?:/i.test(source) ? new URL(source) : undefined;
  return source instanceof URL && /^https?:$/.test(source.protocol) ? source : undefined;
}

/** A cache key for a URL: host and path, `/resolve/<revision>/` dropped for Hugging Face URLs. */
function cacheKey(url: URL): string {
  const path = decodeURIComponent(url.pathname).replace(/\/resolve\/[^/]+\//, "/");
  return `${url.host}${path}`.split("/").filter((p) => p && p !== "." && p !== "..").join("/");
}

/**
 * The name of a file source for messages: the path or URL as given, else `fallback` (bytes and
 * Blobs have no name).
 *
 * @example
 * ```ts
 * import { sourceName } from "@valle/core";
 * console.assert(sourceName(new URL("https://example.com/a.wav"), "?") === "https://example.com/a.wav");
 * console.assert(sourceName(new Uint8Array(4), "<bytes>") === "<bytes>");
 * ```
 */
export function sourceName(source: FileSource, fallback: string): string {
  if (typeof source === "string") return source;
  return source instanceof URL ? source.href : fallback;
}
