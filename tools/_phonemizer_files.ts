/**
 * The npm files the bundled phonemizer fetches in browsers (espeak-ng's data, kuromoji's Japanese
 * dictionary), found in Deno's npm cache, so that a local server can serve them beside a page
 * instead of the page fetching them from a CDN.
 */

/**
 * Where each file lives on disk, by the path a page fetches it at: `/espeak-ng.data` (from
 * `@echogarden/espeak-ng-emscripten`) and `/kuromoji-dict/<file>` (the `dict/` folder of
 * `@patdx/kuromoji`). Importing the packages first makes Deno fetch them when missing.
 *
 * @returns Served path → file URL.
 *
 * @example
 * ```ts ignore
 * const files = await phonemizerFiles();
 * const data = await Deno.readFile(files.get("/espeak-ng.data")!);
 * ```
 */
export async function phonemizerFiles(): Promise<Map<string, URL>> {
  await import("@echogarden/espeak-ng-emscripten");
  await import("@patdx/kuromoji");
  const espeak = new URL("espeak-ng.data", import.meta.resolve("@echogarden/espeak-ng-emscripten"));
  const dict = new URL("../dict/", import.meta.resolve("@patdx/kuromoji"));
  const files = new Map([["/espeak-ng.data", espeak]]);
  for await (const entry of Deno.readDir(dict)) {
    files.set(`/kuromoji-dict/${entry.name}`, new URL(entry.name, dict));
  }
  return files;
}
