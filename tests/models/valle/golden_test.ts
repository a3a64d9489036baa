/**
 * Every case of the valle-tiny golden folder (made by the original implementation), through the
 * same checker as `deno task golden`, with f32 and f16 weights: logits within 1e-4 of the
 * reference, tokens, counts and masks identical.
 */

import { runValleGolden } from "../../../tools/golden/valle.ts";
import type { CaseResult } from "../../../tools/golden/types.ts";
import { FIXTURES } from "../../_helpers.ts";
import { backendTest } from "../../_backends.ts";

const FOLDER = new URL("valle-tiny/", FIXTURES);
const manifest = JSON.parse(await Deno.readTextFile(new URL("manifest.json", FOLDER)));

for (const file of Object.keys(manifest.files)) {
  if (file === "inputs.safetensors") continue;
  backendTest(
    `valle golden ${file}: every case matches the original (f32 and f16 weights)`,
    async (backend) => {
      const results: CaseResult[] = [];
      for await (const r of runValleGolden(FOLDER, manifest, { backend, files: [file] })) {
        results.push(r);
      }
      const failed = results.filter((r) => !r.passed);
      if (results.length === 0 || failed.length > 0) {
        const lines = failed.map((r) =>
          `  ${r.name}: max error ${r.maxError} > ${r.tolerance} ${r.detail ?? ""}`
        );
        throw new Error(`${failed.length} of ${results.length} cases failed\n${lines.join("\n")}`);
      }
    },
  );
}
