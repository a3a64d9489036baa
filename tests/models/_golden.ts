/**
 * Registers one test per case file of a golden folder copied into tests/fixtures, run through
 * the golden runner's own checker (tools/golden/codec.ts), so the tests and `deno task golden`
 * compare in exactly the same way.
 */

import type { Gpu } from "../../src/gpu/device.ts";
import { checkCase, type CodecFolder, loadCodecFolder } from "../../tools/golden/codec.ts";
import { gpuTest } from "../_gpu.ts";
import { FIXTURES } from "../_helpers.ts";
import { deepStrictEqual, ok } from "node:assert";

/** One test per case of `tests/fixtures/<name>/manifest.json`; every comparison must pass. */
export async function goldenTests(model: string, name: string): Promise<void> {
  const folder = new URL(`${name}/`, FIXTURES);
  const manifest = JSON.parse(await Deno.readTextFile(new URL("manifest.json", folder)));
  let loaded: Promise<CodecFolder> | undefined;
  const load = (gpu: Gpu) => (loaded ??= loadCodecFolder(gpu, folder));
  for (const [file, entry] of Object.entries(manifest.files as Record<string, { kind: string }>)) {
    gpuTest(`${model} reproduces golden ${file} (${entry.kind})`, async (gpu) => {
      const results = await checkCase(await load(gpu), file);
      ok(results.length > 0);
      const failed = results.filter((r) => !r.passed);
      deepStrictEqual(
        failed.map((r) => `${r.name}: ${r.maxError} > ${r.tolerance} ${r.detail ?? ""}`),
        [],
      );
    });
  }
}
