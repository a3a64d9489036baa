/**
 * Registers one test per case file of a golden folder copied into tests/fixtures, run through
 * the golden runner's own checker (tools/golden/codec.ts), so the tests and `deno task golden`
 * compare in exactly the same way.
 */

import type { Backend } from "../../src/backends/backend.ts";
import { checkCase, type CodecFolder, loadCodecFolder } from "../../tools/golden/codec.ts";
import { backendTest } from "../_backends.ts";
import { FIXTURES } from "../_helpers.ts";
import { deepStrictEqual, ok } from "node:assert";

/** One test per case of `tests/fixtures/<name>/manifest.json`; every comparison must pass. */
export async function goldenTests(model: string, name: string): Promise<void> {
  const folder = new URL(`${name}/`, FIXTURES);
  const manifest = JSON.parse(await Deno.readTextFile(new URL("manifest.json", folder)));
  let loaded: Promise<CodecFolder> | undefined;
  const load = (backend: Backend) => (loaded ??= loadCodecFolder(backend, folder));
  for (const [file, entry] of Object.entries(manifest.files as Record<string, { kind: string }>)) {
    backendTest(`${model} reproduces golden ${file} (${entry.kind})`, async (backend) => {
      const results = await checkCase(await load(backend), file);
      ok(results.length > 0);
      const failed = results.filter((r) => !r.passed);
      deepStrictEqual(
        failed.map((r) => `${r.name}: ${r.maxError} > ${r.tolerance} ${r.detail ?? ""}`),
        [],
      );
    });
  }
}
