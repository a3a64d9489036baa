/**
 * Every case of the valle-tiny golden folder (made by the original implementation), through the
 * same checker as `deno task golden`, with f32 and f16 weights: logits within 1e-4 of the
 * reference, tokens, counts and masks identical. Greedy tokens are checked step by step with
 * near-ties allowed only on hardware adapters (tools/golden/ties.ts); on the CPU backend and
 * software adapters every token must match, and no case may report a tie.
 */

import { runValleGolden, tiesAllowed } from "../../../tools/golden/valle.ts";
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
      // Ties are listed in the detail ("1 tie: …", "2 ties (not allowed …)"); where they are not
      // allowed they already fail, this keeps it explicit.
      const tied = tiesAllowed(backend)
        ? []
        : results.filter((r) => /\bties?\b/.test(r.detail ?? ""));
      const failed = results.filter((r) => !r.passed || tied.includes(r));
      if (results.length === 0 || failed.length > 0) {
        const lines = failed.map((r) =>
          `  ${r.name}: max error ${r.maxError} > ${r.tolerance} ${r.detail ?? ""}`
        );
        throw new Error(`${failed.length} of ${results.length} cases failed\n${lines.join("\n")}`);
      }
    },
  );
}
