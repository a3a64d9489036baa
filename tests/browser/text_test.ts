import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { TEXT_PAGE_EXPECTED } from "./text_page.ts";
import { runInChromium } from "./harness.ts";

Deno.test({
  name: "text front end phonemizes one sentence per language in headless Chromium as in Deno",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const result = await runInChromium(new URL("./text_page.ts", import.meta.url));
    assertEquals(result, TEXT_PAGE_EXPECTED);
  },
});
