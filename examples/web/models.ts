/// <reference lib="dom" />
/**
 * Where the demo's models come from. By default: the released weights,
 * downloaded once into the browser's Cache API. The page's query parameters can name other files
 * instead (`?model=…&codec=…&codecConfig=…&vocoder=…&vocoderConfig=…`, URLs relative to the page,
 * as `deno task web --model …` prints them); those are fetched afresh on every load, since a local
 * file may change under the same URL.
 */

import { BrowserCache, DEFAULT_FILES, type FileCache, type ValleOptions } from "../../mod.ts";

/** The query parameters that name model files: the {@linkcode ValleOptions} of the same name. */
const FILE_PARAMETERS = ["model", "codec", "codecConfig", "vocoder", "vocoderConfig"] as const;

/**
 * The loading options of the page at `page`: model files from its query parameters (the released
 * ones otherwise) and the download cache; the phonemizer is the default (espeak-ng and the
 * Japanese dictionary, both bundled).
 *
 * @param page The page's address, query included.
 * @returns Options for `Valle.load` (without progress and signal).
 *
 * @example
 * ```ts ignore
 * const valle = await Valle.load(modelOptions(new URL(location.href)));
 * ```
 */
export function modelOptions(page: URL): ValleOptions {
  const options: ValleOptions = {
    // The Cache API exists only in secure contexts (https, localhost).
    cache: "caches" in globalThis ? releasedOnly(new BrowserCache()) : false,
  };
  for (const name of FILE_PARAMETERS) {
    const value = page.searchParams.get(name);
    if (value) options[name] = new URL(value, page);
  }
  return options;
}

/** `cache`, restricted to the released files: any other file is neither read nor stored. */
function releasedOnly(cache: FileCache): FileCache {
  const released = new Set(Object.values(DEFAULT_FILES).map((file) => file.name));
  return {
    get: (key) => released.has(key) ? cache.get(key) : Promise.resolve(undefined),
    put: (key, bytes, meta) => released.has(key) ? cache.put(key, bytes, meta) : Promise.resolve(),
    delete: (key) => cache.delete(key),
    locate: (key) => cache.locate(key),
  };
}
