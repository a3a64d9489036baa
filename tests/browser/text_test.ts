import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { TEXT_PAGE_EXPECTED } from "./text_page.ts";
import { runInChromium } from "./harness.ts";

/** The npm files the page fetches, served beside it: kuromoji's dictionary (espeak is bundled). */
async function npmFiles(): Promise<Record<string, Uint8Array<ArrayBuffer>>> {
  await import("@patdx/kuromoji");
  const dict = new URL("../dict/", import.meta.resolve("@patdx/kuromoji"));
  const files: Record<string, Uint8Array<ArrayBuffer>> = {};
  for await (const entry of Deno.readDir(dict)) {
    files[`/kuromoji-dict/${entry.name}`] = await Deno.readFile(new URL(entry.name, dict));
  }
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
