/**
 * One training step against upstream's own (tests/fixtures/train-golden, made by
 * tools/golden/train_lora.py): the batch of an AR item, NAR items at levels 1, 3 and 7 and a
 * NAR-len item, packed as one sequence, gives upstream's per-item losses, top-10 accuracies, every
 * LoRA gradient and gradient norm, and three AdamW steps (the first clipped) give upstream's LoRA
 * after each, on every backend, for both embedding-sum rules. The checks are the golden runner's
 * (tools/golden/train.ts, `deno task golden tests/fixtures/train-golden`); tolerances are the
 * folder README's, from the measured float32 vs float64 noise floor of upstream's step.
 */

import assert from "node:assert/strict";
import { runTrainGolden } from "../../tools/golden/train.ts";
import { backendTest } from "../_backends.ts";
import { assertGoldenCases, FIXTURES } from "../_helpers.ts";

const FOLDER = new URL("train-golden/", FIXTURES);
const manifest = JSON.parse(await Deno.readTextFile(new URL("manifest.json", FOLDER)));

for (const rule of ["head", "dec2024"] as const) {
  backendTest(
    `a training step gives upstream's losses, gradients and AdamW steps (${rule} rule)`,
    async (backend) => {
      const results = await assertGoldenCases(
        runTrainGolden(FOLDER, manifest, { backend, parts: [rule] }),
      );
      // Per step: loss, item losses, accuracy, gradient norm, LoRA after, and the gradients
      // (rule (b) keeps only step 1's).
      assert.equal(results.length, rule === "head" ? 18 : 16);
    },
  );
}
