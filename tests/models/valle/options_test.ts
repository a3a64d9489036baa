/**
 * The VALL-E model's own settings follow the same rule as the product's options: every sampler
 * setting and NAR-len's temperature checked by range (NaN shown as NaN), every stage's settings
 * checked before any stage runs, and a top-k beyond the kernel's u32 keeping every column.
 */

import assert from "node:assert/strict";
import { OptionError } from "../../../src/errors.ts";
import { ValleModel } from "../../../src/models/valle/model.ts";
import { resolveSamplerOptions, sampleLogits } from "../../../src/models/valle/sampler.ts";
import { backendTest } from "../../_backends.ts";
import { TINY_COND, TINY_MODEL } from "./_tiny.ts";

Deno.test("sampler settings are refused out of range, naming the value and the range", () => {
  for (
    const [options, message] of [
      [{ temperature: NaN }, "temperature is NaN, expected a number in [0, 100]"],
      [{ temperature: -1 }, "temperature is -1, expected a number in [0, 100]"],
      [{ temperature: -1, minTemperature: -1 }, "temperature is -1, expected a number in [0, 100]"],
      [
        { minTemperature: -Infinity },
        "minTemperature is -Infinity, expected a number in [-1, 100]",
      ],
      [{ topK: Infinity }, "topK is Infinity, expected an integer in [0, 65536]"],
      [{ topP: 0 }, "topP is 0, expected a number in (0, 1]"],
      [{ minP: 1 }, "minP is 1, expected a number in [0, 1)"],
      [{ topNSigma: -1 }, "topNSigma is -1, expected a number in [0, 100]"],
      [{ repetitionPenalty: 0 }, "repetitionPenalty is 0, expected a number in (0, 100]"],
      [{ lengthPenalty: NaN }, "lengthPenalty is NaN, expected a number in [-8, 8]"],
    ] as const
  ) {
    assert.throws(() => resolveSamplerOptions(options), {
      name: "OptionError",
      message: `Cannot sample: ${message}`,
    });
  }
  // An explicit undefined is the default, not a value.
  assert.equal(resolveSamplerOptions({ temperature: undefined }).temperature, 1);
});

backendTest(
  "the largest top-k keeps every column, as any k ≥ columns does",
  async (backend) => {
    const logits = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i));
    const wide = await sampleLogits(backend, logits, [1, 64], { topK: 65536 });
    const all = await sampleLogits(backend, logits, [1, 64], { topK: 64 });
    assert.deepEqual(wide.processed, all.processed);
    assert.ok(wide.processed.every(Number.isFinite), "nothing was filtered");
  },
);

backendTest("generate() checks every stage's settings before any stage runs", async (backend) => {
  const model = await ValleModel.load(TINY_MODEL, { backend });
  try {
    for (
      const [request, message] of [
        [
          { narLen: { temperature: NaN } },
          "run NAR-len: temperature is NaN, expected a number in [0, 100]",
        ],
        [
          { narLen: { temperature: -0.5 } },
          "run NAR-len: temperature is -0.5, expected a number in [0, 100]",
        ],
        [
          { nar: { sampler: { temperature: -1 } } },
          "sample: temperature is -1, expected a number in [0, 100]",
        ],
        [
          { narLen: { sampler: { topP: NaN } } },
          "sample: topP is NaN, expected a number in (0, 1]",
        ],
      ] as const
    ) {
      for (const modality of ["ar+nar", "nar-len"] as const) {
        const submits = backend.stats.submits;
        await assert.rejects(
          model.generate({ ...TINY_COND, modality, maxFrames: 20, ...request }),
          (e: Error) => e instanceof OptionError && e.message === `Cannot ${message}`,
          `${modality} ${JSON.stringify(request)}`,
        );
        assert.equal(backend.stats.submits, submits, `${modality}: a stage ran`);
      }
    }
    await assert.rejects(
      model.generateNarLen({ ...TINY_COND, frames: 10, temperature: Infinity }),
      {
        name: "OptionError",
        message: "Cannot run NAR-len: temperature is Infinity, expected a number in [0, 100]",
      },
    );
  } finally {
    await model.dispose();
  }
});
