/**
 * Trains a LoRA HERE for the training golden's "upstream loads ours" check: our training step
 * (CPU backend, f32 weights) on the golden batch of tests/fixtures/train-golden, from its
 * `lora_init`, for as many AdamW steps as upstream ran, then exports it with `exportLora` twice,
 * `ours_f32.sft` and `ours_f16.sft`. `train_lora.py --load-ours` then loads each through upstream's
 * own loading path and records upstream's logits (tests/fixtures/train-golden/README.md).
 *
 *   deno run -A tools/golden/train_ours.ts [folder]   (default tests/fixtures/train-golden)
 */

import { createCpuBackend } from "../../src/backends/cpu/backend.ts";
import { readSafetensors } from "../../src/io/safetensors.ts";
import { ValleModel } from "../../src/models/valle/model.ts";
import { exportLora, loraLayout, readLora } from "../../src/train/lora_params.ts";
import { goldenItems, goldenOptimizer, trainGoldenBatch } from "./train.ts";

if (import.meta.main) {
  const folder = new URL(
    `${Deno.args[0] ?? "tests/fixtures/train-golden"}/`,
    `file://${Deno.cwd()}/`,
  );
  const manifest = JSON.parse(await Deno.readTextFile(new URL("manifest.json", folder)));
  const lora = manifest.yaml.loras[0];
  const backend = await createCpuBackend({ threads: 2 });
  const valle = await ValleModel.load(new URL(manifest.model, new URL("../../", import.meta.url)), {
    backend,
    precision: "f32",
  });
  try {
    const layout = loraLayout(valle.config, lora.rank, lora.alpha);
    const init = readLora(layout, await readSafetensors(new URL("lora_init.safetensors", folder)));
    const train = await readSafetensors(new URL("train.safetensors", folder));
    const steps = await trainGoldenBatch(
      valle,
      layout,
      init,
      goldenItems(train),
      "head",
      goldenOptimizer(manifest),
      manifest.steps,
    );
    for (const [i, s] of steps.entries()) console.log(`step ${i + 1}: loss ${s.loss.loss}`);
    const trained = steps[steps.length - 1].params;
    for (const dtype of ["f32", "f16"] as const) {
      const file = new URL(`ours_${dtype}.sft`, folder);
      await Deno.writeFile(file, exportLora(layout, trained, { name: lora.name, dtype }));
      console.log(`wrote ${file.pathname}`);
    }
  } finally {
    await valle.dispose();
    backend.destroy();
  }
}
