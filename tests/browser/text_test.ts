import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { phonemizerFiles } from "../../tools/_phonemizer_files.ts";
import { TEXT_PAGE_EXPECTED } from "./text_page.ts";
import { runInChromium } from "./harness.ts";

/** The npm files the page fetches, served beside it: kuromoji's dictionary (espeak is bundled). */
async function npmFiles(): Promise<Record<string, Uint8Array<ArrayBuffer>>> {
  const files: Record<string, Uint8Array<ArrayBuffer>> = {};
  for (const [path, url] of await phonemizerFiles()) files[path] = await Deno.readFile(url);
  return files;
}

Deno.test({
  name: "text front end phonemizes one sentence per language in headless Chromium as in Deno",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const result = await runInChromium(new URL("./text_page.ts", import.meta.url), {
      files: await npmFiles(),
    });
    assertEquals(result, TEXT_PAGE_EXPECTED);
  },
});
