/**
 * Persistent caches for downloaded model files: a directory in Deno (`$VALLE_CACHE_DIR`, else
 * `$XDG_CACHE_HOME/valle`, else `~/.cache/valle`) and the Cache API in browsers. Each entry keeps
 * its size and SHA-256 next to the bytes so that a partial or corrupt entry is detected on read.
 *
 * This module is browser compatible (the directory cache is only chosen where `Deno` exists).
 *
 * @module
 */

import { OptionError } from "../errors.ts";

/** What is recorded about a cached file. */
export interface CacheMeta {
  /** Where it was downloaded from. */
  url: string;
  /** Its size in bytes. */
  size: number;
  /** Its SHA-256, lowercase hex. */
  sha256: string;
}

/** A cached file as read back (not yet verified). */
export interface CacheEntry {
  /** The file's bytes. */
  bytes: Uint8Array<ArrayBuffer>;
  /** What was recorded when it was stored. */
  meta: CacheMeta;
}

/** Where downloaded files are kept. Keys are relative names like `ecker/vall-e/model.sft`. */
export interface FileCache {
  /** The entry stored under `key`, or undefined. A missing or unreadable meta record is a miss. */
  get(key: string): Promise<CacheEntry | undefined>;
  /** Stores `bytes` under `key`, replacing any previous entry, atomically where possible. */
  put(key: string, bytes: Uint8Array<ArrayBuffer>, meta: CacheMeta): Promise<void>;
  /** Removes the entry under `key`, if any. */
  delete(key: string): Promise<void>;
  /** Where `key` lives, for messages that tell users where to put a file by hand. */
  locate(key: string): string;
}

/** The subset of the Deno namespace the directory cache uses. */
interface DenoFs {
  readFile(path: string): Promise<Uint8Array<ArrayBuffer>>;
  readTextFile(path: string): Promise<string>;
  writeFile(path: string, data: Uint8Array): Promise<void>;
  writeTextFile(path: string, data: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  remove(path: string): Promise<void>;
  mkdir(path: string, options: { recursive: boolean }): Promise<void>;
  env: { get(name: string): string | undefined };
}

function checkKey(key: string): string {
  if (key === "" || key.split("/").some((part) => part === "" || part === "." || part === "..")) {
    throw new OptionError(
      `Cannot use cache key "${key}": expected a relative path without "." or ".."`,
    );
  }
  return key;
}

/**
 * A cache directory on disk (Deno). Each entry is the file itself plus `<file>.meta.json`; files
 * are written to a temporary name and renamed, so an interrupted download never looks complete.
 *
 * @example
 * ```ts ignore
 * const cache = new DirectoryCache("/tmp/valle-cache");
 * ```
 */
export class DirectoryCache implements FileCache {
  /** The directory. */
  readonly dir: string;
  #fs: DenoFs;

  /**
   * Opens (lazily creates) a cache directory.
   *
   * @param dir The directory; default {@linkcode defaultCacheDir}.
   * @throws {OptionError} Outside Deno.
   */
  constructor(dir?: string) {
    const fs = (globalThis as { Deno?: DenoFs }).Deno;
    if (!fs) throw new OptionError("Cannot use a cache directory: this runtime has no file system");
    this.#fs = fs;
    this.dir = dir ?? defaultCacheDir(fs);
  }

  /** {@inheritDoc FileCache.get} */
  async get(key: string): Promise<CacheEntry | undefined> {
    const path = this.locate(key);
    try {
      const meta = JSON.parse(await this.#fs.readTextFile(`${path}.meta.json`)) as CacheMeta;
      if (typeof meta?.sha256 !== "string" || typeof meta.size !== "number") return undefined;
      return { bytes: await this.#fs.readFile(path), meta };
    } catch {
      return undefined;
    }
  }

  /** {@inheritDoc FileCache.put} */
  async put(key: string, bytes: Uint8Array<ArrayBuffer>, meta: CacheMeta): Promise<void> {
    const path = this.locate(key);
    await this.#fs.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    await this.#fs.remove(`${path}.meta.json`).catch(() => {});
    const partial = `${path}.partial`;
    await this.#fs.writeFile(partial, bytes);
    await this.#fs.rename(partial, path);
    await this.#fs.writeTextFile(`${path}.meta.json`, JSON.stringify(meta, null, 2));
  }

  /** {@inheritDoc FileCache.delete} */
  async delete(key: string): Promise<void> {
    const path = this.locate(key);
    await this.#fs.remove(`${path}.meta.json`).catch(() => {});
    await this.#fs.remove(path).catch(() => {});
  }

  /** {@inheritDoc FileCache.locate} */
  locate(key: string): string {
    return `${this.dir}/${checkKey(key)}`;
  }
}

/**
 * The default cache directory in Deno: `$VALLE_CACHE_DIR`, else `$XDG_CACHE_HOME/valle`, else
 * `$HOME/.cache/valle` (`%LOCALAPPDATA%\valle` on Windows).
 */
export function defaultCacheDir(fs: { env: { get(name: string): string | undefined } }): string {
  const env = (name: string) => fs.env.get(name);
  const explicit = env("VALLE_CACHE_DIR");
  if (explicit) return explicit;
  const base = env("XDG_CACHE_HOME") ?? env("LOCALAPPDATA") ??
    (env("HOME") ? `${env("HOME")}/.cache` : undefined);
  if (!base) {
    throw new OptionError(
      "Cannot find a cache directory: set VALLE_CACHE_DIR (or HOME / XDG_CACHE_HOME)",
    );
  }
  return `${base}/valle`;
}

/**
 * A cache in the browser's Cache API (`caches.open(name)`). The meta record travels in response
 * headers.
 *
 * @example
 * ```ts ignore
 * const cache = new BrowserCache();
 * ```
 */
export class BrowserCache implements FileCache {
  #name: string;

  /**
   * Uses the named Cache API cache.
   *
   * @param name Cache name. Default "valle".
   */
  constructor(name = "valle") {
    this.#name = name;
  }

  /** {@inheritDoc FileCache.get} */
  async get(key: string): Promise<CacheEntry | undefined> {
    const cache = await caches.open(this.#name);
    const response = await cache.match(this.locate(key));
    const meta = response?.headers.get("x-valle-meta");
    if (!response || !meta) return undefined;
    try {
      return { bytes: new Uint8Array(await response.arrayBuffer()), meta: JSON.parse(meta) };
    } catch {
      return undefined;
    }
  }

  /** {@inheritDoc FileCache.put} */
  async put(key: string, bytes: Uint8Array<ArrayBuffer>, meta: CacheMeta): Promise<void> {
    const cache = await caches.open(this.#name);
    await cache.put(
      this.locate(key),
      new Response(bytes, { headers: { "x-valle-meta": JSON.stringify(meta) } }),
    );
  }

  /** {@inheritDoc FileCache.delete} */
  async delete(key: string): Promise<void> {
    await (await caches.open(this.#name)).delete(this.locate(key));
  }

  /** {@inheritDoc FileCache.locate} */
  locate(key: string): string {
    return `https://valle.cache/${checkKey(key)}`;
  }
}

/** The platform's default cache: a directory in Deno, the Cache API in browsers. */
export function defaultCache(): FileCache {
  return "Deno" in globalThis ? new DirectoryCache() : new BrowserCache();
}
