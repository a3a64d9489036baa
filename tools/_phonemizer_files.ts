/**
 * The npm files the bundled phonemizer fetches in browsers (kuromoji's Japanese dictionary; the
 * espeak-ng engine and data are bundled in the module), found in Deno's npm cache, so that a
 * local server can serve them beside a page instead of the page fetching them from a CDN.
 */

import { defaultDictionary } from "../src/text/japanese.ts";

/**
 * Where each file lives on disk, by the path a page fetches it at: `/kuromoji-dict/<file>` (the
 * `dict/` folder of `@patdx/kuromoji`, where the library finds it in Deno).
 *
 * @returns Served path → file URL.
 *
 * @example
 * ```ts ignore
 * const files = await phonemizerFiles();
 * const base = await Deno.readFile(files.get("/kuromoji-dict/base.dat.gz")!);
 * ```
 */
export async function phonemizerFiles(): Promise<Map<string, URL>> {
  const dict = await defaultDictionary();
  const files = new Map<string, URL>();
  for await (const entry of Deno.readDir(dict)) {
    files.set(`/kuromoji-dict/${entry.name}`, new URL(entry.name, dict));
  }
  return files;
}
