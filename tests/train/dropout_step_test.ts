/**
 * LoRA dropout in a training step: the gradients are those of the loss the step computes with its
 * masks, checked by central differences of that loss (each perturbed step redraws the same masks
 * from the same seed), for the largest gradients of a few factors; and the masks do change the
 * gradients (p = 0 gives upstream's golden ones). Upstream's golden has dropout off, so this is
 * the check of the backward pass's redrawn masks.
 */

import assert from "node:assert/strict";
import { readF32, writeTensor } from "../../src/backends/tensor.ts";
import { destroyTensors } from "../../src/backends/tensor.ts";
import { parseSafetensors } from "../../src/io/safetensors.ts";
import { ValleModel } from "../../src/models/valle/model.ts";
import { packBatch } from "../../src/train/batch.ts";
import { loraLayout, readLora } from "../../src/train/lora_params.ts";
import { createTrainState } from "../../src/train/state.ts";
import { batchLoss, recordStep, uploadBatch } from "../../src/train/step.ts";
import { goldenItems } from "../../tools/golden/train.ts";
import { backendTest } from "../_backends.ts";
import { readFixture } from "../_helpers.ts";

backendTest("LoRA dropout's gradients are its loss's, by central differences", async (backend) => {
  const load = async (f: string) =>
    parseSafetensors(await readFixture(`train-golden/${f}`), { source: f });
  const valle = await ValleModel.load(await readFixture("valle-tiny/model.sft"), {
    backend,
    precision: "f32",
  });
  const { config, weights } = valle;
  const layout = loraLayout(config, 4, 8);
  const state = createTrainState(backend, config, layout, 128);
  try {
    const init = readLora(layout, await load("lora_init.safetensors"));
    const batch = packBatch(config, weights.layout, goldenItems(await load("train.safetensors")));
    uploadBatch(backend, state, batch);
    const dropout = { p: 0.3, seed: 77 };
    /** The step's loss at `params` and its gradients. */
    const step = async (params: Float32Array, p = dropout.p) => {
      writeTensor(backend, state.params, params);
      const rec = backend.createRecorder();
      rec.clear(state.grads);
      recordStep(rec, { config, weights }, state, layout, batch, { dropout: { ...dropout, p } });
      rec.submit();
      const [stats, grads] = [
        await readF32(backend, state.stats),
        await readF32(backend, state.grads),
      ];
      return { loss: batchLoss(batch, stats).loss, grads };
    };
    const { grads } = await step(init);
    const plain = (await step(init, 0)).grads;
    const golden = await load("grads.safetensors");
    const slot = layout.slots[0];
    const key = `${slot.key}.lora_A.grad`;
    // p = 0 is upstream's step; p = 0.3 is not.
    const a = golden.toFloat32(key);
    assert.ok(a.every((g, i) => Math.abs(g - plain[slot.a + i]) <= 2e-6), "p = 0 gives the golden");
    assert.ok(a.some((g, i) => Math.abs(g - grads[slot.a + i]) > 1e-3), "the masks change it");

    // The largest gradient of A and of B of the first and the last module. Central differences
    // of the f32 loss agree to 2e-4 of the gradient here (measured); a backward pass that dropped
    // A's gradient's mask is 3% off.
    const eps = 1e-2;
    for (const s of [layout.slots[0], layout.slots.at(-1)!]) {
      for (
        const [at, size] of [[s.a, layout.rank * s.inFeatures], [s.b, s.outFeatures * layout.rank]]
      ) {
        let j = at;
        for (let i = at; i < at + size; i++) if (Math.abs(grads[i]) > Math.abs(grads[j])) j = i;
        const plus = Float32Array.from(init);
        const minus = Float32Array.from(init);
        plus[j] += eps;
        minus[j] -= eps;
        const numeric = ((await step(plus)).loss - (await step(minus)).loss) / (2 * eps);
        assert.ok(
          Math.abs(numeric - grads[j]) <= 2e-3 * Math.abs(grads[j]) + 2e-5,
          `${s.key} element ${j - at}: gradient ${grads[j]}, central difference ${numeric}`,
        );
      }
    }
  } finally {
    destroyTensors(state);
    await valle.dispose();
  }
});
