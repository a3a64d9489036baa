/**
 * The library bundled for browsers imports no Node built-in: browser bundlers (esbuild, webpack)
 * fail on a `node:` specifier they cannot resolve, even on a branch browsers never take.
 */

import { deepStrictEqual } from "node:assert";
import { bundleForBrowser } from "../../tools/_bundle.ts";

/** Static imports, re-exports and dynamic imports of a `node:` module, with their specifier. */
const NODE_IMPORT = /\b(?:from|import)\s*\(?\s*["'`](node:[\w/]+)/g;

Deno.test("the browser bundle of the library imports no node: module", async () => {
  const js = new TextDecoder().decode(
    await bundleForBrowser(new URL("../../mod.ts", import.meta.url)),
  );
  deepStrictEqual([...js.matchAll(NODE_IMPORT)].map((m) => m[0]), []);
});
